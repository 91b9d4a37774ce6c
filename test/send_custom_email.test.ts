// send_custom_email through the built CLI against a real Zulip 12 (and 11) database and a real
// SMTP server in this process: recipient selection for every selector, the Markdown template with
// its headers, per-user interpolation, the 810 audit rows and the "already received" exclusion,
// marketing unsubscribe confirmations, dry runs, failures and argument errors. Every table is
// counted before and after to prove nothing else changed.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createRealm } from "../src/zulip/actions/create-realm.js";
import { createUser } from "../src/zulip/actions/create-user.js";
import { ROLES } from "../src/zulip/roles.js";
import { parseEmailTemplate } from "../src/zulip/templates/email-headers.js";
import { renderMarkdown } from "../src/zulip/templates/markdown.js";
import { startSmtpSink, type ReceivedMail, type SmtpSink } from "./email-support.js";
import { runCli } from "./helpers/cli.js";
import { makeConfDir, type ConfDir } from "./helpers/confdir.js";
import { createDatabase, type TestDatabase } from "./helpers/pg.js";
import { makeTempDir, removeDirSync } from "./helpers/services.js";

const HOST = "zulip.example.net";
const ADMIN = "admin@example.net"; // ZULIP_ADMINISTRATOR of the default conf dir

interface People {
  zulip: number;
  lear: number;
  dead: number;
  iago: number; // zulip admin
  desdemona: number; // zulip owner
  hamlet: number; // zulip member
  othello: number; // zulip member, marketing emails off
  cordelia: number; // zulip member, long-term idle
  polonius: number; // zulip guest
  bot: number;
  dummy: number;
  gone: number; // deactivated
  king: number; // lear owner (lear is sponsored)
  hamletLear: number; // lear member with hamlet's address in another case
  ghost: number; // user of the deactivated realm
}

let tmp: string;
let smtp: SmtpSink;

beforeAll(async () => {
  tmp = makeTempDir("custom-email");
  smtp = await startSmtpSink();
});

afterAll(async () => {
  await smtp?.close();
  if (tmp) removeDirSync(tmp);
});

async function seed(db: TestDatabase): Promise<People> {
  const q = db.client;
  await q.query("BEGIN");
  const zulip = await createRealm(q, { stringId: "zulip", name: "Zulip Dev" });
  const lear = await createRealm(q, { stringId: "lear", name: "Lear & Co.", planType: 4 });
  const dead = await createRealm(q, { stringId: "dead", name: "Dead realm" });
  const u = (realm: number, email: string, fullName: string, extra: Record<string, unknown> = {}) =>
    createUser(q, realm, { email, fullName, externalHost: HOST, ...extra }).then((x) => x.id);
  const p: People = {
    zulip: zulip.id,
    lear: lear.id,
    dead: dead.id,
    desdemona: await u(zulip.id, "desdemona@zulip.com", "Desdemona", { role: ROLES.REALM_OWNER, realmCreation: true }),
    iago: await u(zulip.id, "iago@zulip.com", "Iago", { role: ROLES.REALM_ADMINISTRATOR }),
    hamlet: await u(zulip.id, "hamlet@zulip.com", "King Hamlet"),
    othello: await u(zulip.id, "othello@zulip.com", "Othello, the Moor of Venice", { enableMarketingEmails: false }),
    cordelia: await u(zulip.id, "cordelia@zulip.com", "Cordelia, Lear's daughter", { columns: { long_term_idle: true } }),
    polonius: await u(zulip.id, "polonius@zulip.com", "Polonius", { role: ROLES.GUEST }),
    bot: await u(zulip.id, "bot@zulip.com", "A bot", { botType: 1 }),
    dummy: await u(zulip.id, "dummy@zulip.com", "Mirror dummy", { isMirrorDummy: true }),
    gone: await u(zulip.id, "gone@zulip.com", "Gone", { isActive: false }),
    king: await u(lear.id, "king@lear.org", "King Lear", { role: ROLES.REALM_OWNER, realmCreation: true }),
    hamletLear: await u(lear.id, "HAMLET@zulip.com", "Hamlet in Lear"),
    ghost: await u(dead.id, "ghost@dead.org", "Ghost", { role: ROLES.REALM_OWNER, realmCreation: true }),
  };
  await q.query("UPDATE zerver_realm SET deactivated = true WHERE id = $1", [dead.id]);
  await q.query("COMMIT");
  return p;
}

function conf(db: TestDatabase, extra = ""): ConfDir {
  return makeConfDir({ db: { name: db.name }, extraSettings: `EMAIL_HOST = "127.0.0.1"\nEMAIL_PORT = ${smtp.port}\n${extra}` });
}

function writeTemplate(name: string, text: string): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, text);
  return f;
}

const TEMPLATE = `Subject: News for {{ realm_name }}
From: Zulip Team

# Hello {{ realm_name }}

We moved **everything** to [the new server]({{ realm_url }}/help/new-server).
Your organization id is {{ realm.string_id }}.
`;

type Snapshot = Map<string, number>;
async function counts(db: TestDatabase): Promise<Snapshot> {
  const tables = await db.query<{ t: string }>(
    "SELECT c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'zulip' AND c.relkind = 'r' ORDER BY 1",
  );
  const m: Snapshot = new Map();
  for (const { t } of tables) m.set(t, (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM zulip."${t}"`))[0].n);
  return m;
}
function diff(a: Snapshot, b: Snapshot): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [t, n] of b) if (n !== a.get(t)) out[t] = n - (a.get(t) ?? 0);
  return out;
}

async function auditRows(db: TestDatabase, after = 0) {
  return db.query<{
    id: number;
    realm_id: number;
    modified_user_id: number;
    acting_user_id: number | null;
    event_type: number;
    extra_data: Record<string, unknown>;
    backfilled: boolean;
    modified_stream_id: number | null;
    modified_user_group_id: number | null;
    event_last_message_id: number | null;
    scrubbed: boolean;
    event_time: Date;
  }>("SELECT * FROM zerver_realmauditlog WHERE event_type = 810 AND id > $1 ORDER BY modified_user_id", [after]);
}

async function maxAuditId(db: TestDatabase): Promise<number> {
  return (await db.query<{ m: number }>("SELECT coalesce(max(id), 0)::int AS m FROM zerver_realmauditlog"))[0].m;
}

/** Messages received since `from`, by envelope recipient. */
function received(from: number): Map<string, ReceivedMail> {
  const m = new Map<string, ReceivedMail>();
  for (const msg of smtp.messages.slice(from)) for (const to of msg.envelopeTo) m.set(to, msg);
  return m;
}

describe("Zulip 12", () => {
  let db: TestDatabase;
  let c: ConfDir;
  let p: People;
  let mark: number;

  beforeAll(async () => {
    db = await createDatabase({ template: "zulip12_fresh" });
    p = await seed(db);
    c = conf(db);
  });
  afterAll(async () => {
    c?.cleanup();
    await db?.drop();
  });
  beforeEach(() => {
    mark = smtp.messages.length;
  });

  it("--dry-run prints the first email and the recipients, and changes nothing", async () => {
    const file = writeTemplate("news.md", TEMPLATE);
    const before = await counts(db);
    const r = await runCli(["send_custom_email", "-r", "zulip", "-a", "--path", file, "--dry-run"], { confDir: c, db });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(
      [
        "Subject: News for Zulip Dev",
        `From: Zulip Team <${ADMIN}>`,
        "To: Desdemona <desdemona@zulip.com>",
        'Content-Type: text/plain; charset="utf-8"',
        "MIME-Version: 1.0",
        "Content-Transfer-Encoding: 7bit",
        "",
        "# Hello Zulip Dev",
        "",
        "We moved **everything** to [the new server](https://zulip.zulip.example.net/help/new-server).",
        "Your organization id is zulip.",
        "Would send the above email to:",
        // -a: the realm's active non-bot users, by id
        "  desdemona@zulip.com (zulip)",
        "  iago@zulip.com (zulip)",
        "  hamlet@zulip.com (zulip)",
        "  othello@zulip.com (zulip)",
        "  cordelia@zulip.com (zulip)",
        "  polonius@zulip.com (zulip)",
        "  dummy@zulip.com (zulip)",
      ].join("\n"),
    );
    expect(diff(before, await counts(db))).toEqual({});
    expect(smtp.messages.length).toBe(mark);
  });

  it("sends to -r/-a with the branding, interpolation and headers, and writes one 810 row per email", async () => {
    const text = TEMPLATE;
    const file = writeTemplate("news.md", text);
    const hash = crypto.createHash("sha256").update(text).digest("hex").slice(0, 32);
    const before = await counts(db);
    const fromAudit = await maxAuditId(db);
    const t0 = new Date();
    const r = await runCli(["send_custom_email", "-r", "zulip", "-a", "--admins-only", "--markdown-template-path", file, "--reply-to", "help@example.net"], {
      confDir: c,
      db,
    });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("");
    expect(diff(before, await counts(db))).toEqual({ zerver_realmauditlog: 2 });

    const got = received(mark);
    expect([...got.keys()].sort()).toEqual(["desdemona@zulip.com", "iago@zulip.com"]);
    const m = got.get("iago@zulip.com")!;
    expect(m.envelopeFrom).toBe(`noreply@${HOST}`);
    expect(m.parsed.header("to")).toBe("Iago <iago@zulip.com>");
    expect(m.parsed.header("from")).toBe(`Zulip Team <${ADMIN}>`);
    expect(m.parsed.header("subject")).toBe("News for Zulip Dev");
    expect(m.parsed.header("reply-to")).toBe("help@example.net");
    expect(m.parsed.header("list-id")).toBe(`Zulip Dev <zulip.${HOST}>`);
    expect(m.parsed.header("x-auto-response-suppress")).toBe("All");
    expect(m.parsed.header("list-unsubscribe")).toBeUndefined();
    expect(m.parsed.text).toBe(
      "# Hello Zulip Dev\n\nWe moved **everything** to [the new server](https://zulip.zulip.example.net/help/new-server).\nYour organization id is zulip.\n",
    );
    expect(m.parsed.html).toContain("<h1>Hello Zulip Dev</h1>");
    expect(m.parsed.html).toContain(
      '<p>We moved <strong>everything</strong> to <a href="https://zulip.zulip.example.net/help/new-server">the new server</a>.\nYour organization id is zulip.</p>',
    );
    expect(m.parsed.html).toContain(`src="https://${HOST}/static/images/emails/email_logo.png"`);

    const rows = await auditRows(db, fromAudit);
    expect(rows.map((x) => x.modified_user_id)).toEqual([p.desdemona, p.iago].sort((a, b) => a - b));
    for (const row of rows) {
      expect(row).toMatchObject({
        realm_id: p.zulip,
        acting_user_id: null,
        event_type: 810,
        extra_data: { email_id: hash, email_subject: "News for {{ realm_name }}" },
        backfilled: false,
        modified_stream_id: null,
        modified_user_group_id: null,
        event_last_message_id: null,
        scrubbed: false,
      });
      expect(row.event_time.getTime()).toBeGreaterThanOrEqual(t0.getTime() - 1000);
      expect(row.event_time.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
    }
    // send_email.log, as Zulip writes it
    const log = fs.readFileSync(path.join(c.logDir, "send_email.log"), "utf8");
    expect(log).toMatch(new RegExp(`INFO     Sending custom_email_${hash} email to \\['Iago <iago@zulip\\.com>'\\] in zulip\\n`));
  });

  it("skips users who already received the same email, and says so", async () => {
    const file = writeTemplate("news.md", TEMPLATE);
    const before = await counts(db);
    const dry = await runCli(["send_custom_email", "-r", "zulip", "-a", "--path", file, "--dry-run"], { confDir: c, db });
    expect(dry.stdout.split("\n")[0]).toBe("Excluded 2 users who already received this email");
    expect(dry.stdout).not.toContain("  iago@zulip.com (zulip)");
    const r = await runCli(["send_custom_email", "-r", "zulip", "-a", "--path", file, "--json"], { confDir: c, db });
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({
      dry_run: false,
      records_audit_log: true,
      excluded_already_received_count: 2,
      sent_count: 5,
      failed_count: 0,
      subject: "News for {{ realm_name }}",
    });
    expect(doc.audit_log_ids).toHaveLength(5);
    expect(doc.results.map((x: { user: { id: number } }) => x.user.id)).toEqual([p.hamlet, p.othello, p.cordelia, p.polonius, p.dummy]);
    expect(doc.results.every((x: { status: string }) => x.status === "done")).toBe(true);
    expect(diff(before, await counts(db))).toEqual({ zerver_realmauditlog: 5 });
    const one = await runCli(["send_custom_email", "-u", "iago@zulip.com", "-r", "zulip", "--path", file], { confDir: c, db });
    expect(one.exitCode).toBe(0);
    expect(one.stdout).toBe("Excluded 1 users who already received this email");
    // A changed file is a different email.
    const edited = writeTemplate("news.md", TEMPLATE + "\nP.S.\n");
    const again = await runCli(["send_custom_email", "-u", "iago@zulip.com", "-r", "zulip", "--path", edited, "--dry-run"], { confDir: c, db });
    expect(again.stdout).not.toContain("Excluded");
    expect(again.stdout).toContain("  iago@zulip.com (zulip)");
  });

  it("--entire-server: active humans of active realms; -u: exactly the given users", async () => {
    const file = writeTemplate("all.md", "Subject: All\n\nHello.\n");
    const r = await runCli(["send_custom_email", "--entire-server", "--path", file, "--from-name", "Ops", "--dry-run"], { confDir: c, db });
    expect(r.exitCode).toBe(0);
    const listed = r.stdout.split("Would send the above email to:\n")[1].split("\n");
    const expected = await db.query<{ e: string; s: string }>(
      `SELECT u.delivery_email AS e, r.string_id AS s FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id
        WHERE u.is_active AND NOT u.is_bot AND NOT u.is_mirror_dummy AND NOT r.deactivated ORDER BY u.id`,
    );
    expect(listed).toEqual(expected.map((x) => `  ${x.e} (${x.s})`));
    expect(listed).toContain("  king@lear.org (lear)");
    expect(listed.join()).not.toMatch(/ghost|gone|dummy|bot@/);

    const u = await runCli(["send_custom_email", "-r", "zulip", "-u", "hamlet@zulip.com,bot@zulip.com", "--path", file, "--from-name", "Ops", "--dry-run"], {
      confDir: c,
      db,
    });
    expect(u.stdout.split("Would send the above email to:\n")[1]).toBe("  hamlet@zulip.com (zulip)\n  bot@zulip.com (zulip)");
    const bad = await runCli(["send_custom_email", "-r", "zulip", "-u", "nobody@zulip.com", "--path", file, "--from-name", "Ops"], { confDir: c, db });
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toBe(`The realm 'zulip ${p.zulip}' does not contain a user with email 'nobody@zulip.com'`);
    const noRealm = await runCli(["send_custom_email", "-a", "--path", file, "--from-name", "Ops"], { confDir: c, db });
    expect(noRealm.exitCode).toBe(1);
    expect(noRealm.stderr).toBe("The --all-users option requires a realm; please pass --realm.");
  });

  it("--marketing: opted-in, recently active (or admin) users, one email per address, with unsubscribe links", async () => {
    const file = writeTemplate("marketing.md", "Subject: Newsletter\nFrom: Zulip\n\nNews!\n");
    const before = await counts(db);
    const t0 = Date.now();
    const r = await runCli(["send_custom_email", "--marketing", "--path", file], { confDir: c, db });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    // Not othello (opted out), not cordelia (idle); hamlet@ and HAMLET@ are one address (lowest id wins).
    const want = ["desdemona@zulip.com", "iago@zulip.com", "hamlet@zulip.com", "polonius@zulip.com", "king@lear.org"];
    const got = received(mark);
    expect([...got.keys()].sort()).toEqual([...want].sort());
    expect(diff(before, await counts(db))).toEqual({ zerver_realmauditlog: 5, confirmation_confirmation: 5 });
    const [{ ct }] = await db.query<{ ct: number }>("SELECT id AS ct FROM django_content_type WHERE app_label = 'zerver' AND model = 'userprofile'");
    const confs = await db.query<{
      object_id: number;
      confirmation_key: string;
      realm_id: number;
      type: number;
      content_type_id: number;
      date_sent: Date;
      expiry_date: Date;
    }>(
      "SELECT object_id::int, confirmation_key, realm_id::int, type, content_type_id::int, date_sent, expiry_date FROM confirmation_confirmation WHERE type = 4 AND date_sent >= $1 ORDER BY object_id",
      [new Date(t0 - 1000)],
    );
    expect(confs.map((x) => x.object_id)).toEqual([p.desdemona, p.iago, p.hamlet, p.polonius, p.king].sort((a, b) => a - b));
    for (const conf of confs) {
      expect(conf.content_type_id).toBe(ct);
      expect(conf.confirmation_key).toMatch(/^[a-z2-7]{24}$/);
      expect(conf.date_sent.getTime()).toBeGreaterThanOrEqual(t0 - 1000);
      // effectively never expires
      expect(conf.expiry_date.getTime() - conf.date_sent.getTime()).toBe(1_000_000 * 86_400_000);
    }
    const hamletConf = confs.find((x) => x.object_id === p.hamlet)!;
    expect(hamletConf.realm_id).toBe(p.zulip);
    const m = got.get("hamlet@zulip.com")!;
    const link = `https://zulip.${HOST}/accounts/unsubscribe/marketing/${hamletConf.confirmation_key}`;
    expect(m.parsed.header("list-unsubscribe")).toBe(`<${link}>`);
    expect(m.parsed.header("list-unsubscribe-post")).toBe("List-Unsubscribe=One-Click");
    expect(m.parsed.header("from")).toBe(`Zulip <${ADMIN}>`);
    expect(m.parsed.html).toContain(`<a href="${link}">Unsubscribe from marketing emails</a>`);
    const king = got.get("king@lear.org")!;
    expect(king.parsed.header("list-unsubscribe")).toMatch(
      new RegExp(`^<https://lear\\.${HOST.replace(/\./g, "\\.")}/accounts/unsubscribe/marketing/[a-z2-7]{24}>$`),
    );

    // Again: any account with an address that got it counts, so nobody is left.
    const again = await runCli(["send_custom_email", "--marketing", "--path", file, "--json"], { confDir: c, db });
    expect(JSON.parse(again.stdout)).toMatchObject({ excluded_already_received_count: 5, sent_count: 0, results: [] });
  });

  it("--all-sponsored-org-admins: admins and owners of sponsored organizations", async () => {
    const file = writeTemplate("sponsored.md", "Subject: Thanks\nFrom: Zulip\n\nThank you.\n");
    const r = await runCli(["send_custom_email", "--all-sponsored-org-admins", "--path", file, "--dry-run"], { confDir: c, db });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.split("Would send the above email to:\n")[1]).toBe("  king@lear.org (lear)");
  });

  it("--json-file: those users, each with their own template values", async () => {
    const file = writeTemplate("personal.md", "Subject: Your quota, {{ name }}\nFrom: Zulip\n\nYou use {{ usage.gb }} GB of {{ realm_name }}'s storage.\n");
    const json = path.join(tmp, "users.json");
    fs.writeFileSync(json, JSON.stringify({ [p.iago]: { name: "Iago", usage: { gb: 3 } }, [p.king]: { name: "Lear", usage: { gb: 12.5 } } }));
    const r = await runCli(["send_custom_email", "--json-file", json, "--path", file], { confDir: c, db });
    expect(r.exitCode).toBe(0);
    const got = received(mark);
    expect([...got.keys()].sort()).toEqual(["iago@zulip.com", "king@lear.org"]);
    expect(got.get("king@lear.org")!.parsed.header("subject")).toBe("Your quota, Lear");
    expect(got.get("king@lear.org")!.parsed.text).toBe("You use 12.5 GB of Lear & Co.'s storage.\n");
    expect(got.get("iago@zulip.com")!.parsed.text).toBe("You use 3 GB of Zulip Dev's storage.\n");
    // Values are HTML-escaped in the HTML part (the template's own text is Markdown).
    expect(got.get("king@lear.org")!.parsed.html).toContain("<p>You use 12.5 GB of Lear &amp; Co.'s storage.</p>");
  });

  it("TERMS_OF_SERVICE_VERSION set: only users who accepted the terms", async () => {
    await db.query("UPDATE zerver_userprofile SET tos_version = '1.0' WHERE id = $1", [p.hamlet]);
    await db.query("UPDATE zerver_userprofile SET tos_version = '-1' WHERE id = $1", [p.othello]);
    const c2 = conf(db, 'TERMS_OF_SERVICE_VERSION = "1.0"\n');
    try {
      const file = writeTemplate("tos.md", "Subject: Terms\nFrom: Zulip\n\nHi.\n");
      const r = await runCli(["send_custom_email", "-r", "zulip", "-a", "--path", file, "--dry-run"], { confDir: c2, db });
      expect(r.stdout.split("Would send the above email to:\n")[1]).toBe("  hamlet@zulip.com (zulip)");
    } finally {
      c2.cleanup();
    }
  });

  it("a recipient the SMTP server refuses: the others get it, the failure is reported and can be retried", async () => {
    const file = writeTemplate("retry.md", "Subject: Retry\nFrom: Zulip\n\nHi.\n");
    smtp.reject.add("othello@zulip.com");
    let r;
    try {
      r = await runCli(["send_custom_email", "-r", "zulip", "-u", "hamlet@zulip.com,othello@zulip.com,iago@zulip.com", "--path", file], { confDir: c, db });
    } finally {
      smtp.reject.delete("othello@zulip.com");
    }
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("Failed to send email to othello@zulip.com (zulip): ");
    expect(r.stderr).toContain("Recipient address rejected");
    expect(r.stderr).toContain("1 of 3 emails could not be sent; run the same command again to retry them.");
    const hash = parseEmailTemplate(fs.readFileSync(file, "utf8")).hash;
    const rows = await db.query<{ u: number }>(
      "SELECT modified_user_id AS u FROM zerver_realmauditlog WHERE event_type = 810 AND extra_data->>'email_id' = $1 ORDER BY 1",
      [hash],
    );
    expect(rows.map((x) => x.u)).toEqual([p.hamlet, p.iago].sort((a, b) => a - b));
    const retry = await runCli(["send_custom_email", "-r", "zulip", "-u", "hamlet@zulip.com,othello@zulip.com,iago@zulip.com", "--path", file], {
      confDir: c,
      db,
    });
    expect(retry.exitCode).toBe(0);
    // manage.py's output on a rerun, exactly.
    expect(retry.stdout).toBe("Excluded 2 users who already received this email");
  });

  it("the subject and the sender's name: in the file or as options, not both, not neither", async () => {
    const both = writeTemplate("both.md", "Subject: S\nFrom: F\n\nx\n");
    const none = writeTemplate("none.md", "x\n");
    const run = (file: string, ...extra: string[]) =>
      runCli(["send_custom_email", "-r", "zulip", "-u", "iago@zulip.com", "--path", file, ...extra], { confDir: c, db });
    let r = await run(both, "--subject", "T");
    expect([r.exitCode, r.stderr]).toEqual([1, "Argument 'subject' is ambiguously present in both options and email template."]);
    r = await run(none);
    expect([r.exitCode, r.stderr]).toEqual([1, "Argument 'subject' is required in either options or email template."]);
    r = await run(both, "--from-name", "G");
    expect([r.exitCode, r.stderr]).toEqual([1, "Argument 'from_name' is ambiguously present in both options and email template."]);
    r = await run(none, "--subject", "T");
    expect([r.exitCode, r.stderr]).toEqual([1, "Argument 'from_name' is required in either options or email template."]);
    r = await run(none, "--subject", "T", "--from-name", "G", "--from-address", "news@example.net", "--dry-run");
    expect(r.exitCode).toBe(0);
    expect(r.stdout.split("\n").slice(0, 3)).toEqual(["Subject: T", "From: G <news@example.net>", "To: Iago <iago@zulip.com>"]);
  });

  it("argument errors are usage errors (exit 2), as argparse reports them", async () => {
    const file = writeTemplate("x.md", "Subject: S\nFrom: F\n\nx\n");
    let r = await runCli(["send_custom_email", "--path", file], { confDir: c, db });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(
      "error: one of the arguments --entire-server --marketing --remote-servers --announce-release --all-sponsored-org-admins --json-file -u/--users -a/--all-users is required",
    );
    r = await runCli(["send_custom_email", "--entire-server", "--marketing", "--path", file], { confDir: c, db });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("error: argument --marketing: not allowed with argument --entire-server");
    r = await runCli(["send_custom_email", "--entire-server"], { confDir: c, db });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("error: the following arguments are required: --markdown-template-path/--path");
    r = await runCli(["send_custom_email", "--remote-servers", "--path", file], { confDir: c, db });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("only works on Zulip Cloud's billing server");
    r = await runCli(["send_custom_email", "--entire-server", "--path", path.join(tmp, "missing.md")], { confDir: c, db });
    expect([r.exitCode, r.stderr]).toEqual([1, `[Errno 2] No such file or directory: '${path.join(tmp, "missing.md")}'`]);
  });

  it("refuses templates it cannot render faithfully before sending anything", async () => {
    const file = writeTemplate("jinja.md", "Subject: S\nFrom: F\n\n{% if realm_name %}Hi{% endif %}\n");
    const before = await counts(db);
    const r = await runCli(["send_custom_email", "-r", "zulip", "-a", "--path", file], { confDir: c, db });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('Jinja statements like "{% if realm_name %}" are not supported');
    expect(smtp.messages.length).toBe(mark);
    expect(diff(before, await counts(db))).toEqual({});
  });

  it("without outgoing email configured: exit 3, nothing written", async () => {
    const c3 = makeConfDir({ db: { name: db.name } });
    try {
      const file = writeTemplate("x.md", "Subject: Unconfigured\nFrom: F\n\nx\n");
      const before = await counts(db);
      const r = await runCli(["send_custom_email", "-r", "zulip", "-a", "--path", file], { confDir: c3, db });
      expect(r.exitCode).toBe(3);
      expect(r.stderr).toContain("Outgoing email not yet configured");
      expect(diff(before, await counts(db))).toEqual({});
    } finally {
      c3.cleanup();
    }
  });
});

describe("Zulip 11", () => {
  it("writes no audit rows and excludes nobody (as Zulip 11's send_custom_email)", async () => {
    const db = await createDatabase({ template: "zulip11_fresh" });
    const c = conf(db);
    try {
      // The fresh install's organization (id 2, the root domain) and two more of its users, copied
      // from its owner in SQL (the creation actions write Zulip 12 rows).
      for (const [email, name] of [
        ["ann@example.org", "Ann"],
        ["bob@example.org", "Bob"],
      ]) {
        await db.query(
          `CREATE TEMP TABLE u AS SELECT * FROM zerver_userprofile WHERE realm_id = 2 AND NOT is_bot ORDER BY id LIMIT 1;
           UPDATE u SET id = nextval(pg_get_serial_sequence('zerver_userprofile', 'id')), email = '${email}', delivery_email = '${email}',
                        full_name = '${name}', api_key = md5(random()::text), uuid = gen_random_uuid(), role = 400;
           INSERT INTO zerver_userprofile SELECT * FROM u; DROP TABLE u;`,
        );
      }
      const expected = (
        await db.query<{ e: string }>("SELECT delivery_email AS e FROM zerver_userprofile WHERE realm_id = 2 AND is_active AND NOT is_bot ORDER BY id")
      ).map((x) => x.e);
      expect(expected.length).toBe(3);
      const file = writeTemplate("z11.md", "Subject: Old\nFrom: Zulip\n\nHi.\n");
      for (let round = 0; round < 2; round++) {
        const before = await counts(db);
        const mark = smtp.messages.length;
        const r = await runCli(["send_custom_email", "-r", "", "-a", "--path", file, "--json"], { confDir: c, db });
        expect(r.exitCode).toBe(0);
        expect(JSON.parse(r.stdout)).toMatchObject({ records_audit_log: false, excluded_already_received_count: 0, sent_count: 3, audit_log_ids: [] });
        expect([...received(mark).keys()].sort()).toEqual([...expected].sort());
        expect(diff(before, await counts(db))).toEqual({});
      }
    } finally {
      c.cleanup();
      await db.drop();
    }
  });
});

describe("template file and Markdown", () => {
  it("reads RFC 822 headers like Python's email parser", () => {
    const a = parseEmailTemplate("Subject: Hello\n  world\nFrom: Zulip Team\n\nBody\r\nline\n");
    expect(a.headers.get("subject")).toBe("Hello  world");
    expect(a.headers.get("from")).toBe("Zulip Team");
    expect(a.body).toBe("Body\nline\n");
    expect(a.hash).toBe(crypto.createHash("sha256").update("Subject: Hello\n  world\nFrom: Zulip Team\n\nBody\nline\n").digest("hex").slice(0, 32));
    // No headers: the whole file is the body.
    const b = parseEmailTemplate("# Title\n\ntext\n");
    expect([...b.headers]).toEqual([]);
    expect(b.body).toBe("# Title\n\ntext\n");
    // A first line that looks like a header is one (Python's behaviour too).
    const c = parseEmailTemplate("Note: read this\nsecond line\n");
    expect(c.headers.get("note")).toBe("read this");
    expect(c.body).toBe("second line\n");
    // A leading blank line ends the (empty) headers and is dropped.
    expect(parseEmailTemplate("\nSubject: no\n").body).toBe("Subject: no\n");
  });

  it("renders the Markdown custom emails use, safely, keeping template expressions", () => {
    const html = renderMarkdown(
      [
        "## Plans for {{ realm_name }}",
        "",
        'Text with *emphasis*, __strong__, `code`, snake_case_name and a [link]({{ realm_url }}/x "t").',
        "<script>alert(1)</script> [bad](javascript:alert(1)) ![logo](https://x.y/l.png)",
        "",
        "* one",
        "* two",
        "    1. nested",
        "",
        "> quote",
        "",
        "```",
        "<b>raw</b>",
        "```",
        "",
        "| a | b |",
        "|---|--:|",
        "| 1 | 2 |",
      ].join("\n"),
    );
    expect(html).toBe(
      [
        "<h2>Plans for {{ realm_name }}</h2>",
        '<p>Text with <em>emphasis</em>, <strong>strong</strong>, <code>code</code>, snake_case_name and a <a href="{{ realm_url }}/x" title="t">link</a>.',
        '&lt;script&gt;alert(1)&lt;/script&gt; bad <img alt="logo" src="https://x.y/l.png" /></p>',
        "<ul>",
        "<li>one</li>",
        "<li>two",
        "<ol>",
        "<li>nested</li>",
        "</ol></li>",
        "</ul>",
        "<blockquote>",
        "<p>quote</p>",
        "</blockquote>",
        "<pre><code>&lt;b&gt;raw&lt;/b&gt;",
        "</code></pre>",
        "<table>",
        "<thead>",
        "<tr>",
        "<th>a</th>",
        '<th style="text-align: right;">b</th>',
        "</tr>",
        "</thead>",
        "<tbody>",
        "<tr>",
        "<td>1</td>",
        '<td style="text-align: right;">2</td>',
        "</tr>",
        "</tbody>",
        "</table>",
      ].join("\n"),
    );
  });
});
