// create_realm through the built CLI on a copy of a real Zulip 12.2 server: the new
// organization and its owner are compared row by row with the organization and owner the real
// server wrote at its own setup (template zulip12_fresh, realm 2 / user 8), with only the
// differences the inputs explain (name, subdomain, org type, language, the owner's signup
// answers) and the onboarding messages the command says it leaves out. Also: Zulip's
// validation messages, prompts on stdin, --password-file hashing, --json, --dry-run. On the Zulip
// 11 and 10 test databases, the same comparisons against their realm 2 / owner (plus the personal
// recipient and subscription those releases give every user, the release's own realm defaults,
// and every foreign key checked), and the refusal of a schema with a required column it does not know.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyDjangoArgon2Hash } from "../src/zulip/password.js";
import { runCli } from "./helpers/cli.js";
import { makeConfDir, type ConfDir } from "./helpers/confdir.js";
import { createDatabase, type TestDatabase } from "./helpers/pg.js";
import { snapshot, type Snapshot, foreignKeyViolations, changedTables as changed } from "./helpers/snapshot.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";

/** The tables creating an organization writes to (on Zulip 12 and on older releases alike). */
const CREATE_REALM_TABLES = [
  "confirmation_confirmation",
  "zerver_defaultstream",
  "zerver_groupgroupmembership",
  "zerver_namedusergroup",
  "zerver_onboardingstep",
  "zerver_presencesequence",
  "zerver_realm",
  "zerver_realmauditlog",
  "zerver_realmauthenticationmethod",
  "zerver_realmuserdefault",
  "zerver_recipient",
  "zerver_scheduledemail",
  "zerver_scheduledemail_users",
  "zerver_stream",
  "zerver_subscription",
  "zerver_usergroup",
  "zerver_usergroupmembership",
  "zerver_userprofile",
];

const HOST = "zulip.example.net";
type Row = Record<string, any>;

function omit(row: Row, keys: string[]): Row {
  return Object.fromEntries(Object.entries(row).filter(([k]) => !keys.includes(k)));
}

async function groupNames(db: TestDatabase): Promise<Map<string, string>> {
  return new Map((await db.query("SELECT usergroup_ptr_id::text AS id, name FROM zerver_namedusergroup")).map((r: Row) => [r.id, r.name]));
}

async function realmByNames(db: TestDatabase, id: number): Promise<Row> {
  const names = await groupNames(db);
  const [r] = await db.query("SELECT * FROM zerver_realm WHERE id = $1", [id]);
  const out = omit(r, ["id", "uuid", "uuid_owner_secret", "date_created"]);
  for (const k of Object.keys(out)) if (/_group_id$|^can_create_groups_id$|^can_manage_all_groups_id$/.test(k)) out[k] = names.get(String(out[k]));
  return out;
}

/** Audit rows as comparable strings (ids replaced by names; times and message ids left out). */
async function auditShape(db: TestDatabase, realmId: number): Promise<string[]> {
  const names = await groupNames(db);
  const rows = await db.query(
    `SELECT a.event_type, a.extra_data, a.modified_user_group_id::text AS g, mu.full_name AS mu, au.full_name AS au, s.name AS stream, a.backfilled, to_jsonb(a) -> 'scrubbed' AS scrubbed
       FROM zerver_realmauditlog a LEFT JOIN zerver_userprofile mu ON mu.id = a.modified_user_id LEFT JOIN zerver_userprofile au ON au.id = a.acting_user_id
       LEFT JOIN zerver_stream s ON s.id = a.modified_stream_id WHERE a.realm_id = $1`,
    [realmId],
  );
  const g = (id: unknown) => names.get(String(id)) ?? String(id);
  return rows
    .map((r: Row) => {
      const extra = JSON.parse(JSON.stringify(r.extra_data), (k, v) => (k === "subgroup_ids" || k === "supergroup_ids" ? (v as number[]).map(g) : v));
      return JSON.stringify([r.event_type, extra, r.g ? g(r.g) : null, r.mu ? "owner" : null, r.au ? "owner" : null, r.stream, r.backfilled, r.scrubbed]);
    })
    .sort();
}

/** get_onboarding_email_schedule, written out independently: days after sign-up per weekday. */
function expectedDelays(joined: Date): Record<string, number> {
  const day = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"].indexOf(new Intl.DateTimeFormat("en-US", { timeZone: "UTC", weekday: "short" }).format(joined));
  const table: Record<number, [number, number, number]> = {
    1: [2, 4, 8],
    2: [2, 6, 8],
    3: [2, 6, 8],
    4: [4, 6, 8],
    5: [4, 6, 10],
    6: [2, 4, 6],
    0: [2, 4, 8],
  };
  const [topics, guide, team] = table[day];
  const ms = (d: number) => (d * 24 - 1) * 3600_000;
  return { onboarding_zulip_topics: ms(topics), onboarding_zulip_guide: ms(guide), onboarding_team_to_zulip: ms(team) };
}

describe("create_realm on a copy of a real Zulip 12.2 server", () => {
  let db: TestDatabase;
  let conf: ConfDir;
  let copy: ServerCopy;
  let tmp: string;
  let pwFile: string;
  const password = "correct horse battery staple 42";

  beforeAll(async () => {
    copy = await startServerCopy({ template: "zulip12_fresh", externalHost: HOST });
    ({ db, conf } = copy);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "zm-create-realm-"));
    pwFile = path.join(tmp, "pw");
    fs.writeFileSync(pwFile, `  ${password}\n`);
  });
  afterAll(async () => {
    fs.rmSync(tmp, { recursive: true, force: true });
    await copy?.stop();
  });
  const run = (args: string[], input?: string) => runCli(args, { db, confDir: conf, ...(input !== undefined ? { input } : {}) });

  it("validates the subdomain with Zulip's messages before asking anything", async () => {
    const before = await snapshot(db);
    const cases: [string[], string][] = [
      [[], "Subdomain already in use. Please choose a different one."], // the root domain is the real organization's
      [["--string-id", "zulipinternal"], "Subdomain already in use. Please choose a different one."],
      [["--string-id", "Acme"], "Subdomain can only have lowercase letters, numbers, and '-'s."],
      [["--string-id", "ac"], "Subdomain needs to have length 3 or greater."],
      [["--string-id", "help"], "Subdomain reserved. Please choose a different one."],
    ];
    for (const [extra, message] of cases) {
      const r = await run(["create_realm", "Acme", ...extra, "boss@acme.example", "Boss"]);
      expect(r.exitCode, extra.join(" ")).toBe(1);
      expect(r.stderr).toBe(message);
    }
    const bad = await run(["create_realm", "Acme", "--string-id", "acmeco", "not-an-email", "Boss"]);
    expect(bad.stderr).toBe("Invalid email address.");
    const weak = path.join(tmp, "weak");
    fs.writeFileSync(weak, "abc\n");
    const w = await run(["create_realm", "Acme", "--string-id", "acmeco", "boss@acme.example", "Boss", "--password-file", weak]);
    expect(w.exitCode).toBe(1);
    expect(w.stderr).toContain("The password is too weak.");
    expect(changed(before, await snapshot(db))).toEqual([]);
  });

  it("--dry-run checks everything and writes nothing", async () => {
    const before = await snapshot(db);
    const r = await run(["create_realm", "Acme Corp", "--string-id", "acmeco", "boss@acme.example", "Boss Person", "--dry-run"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`Would create the organization "Acme Corp" at https://acmeco.${HOST} with the owner boss@acme.example ("Boss Person").`);
    expect(changed(before, await snapshot(db))).toEqual([]);
  });

  let doc: Row;
  let before: Snapshot;
  it("creates the organization and its owner, saying what it leaves out", async () => {
    before = await snapshot(db);
    const r = await run(["create_realm", "testing", "--string-id", "acmeco", "Boss@ACME.example", "tester", "--password-file", pwFile, "--json"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    doc = JSON.parse(r.stdout);
    expect(doc.realm).toMatchObject({ string_id: "acmeco", name: "testing", url: `https://acmeco.${HOST}` });
    expect(doc.owner).toMatchObject({
      delivery_email: "Boss@acme.example",
      full_name: "tester",
      password: "set",
      role: "owner",
      role_id: 100,
      realm_id: doc.realm.id,
    });
    expect(doc.channels.map((c: any) => c.name)).toEqual(["Zulip", "sandbox", "general"]);
    // Every audit row of the new organization, and only those.
    const rows = await db.query("SELECT id FROM zerver_realmauditlog WHERE realm_id = $1 ORDER BY id", [doc.realm.id]);
    expect(doc.audit_log_ids).toEqual(rows.map((x: Row) => Number(x.id)));
    expect(doc.scheduled_emails[0].scheduled_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    expect(doc.not_done.join("\n")).toContain("Welcome Bot's onboarding messages");
    expect(doc.not_done.join("\n")).toContain("Welcome Bot's onboarding direct message");
    expect(doc.cache.ok).toBe(true);
    const text = await run(["create_realm", "Other", "--string-id", "other-org", "o@other.example", "O"]);
    expect(text.stdout).toContain("Note: not done: Welcome Bot's onboarding messages in the new channels");
    expect(text.stderr).toBe("User will be created with a disabled password.");
  });

  it("writes the realm row with every setting as the real server did (up to the inputs)", async () => {
    const mine = await realmByNames(db, doc.realm.id);
    const real = await realmByNames(db, 2);
    // Inputs: name, subdomain; the real organization was created through the web form as
    // org type "other" in British English.
    expect(omit(mine, ["string_id", "org_type", "default_language"])).toEqual(omit(real, ["string_id", "org_type", "default_language"]));
    expect([mine.string_id, mine.org_type, mine.default_language]).toEqual(["acmeco", 0, "en"]);
  });

  it("writes the same groups, defaults, authentication methods and channels", async () => {
    const parts = async (realmId: number) => ({
      groups: (
        await db.query("SELECT name, description, is_system_group FROM zerver_namedusergroup WHERE realm_id = $1 ORDER BY usergroup_ptr_id", [realmId])
      ).map((r: Row) => ({ ...r })),
      rud: omit((await db.query("SELECT * FROM zerver_realmuserdefault WHERE realm_id = $1", [realmId]))[0], ["id", "realm_id"]),
      auth: (await db.query("SELECT name FROM zerver_realmauthenticationmethod WHERE realm_id = $1 ORDER BY id", [realmId])).map((r: Row) => r.name),
      channels: (
        await db.query(
          "SELECT name, description, rendered_description, invite_only, is_web_public, history_public_to_subscribers, subscriber_count FROM zerver_stream WHERE realm_id = $1 ORDER BY id",
          [realmId],
        )
      ).map((r: Row) => ({ ...r })),
      defaults: (
        await db.query("SELECT s.name FROM zerver_defaultstream d JOIN zerver_stream s ON s.id = d.stream_id WHERE d.realm_id = $1 ORDER BY d.id", [realmId])
      ).map((r: Row) => r.name),
    });
    expect(await parts(doc.realm.id)).toEqual(await parts(2));
  });

  it("creates the owner like the real owner (up to the signup answers)", async () => {
    const [mine] = await db.query("SELECT * FROM zerver_userprofile WHERE id = $1", [doc.owner.id]);
    const [real] = await db.query("SELECT * FROM zerver_userprofile WHERE id = 8");
    const volatile = ["id", "password", "last_login", "date_joined", "api_key", "uuid", "realm_id", "email", "delivery_email"];
    // The web signup form asked the real owner for email visibility, marketing emails, time
    // zone and language; manage.py takes the organization's defaults and tos_version "-1".
    const answers = ["email_address_visibility", "enable_marketing_emails", "timezone", "default_language", "tos_version"];
    expect(omit(mine, [...volatile, ...answers])).toEqual(omit(real, [...volatile, ...answers]));
    expect(mine).toMatchObject({ email_address_visibility: 3, enable_marketing_emails: true, timezone: "", default_language: "en", tos_version: "-1" });
    expect(mine.email).toBe(`user${mine.id}@acmeco.${HOST}`);
    expect(mine.delivery_email).toBe("Boss@acme.example");
    expect(mine.password).toMatch(/^argon2\$argon2id\$v=19\$m=102400,t=2,p=8\$/);
    expect(await verifyDjangoArgon2Hash(password, mine.password)).toBe(true);
    const direct = async (id: number) =>
      (
        await db.query(
          "SELECT n.name FROM zerver_usergroupmembership m JOIN zerver_namedusergroup n ON n.usergroup_ptr_id = m.user_group_id WHERE m.user_profile_id = $1",
          [id],
        )
      ).map((r: Row) => r.name);
    expect(await direct(doc.owner.id)).toEqual(await direct(8));
  });

  it("writes the same audit events as the real organization's creation", async () => {
    const mine = await auditShape(db, doc.realm.id);
    const real = await auditShape(db, 2);
    // The real creator answered "how did you find Zulip"; manage.py passes nothing.
    const fix = (xs: string[]) =>
      xs.map((x) => x.replace(/"how_realm_creator_found_zulip":"[^"]*","how_realm_creator_found_zulip_extra_context":"[^"]*"/, "HOW"));
    expect(fix(mine).map((x) => x.replace(/"how_realm_creator_found_zulip":null,"how_realm_creator_found_zulip_extra_context":null/, "HOW"))).toEqual(
      fix(real),
    );
  });

  it("schedules the welcome emails, with the unsubscribe link, like the real server", async () => {
    const emails = async (realmId: number) =>
      db.query(
        `SELECT e.*, array_agg(u.userprofile_id) AS users FROM zerver_scheduledemail e JOIN zerver_scheduledemail_users u ON u.scheduledemail_id = e.id
          WHERE e.realm_id = $1 GROUP BY e.id ORDER BY e.id`,
        [realmId],
      );
    const mine = await emails(doc.realm.id);
    const real = await emails(2);
    const [owner] = await db.query("SELECT date_joined FROM zerver_userprofile WHERE id = $1", [doc.owner.id]);
    const [unsub] = await db.query(
      `SELECT c.*, ct.model FROM confirmation_confirmation c JOIN django_content_type ct ON ct.id = c.content_type_id WHERE c.type = 4 AND c.object_id = $1`,
      [doc.owner.id],
    );
    expect(unsub).toMatchObject({ model: "userprofile", realm_id: doc.realm.id });
    expect(unsub.expiry_date.getTime() - unsub.date_sent.getTime()).toBe(1_000_000 * 86400_000);
    // The data column's JSON text, with the server- and realm-specific values replaced but the
    // key order (the text Zulip stored) kept.
    const norm = (rows: Row[], urls: { realm: string; root: string; host: string }, key: string, userId: number) =>
      rows.map((e) => {
        const data = JSON.parse(e.data);
        const ctx: Row = {};
        for (const [k2, v] of Object.entries(data.context as Row)) {
          let x = v;
          if (typeof x === "string") {
            if (k2 === "root_domain_url") x = "ROOT";
            else if (k2 === "external_host") x = "HOST";
            else x = x.replace(urls.realm, "REALM").replace(key, "KEY");
          }
          ctx[k2] = x;
        }
        return {
          type: e.type,
          address: e.address,
          users: e.users.map(Number).map((u: number) => (u === userId ? "owner" : u)),
          data: JSON.stringify({ ...data, context: ctx }),
          compact: e.data === JSON.stringify(data),
        };
      });
    const [realUnsub] = await db.query("SELECT confirmation_key FROM confirmation_confirmation WHERE type = 4 AND object_id = 8");
    const realNorm = norm(real, { realm: "https://localhost", root: "https://localhost", host: "localhost" }, realUnsub.confirmation_key, 8);
    const mineNorm = norm(mine, { realm: `https://acmeco.${HOST}`, root: `https://${HOST}`, host: HOST }, unsub.confirmation_key, doc.owner.id);
    expect(mineNorm).toEqual(realNorm);
    const delays = expectedDelays(owner.date_joined);
    for (const e of mine) {
      const template = JSON.parse(e.data).template_prefix.split("/").pop();
      expect(Math.abs(e.scheduled_timestamp.getTime() - owner.date_joined.getTime() - delays[template]), template).toBeLessThan(10_000);
    }
    expect(doc.scheduled_emails.map((s: Row) => s.template)).toEqual(["onboarding_zulip_topics", "onboarding_team_to_zulip"]);
  });

  it("marks the visibility policy banner read and touches nothing else", async () => {
    const steps = await db.query("SELECT onboarding_step FROM zerver_onboardingstep WHERE user_id = $1", [doc.owner.id]);
    expect(steps).toEqual([{ onboarding_step: "visibility_policy_banner" }]);
    // (The second organization made in the first test is in these tables too.)
    expect(changed(before, await snapshot(db))).toEqual(CREATE_REALM_TABLES);
    // No messages: the onboarding messages are left out (and said so).
    const [m] = await db.query("SELECT count(*)::int AS n FROM zerver_message WHERE realm_id = $1", [doc.realm.id]);
    expect(m.n).toBe(0);
  });

  it("asks for the email and full name on stdin when they are not given", async () => {
    const r = await run(["create_realm", "Prompted", "--string-id", "prompted"], "asked@prompt.example\nAsked Person\n");
    expect(r.exitCode).toBe(0);
    expect(r.stdout.startsWith("Email: Full name: ")).toBe(true);
    const [u] = await db.query(
      "SELECT u.full_name, u.delivery_email, u.role FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id WHERE r.string_id = 'prompted'",
    );
    expect(u).toEqual({ full_name: "Asked Person", delivery_email: "asked@prompt.example", role: 100 });
    const eof = await run(["create_realm", "Eof", "--string-id", "eof-org"], "");
    expect(eof.exitCode).toBe(1);
    expect(eof.stderr).toContain('No answer to "Email:"');
  });
});

async function hasColumn(db: TestDatabase, table: string, column: string): Promise<boolean> {
  const rows = await db.query("SELECT 1 FROM information_schema.columns WHERE table_schema = 'zulip' AND table_name = $1 AND column_name = $2", [
    table,
    column,
  ]);
  return rows.length > 0;
}

// The Zulip 11 / 10 templates are the 12.2 install converted by test/fixtures/zulip11.sql /
// zulip10.sql; what those conversions leave in 12.x shape (see the fixtures README) is named
// where a comparison meets it.
describe.each([
  ["11.x", "zulip11_fresh", 21],
  ["10.x", "zulip10_fresh", 15],
] as const)("create_realm on a Zulip %s database", (_series, template, updateLevel) => {
  let db: TestDatabase;
  let conf: ConfDir;
  let copy: ServerCopy;
  let doc: Row;
  let before: Snapshot;
  beforeAll(async () => {
    copy = await startServerCopy({ template, externalHost: HOST });
    ({ db, conf } = copy);
  });
  afterAll(() => copy?.stop());

  it("creates the organization and its owner", async () => {
    before = await snapshot(db);
    const r = await runCli(["create_realm", "testing", "--string-id", "acmeco", "Boss@ACME.example", "tester", "--json"], { db, confDir: conf });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    doc = JSON.parse(r.stdout);
    expect(doc.realm).toMatchObject({ string_id: "acmeco", name: "testing" });
    expect(doc.channels.map((c: any) => c.name)).toEqual(["Zulip", "sandbox", "general"]);
    expect(doc.cache.ok).toBe(true);
  });

  it("leaves every foreign key satisfied, also when checked before COMMIT", async () => {
    expect(await foreignKeyViolations(db)).toEqual({});
    // The same, through PostgreSQL's own deferred checks: re-touch the new rows in a
    // transaction and force every deferred constraint to be checked now.
    await db.client.query("BEGIN");
    try {
      await db.query("UPDATE zerver_realm SET name = name WHERE id = $1", [doc.realm.id]);
      await db.query("UPDATE zerver_userprofile SET recipient_id = recipient_id, bot_owner_id = bot_owner_id WHERE realm_id = $1", [doc.realm.id]);
      await db.query("UPDATE zerver_subscription SET recipient_id = recipient_id WHERE user_profile_id = $1", [doc.owner.id]);
      await db.client.query("SET CONSTRAINTS ALL IMMEDIATE");
    } finally {
      await db.client.query("ROLLBACK");
    }
  });

  it("writes the realm row with the release's settings", async () => {
    const mine = await realmByNames(db, doc.realm.id);
    const real = await realmByNames(db, 2);
    expect(await hasColumn(db, "zerver_realm", "giphy_rating")).toBe(true);
    expect(await hasColumn(db, "zerver_realm", "workplace_users_group_id")).toBe(false);
    // Inputs (as on Zulip 12), plus what the template's realm 2 keeps from 12.2: its
    // giphy_rating still holds 12.2's renumbered "g" (1; 0763 is not undone), its update level
    // is 12.2's (27), and 12.2 left both announcement channels unset.
    const differ = [
      "string_id",
      "org_type",
      "default_language",
      "giphy_rating",
      "zulip_update_announcements_level",
      "new_stream_announcements_stream_id",
      "zulip_update_announcements_stream_id",
    ];
    expect(omit(mine, differ)).toEqual(omit(real, differ));
    expect([real.giphy_rating, real.zulip_update_announcements_level, real.new_stream_announcements_stream_id]).toEqual([1, 27, null]);
    const [general] = await db.query("SELECT id FROM zerver_stream WHERE realm_id = $1 AND name = 'general'", [doc.realm.id]);
    expect({
      giphy_rating: mine.giphy_rating,
      zulip_update_announcements_level: mine.zulip_update_announcements_level,
      new_stream_announcements_stream_id: mine.new_stream_announcements_stream_id,
      zulip_update_announcements_stream_id: mine.zulip_update_announcements_stream_id,
      signup_announcements_stream_id: mine.signup_announcements_stream_id,
      string_id: mine.string_id,
      org_type: mine.org_type,
      default_language: mine.default_language,
    }).toEqual({
      giphy_rating: 2, // Realm.GIPHY_RATING_OPTIONS["g"] of 10.x / 11.x
      zulip_update_announcements_level: updateLevel,
      new_stream_announcements_stream_id: general.id,
      zulip_update_announcements_stream_id: general.id,
      signup_announcements_stream_id: null,
      string_id: "acmeco",
      org_type: 0,
      default_language: "en",
    });
  });

  it("writes the same groups, defaults, authentication methods and channels", async () => {
    const channelCols = [
      "name",
      "description",
      "rendered_description",
      "invite_only",
      "is_web_public",
      "history_public_to_subscribers",
      "subscriber_count",
      "is_in_zephyr_realm",
    ];
    const present: string[] = [];
    for (const c of channelCols) if (await hasColumn(db, "zerver_stream", c)) present.push(c);
    const parts = async (realmId: number) => ({
      groups: (
        await db.query("SELECT name, description, is_system_group FROM zerver_namedusergroup WHERE realm_id = $1 ORDER BY usergroup_ptr_id", [realmId])
      ).map((r: Row) => ({ ...r })),
      rud: omit((await db.query("SELECT * FROM zerver_realmuserdefault WHERE realm_id = $1", [realmId]))[0], ["id", "realm_id"]),
      auth: (await db.query("SELECT name FROM zerver_realmauthenticationmethod WHERE realm_id = $1 ORDER BY id", [realmId])).map((r: Row) => r.name),
      channels: (await db.query(`SELECT ${present.join(", ")} FROM zerver_stream WHERE realm_id = $1 ORDER BY id`, [realmId])).map((r: Row) => ({ ...r })),
      defaults: (
        await db.query("SELECT s.name FROM zerver_defaultstream d JOIN zerver_stream s ON s.id = d.stream_id WHERE d.realm_id = $1 ORDER BY d.id", [realmId])
      ).map((r: Row) => r.name),
    });
    expect(await parts(doc.realm.id)).toEqual(await parts(2));
  });

  it("creates the owner like the release's owner, with a personal recipient and its subscription", async () => {
    const [mine] = await db.query("SELECT * FROM zerver_userprofile WHERE id = $1", [doc.owner.id]);
    const [real] = await db.query("SELECT * FROM zerver_userprofile WHERE id = 8");
    const volatile = ["id", "password", "last_login", "date_joined", "api_key", "uuid", "realm_id", "email", "delivery_email", "recipient_id"];
    const answers = ["email_address_visibility", "enable_marketing_emails", "timezone", "default_language", "tos_version"];
    expect(omit(mine, [...volatile, ...answers])).toEqual(omit(real, [...volatile, ...answers]));
    expect(mine).toMatchObject({ avatar_source: "G", tos_version: "-1", password: expect.stringMatching(/^!/) });
    expect("is_deleted" in mine || "third_party_api_state" in mine).toBe(false);
    const personal = async (userId: number) => {
      const [u] = await db.query("SELECT recipient_id FROM zerver_userprofile WHERE id = $1", [userId]);
      const [rec] = await db.query("SELECT type, type_id FROM zerver_recipient WHERE id = $1", [u.recipient_id]);
      const subs = await db.query("SELECT * FROM zerver_subscription WHERE recipient_id = $1", [u.recipient_id]);
      return {
        rec: { ...rec, type_id: rec.type_id === userId ? "self" : rec.type_id },
        subs: subs.map((x: Row) => omit({ ...x, user_profile_id: x.user_profile_id === userId ? "self" : x.user_profile_id }, ["id", "recipient_id"])),
      };
    };
    expect(await personal(doc.owner.id)).toEqual(await personal(8));
    expect((await personal(doc.owner.id)).rec).toEqual({ type: 1, type_id: "self" });
    const direct = async (id: number) =>
      (
        await db.query(
          "SELECT n.name FROM zerver_usergroupmembership m JOIN zerver_namedusergroup n ON n.usergroup_ptr_id = m.user_group_id WHERE m.user_profile_id = $1",
          [id],
        )
      ).map((r: Row) => r.name);
    expect(await direct(doc.owner.id)).toEqual(await direct(8));
    const channelSubs = async (id: number) =>
      (
        await db.query(
          `SELECT s.name, sub.color, sub.active, sub.is_user_active FROM zerver_subscription sub JOIN zerver_stream s ON s.recipient_id = sub.recipient_id
                         WHERE sub.user_profile_id = $1 ORDER BY s.recipient_id`,
          [id],
        )
      ).map((r: Row) => ({ ...r }));
    expect(await channelSubs(doc.owner.id)).toEqual(await channelSubs(8));
  });

  it("writes the same audit events as the organization's creation in that release", async () => {
    const mine = await auditShape(db, doc.realm.id);
    const real = await auditShape(db, 2);
    // The template's USER_CREATED row keeps 12.2's workplace-user role counts (not converted).
    const fix = (xs: string[]) =>
      xs.map((x) =>
        x
          .replace(/"how_realm_creator_found_zulip":("[^"]*"|null),"how_realm_creator_found_zulip_extra_context":("[^"]*"|null)/, "HOW")
          .replace(/,"workplace_users":\d+,"non_workplace_users":\d+/, ""),
      );
    expect(mine.some((x) => x.includes("workplace_users"))).toBe(false);
    expect(real.some((x) => x.includes("workplace_users"))).toBe(true);
    expect(fix(mine)).toEqual(fix(real));
    // Role counts without 12.0's workplace-user keys.
    const [created] = await db.query("SELECT extra_data FROM zerver_realmauditlog WHERE event_type = 101 AND modified_user_id = $1", [doc.owner.id]);
    expect(created.extra_data).toEqual({ "10": { "11": { "100": 1, "200": 0, "300": 0, "400": 0, "600": 0 }, "12": 0 } });
  });

  it("changes the same tables as on Zulip 12", async () => {
    expect(changed(before, await snapshot(db))).toEqual(CREATE_REALM_TABLES);
    // Recipients: three channels and the owner's personal one.
    const recs = await db.query(
      `SELECT r.type, count(*)::int AS n FROM zerver_recipient r
         LEFT JOIN zerver_stream s ON r.type = 2 AND s.id = r.type_id LEFT JOIN zerver_userprofile u ON r.type = 1 AND u.id = r.type_id
        WHERE s.realm_id = $1 OR u.realm_id = $1 GROUP BY r.type ORDER BY r.type`,
      [doc.realm.id],
    );
    expect(recs).toEqual([
      { type: 1, n: 1 },
      { type: 2, n: 3 },
    ]);
  });
});

describe("create_realm on a database with a column it does not know", () => {
  it("refuses (exit 3) before writing anything", async () => {
    const db = await createDatabase({
      template: "zulip11_fresh",
      sql: "ALTER TABLE zerver_realm ADD COLUMN future_setting boolean NOT NULL DEFAULT false; ALTER TABLE zerver_realm ALTER COLUMN future_setting DROP DEFAULT;",
    });
    const conf = makeConfDir({ externalHost: HOST });
    try {
      const before = await snapshot(db);
      const r = await runCli(["create_realm", "X", "--string-id", "xorg", "x@x.example", "X"], { db, confDir: conf });
      expect(r.exitCode).toBe(3);
      expect(r.stderr).toContain("zerver_realm.future_setting");
      expect(changed(before, await snapshot(db))).toEqual([]);
    } finally {
      conf.cleanup();
      await db.drop();
    }
  });
});

// do_create_realm: `if not server_initialized(): create_internal_realm()` (server_initialized()
// is Realm.objects.exists()): on a database without any organization the system bot realm and
// its bots come first. With realms but no system bot realm, zulip-manage refuses.
describe("create_realm on a database without any organization", () => {
  it("creates the system bot realm and its bots first, in the same transaction", async () => {
    const db = await createDatabase({ template: "zulip12_empty" });
    const conf = makeConfDir({ externalHost: HOST });
    try {
      expect(await db.query("SELECT 1 FROM zerver_realm")).toEqual([]);
      const dry = await runCli(["create_realm", "First", "--string-id", "first", "boss@first.example", "Boss", "--dry-run"], { db, confDir: conf });
      expect(dry.exitCode, dry.stderr).toBe(0);
      expect(dry.stdout.split("\n")[0]).toBe("Would first create the system bot realm 'zulipinternal' and its bots (this server has no organization yet).");
      expect(await db.query("SELECT 1 FROM zerver_realm")).toEqual([]);
      const r = await runCli(["create_realm", "First", "--string-id", "first", "boss@first.example", "Boss", "--flush-cache", "none", "--json"], {
        db,
        confDir: conf,
      });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stderr).toContain("Server not yet initialized. Creating the internal realm first.");
      const realms = await db.query("SELECT id, string_id, name FROM zerver_realm ORDER BY id");
      expect(realms.map((x: Row) => [x.string_id, x.name])).toEqual([
        ["zulipinternal", "System bot realm"],
        ["first", "First"],
      ]);
      const bots = await db.query("SELECT email, is_bot, bot_owner_id = id AS own FROM zerver_userprofile WHERE realm_id = $1 ORDER BY id", [realms[0].id]);
      expect(bots.map((b: Row) => b.email)).toContain("welcome-bot@zulip.com");
      expect(bots.map((b: Row) => b.email)).toContain("notification-bot@zulip.com");
      expect(bots.every((b: Row) => b.is_bot && b.own)).toBe(true);
      const doc = JSON.parse(r.stdout);
      expect(doc.system_bot_realm_created).toMatchObject({ id: realms[0].id, string_id: "zulipinternal", bots_count: bots.length });
      expect(doc.realm.id).toBe(realms[1].id);
      expect(await foreignKeyViolations(db)).toEqual({});
      // A second organization does not create it again.
      const again = await runCli(["create_realm", "Second", "--string-id", "second", "boss@second.example", "Boss", "--flush-cache", "none", "--json"], {
        db,
        confDir: conf,
      });
      expect(again.exitCode, again.stderr).toBe(0);
      expect(JSON.parse(again.stdout).system_bot_realm_created).toBeNull();
      expect(await db.query("SELECT 1 FROM zerver_realm WHERE string_id = 'zulipinternal'")).toHaveLength(1);
    } finally {
      conf.cleanup();
      await db.drop();
    }
  });

  it("refuses (exit 3) when there are organizations but no system bot realm", async () => {
    const db = await createDatabase({
      template: "zulip12_fresh",
      sql: "UPDATE zerver_realm SET string_id = 'renamedinternal' WHERE string_id = 'zulipinternal';",
    });
    const conf = makeConfDir({ externalHost: HOST });
    try {
      const before = await snapshot(db);
      const r = await runCli(["create_realm", "X", "--string-id", "xorg", "x@x.example", "X"], { db, confDir: conf });
      expect(r.exitCode).toBe(3);
      expect(r.stderr).toBe(
        "This server has no system bot realm ('zulipinternal'); it was never initialized. Run the Zulip installer's initialize-database first.",
      );
      expect(changed(before, await snapshot(db))).toEqual([]);
    } finally {
      conf.cleanup();
      await db.drop();
    }
  });
});
