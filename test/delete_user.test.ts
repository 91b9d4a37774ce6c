// delete_user through the built CLI against real Zulip 12 / 11 / 10 databases and a real memcached.
//
// Each test database gets the same world around the user to delete (Iago): channel messages,
// 1:1 and group DMs both ways, reactions, a submessage, attachments (his and others', on his
// messages and on others'), a scheduled message with an attachment, an attachment on his message
// that another user's scheduled message uses too, drafts, snippets, mutes,
// custom profile data, presence, emoji, a 2FA device, invitation data, an audit row with
// personal data, a channel he created, a bot he owns and login sessions. After the deletion we
// check, row by row, what Zulip's do_delete_user keeps and removes (12.x: the account is
// overwritten in place and his messages archived; 10.x / 11.x: the account is deleted with
// Django's cascades and recreated as a placeholder with the same id), that every foreign key
// holds (SET CONSTRAINTS ALL IMMEDIATE and a catalog-driven orphan count), and that tables the
// deletion must not touch are unchanged. Plus: the dry run writes nothing, and an unknown table
// referencing zerver_userprofile makes the command refuse before writing anything.
import crypto from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createChannel } from "../src/zulip/actions/create-channel.js";
import { createUser } from "../src/zulip/actions/create-user.js";
import { getOrCreateDirectMessageGroup, sendMessage } from "../src/zulip/actions/message-send.js";
import { USER_SETTING_DEFAULTS } from "../src/zulip/user-settings.js";
import { CascadeDeletion, catalogForeignKeys } from "../src/db/ondelete.js";
import { runCli, type CliResult } from "./helpers/cli.js";
import { makeConfDir, type ConfDir } from "./helpers/confdir.js";
import { startMemcached, type MemcachedInstance } from "./helpers/memcached.js";
import { createDatabase, type TemplateName, type TestDatabase } from "./helpers/pg.js";
import { QueueReader, sortedUsers } from "./helpers/rabbitmq.js";
import { startServerCopy, type ServerCopy } from "./helpers/server-copy.js";
import { changedTables, snapshot, type Snapshot } from "./helpers/snapshot.js";
import { addUser, copyMember, copyRow, groupIds, TEST_REALM } from "./helpers/users.js";
import { addSession } from "./helpers/sessions.js";

const REALM = 2;
const HOST = "zulip.example.net";

/** Every FK holds: deferred constraints checked now, and a catalog-driven orphan count. */
async function assertForeignKeysHold(db: TestDatabase): Promise<void> {
  const c = await db.connect();
  try {
    await c.query("BEGIN");
    await c.query("SET CONSTRAINTS ALL IMMEDIATE");
    await c.query("ROLLBACK");
  } finally {
    await c.end();
  }
  const fks = await db.query(
    `SELECT cl.relname AS t, a.attname AS c, pl.relname AS p, pa.attname AS pc
       FROM pg_constraint k
       JOIN pg_class cl ON cl.oid = k.conrelid JOIN pg_class pl ON pl.oid = k.confrelid
       JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
       JOIN pg_attribute pa ON pa.attrelid = k.confrelid AND pa.attnum = k.confkey[1]
      WHERE k.contype = 'f'`,
  );
  expect(fks.length).toBeGreaterThan(150);
  const orphans: string[] = [];
  for (const fk of fks) {
    const [r] = await db.query(
      `SELECT count(*)::int AS n FROM zulip."${fk.t}" x WHERE x."${fk.c}" IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM zulip."${fk.p}" y WHERE y."${fk.pc}" = x."${fk.c}")`,
    );
    if (r.n) orphans.push(`${fk.t}.${fk.c}: ${r.n}`);
  }
  expect(orphans).toEqual([]);
}

async function one(db: TestDatabase, sql: string, params: unknown[] = []): Promise<any> {
  return (await db.query(sql, params))[0];
}

async function ids(db: TestDatabase, sql: string, params: unknown[] = []): Promise<number[]> {
  return (await db.query(sql, params)).map((r: any) => Number(r.id));
}

// ---------------------------------------------------------------------------------------------
// The world around Iago

interface World {
  iago: number;
  hamlet: number;
  othello: number;
  bot: number;
  channel: number;
  iagoChannel: number;
  m: Record<"iagoChannel" | "hamletChannel" | "iagoDm" | "hamletDm" | "iagoGroup" | "hamletGroup" | "botChannel", number>;
  reactions: { iagoOnHamlet: number; hamletOnIago: number; othelloOnGroup: number };
  submessage: number;
  att: { iagoOnIago: number; iagoOnHamlet: number; hamletOnIago: number; hamletShared: number; scheduled: number; hamletScheduled: number };
  scheduled: number;
  /** Hamlet's scheduled message, which uses att.hamletScheduled (also on Iago's channel message). */
  hamletScheduledMessage: number;
  groupRecipient: number;
  missed: { hamletOnIagoMsg: number; iagoOnHamletMsg: number };
  cpf: { iago: number; hamlet: number };
  audit124: number;
  sessions: { iago: string; hamlet: string };
  personalRecipient: number | null;
  iagoBefore: any;
}

/** A member made by copying the fresh install's owner row (works on every schema version). */
async function copyUser(db: TestDatabase, email: string, fullName: string, botOwnerId?: number): Promise<number> {
  const id = await copyMember(db, { email, fullName, botOwnerId });
  if (
    (
      await db.query(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = 'zulip' AND table_name = 'zerver_userprofile' AND column_name = 'recipient_id'",
      )
    ).length
  ) {
    // Zulip 10.x / 11.x: every user has a personal recipient and a subscription to it.
    const [r] = await db.query("INSERT INTO zerver_recipient (type_id, type) VALUES ($1, 1) RETURNING id", [id]);
    await db.query("UPDATE zerver_userprofile SET recipient_id = $2 WHERE id = $1", [id, r.id]);
    await db.query(
      `INSERT INTO zerver_subscription (active, is_user_active, is_muted, color, pin_to_top, recipient_id, user_profile_id)
       VALUES (true, true, false, '#c2c2c2', false, $1, $2)`,
      [r.id, id],
    );
  }
  return id;
}

async function subscribe(db: TestDatabase, userId: number, channelId: number): Promise<void> {
  await db.query(
    `INSERT INTO zerver_subscription (active, is_user_active, is_muted, color, pin_to_top, recipient_id, user_profile_id)
     SELECT true, true, false, '#c2c2c2', false, recipient_id, $1 FROM zerver_stream WHERE id = $2`,
    [userId, channelId],
  );
  await db.query("UPDATE zerver_stream SET subscriber_count = subscriber_count + 1 WHERE id = $1", [channelId]);
}

/** A message with plain INSERTs (every release): UserMessage rows for `receivers` (with `flags`, default as Zulip sets them unread). */
async function insertMessage(
  db: TestDatabase,
  sender: number,
  recipient: number,
  channel: boolean,
  receivers: number[],
  content: string,
  opts: { topic?: string; flags?: (userId: number) => number } = {},
): Promise<number> {
  const [m] = await db.query(
    `INSERT INTO zerver_message (subject, content, rendered_content, rendered_content_version, date_sent, has_attachment, has_image, has_link,
                                 sender_id, sending_client_id, realm_id, recipient_id, is_channel_message, type)
     VALUES ($1, $2, '<p>' || $2 || '</p>', 1, now(), false, false, false, $3, 2, ${REALM}, $4, $5, 1) RETURNING id`,
    [channel ? (opts.topic ?? "topic") : "\x07", content, sender, recipient, channel],
  );
  for (const u of [...new Set(receivers)].sort((a, b) => a - b)) {
    await db.query("INSERT INTO zerver_usermessage (flags, message_id, user_profile_id) VALUES ($1, $2, $3)", [
      opts.flags?.(u) ?? (channel ? 0 : 2048),
      m.id,
      u,
    ]);
  }
  return Number(m.id);
}

async function buildWorld(db: TestDatabase, v12: boolean): Promise<World> {
  const c = db.client;
  await c.query("BEGIN");
  let iago: number, hamlet: number, othello: number, bot: number;
  const channel = Number((await one(db, "SELECT id FROM zerver_stream WHERE realm_id = $1 ORDER BY id LIMIT 1", [REALM])).id);
  let iagoChannel: number;
  const m = {} as World["m"];
  let groupRecipient: number;
  if (v12) {
    const mk = (email: string, fullName: string, extra: Record<string, unknown> = {}) =>
      createUser(c, REALM, { email, fullName, externalHost: HOST, ...extra });
    iago = (await mk("iago@zulip.example.net", "Iago")).id;
    hamlet = (await mk("hamlet@zulip.example.net", "Hamlet")).id;
    othello = (await mk("othello@zulip.example.net", "Othello")).id;
    bot = (await mk("iago-bot@zulip.example.net", "Iago's bot", { botType: 1, botOwnerId: iago })).id;
    iagoChannel = (await createChannel(c, REALM, { name: "iago's corner", creatorId: iago, subscribers: [iago, hamlet] })).id;
    for (const u of [iago, hamlet, othello]) {
      const sub = await one(
        db,
        "SELECT 1 AS x FROM zerver_subscription s JOIN zerver_stream st ON st.recipient_id = s.recipient_id WHERE st.id = $1 AND s.user_profile_id = $2",
        [channel, u],
      );
      if (!sub) await subscribe(db, u, channel);
    }
    const send = async (senderId: number, to: any, content: string) => (await sendMessage(c, { senderId, to, content })).id;
    m.iagoChannel = await send(iago, { channelId: channel, topic: "greetings" }, "hello from iago");
    m.hamletChannel = await send(hamlet, { channelId: channel, topic: "greetings" }, "hello from hamlet");
    m.iagoDm = await send(iago, { userIds: [hamlet] }, "psst hamlet");
    m.hamletDm = await send(hamlet, { userIds: [iago] }, "psst iago");
    m.iagoGroup = await send(iago, { userIds: [hamlet, othello] }, "group hello from iago");
    m.hamletGroup = await send(hamlet, { userIds: [iago, othello] }, "group hello from hamlet");
    m.botChannel = await send(bot, { channelId: channel, topic: "bot things" }, "beep");
    groupRecipient = (await getOrCreateDirectMessageGroup(c, [iago, hamlet, othello])).recipientId;
  } else {
    iago = await copyUser(db, "iago@zulip.example.net", "Iago");
    hamlet = await copyUser(db, "hamlet@zulip.example.net", "Hamlet");
    othello = await copyUser(db, "othello@zulip.example.net", "Othello");
    bot = await copyUser(db, "iago-bot@zulip.example.net", "Iago's bot", iago);
    for (const u of [iago, hamlet, othello]) await subscribe(db, u, channel);
    iagoChannel = await copyRow(
      db,
      "zerver_stream",
      channel,
      { name: "'iago''s corner'", date_created: "now()", creator_id: "$1", recipient_id: "NULL", first_message_id: "NULL", subscriber_count: "0" },
      [iago],
    );
    const [sr] = await db.query("INSERT INTO zerver_recipient (type_id, type) VALUES ($1, 2) RETURNING id", [iagoChannel]);
    await db.query("UPDATE zerver_stream SET recipient_id = $2 WHERE id = $1", [iagoChannel, sr.id]);
    for (const u of [iago, hamlet]) await subscribe(db, u, iagoChannel);
    const rcp = async (u: number) => Number((await one(db, "SELECT recipient_id FROM zerver_userprofile WHERE id = $1", [u])).recipient_id);
    const chRcp = Number((await one(db, "SELECT recipient_id FROM zerver_stream WHERE id = $1", [channel])).recipient_id);
    const subs = [8, iago, hamlet, othello];
    const hash = crypto
      .createHash("sha1")
      .update([iago, hamlet, othello].sort((a, b) => a - b).join(","))
      .digest("hex");
    const [h] = await db.query("INSERT INTO zerver_huddle (huddle_hash, group_size) VALUES ($1, 3) RETURNING id", [hash]);
    const [hr] = await db.query("INSERT INTO zerver_recipient (type_id, type) VALUES ($1, 3) RETURNING id", [h.id]);
    await db.query("UPDATE zerver_huddle SET recipient_id = $2 WHERE id = $1", [h.id, hr.id]);
    for (const u of [iago, hamlet, othello]) {
      await db.query(
        `INSERT INTO zerver_subscription (active, is_user_active, is_muted, color, pin_to_top, recipient_id, user_profile_id)
         VALUES (true, true, false, '#c2c2c2', false, $1, $2)`,
        [hr.id, u],
      );
    }
    groupRecipient = Number(hr.id);
    m.iagoChannel = await insertMessage(db, iago, chRcp, true, subs, "hello from iago");
    m.hamletChannel = await insertMessage(db, hamlet, chRcp, true, subs, "hello from hamlet");
    m.iagoDm = await insertMessage(db, iago, await rcp(hamlet), false, [iago, hamlet], "psst hamlet");
    m.hamletDm = await insertMessage(db, hamlet, await rcp(iago), false, [iago, hamlet], "psst iago");
    m.iagoGroup = await insertMessage(db, iago, groupRecipient, false, [iago, hamlet, othello], "group hello from iago");
    m.hamletGroup = await insertMessage(db, hamlet, groupRecipient, false, [iago, hamlet, othello], "group hello from hamlet");
    m.botChannel = await insertMessage(db, bot, chRcp, true, subs, "beep");
  }

  const reaction = async (user: number, msg: number) =>
    Number(
      (
        await one(
          db,
          "INSERT INTO zerver_reaction (emoji_name, reaction_type, emoji_code, message_id, user_profile_id) VALUES ('+1', 'unicode_emoji', '1f44d', $1, $2) RETURNING id",
          [msg, user],
        )
      ).id,
    );
  const reactions = {
    iagoOnHamlet: await reaction(iago, m.hamletChannel),
    hamletOnIago: await reaction(hamlet, m.iagoChannel),
    othelloOnGroup: await reaction(othello, m.hamletGroup),
  };
  const submessage = Number(
    (
      await one(db, "INSERT INTO zerver_submessage (msg_type, content, message_id, sender_id) VALUES ('widget', '{}', $1, $2) RETURNING id", [
        m.iagoChannel,
        hamlet,
      ])
    ).id,
  );
  let attN = 0;
  const attachment = async (owner: number, msgs: number[]) => {
    const [a] = await db.query(
      `INSERT INTO zerver_attachment (file_name, path_id, create_time, size, content_type, is_realm_public, is_web_public, owner_id, realm_id)
       VALUES ($1, $2, now(), 10, 'text/plain', true, false, $3, ${REALM}) RETURNING id`,
      [`f${++attN}.txt`, `${REALM}/ab/${crypto.randomBytes(6).toString("hex")}/f${attN}.txt`, owner],
    );
    for (const msg of msgs) await db.query("INSERT INTO zerver_attachment_messages (attachment_id, message_id) VALUES ($1, $2)", [a.id, msg]);
    return Number(a.id);
  };
  const att = {
    iagoOnIago: await attachment(iago, [m.iagoChannel]),
    iagoOnHamlet: await attachment(iago, [m.hamletChannel]),
    hamletOnIago: await attachment(hamlet, [m.iagoChannel]),
    hamletShared: await attachment(hamlet, [m.iagoChannel, m.hamletGroup]),
    scheduled: await attachment(iago, []),
    // On Iago's message and on Hamlet's scheduled message: move_messages_to_archive keeps it
    // (Attachment.objects.filter(messages__isnull=True, scheduled_messages__isnull=True, ...)).
    hamletScheduled: await attachment(hamlet, [m.iagoChannel]),
  };
  const chRcp = Number((await one(db, "SELECT recipient_id FROM zerver_stream WHERE id = $1", [channel])).recipient_id);
  const [sm] = await db.query(
    `INSERT INTO zerver_scheduledmessage (subject, content, rendered_content, scheduled_timestamp, read_by_sender, delivered, has_attachment, failed,
        delivery_type, realm_id, recipient_id, sender_id, sending_client_id, stream_id, request_timestamp)
     VALUES ('later', 'see attached', '<p>see attached</p>', now() + interval '1 day', true, false, true, false, 1, ${REALM}, $1, $2, 2, $3, now())
     RETURNING id`,
    [chRcp, iago, channel],
  );
  await db.query("INSERT INTO zerver_attachment_scheduled_messages (attachment_id, scheduledmessage_id) VALUES ($1, $2)", [att.scheduled, sm.id]);
  const [hsm] = await db.query(
    `INSERT INTO zerver_scheduledmessage (subject, content, rendered_content, scheduled_timestamp, read_by_sender, delivered, has_attachment, failed,
        delivery_type, realm_id, recipient_id, sender_id, sending_client_id, stream_id, request_timestamp)
     VALUES ('later', 'see attached too', '<p>see attached too</p>', now() + interval '1 day', true, false, true, false, 1, ${REALM}, $1, $2, 2, $3, now())
     RETURNING id`,
    [chRcp, hamlet, channel],
  );
  await db.query("INSERT INTO zerver_attachment_scheduled_messages (attachment_id, scheduledmessage_id) VALUES ($1, $2)", [att.hamletScheduled, hsm.id]);
  await db.query("INSERT INTO zerver_draft (topic, content, last_edit_time, user_profile_id, recipient_id) VALUES ('t', 'draft', now(), $1, $2)", [
    iago,
    chRcp,
  ]);
  await db.query("INSERT INTO zerver_savedsnippet (title, content, date_created, realm_id, user_profile_id) VALUES ('s', 'snippet', now(), $1, $2)", [
    REALM,
    iago,
  ]);
  await db.query(
    "INSERT INTO zerver_externalauthid (date_created, external_auth_method_name, external_auth_id, realm_id, user_id) VALUES (now(), 'saml', 'iago-ext', $1, $2)",
    [REALM, iago],
  );
  await db.query("INSERT INTO zerver_muteduser (date_muted, muted_user_id, user_profile_id) VALUES (now(), $1, $2), (now(), $3, $1)", [iago, hamlet, othello]);
  await db.query("INSERT INTO zerver_alertword (word, user_profile_id, realm_id) VALUES ('lunch', $1, $2)", [iago, REALM]);
  const [field] = await db.query(
    `INSERT INTO zerver_customprofilefield (name, hint, "order", display_in_profile_summary, required, field_type, field_data, realm_id, editable_by_user, use_for_user_matching)
     VALUES ('Phone', '', 1, false, false, 1, '', $1, true, false) RETURNING id`,
    [REALM],
  );
  const cpf = {
    iago: Number(
      (await one(db, "INSERT INTO zerver_customprofilefieldvalue (value, field_id, user_profile_id) VALUES ('555', $1, $2) RETURNING id", [field.id, iago])).id,
    ),
    hamlet: Number(
      (await one(db, "INSERT INTO zerver_customprofilefieldvalue (value, field_id, user_profile_id) VALUES ('777', $1, $2) RETURNING id", [field.id, hamlet]))
        .id,
    ),
  };
  await db.query(
    "INSERT INTO zerver_usertopic (topic_name, last_updated, visibility_policy, recipient_id, stream_id, user_profile_id) VALUES ('greetings', now(), 3, $1, $2, $3)",
    [chRcp, channel, iago],
  );
  await db.query(
    "INSERT INTO zerver_userpresence (last_update_id, last_connected_time, last_active_time, realm_id, user_profile_id) VALUES (1, now(), now(), $1, $2)",
    [REALM, iago],
  );
  await db.query(
    "INSERT INTO zerver_userstatus (reaction_type, timestamp, emoji_name, emoji_code, status_text, client_id, user_profile_id) VALUES ('unicode_emoji', now(), '', '', 'away', 2, $1)",
    [iago],
  );
  await db.query(
    "INSERT INTO zerver_realmemoji (name, file_name, is_animated, deactivated, author_id, realm_id) VALUES ('iago', '1.png', false, false, $1, $2)",
    [iago, REALM],
  );
  const [dev] = await db.query(
    "INSERT INTO otp_static_staticdevice (name, confirmed, user_id, throttling_failure_count) VALUES ('backup', true, $1, 0) RETURNING id",
    [iago],
  );
  await db.query("INSERT INTO otp_static_statictoken (token, device_id) VALUES ('123456', $1)", [dev.id]);
  const missed = {
    hamletOnIagoMsg: Number(
      (
        await one(
          db,
          "INSERT INTO zerver_missedmessageemailaddress (email_token, timestamp, times_used, message_id, user_profile_id) VALUES ('mm1', now(), 0, $1, $2) RETURNING id",
          [m.iagoChannel, hamlet],
        )
      ).id,
    ),
    iagoOnHamletMsg: Number(
      (
        await one(
          db,
          "INSERT INTO zerver_missedmessageemailaddress (email_token, timestamp, times_used, message_id, user_profile_id) VALUES ('mm2', now(), 0, $1, $2) RETURNING id",
          [m.hamletChannel, iago],
        )
      ).id,
    ),
  };
  const audit124 = Number(
    (
      await one(
        db,
        `INSERT INTO zerver_realmauditlog (realm_id, acting_user_id, modified_user_id, event_type, event_time, backfilled, extra_data${v12 ? ", scrubbed" : ""})
         VALUES ($1, $2, $2, 124, now(), false, '{"1": "Iago Old", "2": "Iago"}'::jsonb${v12 ? ", false" : ""}) RETURNING id`,
        [REALM, iago],
      )
    ).id,
  );
  const sessions = { iago: `iago${crypto.randomBytes(8).toString("hex")}`, hamlet: `hamlet${crypto.randomBytes(8).toString("hex")}` };
  // Signed with some key: deleting a user's sessions goes by the decoded user id.
  await addSession(db, iago, "some-secret-key", { key: sessions.iago, expires: 1 });
  await addSession(db, hamlet, "some-secret-key", { key: sessions.hamlet, expires: 1 });
  const iagoBefore = await one(db, "SELECT * FROM zerver_userprofile WHERE id = $1", [iago]);
  await c.query("COMMIT");
  return {
    iago,
    hamlet,
    othello,
    bot,
    channel,
    iagoChannel,
    m,
    reactions,
    submessage,
    att,
    scheduled: Number(sm.id),
    hamletScheduledMessage: Number(hsm.id),
    groupRecipient,
    missed,
    cpf,
    audit124,
    sessions,
    personalRecipient: iagoBefore.recipient_id ?? null,
    iagoBefore,
  };
}

interface Env {
  db: TestDatabase;
  conf: ConfDir;
  mc: MemcachedInstance;
  w: World;
  cli(args: string[]): Promise<CliResult>;
}

async function setup(template: "zulip12_fresh" | "zulip11_fresh" | "zulip10_fresh", mc: MemcachedInstance): Promise<Env> {
  const { db, conf } = await startServerCopy({ template, memcached: mc, externalHost: HOST });
  const w = await buildWorld(db, template === "zulip12_fresh");
  return { db, conf, mc, w, cli: (args) => runCli(args, { db, confDir: conf }) };
}

let mc: MemcachedInstance;
beforeAll(async () => {
  mc = await startMemcached();
}, 60_000);
afterAll(async () => {
  await mc?.stop();
});

// ---------------------------------------------------------------------------------------------

describe("delete_user on Zulip 12 (overwrite in place, messages archived)", () => {
  let env: Env;
  let before: Snapshot;
  let result: CliResult;
  let json: any;
  let auditBefore: number;
  let reader: QueueReader;
  let notices: any[];
  beforeAll(async () => {
    env = await setup("zulip12_fresh", mc);
    reader = await QueueReader.open();
    await reader.purge("notify_tornado", "missedmessage_mobile_notifications");
    before = await snapshot(env.db);
    auditBefore = Number((await one(env.db, "SELECT max(id) AS m FROM zerver_realmauditlog")).m);
    const client = await mc.connect();
    for (const k of [`user_profile_by_id:${env.w.iago}`, `user_profile_by_api_key:${env.w.iagoBefore.api_key}`, `active_user_ids:${REALM}`]) {
      await client.set(`:1:${env.conf.cachePrefix}${k}`, "cached");
    }
    await client.close();
    result = await env.cli(["delete_user", "-u", "iago@zulip.example.net", "-f", "--json"]);
    json = JSON.parse(result.stdout);
    notices = sortedUsers(await reader.drain());
  }, 120_000);
  afterAll(async () => {
    await reader?.close();
    await env?.db.drop();
    env?.conf.cleanup();
  });

  it("succeeds and reports what it did", () => {
    expect(result.stderr).toBe("");
    expect(result.exitCode).toBe(0);
    expect(json.ok).toBe(true);
    expect(json.algorithm).toBe("overwrite");
    const r = json.results[0];
    expect(r.user).toMatchObject({ id: env.w.iago, delivery_email: "iago@zulip.example.net", full_name: "Iago", realm_id: REALM });
    expect(r).toMatchObject({ ok: true, status: "done", error: null });
    expect(r.active_bot_count).toBe(1);
    expect(r.deactivated).toEqual({ user: true, bot_ids: [env.w.bot], sessions_deleted_count: 1 });
    expect(r.rows_archived).toEqual({
      zerver_archivetransaction: 1,
      zerver_archivedmessage: 3,
      zerver_archivedreaction: 1,
      zerver_archivedsubmessage: 1,
      zerver_archivedusermessage: 6,
      zerver_archivedattachment: 4,
      zerver_archivedattachment_messages: 4,
    });
    // His messages with their cascades, and the two attachments left without any use.
    expect(r.rows_deleted).toMatchObject({ zerver_message: 3, zerver_attachment: 2, zerver_submessage: 1, zerver_missedmessageemailaddress: 1 });
    expect(r.placeholder).toEqual({
      id: env.w.iago,
      email: `deleteduser${env.w.iago}@${HOST}`,
      delivery_email: `deleteduser${env.w.iago}@${HOST}`,
      full_name: `Deleted User ${env.w.iago}`,
      is_active: false,
      is_mirror_dummy: true,
      is_deleted: true,
      recipient_id: null,
    });
    expect(json.cache.ok).toBe(true);
  });

  it("keeps every foreign key valid", async () => {
    await assertForeignKeysHold(env.db);
  });

  it("overwrites the account with a fresh placeholder's values", async () => {
    const u = await one(env.db, "SELECT * FROM zerver_userprofile WHERE id = $1", [env.w.iago]);
    const b = env.w.iagoBefore;
    for (const k of ["id", "date_joined", "realm_id", "uuid", "last_login"]) expect(u[k]).toEqual(b[k]);
    for (const [k, v] of Object.entries(USER_SETTING_DEFAULTS)) expect([k, u[k]]).toEqual([k, v]);
    expect(u).toMatchObject({
      email: `deleteduser${env.w.iago}@${HOST}`,
      delivery_email: `deleteduser${env.w.iago}@${HOST}`,
      full_name: `Deleted User ${env.w.iago}`,
      is_active: false,
      is_mirror_dummy: true,
      is_deleted: true,
      is_bot: false,
      bot_type: null,
      role: 400,
      timezone: "",
      default_language: "en",
      email_address_visibility: 1,
      avatar_source: "G",
      is_staff: false,
      is_superuser: false,
      can_create_users: false,
      tos_version: b.tos_version,
    });
    expect(u.password).toMatch(/^![A-Za-z0-9]{40}$/);
    expect(u.api_key).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(u.api_key).not.toBe(b.api_key);
  });

  it("archives the messages Iago sent and deletes them, keeps everyone else's", async () => {
    const { m, iago } = env.w;
    expect(await ids(env.db, "SELECT id FROM zerver_message WHERE sender_id = $1", [iago])).toEqual([]);
    const live = await ids(env.db, "SELECT id FROM zerver_message WHERE id = ANY ($1::int[]) ORDER BY id", [Object.values(m)]);
    expect(live).toEqual([m.hamletChannel, m.hamletDm, m.hamletGroup, m.botChannel].sort((a, b) => a - b));
    const archived = await env.db.query("SELECT id, archive_transaction_id, sender_id, content FROM zerver_archivedmessage ORDER BY id");
    expect(archived.map((r: any) => Number(r.id))).toEqual([m.iagoChannel, m.iagoDm, m.iagoGroup].sort((a, b) => a - b));
    expect(archived.map((r: any) => r.content)).toEqual(["hello from iago", "psst hamlet", "group hello from iago"]);
    const tx = await env.db.query("SELECT * FROM zerver_archivetransaction");
    expect(tx).toHaveLength(1);
    // 12.x: do_delete_messages_by_sender passes user.realm.
    expect(tx[0]).toMatchObject({ type: 2, realm_id: REALM, restored: false, protect_from_deletion: false });
    expect(new Set(archived.map((r: any) => Number(r.archive_transaction_id)))).toEqual(new Set([Number(tx[0].id)]));
    // Iago's own UserMessage rows are gone (deleted before archiving); the others' are archived.
    expect(await ids(env.db, "SELECT id FROM zerver_usermessage WHERE user_profile_id = $1", [iago])).toEqual([]);
    const aum = await env.db.query("SELECT user_profile_id, message_id FROM zerver_archivedusermessage ORDER BY message_id, user_profile_id");
    expect(aum.every((r: any) => Number(r.user_profile_id) !== iago)).toBe(true);
    expect(aum.length).toBeGreaterThan(0);
    expect(await ids(env.db, "SELECT id FROM zerver_usermessage WHERE message_id = ANY ($1::int[])", [[m.iagoChannel, m.iagoDm, m.iagoGroup]])).toEqual([]);
  });

  it("archives reactions and submessages on his messages, keeps his reactions elsewhere", async () => {
    const { reactions } = env.w;
    const mine = Object.values(reactions);
    expect(await ids(env.db, "SELECT id FROM zerver_reaction WHERE id = ANY ($1::int[]) ORDER BY id", [mine])).toEqual([
      reactions.iagoOnHamlet,
      reactions.othelloOnGroup,
    ]);
    expect(await ids(env.db, "SELECT id FROM zerver_archivedreaction")).toEqual([reactions.hamletOnIago]);
    expect(await ids(env.db, "SELECT id FROM zerver_submessage")).toEqual([]);
    expect(await ids(env.db, "SELECT id FROM zerver_archivedsubmessage")).toEqual([env.w.submessage]);
  });

  it("archives attachments and deletes those no message or scheduled message uses any more", async () => {
    const { att } = env.w;
    // att.scheduled: only on Iago's scheduled message (deleted), never archived, so not deleted;
    // att.hamletScheduled: on Iago's message and Hamlet's scheduled message, archived and kept.
    expect(await ids(env.db, "SELECT id FROM zerver_attachment ORDER BY id")).toEqual([att.iagoOnHamlet, att.hamletShared, att.scheduled, att.hamletScheduled]);
    expect(await ids(env.db, "SELECT id FROM zerver_archivedattachment ORDER BY id")).toEqual([
      att.iagoOnIago,
      att.hamletOnIago,
      att.hamletShared,
      att.hamletScheduled,
    ]);
    const scheduledLinks = await env.db.query("SELECT attachment_id, scheduledmessage_id FROM zerver_attachment_scheduled_messages ORDER BY id");
    expect(scheduledLinks.map((r: any) => [Number(r.attachment_id), Number(r.scheduledmessage_id)])).toEqual([
      [att.hamletScheduled, env.w.hamletScheduledMessage],
    ]);
    const links = await env.db.query("SELECT attachment_id, message_id FROM zerver_attachment_messages ORDER BY attachment_id");
    expect(links.map((r: any) => [Number(r.attachment_id), Number(r.message_id)])).toEqual([
      [att.iagoOnHamlet, env.w.m.hamletChannel],
      [att.hamletShared, env.w.m.hamletGroup],
    ]);
    expect(Number((await one(env.db, "SELECT count(*) AS n FROM zerver_archivedattachment_messages")).n)).toBe(4);
  });

  it("sends delete_message events for his messages (12.x move_messages_to_archive, skip_notify=False)", async () => {
    const { m, hamlet, othello, iago, channel } = env.w;
    const deletions = notices.filter((n) => n.event.type === "delete_message").sort((a, b) => a.event.message_ids[0] - b.event.message_ids[0]);
    // The channel's subscribers (Iago's subscription is gone by then), and the non-guests with a
    // UserMessage row, long-term-idle users left out.
    const channelUsers = (
      await env.db.query(
        `SELECT s.user_profile_id AS id FROM zerver_subscription s JOIN zerver_stream st ON st.recipient_id = s.recipient_id
           JOIN zerver_userprofile u ON u.id = s.user_profile_id
          WHERE st.id = $1 AND s.active AND s.is_user_active AND NOT u.long_term_idle
         UNION SELECT um.user_profile_id FROM zerver_archivedusermessage um JOIN zerver_userprofile u ON u.id = um.user_profile_id
          WHERE um.message_id = $2 AND NOT u.long_term_idle AND u.role <> 600 ORDER BY 1`,
        [channel, m.iagoChannel],
      )
    ).map((r: any) => Number(r.id));
    expect(channelUsers).toContain(hamlet);
    expect(channelUsers).not.toContain(iago);
    expect(deletions).toEqual(
      [
        {
          event: { type: "delete_message", message_ids: [m.iagoChannel], stream_id: channel, topic: "greetings", message_type: "stream" },
          users: channelUsers,
        },
        // Direct messages: the users with a UserMessage row (his own were deleted first).
        { event: { type: "delete_message", message_ids: [m.iagoDm], message_type: "private" }, users: [hamlet] },
        { event: { type: "delete_message", message_ids: [m.iagoGroup], message_type: "private" }, users: [hamlet, othello].sort((a, b) => a - b) },
      ].sort((a, b) => a.event.message_ids[0] - b.event.message_ids[0]),
    );
    // Not the channel's first message: no first_message_id update.
    expect(notices.filter((n) => n.event.property === "first_message_id")).toEqual([]);
    expect(json.events).toMatchObject({ ok: true, published: notices.length });
  });

  it("deletes what do_delete_user_core lists and keeps what it does not touch", async () => {
    const { iago, hamlet, othello } = env.w;
    const count = async (sql: string, p: unknown[] = [iago]) => Number((await one(env.db, `SELECT count(*) AS n FROM ${sql}`, p)).n);
    expect(await count("zerver_scheduledmessage WHERE sender_id = $1")).toBe(0);
    expect(await count("zerver_attachment_scheduled_messages WHERE scheduledmessage_id = $1", [env.w.scheduled])).toBe(0);
    expect(await count("zerver_draft WHERE user_profile_id = $1")).toBe(0);
    expect(await count("zerver_savedsnippet WHERE user_profile_id = $1")).toBe(0);
    expect(await count("zerver_externalauthid WHERE user_id = $1")).toBe(0);
    // Zulip 12 leaves these (zulip/zulip#39347):
    expect(await count("zerver_customprofilefieldvalue WHERE user_profile_id = $1")).toBe(1);
    expect(await count("zerver_alertword WHERE user_profile_id = $1")).toBe(1);
    expect(await count("zerver_muteduser WHERE user_profile_id = $1 OR muted_user_id = $1")).toBe(2);
    expect(await count("zerver_usertopic WHERE user_profile_id = $1")).toBe(1);
    expect(await count("zerver_userpresence WHERE user_profile_id = $1")).toBe(1);
    expect(await count("zerver_userstatus WHERE user_profile_id = $1")).toBe(1);
    expect(await count("zerver_realmemoji WHERE author_id = $1")).toBe(1);
    expect(await count("otp_static_statictoken", [])).toBe(1);
    expect(await ids(env.db, "SELECT id FROM zerver_missedmessageemailaddress ORDER BY id")).toEqual([env.w.missed.iagoOnHamletMsg]);
    // The channel he created keeps its creator (the row still exists).
    expect(Number((await one(env.db, "SELECT creator_id FROM zerver_stream WHERE id = $1", [env.w.iagoChannel])).creator_id)).toBe(iago);
    // Channel subscriptions are gone; the group DM subscription stays, inactive.
    const subs = await env.db.query(
      "SELECT s.recipient_id, s.active, s.is_user_active, r.type FROM zerver_subscription s JOIN zerver_recipient r ON r.id = s.recipient_id WHERE s.user_profile_id = $1 ORDER BY 1",
      [iago],
    );
    expect(subs.every((s: any) => s.type === 3 && s.active && !s.is_user_active)).toBe(true);
    expect(subs.map((s: any) => Number(s.recipient_id))).toContain(env.w.groupRecipient);
    // Hamlet's and Othello's data is untouched.
    expect(await count("zerver_customprofilefieldvalue WHERE user_profile_id = $1", [hamlet])).toBe(1);
    expect(await count("zerver_usermessage WHERE user_profile_id = $1", [othello])).toBeGreaterThan(0);
    // The bot: deactivated, still owned by the (placeholder) account.
    const bot = await one(env.db, "SELECT is_active, bot_owner_id FROM zerver_userprofile WHERE id = $1", [env.w.bot]);
    expect(bot).toEqual({ is_active: false, bot_owner_id: iago });
  });

  it("writes the audit rows Zulip writes and scrubs personal data", async () => {
    const { iago, bot } = env.w;
    const rows = await env.db.query("SELECT * FROM zerver_realmauditlog WHERE id > $1 ORDER BY id", [auditBefore]);
    const kinds = rows.map((r: any) => [r.event_type, Number(r.modified_user_id)]);
    const subsBefore = Number(
      (
        await one(env.db, "SELECT count(*) AS n FROM zerver_realmauditlog WHERE modified_user_id = $1 AND event_type IN (301, 302) AND id <= $2", [
          iago,
          auditBefore,
        ])
      ).n,
    );
    expect(kinds).toEqual([[103, bot], [103, iago], ...Array(subsBefore).fill([303, iago]), [106, iago]]);
    const lastMessage = Number((await one(env.db, "SELECT max(id) AS m FROM zerver_archivedmessage")).m);
    for (const r of rows.filter((x: any) => x.event_type === 303)) {
      expect(r.acting_user_id).toBeNull();
      expect(Number(r.event_last_message_id)).toBeGreaterThanOrEqual(lastMessage);
    }
    expect(rows.at(-1)).toMatchObject({ acting_user_id: null, extra_data: {}, backfilled: false, scrubbed: false });
    const scrubbed = await one(env.db, "SELECT extra_data, scrubbed FROM zerver_realmauditlog WHERE id = $1", [env.w.audit124]);
    expect(scrubbed).toEqual({ extra_data: {}, scrubbed: true });
  });

  it("logs the user out and clears the cache", async () => {
    expect(await ids(env.db, "SELECT 1 AS id FROM django_session WHERE session_key = $1", [env.w.sessions.iago])).toEqual([]);
    expect(await ids(env.db, "SELECT 1 AS id FROM django_session WHERE session_key = $1", [env.w.sessions.hamlet])).toEqual([1]);
    const client = await mc.connect();
    for (const k of [`user_profile_by_id:${env.w.iago}`, `user_profile_by_api_key:${env.w.iagoBefore.api_key}`, `active_user_ids:${REALM}`]) {
      expect(await client.get(`:1:${env.conf.cachePrefix}${k}`)).toBeNull();
    }
    await client.close();
  });

  it("changes no table do_delete_user does not write", async () => {
    const after = await snapshot(env.db);
    expect(changedTables(before, after)).toEqual(
      [
        "django_session",
        "zerver_archivedattachment",
        "zerver_archivedattachment_messages",
        "zerver_archivedmessage",
        "zerver_archivedreaction",
        "zerver_archivedsubmessage",
        "zerver_archivedusermessage",
        "zerver_archivetransaction",
        "zerver_attachment",
        "zerver_attachment_messages",
        "zerver_attachment_scheduled_messages",
        "zerver_draft",
        "zerver_externalauthid",
        "zerver_message",
        "zerver_missedmessageemailaddress",
        "zerver_reaction",
        "zerver_realmauditlog",
        "zerver_savedsnippet",
        "zerver_scheduledmessage",
        "zerver_stream",
        "zerver_submessage",
        "zerver_subscription",
        "zerver_usermessage",
        "zerver_userprofile",
      ].sort(),
    );
  });
});

describe("delete_user dry run and refusals (Zulip 12)", () => {
  let env: Env;
  beforeAll(async () => {
    env = await setup("zulip12_fresh", mc);
  }, 120_000);
  afterAll(async () => {
    await env?.db.drop();
    env?.conf.cleanup();
  });

  it("prints what manage.py prints and what would be deleted, and writes nothing", async () => {
    const before = await snapshot(env.db);
    const r = await env.cli(["delete_user", "-u", "iago@zulip.example.net,hamlet@zulip.example.net"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe("This was a dry run. Pass -f to actually delete.");
    const lines = r.stdout.split("\n");
    expect(lines[0]).toBe("iago@zulip.example.net has 1 active bots that will be deactivated as a result of the user's deletion.");
    expect(lines).toContain("hamlet@zulip.example.net has 0 active bots that will be deactivated as a result of the user's deletion.");
    expect(r.stdout).toContain(`placeholder "Deleted User ${env.w.iago}" <deleteduser${env.w.iago}@${HOST}>`);
    expect(r.stdout).toMatch(/zerver_message: 3\n/);
    const afterText = await snapshot(env.db);
    expect(changedTables(before, afterText)).toEqual([]);
    expect([...afterText].filter(([k]) => k.startsWith("seq:"))).toEqual([...before].filter(([k]) => k.startsWith("seq:")));
    const j = await env.cli(["delete_user", "-u", "iago@zulip.example.net", "--json"]);
    expect(j.exitCode).toBe(1);
    const doc = JSON.parse(j.stdout);
    expect(doc.dry_run).toBe(true);
    // manage.py's exit 1 for a dry run without -f: ok false, its message in error (issue 15).
    expect(doc).toMatchObject({ ok: false, exit_code: 1, error: "This was a dry run. Pass -f to actually delete.", error_code: "refused" });
    expect(doc.results[0]).toMatchObject({ status: "would_do", ok: true });
    const explicit = await env.cli(["delete_user", "-u", "iago@zulip.example.net", "--dry-run", "--json"]);
    expect(explicit.exitCode).toBe(0);
    expect(JSON.parse(explicit.stdout)).toMatchObject({ ok: true, exit_code: 0, dry_run: true, error: null });
    expect(doc.results[0].rows_deleted.zerver_message).toBe(3);
    expect(doc.results[0].rows_archived.zerver_archivedmessage).toBe(3);
    expect(doc.results[0].rows_deleted.zerver_attachment).toBe(2);
    expect(changedTables(before, await snapshot(env.db))).toEqual([]);
  });

  it("uses manage.py's lookup messages", async () => {
    const none = await env.cli(["delete_user", "-f"]);
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toBe("You have to pass either -u/--users or -a/--all-users.");
    const missing = await env.cli(["delete_user", "-r", "", "-u", "nobody@example.com", "-f"]);
    expect(missing.stderr).toBe("The realm ' 2' does not contain a user with email 'nobody@example.com'");
  });

  it("refuses with get_fake_email_domain's message when neither the host nor FAKE_EMAIL_DOMAIN makes valid addresses", async () => {
    // Zulip: InvalidFakeEmailDomainError("<FAKE_EMAIL_DOMAIN> is not a valid domain. Consider
    // setting the FAKE_EMAIL_DOMAIN setting."); FAKE_EMAIL_DOMAIN defaults to the host without port.
    const ipConf = makeConfDir({ db: { name: env.db.name }, memcached: mc, externalHost: "10.0.0.6:8443" });
    const fakeConf = makeConfDir({
      db: { name: env.db.name },
      memcached: mc,
      externalHost: "10.0.0.6",
      extraSettings: "FAKE_EMAIL_DOMAIN = 'fake.example.org'",
    });
    const badFakeConf = makeConfDir({
      db: { name: env.db.name },
      memcached: mc,
      externalHost: "10.0.0.6",
      extraSettings: "FAKE_EMAIL_DOMAIN = 'not_a_domain'",
    });
    try {
      const before = await snapshot(env.db);
      for (const args of [["-f"], []]) {
        const r = await runCli(["delete_user", "-u", "iago@zulip.example.net", ...args], { confDir: ipConf, db: env.db });
        expect(r.exitCode).toBe(1);
        expect(r.stderr).toBe("10.0.0.6 is not a valid domain. Consider setting the FAKE_EMAIL_DOMAIN setting.");
      }
      const bad = await runCli(["delete_user", "-u", "iago@zulip.example.net", "-f"], { confDir: badFakeConf, db: env.db });
      expect(bad.exitCode).toBe(1);
      expect(bad.stderr).toBe("not_a_domain is not a valid domain. Consider setting the FAKE_EMAIL_DOMAIN setting.");
      expect(bad.stdout).toBe("");
      expect(changedTables(before, await snapshot(env.db))).toEqual([]);
      const ok = await runCli(["delete_user", "-u", "iago@zulip.example.net"], { confDir: fakeConf, db: env.db });
      expect(ok.stderr).toBe("This was a dry run. Pass -f to actually delete.");
      expect(ok.stdout).toContain(`placeholder "Deleted User ${env.w.iago}" <deleteduser${env.w.iago}@fake.example.org>`);
    } finally {
      ipConf.cleanup();
      fakeConf.cleanup();
      badFakeConf.cleanup();
    }
  });

  it("refuses, writing nothing, when an unknown table references zerver_userprofile", async () => {
    await env.db.query(
      "CREATE TABLE zulip.zz_local_notes (id serial PRIMARY KEY, author_id integer REFERENCES zulip.zerver_userprofile (id) DEFERRABLE INITIALLY DEFERRED)",
    );
    await env.db.query("INSERT INTO zulip.zz_local_notes (author_id) VALUES ($1)", [env.w.iago]);
    const before = await snapshot(env.db);
    const r = await env.cli(["delete_user", "-u", "iago@zulip.example.net", "-f"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("zz_local_notes.author_id -> zerver_userprofile.id");
    expect(r.stderr).toContain("Nothing was changed.");
    expect(r.stdout).toBe("");
    expect(changedTables(before, await snapshot(env.db))).toEqual([]);
    await env.db.query("DROP TABLE zulip.zz_local_notes");
  });
});

// settings.py's FAKE_EMAIL_DOMAIN = '' stays '' (not "unset": no deport(EXTERNAL_HOST) default).
// do_delete_user's placeholder is Address(username=f"deleteduser{id}",
// domain=get_fake_email_domain(realm.host)).addr_spec: the realm host when bot@<host> is valid,
// FAKE_EMAIL_DOMAIN never consulted; otherwise Address(username="bot", domain="").addr_spec is
// "bot", which validate_email rejects, so InvalidFakeEmailDomainError(" is not a valid domain. …")
// (zerver/models/realms.py get_fake_email_domain; zerver/actions/users.py do_delete_user).
describe("delete_user with FAKE_EMAIL_DOMAIN = '' in settings.py (Zulip 12)", () => {
  let copy: ServerCopy;
  let user: number;
  beforeAll(async () => {
    copy = await startServerCopy({ template: "zulip12_fresh", memcached: mc, externalHost: HOST, extraSettings: "FAKE_EMAIL_DOMAIN = ''\n" });
    user = await copyUser(copy.db, "cordelia@zulip.example.net", "Cordelia");
  }, 120_000);
  afterAll(() => copy?.stop());

  it("refuses with the empty domain in Zulip's message, writing nothing, when the realm host is no email domain", async () => {
    const ipConf = makeConfDir({ db: { name: copy.db.name }, memcached: mc, externalHost: "10.0.0.6", extraSettings: "FAKE_EMAIL_DOMAIN = ''" });
    try {
      const before = await snapshot(copy.db);
      for (const args of [["-f"], []]) {
        const r = await runCli(["delete_user", "-u", "cordelia@zulip.example.net", ...args], { confDir: ipConf, db: copy.db });
        expect(r.exitCode).toBe(1);
        // Not "10.0.0.6 is not …": '' is not replaced by the host.
        expect(r.stderr).toBe(" is not a valid domain. Consider setting the FAKE_EMAIL_DOMAIN setting.");
        // With -f nothing is printed before the refusal (the dry run lists the bots first).
        if (args.length) expect(r.stdout).toBe("");
      }
      expect(changedTables(before, await snapshot(copy.db))).toEqual([]);
    } finally {
      ipConf.cleanup();
    }
  });

  it("writes the placeholder deleteduser<id>@<realm host> when the realm host is an email domain", async () => {
    const r = await runCli(["delete_user", "-u", "cordelia@zulip.example.net", "-f", "--json"], { db: copy.db, confDir: copy.conf });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const row = await one(copy.db, "SELECT email, delivery_email, full_name, is_active FROM zerver_userprofile WHERE id = $1", [user]);
    expect(row).toEqual({
      email: `deleteduser${user}@${HOST}`,
      delivery_email: `deleteduser${user}@${HOST}`,
      full_name: `Deleted User ${user}`,
      is_active: false,
    });
  });
});

for (const template of ["zulip11_fresh", "zulip10_fresh"] as const) {
  describe(`delete_user on ${template === "zulip11_fresh" ? "Zulip 11" : "Zulip 10"} (Django cascades, placeholder recreated)`, () => {
    let env: Env;
    let before: Snapshot;
    let result: CliResult;
    let json: any;
    beforeAll(async () => {
      env = await setup(template, mc);
      before = await snapshot(env.db);
      result = await env.cli(["delete_user", "-r", "2", "-u", "iago@zulip.example.net", "-f", "--json"]);
      json = JSON.parse(result.stdout);
    }, 120_000);
    afterAll(async () => {
      await env?.db.drop();
      env?.conf.cleanup();
    });

    it("succeeds", () => {
      expect(result.stderr).toBe("");
      expect(result.exitCode).toBe(0);
      expect(json.algorithm).toBe("recreate");
      expect(json.results[0].rows_set_null).toMatchObject({ "zerver_userprofile.bot_owner_id": 1, "zerver_stream.creator_id": 1 });
    });

    it("keeps every foreign key valid", async () => {
      await assertForeignKeysHold(env.db);
    });

    it("recreates the account as create_user() builds the placeholder", async () => {
      const { iago, iagoBefore } = env.w;
      const u = await one(env.db, "SELECT * FROM zerver_userprofile WHERE id = $1", [iago]);
      const rud = await one(env.db, "SELECT * FROM zerver_realmuserdefault WHERE realm_id = $1", [REALM]);
      expect(u.date_joined).toEqual(iagoBefore.date_joined);
      expect(u.last_login).toEqual(iagoBefore.date_joined);
      expect(u.uuid).not.toBe(iagoBefore.uuid);
      const display = rud.email_address_visibility === 1 ? `deleteduser${iago}@${HOST}` : `user${iago}@${HOST}`;
      expect(u).toMatchObject({
        delivery_email: `deleteduser${iago}@${HOST}`,
        email: display,
        full_name: `Deleted User ${iago}`,
        is_active: false,
        is_mirror_dummy: true,
        is_bot: false,
        bot_owner_id: null,
        role: 400,
        default_language: "en",
        tos_version: null,
        email_address_visibility: rud.email_address_visibility,
        enter_sends: rud.enter_sends,
        emojiset: rud.emojiset,
      });
      expect(u.recipient_id).not.toBe(env.w.personalRecipient);
      const rcp = await one(env.db, "SELECT type, type_id FROM zerver_recipient WHERE id = $1", [u.recipient_id]);
      expect(rcp).toEqual({ type: 1, type_id: iago });
      const subs = await env.db.query("SELECT recipient_id, active, is_user_active FROM zerver_subscription WHERE user_profile_id = $1 ORDER BY recipient_id", [
        iago,
      ]);
      expect(subs.map((s: any) => Number(s.recipient_id)).sort((a: number, b: number) => a - b)).toEqual(
        [Number(u.recipient_id), env.w.groupRecipient].sort((a, b) => a - b),
      );
      expect(subs.every((s: any) => s.active && !s.is_user_active)).toBe(true);
      const audit = await env.db.query(
        "SELECT event_type, acting_user_id, extra_data FROM zerver_realmauditlog WHERE modified_user_id = $1 OR acting_user_id = $1",
        [iago],
      );
      expect(audit).toEqual([{ event_type: 106, acting_user_id: null, extra_data: {} }]);
    });

    it("cascades the deletion as Django does", async () => {
      const { m, iago, att, reactions } = env.w;
      const live = await ids(env.db, "SELECT id FROM zerver_message WHERE id = ANY ($1::int[]) ORDER BY id", [Object.values(m)]);
      // His messages, and the 1:1 DM to his personal recipient, are gone.
      expect(live).toEqual([m.hamletChannel, m.hamletGroup, m.botChannel].sort((a, b) => a - b));
      expect(Number((await one(env.db, "SELECT count(*) AS n FROM zerver_archivedmessage")).n)).toBe(0);
      expect(await ids(env.db, "SELECT id FROM zerver_reaction WHERE id = ANY ($1::int[]) ORDER BY id", [Object.values(reactions)])).toEqual([
        reactions.othelloOnGroup,
      ]);
      expect(await ids(env.db, "SELECT id FROM zerver_attachment ORDER BY id")).toEqual([att.hamletOnIago, att.hamletShared, att.hamletScheduled]);
      expect(await ids(env.db, "SELECT id FROM zerver_customprofilefieldvalue ORDER BY id")).toEqual([env.w.cpf.hamlet]);
      const count = async (sql: string) => Number((await one(env.db, `SELECT count(*) AS n FROM ${sql}`, [iago])).n);
      for (const sql of [
        "zerver_usermessage WHERE user_profile_id = $1",
        "zerver_muteduser WHERE user_profile_id = $1 OR muted_user_id = $1",
        "zerver_alertword WHERE user_profile_id = $1",
        "zerver_usertopic WHERE user_profile_id = $1",
        "zerver_userpresence WHERE user_profile_id = $1",
        "zerver_userstatus WHERE user_profile_id = $1",
        "zerver_realmemoji WHERE author_id = $1",
        "zerver_draft WHERE user_profile_id = $1",
        "zerver_savedsnippet WHERE user_profile_id = $1",
        "zerver_externalauthid WHERE user_id = $1",
        "zerver_scheduledmessage WHERE sender_id = $1",
        "otp_static_staticdevice WHERE user_id = $1",
        "zerver_submessage WHERE $1 > 0",
        "zerver_missedmessageemailaddress WHERE $1 > 0",
        "otp_static_statictoken WHERE $1 > 0",
      ]) {
        expect([sql, await count(sql)]).toEqual([sql, 0]);
      }
      expect(Number((await one(env.db, "SELECT count(*) AS n FROM zerver_recipient WHERE id = $1", [env.w.personalRecipient])).n)).toBe(0);
      expect(await one(env.db, "SELECT creator_id FROM zerver_stream WHERE id = $1", [env.w.iagoChannel])).toEqual({ creator_id: null });
      expect(await one(env.db, "SELECT is_active, bot_owner_id FROM zerver_userprofile WHERE id = $1", [env.w.bot])).toEqual({
        is_active: false,
        bot_owner_id: null,
      });
      expect(Number((await one(env.db, "SELECT count(*) AS n FROM zerver_usermessage WHERE user_profile_id = $1", [env.w.othello])).n)).toBeGreaterThan(0);
    });

    it("changes only the tables the cascade reaches", async () => {
      const changed = changedTables(before, await snapshot(env.db));
      expect(changed).not.toContain("zerver_archivedmessage");
      expect(changed).not.toContain("zerver_realm");
      expect(changed).not.toContain("zerver_namedusergroup");
      expect(changed).toContain("zerver_userprofile");
      expect(changed).toContain("zerver_recipient");
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The real-time events, read from the test's RabbitMQ vhost, with the recipients computed here
// with plain SQL. do_delete_user starts with do_deactivate_user (its events: the bots' first,
// then the user's; peer_remove from 11.0, archived channels in it from 12.0, realm_bot updates
// before 12.0). Zulip 10/11 send nothing more. Zulip 12's do_delete_user_core then runs
// bulk_remove_subscriptions(..., skip_events_for_removed_user=True) on the user's channels:
// peer_remove once more (computed after the deactivation), and, in a realm that restricts user
// access, a realm_user remove to the channels' subscribers who lose sight of the user.

for (const [template, release] of [
  ["zulip12_fresh", 12],
  ["zulip11_fresh", 11],
  ["zulip10_fresh", 10],
] as [TemplateName, number][]) {
  describe(`delete_user's real-time events on Zulip ${release}`, () => {
    let server: ServerCopy;
    let reader: QueueReader;
    let groups: Record<string, number>;
    const q = (sql: string, params: unknown[] = []) => server.db.query(sql, params);
    const idsOf = async (sql: string, params: unknown[] = []) => (await q(sql, params)).map((r: any) => Number(r.id));
    const active = () => idsOf("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active ORDER BY id", [TEST_REALM]);
    const nonGuests = () => idsOf("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND role <> 600 ORDER BY id", [TEST_REALM]);
    const humanAdmins = () =>
      idsOf("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND NOT is_bot AND role IN (100, 200) ORDER BY id", [TEST_REALM]);
    /** Active subscribers (active, is_user_active) of a channel. */
    const subscribers = (channelId: number) =>
      idsOf(
        "SELECT s.user_profile_id AS id FROM zerver_subscription s JOIN zerver_stream st ON st.recipient_id = s.recipient_id WHERE st.id = $1 AND s.active AND s.is_user_active ORDER BY 1",
        [channelId],
      );
    /** Users who may see a private channel's subscribers: subscribers, admins, members (recursively) of its metadata-granting groups. */
    async function privatePeers(channelId: number): Promise<number[]> {
      const cols = (
        await q(
          "SELECT column_name FROM information_schema.columns WHERE table_schema = 'zulip' AND table_name = 'zerver_stream' AND column_name IN ('can_administer_channel_group_id', 'can_add_subscribers_group_id', 'can_subscribe_group_id')",
        )
      ).map((r: any) => r.column_name as string);
      const granted = cols.length
        ? await idsOf(
            `WITH RECURSIVE g(id) AS (${cols.map((c) => `SELECT ${c} FROM zerver_stream WHERE id = $1`).join(" UNION ")}
               UNION SELECT m.subgroup_id FROM zerver_groupgroupmembership m JOIN g ON m.supergroup_id = g.id)
             SELECT DISTINCT u.id FROM zerver_usergroupmembership m JOIN g ON g.id = m.user_group_id JOIN zerver_userprofile u ON u.id = m.user_profile_id WHERE u.is_active`,
            [channelId],
          )
        : [];
      const admins = await idsOf("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND role IN (100, 200)", [TEST_REALM]);
      return [...new Set([...(await subscribers(channelId)), ...admins, ...granted])].sort((a, b) => a - b);
    }
    const without = (ids: number[], ...drop: number[]) => ids.filter((x) => !drop.includes(x));
    const cli = (args: string[]) => runCli(args, { confDir: server.conf, db: server.db });
    async function subscribe(userId: number, channelId: number): Promise<void> {
      const [src] = await q(
        "SELECT s.id FROM zerver_subscription s JOIN zerver_stream st ON st.recipient_id = s.recipient_id WHERE st.id = $1 ORDER BY s.id LIMIT 1",
        [channelId],
      );
      await copyRow(server.db, "zerver_subscription", Number(src.id), { user_profile_id: "$1", active: "true", is_user_active: "true" }, [userId]);
      const hasCount = (await q("SELECT 1 FROM information_schema.columns WHERE table_name = 'zerver_stream' AND column_name = 'subscriber_count'")).length > 0;
      if (hasCount) await q("UPDATE zerver_stream SET subscriber_count = subscriber_count + 1 WHERE id = $1", [channelId]);
    }
    async function deleteUser(email: string) {
      const r = await cli(["delete_user", "-r", String(TEST_REALM), "-u", email, "-f", "--json"]);
      expect({ exit: r.exitCode, stderr: r.stderr }).toEqual({ exit: 0, stderr: "" });
      return JSON.parse(r.stdout);
    }
    const peerRemove = (streamIds: number[], userId: number, users: number[]) => ({
      event: { type: "subscription", op: "peer_remove", stream_ids: streamIds, user_ids: [userId] },
      users,
    });

    beforeAll(async () => {
      server = await startServerCopy({ template, externalHost: HOST });
      reader = await QueueReader.open();
      groups = await groupIds(server.db);
    });
    afterAll(async () => {
      await reader?.close();
      await server?.stop();
    });
    beforeEach(async () => {
      await reader.purge("notify_tornado", "deferred_work", "missedmessage_mobile_notifications");
    });

    it("a private, a web-public and an archived channel, and a bot: every event in order", async () => {
      const u = await addUser(server.db, { role: 400 });
      const bot = await addUser(server.db, { role: 400, bot: true, botOwnerId: u.id });
      for (const c of [1, 2, 3]) await subscribe(u.id, c);
      await q("UPDATE zerver_stream SET is_web_public = (id = 1), invite_only = (id = 2), deactivated = (id = 3) WHERE id IN (1, 2, 3)");
      let doc: any;
      let got: any[];
      try {
        doc = await deleteUser(u.email);
        got = sortedUsers(await reader.drain());
        expect(
          await idsOf(
            "SELECT DISTINCT p.role AS id FROM zerver_subscription s JOIN zerver_stream st ON st.recipient_id = s.recipient_id JOIN zerver_userprofile p ON p.id = s.user_profile_id WHERE st.id = 3 AND s.active AND s.is_user_active",
          ),
        ).not.toContain(600);
        const everyone = await active();
        const expected: any[] = [
          // The bot's deactivation (u still active then).
          { event: { type: "realm_user", op: "update", person: { user_id: bot.id, is_active: false } }, users: [...everyone, u.id].sort((a, b) => a - b) },
        ];
        if (release < 12) {
          expected.push({
            event: { type: "realm_bot", op: "update", bot: { user_id: bot.id, is_active: false } },
            users: [...(await humanAdmins()), u.id].sort((a, b) => a - b),
          });
        }
        // The user's: private channel 2 on its own, web-public 1 to everyone, archived 3 (12.0+) to the non-guests.
        const peerRemoves = [
          peerRemove([2], u.id, without(await privatePeers(2), u.id)),
          peerRemove([1], u.id, without(everyone, u.id)),
          ...(release >= 12 ? [peerRemove([3], u.id, without(await nonGuests(), u.id))] : []),
        ];
        if (release >= 11) expected.push(...peerRemoves);
        expected.push({ event: { type: "realm_user", op: "update", person: { user_id: u.id, is_active: false } }, users: everyone });
        // Zulip 12's bulk_remove_subscriptions: the same peer_remove events once more.
        if (release >= 12) expected.push(...peerRemoves);
        expect(got).toEqual(expected);
      } finally {
        await q("UPDATE zerver_stream SET is_web_public = false, invite_only = false, deactivated = false WHERE id IN (1, 2, 3)");
      }
      expect(doc.events).toMatchObject({ ok: true, published: got.length });
      // The placeholder's channel subscriptions are gone (12.x) or it never had them (10.x/11.x).
      expect(
        await idsOf("SELECT s.id FROM zerver_subscription s JOIN zerver_recipient r ON r.id = s.recipient_id WHERE s.user_profile_id = $1 AND r.type = 2", [
          u.id,
        ]),
      ).toEqual([]);
    });

    it("no channels: only the deactivation's realm_user update", async () => {
      const u = await addUser(server.db, { role: 400 });
      await deleteUser(u.email);
      expect(sortedUsers(await reader.drain())).toEqual([
        { event: { type: "realm_user", op: "update", person: { user_id: u.id, is_active: false } }, users: await active() },
      ]);
    });

    it(`150 messages opening a channel: ${release >= 12 ? "archived per 100 with the realm, delete_message events, first_message_id moved, push notifications removed" : "deleted with the account, nothing sent"}`, async () => {
      const u = await addUser(server.db, { role: 400 });
      const other = await addUser(server.db, { role: 400 });
      const late = await addUser(server.db, { role: 400 });
      const name = `opened by ${u.id}`;
      const ch = await copyRow(
        server.db,
        "zerver_stream",
        1,
        {
          name: "$1",
          date_created: "now()",
          recipient_id: "NULL",
          first_message_id: "NULL",
          subscriber_count: "3", // its three subscribers, below (where the column exists)
          creator_id: "NULL",
          invite_only: "false",
          is_web_public: "false",
          history_public_to_subscribers: "true",
          deactivated: "false",
        },
        [name],
      );
      const [rcp] = await q("INSERT INTO zerver_recipient (type_id, type) VALUES ($1, 2) RETURNING id", [ch]);
      await q("UPDATE zerver_stream SET recipient_id = $2 WHERE id = $1", [ch, rcp.id]);
      for (const id of [u.id, other.id, late.id]) {
        await q(
          `INSERT INTO zerver_subscription (active, is_user_active, is_muted, color, pin_to_top, recipient_id, user_profile_id)
           VALUES (true, true, false, '#c2c2c2', false, $1, $2)`,
          [rcp.id, id],
        );
      }
      // Topics "Alpha" and "ALPHA": one conversation (topics are case-insensitive). Other has a
      // push notification for the first one, and a registered device.
      const mine: number[] = [];
      for (let i = 0; i < 150; i++) {
        mine.push(
          await insertMessage(server.db, u.id, Number(rcp.id), true, [u.id, other.id], `m${i}`, {
            topic: i % 2 ? "Alpha" : "ALPHA",
            flags: (userId) => (i === 0 && userId === other.id ? 4096 : 0),
          }),
        );
      }
      const reply = await insertMessage(server.db, other.id, Number(rcp.id), true, [u.id, other.id], "later");
      await q("UPDATE zerver_stream SET first_message_id = $2 WHERE id = $1", [ch, mine[0]]);
      await q("INSERT INTO zerver_pushdevicetoken (kind, token, last_updated, ios_app_id, user_id) VALUES (1, $2, now(), NULL, $1)", [
        other.id,
        `tok${other.id}`,
      ]);
      const txBefore = Number((await q("SELECT coalesce(max(id), 0) AS m FROM zerver_archivetransaction"))[0].m);
      const started = new Date();
      const doc = await deleteUser(u.email);
      const finished = new Date();
      const got = sortedUsers(await reader.drain()).filter((n) => n.event.type === "delete_message" || n.event.property === "first_message_id");
      const jobs = (await reader.drainRaw("missedmessage_mobile_notifications")).map((m) => m.body);
      const txs = await q("SELECT id, type, realm_id, timestamp FROM zerver_archivetransaction WHERE id > $1 ORDER BY id", [txBefore]);
      const [{ first_message_id: first }] = await q("SELECT first_message_id FROM zerver_stream WHERE id = $1", [ch]);
      expect(await idsOf("SELECT id FROM zerver_message WHERE id = ANY ($1::int[])", [mine])).toEqual([]);
      if (release < 12) {
        expect({ got, jobs, txs, first }).toEqual({ got: [], jobs: [], txs: [], first: mine[0] });
        return;
      }
      // Archived 100 at a time, in ArchiveTransactions of the user's realm, each stamped when made.
      expect(txs.map((t: any) => [t.type, t.realm_id])).toEqual([
        [2, TEST_REALM],
        [2, TEST_REALM],
      ]);
      for (const t of txs) {
        expect(t.timestamp.getTime()).toBeGreaterThanOrEqual(started.getTime());
        expect(t.timestamp.getTime()).toBeLessThanOrEqual(finished.getTime());
      }
      expect(txs[1].timestamp.getTime()).toBeGreaterThanOrEqual(txs[0].timestamp.getTime());
      const perTx = await q(
        "SELECT archive_transaction_id AS t, array_agg(id ORDER BY id) AS ids FROM zerver_archivedmessage WHERE id = ANY ($1::int[]) GROUP BY 1 ORDER BY 1",
        [mine],
      );
      expect(perTx.map((r: any) => [Number(r.t), r.ids.map(Number)])).toEqual([
        [Number(txs[0].id), mine.slice(0, 100)],
        [Number(txs[1].id), mine.slice(100)],
      ]);
      // Per slice: check_update_first_message_id's update (the slice held the first message),
      // then the slice's delete_message event, to the subscribers and the non-guests who got
      // the messages: Other and Late (the user's subscription is gone).
      const users = [other.id, late.id].sort((a, b) => a - b);
      const moved = (value: number) => ({
        event: { type: "stream", op: "update", property: "first_message_id", value, stream_id: ch, name },
        users,
      });
      const deleted = (ids: number[]) => ({
        event: { type: "delete_message", message_ids: ids, stream_id: ch, topic: "alpha", message_type: "stream" },
        users,
      });
      expect(got).toEqual([moved(mine[100]), deleted(mine.slice(0, 100)), moved(reply), deleted(mine.slice(100))]);
      expect(Number(first)).toBe(reply);
      // do_clear_mobile_push_notifications_for_ids: Other's notification of the first message.
      expect(jobs).toEqual([{ type: "remove", user_profile_id: other.id, message_ids: [mine[0]] }]);
      expect(doc.events).toMatchObject({ ok: true, jobs: 1 });
    });

    describe("a realm where guests cannot see everyone (can_access_all_users_group = role:members)", () => {
      beforeAll(async () => {
        await q("UPDATE zerver_realm SET can_access_all_users_group_id = $1 WHERE id = $2", [groups["role:members"], TEST_REALM]);
      });
      afterAll(async () => {
        await q("UPDATE zerver_realm SET can_access_all_users_group_id = $1 WHERE id = $2", [groups["role:everyone"], TEST_REALM]);
      });

      it("guests subscribed to the user's channel lose sight of the user: realm_user remove again from 12.0", async () => {
        const guest = await addUser(server.db, { role: 600 });
        const u = await addUser(server.db, { role: 400 });
        await subscribe(u.id, 3);
        await subscribe(guest.id, 3);
        await deleteUser(u.email);
        const got = sortedUsers(await reader.drain());
        const withAccess = await nonGuests();
        const others = without(await active(), ...withAccess);
        expect(others).toContain(guest.id);
        const guestPeers = await idsOf(
          "SELECT s.user_profile_id AS id FROM zerver_subscription s JOIN zerver_stream st ON st.recipient_id = s.recipient_id JOIN zerver_userprofile p ON p.id = s.user_profile_id WHERE st.id = 3 AND s.active AND s.is_user_active AND p.role = 600 ORDER BY 1",
        );
        expect(guestPeers).toContain(guest.id);
        // Channel 3 has a guest subscriber: its own peer_remove, to the non-guests and its subscribers.
        const peers = peerRemove(
          [3],
          u.id,
          [...new Set([...withAccess, ...(await subscribers(3))])].sort((a, b) => a - b),
        );
        const removed = { event: { type: "realm_user", op: "remove", person: { user_id: u.id, full_name: "Unknown user" } }, users: guestPeers };
        const expected: any[] = [];
        if (release >= 11) expected.push(peers);
        expected.push({ event: { type: "realm_user", op: "update", person: { user_id: u.id, is_active: false } }, users: withAccess });
        for (const g of [groups["role:members"], groups["role:fullmembers"]].sort((a, b) => a - b)) {
          expected.push({ event: { type: "user_group", op: "remove_members", group_id: g, user_ids: [u.id] }, users: others });
        }
        expected.push(removed);
        if (release >= 12) expected.push(peers, removed);
        expect(got).toEqual(expected);
      });
    });
  });
}

describe("CascadeDeletion (src/db/ondelete.ts)", () => {
  it("with no roots, or roots that match nothing: a plan of nothing, and its temp tables dropped together", async () => {
    const db = await createDatabase({ template: "zulip12_fresh" });
    try {
      const fks = await catalogForeignKeys(db.client);
      await db.query("BEGIN");
      const empty = new CascadeDeletion(db.client, fks);
      expect(await empty.execute()).toEqual({ deleted: {}, setNull: {} });
      await empty.dispose();
      const none = new CascadeDeletion(db.client, fks);
      await none.addRoots("zerver_draft", "SELECT id FROM zerver_draft WHERE user_profile_id = $1", [-1]);
      await none.addRoots("zerver_savedsnippet", "SELECT id FROM zerver_savedsnippet WHERE user_profile_id = $1", [-1]);
      expect(await none.execute()).toEqual({ deleted: {}, setNull: {} });
      const temps = async () => (await db.query("SELECT count(*)::int AS n FROM pg_class WHERE relname LIKE 'zm_del%' AND relpersistence = 't'"))[0].n;
      expect(await temps()).toBeGreaterThanOrEqual(2);
      await none.dispose();
      expect(await temps()).toBe(0);
      await db.query("ROLLBACK");
    } finally {
      await db.drop();
    }
  });
});
