// `backup`: the tarball Zulip's `manage.py backup` writes (zerver/management/commands/backup.py),
// so that Zulip's own scripts/setup/restore-backup restores it:
//
//   zulip-backup/zulip-version      ZULIP_VERSION, then `git describe` of a git deployment
//   zulip-backup/os-version         "{ID} {VERSION_ID}" from /etc/os-release
//   zulip-backup/postgres-version   the server's server_version_num (psycopg2's server_version)
//   zulip-backup/settings/...       /etc/zulip (tar --transform of the absolute path, -P, -h)
//   zulip-backup/database/...       pg_dump --format=directory --no-password
//   zulip-backup/uploads/...        LOCAL_UPLOADS_DIR, when set and present
//
// restore-backup untars zulip-backup/settings into /etc/zulip first (--strip-components=2), then
// maps settings/zproject/uploads back with the reverse --transform and runs
// `pg_restore --dbname=<db> -- <tmp>/zulip-backup/database` into a fresh createdb, so those
// member names are the contract. Like Zulip (10+), the pg_dump is the one of the server's major
// version under /usr/lib/postgresql/<major>/bin when there is one: restore-backup wants the same
// PostgreSQL version, and a newer pg_dump's archive may not load into an older pg_restore.
//
// Beyond Zulip: the directory dump is staged in a private (0700) directory on the output's
// filesystem (not /tmp), `--threads` becomes pg_dump's --jobs, the tarball is written 0600 inside
// that directory and renamed to its final name only when complete (Zulip's tar writes straight
// to the final name), `--keep N` prunes older backups, and a terminal gets progress. Memory stays
// flat: pg_dump writes to disk, and the system tar streams into gzip and the file.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type ConnectionPlan, libpqEnvironment, type Queryable } from "../db/db.js";
import { CommandError, EnvironmentError, UsageError } from "../lib/errors.js";
import { Progress } from "../lib/progress.js";
import { tempfileRandomName } from "../lib/random.js";
import { readZulipVersion } from "../services/push-service.js";

/** zulip_tools.TIMESTAMP_FORMAT ("%Y-%m-%d-%H-%M-%S"), in UTC like timezone_now(). */
function backupTimestamp(d: Date = new Date()): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())}-${p(d.getUTCHours())}-${p(d.getUTCMinutes())}-${p(d.getUTCSeconds())}`;
}

/** The name Zulip gives a backup without --output: NamedTemporaryFile(prefix="zulip-backup-<ts>-", suffix=".tar.gz"). */
export const DEFAULT_NAME_RE = /^zulip-backup-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-[A-Za-z0-9_]+\.tar\.gz$/;

function defaultName(timestamp: string): string {
  // tempfile's random part: 8 characters of [a-z0-9_].
  return `zulip-backup-${timestamp}-${tempfileRandomName(8)}.tar.gz`;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Which files in the output directory are earlier runs of this backup, for --keep: names of
 * Zulip's default shape when this one has it, else this name with each run of digits free (a
 * dated name like zulip-2026-12-07.tar.gz matches the other days'). A name without digits
 * matches only itself.
 */
export function keepPattern(name: string): RegExp {
  if (DEFAULT_NAME_RE.test(name)) return DEFAULT_NAME_RE;
  return new RegExp(
    "^" +
      name
        .split(/(\d+)/)
        .map((part, i) => (i % 2 ? "\\d+" : escapeRegExp(part)))
        .join("") +
      "$",
  );
}

// ---------------------------------------------------------------------------------------------
// Inputs: versions, pg_dump

/** /etc/os-release's "{ID} {VERSION_ID}" (parse_os_release; /usr/lib/os-release as systemd falls back). */
function osVersion(files = ["/etc/os-release", "/usr/lib/os-release"]): string {
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch {
      continue;
    }
    const values = new Map<string, string>();
    for (const line of text.split("\n")) {
      const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
      if (!m) continue;
      let v = m[2]!;
      if (/^(["']).*\1$/.test(v)) v = v.slice(1, -1).replace(/\\(.)/g, "$1");
      values.set(m[1]!, v);
    }
    return `${values.get("ID") ?? ""} ${values.get("VERSION_ID") ?? ""}`;
  }
  return "unknown unknown";
}

/** The zulip-version file: ZULIP_VERSION, then `git describe` for a git deployment (try_git_describe). */
async function zulipVersionText(deployDir: string): Promise<{ text: string; version: string | null }> {
  const { version } = readZulipVersion(deployDir);
  let text = `${version ?? "unknown"}\n`;
  if (fs.existsSync(path.join(deployDir, ".git"))) {
    const described = await capture("git", ["describe", "--tags", "--match=[0-9]*", "--always", "--dirty", "--long"], { cwd: deployDir }).catch(() => null);
    if (described && described.code === 0 && described.stdout.trim()) text += described.stdout.trim() + "\n";
  }
  return { text, version };
}

function capture(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.once("error", reject);
    child.once("close", (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr }));
  });
}

export interface PgDumpBinary {
  path: string;
  /** Major version, e.g. 15. */
  major: number;
  /** `pg_dump --version`'s text. */
  version: string;
}

/** Major version of a `pg_dump --version` line ("pg_dump (PostgreSQL) 15.18 (Debian …)"). */
export function pgDumpMajor(versionLine: string): number | null {
  const m = /\(PostgreSQL\)\s+(\d+)/.exec(versionLine);
  if (!m) return null;
  return Number(m[1]);
}

const PG_DUMP_INSTALL_HINT = (major: number) =>
  `Install the PostgreSQL ${major} client tools (Debian/Ubuntu: apt-get install postgresql-client-${major}), ` +
  `or put a pg_dump of version ${major} or newer first on PATH.`;

/**
 * The pg_dump to run for a server of `serverMajor`: Zulip's /usr/lib/postgresql/<major>/bin/pg_dump
 * first, then newer /usr/lib/postgresql/<v>/bin ones (oldest first), then `pg_dump` on PATH. One
 * older than the server is refused (pg_dump refuses a newer server; its archive would be wrong).
 */
export async function findPgDump(serverMajor: number, env: NodeJS.ProcessEnv, debianRoot = "/usr/lib/postgresql"): Promise<PgDumpBinary> {
  const candidates: string[] = [];
  let versions: number[] = [];
  try {
    versions = fs
      .readdirSync(debianRoot)
      .filter((v) => /^\d+$/.test(v))
      .map(Number)
      .filter((v) => v >= serverMajor)
      .sort((a, b) => a - b);
  } catch {
    versions = [];
  }
  for (const v of versions) candidates.push(path.join(debianRoot, String(v), "bin", "pg_dump"));
  for (const dir of (env.PATH ?? "").split(":").filter(Boolean)) candidates.push(path.join(dir, "pg_dump"));
  const tooOld: string[] = [];
  const seen = new Set<string>();
  for (const candidate of candidates) {
    if (seen.has(candidate)) continue;
    seen.add(candidate);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
    } catch {
      continue;
    }
    const r = await capture(candidate, ["--version"], { env }).catch(() => null);
    const line = r?.stdout.trim() ?? "";
    const major = pgDumpMajor(line);
    if (major === null) continue;
    if (major < serverMajor) {
      tooOld.push(`${candidate} (${line.replace(/^pg_dump\s+/, "")})`);
      continue;
    }
    return { path: candidate, major, version: line };
  }
  throw new EnvironmentError(
    (tooOld.length
      ? `The database server runs PostgreSQL ${serverMajor}, but the only pg_dump found is older: ${tooOld.join(", ")}; pg_dump refuses to dump a newer server.\n`
      : `pg_dump (PostgreSQL ${serverMajor} or newer) was not found in /usr/lib/postgresql/<version>/bin or on PATH.\n`) + PG_DUMP_INSTALL_HINT(serverMajor),
  );
}

// ---------------------------------------------------------------------------------------------
// The run

export interface BackupOptions {
  /** --output: a file name, or an existing directory (or one ending in "/") for a default name in it; undefined: the temp directory, as Zulip. */
  output?: string;
  skipDb: boolean;
  skipUploads: boolean;
  /** pg_dump --jobs (1: a single connection, as Zulip). */
  threads: number;
  /** --keep N: keep this backup and the N-1 newest earlier ones in the same directory; undefined: keep all. */
  keep?: number;
  plan: ConnectionPlan;
  /** /etc/zulip. */
  confDir: string;
  /** The deployment (DEPLOY_ROOT), for version.py. */
  deployDir: string;
  /** os.path.join(DEPLOY_ROOT, LOCAL_UPLOADS_DIR), or null (S3 or unset). */
  uploadsDir: string | null;
  env: NodeJS.ProcessEnv;
  /** Progress bars on this stream (a terminal), or none. */
  progress?: NodeJS.WriteStream | null;
  /** A warning for the user (not fatal). */
  warn?: (message: string) => void;
  /** Now, for the timestamp (tests). */
  now?: Date;
}

export interface BackupResult {
  path: string;
  bytes: number;
  seconds: number;
  zulip_version: string | null;
  os_version: string;
  postgres_version: number;
  database: { included: boolean; pg_dump: string | null; pg_dump_version: string | null; jobs: number; bytes: number };
  settings: { dir: string };
  uploads: { included: boolean; dir: string | null; reason: string | null };
  /** Older backups --keep removed. */
  removed: string[];
  /** Older backups --keep could not remove (warned). */
  not_removed: { path: string; error: string }[];
  members: string[];
}

/** Bounded tail of a child's stderr (for the error message), with a per-line hook. */
class StderrTail {
  private lines: string[] = [];
  private partial = "";
  constructor(
    private readonly max = 40,
    private readonly onLine?: (line: string) => void,
  ) {}
  push(chunk: Buffer | string): void {
    const parts = (this.partial + chunk.toString()).split("\n");
    this.partial = parts.pop() ?? "";
    if (this.partial.length > 4096) this.partial = this.partial.slice(-4096);
    for (const l of parts) this.add(l);
  }
  private add(line: string): void {
    this.onLine?.(line);
    if (
      this.onLine &&
      /^pg_dump: (dumping contents of table|finished item|processing item|reading|identifying|saving|last built-in|flagging|creating|dumping)/.test(line)
    )
      return;
    this.lines.push(line.length > 1000 ? line.slice(0, 1000) + "…" : line);
    if (this.lines.length > this.max) this.lines.shift();
  }
  text(): string {
    if (this.partial) {
      this.add(this.partial);
      this.partial = "";
    }
    return this.lines.filter((l) => l.trim()).join("\n");
  }
}

function exitDescription(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `was killed by ${signal}` : `exited with status ${code}`;
}

function waitChild(child: ChildProcess, what: string, missingHint: string): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    child.once("error", (e: NodeJS.ErrnoException) =>
      reject(
        e.code === "ENOENT"
          ? new EnvironmentError(`${what} is not installed or not on PATH. ${missingHint}`)
          : new CommandError(`Could not run ${what}: ${e.message}`),
      ),
    );
    child.once("close", (code, signal) => resolve({ code, signal }));
  });
}

/** Sizes of every regular file under `dir` (following symlinks, as tar -h does); unreadable parts count 0. */
async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  const walk = async (p: string, depth: number): Promise<void> => {
    let st: fs.Stats;
    try {
      st = await fs.promises.stat(p);
    } catch {
      return;
    }
    if (st.isFile()) total += st.size + 512;
    else if (st.isDirectory() && depth < 64) {
      let names: string[] = [];
      try {
        names = await fs.promises.readdir(p);
      } catch {
        return;
      }
      for (const n of names) await walk(path.join(p, n), depth + 1);
    }
  };
  await walk(dir, 0);
  return total;
}

function ioMessage(e: NodeJS.ErrnoException, what: string): string {
  if (e.code === "ENOSPC") return `${what}: no space left on the device (${e.message}).`;
  if (e.code === "EDQUOT") return `${what}: disk quota exceeded (${e.message}).`;
  if (e.code === "EACCES" || e.code === "EPERM") return `${what}: permission denied (${e.message}).`;
  return `${what}: ${e.message}`;
}

/** tar --transform expression of backup.py: s|^<path>(/.*)?$|zulip-backup/<name>\1|x (an ERE). */
export function transformArg(name: string, dir: string): string {
  if (name.includes("|") || dir.includes("|")) throw new CommandError(`Cannot back up ${dir}: its path contains '|'.`);
  const ere = dir.replace(/[.[\]\\*^$+?(){}|]/g, "\\$&");
  return `--transform=s|^${ere}(/.*)?$|zulip-backup/${name.replace(/\\/g, "\\\\")}\\1|x`;
}

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

function realpathOr(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

/** Resolve --output into the final path (a directory gets Zulip's default name inside it). */
function resolveOutput(output: string | undefined, timestamp: string, tmpdir = os.tmpdir()): string {
  if (output === undefined) return path.join(tmpdir, defaultName(timestamp));
  if (output === "") throw new UsageError("--output must not be empty");
  let isDir = output.endsWith("/");
  try {
    isDir ||= fs.statSync(output).isDirectory();
  } catch {
    /* a new file */
  }
  return path.resolve(isDir ? path.join(output, defaultName(timestamp)) : output);
}

/** Run pg_dump into `dir` (directory format). */
async function dumpDatabase(bin: PgDumpBinary, dir: string, opts: BackupOptions, serverTables: number, track: (c: ChildProcess) => void): Promise<void> {
  const args = ["--format=directory", `--file=${dir}`, "--no-password"];
  if (opts.threads > 1) args.push(`--jobs=${opts.threads}`);
  const bar = opts.progress ? new Progress(Math.max(1, serverTables), { stream: opts.progress, label: "Dumping the database (tables)" }) : null;
  if (bar) args.push("--verbose");
  bar?.tick(0);
  const tail = new StderrTail(40, bar ? (line) => (/dumping contents of table|finished item \d+ TABLE DATA/.test(line) ? bar.tick() : undefined) : undefined);
  const child = spawn(bin.path, args, {
    env: { ...opts.env, ...libpqEnvironment(opts.plan, "zulip-manage backup") },
    stdio: ["ignore", "ignore", "pipe"],
  });
  track(child);
  child.stderr!.on("data", (d) => tail.push(d));
  const { code, signal } = await waitChild(child, "pg_dump", PG_DUMP_INSTALL_HINT(bin.major));
  bar?.finish();
  if (code !== 0) {
    const text = tail.text();
    const space = /No space left on device/i.test(text) ? " The output's filesystem is full." : "";
    throw new CommandError(`pg_dump ${exitDescription(code, signal)}; no backup was written.${space}${text ? "\n" + text : ""}`);
  }
}

/**
 * tar (system, as Zulip) | gzip | a 0600 file: `tar --directory=<staging> -cPh -f - <transforms> -- <members>`,
 * compressed here so the bytes can be counted for the progress bar.
 */
async function writeTarball(
  staging: string,
  members: string[],
  transforms: string[],
  file: string,
  opts: BackupOptions,
  totalBytes: number,
  track: (c: ChildProcess) => void,
): Promise<void> {
  const { createGzip } = await import("node:zlib");
  const child = spawn("tar", [`--directory=${staging}`, "-cPh", "-f", "-", ...transforms, "--", ...members], {
    env: { ...opts.env, LC_ALL: "C" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  track(child);
  const tail = new StderrTail();
  child.stderr!.on("data", (d) => tail.push(d));
  const exited = waitChild(child, "tar", "Install GNU tar (apt-get install tar).");
  // Units that keep the counter readable: MiB for large backups, KiB for small ones.
  const unit = totalBytes >= 64 * 1048576 ? 1048576 : 1024;
  const units = (n: number) => Math.floor(n / unit);
  const bar = opts.progress
    ? new Progress(Math.max(1, units(totalBytes)), { stream: opts.progress, label: `Writing the tarball (${unit === 1024 ? "KiB" : "MiB"})` })
    : null;
  bar?.tick(0);
  let seen = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (bar) {
        const before = units(seen);
        seen += chunk.length;
        const step = Math.min(units(seen), bar.total) - Math.min(before, bar.total);
        if (step > 0) bar.tick(step);
      }
      cb(null, chunk);
    },
  });
  const out = fs.createWriteStream(file, { flags: "wx", mode: 0o600 });
  let streamError: NodeJS.ErrnoException | null = null;
  try {
    await pipeline(child.stdout!, counter, createGzip(), out);
  } catch (e) {
    streamError = e as NodeJS.ErrnoException;
    child.kill("SIGTERM");
  }
  const { code, signal } = await exited;
  bar?.finish();
  if (streamError) throw new CommandError(ioMessage(streamError, "Writing the backup tarball failed") + " No backup was written.");
  if (code !== 0) {
    const text = tail.text();
    throw new CommandError(
      `tar ${exitDescription(code, signal)} while archiving (a file it could not read, or one that changed while it was read); no backup was written.${text ? "\n" + text : ""}`,
    );
  }
}

/** Back up the server (see the file comment). `db` answers the version query; the dump runs on pg_dump's own connection. */
export async function backup(db: Queryable, opts: BackupOptions): Promise<BackupResult> {
  const started = process.hrtime.bigint();
  if (!Number.isInteger(opts.threads) || opts.threads < 1) throw new UsageError("--threads must be a whole number of at least 1");
  if (opts.keep !== undefined && (!Number.isInteger(opts.keep) || opts.keep < 1)) throw new UsageError("--keep must be a whole number of at least 1");
  const timestamp = backupTimestamp(opts.now);
  const finalPath = resolveOutput(opts.output, timestamp);
  const outDir = path.dirname(finalPath);
  const confDir = path.resolve(opts.confDir);

  try {
    const st = fs.statSync(outDir);
    if (!st.isDirectory()) throw new CommandError(`Cannot write the backup to ${finalPath}: ${outDir} is not a directory.`);
  } catch (e: any) {
    if (e instanceof CommandError) throw e;
    throw new CommandError(`Cannot write the backup to ${finalPath}: ${e.code === "ENOENT" ? `the directory ${outDir} does not exist` : e.message}.`);
  }
  try {
    if (fs.statSync(finalPath).isDirectory()) throw new CommandError(`Cannot write the backup to ${finalPath}: it is a directory.`);
  } catch (e: any) {
    if (e instanceof CommandError) throw e;
  }

  // Inputs, checked before anything is written.
  const { rows } = await db.query("SELECT current_setting('server_version_num')::int AS v");
  const serverVersion = Number(rows[0].v);
  const serverMajor = Math.floor(serverVersion / 10000); // PostgreSQL 10+: major * 10000 + minor
  const pgDump = opts.skipDb ? null : await findPgDump(serverMajor, opts.env);
  try {
    if (!fs.statSync(confDir).isDirectory()) throw new Error("not a directory");
    fs.accessSync(confDir, fs.constants.R_OK | fs.constants.X_OK);
  } catch (e: any) {
    throw new CommandError(`Cannot read the Zulip configuration directory ${confDir}: ${e.code === "EACCES" ? "permission denied" : e.message}.`);
  }
  let uploadsDir: string | null = null;
  let uploadsReason: string | null = null;
  if (opts.skipUploads) uploadsReason = "--skip-uploads";
  else if (opts.uploadsDir === null) uploadsReason = "LOCAL_UPLOADS_DIR is not set (uploads are in S3)";
  else if (!fs.existsSync(opts.uploadsDir)) uploadsReason = `${opts.uploadsDir} does not exist`;
  else {
    uploadsDir = path.resolve(opts.uploadsDir);
    try {
      fs.accessSync(uploadsDir, fs.constants.R_OK | fs.constants.X_OK);
    } catch (e: any) {
      throw new CommandError(
        `Cannot read the uploads directory ${uploadsDir} (LOCAL_UPLOADS_DIR): ${e.code === "EACCES" ? "permission denied" : e.message}. Run as the Zulip user, or pass --skip-uploads.`,
      );
    }
  }
  const realOut = realpathOr(outDir);
  for (const [what, dir] of [
    ["configuration directory", confDir],
    ["uploads directory", uploadsDir],
  ] as const) {
    if (dir && isInside(realOut, realpathOr(dir)))
      throw new CommandError(`Cannot write the backup inside the ${what} ${dir}: it would archive itself. Choose another --output.`);
  }
  const transforms = [transformArg("settings", confDir), ...(uploadsDir ? [transformArg("uploads", uploadsDir)] : [])];
  const version = await zulipVersionText(opts.deployDir);
  if (version.version === null) opts.warn?.(`Could not read the Zulip version from ${path.join(opts.deployDir, "version.py")}; zulip-version says "unknown".`);
  const os_version = osVersion();

  // A private staging directory on the output's filesystem (the dump can be large; /tmp may be small).
  let staging: string;
  try {
    staging = await fs.promises.mkdtemp(path.join(outDir, `.zulip-backup-${timestamp}-`));
    await fs.promises.chmod(staging, 0o700);
  } catch (e: any) {
    throw new CommandError(ioMessage(e, `Cannot create a staging directory in ${outDir}`));
  }
  const children = new Set<ChildProcess>();
  const track = (c: ChildProcess) => {
    children.add(c);
    c.once("close", () => children.delete(c));
  };
  let interrupted: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupted = sig;
    for (const c of children) c.kill("SIGTERM");
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  for (const s of signals) process.on(s, onSignal);
  let fd: fs.promises.FileHandle | null = null;
  const partial = path.join(staging, "archive.tar.gz");
  try {
    const base = path.join(staging, "zulip-backup");
    const members: string[] = [];
    try {
      await fs.promises.mkdir(base);
      await fs.promises.writeFile(path.join(base, "zulip-version"), version.text);
      await fs.promises.writeFile(path.join(base, "os-version"), os_version + "\n");
      await fs.promises.writeFile(path.join(base, "postgres-version"), `${serverVersion}\n`);
    } catch (e: any) {
      throw new CommandError(ioMessage(e, `Writing to ${staging} failed`));
    }
    members.push("zulip-backup/zulip-version", "zulip-backup/os-version", "zulip-backup/postgres-version", confDir);

    let dbBytes = 0;
    if (pgDump) {
      let tables = 0;
      if (opts.progress) {
        const t = await db.query(
          `SELECT count(*)::int AS n FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'`,
        );
        tables = t.rows[0].n;
      }
      await dumpDatabase(pgDump, path.join(base, "database"), opts, tables, track);
      if (interrupted) throw new CommandError(`Interrupted (${interrupted}); no backup was written.`);
      members.push("zulip-backup/database");
      dbBytes = await treeBytes(path.join(base, "database"));
    }
    if (uploadsDir) members.push(uploadsDir);

    const total = opts.progress ? 1024 + dbBytes + (await treeBytes(confDir)) + (uploadsDir ? await treeBytes(uploadsDir) : 0) : 0;
    await writeTarball(staging, members, transforms, partial, opts, total, track);
    if (interrupted) throw new CommandError(`Interrupted (${interrupted}); no backup was written.`);
    try {
      fd = await fs.promises.open(partial, "r+");
      await fd.chmod(0o600);
      await fd.sync();
      await fd.close();
      fd = null;
      await fs.promises.rename(partial, finalPath);
    } catch (e: any) {
      throw new CommandError(ioMessage(e, `Writing the backup tarball ${finalPath} failed`) + " No backup was written.");
    }
    try {
      const dirFd = await fs.promises.open(outDir, "r");
      await dirFd.sync().finally(() => dirFd.close());
    } catch {
      /* some filesystems cannot fsync a directory; the rename is done */
    }
    const bytes = fs.statSync(finalPath).size;

    const removed: string[] = [];
    const notRemoved: { path: string; error: string }[] = [];
    if (opts.keep !== undefined) {
      const pattern = keepPattern(path.basename(finalPath));
      const older: { p: string; mtime: number }[] = [];
      for (const name of fs.readdirSync(outDir)) {
        const p = path.join(outDir, name);
        if (p === finalPath || !pattern.test(name)) continue;
        try {
          const st = fs.lstatSync(p);
          if (st.isFile()) older.push({ p, mtime: st.mtimeMs });
        } catch {
          /* gone */
        }
      }
      older.sort((a, b) => b.mtime - a.mtime || (a.p < b.p ? 1 : -1));
      for (const o of older.slice(opts.keep - 1)) {
        try {
          fs.unlinkSync(o.p);
          removed.push(o.p);
        } catch (e: any) {
          notRemoved.push({ path: o.p, error: e.message });
          opts.warn?.(`Could not remove the older backup ${o.p}: ${e.message}`);
        }
      }
    }
    return {
      path: finalPath,
      bytes,
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
      zulip_version: version.version,
      os_version,
      postgres_version: serverVersion,
      database: { included: pgDump !== null, pg_dump: pgDump?.path ?? null, pg_dump_version: pgDump?.version ?? null, jobs: opts.threads, bytes: dbBytes },
      settings: { dir: confDir },
      uploads: { included: uploadsDir !== null, dir: uploadsDir ?? opts.uploadsDir, reason: uploadsReason },
      removed,
      not_removed: notRemoved,
      members: members.map((m) => (m === confDir ? "zulip-backup/settings" : m === uploadsDir ? "zulip-backup/uploads" : m)),
    };
  } finally {
    for (const s of signals) process.removeListener(s, onSignal);
    for (const c of children) c.kill("SIGTERM");
    if (fd) await fd.close().catch(() => undefined);
    await fs.promises.rm(staging, { recursive: true, force: true }).catch(() => undefined);
  }
}
