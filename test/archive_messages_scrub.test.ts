// archive_messages' clean_deactivated_realm_data step (do_scrub_realm) through the built CLI, with
// memcached, this file's RabbitMQ vhost and a LOCAL_UPLOADS_DIR, on the Zulip 11 and 10 fixtures
// (scrubbed as zerver/actions/realm_settings.py of those releases does; the checks follow
// zerver/tests/test_realm.py's test_scrub_realm / test_scrub_deactivated_realm: messages of the
// organization's users and its messages from system bots archived, users renamed "Scrubbed …" /
// "scrubbed-…@<host>", avatars reset to Gravatar with their files deleted, custom profile fields
// and attachments (rows and files) deleted, a REALM_SCRUBBED audit row, scheduled_deletion_date
// cleared), and on the Zulip 12 fixture (refused: nothing written). Also: the dry run writes
// nothing, the cron lock, the one-line summary / --quiet, refusals (S3), and Zulip's own failure
// when the organization has no message from a system bot (the job stops, nothing changed).
import crypto from "node:crypto";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createChannel } from "../src/zulip/actions/create-channel.js";
import { createUser } from "../src/zulip/actions/create-user.js";
import { sendMessage } from "../src/zulip/actions/message-send.js";
import { Db } from "../src/db/db.js";
import { CacheInvalidation } from "../src/zulip/cache.js";
import { EventDelivery } from "../src/services/events.js";
import { cleanDeactivatedRealmData } from "../src/zulip/actions/realm-scrub.js";
import { seedBulkMessages } from "../src/dev/seed.js";
import { runCli } from "./helpers/cli.js";
import type { TemplateName, TestDatabase } from "./helpers/pg.js";
import { QueueReader, sortedUsers } from "./helpers/rabbitmq.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";
import { changedTables, snapshot } from "./helpers/snapshot.js";
import { TEST_REALM } from "./helpers/users.js";

const HOST = "zulip.example.net";

/** user_avatar_base_path_from_ids (Zulip 10-12): <realm>/<sha256("<uid>:<version>:<salt>")[:40]>. */
function avatarBase(userId: number, version: number, realmId: number, salt: string): string {
  return `${realmId}/${crypto.createHash("sha256").update(`${userId}:${version}:${salt}`).digest("hex").slice(0, 40)}`;
}

interface World {
  iago: number;
  hamlet: number;
  bot: number;
  welcomeBot: number;
  channel: number;
  userIds: number[];
  /** Messages sent by the organization's users, and its messages from system bots. */
  ownMessages: number[];
  crossRealm: number[];
  /** A message of another organization, which stays. */
  otherRealmMessage: number;
  attachment: number;
  archivedAttachment: number;
  files: string[];
  avatarFiles: string[];
  field: number;
}

async function buildWorld(db: TestDatabase, uploads: string, salt: string): Promise<World> {
  const c = db.client;
  await c.query("BEGIN");
  const mk = async (email: string, name: string, extra: Record<string, unknown> = {}) =>
    (await createUser(c, TEST_REALM, { email, fullName: name, externalHost: HOST, ...extra })).id;
  const iago = await mk("iago@zulip.example.net", "Iago");
  const hamlet = await mk("hamlet@zulip.example.net", "Hamlet");
  const bot = await mk("scrub-bot@zulip.example.net", "Scrub bot", { isBot: true, botOwnerId: iago });
  const channel = (await createChannel(c, TEST_REALM, { name: "to be scrubbed", creatorId: iago, subscribers: [iago, hamlet] })).id;
  // 150 messages from Iago: two archive transactions of 100 and 50 (STREAM_MESSAGE_BATCH_SIZE).
  const bulk = await seedBulkMessages(c, { channelId: channel, count: 150, senderIds: [iago], start: new Date(Date.now() - 86400_000), intervalSeconds: 1 });
  const ownMessages: number[] = [];
  for (let id = bulk.firstId; id <= bulk.lastId; id++) ownMessages.push(id);
  ownMessages.push((await sendMessage(c, { senderId: hamlet, to: { userIds: [iago] }, content: "a DM" })).id);
  const withFile = (await sendMessage(c, { senderId: hamlet, to: { channelId: channel, topic: "files" }, content: "[file](/user_uploads/x)" })).id;
  ownMessages.push(withFile);
  await c.query(
    "INSERT INTO zerver_reaction (emoji_name, reaction_type, emoji_code, message_id, user_profile_id) VALUES ('tada', 'unicode_emoji', '1f389', $1, $2)",
    [withFile, iago],
  );
  const welcomeBot = Number((await c.query("SELECT id FROM zerver_userprofile WHERE email = 'welcome-bot@zulip.com'")).rows[0].id);
  const crossRealm = [(await sendMessage(c, { senderId: welcomeBot, to: { channelId: channel, topic: "welcome" }, content: "Welcome!" })).id];
  crossRealm.push((await sendMessage(c, { senderId: welcomeBot, to: { userIds: [hamlet] }, content: "Hello Hamlet" })).id);
  // The fixture's own messages in the organization (welcome messages and the like).
  const existing = (
    await c.query(
      `SELECT m.id, s.realm_id AS sender_realm FROM zerver_message m JOIN zerver_userprofile s ON s.id = m.sender_id
        WHERE m.realm_id = $1 AND m.id <> ALL($2::int[]) ORDER BY m.id`,
      [TEST_REALM, [...ownMessages, ...crossRealm]],
    )
  ).rows;
  for (const m of existing) (Number(m.sender_realm) === TEST_REALM ? ownMessages : crossRealm).push(Number(m.id));
  // A message of the internal organization (a channel of its own): not the organization's.
  const internal = Number((await c.query("SELECT realm_id FROM zerver_userprofile WHERE id = $1", [welcomeBot])).rows[0].realm_id);
  const internalChannel = (await createChannel(c, internal, { name: "internal", creatorId: welcomeBot, subscribers: [welcomeBot] })).id;
  const otherRealmMessage = (await sendMessage(c, { senderId: welcomeBot, to: { channelId: internalChannel, topic: "t" }, content: "stays" })).id;
  // Uploads: an attachment on a message, an archived attachment, their files, an image row.
  const files: string[] = [];
  const upload = async (table: "zerver_attachment" | "zerver_archivedattachment", name: string) => {
    const rel = `${TEST_REALM}/ab/${name}-token/${name}.png`;
    fs.mkdirSync(path.dirname(path.join(uploads, "files", rel)), { recursive: true });
    fs.writeFileSync(path.join(uploads, "files", rel), name);
    files.push(rel);
    // An ArchivedAttachment shares its id with the Attachment it archived: keep this one's apart.
    const { rows } = await c.query(
      `INSERT INTO ${table} (id, file_name, path_id, create_time, size, content_type, is_realm_public, is_web_public, owner_id, realm_id)
       VALUES ($5, $1, $2, now(), 4, 'image/png', true, false, $3, $4) RETURNING id`,
      [`${name}.png`, rel, hamlet, TEST_REALM, table === "zerver_archivedattachment" ? 100000 : 100001],
    );
    return Number(rows[0].id);
  };
  const attachment = await upload("zerver_attachment", "live");
  await c.query("INSERT INTO zerver_attachment_messages (attachment_id, message_id) VALUES ($1, $2)", [attachment, withFile]);
  const archivedAttachment = await upload("zerver_archivedattachment", "archived");
  await c.query(
    `INSERT INTO zerver_imageattachment (path_id, original_width_px, original_height_px, frames, thumbnail_metadata, realm_id, content_type)
     VALUES ($1, 10, 10, 1, '[]', $2, 'image/png')`,
    [files[0], TEST_REALM],
  );
  // Iago has an uploaded avatar (version 1): its three files.
  await c.query("UPDATE zerver_userprofile SET avatar_source = 'U', avatar_version = 1 WHERE id = $1", [iago]);
  const base = avatarBase(iago, 1, TEST_REALM, salt);
  const avatarFiles = [`${base}.original`, `${base}-medium.png`, `${base}.png`];
  for (const f of avatarFiles) {
    fs.mkdirSync(path.dirname(path.join(uploads, "avatars", f)), { recursive: true });
    fs.writeFileSync(path.join(uploads, "avatars", f), "avatar");
  }
  // A custom profile field with Hamlet's value.
  const { rows: cpf } = await c.query(
    `INSERT INTO zerver_customprofilefield (realm_id, name, hint, field_type, field_data, "order", display_in_profile_summary, required, editable_by_user)
     VALUES ($1, 'Phone', '', 1, '', 1, false, false, true) RETURNING id`,
    [TEST_REALM],
  );
  const field = Number(cpf[0].id);
  await c.query("INSERT INTO zerver_customprofilefieldvalue (field_id, user_profile_id, value, rendered_value) VALUES ($1, $2, '555', NULL)", [field, hamlet]);
  // The organization, deactivated with a deletion date that has passed.
  await c.query("UPDATE zerver_realm SET deactivated = true, scheduled_deletion_date = now() - interval '1 hour' WHERE id = $1", [TEST_REALM]);
  const userIds = (await c.query("SELECT id FROM zerver_userprofile WHERE realm_id = $1 ORDER BY id", [TEST_REALM])).rows.map((r: any) => Number(r.id));
  await c.query("COMMIT");
  return {
    iago,
    hamlet,
    bot,
    welcomeBot,
    channel,
    userIds,
    ownMessages,
    crossRealm,
    otherRealmMessage,
    attachment,
    archivedAttachment,
    files,
    avatarFiles,
    field,
  };
}

let reader: QueueReader;
beforeAll(async () => {
  reader = await QueueReader.open();
});
afterAll(async () => {
  await reader?.close();
});

describe.each(["zulip11_fresh", "zulip10_fresh"] as TemplateName[])("archive_messages scrubs a deactivated organization on %s", (template) => {
  let server: ServerCopy;
  let db: TestDatabase;
  let uploads: string;
  let lockDir: string;
  let w: World;
  let usersBefore: any[];
  let stringId: string;
  const run = (args: string[] = []) => runCli(["archive_messages", ...args], { db, confDir: server.conf, env: { ZULIP_LOCK_DIR: lockDir } });
  const exists = (type: string, rel: string) => fs.existsSync(path.join(uploads, type, rel));
  const cacheKey = (k: string) => `:1:${server.conf.cachePrefix}${k}`;

  beforeAll(async () => {
    uploads = fs.mkdtempSync(path.join(os.tmpdir(), "zm-scrub-uploads-"));
    lockDir = fs.mkdtempSync(path.join(os.tmpdir(), "zm-scrub-locks-"));
    server = await startServerCopy({ template, externalHost: HOST, client: true, extraSettings: `LOCAL_UPLOADS_DIR = '${uploads}'\n` });
    db = server.db;
    w = await buildWorld(db, uploads, server.conf.secrets.avatar_salt!);
    usersBefore = await db.query("SELECT * FROM zerver_userprofile WHERE realm_id = $1 ORDER BY id", [TEST_REALM]);
    stringId = (await db.query("SELECT string_id FROM zerver_realm WHERE id = $1", [TEST_REALM]))[0].string_id;
  }, 120_000);
  afterAll(async () => {
    for (const d of [uploads, lockDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
    await server?.stop();
  });
  beforeEach(async () => {
    await reader.purge("notify_tornado", "deferred_work");
  });

  it("--dry-run shows what would be scrubbed and writes nothing", async () => {
    const before = await snapshot(db, true);
    const r = await run(["--dry-run", "--json"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ ok: true, dry_run: true, realms_due_for_scrubbing: [], cache: null, events: null });
    expect(doc.realms_scrubbed).toEqual([
      {
        realm: expect.objectContaining({ id: TEST_REALM, string_id: stringId }),
        users_count: w.userIds.length,
        messages_archived_count: w.ownMessages.length + w.crossRealm.length,
        archive_transaction_ids: [],
        attachments_deleted_count: 1,
        archived_attachments_deleted_count: 2,
        custom_profile_fields_deleted_count: 1,
        files_deleted_count: null,
        avatar_files_deleted_count: null,
        audit_log_ids: [],
      },
    ]);
    const line = await run(["--dry-run"]);
    expect(line.exitCode).toBe(0);
    expect(line.stdout.split("\n")).toHaveLength(1);
    expect(line.stdout).toMatch(/^Dry run: would archive 0 messages .*; would scrub 1 deactivated organization \(\S+\)\. Nothing was changed\.$/);
    expect(changedTables(before, await snapshot(db, true))).toEqual([]);
    for (const f of w.files) expect(exists("files", f)).toBe(true);
    for (const f of w.avatarFiles) expect(exists("avatars", f)).toBe(true);
    expect(await reader.drain()).toEqual([]);
  });

  it("refuses while Zulip's cron job holds the lock, changing nothing", async () => {
    const lockFile = path.join(lockDir, "archive_messages.lock");
    const holder = spawn("flock", [lockFile, "sh", "-c", "echo held; exec cat >/dev/null"], { stdio: ["pipe", "pipe", "inherit"] });
    await new Promise<void>((resolve) => holder.stdout!.once("data", () => resolve()));
    try {
      const before = await snapshot(db);
      const r = await run([]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toBe(`Lock ${lockFile} is unavailable; exiting.`);
      expect(changedTables(before, await snapshot(db))).toEqual([]);
    } finally {
      holder.stdin!.end();
      await new Promise((resolve) => holder.once("close", resolve));
    }
  });

  it("refuses to scrub when the uploads are in S3 (no LOCAL_UPLOADS_DIR): named, exit 1, nothing changed", async () => {
    const before = await snapshot(db);
    const r = await run(["--setting", "LOCAL_UPLOADS_DIR=None", "--json"]);
    expect(r.exitCode).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ ok: false, error_code: "refused", realms_scrubbed: [] });
    expect(doc.realms_due_for_scrubbing).toEqual([
      { realm: expect.objectContaining({ id: TEST_REALM }), reason: expect.stringContaining("S3"), zulip_fails: false },
    ]);
    expect(r.stderr).toContain("Nothing was changed for it;");
    expect(changedTables(before, await snapshot(db))).toEqual([]);
    for (const f of w.files) expect(exists("files", f)).toBe(true);
  });

  describe("the scrub", () => {
    let doc: any;
    let auditBefore: number;
    let archiveTxBefore: number;
    let active: number[];
    let notices: any[];
    beforeAll(async () => {
      auditBefore = Number((await db.query("SELECT coalesce(max(id), 0) AS m FROM zerver_realmauditlog"))[0].m);
      archiveTxBefore = Number((await db.query("SELECT coalesce(max(id), 0) AS m FROM zerver_archivetransaction"))[0].m);
      active = (await db.query("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active ORDER BY id", [TEST_REALM])).map((r: any) => Number(r.id));
      for (const id of w.userIds) await server.client!.set(cacheKey(`user_profile_by_id:${id}`), "cached");
      await server.client!.set(cacheKey(`realm_used_upload_space:${TEST_REALM}`), "cached");
      await reader.purge("notify_tornado", "deferred_work");
      const r = await run(["--json"]);
      expect(r.stderr).toBe("");
      expect(r.exitCode).toBe(0);
      doc = JSON.parse(r.stdout);
      notices = sortedUsers(await reader.drain());
    }, 60_000);

    it("archives every message of the organization's users and its messages from system bots, and nothing else", async () => {
      const all = [...w.ownMessages, ...w.crossRealm];
      expect(await db.query("SELECT id FROM zerver_message WHERE realm_id = $1", [TEST_REALM])).toEqual([]);
      const archived = (await db.query("SELECT id FROM zerver_archivedmessage WHERE id = ANY($1::int[]) ORDER BY id", [all])).map((r: any) => Number(r.id));
      expect(archived).toEqual([...all].sort((a, b) => a - b));
      expect(await db.query("SELECT 1 FROM zerver_message WHERE id = $1", [w.otherRealmMessage])).toHaveLength(1);
      expect(await db.query("SELECT 1 FROM zerver_usermessage WHERE message_id = ANY($1::int[])", [all])).toEqual([]);
      expect(await db.query("SELECT 1 FROM zerver_archivedreaction WHERE message_id = $1", [w.ownMessages[151]])).toHaveLength(1);
      // move_messages_to_archive: MANUAL (2) transactions without a realm; Iago's 150 in 100 + 50.
      const txs = await db.query("SELECT id, type, realm_id FROM zerver_archivetransaction WHERE id > $1 ORDER BY id", [archiveTxBefore]);
      expect(txs.map((t: any) => Number(t.id))).toEqual(doc.realms_scrubbed[0].archive_transaction_ids);
      for (const t of txs) expect(t).toMatchObject({ type: 2, realm_id: null });
      const sizes = await db.query(
        "SELECT archive_transaction_id AS t, count(*)::int AS n FROM zerver_archivedmessage WHERE archive_transaction_id > $1 GROUP BY 1 ORDER BY 1",
        [archiveTxBefore],
      );
      expect(sizes.map((s: any) => s.n)).toContain(100);
      expect(sizes.reduce((a: number, s: any) => a + s.n, 0)).toBe(all.length);
      expect(doc.realms_scrubbed[0]).toMatchObject({ users_count: w.userIds.length, messages_archived_count: all.length });
    });

    it("renames every user, resets avatars to Gravatar (audit row each, files gone), as do_scrub_realm does", async () => {
      const after = await db.query("SELECT * FROM zerver_userprofile WHERE realm_id = $1 ORDER BY id", [TEST_REALM]);
      const host = stringId === "" ? HOST : `${stringId}.${HOST}`;
      expect(after.map((u: any) => Number(u.id))).toEqual(w.userIds);
      const emails = new Set<string>();
      for (const [i, u] of after.entries()) {
        expect(u.full_name).toMatch(/^Scrubbed [a-z2-7]{15}$/);
        expect(u.email).toMatch(new RegExp(`^scrubbed-[a-z2-7]{15}@${host.replace(/\./g, "\\.")}$`));
        expect(u.delivery_email).toBe(u.email);
        expect(u.avatar_source).toBe("G");
        expect(u.avatar_version).toBe(usersBefore[i].avatar_version + 1);
        expect(u.is_active).toBe(usersBefore[i].is_active);
        emails.add(u.email);
      }
      expect(emails.size).toBe(after.length);
      for (const f of w.avatarFiles) expect(exists("avatars", f)).toBe(false);
      expect(doc.realms_scrubbed[0].avatar_files_deleted_count).toBe(3);
    });

    it("writes one USER_AVATAR_SOURCE_CHANGED row per user, then REALM_SCRUBBED; clears scheduled_deletion_date", async () => {
      const rows = await db.query("SELECT * FROM zerver_realmauditlog WHERE id > $1 ORDER BY id", [auditBefore]);
      expect(rows.map((r: any) => Number(r.id))).toEqual(doc.realms_scrubbed[0].audit_log_ids);
      expect(rows).toHaveLength(w.userIds.length + 1);
      for (const [i, r] of rows.slice(0, -1).entries()) {
        expect(r).toMatchObject({
          realm_id: TEST_REALM,
          event_type: 123,
          acting_user_id: null,
          modified_user_id: w.userIds[i],
          extra_data: { avatar_source: "G" },
        });
      }
      expect(rows.at(-1)).toMatchObject({ realm_id: TEST_REALM, event_type: 203, acting_user_id: null, modified_user_id: null, extra_data: {} });
      const [realm] = await db.query("SELECT deactivated, scheduled_deletion_date FROM zerver_realm WHERE id = $1", [TEST_REALM]);
      expect(realm).toEqual({ deactivated: true, scheduled_deletion_date: null });
    });

    it("deletes the custom profile fields and every attachment (rows and files), leaving ImageAttachment rows as 10.x/11.x do", async () => {
      expect(await db.query("SELECT 1 FROM zerver_customprofilefield WHERE realm_id = $1", [TEST_REALM])).toEqual([]);
      expect(await db.query("SELECT 1 FROM zerver_customprofilefieldvalue WHERE field_id = $1", [w.field])).toEqual([]);
      expect(await db.query("SELECT 1 FROM zerver_attachment WHERE realm_id = $1", [TEST_REALM])).toEqual([]);
      expect(await db.query("SELECT 1 FROM zerver_archivedattachment WHERE realm_id = $1", [TEST_REALM])).toEqual([]);
      for (const f of w.files) expect(exists("files", f)).toBe(false);
      expect(await db.query("SELECT 1 FROM zerver_imageattachment WHERE path_id = $1", [w.files[0]])).toHaveLength(1);
      expect(doc.realms_scrubbed[0]).toMatchObject({
        attachments_deleted_count: 1,
        archived_attachments_deleted_count: 2,
        custom_profile_fields_deleted_count: 1,
        files_deleted_count: 2,
      });
    });

    it("flushes the users' and the realm's cache entries and sends the avatar events after the commit", async () => {
      for (const id of w.userIds) expect(await server.client!.get(cacheKey(`user_profile_by_id:${id}`))).toBeNull();
      expect(await server.client!.get(cacheKey(`realm_used_upload_space:${TEST_REALM}`))).toBeNull();
      expect(doc.cache).toMatchObject({ ok: true });
      const userEvents = notices.filter((n: any) => n.event.type === "realm_user");
      expect(userEvents.map((n: any) => n.event.person.user_id)).toEqual(w.userIds);
      for (const n of userEvents) {
        expect(n.event).toMatchObject({
          op: "update",
          person: { avatar_source: "G", avatar_url: expect.stringContaining("gravatar.com/avatar/"), avatar_url_medium: expect.stringContaining("&s=500") },
        });
        expect(n.users).toEqual(active);
      }
      const botEvents = notices.filter((n: any) => n.event.type === "realm_bot");
      expect(botEvents.map((n: any) => n.event.bot.user_id)).toContain(w.bot);
      expect(doc.events).toMatchObject({ ok: true, published: notices.length });
    });

    it("a second run finds nothing to do: one summary line, and --quiet prints nothing", async () => {
      const r = await run([]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toBe(
        "Archived 0 messages (0 in channels, 0 direct) in 0 archive transactions; deleted 0 archive transactions older than 30 days and 0 expired attachments.",
      );
      const q = await run(["--quiet"]);
      expect(q.exitCode).toBe(0);
      expect(q.stdout).toBe("");
      expect(q.stderr).toBe("");
    });

    it("when Zulip's do_scrub_realm would raise (no message from a system bot left), nothing changes and the job stops there", async () => {
      await db.query("UPDATE zerver_realm SET scheduled_deletion_date = now() - interval '1 minute' WHERE id = $1", [TEST_REALM]);
      const before = await snapshot(db);
      const r = await run(["--json"]);
      expect(r.exitCode).toBe(1);
      const d = JSON.parse(r.stdout);
      expect(d).toMatchObject({ ok: false, error_code: "refused", realms_scrubbed: [], demo_organizations_deactivated: [] });
      expect(d.realms_due_for_scrubbing).toEqual([
        { realm: expect.objectContaining({ id: TEST_REALM }), reason: expect.stringContaining("Message.DoesNotExist"), zulip_fails: true },
      ]);
      expect(r.stderr).toContain("was not run");
      expect(changedTables(before, await snapshot(db))).toEqual([]);
      expect(await reader.drain()).toEqual([]);
      const line = await run([]);
      expect(line.exitCode).toBe(1);
      expect(line.stdout.split("\n")).toHaveLength(1);
    });
  });
});

describe("archive_messages on zulip12_fresh", () => {
  let server: ServerCopy;
  let lockDir: string;
  let uploads: string;
  beforeAll(async () => {
    uploads = fs.mkdtempSync(path.join(os.tmpdir(), "zm-scrub-uploads-"));
    lockDir = fs.mkdtempSync(path.join(os.tmpdir(), "zm-scrub-locks-"));
    server = await startServerCopy({ template: "zulip12_fresh", externalHost: HOST, extraSettings: `LOCAL_UPLOADS_DIR = '${uploads}'\n` });
    await server.db.query("UPDATE zerver_realm SET deactivated = true, scheduled_deletion_date = now() - interval '1 hour' WHERE id = $1", [TEST_REALM]);
  }, 120_000);
  afterAll(async () => {
    for (const d of [uploads, lockDir]) if (d) fs.rmSync(d, { recursive: true, force: true });
    await server?.stop();
  });

  it("refuses to scrub on Zulip 12 (do_scrub_realm not reproduced): named, exit 1, nothing written; the dry run says so too", async () => {
    const before = await snapshot(server.db);
    for (const args of [["--json"], ["--json", "--dry-run"]]) {
      const r = await runCli(["archive_messages", ...args], { db: server.db, confDir: server.conf, env: { ZULIP_LOCK_DIR: lockDir } });
      expect(r.exitCode).toBe(1);
      const doc = JSON.parse(r.stdout);
      expect(doc).toMatchObject({ ok: false, error_code: "refused", realms_scrubbed: [], dry_run: args.includes("--dry-run") });
      expect(doc.realms_due_for_scrubbing).toEqual([
        { realm: expect.objectContaining({ id: TEST_REALM }), reason: expect.stringContaining("Zulip 12.x"), zulip_fails: false },
      ]);
      expect(r.stderr).toContain("Nothing was changed for it;");
    }
    expect(changedTables(before, await snapshot(server.db))).toEqual([]);
  });
});

describe("cleanDeactivatedRealmData on zulip11_fresh: an organization too large for its avatar events in memory", () => {
  let server: ServerCopy;
  beforeAll(async () => {
    server = await startServerCopy({ template: "zulip11_fresh", externalHost: HOST });
    await server.db.query("UPDATE zerver_realm SET deactivated = true, scheduled_deletion_date = now() - interval '1 hour' WHERE id = $1", [TEST_REALM]);
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
  });

  it("is not scrubbed (nothing written, the job goes on) unless events are off", async () => {
    const db = new Db(server.db.client, { hosts: [], port: 0, database: server.db.name, user: "zulip", sslmode: "disable", readWrite: true, describe: "" });
    db.zerverMigration = 751;
    const ctx = {
      config: () => {
        throw new Error("not needed");
      },
      paths: {} as any,
      out: { warn: () => undefined },
    };
    const options = (events: "rabbitmq" | "none") => ({
      cache: new CacheInvalidation(ctx, "none"),
      events: new EventDelivery(ctx, events),
      settings: {
        release: "11.x",
        uploadsDir: fs.mkdtempSync(path.join(os.tmpdir(), "zm-scrub-uploads-")),
        avatarSalt: "salt",
        billingEnabled: false,
        systemBotRealm: "zulipinternal",
      },
      realmHost: () => HOST,
      avatar: null,
      featureLevel: 400,
      maxStagedRecipients: 0,
    });
    const before = await snapshot(server.db);
    const refused = await cleanDeactivatedRealmData(db, options("rabbitmq"));
    expect(refused).toMatchObject({
      scrubbed: [],
      stopped: false,
      not_scrubbed: [{ id: TEST_REALM, zulip_fails: false, reason: expect.stringContaining("--events=none") }],
    });
    expect(changedTables(before, await snapshot(server.db))).toEqual([]);
    const done = await cleanDeactivatedRealmData(db, options("none"));
    expect(done.scrubbed.map((r) => r.id)).toEqual([TEST_REALM]);
  });
});
