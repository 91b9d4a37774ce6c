// A smoke test of every registered command: its --help, and one read-only, dry-run or harmless
// call against a seeded Zulip 12 database with memcached, Redis and an SMTP server next to it.
// Used to run the CLI with other Node releases (test/node-versions.test.ts) and from an
// installed package (test/package.test.ts). Every call has an exact expected exit code and
// output that only a working command prints.
import fs from "node:fs";
import path from "node:path";
import { COMMANDS } from "../../src/commands/index.js";
import { DEMO_SPEC, seedServer } from "../../src/dev/seed.js";
import { startSmtpSink, type SmtpSink } from "../email-support.js";
import { runCli, type CliResult, type RunCliOptions } from "./cli.js";
import { makeConfDir, type ConfDir } from "./confdir.js";
import { startMemcached, type MemcachedInstance } from "./memcached.js";
import { createDatabase, type TestDatabase } from "./pg.js";
import { startRedis, type RedisInstance } from "./redis.js";
import { makeTempDir } from "./services.js";

export interface SmokeServer {
  db: TestDatabase;
  conf: ConfDir;
  /** A directory for files the calls read or write. */
  dir: string;
  smtp: SmtpSink;
  stop(): Promise<void>;
}

/** A seeded database (the demo server's data), memcached, Redis, SMTP and an /etc/zulip replica. */
export async function startSmokeServer(): Promise<SmokeServer> {
  let db: TestDatabase | undefined;
  let mc: MemcachedInstance | undefined;
  let redis: RedisInstance | undefined;
  let smtp: SmtpSink | undefined;
  let conf: ConfDir | undefined;
  let dir: string | undefined;
  const stop = async () => {
    await smtp?.close();
    await redis?.stop();
    await mc?.stop();
    conf?.cleanup();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
    await db?.drop();
  };
  try {
    db = await createDatabase({ template: "zulip12_empty" });
    await db.client.query("BEGIN");
    await seedServer(db.client, DEMO_SPEC);
    await db.client.query("COMMIT");
    [mc, redis, smtp] = await Promise.all([startMemcached(), startRedis(), startSmtpSink()]);
    conf = makeConfDir({
      externalHost: DEMO_SPEC.externalHost,
      memcached: mc,
      redis: { host: redis.host, port: redis.port, password: redis.password },
      // Nothing listens on port 9 of 127.0.0.1: register_server fails to reach the service.
      extraSettings: [
        `EMAIL_HOST = "127.0.0.1"`,
        `EMAIL_PORT = ${smtp.port}`,
        `ZULIP_SERVICE_PUSH_NOTIFICATIONS = True`,
        `ZULIP_SERVICES_URL = "http://127.0.0.1:9"`,
      ].join("\n"),
    });
    dir = makeTempDir("smoke", { serviceOwned: false });
    fs.writeFileSync(path.join(dir, "password"), "Quietly-orbiting-teapots-1987\n", { mode: 0o600 });
    fs.writeFileSync(path.join(dir, "notice.md"), "subject: Smoke notice\n\nThe **smoke** test says hello.\n");
    fs.writeFileSync(path.join(dir, "names.csv"), "max@acme.example.com,Max Smoke\n");
  } catch (e) {
    await stop();
    throw e;
  }
  return { db, conf, dir, smtp, stop };
}

export interface SmokeCall {
  command: string;
  args: string[];
  exitCode: number;
  /** What stdout (or, when `stderr` is set, stderr) must match. */
  stdout?: RegExp;
  stderr?: RegExp;
}

/**
 * One call per registered command. `tag` keeps the files of different runs apart (export
 * directories). The calls that write (change_password, generate_realm_creation_link,
 * reset_authentication_attempt_count, send_test_email) can run any number of times.
 */
export function smokeCalls(server: SmokeServer, tag: string): SmokeCall[] {
  const d = server.dir;
  const calls: SmokeCall[] = [
    { command: "list_realms", args: [], exitCode: 0, stdout: /Research Lab.*\blab\b/s },
    { command: "show_admins", args: ["-r", "lab"], exitCode: 0, stdout: /@lab\.example\.org/ },
    {
      command: "create_realm",
      args: ["Smoke Org", "--string-id", "smoke", "boss@smoke.example.com", "Smoke Boss", "--dry-run"],
      exitCode: 0,
      stdout: /dry run: nothing was changed/,
    },
    {
      command: "deactivate_realm",
      args: ["-r", "lab", "--deactivation_reason", "owner_request", "--dry-run"],
      exitCode: 0,
      stdout: /dry run: nothing was changed/,
    },
    { command: "reactivate_realm", args: ["-r", "lab", "--dry-run"], exitCode: 0, stdout: /^Realm lab is already active\.$/ },
    { command: "send_realm_reactivation_email", args: ["-r", "lab", "--dry-run"], exitCode: 1, stderr: /already active/ },
    { command: "change_realm_subdomain", args: ["-r", "lab", "smokelab", "--dry-run"], exitCode: 0, stdout: /dry run: nothing was changed/ },
    { command: "unarchive_channel", args: ["-r", "lab", "-c", "experiments", "--dry-run"], exitCode: 1, stderr: /^No matching deactivated channels found!$/ },
    {
      command: "create_user",
      args: ["-r", "lab", "smoke@lab.example.org", "Smoke User", "--dry-run"],
      exitCode: 0,
      stdout: /dry run: nothing was changed/,
    },
    { command: "change_user_role", args: ["-r", "", "max@acme.example.com", "moderator", "--dry-run"], exitCode: 0, stdout: /dry run: nothing was changed/ },
    { command: "deactivate_user", args: ["-r", "", "max@acme.example.com"], exitCode: 1, stdout: /^Deactivating Max Member/, stderr: /^This was a dry run/ },
    { command: "reactivate_user", args: ["-r", "", "dora@acme.example.com", "--dry-run"], exitCode: 0, stdout: /dry run: nothing was changed/ },
    {
      command: "change_user_email",
      args: ["-r", "", "max@acme.example.com", "max.smoke@acme.example.com", "--dry-run"],
      exitCode: 0,
      stdout: /dry run: nothing was changed/,
    },
    // A real password change: Argon2 (hash-wasm) and Zulip's strength check (zxcvbn).
    { command: "change_password", args: ["-r", "", "mia@acme.example.com", "--password-file", path.join(d, "password")], exitCode: 0, stdout: /./ },
    { command: "logout_all_users", args: ["-r", "lab", "--dry-run"], exitCode: 0, stdout: /./ },
    { command: "reset_authentication_attempt_count", args: ["-u", "max@acme.example.com", "--json"], exitCode: 0, stdout: /"keys"/ },
    { command: "delete_user", args: ["-r", "", "-u", "max@acme.example.com"], exitCode: 1, stdout: /"Deleted User \d+"/, stderr: /^This was a dry run/ },
    // Read-only on the database; writes the export and its tarball (zlib, tar).
    { command: "export_single_user", args: ["-r", "", "max@acme.example.com", "--output", path.join(d, `export-${tag}`)], exitCode: 0, stdout: /\.tar\.gz/ },
    { command: "register_server", args: ["--agree-to-terms-of-service"], exitCode: 1, stderr: /127\.0\.0\.1:9/ },
    { command: "generate_realm_creation_link", args: [], exitCode: 0, stdout: /https?:\/\/zulip\.example\.net\/new\/[a-z0-9]+/ },
    { command: "send_password_reset_email", args: ["-r", "lab", "-a", "--dry-run"], exitCode: 0, stdout: /@lab\.example\.org/ },
    // Real mail to the SMTP sink (nodemailer).
    { command: "send_test_email", args: ["smoke@example.com"], exitCode: 0, stdout: /smoke@example\.com/ },
    {
      command: "send_custom_email",
      args: ["-r", "lab", "-a", "--markdown-template-path", path.join(d, "notice.md"), "--from-name", "Smoke", "--dry-run"],
      exitCode: 0,
      stdout: /Smoke notice/,
    },
    // Tables (cli-table3) and every service check (the push service's failure is a warning).
    { command: "doctor", args: ["--timeout", "10"], exitCode: 0, stdout: /Memcached .*All required checks passed/s },
    { command: "dbshell", args: ["--", "-At", "-c", "SELECT string_id FROM zerver_realm ORDER BY id"], exitCode: 0, stdout: /^zulipinternal\n\nlab$/ },
    { command: "completion", args: ["bash"], exitCode: 0, stdout: /complete -F/ },
    { command: "backup", args: ["--output", path.join(d, `backup-${tag}.tar.gz`), "--skip-db", "--skip-uploads"], exitCode: 0, stdout: /backup-.*\.tar\.gz/ },
    { command: "delete_old_unclaimed_attachments", args: ["-w", "5"], exitCode: 1, stdout: /./ },
    { command: "soft_deactivate_users", args: ["-d", "--inactive-for", "36500"], exitCode: 0, stdout: /./ },
    { command: "archive_messages", args: [], exitCode: 0, stdout: /./ },
    { command: "bulk_change_user_name", args: ["-r", "", path.join(d, "names.csv"), "--dry-run"], exitCode: 0, stdout: /Max Smoke/ },
    { command: "realm_domain", args: ["-r", "lab"], exitCode: 0 },
    { command: "create_stream", args: ["-r", "lab", "smoke-channel", "--dry-run"], exitCode: 0, stdout: /smoke-channel/ },
    { command: "add_users_to_streams", args: ["-r", "lab", "-a", "-s", "smoke-channel", "--dry-run"], exitCode: 0, stdout: /smoke-channel/ },
    { command: "remove_users_from_stream", args: ["-r", "", "-s", "general", "-u", "max@acme.example.com", "--dry-run"], exitCode: 0 },
    { command: "rate_limit", args: ["-e", "max@acme.example.com", "show"], exitCode: 0, stdout: /max@acme\.example\.com/ },
  ];
  const missing = COMMANDS.map((c) => c.name).filter((n) => !calls.some((c) => c.command === n));
  if (missing.length) throw new Error(`smokeCalls has no call for: ${missing.join(", ")}`);
  return calls;
}

/** Run one smoke call; returns a description of what went wrong, or null. */
export async function runSmokeCall(call: SmokeCall, server: SmokeServer, opts: RunCliOptions = {}): Promise<string | null> {
  const r: CliResult = await runCli([call.command, ...call.args], { confDir: server.conf, db: server.db, ...opts });
  const problems: string[] = [];
  if (r.exitCode !== call.exitCode) problems.push(`exit ${r.exitCode}, expected ${call.exitCode}`);
  if (call.stdout && !call.stdout.test(r.stdout)) problems.push(`stdout does not match ${call.stdout}`);
  if (call.stderr && !call.stderr.test(r.stderr)) problems.push(`stderr does not match ${call.stderr}`);
  if (/\n\s+at .*\(.*:\d+:\d+\)/.test(r.stderr)) problems.push("a stack trace on stderr");
  if (!problems.length) return null;
  return `zulip-manage ${[call.command, ...call.args].join(" ")}: ${problems.join("; ")}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/** `<command> --help` for every command: exit 0 and its usage line. */
export async function runHelpCall(command: string, opts: RunCliOptions = {}): Promise<string | null> {
  const r = await runCli([command, "--help"], opts);
  if (r.exitCode === 0 && r.stdout.includes(`zulip-manage ${command}`) && r.stderr === "") return null;
  return `zulip-manage ${command} --help: exit ${r.exitCode}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}
