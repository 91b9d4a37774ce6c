// Shared plumbing for the throwaway servers the tests start (PostgreSQL, memcached, Redis):
// temp directories, spawning as an unprivileged user with a parent-death signal, and cleaning
// up on exit/interrupt. Test-only code; nothing in src/ may import it. The generic parts (the
// unprivileged user, executables, free ports, spawning and stopping a server, waiting for it)
// live in src/dev/sandbox.ts, shared with the demo, the benchmarks and the scripts.
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import {
  chownTree,
  findExecutable,
  freePort,
  removeDir,
  spawnServer,
  stopServer,
  waitFor,
  unprivilegedUser,
  type RunAsUser,
  type ServerProcess,
} from "../../src/dev/sandbox.js";

export { findExecutable, freePort, isRoot, removeDir as removeDirSync, sleep } from "../../src/dev/sandbox.js";

// ---------------------------------------------------------------------------------------------
// Users

export type ServiceUser = RunAsUser;

let cachedUser: ServiceUser | null | undefined;

/**
 * A TCP port on 127.0.0.1 that refuses connections, for "server down" tests. A port found free
 * and released can be handed to another server before the test connects (another test file's
 * fake server, or another user's test run on the same machine). Port 1 (tcpmux) is privileged
 * and unused on any Zulip or CI machine.
 */
export const CLOSED_PORT = 1;

/**
 * The OS user servers run as. When the tests run as root that is `nobody` (PostgreSQL refuses
 * to run as root, and the others should not); otherwise null = "the current user".
 */
export function serviceUser(): ServiceUser | null {
  if (cachedUser === undefined) {
    cachedUser = unprivilegedUser(process.env.ZM_TEST_SERVICE_USER || "nobody", "ZM_TEST_SERVICE_USER");
  }
  return cachedUser;
}

/** chown a path (recursively) to the service user; no-op when not root. */
export function chownToServiceUser(p: string, recursive = false): void {
  chownTree(p, serviceUser(), recursive);
}

// ---------------------------------------------------------------------------------------------
// Temp directories (with an owner pid so stale ones from killed runs can be swept)

/**
 * Parent of all harness temp dirs ($ZM_TEST_TMPDIR, default $TMPDIR/zulip-manage-test-<uid>):
 * one per OS user, so that another user's runs or leftovers never get in the way.
 */
export const TEMP_ROOT =
  process.env.ZM_TEST_TMPDIR || path.join(os.tmpdir(), `zulip-manage-test-${typeof process.getuid === "function" ? process.getuid() : "user"}`);
const OWNER_FILE = ".zm-owner-pid";

/**
 * Make a fresh temp dir `${TEMP_ROOT}/<kind>-XXXXXX` owned by the service user (mode 0700),
 * registered for removal at process exit. Returns its path.
 */
export function makeTempDir(kind: string, opts: { serviceOwned?: boolean } = {}): string {
  fs.mkdirSync(TEMP_ROOT, { recursive: true, mode: 0o755 });
  try {
    fs.chmodSync(TEMP_ROOT, 0o755);
  } catch {
    // not ours; fine as long as we can write into it
  }
  const dir = fs.mkdtempSync(path.join(TEMP_ROOT, `${kind}-`));
  fs.writeFileSync(path.join(dir, OWNER_FILE), `${process.pid}\n`);
  if (opts.serviceOwned !== false) chownToServiceUser(dir);
  fs.chmodSync(dir, 0o700);
  return dir;
}

/**
 * Remove temp dirs left behind by earlier runs whose owning process is gone (e.g. killed with
 * SIGKILL). Dirs of live processes (other test runs in parallel) are left alone.
 * Returns the removed paths.
 */
export function sweepStaleTempDirs(root = TEMP_ROOT): string[] {
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync(root);
  } catch {
    return removed;
  }
  for (const e of entries) {
    const dir = path.join(root, e);
    let pid: number;
    try {
      pid = Number(fs.readFileSync(path.join(dir, OWNER_FILE), "utf8").trim());
    } catch {
      // no owner file: either being created right now or not ours; only sweep if old
      try {
        if (Date.now() - fs.statSync(dir).mtimeMs < 10 * 60_000) continue;
      } catch {
        continue;
      }
      pid = 0;
    }
    if (pid > 0 && pidAlive(pid)) continue;
    // Kill any server still running out of it (its parent died without pdeathsig support).
    for (const p of pidsUsingPath(dir)) {
      try {
        process.kill(p, "SIGKILL");
      } catch {
        // gone
      }
    }
    removeDir(dir);
    removed.push(dir);
  }
  return removed;
}

// ---------------------------------------------------------------------------------------------
// Processes

/** True if the process exists and is not a zombie. */
export function pidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    if (fs.existsSync("/proc/self")) return false;
    try {
      process.kill(pid, 0);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === "EPERM";
    }
  }
}

/** Pids (not zombies) whose command line mentions `needle` (Linux /proc only). */
export function pidsUsingPath(needle: string): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync("/proc");
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${e}/cmdline`, "utf8").replace(/\0/g, " ");
      if (cmd.includes(needle) && pidAlive(pid)) out.push(pid);
    } catch {
      // raced with exit
    }
  }
  return out;
}

/** Live (non-zombie) child pids of `pid` (Linux /proc only). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync("/proc");
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, "utf8");
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(rest[1]) === pid && rest[0] !== "Z") out.push(Number(e));
    } catch {
      // raced with exit
    }
  }
  return out;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Resolves once something accepts TCP connections on host:port. */
export function canConnect(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const t = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, timeoutMs);
    s.once("connect", () => {
      clearTimeout(t);
      s.destroy();
      resolve(true);
    });
    s.once("error", () => {
      clearTimeout(t);
      resolve(false);
    });
  });
}

const setprivPath = findExecutable("setpriv", ["/usr/bin", "/bin"]);

export type SpawnedService = ServerProcess;

export interface SpawnServiceOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Where stdout+stderr go (appended). */
  logFile: string;
  /** Run as the service user when root (default true). */
  unprivileged?: boolean;
  /**
   * Signal the server gets if the process that started it dies without cleaning up
   * (Linux parent-death signal, via util-linux `setpriv` when available).
   */
  deathSignal?: NodeJS.Signals;
}

/**
 * Start a server as the service user (see spawnServer: servers call child.unref() once they
 * are up, so a forgotten stop() cannot hang the process).
 */
export function spawnService(cmd: string, args: string[], opts: SpawnServiceOptions): SpawnedService {
  let file = cmd;
  let argv = args;
  if (opts.deathSignal && setprivPath && process.platform === "linux") {
    file = setprivPath;
    argv = ["--pdeathsig", opts.deathSignal, "--", cmd, ...args];
  }
  return spawnServer(file, argv, {
    cwd: opts.cwd,
    env: opts.env,
    logFile: opts.logFile,
    runAs: opts.unprivileged === false ? null : serviceUser(),
  });
}

/** Synchronous stop for exit handlers: signal, poll until the process is gone or a zombie. */
export function stopPidSync(pid: number, signal: NodeJS.Signals, timeoutMs = 3000): void {
  if (pid <= 0 || !pidAlive(pid)) return;
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  const until = Date.now() + timeoutMs;
  while (Date.now() < until && pidAlive(pid)) sleepSync(20);
  if (pidAlive(pid)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Cleanup on exit / interrupt

export interface TrackedResource {
  /** Human-readable label for debugging. */
  label: string;
  /** Current server pid (-1 = none yet). */
  pid(): number;
  /** Signal for a quick shutdown at exit (SIGKILL follows if it is not enough). */
  signal: NodeJS.Signals;
  /** Temp dir to delete once the process is gone. */
  dir: string;
}

const resources = new Set<TrackedResource>();
let handlersInstalled = false;

/**
 * Runs from process 'exit' and signal handlers, so it is synchronous and quick (vitest
 * SIGKILLs a worker 500 ms after SIGTERM): signal everything, wait briefly, SIGKILL
 * stragglers, delete the dirs.
 */
function cleanupAllSync(budgetMs = 300): void {
  const list = [...resources];
  resources.clear();
  for (const r of list) {
    const pid = r.pid();
    if (pid > 0 && pidAlive(pid)) {
      try {
        process.kill(pid, r.signal);
      } catch {
        // gone
      }
    }
  }
  const until = Date.now() + budgetMs;
  const alive = (): TrackedResource[] => list.filter((r) => r.pid() > 0 && pidAlive(r.pid()));
  while (alive().length && Date.now() < until) sleepSync(10);
  for (const r of alive()) {
    try {
      process.kill(r.pid(), "SIGKILL");
    } catch {
      // gone
    }
  }
  for (const r of list) removeDir(r.dir);
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", () => cleanupAllSync());
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const handler = (): void => {
      cleanupAllSync();
      // If nobody else handles the signal, restore the default behaviour (terminate).
      if (process.listenerCount(sig) <= 1) {
        process.removeListener(sig, handler);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, handler);
  }
}

/** Register a resource to be cleaned at exit/interrupt. Returns an unregister function. */
export function track(resource: TrackedResource): () => void {
  installHandlers();
  resources.add(resource);
  return () => {
    resources.delete(resource);
  };
}

export function randomHex(bytes: number): string {
  return crypto.randomBytes(bytes).toString("hex");
}

// ---------------------------------------------------------------------------------------------
// Launching a TCP server on a free port (memcached, Redis)

export interface LaunchSpec {
  /** Temp dir prefix, log file name and label ("memcached", "redis"). */
  kind: string;
  /** Fill the temp dir (configuration, credentials) before the server is first started. */
  prepare?(dir: string): Promise<void> | void;
  /** Start the server listening on 127.0.0.1:port, output appended to logFile. */
  spawn(port: number, dir: string, logFile: string): SpawnedService;
  /** True once the server answers. */
  ready(port: number): Promise<boolean>;
  /** Signal stop() sends (SIGKILL follows after 5 s). */
  stopSignal: NodeJS.Signals;
}

export interface LaunchedService {
  port: number;
  pid: number;
  dir: string;
  /** Stop the server and delete its temp dir. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Start a server in a fresh temp dir on a free port, tracked for cleanup at exit. When another
 * process grabbed the port between freePort() and the server's bind, it retries with another
 * port (up to 5 times). On failure everything is stopped and removed before the error is thrown.
 */
export async function launchService(spec: LaunchSpec): Promise<LaunchedService> {
  const dir = makeTempDir(spec.kind);
  const logFile = path.join(dir, `${spec.kind}.log`);
  let pid = -1;
  let stopped = false;
  const untrack = track({ label: spec.kind, pid: () => pid, signal: "SIGKILL", dir });
  try {
    await spec.prepare?.(dir);
    fs.writeFileSync(logFile, "");
    chownToServiceUser(logFile);
    let lastErr: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freePort();
      const svc = spec.spawn(port, dir, logFile);
      pid = svc.pid;
      try {
        await waitFor(`${spec.kind} startup`, () => spec.ready(port), { service: svc, timeoutMs: 15_000 });
        svc.child.unref();
        return {
          port,
          pid: svc.pid,
          dir,
          async stop() {
            if (stopped) return;
            stopped = true;
            untrack();
            await stopServer(svc, spec.stopSignal, 5000);
            removeDir(dir);
          },
        };
      } catch (e) {
        lastErr = e;
        await stopServer(svc, "SIGKILL", 2000);
        if (!/address already in use/i.test(svc.readLog())) break;
      }
    }
    throw lastErr;
  } catch (e) {
    untrack();
    stopPidSync(pid, "SIGKILL");
    removeDir(dir);
    throw e;
  }
}
