// Reading the files and streams a user points us at, and creating the directories we write
// private data into, without ever hanging or crashing on what is there.
//
// - `fs.readFileSync` reads until end of file: on /dev/zero it allocates until V8 aborts the
//   process (std::bad_alloc, exit 134), on /dev/urandom it never returns. Every read here stops
//   one byte past a limit and says so (exit 1), and still takes pipes and process substitutions
//   (`--password-file <(…)`, `-` for standard input), which have no size to ask for up front.
// - `fs.mkdirSync(dir, { recursive: true })` loops for ever on some paths where nothing can be
//   created (e.g. under /proc: ENOENT from a parent that exists). mkdirPrivate walks up to the
//   nearest existing directory and creates each missing level once, failing on the first error.
import fs from "node:fs";
import path from "node:path";
import { CommandError } from "./errors.js";

const KiB = 1024;
const MiB = 1024 * KiB;

/** How much we read of each kind of input, at the most. */
export const READ_LIMITS = {
  /** a password file (Zulip's own forms cap passwords far below this) */
  password: 64 * KiB,
  /** a Markdown email body */
  markdown: 8 * MiB,
  /** a JSON document given as an option (per-user context for emails) */
  json: 32 * MiB,
  /** a CSV file given as an option */
  csv: 32 * MiB,
  /** a configuration file under /etc/zulip or the deployment directory */
  config: 16 * MiB,
} as const;

function describeLimit(bytes: number): string {
  return bytes >= MiB ? `${bytes / MiB} MiB` : `${bytes / KiB} KiB`;
}

/** Thrown by readBounded when the input is longer than the limit (a CommandError: exit 1). */
class InputTooLargeError extends CommandError {}

/** The name a message uses for `file` ("standard input" for "-"). */
function inputName(file: string): string {
  return file === "-" ? "standard input" : file;
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Read a whole file, device, pipe or FIFO (`-`: standard input) as UTF-8, refusing input longer
 * than `limit` bytes with InputTooLargeError. Other failures (ENOENT, EACCES, EISDIR …) are
 * thrown as Node's own errors, with their `code`, for the caller's message.
 */
export function readBounded(file: string, limit: number, what: string): string {
  const fd = file === "-" ? 0 : fs.openSync(file, "r");
  try {
    if (fs.fstatSync(fd).isDirectory()) {
      throw Object.assign(new Error(`EISDIR: illegal operation on a directory, read`), { code: "EISDIR" });
    }
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(64 * KiB, limit + 1 - total));
      let n: number;
      try {
        n = fs.readSync(fd, buf, 0, buf.length, null);
      } catch (e: any) {
        // A non-blocking pipe or terminal with nothing to read yet.
        if (e?.code === "EAGAIN") {
          sleepMs(5);
          continue;
        }
        if (e?.code === "EOF") break;
        throw e;
      }
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
      if (total > limit) {
        throw new InputTooLargeError(`${what} ${inputName(file)} is larger than ${describeLimit(limit)}; refusing to read it.`, "file_unreadable");
      }
    }
    return Buffer.concat(chunks, total).toString("utf8");
  } finally {
    if (fd !== 0) fs.closeSync(fd);
  }
}

/**
 * readBounded for an option's file, every failure a CommandError naming the option's file:
 * "Cannot read <what> <file>: no such file".
 */
export function readOptionFile(file: string, limit: number, what: string): string {
  try {
    return readBounded(file, limit, what);
  } catch (e: any) {
    if (e instanceof CommandError) throw e;
    const reason =
      e?.code === "ENOENT"
        ? "no such file"
        : e?.code === "EISDIR"
          ? "it is a directory"
          : e?.code === "EACCES"
            ? "permission denied"
            : (e?.code ?? e?.message ?? String(e));
    throw new CommandError(`Cannot read ${what} ${inputName(file)}: ${reason}`, "file_unreadable");
  }
}

/**
 * `mkdir -p dir` where each directory created is `mode` (default 0700: only the owner may look
 * in), never looping: the first level that cannot be created fails with a CommandError.
 */
export function mkdirPrivate(dir: string, mode = 0o700): void {
  const missing: string[] = [];
  let cur = path.resolve(dir);
  for (;;) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(cur);
    } catch (e: any) {
      if (e?.code !== "ENOENT" && e?.code !== "ENOTDIR")
        throw new CommandError(`Cannot create ${dir}: ${cur}: ${e?.code ?? e?.message ?? e}`, "file_unwritable");
    }
    if (st) {
      if (!st.isDirectory()) throw new CommandError(`Cannot create ${dir}: ${cur} is not a directory`, "file_unwritable");
      break;
    }
    const parent = path.dirname(cur);
    if (parent === cur) break;
    missing.push(cur);
    cur = parent;
  }
  for (const d of missing.reverse()) {
    try {
      fs.mkdirSync(d, { mode });
    } catch (e: any) {
      if (e?.code === "EEXIST" && fs.statSync(d).isDirectory()) continue;
      throw new CommandError(`Cannot create ${dir}: ${d}: ${e?.code ?? e?.message ?? e}`, "file_unwritable");
    }
  }
}
