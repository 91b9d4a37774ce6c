// deactivate_realm, reactivate_realm and send_realm_reactivation_email through the built CLI,
// against a real Zulip 12.2 fresh install (and a seeded organization with several owners and
// administrators), a real memcached (SASL) and an SMTP server in this process.
//
// Every row written is checked column by column against what Zulip's do_deactivate_realm /
// do_reactivate_realm / do_send_realm_reactivation_email write, every other table is
// checksummed before and after, login sessions (rows and cached copies) and memcached keys are
// checked, and the emails are read back from the SMTP server.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUser } from "../src/zulip/actions/create-user.js";
import { ROLES } from "../src/zulip/roles.js";
import { runCli } from "./helpers/cli.js";
import { makeConfDir, type ConfDir } from "./helpers/confdir.js";
import { type MemcachedClient, type MemcachedInstance } from "./helpers/memcached.js";
import { type TestDatabase } from "./helpers/pg.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";
import { addSession } from "./helpers/sessions.js";
import { parseAddress, parseAddressList, startSmtpSink, type SmtpSink } from "./email-support.js";
import { snapshot, changedTables as changed } from "./helpers/snapshot.js";

const HOST = "zulip.example.net";
const ADMIN = "admin@example.net";

// ---------------------------------------------------------------------------------------------
// Helpers (plain SQL and protocol code, independent of the code under test)

const sha1 = (s: string) => crypto.createHash("sha1").update(s).digest("hex");

async function userKeys(db: TestDatabase, realmId: number): Promise<string[]> {
  const users = await db.query("SELECT id, email, delivery_email, api_key FROM zerver_userprofile WHERE realm_id = $1 AND is_active", [realmId]);
  return users.flatMap((u: any) => [
    `user_profile_by_id:${u.id}`,
    `user_profile_by_api_key:${u.api_key}`,
    `user_profile:${sha1(u.email)}:${realmId}`,
    `user_profile_by_delivery_email:${sha1(u.delivery_email)}:${realmId}`,
  ]);
}

const realmKeys = (realmId: number) => [`realm_user_dicts:${realmId}`, `active_user_ids:${realmId}`, `bot_dicts_in_realm:${realmId}`];

async function newAuditRows(db: TestDatabase, after: number): Promise<any[]> {
  return db.query("SELECT * FROM zerver_realmauditlog WHERE id > $1 ORDER BY id", [after]);
}

async function maxAudit(db: TestDatabase): Promise<number> {
  return Number((await db.query("SELECT coalesce(max(id), 0) AS m FROM zerver_realmauditlog"))[0].m);
}

/** realm_user_count_by_role computed independently. */
async function roleCount(db: TestDatabase, realmId: number) {
  const humans: Record<string, number> = { "100": 0, "200": 0, "300": 0, "400": 0, "600": 0 };
  for (const r of await db.query("SELECT role, count(*)::int AS n FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND NOT is_bot GROUP BY role", [
    realmId,
  ])) {
    humans[String(r.role)] = r.n;
  }
  const total = Object.values(humans).reduce((a, b) => a + b, 0);
  const [bots] = await db.query("SELECT count(*)::int AS n FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND is_bot", [realmId]);
  return { "11": { ...humans, workplace_users: total, non_workplace_users: 0 }, "12": bots.n };
}

function expectRecent(d: Date) {
  expect(Math.abs(d.getTime() - Date.now())).toBeLessThan(60_000);
}

// ---------------------------------------------------------------------------------------------

describe("realm lifecycle commands on the real Zulip 12.2 data", () => {
  let db: TestDatabase;
  let client: MemcachedClient;
  let sink: SmtpSink;
  let conf: ConfDir;
  let secret: string;

  let copy: ServerCopy;

  beforeAll(async () => {
    sink = await startSmtpSink();
    copy = await startServerCopy({
      template: "zulip12_fresh",
      client: true,
      externalHost: HOST,
      extraSettings: `EMAIL_HOST = '127.0.0.1'\nEMAIL_PORT = ${sink.port}`,
      conf: { administrator: ADMIN },
    });
    ({ db, conf } = copy);
    client = copy.client!;
    secret = conf.secrets.secret_key;
  });
  afterAll(async () => {
    await copy?.stop();
    await sink?.close();
  });

  const run = (args: string[]) => runCli(args, { db, confDir: conf });
  const k = (key: string) => `:1:${conf.cachePrefix}${key}`;

  it("deactivate_realm --dry-run reports and changes nothing", async () => {
    const before = await snapshot(db);
    const r = await run(["deactivate_realm", "-r", "2", "--deactivation_reason", "owner_request", "--email_owners", "--dry-run"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("Would deactivate 2 (reason: owner_request): 2 scheduled email(s) removed, 0 login session(s) ended.");
    expect(r.stdout).toContain("Would email 1 organization owner(s): test@test.com");
    expect(changed(before, await snapshot(db))).toEqual([]);
    expect(sink.messages).toHaveLength(0);
  });

  it("deactivates like do_deactivate_realm: flag, audit row, scheduled emails, sessions, caches, owner email", async () => {
    const [owner] = await db.query("SELECT * FROM zerver_userprofile WHERE id = 8");
    const live = await addSession(db, 8, secret);
    const liveCached = `:1:django.contrib.sessions.cached_db${live}`;
    const expired = await addSession(db, 8, secret, { expired: true });
    const forged = await addSession(db, 8, "not-the-secret-key");
    const otherRealm = await addSession(db, 1, secret); // a system bot's session: not this realm
    await client.set(liveCached, "cached session");
    const keys = [...(await userKeys(db, 2)), ...realmKeys(2), "realm_rendered_description:", "realm_alert_words:2"];
    for (const key of keys) await client.set(k(key), "x");
    await client.set(k("user_profile_by_id:1"), "system bot");
    const before = await snapshot(db);
    const audit = await maxAudit(db);
    const scheduled = await db.query("SELECT id FROM zerver_scheduledemail WHERE realm_id = 2");
    expect(scheduled).toHaveLength(2);

    const r = await run(["deactivate_realm", "-r", "2", "--deactivation_reason", "owner_request", "--email_owners"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("Deactivating 2\nDone!");

    const [realm] = await db.query("SELECT * FROM zerver_realm WHERE id = 2");
    expect(realm.deactivated).toBe(true);
    expect(realm.scheduled_deletion_date).toBeNull();
    expect(realm.deactivated_redirect).toBeNull();
    const rows = await newAuditRows(db, audit);
    expect(rows).toHaveLength(1);
    const a = rows[0];
    expect({ ...a, id: undefined, event_time: undefined }).toEqual({
      id: undefined,
      event_time: undefined,
      realm_id: 2,
      event_type: 201,
      acting_user_id: null,
      modified_user_id: null,
      modified_stream_id: null,
      modified_user_group_id: null,
      modified_channel_folder_id: null,
      event_last_message_id: null,
      backfilled: false,
      scrubbed: false,
      extra_data: { "10": await roleCount(db, 2), deactivation_reason: "owner_request" },
    });
    expectRecent(a.event_time);
    expect(a.extra_data["10"]["11"]["100"]).toBe(1);
    // Scheduled emails and their recipient rows are gone; users are not deactivated.
    expect(await db.query("SELECT * FROM zerver_scheduledemail WHERE realm_id = 2")).toEqual([]);
    expect(await db.query("SELECT * FROM zerver_scheduledemail_users WHERE scheduledemail_id = ANY($1::bigint[])", [scheduled.map((s: any) => s.id)])).toEqual(
      [],
    );
    expect((await db.query("SELECT is_active FROM zerver_userprofile WHERE id = 8"))[0].is_active).toBe(true);
    // Sessions: the live one of the realm's user is deleted (row and cache); expired, unverifiable
    // and other realms' sessions stay, as delete_realm_user_sessions leaves them.
    const left = (await db.query("SELECT session_key FROM django_session")).map((s: any) => s.session_key);
    expect(left).not.toContain(live);
    for (const key of [expired, forged, otherRealm]) expect(left).toContain(key);
    expect(await client.get(liveCached)).toBeNull();
    // Memcached: flush_realm of a deactivated realm.
    for (const key of keys) expect(await client.get(k(key)), key).toBeNull();
    expect(await client.get(k("user_profile_by_id:1"))).not.toBeNull();
    // Nothing else changed.
    expect(changed(before, await snapshot(db))).toEqual([
      "django_session",
      "zerver_realm",
      "zerver_realmauditlog",
      "zerver_scheduledemail",
      "zerver_scheduledemail_users",
    ]);

    // The owner's email.
    expect(sink.messages).toHaveLength(1);
    const m = sink.messages[0];
    expect(m.envelopeTo).toEqual(["test@test.com"]);
    expect(m.envelopeFrom).toBe(`noreply@${HOST}`);
    expect(parseAddress(m.parsed.header("from")!)).toEqual({ name: `${HOST} account security`, address: ADMIN });
    expect(m.parsed.header("to")).toBe("test@test.com");
    expect(m.parsed.header("subject")).toBe("Your Zulip organization testing has been deactivated");
    expect(m.parsed.header("list-id")).toBe(`testing <${HOST}>`);
    expect(m.parsed.header("reply-to")).toBeUndefined();
    // en-gb owner: Django's British date format, in the owner's time zone.
    const tz = owner.timezone || "UTC";
    const parts = Object.fromEntries(
      new Intl.DateTimeFormat("en-GB", { timeZone: tz, day: "numeric", month: "short", year: "numeric" })
        .formatToParts(a.event_time)
        .map((p) => [p.type, p.value]),
    );
    const date = `${parts.day} ${parts.month.slice(0, 3)} ${parts.year}`;
    expect(owner.default_language).toBe("en-gb");
    expect(m.parsed.text).toBe(
      `Your Zulip organization, testing, was deactivated on ${date}.\n\nIf you have any questions or concerns, please reply to this email as soon as possible.`,
    );
    expect(m.parsed.html).toContain(`Your Zulip organization, testing, was deactivated on ${date}.`);
    const log = fs.readFileSync(path.join(conf.logDir, "send_email.log"), "utf8");
    expect(log).toContain("Sending realm_deactivated email to ['test@test.com'] in ");
  });

  it("stores a redirect URL even on a deactivated realm, and stops there", async () => {
    const audit = await maxAudit(db);
    await client.set(k("user_profile_by_id:8"), "x");
    const before = await snapshot(db);
    const r = await run(["deactivate_realm", "-r", "", "--deactivation_reason", "tos_violation", "--redirect_url", "https://moved.example.com", "--json"]);
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({
      redirect_url: "https://moved.example.com",
      redirect_set: true,
      already_deactivated: true,
      deactivated: { old: true, new: true },
      audit_log_ids: [],
    });
    expect((await db.query("SELECT deactivated_redirect FROM zerver_realm WHERE id = 2"))[0].deactivated_redirect).toBe("https://moved.example.com");
    expect(await newAuditRows(db, audit)).toEqual([]);
    expect(changed(before, await snapshot(db))).toEqual(["zerver_realm"]);
    expect(await client.get(k("user_profile_by_id:8"))).toBeNull();
    const text = await run(["deactivate_realm", "-r", "2", "--deactivation_reason", "x"]);
    expect(text.stdout).toBe("The realm 2 is already deactivated.");
    // manage.py: print("Setting the redirect URL to", url), then the realm's state.
    const again = await run(["deactivate_realm", "-r", "2", "--deactivation_reason", "x", "--redirect_url", "https://moved.example.com"]);
    expect(again.stdout).toBe("Setting the redirect URL to https://moved.example.com\nThe realm 2 is already deactivated.");
    expect(sink.messages).toHaveLength(1);
  });

  it("send_realm_reactivation_email writes the status, confirmation and audit rows and emails the admins", async () => {
    const audit = await maxAudit(db);
    const before = await snapshot(db);
    const r = await run(["send_realm_reactivation_email", "-r", "2"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("Sending email to admins\nDone!");
    expect(changed(before, await snapshot(db))).toEqual(["confirmation_confirmation", "zerver_realmauditlog", "zerver_realmreactivationstatus"]);
    const [status] = await db.query("SELECT * FROM zerver_realmreactivationstatus");
    expect({ ...status, id: undefined }).toEqual({ id: undefined, status: 0, realm_id: 2 });
    const [conf8] = await db.query(
      `SELECT c.*, ct.app_label, ct.model FROM confirmation_confirmation c JOIN django_content_type ct ON ct.id = c.content_type_id WHERE c.type = 8`,
    );
    expect({ ...conf8, object_id: Number(conf8.object_id) }).toMatchObject({
      app_label: "zerver",
      model: "realmreactivationstatus",
      object_id: Number(status.id),
      realm_id: 2,
    });
    expect(conf8.confirmation_key).toMatch(/^[a-z2-7]{24}$/);
    expect(conf8.expiry_date.getTime() - conf8.date_sent.getTime()).toBe(86400_000);
    expectRecent(conf8.date_sent);
    const rows = await newAuditRows(db, audit);
    expect(rows.map((x) => [x.event_type, x.acting_user_id, x.modified_user_id, x.extra_data])).toEqual([[212, null, null, {}]]);

    const m = sink.messages[sink.messages.length - 1];
    expect(m.parsed.header("subject")).toBe("Reactivate your Zulip organization");
    expect(parseAddressList(m.parsed.header("to")!)).toEqual([{ name: "tester", address: "test@test.com" }]);
    const from = parseAddress(m.parsed.header("from")!);
    expect(from.name).toBe(`${HOST} account security`);
    expect(from.address).toMatch(new RegExp(`^noreply-[a-z2-7]{24}@${HOST.replace(/\./g, "\\.")}$`));
    expect(m.parsed.header("list-id")).toBe(`testing <${HOST}>`);
    const url = `https://${HOST}/reactivate/${conf8.confirmation_key}`;
    expect(m.parsed.text).toBe(
      "Dear former administrators of testing,\n\n" +
        `One of your administrators requested reactivation of the previously deactivated Zulip organization hosted at https://${HOST}.\n\n` +
        "Click the link below to reactivate your organization.\n" +
        `    <${url}>\n\n` +
        "If the request was in error, you can take no action and this link will expire in 24 hours.\n\n" +
        `If you have any questions, please contact this Zulip server's administrators at ${ADMIN}.`,
    );
    expect(m.parsed.html).toContain(`href="${url}"`);
    const log = fs.readFileSync(path.join(conf.logDir, "send_email.log"), "utf8");
    expect(log).toMatch(/Sending realm_reactivation email to \['tester <test@test\.com>'\]\n/);
  });

  it("reactivate_realm: flag and scheduled deletion cleared, audit row, redirect kept, user caches only", async () => {
    await db.query("UPDATE zerver_realm SET scheduled_deletion_date = now() + interval '30 days' WHERE id = 2");
    const keys = await userKeys(db, 2);
    for (const key of [...keys, ...realmKeys(2)]) await client.set(k(key), "x");
    const audit = await maxAudit(db);
    const before = await snapshot(db);
    const r = await run(["reactivate_realm", "-r", "2"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("Reactivating 2\nDone!");
    const [realm] = await db.query("SELECT deactivated, scheduled_deletion_date, deactivated_redirect FROM zerver_realm WHERE id = 2");
    expect(realm).toEqual({ deactivated: false, scheduled_deletion_date: null, deactivated_redirect: "https://moved.example.com" });
    const rows = await newAuditRows(db, audit);
    expect(rows.map((x) => [x.event_type, x.acting_user_id, x.modified_user_id, x.modified_stream_id, x.extra_data])).toEqual([
      [202, null, null, null, { "10": await roleCount(db, 2) }],
    ]);
    expectRecent(rows[0].event_time);
    expect(changed(before, await snapshot(db))).toEqual(["zerver_realm", "zerver_realmauditlog"]);
    for (const key of keys) expect(await client.get(k(key))).toBeNull();
    // flush_realm of an active realm leaves the realm-wide keys alone, as Zulip does.
    for (const key of realmKeys(2)) expect(await client.get(k(key))).not.toBeNull();

    const again = await run(["reactivate_realm", "-r", "2", "--json"]);
    expect(JSON.parse(again.stdout)).toMatchObject({ already_active: true, reactivated: false, audit_log_ids: [] });
    const refused = await run(["send_realm_reactivation_email", "-r", "2"]);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toBe("The realm testing is already active.");
  });

  it("reports unknown realms and missing arguments the way manage.py does", async () => {
    const r = await run(["deactivate_realm", "-r", "nosuch", "--deactivation_reason", "x"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe("There is no realm with id 'nosuch'. Aborting.");
    const u = await run(["deactivate_realm", "-r", "2"]);
    expect(u.exitCode).toBe(2);
    expect(u.stderr).toContain("the following arguments are required: --deactivation_reason");
  });
});

describe("realm lifecycle commands on a seeded organization", () => {
  let db: TestDatabase;
  let sink: SmtpSink;
  let mc: MemcachedInstance;
  let conf: ConfDir;
  let realmId: number;
  const people: Record<string, number> = {};

  let copy: ServerCopy;

  beforeAll(async () => {
    sink = await startSmtpSink();
    copy = await startServerCopy({
      template: "zulip12_fresh",
      externalHost: HOST,
      extraSettings: `EMAIL_HOST = '127.0.0.1'\nEMAIL_PORT = ${sink.port}`,
      conf: { administrator: `Zulip Admins <${ADMIN}>` },
    });
    ({ db, mc, conf } = copy);
    await db.client.query("BEGIN");
    const { createRealm } = await import("../src/zulip/actions/create-realm.js");
    const realm = await createRealm(db.client, { stringId: "acme", name: "Acme & Co", orgType: 10 });
    realmId = realm.id;
    const add = async (name: string, role: number, extra: Record<string, unknown> = {}) => {
      const u = await createUser(db.client, realm, {
        email: `${name}@acme.example`,
        fullName: name[0].toUpperCase() + name.slice(1),
        role,
        externalHost: HOST,
        ...extra,
      });
      people[name] = u.id;
    };
    await add("alice", ROLES.REALM_OWNER, { timezone: "Pacific/Kiritimati", defaultLanguage: "en" });
    await add("bob", ROLES.REALM_OWNER, { timezone: "Pacific/Pago_Pago", defaultLanguage: "de" });
    await add("carol", ROLES.REALM_ADMINISTRATOR);
    await add("dave", ROLES.MEMBER);
    await add("erin", ROLES.REALM_OWNER, { isActive: false });
    await add("bot", ROLES.REALM_OWNER, { botType: 1, botOwnerId: people.alice });
    await db.client.query("COMMIT");
  });
  afterAll(async () => {
    await copy?.stop();
    await sink?.close();
  });
  const run = (args: string[]) => runCli(args, { db, confDir: conf });

  it("emails every active human owner, dated in each owner's time zone", async () => {
    const when = new Date();
    const r = await run(["deactivate_realm", "-r", "acme", "--deactivation_reason", "inactivity", "--email_owners", "--json"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.deactivated).toEqual({ old: false, new: true });
    expect(doc.results.map((e: any) => [e.user.delivery_email, e.user.role, e.status, e.ok])).toEqual([
      ["alice@acme.example", "owner", "done", true],
      ["bob@acme.example", "owner", "done", true],
    ]);
    expect(doc.results[1].language_note).toContain("de");
    expect(doc.audit_log_ids).toHaveLength(1);
    const [audit] = await db.query("SELECT extra_data FROM zerver_realmauditlog WHERE id = $1", [doc.audit_log_ids[0]]);
    expect(audit.extra_data).toEqual({
      "10": { "11": { "100": 2, "200": 1, "300": 0, "400": 1, "600": 0, workplace_users: 4, non_workplace_users: 0 }, "12": 1 },
      deactivation_reason: "inactivity",
    });
    const mails = sink.messages.slice(-2);
    // Kiritimati is UTC+14, Pago Pago UTC-11: the dates differ from each other by a day.
    const date = (tz: string) => {
      const p = Object.fromEntries(
        new Intl.DateTimeFormat("en-US", { timeZone: tz, year: "numeric", month: "numeric", day: "numeric" }).formatToParts(when).map((x) => [x.type, x.value]),
      );
      const ap = ["Jan.", "Feb.", "March", "April", "May", "June", "July", "Aug.", "Sept.", "Oct.", "Nov.", "Dec."][Number(p.month) - 1];
      return `${ap} ${p.day}, ${p.year}`;
    };
    expect(mails.map((m) => m.parsed.header("subject"))).toEqual([
      "Your Zulip organization Acme & Co has been deactivated",
      "Your Zulip organization Acme & Co has been deactivated",
    ]);
    expect(mails[0].parsed.text).toContain(`Your Zulip organization, Acme & Co, was deactivated on ${date("Pacific/Kiritimati")}.`);
    expect(mails[1].parsed.text).toContain(`was deactivated on ${date("Pacific/Pago_Pago")}.`);
    expect(mails[0].parsed.html).toContain("Acme &amp; Co");
    // Python's formataddr quotes only for its specials ([]\()<>@,:;".), not "&".
    expect(mails[0].parsed.header("list-id")).toBe(`Acme & Co <acme.${HOST}>`);
    expect(parseAddress(mails[0].parsed.header("from")!).address).toBe(ADMIN);
  });

  it("sends one reactivation email to all active human owners and administrators", async () => {
    const r = await run(["send_realm_reactivation_email", "-r", "acme", "--json"]);
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.recipients.map((x: any) => [x.email, x.role])).toEqual([
      ["alice@acme.example", "owner"],
      ["bob@acme.example", "owner"],
      ["carol@acme.example", "administrator"],
    ]);
    const m = sink.messages[sink.messages.length - 1];
    expect(m.envelopeTo).toEqual(["alice@acme.example", "bob@acme.example", "carol@acme.example"]);
    expect(doc.confirmation.url).toBe(`https://acme.${HOST}/reactivate/${doc.confirmation.key}`);
    expect(m.parsed.text).toContain(`<${doc.confirmation.url}>`);
    expect(m.parsed.text).toContain("Dear former administrators of Acme & Co,");
  });

  it("refuses to send a reactivation email nobody would receive, writing nothing", async () => {
    await db.query("UPDATE zerver_userprofile SET role = 400 WHERE realm_id = $1 AND role IN (100, 200)", [realmId]);
    try {
      const before = await snapshot(db);
      const r = await run(["send_realm_reactivation_email", "-r", "acme"]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain("has no active human owner or administrator");
      expect(changed(before, await snapshot(db))).toEqual([]);
    } finally {
      await db.query("UPDATE zerver_userprofile SET role = 100 WHERE id = ANY($1::int[])", [[people.alice, people.bob]]);
      await db.query("UPDATE zerver_userprofile SET role = 200 WHERE id = $1", [people.carol]);
    }
  });

  it("refuses --email_owners before changing anything when email is not configured", async () => {
    const noMail = makeConfDir({ externalHost: HOST, memcached: mc });
    try {
      await db.query("UPDATE zerver_realm SET deactivated = false WHERE id = $1", [realmId]);
      const before = await snapshot(db);
      const r = await runCli(["deactivate_realm", "-r", "acme", "--deactivation_reason", "x", "--email_owners"], { db, confDir: noMail });
      expect(r.exitCode).toBe(3);
      expect(r.stderr).toContain("EMAIL_HOST is not set");
      expect(changed(before, await snapshot(db))).toEqual([]);
      const plain = await runCli(["deactivate_realm", "-r", "acme", "--deactivation_reason", "x"], { db, confDir: noMail });
      expect(plain.exitCode).toBe(0);
    } finally {
      noMail.cleanup();
    }
  });
});
