// unarchive_channel through the built CLI on a copy of a real Zulip 12.2 server (its default
// channels and Welcome Bot messages), with channels archived the way Zulip archives them today
// and the "!DEACTIVATED:" names older releases gave them, a real memcached, and a Zulip 11
// database: the name matching, the collision and refusal messages, the 604 row, the attachment
// caches, channel email addresses, Notification Bot's message with its rendering and UserMessage
// rows, the cases where that message is (correctly) not written, and the cache keys.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createChannel } from "../src/zulip/actions/create-channel.js";
import { runCli } from "./helpers/cli.js";
import { makeConfDir, type ConfDir } from "./helpers/confdir.js";
import { startMemcached, type MemcachedClient } from "./helpers/memcached.js";
import { createDatabase, type TestDatabase } from "./helpers/pg.js";
import { snapshot, changedTables as changed } from "./helpers/snapshot.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";

const HOST = "zulip.example.net";
type Row = Record<string, any>;

const omit = (row: Row, keys: string[]) => Object.fromEntries(Object.entries(row).filter(([k]) => !keys.includes(k)));

/** Archive a channel as do_deactivate_stream does (test data), optionally under a legacy name. */
async function archive(db: TestDatabase, channelId: number, opts: { rename?: string; when?: string } = {}): Promise<void> {
  await db.query("UPDATE zerver_stream SET deactivated = true, is_recently_active = false WHERE id = $1", [channelId]);
  if (opts.rename) await db.query("UPDATE zerver_stream SET name = $2 WHERE id = $1", [channelId, opts.rename]);
  await db.query("DELETE FROM zerver_defaultstream WHERE stream_id = $1", [channelId]);
  await db.query(
    `INSERT INTO zerver_realmauditlog (realm_id, event_type, event_time, backfilled, extra_data, modified_stream_id, scrubbed)
     SELECT realm_id, 602, $2::timestamptz, false, '{}', id, false FROM zerver_stream WHERE id = $1`,
    [channelId, opts.when ?? "2026-06-01 10:20:30.123456+00"],
  );
}

async function newChannel(db: TestDatabase, name: string, opts: { inviteOnly?: boolean; subscribers?: number[]; realm?: number } = {}): Promise<Row> {
  await db.client.query("BEGIN");
  const c = await createChannel(db.client, opts.realm ?? 2, { name, inviteOnly: opts.inviteOnly, subscribers: opts.subscribers ?? [8] });
  await db.client.query("COMMIT");
  return c;
}

describe("unarchive_channel on a copy of a real Zulip 12.2 server", () => {
  let db: TestDatabase;
  let client: MemcachedClient;
  let conf: ConfDir;
  let copy: ServerCopy;
  let sandbox: Row;

  beforeAll(async () => {
    copy = await startServerCopy({ template: "zulip12_fresh", externalHost: HOST, client: true });
    ({ db, conf } = copy);
    client = copy.client!;
    [sandbox] = await db.query("SELECT * FROM zerver_stream WHERE realm_id = 2 AND name = 'sandbox'");
    // The real organization writes British English and has channel event messages off.
    await db.query("UPDATE zerver_realm SET send_channel_events_messages = true, default_language = 'en' WHERE id = 2");
  });
  afterAll(() => copy?.stop());
  const run = (args: string[]) => runCli(args, { db, confDir: conf });
  const k = (key: string) => `:1:${conf.cachePrefix}${key}`;

  it("refuses what manage.py refuses, with its messages, and writes nothing", async () => {
    await archive(db, Number(sandbox.id));
    const before = await snapshot(db);
    const expectations: [string[], number, string][] = [
      [["-c", "nosuch"], 1, "No matching deactivated channels found!"],
      [["-c", "general"], 1, "No matching deactivated channels found!"], // active channels are not candidates
      [["-c", "sandbox", "-n", "GENERAL"], 1, "Channel with name 'GENERAL' already exists; pass a different --new-name"],
      [["--channel-id", String(sandbox.id)], 1, "--new-name flag is required with --channel-id"],
      [["--channel-id", "9999"], 1, "There is no channel with id '9999'."],
      [["--channel-id", "3", "-n", "x"], 1, "Channel id 3, named 'general', is not deactivated"],
      [["-c", "sandbox", "--channel-id", "2"], 2, "not allowed with argument -c/--channel"],
      [[], 2, "one of the arguments -c/--channel --channel-id is required"],
    ];
    for (const [args, code, message] of expectations) {
      const r = await run(["unarchive_channel", "-r", "2", ...args]);
      expect(r.exitCode, args.join(" ")).toBe(code);
      expect(r.stderr, args.join(" ")).toContain(message);
    }
    const dry = await run(["unarchive_channel", "-r", "2", "-c", "sandbox", "--dry-run"]);
    expect(dry.stdout).toContain(`Would unarchive channel ${sandbox.id} 'sandbox' as 'sandbox'.`);
    expect(changed(before, await snapshot(db))).toEqual([]);
  });

  it("unarchives like do_unarchive_stream, with Notification Bot's message in 'channel events'", async () => {
    // An uploaded file in one of the channel's messages, with its public-visibility caches set,
    // and the channel's email address (deactivated with the channel).
    const [msg] = await db.query("SELECT id FROM zerver_message WHERE recipient_id = $1 ORDER BY id LIMIT 1", [sandbox.recipient_id]);
    const [att] = await db.query(
      `INSERT INTO zerver_attachment (file_name, path_id, create_time, size, content_type, is_realm_public, is_web_public, owner_id, realm_id)
       VALUES ('a.png', '2/ab/cd/a.png', now(), 10, 'image/png', true, false, 8, 2) RETURNING id`,
    );
    await db.query("INSERT INTO zerver_attachment_messages (attachment_id, message_id) VALUES ($1, $2)", [att.id, msg.id]);
    const [tx] = await db.query(
      "INSERT INTO zerver_archivetransaction (timestamp, restored, type, realm_id, protect_from_deletion) VALUES (now(), false, 1, 2, false) RETURNING id",
    );
    const [am] = await db.query(
      `INSERT INTO zerver_archivedmessage (type, subject, content, date_sent, has_attachment, has_image, has_link, sender_id, archive_transaction_id, sending_client_id, realm_id, recipient_id, is_channel_message)
       VALUES (1, 'old', 'old', now(), true, false, false, 8, $1, 1, 2, $2, true) RETURNING id`,
      [tx.id, sandbox.recipient_id],
    );
    const [aat] = await db.query(
      `INSERT INTO zerver_archivedattachment (file_name, path_id, create_time, size, is_realm_public, is_web_public, owner_id, realm_id)
       VALUES ('b.png', '2/ef/gh/b.png', now(), 10, true, true, 8, 2) RETURNING id`,
    );
    await db.query("INSERT INTO zerver_archivedattachment_messages (archivedattachment_id, archivedmessage_id) VALUES ($1, $2)", [aat.id, am.id]);
    await db.query(
      "INSERT INTO zerver_channelemailaddress (email_token, date_created, deactivated, channel_id, creator_id, realm_id, sender_id) VALUES ('tok123', now(), true, $1, 8, 2, 1)",
      [sandbox.id],
    );
    const messages = await db.query("SELECT id FROM zerver_message WHERE recipient_id = $1", [sandbox.recipient_id]);
    const keys = [`display_recipient_dict:${sandbox.recipient_id}`, ...messages.map((m: Row) => `message_dict:${m.id}`)];
    for (const key of keys) await client.set(k(key), "x");
    const before = await snapshot(db);
    const [{ m: maxAudit }] = await db.query("SELECT max(id) AS m FROM zerver_realmauditlog");

    const r = await run(["unarchive_channel", "-r", "2", "-c", "sandbox", "--json"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({
      channel: { id: Number(sandbox.id), name: { old: "sandbox", new: "sandbox" } },
      attachments_reset_count: 1,
      archived_attachments_reset_count: 1,
      channel_email_addresses_reactivated_count: 1,
      notes: [],
    });

    const [s] = await db.query("SELECT * FROM zerver_stream WHERE id = $1", [sandbox.id]);
    expect(omit(s, ["is_recently_active"])).toEqual(omit({ ...sandbox, deactivated: false }, ["is_recently_active"]));
    expect(s.is_recently_active).toBe(true); // do_send_messages marks the channel recently active
    const audits = await db.query("SELECT * FROM zerver_realmauditlog WHERE id > $1", [maxAudit]);
    expect(doc.audit_log_ids).toEqual(audits.map((a: Row) => Number(a.id)));
    expect(audits.map((a: Row) => omit(a, ["id", "event_time"]))).toEqual([
      {
        realm_id: 2,
        event_type: 604,
        acting_user_id: null,
        modified_user_id: null,
        modified_stream_id: String(sandbox.id), // bigint
        modified_user_group_id: null,
        modified_channel_folder_id: null,
        event_last_message_id: null,
        backfilled: false,
        scrubbed: false,
        extra_data: {},
      },
    ]);
    expect(await db.query("SELECT is_realm_public, is_web_public FROM zerver_attachment WHERE id = $1", [att.id])).toEqual([
      { is_realm_public: null, is_web_public: null },
    ]);
    expect(await db.query("SELECT is_realm_public, is_web_public FROM zerver_archivedattachment WHERE id = $1", [aat.id])).toEqual([
      { is_realm_public: null, is_web_public: null },
    ]);
    expect((await db.query("SELECT deactivated FROM zerver_channelemailaddress WHERE channel_id = $1", [sandbox.id]))[0].deactivated).toBe(false);

    // Notification Bot's message, as Zulip's Markdown renders it.
    const [m] = await db.query("SELECT m.*, c.name AS client FROM zerver_message m JOIN zerver_client c ON c.id = m.sending_client_id WHERE m.id = $1", [
      doc.notice.message_id,
    ]);
    const [bot] = await db.query("SELECT id FROM zerver_userprofile WHERE delivery_email = 'notification-bot@zulip.com'");
    expect(omit(m, ["id", "date_sent", "sending_client_id", "search_tsvector"])).toEqual({
      type: 1,
      subject: "channel events",
      content: "Channel #**sandbox** has been unarchived.",
      rendered_content: `<p>Channel <a class="stream" data-stream-id="${sandbox.id}" href="/#narrow/channel/${sandbox.id}-sandbox">#sandbox</a> has been unarchived.</p>`,
      rendered_content_version: 1,
      last_edit_time: null,
      edit_history: null,
      has_attachment: false,
      has_image: false,
      has_link: true,
      sender_id: bot.id,
      realm_id: 2,
      recipient_id: sandbox.recipient_id,
      is_channel_message: true,
      client: "Internal",
    });
    const ums = await db.query("SELECT user_profile_id, flags FROM zerver_usermessage WHERE message_id = $1", [m.id]);
    expect(ums.map((u: Row) => [u.user_profile_id, Number(u.flags)])).toEqual([[8, 0]]);
    expect(doc.notice).toEqual({ message_id: Number(m.id), topic: "channel events", recipients_count: 1 });

    for (const key of keys) expect(await client.get(k(key)), key).toBeNull();
    expect(changed(before, await snapshot(db))).toEqual([
      "fts_update_log",
      "zerver_archivedattachment",
      "zerver_attachment",
      "zerver_channelemailaddress",
      "zerver_message",
      "zerver_realmauditlog",
      "zerver_stream",
      "zerver_usermessage",
    ]);
  });

  it("finds channels under the names older releases gave archived channels, and renders names in links", async () => {
    const legacy = await newChannel(db, "Team Design");
    await archive(db, legacy.id, { rename: "!!DEACTIVATED:Team Design" });
    const eight = await newChannel(db, "Café Ünïcode");
    await archive(db, eight.id, { rename: "a1b2c3d!DEACTIVATED:Café Ünïcode" });

    const r1 = await run(["unarchive_channel", "-r", "2", "-c", "Team Design", "--json"]);
    expect(r1.exitCode).toBe(0);
    const d1 = JSON.parse(r1.stdout);
    expect(d1.channel).toMatchObject({ name: { old: "!!DEACTIVATED:Team Design", new: "Team Design" } });
    const [m1] = await db.query("SELECT rendered_content FROM zerver_message WHERE id = $1", [d1.notice.message_id]);
    expect(m1.rendered_content).toBe(
      `<p>Channel <a class="stream" data-stream-id="${legacy.id}" href="/#narrow/channel/${legacy.id}-Team-Design">#Team Design</a> has been unarchived.</p>`,
    );

    const r2 = await run(["unarchive_channel", "-r", "2", "-c", "Café Ünïcode", "-n", "Café Ünïcode 2", "--json"]);
    expect(r2.stderr).toBe("");
    expect(r2.exitCode).toBe(0);
    const d2 = JSON.parse(r2.stdout);
    const [m2] = await db.query("SELECT content, rendered_content FROM zerver_message WHERE id = $1", [d2.notice.message_id]);
    expect(m2.content).toBe("Channel #**Café Ünïcode 2** has been unarchived.");
    // Python's quote(), then "." → ".2E" and "%" → ".", spaces as dashes.
    expect(m2.rendered_content).toContain(`href="/#narrow/channel/${eight.id}-Caf.C3.A9-.C3.9Cn.C3.AFcode-2">#Café Ünïcode 2</a>`);
  });

  it("lists every match when a name is ambiguous", async () => {
    const a = await newChannel(db, "ops");
    await archive(db, a.id, { when: "2026-03-04 05:06:07+00" });
    const b = await newChannel(db, "old ops");
    await archive(db, b.id, { rename: "!DEACTIVATED:ops", when: "2026-03-05 05:06:07.5+00" });
    const before = await snapshot(db);
    const r = await run(["unarchive_channel", "-r", "2", "-c", "ops"]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe(
      `Matching channels:\n  (${a.id}) ops, deactivated on 2026-03-04 05:06:07+00:00\n  (${b.id}) !DEACTIVATED:ops, deactivated on 2026-03-05 05:06:07.500000+00:00`,
    );
    expect(r.stderr).toBe("More than one matching channel found!  Specify which with --channel-id");
    const j = await run(["unarchive_channel", "-r", "2", "-c", "ops", "--json"]);
    expect(j.exitCode).toBe(1);
    expect(JSON.parse(j.stdout)).toMatchObject({
      ok: false,
      error: "More than one matching channel found!  Specify which with --channel-id",
      channel: null,
      matches: [
        { id: Number(a.id), name: "ops", deactivated_at: "2026-03-04T05:06:07Z" },
        { id: Number(b.id), name: "!DEACTIVATED:ops", deactivated_at: "2026-03-05T05:06:07.500000Z" },
      ],
    });
    expect(changed(before, await snapshot(db))).toEqual([]);
    const byId = await run(["unarchive_channel", "-r", "2", "--channel-id", String(b.id), "-n", "old ops"]);
    expect(byId.exitCode).toBe(0);
    expect((await db.query("SELECT name, deactivated FROM zerver_stream WHERE id = $1", [b.id]))[0]).toEqual({ name: "old ops", deactivated: false });
  });

  it("writes no message where Zulip writes none, and says so where it cannot write Zulip's exactly", async () => {
    // Private channel with subscribers: unarchived (is_web_public repaired), no message, a note.
    const priv = await newChannel(db, "secret", { inviteOnly: true });
    await db.query("UPDATE zerver_stream SET is_web_public = true WHERE id = $1", [priv.id]);
    await archive(db, priv.id);
    const p = await run(["unarchive_channel", "-r", "2", "-c", "secret", "--json"]);
    expect(p.exitCode).toBe(0);
    const pd = JSON.parse(p.stdout);
    expect(pd.web_public_cleared).toBe(true);
    expect(pd.notice).toBeNull();
    expect(pd.notes[0]).toContain("links to private channels");
    expect((await db.query("SELECT is_web_public FROM zerver_stream WHERE id = $1", [priv.id]))[0].is_web_public).toBe(false);

    // Private channel nobody is subscribed to: Zulip refuses.
    const lonely = await newChannel(db, "lonely", { inviteOnly: true, subscribers: [] });
    await archive(db, lonely.id);
    const l = await run(["unarchive_channel", "-r", "2", "-c", "lonely"]);
    expect(l.exitCode).toBe(1);
    expect(l.stderr).toBe("Channel is private and have no subscribers");

    // A name with Markdown characters: unarchived, no message, a note.
    const md = await newChannel(db, "a*b");
    await archive(db, md.id);
    const mdr = await run(["unarchive_channel", "-r", "2", "-c", "a*b"]);
    expect(mdr.exitCode).toBe(0);
    expect(mdr.stdout).toContain("was not written: the channel name contains characters");

    // Organization in another language: no message, a note.
    await db.query("UPDATE zerver_realm SET default_language = 'fr' WHERE id = 2");
    const fr = await newChannel(db, "francais");
    await archive(db, fr.id);
    const frr = await run(["unarchive_channel", "-r", "2", "-c", "francais"]);
    expect(frr.stdout).toContain("Zulip would write it in the organization's language (fr)");

    // Channel event messages off (Zulip's default for new organizations): no message, no note.
    await db.query("UPDATE zerver_realm SET send_channel_events_messages = false, default_language = 'en' WHERE id = 2");
    const quiet = await newChannel(db, "quiet");
    await archive(db, quiet.id);
    const [{ n: before }] = await db.query("SELECT count(*)::int AS n FROM zerver_message");
    const q = await run(["unarchive_channel", "-r", "2", "-c", "quiet"]);
    expect([q.exitCode, q.stdout, q.stderr]).toEqual([0, "", ""]);
    const [{ n: after }] = await db.query("SELECT count(*)::int AS n FROM zerver_message");
    expect(after).toBe(before);
  });

  it("refuses a channel of another organization by id", async () => {
    const { createRealm } = await import("../src/zulip/actions/create-realm.js");
    await db.client.query("BEGIN");
    const other = await createRealm(db.client, { stringId: "otherorg", name: "Other" });
    await db.client.query("COMMIT");
    const c = other.channels[0];
    await archive(db, c.id);
    const r = await run(["unarchive_channel", "-r", "2", "--channel-id", String(c.id), "-n", "x"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe(`Channel id ${c.id}, named '${c.name}', is in realm 'otherorg', not ''`);
  });
});

describe("unarchive_channel on a Zulip 11 database", () => {
  it("unarchives and notes the message it does not write", async () => {
    const db = await createDatabase({ template: "zulip11_fresh" });
    const mc = await startMemcached();
    const conf = makeConfDir({ memcached: mc, externalHost: HOST });
    try {
      const [g] = await db.query("SELECT id FROM zerver_stream WHERE realm_id = 2 AND name = 'general'");
      await db.query("UPDATE zerver_stream SET deactivated = true WHERE id = $1", [g.id]);
      const r = await runCli(["unarchive_channel", "-r", "2", "-c", "general", "--json"], { db, confDir: conf });
      expect(r.stderr).toBe("");
      expect(r.exitCode).toBe(0);
      const doc = JSON.parse(r.stdout);
      expect(doc.notice).toBeNull();
      expect(doc.notes[0]).toContain("Zulip releases before 12.0");
      expect((await db.query("SELECT deactivated FROM zerver_stream WHERE id = $1", [g.id]))[0].deactivated).toBe(false);
      const [a] = await db.query("SELECT event_type, modified_stream_id FROM zerver_realmauditlog ORDER BY id DESC LIMIT 1");
      expect(a).toEqual({ event_type: 604, modified_stream_id: String(g.id) });
    } finally {
      conf.cleanup();
      await mc.stop();
      await db.drop();
    }
  });
});
