// create_user through the built CLI on a copy of a real Zulip 12.2 server (its organization,
// owner, default channels, Welcome Bot's onboarding messages and their OnboardingUserMessage
// tracking), with a real memcached: the new user's row against the organization's
// RealmUserDefault and the real owner's row, memberships, audit rows, subscriptions, message
// history flags, welcome ScheduledEmails, PreregistrationUser / invitation reminder cleanup,
// the signup announcement with its UserMessage rows, cache keys, and the refusals. The same on
// the Zulip 11 and 10 test databases (their realm 2 and owner, with the personal recipient and
// subscription those releases give every user, and every foreign key checked), and the refusal
// of a schema with a required column it does not know.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.js";
import { makeConfDir, type ConfDir } from "./helpers/confdir.js";
import type { MemcachedClient } from "./helpers/memcached.js";
import { createDatabase, type TestDatabase } from "./helpers/pg.js";
import { snapshot, type Snapshot, foreignKeyViolations, changedTables as changed } from "./helpers/snapshot.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";

const HOST = "zulip.example.net";
type Row = Record<string, any>;

const omit = (row: Row, keys: string[]) => Object.fromEntries(Object.entries(row).filter(([k]) => !keys.includes(k)));
const sha1 = (s: string) => crypto.createHash("sha1").update(s).digest("hex");

/**
 * The new member's direct groups (members and full members) and the audit rows written after
 * `maxAudit`: 101, the two 703 memberships, and a 301 per default channel. Returns the rows.
 */
async function expectMemberSignupRows(db: TestDatabase, userId: number, maxAudit: number, lastMessage: number): Promise<Row[]> {
  const groups = await db.query(
    "SELECT n.name FROM zerver_usergroupmembership m JOIN zerver_namedusergroup n ON n.usergroup_ptr_id = m.user_group_id WHERE m.user_profile_id = $1 ORDER BY 1",
    [userId],
  );
  expect(groups.map((g: Row) => g.name)).toEqual(["role:fullmembers", "role:members"]);
  const audits = await db.query(
    `SELECT a.event_type, a.acting_user_id, a.modified_user_id, a.extra_data, a.event_last_message_id, n.name AS grp, s.name AS stream
       FROM zerver_realmauditlog a LEFT JOIN zerver_namedusergroup n ON n.usergroup_ptr_id = a.modified_user_group_id
       LEFT JOIN zerver_stream s ON s.id = a.modified_stream_id WHERE a.id > $1 ORDER BY a.id`,
    [maxAudit],
  );
  expect(
    audits.map((a: Row) => [
      a.event_type,
      a.acting_user_id,
      a.modified_user_id,
      a.grp,
      a.stream,
      a.event_last_message_id === null ? null : Number(a.event_last_message_id),
    ]),
  ).toEqual([
    [101, userId, userId, null, null, null],
    [703, userId, userId, "role:members", null, null],
    [703, userId, userId, "role:fullmembers", null, null],
    [301, null, userId, null, "Zulip", lastMessage],
    [301, null, userId, null, "sandbox", lastMessage],
    [301, null, userId, null, "general", lastMessage],
  ]);
  return audits;
}

describe("create_user on a copy of a real Zulip 12.2 server", () => {
  let db: TestDatabase;
  let client: MemcachedClient;
  let conf: ConfDir;
  let copy: ServerCopy;
  let tmp: string;

  beforeAll(async () => {
    copy = await startServerCopy({ template: "zulip12_fresh", externalHost: HOST, client: true });
    ({ db, conf } = copy);
    client = copy.client!;
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "zm-create-user-"));
  });
  afterAll(async () => {
    fs.rmSync(tmp, { recursive: true, force: true });
    await copy?.stop();
  });
  const run = (args: string[], input?: string) => runCli(args, { db, confDir: conf, ...(input !== undefined ? { input } : {}) });
  const k = (key: string) => `:1:${conf.cachePrefix}${key}`;

  let doc: Row;
  let user: Row;
  let before: Snapshot;
  let maxAudit: number;
  let preregId: number;
  let reminderId: number;
  let lastMessage: number;

  it("refuses bad input with manage.py's messages and writes nothing", async () => {
    const s = await snapshot(db);
    const bad = await run(["create_user", "-r", "2", "no-at-sign", "X"]);
    expect([bad.exitCode, bad.stderr]).toEqual([1, "Invalid email address."]);
    const dup = await run(["create_user", "-r", "2", "TEST@test.com", "Again"]);
    expect([dup.exitCode, dup.stderr]).toEqual([1, "User already exists."]);
    const realm = await run(["create_user", "-r", "nosuch", "a@b.example", "A"]);
    expect(realm.stderr).toBe("There is no realm with id 'nosuch'. Aborting.");
    const noRealm = await run(["create_user", "a@b.example", "A"]);
    expect(noRealm.exitCode).toBe(2);
    const dry = await run(["create_user", "-r", "2", "new@example.org", "New Person", "--dry-run"]);
    expect(dry.stdout).toContain('Would create new@example.org ("New Person") in the root-domain organization, subscribed to Zulip, general, sandbox.');
    expect(changed(s, await snapshot(db))).toEqual([]);
  });

  it("creates the user with everything do_create_user and process_new_human_user write", async () => {
    // An old invitation to the same address, and a reminder email for it.
    const [p] = await db.query(
      `INSERT INTO zerver_preregistrationuser (email, full_name_validated, invited_at, realm_creation, password_required, status, invited_as,
                                               include_realm_default_subscriptions, realm_id, notify_referrer_on_join, is_realm_importer)
       VALUES ('NEW@example.org', false, now(), false, true, 0, 400, true, 2, true, false) RETURNING id`,
    );
    preregId = Number(p.id);
    const [r1] = await db.query(
      `INSERT INTO zerver_scheduledemail (scheduled_timestamp, data, address, type, realm_id) VALUES (now() + interval '1 day', '{}', 'new@EXAMPLE.org', 3, 2) RETURNING id`,
    );
    reminderId = Number(r1.id);
    for (const key of ["realm_user_dicts:2", "active_user_ids:2", "active_non_guest_user_ids:2"]) await client.set(k(key), "x");
    before = await snapshot(db);
    maxAudit = Number((await db.query("SELECT max(id) AS m FROM zerver_realmauditlog"))[0].m);
    lastMessage = Number((await db.query("SELECT max(id) AS m FROM zerver_message"))[0].m);
    const pw = path.join(tmp, "pw");
    fs.writeFileSync(pw, "a sufficiently long passphrase 17\n");
    const r = await run(["create_user", "-r", "2", "new@Example.ORG", "New Person", "--password-file", pw, "--json"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    doc = JSON.parse(r.stdout);
    [user] = await db.query("SELECT * FROM zerver_userprofile WHERE id = $1", [doc.user.id]);
    expect(doc.user).toMatchObject({ delivery_email: "new@example.org", full_name: "New Person", role: "member", password: "set" });
    expect(doc.not_done.join("\n")).toContain("Welcome Bot's onboarding direct message");
    expect(doc.signup_announcement).toBeNull();
  });

  it("takes the organization's default settings and Zulip's identity columns", async () => {
    const [rud] = await db.query("SELECT * FROM zerver_realmuserdefault WHERE realm_id = 2");
    for (const [col, v] of Object.entries(omit(rud, ["id", "realm_id", "default_language", "enable_login_emails", "allow_private_data_export"]))) {
      expect(user[col], col).toEqual(v);
    }
    expect(user).toMatchObject({
      role: 400,
      tos_version: "-1",
      is_active: true,
      is_bot: false,
      default_language: "en-gb", // the organization's language
      enable_login_emails: true,
      allow_private_data_export: false,
      can_create_users: false,
      can_forge_sender: false,
      timezone: "",
      avatar_source: "J",
      email: `user${user.id}@${HOST}`, // email_address_visibility 3: a fake display address
    });
    expect(user.password).toMatch(/^argon2\$argon2id\$/);
    expect(user.api_key).toMatch(/^[A-Za-z0-9]{32}$/);
    // The real owner differs only in what the owner's signup or role changed.
    const [owner] = await db.query("SELECT * FROM zerver_userprofile WHERE id = 8");
    const differ = Object.keys(user)
      .filter((c) => JSON.stringify(user[c]) !== JSON.stringify(owner[c]))
      .sort();
    expect(differ).toEqual(
      [
        "api_key",
        "can_create_users",
        "date_joined",
        "delivery_email",
        "email",
        "email_address_visibility",
        "enable_marketing_emails",
        "full_name",
        "id",
        "last_login",
        "password",
        "role",
        "timezone",
        "tos_version",
        "uuid",
      ].sort(),
    );
  });

  it("adds the memberships, audit rows, subscriptions and message history", async () => {
    const audits = await expectMemberSignupRows(db, user.id, maxAudit, lastMessage);
    expect(audits[0].extra_data).toEqual({
      "10": { "11": { "100": 1, "200": 0, "300": 0, "400": 1, "600": 0, workplace_users: 2, non_workplace_users: 0 }, "12": 0 },
    });
    const subs = await db.query(
      `SELECT s.name, sub.color, sub.active, sub.is_user_active, s.subscriber_count FROM zerver_subscription sub
         JOIN zerver_stream s ON s.recipient_id = sub.recipient_id WHERE sub.user_profile_id = $1 ORDER BY s.recipient_id`,
      [user.id],
    );
    // The owner's subscriptions got the first palette colours; the new user's too.
    const ownerSubs = await db.query(
      `SELECT s.name, sub.color FROM zerver_subscription sub JOIN zerver_stream s ON s.recipient_id = sub.recipient_id WHERE sub.user_profile_id = 8 ORDER BY s.recipient_id`,
    );
    expect(subs.map((x: Row) => [x.name, x.color, x.active, x.is_user_active, x.subscriber_count])).toEqual(
      ownerSubs.map((o: Row) => [o.name, o.color, true, true, 2]),
    );
    // History: every channel message; the tracked onboarding messages unread (starred where
    // Welcome Bot starred them), the others read; all historical.
    const ums = await db.query(
      `SELECT um.message_id, um.flags, o.flags AS onboarding FROM zerver_usermessage um
         LEFT JOIN zerver_onboardingusermessage o ON o.message_id = um.message_id WHERE um.user_profile_id = $1 ORDER BY um.message_id`,
      [user.id],
    );
    const channelMessages = await db.query("SELECT id FROM zerver_message WHERE is_channel_message AND realm_id = 2 ORDER BY id");
    expect(ums.map((u: Row) => Number(u.message_id))).toEqual(channelMessages.map((m: Row) => Number(m.id)));
    for (const u of ums) {
      const expected = 1024 | (u.onboarding === null ? 1 : u.onboarding & 4 ? 2 : 0);
      expect(Number(u.flags), `message ${u.message_id}`).toBe(expected);
    }
    expect(ums.some((u: Row) => Number(u.flags) === 1026)).toBe(true);
  });

  it("revokes the old invitation, drops its reminder, schedules the welcome email and marks the banner", async () => {
    const [p] = await db.query("SELECT status FROM zerver_preregistrationuser WHERE id = $1", [preregId]);
    expect(p.status).toBe(2);
    expect(await db.query("SELECT 1 FROM zerver_scheduledemail WHERE id = $1", [reminderId])).toEqual([]);
    const emails = await db.query(
      `SELECT e.type, e.address, e.data, u.userprofile_id FROM zerver_scheduledemail e JOIN zerver_scheduledemail_users u ON u.scheduledemail_id = e.id WHERE u.userprofile_id = $1`,
      [user.id],
    );
    // Not the organization's creator, org type "other" (no guide): only onboarding_zulip_topics.
    expect(emails.map((e: Row) => JSON.parse(e.data).template_prefix)).toEqual(["zerver/emails/onboarding_zulip_topics"]);
    const ctx = JSON.parse(emails[0].data).context;
    const [unsub] = await db.query("SELECT confirmation_key FROM confirmation_confirmation WHERE type = 4 AND object_id = $1", [user.id]);
    expect(ctx).toEqual({
      realm_url: `https://${HOST}`,
      realm_name: "testing",
      root_domain_url: `https://${HOST}`,
      external_url_scheme: "https://",
      external_host: HOST,
      user_name: "New Person",
      corporate_enabled: false,
      unsubscribe_link: `https://${HOST}/accounts/unsubscribe/welcome/${unsub.confirmation_key}`,
      move_messages_link: `https://${HOST}/help/move-content-to-another-topic`,
      rename_topics_link: `https://${HOST}/help/rename-a-topic`,
      move_channels_link: `https://${HOST}/help/move-content-to-another-channel`,
    });
    expect((await db.query("SELECT onboarding_step FROM zerver_onboardingstep WHERE user_id = $1", [user.id])).map((r: Row) => r.onboarding_step)).toEqual([
      "visibility_policy_banner",
    ]);
  });

  it("changes nothing else, and clears the realm's user lists in memcached", async () => {
    expect(changed(before, await snapshot(db))).toEqual([
      "confirmation_confirmation",
      "zerver_onboardingstep",
      "zerver_preregistrationuser",
      "zerver_realmauditlog",
      "zerver_scheduledemail",
      "zerver_scheduledemail_users",
      "zerver_stream",
      "zerver_subscription",
      "zerver_usergroupmembership",
      "zerver_usermessage",
      "zerver_userprofile",
    ]);
    for (const key of ["realm_user_dicts:2", "active_user_ids:2", "active_non_guest_user_ids:2"]) expect(await client.get(k(key)), key).toBeNull();
    expect(doc.cache.keys_deleted).toBeGreaterThanOrEqual(3);
    void sha1;
  });

  it("posts Notification Bot's signup announcement where the organization has a signups channel", async () => {
    const [general] = await db.query("SELECT id, recipient_id FROM zerver_stream WHERE realm_id = 2 AND name = 'general'");
    await db.query("UPDATE zerver_realm SET signup_announcements_stream_id = $1, default_language = 'en' WHERE id = 2", [general.id]);
    await db.query("UPDATE zerver_userprofile SET long_term_idle = true WHERE id IN (8, $1)", [user.id]);
    await db.query("INSERT INTO zerver_alertword (word, user_profile_id, realm_id) VALUES ('JOINED', $1, 2)", [user.id]);
    const r = await run(["create_user", "-r", "2", "third@example.org", "Ann O'Neil-Smith", "--json"]);
    expect(r.exitCode).toBe(0);
    const d = JSON.parse(r.stdout);
    expect(d.signup_announcement).toMatchObject({ channel: "general" });
    const [m] = await db.query(`SELECT m.*, c.name AS client FROM zerver_message m JOIN zerver_client c ON c.id = m.sending_client_id WHERE m.id = $1`, [
      d.signup_announcement.message_id,
    ]);
    const [bot] = await db.query("SELECT id FROM zerver_userprofile WHERE delivery_email = 'notification-bot@zulip.com'");
    expect(omit(m, ["id", "date_sent", "search_tsvector"])).toEqual({
      type: 1,
      subject: "signups",
      content: `@_**Ann O'Neil-Smith|${d.user.id}** joined this organization.`,
      rendered_content: `<p><span class="user-mention silent" data-user-id="${d.user.id}">Ann O'Neil-Smith</span> joined this organization.</p>`,
      rendered_content_version: 1,
      last_edit_time: null,
      edit_history: null,
      has_attachment: false,
      has_image: false,
      has_link: false,
      sender_id: bot.id,
      sending_client_id: m.sending_client_id,
      realm_id: 2,
      recipient_id: general.recipient_id,
      is_channel_message: true,
      client: "Internal",
    });
    const rows = await db.query("SELECT user_profile_id, flags FROM zerver_usermessage WHERE message_id = $1 ORDER BY user_profile_id", [m.id]);
    // The owner (idle, nothing to notify) gets no row; the idle user with a matching alert word
    // gets one with has_alert_word; the new user an ordinary one.
    expect(rows.map((x: Row) => [x.user_profile_id, Number(x.flags)])).toEqual([
      [user.id, 512],
      [d.user.id, 0],
    ]);
    const [fts] = await db.query("SELECT count(*)::int AS n FROM fts_update_log WHERE message_id = $1", [m.id]);
    expect(fts.n).toBe(1);

    // A name Zulip's Markdown could format differently: no message, and a note saying so.
    const odd = await run(["create_user", "-r", "2", "fourth@example.org", "**Bold** `name`"]);
    expect(odd.exitCode).toBe(0);
    expect(odd.stdout).toContain("announcement in #general was not written: the name contains characters");
    // A non-English organization: no message either.
    await db.query("UPDATE zerver_realm SET default_language = 'de' WHERE id = 2");
    const de = await run(["create_user", "-r", "2", "fifth@example.org", "Fünf"]);
    expect(de.stdout).toContain("Zulip would write it in the organization's language (de)");
  });

  it("refuses a weak password with Zulip's rule, and reads missing arguments from stdin", async () => {
    const weak = path.join(tmp, "weak");
    fs.writeFileSync(weak, "password\n");
    const r = await run(["create_user", "-r", "2", "weak@example.org", "Weak", "--password-file", weak]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("The password is too weak.");
    const p = await run(["create_user", "-r", "2", "--password", "Xk9#mq!Lp2$vRz"], "stdin@example.org\nFrom Stdin\n");
    expect(p.exitCode).toBe(0);
    expect(p.stderr).toContain("Passing password on the command line is insecure; prefer --password-file.");
    const [u] = await db.query("SELECT full_name FROM zerver_userprofile WHERE delivery_email = 'stdin@example.org'");
    expect(u.full_name).toBe("From Stdin");
  });
});

// The Zulip 11 / 10 templates: the 12.2 install converted by test/fixtures/zulip11.sql /
// zulip10.sql (its realm 2 and owner 8 in that release's shape, with personal recipients).
describe.each([
  ["11.x", "zulip11_fresh"],
  ["10.x", "zulip10_fresh"],
] as const)("create_user on a Zulip %s database", (_series, template) => {
  let db: TestDatabase;
  let conf: ConfDir;
  let copy: ServerCopy;
  let doc: Row;
  let user: Row;
  let before: Snapshot;
  let maxAudit: number;
  let lastMessage: number;

  beforeAll(async () => {
    copy = await startServerCopy({ template, externalHost: HOST });
    ({ db, conf } = copy);
  });
  afterAll(() => copy?.stop());

  it("creates the user", async () => {
    before = await snapshot(db);
    maxAudit = Number((await db.query("SELECT max(id) AS m FROM zerver_realmauditlog"))[0].m);
    lastMessage = Number((await db.query("SELECT max(id) AS m FROM zerver_message"))[0].m);
    const r = await runCli(["create_user", "-r", "2", "new@Example.ORG", "New Person", "--json"], { db, confDir: conf });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    doc = JSON.parse(r.stdout);
    [user] = await db.query("SELECT * FROM zerver_userprofile WHERE id = $1", [doc.user.id]);
    expect(doc.user).toMatchObject({ delivery_email: "new@example.org", full_name: "New Person", role: "member", password: "unusable" });
    expect([...doc.subscribed_channels].sort()).toEqual(["Zulip", "general", "sandbox"]);
  });

  it("leaves every foreign key satisfied, also when checked before COMMIT", async () => {
    expect(await foreignKeyViolations(db)).toEqual({});
    await db.client.query("BEGIN");
    try {
      await db.query("UPDATE zerver_userprofile SET recipient_id = recipient_id, realm_id = realm_id WHERE id = $1", [user.id]);
      await db.query("UPDATE zerver_subscription SET recipient_id = recipient_id WHERE user_profile_id = $1", [user.id]);
      await db.client.query("SET CONSTRAINTS ALL IMMEDIATE");
    } finally {
      await db.client.query("ROLLBACK");
    }
  });

  it("takes the organization's defaults and differs from the release's owner only where the inputs do", async () => {
    const [rud] = await db.query("SELECT * FROM zerver_realmuserdefault WHERE realm_id = 2");
    for (const [col, v] of Object.entries(omit(rud, ["id", "realm_id", "default_language", "enable_login_emails", "allow_private_data_export"]))) {
      expect(user[col], col).toEqual(v);
    }
    expect(user).toMatchObject({ role: 400, tos_version: "-1", avatar_source: "G", email: `user${user.id}@${HOST}`, default_language: "en-gb" });
    const [owner] = await db.query("SELECT * FROM zerver_userprofile WHERE id = 8");
    const differ = Object.keys(user)
      .filter((c) => JSON.stringify(user[c]) !== JSON.stringify(owner[c]))
      .sort();
    expect(differ).toEqual(
      [
        "api_key",
        "can_create_users",
        "date_joined",
        "delivery_email",
        "email",
        "email_address_visibility",
        "enable_marketing_emails",
        "full_name",
        "id",
        "last_login",
        "password",
        "recipient_id",
        "role",
        "timezone",
        "tos_version",
        "uuid",
      ].sort(),
    );
  });

  it("gives the user a personal recipient and subscription like the owner's", async () => {
    const personal = async (userId: number) => {
      const [u] = await db.query("SELECT recipient_id FROM zerver_userprofile WHERE id = $1", [userId]);
      const recs = await db.query("SELECT id, type FROM zerver_recipient WHERE type = 1 AND type_id = $1", [userId]);
      const subs = await db.query("SELECT * FROM zerver_subscription WHERE recipient_id = $1", [u.recipient_id]);
      return {
        recs: recs.map((r: Row) => ({ type: r.type, isUsers: Number(r.id) === Number(u.recipient_id) })),
        subs: subs.map((x: Row) => omit({ ...x, user_profile_id: x.user_profile_id === userId ? "self" : x.user_profile_id }, ["id", "recipient_id"])),
      };
    };
    const mine = await personal(user.id);
    expect(mine.recs).toEqual([{ type: 1, isUsers: true }]);
    expect(mine).toEqual(await personal(8));
  });

  it("adds the memberships, audit rows (role counts of that release), subscriptions and history", async () => {
    const audits = await expectMemberSignupRows(db, user.id, maxAudit, lastMessage);
    expect(audits[0].extra_data).toEqual({ "10": { "11": { "100": 1, "200": 0, "300": 0, "400": 1, "600": 0 }, "12": 0 } });
    const channelSubs = async (id: number) =>
      (
        await db.query(
          `SELECT s.name, sub.color, sub.active, sub.is_user_active FROM zerver_subscription sub JOIN zerver_stream s ON s.recipient_id = sub.recipient_id
                         WHERE sub.user_profile_id = $1 ORDER BY s.recipient_id`,
          [id],
        )
      ).map((r: Row) => ({ ...r }));
    expect(await channelSubs(user.id)).toEqual(await channelSubs(8));
    const ums = await db.query(
      `SELECT um.message_id, um.flags, o.flags AS onboarding FROM zerver_usermessage um
         LEFT JOIN zerver_onboardingusermessage o ON o.message_id = um.message_id WHERE um.user_profile_id = $1 ORDER BY um.message_id`,
      [user.id],
    );
    const channelMessages = await db.query("SELECT id FROM zerver_message WHERE is_channel_message AND realm_id = 2 ORDER BY id");
    expect(ums.map((u: Row) => Number(u.message_id))).toEqual(channelMessages.map((m: Row) => Number(m.id)));
    for (const u of ums) expect(Number(u.flags), `message ${u.message_id}`).toBe(1024 | (u.onboarding === null ? 1 : u.onboarding & 4 ? 2 : 0));
  });

  it("changes only the tables the Zulip 12 command changes, plus zerver_recipient", async () => {
    expect(changed(before, await snapshot(db))).toEqual([
      "confirmation_confirmation",
      "zerver_onboardingstep",
      "zerver_realmauditlog",
      "zerver_recipient",
      "zerver_scheduledemail",
      "zerver_scheduledemail_users",
      "zerver_stream",
      "zerver_subscription",
      "zerver_usergroupmembership",
      "zerver_usermessage",
      "zerver_userprofile",
    ]);
  });
});

describe("create_user on a database with a column it does not know", () => {
  it("refuses (exit 3) before writing anything", async () => {
    const db = await createDatabase({
      template: "zulip10_fresh",
      sql: "ALTER TABLE zerver_userprofile ADD COLUMN future_setting integer NOT NULL DEFAULT 0; ALTER TABLE zerver_userprofile ALTER COLUMN future_setting DROP DEFAULT;",
    });
    const conf = makeConfDir({ externalHost: HOST });
    try {
      const before = await snapshot(db);
      const r = await runCli(["create_user", "-r", "2", "x@x.example", "X"], { db, confDir: conf });
      expect(r.exitCode).toBe(3);
      expect(r.stderr).toContain("zerver_userprofile.future_setting");
      expect(changed(before, await snapshot(db))).toEqual([]);
    } finally {
      conf.cleanup();
      await db.drop();
    }
  });
});

// get_display_email_address → get_fake_email_domain: a user whose address is not public gets
// user<id>@<realm host>, or @FAKE_EMAIL_DOMAIN when the host is no email domain (an IP
// address); when neither is, Zulip raises InvalidFakeEmailDomainError with this message.
describe("create_user on a server addressed by an IP address", () => {
  it("uses FAKE_EMAIL_DOMAIN for the display address, and refuses with Zulip's message without it", async () => {
    const db = await createDatabase({ template: "zulip12_fresh", sql: "UPDATE zerver_realmuserdefault SET email_address_visibility = 2 WHERE realm_id = 2;" });
    const bare = makeConfDir({ externalHost: "10.0.0.6" });
    const fake = makeConfDir({ externalHost: "10.0.0.6", extraSettings: "FAKE_EMAIL_DOMAIN = 'fake.example.org'" });
    const empty = makeConfDir({ externalHost: "10.0.0.6", extraSettings: "FAKE_EMAIL_DOMAIN = ''" });
    try {
      const before = await snapshot(db);
      const r = await runCli(["create_user", "-r", "2", "ip@x.example", "IP User"], { db, confDir: bare });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain("10.0.0.6 is not a valid domain. Consider setting the FAKE_EMAIL_DOMAIN setting.");
      expect(changed(before, await snapshot(db))).toEqual([]);
      // FAKE_EMAIL_DOMAIN = "" is not "unset": Zulip refuses with the empty domain in its message.
      const none = await runCli(["create_user", "-r", "2", "ip@x.example", "IP User"], { db, confDir: empty });
      expect(none.exitCode).toBe(1);
      expect(none.stderr).toContain(" is not a valid domain. Consider setting the FAKE_EMAIL_DOMAIN setting.");
      expect(none.stderr).not.toContain("10.0.0.6 is not");
      expect(changed(before, await snapshot(db))).toEqual([]);
      const ok = await runCli(["create_user", "-r", "2", "ip@x.example", "IP User"], { db, confDir: fake });
      expect(ok.exitCode, ok.stderr).toBe(0);
      const [u] = await db.query("SELECT id, email, delivery_email FROM zerver_userprofile WHERE delivery_email = 'ip@x.example'");
      expect(u.email).toBe(`user${u.id}@fake.example.org`);
    } finally {
      bare.cleanup();
      fake.cleanup();
      empty.cleanup();
      await db.drop();
    }
  });
});
