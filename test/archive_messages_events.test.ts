// archive_messages' notices for the messages the retention policy deletes: Zulip 12.x's
// delete_messages (zulip/zulip PR #35848, API feature level 452) sends one delete_message event
// per channel topic (case-insensitive) or direct message conversation of each archiving batch, to
// event_recipient_ids_for_action_on_messages (public channel: active subscribers plus non-guests
// with a UserMessage row; private with shared history: subscribers; protected history:
// subscribers with a row; direct messages: users with a row; never long-term-idle users), moves
// a channel's first_message_id on (with its stream update event) when it is deleted, and queues
// the removal of mobile push notifications for users with a registered push device. Read from
// this file's RabbitMQ vhost (QueueReader) after the built CLI ran; Zulip 10 and 11 send nothing
// and leave first_message_id alone. Also: delivery after each batch's COMMIT when the staged
// notices reach the bound, --events=none (first_message_id still updated), sharded push queues.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createChannel } from "../src/zulip/actions/create-channel.js";
import { createUser } from "../src/zulip/actions/create-user.js";
import { sendMessage } from "../src/zulip/actions/message-send.js";
import { Db } from "../src/db/db.js";
import { loadConfig } from "../src/config/config.js";
import { resolvePaths } from "../src/config/paths.js";
import { CacheInvalidation } from "../src/zulip/cache.js";
import { EventDelivery, type EventReport } from "../src/services/events.js";
import { ZulipLogFile } from "../src/lib/managelog.js";
import { archiveMessages, messageArchiver } from "../src/zulip/actions/retention.js";
import { seedBulkMessages } from "../src/dev/seed.js";
import { runCli } from "./helpers/cli.js";
import type { TemplateName, TestDatabase } from "./helpers/pg.js";
import { QueueReader, sortedUsers } from "./helpers/rabbitmq.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";
import { TEST_REALM } from "./helpers/users.js";

const HOST = "zulip.example.net";
const DAY = 86400_000;
const PUSH = "missedmessage_mobile_notifications";
const GUEST = 600;
const ACTIVE_MOBILE_PUSH_NOTIFICATION = 4096;

interface World {
  iago: number;
  hamlet: number;
  cordelia: number;
  guest: number;
  idle: number;
  gone: number;
  pub: number;
  prot: number;
  shared: number;
  bulk: number;
  alpha: number[]; // "Alpha", "alpha", "ALPHA" in pub: one group
  keepBeta: number; // recent, stays: pub's first message afterwards
  p1: number;
  s1: number;
  d1: number; // iago -> hamlet
  d2: number; // cordelia -> iago
  bulkIds: number[];
}

async function buildWorld(db: TestDatabase): Promise<World> {
  const c = db.client;
  await c.query("BEGIN");
  // The fixture's own messages stay (recent); the organization keeps messages 30 days.
  await c.query("UPDATE zerver_message SET date_sent = now()");
  await c.query("UPDATE zerver_realm SET message_retention_days = 30 WHERE id = $1", [TEST_REALM]);
  const mk = async (email: string, name: string, role?: number) =>
    (await createUser(c, TEST_REALM, { email, fullName: name, externalHost: HOST, ...(role ? { role } : {}) })).id;
  const iago = await mk("iago@zulip.example.net", "Iago");
  const hamlet = await mk("hamlet@zulip.example.net", "Hamlet");
  const cordelia = await mk("cordelia@zulip.example.net", "Cordelia");
  const guest = await mk("guest@zulip.example.net", "Guest", GUEST);
  const idle = await mk("idle@zulip.example.net", "Idle");
  const gone = await mk("gone@zulip.example.net", "Gone");
  const old = new Date(Date.now() - 40 * DAY);
  const send = async (senderId: number, to: any, content: string, dateSent = old) => (await sendMessage(c, { senderId, to, content, dateSent })).id;
  const um = (userId: number, messageId: number, flags = 0) =>
    c.query("INSERT INTO zerver_usermessage (user_profile_id, message_id, flags) VALUES ($1, $2, $3)", [userId, messageId, flags]);

  const pub = (await createChannel(c, TEST_REALM, { name: "pub", creatorId: iago, subscribers: [iago, hamlet, idle, gone] })).id;
  const alpha = [
    await send(iago, { channelId: pub, topic: "Alpha" }, "a1"),
    await send(hamlet, { channelId: pub, topic: "alpha" }, "a2"),
    await send(iago, { channelId: pub, topic: "ALPHA" }, "a3"),
  ];
  const keepBeta = await send(iago, { channelId: pub, topic: "beta" }, "recent", new Date(Date.now() - DAY));
  await um(cordelia, alpha[0], ACTIVE_MOBILE_PUSH_NOTIFICATION); // a row without a subscription (e.g. starred as historical)
  await um(guest, alpha[0]); // guests cannot access public channels they are not in
  await c.query(
    `UPDATE zerver_usermessage SET flags = flags | ${ACTIVE_MOBILE_PUSH_NOTIFICATION} WHERE (user_profile_id, message_id) IN (($1, $2), ($3, $4))`,
    [hamlet, alpha[1], iago, alpha[0]],
  );

  const prot = (
    await createChannel(c, TEST_REALM, { name: "prot", creatorId: iago, inviteOnly: true, historyPublicToSubscribers: false, subscribers: [iago, hamlet] })
  ).id;
  const p1 = await send(iago, { channelId: prot, topic: "t" }, "protected");
  await c.query("DELETE FROM zerver_usermessage WHERE user_profile_id = $1 AND message_id = $2", [hamlet, p1]); // Hamlet joined later
  await um(cordelia, p1); // a row, but not subscribed

  const shared = (
    await createChannel(c, TEST_REALM, { name: "shared", creatorId: iago, inviteOnly: true, historyPublicToSubscribers: true, subscribers: [iago, cordelia] })
  ).id;
  const s1 = await send(iago, { channelId: shared, topic: "t" }, "shared history");
  await um(hamlet, s1); // a row, but not subscribed

  const d1 = await send(iago, { userIds: [hamlet] }, "old DM");
  const d2 = await send(cordelia, { userIds: [iago] }, "another old DM");

  // 150 messages in one topic: two archiving batches (100 + 50), each with its own event.
  const bulk = (await createChannel(c, TEST_REALM, { name: "bulk", creatorId: iago, subscribers: [iago] })).id;
  const seeded = await seedBulkMessages(c, {
    channelId: bulk,
    count: 150,
    senderIds: [iago],
    topics: ["Bulk"],
    start: new Date(Date.now() - 50 * DAY),
    intervalSeconds: 1,
  });
  const bulkIds: number[] = [];
  for (let id = seeded.firstId; id <= seeded.lastId; id++) bulkIds.push(id);
  await c.query("UPDATE zerver_stream SET first_message_id = $2 WHERE id = $1", [bulk, seeded.firstId]);

  // Push devices: Hamlet a legacy token, Cordelia a 12.x Device with a push token, Iago none.
  await c.query("INSERT INTO zerver_pushdevicetoken (kind, token, last_updated, ios_app_id, user_id) VALUES (1, 'tok', now(), NULL, $1)", [hamlet]);
  if ((await c.query("SELECT to_regclass('zerver_device') AS t")).rows[0].t) {
    await c.query("INSERT INTO zerver_device (push_token_id, user_id) VALUES (7, $1)", [cordelia]);
  } else {
    await c.query("INSERT INTO zerver_pushdevicetoken (kind, token, last_updated, ios_app_id, user_id) VALUES (2, 'tok2', now(), NULL, $1)", [cordelia]);
  }
  // After sending: Idle became long-term idle, Gone was deactivated (rows kept).
  await c.query("UPDATE zerver_userprofile SET long_term_idle = true WHERE id = $1", [idle]);
  await c.query("UPDATE zerver_userprofile SET is_active = false WHERE id = $1", [gone]);
  await c.query("UPDATE zerver_subscription SET is_user_active = false WHERE user_profile_id = $1", [gone]);
  await c.query("COMMIT");
  return { iago, hamlet, cordelia, guest, idle, gone, pub, prot, shared, bulk, alpha, keepBeta, p1, s1, d1, d2, bulkIds };
}

const key = (n: any) => JSON.stringify(n);
const bySortKey = (ns: any[]) => [...ns].sort((a, b) => key(a).localeCompare(key(b)));
const firstMessageIds = async (db: TestDatabase, ids: number[]) =>
  Object.fromEntries(
    (await db.query<any>("SELECT id, first_message_id FROM zerver_stream WHERE id = ANY($1::int[])", [ids])).map((r) => [
      Number(r.id),
      r.first_message_id === null ? null : Number(r.first_message_id),
    ]),
  );

let reader: QueueReader;
beforeAll(async () => {
  reader = await QueueReader.open();
});
afterAll(async () => {
  await reader?.close();
});

describe.each(["zulip12_fresh", "zulip11_fresh", "zulip10_fresh"] as TemplateName[])("archive_messages' deletion notices on %s", (template) => {
  const zulip12 = template === "zulip12_fresh";
  let server: ServerCopy;
  let db: TestDatabase;
  let lockDir: string;
  let w: World;
  let firstBefore: Record<number, number | null>;
  let doc: any;
  let notices: any[];
  let jobs: any[];
  const cli = (args: string[]) => runCli(["archive_messages", ...args], { db, confDir: server.conf, env: { ZULIP_LOCK_DIR: lockDir } });

  beforeAll(async () => {
    lockDir = fs.mkdtempSync(path.join(os.tmpdir(), "zm-retention-events-locks-"));
    server = await startServerCopy({ template, externalHost: HOST });
    db = server.db;
    w = await buildWorld(db);
    firstBefore = await firstMessageIds(db, [w.pub, w.prot, w.shared, w.bulk]);
    await reader.purge("notify_tornado", PUSH);
    const r = await cli(["--json"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    doc = JSON.parse(r.stdout);
    notices = sortedUsers(await reader.drain());
    jobs = (await reader.drainRaw(PUSH)).map((m) => m.body);
  }, 120_000);
  afterAll(async () => {
    if (lockDir) fs.rmSync(lockDir, { recursive: true, force: true });
    await server?.stop();
  });

  it("archives the expired messages (and only those)", async () => {
    const expired = [...w.alpha, w.p1, w.s1, w.d1, w.d2, ...w.bulkIds];
    expect(await db.query("SELECT 1 FROM zerver_message WHERE id = ANY($1::int[])", [expired])).toEqual([]);
    expect(await db.query("SELECT 1 FROM zerver_message WHERE id = $1", [w.keepBeta])).toHaveLength(1);
    expect(doc.archived).toMatchObject({ channel_messages_count: 155, direct_messages_count: 2 });
  });

  if (!zulip12) {
    it("sends nothing and leaves the channels' first_message_id alone, as Zulip 10.x and 11.x do", async () => {
      expect(notices).toEqual([]);
      expect(jobs).toEqual([]);
      expect(doc.events).toBeNull();
      expect(doc.archived.first_message_id_updates_count).toBe(0);
      expect(await firstMessageIds(db, [w.pub, w.prot, w.shared, w.bulk])).toEqual(firstBefore);
    });
    return;
  }

  it("one delete_message event per channel topic (case-insensitive) and DM conversation, to the users Zulip 12.x notifies", async () => {
    const notBulk = notices.filter((n) => !(n.event.stream_id === w.bulk));
    const publicUsers = [w.iago, w.hamlet, w.cordelia, w.gone].sort((a, b) => a - b); // no guest, no long-term-idle user
    const expected = [
      { event: { type: "stream", op: "update", property: "first_message_id", value: w.keepBeta, stream_id: w.pub, name: "pub" }, users: publicUsers },
      { event: { type: "delete_message", message_ids: w.alpha, stream_id: w.pub, topic: "alpha", message_type: "stream" }, users: publicUsers },
      { event: { type: "stream", op: "update", property: "first_message_id", value: null, stream_id: w.prot, name: "prot" }, users: [w.iago] },
      { event: { type: "delete_message", message_ids: [w.p1], stream_id: w.prot, topic: "t", message_type: "stream" }, users: [w.iago] },
      {
        event: { type: "stream", op: "update", property: "first_message_id", value: null, stream_id: w.shared, name: "shared" },
        users: [w.iago, w.cordelia].sort((a, b) => a - b),
      },
      {
        event: { type: "delete_message", message_ids: [w.s1], stream_id: w.shared, topic: "t", message_type: "stream" },
        users: [w.iago, w.cordelia].sort((a, b) => a - b),
      },
      { event: { type: "delete_message", message_ids: [w.d1], message_type: "private" }, users: [w.iago, w.hamlet].sort((a, b) => a - b) },
      { event: { type: "delete_message", message_ids: [w.d2], message_type: "private" }, users: [w.iago, w.cordelia].sort((a, b) => a - b) },
    ];
    expect(bySortKey(notBulk)).toEqual(bySortKey(expected));
    // Within a channel's batch, the first_message_id update comes before the deletion event.
    const i = notices.findIndex((n) => n.event.stream_id === w.pub);
    expect(notices[i].event.type).toBe("stream");
    expect(notices[i + 1].event.type).toBe("delete_message");
    // The keys in Zulip's order.
    expect(Object.keys(notices[i + 1].event)).toEqual(["type", "message_ids", "stream_id", "topic", "message_type"]);
    expect(Object.keys(notices.find((n) => n.event.message_type === "private")!.event)).toEqual(["type", "message_ids", "message_type"]);
  });

  it("a channel archived in two batches gets one event per batch, covering all its messages", async () => {
    const deletes = notices.filter((n) => n.event.stream_id === w.bulk && n.event.type === "delete_message");
    expect(deletes.map((n) => n.event.message_ids.length).sort((a: number, b: number) => a - b)).toEqual([50, 100]);
    expect(deletes.flatMap((n) => n.event.message_ids).sort((a: number, b: number) => a - b)).toEqual(w.bulkIds);
    for (const n of deletes) {
      expect(n.event).toMatchObject({ topic: "bulk", message_type: "stream" });
      expect(n.event.message_ids).toEqual([...n.event.message_ids].sort((a: number, b: number) => a - b));
      expect(n.users).toEqual([w.iago]);
    }
    const updates = notices.filter((n) => n.event.stream_id === w.bulk && n.event.type === "stream");
    expect(updates.length).toBeGreaterThanOrEqual(1);
    expect(updates.at(-1)!.event.value).toBeNull();
  });

  it("moves each channel's first_message_id to its first remaining message (or NULL)", async () => {
    expect(await firstMessageIds(db, [w.pub, w.prot, w.shared, w.bulk])).toEqual({ [w.pub]: w.keepBeta, [w.prot]: null, [w.shared]: null, [w.bulk]: null });
    const bulkUpdates = notices.filter((n) => n.event.stream_id === w.bulk && n.event.type === "stream").length;
    expect(doc.archived.first_message_id_updates_count).toBe(3 + bulkUpdates);
  });

  it("queues the removal of mobile push notifications for users with a registered push device only", async () => {
    expect(bySortKey(jobs)).toEqual(
      bySortKey([
        { type: "remove", user_profile_id: w.hamlet, message_ids: [w.alpha[1]] },
        { type: "remove", user_profile_id: w.cordelia, message_ids: [w.alpha[0]] },
      ]),
    );
    expect(doc.events).toMatchObject({ ok: true, published: notices.length, jobs: 2, transport: "rabbitmq" });
  });

  it("MOBILE_NOTIFICATIONS_SHARDS (zulip.conf mobile_notification_shards) picks the shard queue", async () => {
    const m = await sendMessage(db.client, {
      senderId: w.iago,
      to: { channelId: w.pub, topic: "sharded" },
      content: "x",
      dateSent: new Date(Date.now() - 40 * DAY),
    });
    await db.query(`UPDATE zerver_usermessage SET flags = flags | ${ACTIVE_MOBILE_PUSH_NOTIFICATION} WHERE message_id = $1 AND user_profile_id = $2`, [
      m.id,
      w.hamlet,
    ]);
    const conf = fs.readFileSync(server.conf.zulipConfPath, "utf8");
    fs.writeFileSync(server.conf.zulipConfPath, `${conf}\n[application_server]\nmobile_notification_shards = 3\n`);
    const queue = `${PUSH}_shard${(w.hamlet % 3) + 1}`;
    try {
      await reader.purge(queue, PUSH, "notify_tornado");
      const r = await cli([]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect((await reader.drainRaw(queue)).map((x) => x.body)).toEqual([{ type: "remove", user_profile_id: w.hamlet, message_ids: [m.id] }]);
      expect(await reader.drainRaw(PUSH)).toEqual([]);
      expect((await reader.drain()).map((n) => n.event.type)).toEqual(["delete_message"]);
    } finally {
      fs.writeFileSync(server.conf.zulipConfPath, conf);
    }
  });

  it("--events=none: nothing sent, first_message_id still moved on", async () => {
    const m = await sendMessage(db.client, {
      senderId: w.iago,
      to: { channelId: w.pub, topic: "quiet" },
      content: "x",
      dateSent: new Date(Date.now() - 40 * DAY),
    });
    await db.query("UPDATE zerver_stream SET first_message_id = $2 WHERE id = $1", [w.pub, m.id]);
    await reader.purge("notify_tornado", PUSH);
    const r = await cli(["--events=none", "--json"]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await reader.drain()).toEqual([]);
    expect(await firstMessageIds(db, [w.pub])).toEqual({ [w.pub]: w.keepBeta });
    const d = JSON.parse(r.stdout);
    expect(d.archived.first_message_id_updates_count).toBe(1);
    expect(d.events).toBeNull();
  });

  it("delivers each batch's notices after its COMMIT once they reach the bound (here: every batch)", async () => {
    const ids: number[] = [];
    for (const [channelId, topic] of [
      [w.pub, "one"],
      [w.prot, "two"],
      [w.shared, "three"],
    ] as const) {
      ids.push((await sendMessage(db.client, { senderId: w.iago, to: { channelId, topic }, content: "x", dateSent: new Date(Date.now() - 40 * DAY) })).id);
    }
    await reader.purge("notify_tornado", PUSH);
    const paths = resolvePaths(server.conf.dir, { ...process.env, ...server.conf.env });
    const ctx = { config: () => loadConfig(paths), paths, out: { warn: (t: string) => warnings.push(t) } };
    const warnings: string[] = [];
    const lib = new Db(db.client, { hosts: [], port: 0, database: db.name, user: "zulip", sslmode: "disable", readWrite: true, describe: "" });
    lib.zerverMigration = 800;
    const events = new EventDelivery(ctx, "rabbitmq");
    const reports: EventReport[] = [];
    const seen: { live: number; queued: number }[] = [];
    const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "zm-retention-events-log-"));
    try {
      const totals = await archiveMessages(lib, new CacheInvalidation(ctx, "none"), new ZulipLogFile(logDir, "retention.log"), {
        events,
        mobileNotificationShards: 1,
        maxStagedRecipients: 0,
        flush: async () => {
          // Called after the batch's COMMIT: its message is gone for every connection.
          seen.push({ live: (await db.query("SELECT 1 FROM zerver_message WHERE id = ANY($1::int[])", [ids])).length, queued: 0 });
          reports.push(await events.commit());
          seen.at(-1)!.queued = (await reader.drain()).length;
        },
      });
      // prot and shared had no message left (first_message_id NULL): the new ones became their first.
      expect(totals.notices).toEqual({ delete_message_events: 3, first_message_id_updates: 2, push_removal_jobs: 0 });
    } finally {
      fs.rmSync(logDir, { recursive: true, force: true });
    }
    expect(seen).toEqual([
      { live: 2, queued: 1 },
      { live: 1, queued: 2 },
      { live: 0, queued: 2 },
    ]);
    expect(reports.map((r) => [r.ok, r.published])).toEqual([
      [true, 1],
      [true, 2],
      [true, 2],
    ]);
    expect((await events.commit()).skipped).toBe(true);
    expect(warnings).toEqual([]);
  });

  it("moveMessagesToArchive (do_delete_messages_by_sender's, one transaction): past its bound of staged recipients it refuses and rolls back", async () => {
    const m = await sendMessage(db.client, { senderId: w.iago, to: { channelId: w.pub, topic: "bound" }, content: "x" });
    const paths = resolvePaths(server.conf.dir, { ...process.env, ...server.conf.env });
    const ctx = { config: () => loadConfig(paths), paths, out: { warn: () => undefined } };
    const lib = new Db(db.client, { hosts: [], port: 0, database: db.name, user: "zulip", sslmode: "disable", readWrite: true, describe: "" });
    lib.zerverMigration = 800;
    const archiver = await messageArchiver(lib);
    const events = new EventDelivery(ctx, "rabbitmq");
    const [realm] = await db.query<any>("SELECT id, string_id FROM zerver_realm WHERE id = $1", [TEST_REALM]);
    const txBefore = Number((await db.query<any>("SELECT coalesce(max(id), 0) AS m FROM zerver_archivetransaction"))[0].m);
    const what = "the deletion of iago@zulip.example.net's messages";
    await expect(
      events.tx(lib, (t) =>
        archiver.moveMessagesToArchive(t, [m.id], {
          realmId: TEST_REALM,
          chunkSize: 100,
          inval: new CacheInvalidation(ctx, "none"),
          notify: { events, mobileNotificationShards: 1, realm: { id: Number(realm.id), string_id: realm.string_id }, what, maxStagedRecipients: 1 },
        }),
      ),
    ).rejects.toThrow(`${what} would send events to more than 1 recipients in all`);
    expect(await db.query("SELECT 1 FROM zerver_message WHERE id = $1", [m.id])).toHaveLength(1);
    expect(await db.query("SELECT 1 FROM zerver_archivetransaction WHERE id > $1", [txBefore])).toEqual([]);
    expect((await events.commit()).skipped).toBe(true);
  });
});
