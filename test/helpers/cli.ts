// Run the built CLI (bin/zulip-manage → dist/cli/main.js) the way a server admin would, with a
// test conf dir and a test database. `npm test` builds dist/ before vitest runs.
import fs from "node:fs";
import path from "node:path";
import { execa, type Result } from "execa";
import type { ConfDir } from "./confdir.js";
import { REPO_ROOT } from "./pg.js";
import { makeTempDir, track } from "./services.js";

export const CLI_BIN = path.join(REPO_ROOT, "bin", "zulip-manage");
export const CLI_ENTRY = path.join(REPO_ROOT, "dist", "bundle", "cli.cjs");

export interface RunCliOptions {
  /** Extra environment; a value of undefined removes the variable. Applied last. */
  env?: Record<string, string | undefined>;
  /** Text on stdin (default: stdin is /dev/null, i.e. immediately at EOF). */
  input?: string;
  /** A makeConfDir() result (its env is used) or a conf dir path (ZULIP_CONF_DIR only). */
  confDir?: ConfDir | string;
  /** A createDatabase() result, or anything with PG* env. */
  db?: { env: Record<string, string>; socketEnv?: Record<string, string> };
  /** Use the database's Unix socket (PGHOST=<socket dir>) instead of TCP. */
  socket?: boolean;
  cwd?: string;
  /** Kill the CLI after this long (default 60 s). */
  timeoutMs?: number;
  /** The node binary to run it with (default: the one running the tests). */
  node?: string;
  /** The zulip-manage script to run (default: this checkout's bin/zulip-manage). */
  bin?: string;
}

export type CliResult = Result<{ reject: false; env: Record<string, string> }>;

/** Whether dist/ has been built (for describe.skipIf in tests written before the build exists). */
export function cliBuilt(): boolean {
  return fs.existsSync(CLI_ENTRY);
}

let cacheHome: string | undefined;

/**
 * XDG_CACHE_HOME for the CLI: a directory of this test process's own, removed at exit. The CLI
 * writes a V8 code cache there when the build's does not fit (another Node, NODE_OPTIONS, a
 * copy of the build without its cache), never into the tester's ~/.cache.
 */
function testCacheHome(): string {
  if (!cacheHome) {
    const dir = makeTempDir("cli-cache", { serviceOwned: false });
    track({ label: "CLI cache home", pid: () => -1, signal: "SIGTERM", dir });
    cacheHome = dir;
  }
  return cacheHome;
}

/** The environment runCli gives the CLI (exported for tests that spawn it themselves). */
export function cliEnv(opts: RunCliOptions = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined) continue;
    // Nothing from the test runner's own PostgreSQL/Zulip/color setup leaks into the CLI.
    if (k.startsWith("PG") || k.startsWith("ZULIP_") || k === "NO_COLOR" || k === "FORCE_COLOR") continue;
    env[k] = v;
  }
  env.ZULIP_MANAGE_ALLOW_ROOT = "1";
  env.XDG_CACHE_HOME = testCacheHome();
  if (typeof opts.confDir === "string") env.ZULIP_CONF_DIR = opts.confDir;
  else if (opts.confDir) Object.assign(env, opts.confDir.env);
  if (opts.db) Object.assign(env, opts.socket && opts.db.socketEnv ? opts.db.socketEnv : opts.db.env);
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/**
 * Run `zulip-manage <args>`; never rejects on a non-zero exit. Returns execa's result:
 * stdout, stderr (final newline stripped), exitCode, timedOut, ...
 */
export async function runCli(args: string[], opts: RunCliOptions = {}): Promise<CliResult> {
  if (!opts.bin && !cliBuilt()) throw new Error(`${CLI_ENTRY} is missing: run \`npm run build\` (npm test does it) first`);
  return execa(opts.node ?? process.execPath, [opts.bin ?? CLI_BIN, ...args], {
    env: cliEnv(opts),
    extendEnv: false,
    reject: false,
    cwd: opts.cwd ?? REPO_ROOT,
    timeout: opts.timeoutMs ?? 60_000,
    ...(opts.input !== undefined ? { input: opts.input } : { stdin: "ignore" as const }),
  }) as Promise<CliResult>;
}
