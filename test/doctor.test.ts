// doctor through the built CLI against real services: PostgreSQL (Zulip 12 and 10 databases, a
// non-Zulip one), memcached with SASL, Redis with a password and an SMTP server in this process;
// then each kind of failure, with its status, exit code and remedy.
import fs from "node:fs";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startSmtpSink, type SmtpSink } from "./email-support.js";
import { runCli } from "./helpers/cli.js";
import { makeConfDir, type ConfDir, type MakeConfDirOptions } from "./helpers/confdir.js";
import { startMemcached, type MemcachedInstance } from "./helpers/memcached.js";
import { createDatabase, type TestDatabase } from "./helpers/pg.js";
import { startRedis, type RedisInstance } from "./helpers/redis.js";
import { QueueReader, rabbitSettings } from "./helpers/rabbitmq.js";
import { CLOSED_PORT, freePort } from "./helpers/services.js";

interface Check {
  id: string;
  title: string;
  required: boolean;
  status: "done" | "warning" | "failed" | "skipped";
  summary: string;
  details: string[];
  remedy: string | null;
  ms: number;
}
interface Report {
  ok: boolean;
  required_failed_count: number;
  warning_count: number;
  checks: Check[];
}

const IDS = ["settings", "zulip_conf", "secrets", "database", "schema", "memcached", "redis", "rabbitmq", "smtp", "push"];

let db: TestDatabase;
let mc: MemcachedInstance;
let redis: RedisInstance;
let smtp: SmtpSink;
let reader: QueueReader;
const confs: ConfDir[] = [];

beforeAll(async () => {
  [db, mc, redis, smtp] = await Promise.all([
    createDatabase({ template: "zulip12_fresh" }),
    startMemcached(),
    startRedis(),
    startSmtpSink({ auth: { user: "mailer", pass: "mail-pw" } }),
  ]);
  reader = await QueueReader.open();
  // A consumer on notify_tornado: this file's vhost looks like a server with Tornado running.
  await reader.consume("notify_tornado");
});

afterAll(async () => {
  for (const c of confs) c.cleanup();
  await reader?.close();
  await Promise.all([db?.drop(), mc?.stop(), redis?.stop(), smtp?.close()]);
});

function smtpSettings(port: number): string {
  return `EMAIL_HOST = "127.0.0.1"\nEMAIL_PORT = ${port}\nEMAIL_HOST_USER = "mailer"\n`;
}

/** A conf dir for a fully working server, with overrides. */
function conf(over: Partial<MakeConfDirOptions> & { extra?: string; database?: TestDatabase } = {}): ConfDir {
  const { extra, database, ...rest } = over;
  const c = makeConfDir({
    db: { name: (database ?? db).name },
    memcached: { location: mc.location, password: mc.password },
    redis: { host: redis.host, port: redis.port, password: redis.password },
    extraSettings: smtpSettings(smtp.port) + "ZULIP_SERVICE_PUSH_NOTIFICATIONS = True\n" + (extra ?? ""),
    ...rest,
    secrets: { email_password: "mail-pw", ...((rest.secrets as Record<string, string | null> | undefined) ?? {}) },
  });
  confs.push(c);
  return c;
}

async function doctor(c: ConfDir | string, opts: { database?: TestDatabase; env?: Record<string, string | undefined> } = {}) {
  const r = await runCli(["doctor", "--json", "--timeout", "2"], { confDir: c, db: opts.database ?? db, env: opts.env });
  let report: Report;
  try {
    report = JSON.parse(r.stdout);
  } catch {
    throw new Error(`doctor printed no JSON (exit ${r.exitCode}):\n${r.stdout}\n${r.stderr}`);
  }
  const by = Object.fromEntries(report.checks.map((c) => [c.id, c])) as Record<string, Check>;
  return { r, report, by };
}

describe("a healthy server", () => {
  it("passes every check, with what it found (exit 0)", async () => {
    const c = conf();
    const sentBefore = smtp.messages.length;
    const { r, report, by } = await doctor(c);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(report.checks.map((x) => x.id)).toEqual(IDS);
    for (const id of IDS) expect([id, by[id].status]).toEqual([id, "done"]);
    expect(report).toMatchObject({ ok: true, required_failed_count: 0, warning_count: 0 });
    expect(report.checks.filter((x) => x.required).map((x) => x.id)).toEqual(IDS.slice(0, 6));

    // Which settings came from the file and which are defaults.
    expect(by.settings.summary).toMatch(/settings\.py: \d+ of the \d+ settings zulip-manage uses come from the file, \d+ are Zulip's defaults/);
    const fromFile = by.settings.details.find((d) => d.startsWith("from settings.py: "))!;
    for (const n of [
      "EXTERNAL_HOST",
      "ZULIP_ADMINISTRATOR",
      "MEMCACHED_LOCATION",
      "REDIS_HOST",
      "REDIS_PORT",
      "EMAIL_HOST",
      "EMAIL_PORT",
      "ZULIP_SERVICE_PUSH_NOTIFICATIONS",
    ]) {
      expect(fromFile).toContain(n);
    }
    // The test configuration points RabbitMQ at the run's broker; the user name stays Zulip's default.
    expect(fromFile).toContain("RABBITMQ_HOST");
    expect(fromFile).not.toContain("RABBITMQ_USERNAME");
    expect(by.zulip_conf.summary).toContain("production server (deploy_type = production)");
    expect(by.zulip_conf.details).toContain(`database: ${db.name} as zulip`);
    expect(by.secrets.summary).toMatch(/zulip-secrets\.conf: \d+ secrets, owner \S+:\S+, mode 0640/);
    expect(by.database.summary).toContain(`database '${db.name}' as user 'zulip' on 127.0.0.1:`);
    expect(by.database.details[0]).toMatch(/^PostgreSQL \d+\.\d+.*, connected as zulip, search_path \{zulip,public\}$/);
    expect(by.schema.summary).toMatch(/^Zulip 12\.x \(newest zerver migration 0800_\w+\): supported$/);
    const [{ realms, users }] = await db.query<{ realms: number; users: number }>(
      "SELECT (SELECT count(*)::int FROM zerver_realm) AS realms, (SELECT count(*)::int FROM zerver_userprofile WHERE is_active AND NOT is_bot) AS users",
    );
    expect(by.schema.details).toContain(`${realms} realms, ${users} active human user${users === 1 ? "" : "s"}`);
    expect(by.memcached.summary).toBe(
      `${mc.location} (SASL as zulip@localhost): reachable (memcached ${by.memcached.summary.match(/memcached ([\d.]+)/)![1]})`,
    );
    expect(by.memcached.details[0]).toMatch(/^cache key prefix from .*remote_cache_prefix$/);
    expect(by.redis.summary).toMatch(new RegExp(`^127\\.0\\.0\\.1:${redis.port}: PONG \\(Redis [\\d.]+\\), password accepted$`));
    expect(by.smtp.summary).toBe(`127.0.0.1:${smtp.port} (plain SMTP, login as mailer): connected, EHLO accepted, login accepted; no mail sent`);
    expect(smtp.messages.length).toBe(sentBefore); // nothing was sent
    expect(by.push.summary).toBe("https://push.zulipchat.com (push notifications enabled)");
    expect(by.push.details[0]).toBe(`registered as zulip_org_id ${c.secrets.zulip_org_id}`);
    for (const x of report.checks) expect(x.remedy).toBeNull();
  });

  it("prints a table and the verdict without --json", async () => {
    const r = await runCli(["doctor"], { confDir: conf(), db });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/│ Database connection\s+│ ok\s+│ connected: database/);
    expect(r.stdout).toMatch(/│ Memcached\s+│ ok\s+│/);
    expect(r.stdout).not.toContain("How to fix:");
    expect(r.stdout.trimEnd().split("\n").at(-1)).toBe("All required checks passed.");
    expect(r.stdout).not.toMatch(/\x1b\[/); // no colour in a pipe
  });

  it("accepts a Zulip 10 database", async () => {
    const z10 = await createDatabase({ template: "zulip10_fresh" });
    try {
      const { r, by } = await doctor(conf({ database: z10 }), { database: z10 });
      expect(r.exitCode).toBe(0);
      expect(by.schema.summary).toMatch(/^Zulip 10\.x \(newest zerver migration 0\d{3}_\w+\): supported$/);
    } finally {
      await z10.drop();
    }
  });
});

describe("RabbitMQ", () => {
  it("reports the login and each notify queue's consumer", async () => {
    const { by } = await doctor(conf());
    expect(by.rabbitmq.status).toBe("done");
    expect(by.rabbitmq.summary).toMatch(/^amqp:\/\/zulip@127\.0\.0\.1:\d+\/zmtest\d+: login accepted$/);
    expect(by.rabbitmq.details).toEqual([expect.stringMatching(/^queue notify_tornado: 1 consumer \(Tornado on port 9800\), \d+ waiting$/)]);
  });

  it("sharded: a queue per port; a missing queue and one without a consumer are warnings (exit 0)", async () => {
    const c = conf({ zulipConf: `[machine]\ndeploy_type = production\n\n[tornado_sharding]\n9800 = a\n9801 = b\n` });
    await reader.deleteQueue("notify_tornado_port_9801").catch(() => undefined);
    await reader.purge("notify_tornado_port_9800");
    const { r, by } = await doctor(c);
    expect(r.exitCode).toBe(0);
    expect(by.rabbitmq.status).toBe("warning");
    expect(by.rabbitmq.summary).toBe("queue notify_tornado_port_9800 has no consumer (0 messages waiting): the Tornado on port 9800 is not running");
    expect(by.rabbitmq.details).toContain("queue notify_tornado_port_9801 does not exist: the Tornado on port 9801 has never consumed from this RabbitMQ");
    expect(by.rabbitmq.remedy).toContain("restart-server");
  });

  it("a wrong rabbitmq_password: the remedy names the secret", async () => {
    const { by } = await doctor(conf({ rabbitmq: { ...rabbitSettings(), password: "wrong" } }));
    expect(by.rabbitmq.status).toBe("warning");
    expect(by.rabbitmq.summary).toContain("RabbitMQ refused the login of user 'zulip'");
    expect(by.rabbitmq.remedy).toContain("rabbitmq_password");
  });

  it("RabbitMQ down: how to start it, and what commands do meanwhile", async () => {
    const { by } = await doctor(conf({ rabbitmq: { ...rabbitSettings(), port: CLOSED_PORT } }));
    expect(by.rabbitmq.status).toBe("warning");
    expect(by.rabbitmq.summary).toMatch(/ECONNREFUSED/);
    expect(by.rabbitmq.remedy).toContain("systemctl start rabbitmq-server");
  });
});

describe("failures and their remedies", () => {
  it("memcached down: required check fails (exit 1) with how to start it", async () => {
    const port = await freePort();
    const { r, report, by } = await doctor(conf({ memcached: { location: `127.0.0.1:${port}`, password: mc.password } }));
    expect(r.exitCode).toBe(1);
    expect(report.ok).toBe(false);
    expect(report.required_failed_count).toBe(1);
    expect(by.memcached.status).toBe("failed");
    expect(by.memcached.summary).toContain(`127.0.0.1:${port}`);
    expect(by.memcached.remedy).toContain("systemctl start memcached");
    expect(by.memcached.remedy).toContain(`MEMCACHED_LOCATION in settings.py (now 127.0.0.1:${port})`);
    expect(by.database.status).toBe("done");
  });

  it("memcached SASL password wrong: the remedy is about memcached_password", async () => {
    const { r, by } = await doctor(conf({ memcached: { location: mc.location, password: "not-the-password" } }));
    expect(r.exitCode).toBe(1);
    expect(by.memcached.status).toBe("failed");
    expect(by.memcached.summary).toContain("rejected SASL authentication as 'zulip@localhost'");
    expect(by.memcached.remedy).toContain("memcached_password secret must match");
  });

  it("database unreachable: database fails, the schema check is skipped", async () => {
    const port = await freePort();
    const { r, by } = await doctor(conf(), { env: { PGPORT: String(port) } });
    expect(r.exitCode).toBe(1);
    expect(by.database.status).toBe("failed");
    expect(by.database.summary).toContain(`Cannot connect to the Zulip database (database '${db.name}' as user 'zulip' on 127.0.0.1:${port})`);
    expect(by.database.remedy).toContain("Start PostgreSQL (systemctl start postgresql)");
    expect(by.schema.status).toBe("skipped");
    expect(by.memcached.status).toBe("done");
  });

  it("a database without Zulip's tables: connected, but the schema check fails", async () => {
    const empty = await createDatabase({ template: "empty" });
    try {
      const { r, by } = await doctor(conf({ database: empty }), { database: empty });
      expect(r.exitCode).toBe(1);
      expect(by.database.status).toBe("done");
      expect(by.schema.status).toBe("failed");
      expect(by.schema.summary).toBe("The Zulip database does not appear to exist. Have you run initialize-database?");
      expect(by.schema.remedy).toContain(`has no zerver_realm table`);
    } finally {
      await empty.drop();
    }
  });

  it("secrets: a missing mandatory secret fails; a world-readable file warns", async () => {
    const c = conf({ secrets: { shared_secret: null } });
    fs.chmodSync(c.secretsPath, 0o644);
    const { r, by } = await doctor(c);
    expect(r.exitCode).toBe(1);
    expect(by.secrets.status).toBe("failed");
    expect(by.secrets.summary).toBe('mandatory secret "shared_secret" not set');
    expect(by.secrets.details).toContain(`${c.secretsPath} is accessible to every user on this machine (mode 0644)`);
    expect(by.secrets.remedy).toContain("generate_secrets.py --production");
    expect(by.secrets.remedy).toContain(`chmod 640 ${c.secretsPath}`);

    const ok = conf();
    fs.chmodSync(ok.secretsPath, 0o604);
    const w = await doctor(ok);
    expect(w.r.exitCode).toBe(0); // a warning only
    expect(w.by.secrets.status).toBe("warning");
    expect(w.report.warning_count).toBe(1);
  });

  it("settings: a placeholder EXTERNAL_HOST fails; the services are still checked", async () => {
    const { r, by } = await doctor(conf({ externalHost: "zulip.example.com" }));
    expect(r.exitCode).toBe(1);
    expect(by.settings.status).toBe("failed");
    expect(by.settings.summary).toMatch(/^Error: You must set EXTERNAL_HOST in .*settings\.py\.$/);
    expect(by.settings.remedy).toContain("Set EXTERNAL_HOST in");
    expect(by.database.status).toBe("done");
    expect(by.memcached.status).toBe("done");
  });

  it("settings: a syntax error fails and everything that needs the settings is skipped", async () => {
    const c = conf();
    fs.appendFileSync(c.settingsPath, "\nEMAIL_PORT = (587\n");
    const { r, by } = await doctor(c);
    expect(r.exitCode).toBe(1);
    expect(by.settings.status).toBe("failed");
    expect(by.settings.summary).toContain("Python syntax error at line");
    expect(by.settings.remedy).toContain("python3 -m py_compile");
    for (const id of ["database", "schema", "memcached", "redis", "smtp", "push"]) expect(by[id].status).toBe("skipped");
  });

  it("settings zulip-manage cannot read safely are a warning, naming them", async () => {
    const { r, by } = await doctor(conf({ extra: 'import os\nNOREPLY_EMAIL_ADDRESS = os.environ["NOREPLY"]\n' }));
    expect(r.exitCode).toBe(0);
    expect(by.settings.status).toBe("warning");
    expect(by.settings.summary).toBe("1 setting cannot be read safely; commands that need them stop with an error");
    expect(by.settings.details.some((d) => d.startsWith("Cannot safely read NOREPLY_EMAIL_ADDRESS from"))).toBe(true);
    expect(by.settings.remedy).toContain("--setting NAME=VALUE");
  });

  it("missing conf dir: settings fail with where to point zulip-manage", async () => {
    const { r, by } = await doctor("/nonexistent/etc-zulip");
    expect(r.exitCode).toBe(1);
    expect(by.settings.status).toBe("failed");
    expect(by.settings.summary).toBe("/nonexistent/etc-zulip/settings.py not found");
    expect(by.settings.remedy).toContain("--conf-dir DIR or ZULIP_CONF_DIR=DIR");
    expect(by.database.status).toBe("skipped");
  });

  it("Redis, SMTP and push problems are warnings (exit 0)", async () => {
    const dead = await freePort();
    const c = conf({
      redis: { host: "127.0.0.1", port: dead, password: "x" },
      extra: `EMAIL_PORT = ${dead}\n`,
      secrets: { zulip_org_id: null, zulip_org_key: null },
    });
    const { r, report, by } = await doctor(c);
    expect(r.exitCode).toBe(0);
    expect(report.ok).toBe(true);
    expect(report.warning_count).toBe(3);
    expect(by.redis.status).toBe("warning");
    expect(by.redis.remedy).toContain("systemctl start redis-server");
    expect(by.smtp.status).toBe("warning");
    expect(by.smtp.summary).toContain(`127.0.0.1:${dead}`);
    expect(by.smtp.remedy).toContain("send_test_email");
    expect(by.push.status).toBe("warning");
    expect(by.push.summary).toBe("this server is not registered (no zulip_org_id / zulip_org_key secret)");
    expect(by.push.remedy).toContain("zulip-manage register_server");

    const table = await runCli(["doctor"], { confDir: c, db });
    expect(table.exitCode).toBe(0);
    expect(table.stdout).toContain("How to fix:");
    expect(table.stdout).toMatch(/WARN Redis:\n\s+Start Redis/);
    expect(table.stdout.trimEnd().split("\n").at(-1)).toBe("All required checks passed (3 warnings).");
  });

  it("SMTP: wrong password and no EMAIL_HOST", async () => {
    const bad = await doctor(conf({ secrets: { email_password: "wrong" } }));
    expect(bad.by.smtp.status).toBe("warning");
    expect(bad.by.smtp.summary).toContain("refused the login of 'mailer'");
    expect(bad.by.smtp.remedy).toContain("email_password secret");
    const none = await doctor(conf({ extra: "EMAIL_HOST = None\n" }));
    expect(none.by.smtp.status).toBe("warning");
    expect(none.by.smtp.summary).toContain("not configured (no EMAIL_HOST)");
  });

  it("push notifications not enabled: skipped, with how to enable them", async () => {
    const { by } = await doctor(conf({ extra: "ZULIP_SERVICE_PUSH_NOTIFICATIONS = False\n" }));
    expect(by.push.status).toBe("skipped");
    expect(by.push.summary).toContain("not enabled");
    expect(by.push.summary).toContain("register_server");
  });

  it("an SMTP server that never answers is given up on after --timeout", async () => {
    const silent = net.createServer(() => undefined); // accepts, never greets
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const started = Date.now();
      const { by } = await doctor(conf({ extra: `EMAIL_PORT = ${port}\n` }));
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(by.smtp.status).toBe("warning");
    } finally {
      silent.close();
    }
  });
});
