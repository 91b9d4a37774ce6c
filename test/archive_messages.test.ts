// archive_messages through the built CLI against real Zulip databases with memcached, checking what
// zerver/tests/test_retention.py checks: which messages each policy archives (the realm's
// message_retention_days for its channels and direct messages, a channel's own value, -1 = never,
// a channel with a policy in a realm without one), batches of 100 channel messages per
// ArchiveTransaction, the UserMessage / Reaction / SubMessage / Attachment rows moved with them,
// expired attachments deleted, and restore_data_from_archive (Zulip's restore SQL, replayed here)
// bringing back exactly the original rows; then clean_archived_data's vacuuming (protected
// transactions kept), the cron lock, and the organizations due for scrubbing.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createChannel } from "../src/zulip/actions/create-channel.js";
import { createUser } from "../src/zulip/actions/create-user.js";
import { sendMessage } from "../src/zulip/actions/message-send.js";
import { Db } from "../src/db/db.js";
import { catalogForeignKeys } from "../src/db/ondelete.js";
import { planMessageCascade } from "../src/zulip/actions/retention.js";
import { seedBulkMessages } from "../src/dev/seed.js";
import { runCli, type CliResult } from "./helpers/cli.js";
import type { TemplateName, TestDatabase } from "./helpers/pg.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";
import { requireTool } from "./helpers/tools.js";

const REALM = 2;
const HOST = "zulip.example.net";
const DAY = 86400_000;

interface World {
  iago: number;
  hamlet: number;
  retained: number;
  forever: number;
  short: number;
  internalChannel: number;
  expiring: number[]; // ids of the messages the policies expire
  keep: number[]; // ids of messages that must stay
  a1: number; // attachment only on an expiring message
  a2: number; // attachment on an expiring and a kept message
  scheduled: number; // a scheduled message delivered as an expiring message
}

async function buildWorld(db: TestDatabase): Promise<World> {
  const c = db.client;
  await c.query("BEGIN");
  const mk = async (email: string, name: string) => (await createUser(c, REALM, { email, fullName: name, externalHost: HOST })).id;
  const iago = await mk("iago@zulip.example.net", "Iago");
  const hamlet = await mk("hamlet@zulip.example.net", "Hamlet");
  const channel = async (name: string) => (await createChannel(c, REALM, { name, creatorId: iago, subscribers: [iago, hamlet] })).id;
  const retained = await channel("retained");
  const forever = await channel("forever");
  const short = await channel("short");
  // The fixture's own messages are as old as the fixture: make them recent, so that only the
  // messages aged below expire.
  await c.query("UPDATE zerver_message SET date_sent = now()");
  await c.query("UPDATE zerver_realm SET message_retention_days = 30 WHERE id = $1", [REALM]);
  await c.query("UPDATE zerver_stream SET message_retention_days = -1 WHERE id = $1", [forever]);
  await c.query("UPDATE zerver_stream SET message_retention_days = 5 WHERE id = $1", [short]);
  const aged = async (id: number, days: number) =>
    c.query("UPDATE zerver_message SET date_sent = now() - make_interval(days => $2::int) WHERE id = $1", [id, days]);
  const send = async (to: any, content: string, days: number) => {
    const id = (await sendMessage(c, { senderId: iago, to, content })).id;
    if (days) await aged(id, days);
    return id;
  };
  // 150 old channel messages: two archive transactions (100 + 50).
  const bulk = await seedBulkMessages(c, { channelId: retained, count: 150, senderIds: [iago], start: new Date(Date.now() - 45 * DAY), intervalSeconds: 1 });
  const expiring: number[] = [];
  for (let id = bulk.firstId; id <= bulk.lastId; id++) expiring.push(id);
  const oldWithExtras = await send({ channelId: retained, topic: "t" }, "old, with a reaction, a widget and files", 40);
  expiring.push(oldWithExtras);
  const keep: number[] = [];
  keep.push(await send({ channelId: retained, topic: "t" }, "recent", 2));
  keep.push(await send({ channelId: forever, topic: "t" }, "old but kept forever", 400));
  expiring.push(await send({ channelId: short, topic: "t" }, "10 days old, 5-day channel", 10));
  keep.push(await send({ channelId: short, topic: "t" }, "1 day old, 5-day channel", 1));
  expiring.push(await send({ userIds: [hamlet] }, "old DM", 40));
  keep.push(await send({ userIds: [hamlet] }, "new DM", 1));
  await c.query(
    "INSERT INTO zerver_reaction (emoji_name, reaction_type, emoji_code, message_id, user_profile_id) VALUES ('tada', 'unicode_emoji', '1f389', $1, $2)",
    [oldWithExtras, hamlet],
  );
  await c.query("INSERT INTO zerver_submessage (msg_type, content, message_id, sender_id) VALUES ('widget', '{}', $1, $2)", [oldWithExtras, iago]);
  const attachment = async (name: string) =>
    Number(
      (
        await c.query(
          `INSERT INTO zerver_attachment (file_name, path_id, create_time, size, content_type, is_realm_public, is_web_public, owner_id, realm_id)
           VALUES ($1, $2, now() - interval '41 days', 10, 'text/plain', true, false, $3, $4) RETURNING id`,
          [name, `${REALM}/ab/${name}`, iago, REALM],
        )
      ).rows[0].id,
    );
  // A scheduled message delivered as the old message (ScheduledMessage.delivered_message: CASCADE),
  // with an attachment link of its own (cascades from the scheduled message).
  const sm = await c.query(
    `INSERT INTO zerver_scheduledmessage (subject, content, rendered_content, scheduled_timestamp, read_by_sender, delivered, has_attachment, failed,
                                          delivery_type, realm_id, recipient_id, sender_id, sending_client_id, stream_id, request_timestamp, delivered_message_id)
     SELECT subject, content, rendered_content, date_sent, true, true, true, false, 1, realm_id, recipient_id, sender_id, sending_client_id, NULL, date_sent, id
       FROM zerver_message WHERE id = $1 RETURNING id`,
    [oldWithExtras],
  );
  const scheduled = Number(sm.rows[0].id);
  const a1 = await attachment("only-old.txt");
  const a2 = await attachment("old-and-new.txt");
  await c.query("INSERT INTO zerver_attachment_messages (attachment_id, message_id) VALUES ($1, $3), ($2, $3), ($2, $4)", [a1, a2, oldWithExtras, keep[0]]);
  await c.query("INSERT INTO zerver_attachment_scheduled_messages (attachment_id, scheduledmessage_id) VALUES ($1, $2)", [a2, scheduled]);
  // A channel with its own policy in a realm without one (the internal realm).
  const internal = Number((await c.query("SELECT id FROM zerver_realm WHERE id <> $1 ORDER BY id LIMIT 1", [REALM])).rows[0].id);
  const bot = Number((await c.query("SELECT id FROM zerver_userprofile WHERE realm_id = $1 ORDER BY id LIMIT 1", [internal])).rows[0].id);
  const internalChannel = (await createChannel(c, internal, { name: "internal retention", creatorId: bot, subscribers: [bot] })).id;
  await c.query("UPDATE zerver_stream SET message_retention_days = 3 WHERE id = $1", [internalChannel]);
  const im = (await sendMessage(c, { senderId: bot, to: { channelId: internalChannel, topic: "t" }, content: "internal, old" })).id;
  await aged(im, 4);
  expiring.push(im);
  await c.query("COMMIT");
  return { iago, hamlet, retained, forever, short, internalChannel, expiring, keep, a1, a2, scheduled };
}

type Rows = Record<string, any[]>;

/** The test database's client as the library's Db (catalog lookups only). */
async function connectDb(db: TestDatabase): Promise<Db> {
  return new Db(db.client, { hosts: [], port: 0, database: db.name, user: "zulip", sslmode: "disable", readWrite: false, describe: "" });
}

/** The rows archiving moves, for the given message ids, in a fixed order (search_tsvector aside). */
async function snapshot(db: TestDatabase, ids: number[]): Promise<Rows> {
  const cols = (
    await db.query<any>(
      "SELECT column_name FROM information_schema.columns WHERE table_schema = 'zulip' AND table_name = 'zerver_message' AND column_name <> 'search_tsvector' ORDER BY 1",
    )
  ).map((r) => r.column_name);
  return {
    messages: await db.query(`SELECT ${cols.join(", ")} FROM zerver_message WHERE id = ANY($1::int[]) ORDER BY id`, [ids]),
    user_messages: await db.query("SELECT * FROM zerver_usermessage WHERE message_id = ANY($1::int[]) ORDER BY id", [ids]),
    reactions: await db.query("SELECT * FROM zerver_reaction WHERE message_id = ANY($1::int[]) ORDER BY id", [ids]),
    submessages: await db.query("SELECT * FROM zerver_submessage WHERE message_id = ANY($1::int[]) ORDER BY id", [ids]),
    attachment_links: await db.query("SELECT * FROM zerver_attachment_messages WHERE message_id = ANY($1::int[]) ORDER BY id", [ids]),
  };
}

/** restore_data_from_archive(transaction), as zerver/lib/retention.py runs it. */
async function zulipRestore(db: TestDatabase, txId: number): Promise<void> {
  const cols = async (table: string, exclude: string[] = []) =>
    (
      await db.query<any>("SELECT column_name FROM information_schema.columns WHERE table_schema = 'zulip' AND table_name = $1 ORDER BY ordinal_position", [
        table,
      ])
    )
      .map((r) => r.column_name as string)
      .filter((c) => !exclude.includes(c));
  const c = db.client;
  await c.query("BEGIN");
  const m = await cols("zerver_message", ["search_tsvector"]);
  await c.query(
    `INSERT INTO zerver_message (${m.join(", ")}) SELECT ${m.map((x) => `zerver_archivedmessage.${x}`).join(", ")} FROM zerver_archivedmessage WHERE archive_transaction_id = $1 ON CONFLICT (id) DO NOTHING`,
    [txId],
  );
  for (const [t, a] of [
    ["zerver_reaction", "zerver_archivedreaction"],
    ["zerver_submessage", "zerver_archivedsubmessage"],
    ["zerver_usermessage", "zerver_archivedusermessage"],
  ]) {
    const k = await cols(t!);
    await c.query(
      `INSERT INTO ${t} (${k.join(", ")}) SELECT ${k.map((x) => `${a}.${x}`).join(", ")} FROM ${a} INNER JOIN zerver_archivedmessage ON ${a}.message_id = zerver_archivedmessage.id
        WHERE zerver_archivedmessage.archive_transaction_id = $1 ON CONFLICT (id) DO NOTHING`,
      [txId],
    );
  }
  const at = await cols("zerver_attachment");
  await c.query(
    `INSERT INTO zerver_attachment (${at.join(", ")}) SELECT ${at.map((x) => `zerver_archivedattachment.${x}`).join(", ")} FROM zerver_archivedattachment
       INNER JOIN zerver_archivedattachment_messages ON zerver_archivedattachment_messages.archivedattachment_id = zerver_archivedattachment.id
       INNER JOIN zerver_archivedmessage ON zerver_archivedattachment_messages.archivedmessage_id = zerver_archivedmessage.id
      WHERE zerver_archivedmessage.archive_transaction_id = $1 GROUP BY zerver_archivedattachment.id ON CONFLICT (id) DO NOTHING`,
    [txId],
  );
  await c.query(
    `INSERT INTO zerver_attachment_messages (id, attachment_id, message_id)
       SELECT zerver_archivedattachment_messages.id, zerver_archivedattachment_messages.archivedattachment_id, zerver_archivedattachment_messages.archivedmessage_id
         FROM zerver_archivedattachment_messages INNER JOIN zerver_archivedmessage ON zerver_archivedattachment_messages.archivedmessage_id = zerver_archivedmessage.id
        WHERE zerver_archivedmessage.archive_transaction_id = $1 ON CONFLICT (id) DO NOTHING`,
    [txId],
  );
  await c.query("UPDATE zerver_archivetransaction SET restored = true WHERE id = $1", [txId]);
  await c.query("COMMIT");
}

describe.each(["zulip12_fresh", "zulip10_fresh"] as TemplateName[])("archive_messages on %s", (template) => {
  let copy: ServerCopy;
  let db: TestDatabase;
  let w: World;
  let lockDir: string;
  let before: Rows;
  let first: CliResult;
  let doc: any;
  const cli = (args: string[]): Promise<CliResult> => runCli(["archive_messages", ...args], { db, confDir: copy.conf, env: { ZULIP_LOCK_DIR: lockDir } });
  const ids = async (sql: string, params: unknown[] = []) => (await db.query<any>(sql, params)).map((r) => Number(r.id));

  beforeAll(async () => {
    copy = await startServerCopy({ template, externalHost: HOST, client: true });
    db = copy.db;
    lockDir = fs.mkdtempSync(path.join(os.tmpdir(), "zm-retention-locks-"));
    w = await buildWorld(db);
    before = await snapshot(db, w.expiring);
    await copy.client!.set(`:1:${copy.conf.cachePrefix}realm_used_upload_space:${REALM}`, "cached");
    first = await cli(["--json"]);
    doc = JSON.parse(first.stdout);
  }, 120_000);
  afterAll(async () => {
    fs.rmSync(lockDir, { recursive: true, force: true });
    await copy?.stop();
  });

  it("archives exactly the messages past their policy, and keeps the rest", async () => {
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stderr).toBe("");
    const live = await ids("SELECT id FROM zerver_message WHERE id = ANY($1::int[])", [[...w.expiring, ...w.keep]]);
    expect(live.sort((a, b) => a - b)).toEqual([...w.keep].sort((a, b) => a - b));
    const archived = await ids("SELECT id FROM zerver_archivedmessage ORDER BY id");
    expect(archived).toEqual([...w.expiring].sort((a, b) => a - b));
    expect(doc.archived).toMatchObject({
      channel_messages_count: 153,
      direct_messages_count: 1,
      reactions_count: 1,
      submessages_count: 1,
      archived_attachments_count: 2,
      attachments_deleted_count: 1,
    });
  });

  it("one RETENTION_POLICY_BASED ArchiveTransaction per batch of 100 channel messages, with its realm", async () => {
    const txs = await db.query<any>("SELECT id, type, realm_id, restored, protect_from_deletion FROM zerver_archivetransaction ORDER BY id");
    expect(txs.map((t) => Number(t.id))).toEqual(doc.archived.transaction_ids);
    // Realm by realm (the internal realm first), channel by channel, then direct messages:
    // the internal realm's channel: 1; retained: 151 -> 100 + 51; short: 1; DMs: 1.
    expect(txs).toHaveLength(5);
    for (const t of txs) expect(t).toMatchObject({ type: 1, restored: false, protect_from_deletion: false });
    const perTx = await db.query<any>("SELECT archive_transaction_id AS t, count(*)::int AS n FROM zerver_archivedmessage GROUP BY 1 ORDER BY 1");
    expect(perTx.map((r) => r.n)).toEqual([1, 100, 51, 1, 1]);
    expect(Number(txs[0].realm_id)).not.toBe(REALM);
    for (const t of txs.slice(1)) expect(Number(t.realm_id)).toBe(REALM);
  });

  it("moves the UserMessage, Reaction, SubMessage and attachment rows; deletes the attachment no live message uses", async () => {
    for (const [live, arch] of [
      ["zerver_usermessage", "zerver_archivedusermessage"],
      ["zerver_reaction", "zerver_archivedreaction"],
      ["zerver_submessage", "zerver_archivedsubmessage"],
    ]) {
      expect(await db.query(`SELECT 1 FROM ${live} WHERE message_id = ANY($1::int[])`, [w.expiring])).toEqual([]);
      expect((await db.query(`SELECT 1 FROM ${arch}`)).length).toBeGreaterThan(0);
    }
    expect(await ids("SELECT id FROM zerver_attachment WHERE id = ANY($1::bigint[]) ORDER BY id", [[w.a1, w.a2]])).toEqual([w.a2]);
    expect(await ids("SELECT id FROM zerver_archivedattachment ORDER BY id")).toEqual([w.a1, w.a2].sort((a, b) => a - b));
    // Attachment's post_delete: the owner's realm's used-upload-space entry is flushed.
    expect(await copy.client!.get(`:1:${copy.conf.cachePrefix}realm_used_upload_space:${REALM}`)).toBeNull();
    expect(doc.cache).toMatchObject({ ok: true });
  });

  it("deletes what Django's cascade from Message deletes (a delivered scheduled message and its attachment links)", async () => {
    expect(await db.query("SELECT 1 FROM zerver_scheduledmessage WHERE id = $1", [w.scheduled])).toEqual([]);
    expect(await db.query("SELECT 1 FROM zerver_attachment_scheduled_messages WHERE scheduledmessage_id = $1", [w.scheduled])).toEqual([]);
    // ... along the planned cascade, not the generic engine's fallback.
    const edges = await planMessageCascade(await connectDb(db), await catalogForeignKeys(db.client));
    expect(edges).not.toBeNull();
    expect(edges!.map((e) => `${e.table}.${e.column}`)).toEqual(
      expect.arrayContaining([
        "zerver_usermessage.message_id",
        "zerver_scheduledmessage.delivered_message_id",
        "zerver_attachment_scheduled_messages.scheduledmessage_id",
      ]),
    );
  });

  it("a second run finds nothing", async () => {
    const r = await cli([]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toBe(
      "Archived 0 messages (0 in channels, 0 direct) in 0 archive transactions; deleted 0 archive transactions older than 30 days and 0 expired attachments.",
    );
  });

  it("refuses to run while Zulip's cron job holds the lock", async () => {
    const lockFile = path.join(lockDir, "archive_messages.lock");
    const holder = spawn(requireTool("flock"), [lockFile, "sh", "-c", "echo held; exec cat >/dev/null"], { stdio: ["pipe", "pipe", "inherit"] });
    await new Promise<void>((resolve) => holder.stdout!.once("data", () => resolve()));
    try {
      const r = await cli([]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toBe(`Lock ${lockFile} is unavailable; exiting.`);
    } finally {
      holder.stdin!.end();
      await new Promise((resolve) => holder.once("close", resolve));
    }
  });

  it("Zulip's restore_data_from_archive brings back exactly the original rows", async () => {
    for (const t of doc.archived.transaction_ids) await zulipRestore(db, t);
    const after = await snapshot(db, w.expiring);
    expect(after.messages).toEqual(before.messages);
    expect(after.user_messages).toEqual(before.user_messages);
    expect(after.reactions).toEqual(before.reactions);
    expect(after.submessages).toEqual(before.submessages);
    expect(after.attachment_links).toEqual(before.attachment_links);
    expect(await ids("SELECT id FROM zerver_attachment WHERE id = ANY($1::bigint[]) ORDER BY id", [[w.a1, w.a2]])).toEqual([w.a1, w.a2].sort((a, b) => a - b));
  });

  it("clean_archived_data vacuums transactions older than ARCHIVED_DATA_VACUUMING_DELAY_DAYS with their archived rows, except protected ones", async () => {
    const [, t1, t2, t3] = doc.archived.transaction_ids as number[]; // 100, 51 and 1 messages
    await db.query("UPDATE zerver_archivetransaction SET timestamp = now() - interval '31 days' WHERE id = ANY($1::bigint[])", [[t1, t2]]);
    await db.query("UPDATE zerver_archivetransaction SET protect_from_deletion = true WHERE id = $1", [t2]);
    await db.query("UPDATE zerver_archivetransaction SET timestamp = now() - interval '20 days' WHERE id = $1", [t3]);
    const r = await cli(["--json"]);
    expect(r.exitCode, r.stderr).toBe(0);
    // The restored messages are expired again: archived anew in new transactions.
    const d = JSON.parse(r.stdout);
    expect(d.clean_archived_data).toEqual({ vacuuming_delay_days: 30, transactions_deleted_count: 1, archived_messages_deleted_count: 100 });
    const left = await ids("SELECT id FROM zerver_archivetransaction ORDER BY id");
    expect(left).not.toContain(t1);
    expect(left).toContain(t2);
    expect(left).toContain(t3);
    expect(await db.query("SELECT 1 FROM zerver_archivedmessage WHERE archive_transaction_id = $1", [t1])).toEqual([]);
    // A 10-day vacuuming delay from settings.py reaches the third one.
    const r2 = await runCli(["archive_messages", "--json", "--setting", "ARCHIVED_DATA_VACUUMING_DELAY_DAYS=10"], {
      db,
      confDir: copy.conf,
      env: { ZULIP_LOCK_DIR: lockDir },
    });
    expect(JSON.parse(r2.stdout).clean_archived_data.transactions_deleted_count).toBeGreaterThanOrEqual(1);
    expect(await ids("SELECT id FROM zerver_archivetransaction ORDER BY id")).not.toContain(t3);
  });

  it("an organization due for scrubbing that is not scrubbed is named, and the command exits 1 after doing the rest (--quiet: only that error)", async () => {
    // The internal organization: on Zulip 12 zulip-manage refuses to scrub; on 10 this server has
    // no LOCAL_UPLOADS_DIR (S3), which it refuses too: nothing changes either way.
    const internal = Number((await db.query<any>("SELECT id FROM zerver_realm WHERE id <> $1 ORDER BY id LIMIT 1", [REALM]))[0].id);
    await db.query("UPDATE zerver_realm SET deactivated = true, scheduled_deletion_date = now() - interval '1 day' WHERE id = $1", [internal]);
    const zulip12 = template === "zulip12_fresh";
    try {
      const r = await cli(["--quiet"]);
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr).toMatch(
        zulip12
          ? /^1 organization is due to be scrubbed and was not scrubbed: \S+ \(id \d+\)\. zulip-manage scrubs organizations as Zulip 10\.x and 11\.x do; this database is Zulip 12\.x/
          : /^1 organization is due to be scrubbed and was not scrubbed: \S+ \(id \d+\)\. Uploaded files are stored in S3/,
      );
      const j = await cli(["--json"]);
      expect(j.exitCode).toBe(1);
      const doc = JSON.parse(j.stdout);
      expect(doc).toMatchObject({
        ok: false,
        exit_code: 1,
        error_code: "refused",
        realms_due_for_scrubbing: [{ realm: { id: internal }, zulip_fails: false }],
        realms_scrubbed: [],
      });
      expect(doc.error).toContain("scrubbed");
      expect((await db.query<any>("SELECT scheduled_deletion_date FROM zerver_realm WHERE id = $1", [internal]))[0].scheduled_deletion_date).not.toBeNull();
    } finally {
      await db.query("UPDATE zerver_realm SET deactivated = false, scheduled_deletion_date = NULL WHERE id = $1", [internal]);
    }
  });
});
