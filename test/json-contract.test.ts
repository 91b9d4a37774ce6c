// The --json contract (issue 15): every converted command's document, in its success, refusal,
// dry-run and failure cases (environment error, usage error), validates against the schema that
// `help <command> --json-schema` prints (ajv, JSON Schema draft-07); the envelope's invariants
// hold (ok exactly when exit_code is 0 and exit_code is the process's status); the README's
// examples validate; and the CLI bundle never contains the schema library.
import fs from "node:fs";
import path from "node:path";
import { Ajv } from "ajv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRealm } from "../src/zulip/actions/create-realm.js";
import { createUser } from "../src/zulip/actions/create-user.js";
import { ERROR_CODES } from "../src/lib/errors.js";
import { STATUSES, utcTimestampFromPg } from "../src/cli/json-contract.js";
import { ROLE_API_NAMES, ROLE_IDS, ROLE_NAMES } from "../src/zulip/roles.js";
import { cacheReportJson } from "../src/zulip/cache.js";
import { eventsReportJson } from "../src/services/events.js";
import { CacheReport, EventsReport, User } from "../src/schemas/shared.js";
import { makeTempDir, startSmtpSink, type SmtpSink } from "./email-support.js";
import { CLI_ENTRY, runCli } from "./helpers/cli.js";
import { type ConfDir, makeConfDir } from "./helpers/confdir.js";
import { createDatabase, REPO_ROOT, type TestDatabase } from "./helpers/pg.js";
import { type RedisInstance, startRedis } from "./helpers/redis.js";
import { checkDocument, checkReadmeExamples } from "./helpers/json-schema.js";

const CONVERTED = [
  "list_realms",
  "show_admins",
  "generate_realm_creation_link",
  "send_test_email",
  "send_password_reset_email",
  "send_realm_reactivation_email",
  "send_custom_email",
  "reset_authentication_attempt_count",
  "export_single_user",
  "doctor",
  "dbshell",
  "completion",
  "create_realm",
  "deactivate_realm",
  "reactivate_realm",
  "change_realm_subdomain",
  "unarchive_channel",
  "register_server",
  "realm_domain",
  "create_stream",
  "add_users_to_streams",
  "remove_users_from_stream",
  "backup",
  "delete_old_unclaimed_attachments",
  "archive_messages",
];

const ajv = new Ajv({ allErrors: true, strict: true });

/** The schema `help <name> --json-schema` prints, compiled. */

describe("the contract's shared parts", () => {
  it("role names and ids are Zulip's (src/zulip/roles.ts; UserProfile.ROLE_ID_TO_NAME_MAP), and the schemas use them", () => {
    expect(ROLE_NAMES).toEqual({
      100: { printed: "Organization owner", api: "owner" },
      200: { printed: "Organization administrator", api: "administrator" },
      300: { printed: "Moderator", api: "moderator" },
      400: { printed: "Member", api: "member" },
      600: { printed: "Guest", api: "guest" },
    });
    expect([...ROLE_IDS]).toEqual(Object.keys(ROLE_NAMES).map(Number));
    expect([...ROLE_API_NAMES]).toEqual(Object.values(ROLE_NAMES).map((r) => r.api));
    const literals = (s: any) => s.anyOf.map((x: any) => x.const);
    expect(literals(User.properties.role_id)).toEqual([...ROLE_IDS]);
    expect(literals(User.properties.role)).toEqual([...ROLE_API_NAMES]);
  });

  it("timestamps from PostgreSQL become RFC 3339 UTC with Z, keeping the microseconds", () => {
    expect(utcTimestampFromPg("2025-01-02 03:04:05.123456+00")).toBe("2025-01-02T03:04:05.123456Z");
    expect(utcTimestampFromPg("2025-01-02 03:04:05+00:00")).toBe("2025-01-02T03:04:05Z");
    expect(utcTimestampFromPg("2025-01-02 05:04:05.5+02")).toBe("2025-01-02T03:04:05.500Z");
  });

  it("every error code's exit code is 1, 2 or 3, and the status vocabulary is closed", () => {
    for (const [code, [exit]] of Object.entries(ERROR_CODES)) expect([1, 2, 3], code).toContain(exit);
    expect(Object.keys(STATUSES)).toEqual(["done", "would_do", "unchanged", "skipped", "warning", "refused", "failed", "not_attempted"]);
  });

  it("the memcached report and the real-time events report fit the one service-report shape", () => {
    const cache = ajv.compile(CacheReport);
    const doc = cacheReportJson({
      mode: "keys",
      ok: false,
      skipped: false,
      server: "127.0.0.1:11211",
      prefixes: 1,
      keysSent: 7,
      keysDeleted: 2,
      flushedAll: false,
      warning: "memcached down",
    });
    expect(cache(doc) ? null : ajv.errorsText(cache.errors)).toBeNull();
    const events = ajv.compile(EventsReport);
    // What the event layer (lib/events.ts) reports, delivered and failed.
    const delivered = eventsReportJson({
      mode: "auto",
      transport: "rabbitmq",
      published: 3,
      jobs: 1,
      ok: true,
      skipped: false,
      undelivered: [],
      warning: null,
    });
    const failed = eventsReportJson({
      mode: "auto",
      transport: "none",
      published: 0,
      jobs: 0,
      ok: false,
      skipped: false,
      undelivered: ["realm_user/update", "deferred_work: soft_reactivate"],
      warning: "RabbitMQ and Tornado unreachable",
    });
    for (const e of [delivered, failed]) expect(events(e) ? null : ajv.errorsText(events.errors)).toBeNull();
    expect(events({ transport: "tornado", published: 1, ok: true })).toBe(false);
  });

  it("the converted commands print through the contract (jsonBody), never their own document", () => {
    for (const name of CONVERTED) {
      const src = fs.readFileSync(path.join(REPO_ROOT, "src", "commands", `${name}.ts`), "utf8");
      expect(src, name).not.toContain("jsonResult(");
      expect(src, name).toMatch(/jsonBody</);
    }
  });

  it("the CLI bundle does not contain the schema library", () => {
    const text = fs.readFileSync(CLI_ENTRY, "utf8");
    expect(text).not.toMatch(/typebox/i);
    for (const name of CONVERTED) expect(fs.existsSync(path.join(REPO_ROOT, "dist", "json-schema", `${name}.schema.json`)), name).toBe(true);
  });
});

describe("errors before a command runs", () => {
  it("an unknown command with --json prints the error document (exit 2)", async () => {
    const doc = await checkDocument("error", await runCli(["no_such_command", "--json"]), 2);
    expect(doc.error_code).toBe("unknown_command");
  });

  it("no command, only --json: a usage error document", async () => {
    const doc = await checkDocument("error", await runCli(["--json"]), 2);
    expect(doc.error_code).toBe("usage");
  });

  it("every registered command publishes a schema (help <command> --json-schema)", async () => {
    const { COMMANDS } = await import("../src/commands/index.js");
    for (const c of COMMANDS) {
      const r = await runCli(["help", c.name, "--json-schema"]);
      expect(r.exitCode, `${c.name}: ${r.stderr}`).toBe(0);
      expect(JSON.parse(r.stdout).$id).toBe(`urn:zulip-manage:json-schema:${c.name}`);
    }
  }, 300_000);

  it("an unknown option is a usage error document for any command", async () => {
    for (const name of CONVERTED) {
      const r = await runCli([name, "--no-such-option", "--json"]);
      const doc = await checkDocument(name, r, 2);
      expect(doc.error_code).toBe("usage");
      expect(doc.error.length).toBeGreaterThan(0);
    }
  });
});

describe("the converted commands' documents", () => {
  let db: TestDatabase;
  let empty: TestDatabase;
  let sink: SmtpSink;
  let redis: RedisInstance;
  let conf: ConfDir;
  let noMail: ConfDir;
  let badMail: ConfDir;
  let tmp: string;
  const run = (args: string[], c: ConfDir = conf, d: TestDatabase = db) => runCli([...args, "--json"], { confDir: c, db: d });

  beforeAll(async () => {
    db = await createDatabase({ template: "zulip12_fresh" });
    empty = await createDatabase({ template: "empty" });
    sink = await startSmtpSink();
    redis = await startRedis();
    const redisOpts = { host: redis.host, port: redis.port, password: redis.password };
    conf = makeConfDir({ redis: redisOpts, extraSettings: `EMAIL_HOST = '127.0.0.1'\nEMAIL_PORT = ${sink.port}` });
    noMail = makeConfDir({ redis: { host: "127.0.0.1", port: 1, password: "x" } });
    badMail = makeConfDir({ extraSettings: "EMAIL_HOST = '127.0.0.1'\nEMAIL_PORT = 1" });
    tmp = makeTempDir("jsoncontract");
    // Two organizations with an owner each; "lear" deactivated (send_realm_reactivation_email).
    const q = db.client;
    await q.query("BEGIN");
    for (const [stringId, name, email] of [
      ["zulip", "Zulip Dev", "iago@zulip.com"],
      ["lear", "Lear & Co.", "king@lear.example"],
    ]) {
      const realm = await createRealm(q, { stringId, name });
      await createUser(q, realm.id, { email, fullName: email.split("@")[0], role: 100, externalHost: "zulip.example.net" });
    }
    await q.query("UPDATE zerver_realm SET deactivated = true WHERE string_id = 'lear'");
    await q.query("SET CONSTRAINTS ALL IMMEDIATE");
    await q.query("COMMIT");
  }, 180_000);
  afterAll(async () => {
    await sink?.close?.();
    await redis?.stop();
    conf?.cleanup();
    noMail?.cleanup();
    badMail?.cleanup();
    await db?.drop();
    await empty?.drop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("list_realms: plain, --all, database unreachable, not a Zulip database", async () => {
    const plain = await checkDocument("list_realms", await run(["list_realms"]), 0);
    expect(plain.realms.length).toBeGreaterThan(1);
    const all = await checkDocument("list_realms", await run(["list_realms", "--all"]), 0);
    expect(all.realms[0].date_created).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    const down = await runCli(["list_realms", "--json"], { confDir: conf, db, env: { PGPORT: "1", PGHOST: "127.0.0.1" } });
    expect((await checkDocument("list_realms", down, 3)).error_code).toBe("database_unreachable");
    expect((await checkDocument("list_realms", await run(["list_realms"], conf, empty), 3)).error_code).toBe("not_a_zulip_database");
  });

  it("show_admins: success, unknown realm, missing -r", async () => {
    const doc = await checkDocument("show_admins", await run(["show_admins", "-r", "zulip"]), 0);
    expect(doc.realm.string_id).toBe("zulip");
    expect(doc.administrators.map((u: any) => u.role)).toContain("owner");
    expect((await checkDocument("show_admins", await run(["show_admins", "-r", "nowhere"]), 1)).error_code).toBe("realm_not_found");
    expect((await checkDocument("show_admins", await run(["show_admins"]), 2)).error_code).toBe("usage");
  });

  it("generate_realm_creation_link: success and an empty database", async () => {
    const doc = await checkDocument("generate_realm_creation_link", await run(["generate_realm_creation_link"]), 0);
    expect(doc.dry_run).toBe(false);
    await checkDocument("generate_realm_creation_link", await run(["generate_realm_creation_link"], conf, empty), 3);
  });

  it("send_test_email: success, no address, SMTP unreachable, email not configured", async () => {
    const ok = await checkDocument("send_test_email", await run(["send_test_email", "you@example.com"]), 0);
    expect(ok.results.map((r: any) => r.status)).toEqual(["done", "done"]);
    expect((await checkDocument("send_test_email", await run(["send_test_email"]), 1)).error_code).toBe("invalid_arguments");
    const failed = await checkDocument("send_test_email", await run(["send_test_email", "you@example.com"], badMail), 1);
    expect(failed.error_code).toBe("email_failed");
    expect(failed.results[0]).toMatchObject({ ok: false, status: "failed" });
    expect(failed.smtp_log).toBeInstanceOf(Array);
    expect((await checkDocument("send_test_email", await run(["send_test_email", "you@example.com"], noMail), 3)).error_code).toBe("email_not_configured");
  });

  it("send_password_reset_email: dry run, success, unknown user, SMTP unreachable, usage", async () => {
    const dry = await checkDocument("send_password_reset_email", await run(["send_password_reset_email", "-r", "zulip", "-a", "--dry-run"]), 0);
    expect(dry.dry_run).toBe(true);
    expect(dry.results[0]).toMatchObject({ ok: true, status: "would_do" });
    const sent = await checkDocument("send_password_reset_email", await run(["send_password_reset_email", "-u", "iago@zulip.com"]), 0);
    expect(sent).toMatchObject({ sent_count: 1, failed_count: 0 });
    expect(sent.results[0].user.delivery_email).toBe("iago@zulip.com");
    expect((await checkDocument("send_password_reset_email", await run(["send_password_reset_email", "-u", "nobody@example.com"]), 1)).error_code).toBe(
      "user_not_found",
    );
    const down = await checkDocument("send_password_reset_email", await run(["send_password_reset_email", "-u", "iago@zulip.com"], badMail), 1);
    expect(down.error_code).toBe("email_failed");
    expect(down.results[0].ok).toBe(false);
    expect(
      (await checkDocument("send_password_reset_email", await runCli(["send_password_reset_email", "--json", "-r"], { confDir: conf, db }), 2)).error_code,
    ).toBe("usage");
  });

  it("send_realm_reactivation_email: active realm refused, dry run, success", async () => {
    expect((await checkDocument("send_realm_reactivation_email", await run(["send_realm_reactivation_email", "-r", "zulip"]), 1)).error_code).toBe("refused");
    const dry = await checkDocument("send_realm_reactivation_email", await run(["send_realm_reactivation_email", "-r", "lear", "--dry-run"]), 0);
    expect(dry).toMatchObject({ dry_run: true, confirmation: null, audit_log_ids: [], email: { status: "would_do" } });
    const done = await checkDocument("send_realm_reactivation_email", await run(["send_realm_reactivation_email", "-r", "lear"]), 0);
    expect(done.audit_log_ids).toHaveLength(1);
    expect(done.email).toMatchObject({ ok: true, status: "done" });
  });

  it("send_custom_email: dry run, success, usage error, missing file", async () => {
    const md = path.join(tmp, "notice.md");
    fs.writeFileSync(md, "Subject: Downtime\nFrom: Admins\n\nThe server is down **tonight**.\n");
    const dry = await checkDocument("send_custom_email", await run(["send_custom_email", "-r", "zulip", "-u", "iago@zulip.com", "--path", md, "--dry-run"]), 0);
    expect(dry.results[0]).toMatchObject({ status: "would_do" });
    const sent = await checkDocument("send_custom_email", await run(["send_custom_email", "-r", "zulip", "-u", "iago@zulip.com", "--path", md]), 0);
    expect(sent.sent_count).toBe(1);
    expect(sent.audit_log_ids).toHaveLength(sent.records_audit_log ? 1 : 0);
    expect((await checkDocument("send_custom_email", await run(["send_custom_email", "--path", md]), 2)).error_code).toBe("usage");
    const missing = await checkDocument("send_custom_email", await run(["send_custom_email", "-a", "-r", "zulip", "--path", path.join(tmp, "missing.md")]), 1);
    expect(missing.error_code).toBe("file_unreadable");
  });

  it("reset_authentication_attempt_count: success, no username, Redis unreachable", async () => {
    const doc = await checkDocument("reset_authentication_attempt_count", await run(["reset_authentication_attempt_count", "-u", "iago@zulip.com"]), 0);
    expect(doc.keys).toHaveLength(3);
    expect((await checkDocument("reset_authentication_attempt_count", await run(["reset_authentication_attempt_count"]), 1)).error_code).toBe(
      "invalid_arguments",
    );
    const down = await checkDocument("reset_authentication_attempt_count", await run(["reset_authentication_attempt_count", "-u", "x"], noMail), 3);
    expect(down.error_code).toBe("redis_unreachable");
  });

  it("export_single_user: success, unknown user, missing email", async () => {
    const out = path.join(tmp, "export");
    const doc = await checkDocument("export_single_user", await run(["export_single_user", "-r", "zulip", "iago@zulip.com", "--output", out]), 0);
    expect(doc.user.delivery_email).toBe("iago@zulip.com");
    expect(doc.duration_ms).toBeGreaterThan(0);
    expect((await checkDocument("export_single_user", await run(["export_single_user", "-r", "zulip", "nobody@example.com"]), 1)).error_code).toBe(
      "user_not_found",
    );
    expect((await checkDocument("export_single_user", await run(["export_single_user"]), 2)).error_code).toBe("usage");
  });

  it("doctor: a report (required checks failing or not) and a bad --timeout", async () => {
    const r = await run(["doctor", "--timeout", "1"]);
    const doc = await checkDocument("doctor", r, r.exitCode === 0 ? 0 : 1);
    expect(doc.checks.length).toBeGreaterThan(5);
    if (!doc.ok) expect(doc.error_code).toBe("checks_failed");
    expect((await checkDocument("doctor", await run(["doctor", "--timeout", "soon"]), 2)).error_code).toBe("usage");
  });

  it("dbshell and completion", async () => {
    const sh = await checkDocument("dbshell", await runCli(["dbshell", "--json", "--", "-c", "SELECT 1"], { confDir: conf, db }), 0);
    expect(sh.command).toEqual(["psql", "-c", "SELECT 1"]);
    await checkDocument("completion", await run(["completion", "bash"]), 0);
    const realms = await checkDocument("completion", await run(["completion", "--realms"]), 0);
    expect(realms.realms.map((x: any) => x.string_id)).toContain("zulip");
    expect((await checkDocument("completion", await run(["completion"]), 2)).error_code).toBe("usage");
  });
});

describe("the realm, channel and maintenance commands' documents", () => {
  let db: TestDatabase;
  let sink: SmtpSink;
  let conf: ConfDir;
  let badMail: ConfDir;
  let uploads: ConfDir;
  let tmp: string;
  let env: Record<string, string>;
  const run = (args: string[], c: ConfDir = conf) => runCli([...args, "--json"], { confDir: c, db, env });
  const down = (args: string[]) => runCli([...args, "--json"], { confDir: conf, db, env: { ...env, PGPORT: "1", PGHOST: "127.0.0.1" } });

  beforeAll(async () => {
    db = await createDatabase({ template: "zulip12_fresh" });
    sink = await startSmtpSink();
    tmp = makeTempDir("jsoncontract2");
    env = { ZULIP_LOCK_DIR: path.join(tmp, "locks") };
    const mail = `EMAIL_HOST = '127.0.0.1'\nEMAIL_PORT = ${sink.port}`;
    conf = makeConfDir({ extraSettings: mail });
    badMail = makeConfDir({ extraSettings: "EMAIL_HOST = '127.0.0.1'\nEMAIL_PORT = 1" });
    fs.mkdirSync(path.join(tmp, "uploads"), { recursive: true });
    uploads = makeConfDir({ extraSettings: `LOCAL_UPLOADS_DIR = '${path.join(tmp, "uploads")}'` });
    // The system bot realm, so that create_realm has an initialized server.
    const q = db.client;
    await q.query("BEGIN");
    const realm = await createRealm(q, { stringId: "zulip", name: "Zulip Dev" });
    await createUser(q, realm.id, { email: "iago@zulip.com", fullName: "Iago", role: 100, externalHost: "zulip.example.net" });
    await q.query("SET CONSTRAINTS ALL IMMEDIATE");
    await q.query("COMMIT");
  }, 180_000);
  afterAll(async () => {
    await sink?.close?.();
    conf?.cleanup();
    badMail?.cleanup();
    uploads?.cleanup();
    await db?.drop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it("create_realm: dry run, success, subdomain taken, usage error, database unreachable", async () => {
    const args = ["create_realm", "Acme", "--string-id", "acmeco", "boss@acme.example", "Boss"];
    const dry = await checkDocument("create_realm", await run([...args, "--dry-run"]), 0);
    expect(dry).toMatchObject({ dry_run: true, realm: { id: null, string_id: "acmeco" }, owner: null, audit_log_ids: [] });
    const done = await checkDocument("create_realm", await run(args), 0);
    expect(done.owner).toMatchObject({ delivery_email: "boss@acme.example", role: "owner", role_id: 100, realm_id: done.realm.id, password: "unusable" });
    expect(done.audit_log_ids.length).toBeGreaterThan(5);
    expect(done.scheduled_emails.length).toBeGreaterThan(0);
    expect((await checkDocument("create_realm", await run(args), 1)).error_code).toBe("refused");
    expect((await checkDocument("create_realm", await run(["create_realm"]), 2)).error_code).toBe("usage");
    expect((await checkDocument("create_realm", await down(args), 3)).error_code).toBe("database_unreachable");
  });

  it("realm_domain: show, dry run, add, refusal, removing the last domain lifts the restriction", async () => {
    const show = await checkDocument("realm_domain", await run(["realm_domain", "-r", "acmeco"]), 0);
    expect(show).toMatchObject({ op: "show", realm: { string_id: "acmeco" }, domains: [] });
    const dry = await checkDocument("realm_domain", await run(["realm_domain", "-r", "acmeco", "--op", "add", "acme.example", "--dry-run"]), 0);
    expect(dry).toMatchObject({ dry_run: true, audit_log_ids: [], cache: null, events: null });
    const added = await checkDocument("realm_domain", await run(["realm_domain", "-r", "acmeco", "--op", "add", "acme.example"]), 0);
    expect(added.audit_log_ids).toHaveLength(1);
    expect((await checkDocument("realm_domain", await run(["realm_domain", "-r", "acmeco", "--op", "add", "acme.example"]), 1)).error_code).toBe("refused");
    await db.query("UPDATE zerver_realm SET emails_restricted_to_domains = true WHERE string_id = 'acmeco'");
    const removed = await checkDocument("realm_domain", await run(["realm_domain", "-r", "acmeco", "--op", "remove", "acme.example"]), 0);
    expect(removed).toMatchObject({ emails_restricted_to_domains: { old: true, new: false }, domains: [] });
    expect(removed.audit_log_ids).toHaveLength(2);
    expect((await checkDocument("realm_domain", await run(["realm_domain", "-r", "nowhere"]), 1)).error_code).toBe("realm_not_found");
  });

  it("create_stream, add_users_to_streams, remove_users_from_stream, unarchive_channel", async () => {
    const cs = await checkDocument("create_stream", await run(["create_stream", "-r", "acmeco", "design", "--dry-run"]), 0);
    expect(cs).toMatchObject({ dry_run: true, channel: { id: null, name: "design" }, created: true });
    const created = await checkDocument("create_stream", await run(["create_stream", "-r", "acmeco", "design"]), 0);
    expect(created.audit_log_ids).toHaveLength(1);
    expect((await checkDocument("create_stream", await run(["create_stream", "-r", "acmeco"]), 2)).error_code).toBe("usage");

    const u = ["-r", "acmeco", "-u", "boss@acme.example"];
    const addDry = await checkDocument("add_users_to_streams", await run(["add_users_to_streams", ...u, "-s", "design,notes", "--dry-run"]), 0);
    expect(addDry.channels.map((c: any) => [c.name, c.created, c.results[0].status])).toEqual([
      ["design", false, "would_do"],
      ["notes", true, "would_do"],
    ]);
    const add = await checkDocument("add_users_to_streams", await run(["add_users_to_streams", ...u, "-s", "design,notes"]), 0);
    expect(add.channels.map((c: any) => c.results[0].status)).toEqual(["done", "done"]);
    expect(add.audit_log_ids.length).toBe(3); // notes' CHANNEL_CREATED and two SUBSCRIPTION_CREATED
    const again = await checkDocument("add_users_to_streams", await run(["add_users_to_streams", ...u, "-s", "design"]), 0);
    expect(again.channels[0].results[0]).toMatchObject({ ok: true, status: "unchanged" });
    expect((await checkDocument("add_users_to_streams", await run(["add_users_to_streams", ...u, "-s", "x".repeat(61)]), 1)).error_code).toBe("refused");

    const rmDry = await checkDocument("remove_users_from_stream", await run(["remove_users_from_stream", ...u, "-s", "notes", "--dry-run"]), 0);
    expect(rmDry.results[0].status).toBe("would_do");
    const rm = await checkDocument("remove_users_from_stream", await run(["remove_users_from_stream", ...u, "-s", "notes"]), 0);
    expect(rm).toMatchObject({ removed_count: 1, not_subscribed_count: 0 });
    expect(rm.audit_log_ids).toHaveLength(1);
    expect((await checkDocument("remove_users_from_stream", await run(["remove_users_from_stream", ...u, "-s", "nowhere"]), 1)).error_code).toBe("refused");

    await db.query("UPDATE zerver_stream SET deactivated = true WHERE name = 'notes' AND realm_id = (SELECT id FROM zerver_realm WHERE string_id = 'acmeco')");
    const unDry = await checkDocument("unarchive_channel", await run(["unarchive_channel", "-r", "acmeco", "-c", "notes", "--dry-run"]), 0);
    expect(unDry).toMatchObject({ dry_run: true, channel: { name: { old: "notes", new: "notes" } }, audit_log_ids: [] });
    const un = await checkDocument("unarchive_channel", await run(["unarchive_channel", "-r", "acmeco", "-c", "notes"]), 0);
    expect(un.audit_log_ids).toHaveLength(1);
    expect((await checkDocument("unarchive_channel", await run(["unarchive_channel", "-r", "acmeco", "-c", "notes"]), 1)).error_code).toBe("refused");
    expect((await checkDocument("unarchive_channel", await run(["unarchive_channel", "-r", "acmeco"]), 2)).error_code).toBe("usage");
  });

  it("change_realm_subdomain: dry run, success with the placeholder's audit rows, taken subdomain, usage", async () => {
    const dry = await checkDocument("change_realm_subdomain", await run(["change_realm_subdomain", "-r", "acmeco", "acmeco2", "--dry-run"]), 0);
    expect(dry).toMatchObject({ subdomain: { old: "acmeco", new: "acmeco2" }, placeholder: null, audit_log_ids: [] });
    const done = await checkDocument("change_realm_subdomain", await run(["change_realm_subdomain", "-r", "acmeco", "acmeco2"]), 0);
    expect(done.realm.string_id).toBe("acmeco2");
    expect(done.placeholder).toMatchObject({ string_id: "acmeco", deactivated_redirect: done.url.new });
    expect(done.audit_log_ids.length).toBeGreaterThan(2);
    expect((await checkDocument("change_realm_subdomain", await run(["change_realm_subdomain", "-r", "acmeco2", "zulip"]), 1)).error_code).toBe("refused");
    expect((await checkDocument("change_realm_subdomain", await run(["change_realm_subdomain", "-r", "acmeco2"]), 2)).error_code).toBe("usage");
  });

  it("deactivate_realm and reactivate_realm: dry run, owners emailed, already so, email failure, usage", async () => {
    const d = ["deactivate_realm", "-r", "acmeco2", "--deactivation_reason", "owner_request", "--email_owners"];
    const dry = await checkDocument("deactivate_realm", await run([...d, "--dry-run"]), 0);
    expect(dry).toMatchObject({ deactivated: { old: false, new: true }, audit_log_ids: [] });
    expect(dry.results[0]).toMatchObject({ user: { delivery_email: "boss@acme.example", role: "owner" }, status: "would_do" });
    const done = await checkDocument("deactivate_realm", await run(d), 0);
    expect(done).toMatchObject({ deactivated: { old: false, new: true } });
    expect(done.audit_log_ids).toHaveLength(1);
    expect(done.results[0]).toMatchObject({ ok: true, status: "done" });
    const already = await checkDocument("deactivate_realm", await run(d), 0);
    expect(already).toMatchObject({ already_deactivated: true, deactivated: { old: true, new: true }, results: [] });

    const rdry = await checkDocument("reactivate_realm", await run(["reactivate_realm", "-r", "acmeco2", "--dry-run"]), 0);
    expect(rdry).toMatchObject({ dry_run: true, reactivated: false, audit_log_ids: [] });
    const back = await checkDocument("reactivate_realm", await run(["reactivate_realm", "-r", "acmeco2"]), 0);
    expect(back).toMatchObject({ reactivated: true });
    expect(back.audit_log_ids).toHaveLength(1);
    expect(await checkDocument("reactivate_realm", await run(["reactivate_realm", "-r", "acmeco2"]), 0)).toMatchObject({
      already_active: true,
      audit_log_ids: [],
    });
    expect((await checkDocument("reactivate_realm", await run(["reactivate_realm", "-r", "nowhere"]), 1)).error_code).toBe("realm_not_found");

    const failed = await checkDocument("deactivate_realm", await run(d, badMail), 1);
    expect(failed).toMatchObject({ error_code: "email_failed", deactivated: { old: false, new: true } });
    expect(failed.results[0]).toMatchObject({ ok: false, status: "failed" });
    expect((await checkDocument("deactivate_realm", await run(["deactivate_realm", "-r", "acmeco2"]), 2)).error_code).toBe("usage");
  });

  it("register_server refuses without the push notification service configured", async () => {
    const r = await checkDocument("register_server", await run(["register_server", "--agree-to-terms-of-service"]), 1);
    expect(r.error).toContain("ZULIP_SERVICE_PUSH_NOTIFICATIONS");
  });

  it("backup, delete_old_unclaimed_attachments and archive_messages", async () => {
    const out = path.join(tmp, "b.tar.gz");
    const b = await checkDocument("backup", await run(["backup", "--output", out, "--skip-db", "--skip-uploads"]), 0);
    expect(b).toMatchObject({ path: out, size_bytes: fs.statSync(out).size, database: { included: false } });
    expect((await checkDocument("backup", await run(["backup", "--threads", "many"]), 2)).error_code).toBe("usage");
    expect((await checkDocument("backup", await down(["backup", "--output", path.join(tmp, "c.tar.gz")]), 3)).error_code).toBe("database_unreachable");

    const plan = await checkDocument("delete_old_unclaimed_attachments", await run(["delete_old_unclaimed_attachments"], uploads), 1);
    expect(plan).toMatchObject({ dry_run: true, error: "This was a dry run. Pass -f to actually delete.", deleted: null });
    const del = await checkDocument("delete_old_unclaimed_attachments", await run(["delete_old_unclaimed_attachments", "-f"], uploads), 0);
    expect(del).toMatchObject({ dry_run: false, deleted: { attachments_count: 0 } });
    const s3 = await checkDocument("delete_old_unclaimed_attachments", await run(["delete_old_unclaimed_attachments", "-f"]), 1);
    expect(s3.error).toContain("S3");

    const a = await checkDocument("archive_messages", await run(["archive_messages"]), 0);
    expect(a).toMatchObject({ dry_run: false, realms_due_for_scrubbing: [], archived: { transaction_ids: [] } });
    expect((await checkDocument("archive_messages", await down(["archive_messages"]), 3)).error_code).toBe("database_unreachable");
  });
});

describe("README", () => {
  const readme = fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");

  it("every converted command's --json example validates against its schema", async () => {
    await checkReadmeExamples(CONVERTED);
  });

  it("lists every error code and status", () => {
    for (const code of Object.keys(ERROR_CODES)) expect(readme, code).toContain(`| \`${code}\` |`);
    for (const s of Object.keys(STATUSES)) expect(readme, s).toContain(`| \`${s}\` |`);
  });
});
