// Safe updates of /etc/zulip/zulip-secrets.conf (Zulip itself shells out to
// `crudini --inplace --set <file> secrets <key> <value>`).
//
// What we guarantee:
//  - only the keys whose value changes are rewritten (ini.ts updateIniValues): every other line,
//    comment, blank line, the order and the line endings stay byte for byte;
//  - the new content is written to a temporary file in the same directory, fsync'ed, given the
//    original file's mode and owner, and renamed over the original, then the directory is
//    fsync'ed: a reader sees either the old or the new file, never a mix, and a failure or an
//    interruption at any point leaves the old file intact;
//  - symbolic links are followed (the link stays, its target is replaced);
//  - no secret value ever appears in an error message.
//
// checkSecretsWritable() is the pre-flight check commands run before they contact anything
// whose answer they will have to store.
import fs from "node:fs";
import path from "node:path";
import { CommandError } from "../lib/errors.js";
import { updateIniValues } from "./ini.js";
import { groupName, userById } from "../lib/users.js";
import { crypto } from "../lib/builtins.js";
import { READ_LIMITS, readBounded } from "../lib/files.js";

const SECRETS_SECTION = "secrets";

export interface SecretsUpdateResult {
  /** The file actually written (the symlink target if `file` is a link). */
  path: string;
  /** Keys whose value changed (their values are never returned). */
  changed: string[];
  /** False when every value was already as asked: the file was not touched. */
  written: boolean;
  /**
   * True when the file could not be replaced (it is a bind mount of its own) and was rewritten
   * in place instead: same inode, mode and owner, but not atomic.
   */
  inPlace?: boolean;
}

export interface SecretsUpdateOptions {
  section?: string;
  /** Test seams: called at the named step; throwing there simulates a failure at that point. */
  hooks?: {
    afterTempWrite?: (tempPath: string) => void;
    beforeRename?: (tempPath: string) => void;
  };
}

function uid(): number {
  return typeof process.getuid === "function" ? process.getuid() : -1;
}

function ownerLabel(st: fs.Stats): string {
  const user = userById(st.uid)?.name ?? String(st.uid);
  return `${user}:${groupName(st.gid)}`;
}

function currentUserLabel(): string {
  const u = uid();
  return userById(u)?.name ?? String(u);
}

function modeString(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

/** The real path of the file to replace (symlinks resolved), or the path itself if it does not exist. */
function resolveTarget(file: string): string {
  try {
    return fs.realpathSync(file);
  } catch {
    return path.resolve(file);
  }
}

/**
 * Whether we can replace `file` atomically while keeping its owner: the file must be writable,
 * its directory writable and searchable (for the temporary file and the rename), and, unless we
 * are root, the file must belong to us (only root can give a new file another owner).
 * Returns null when fine, else the reason (a full sentence, no secrets).
 */
export function secretsNotWritableReason(file: string): string | null {
  const target = resolveTarget(file);
  const dir = path.dirname(target);
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(target);
  } catch (e: any) {
    if (e?.code !== "ENOENT") return `cannot examine it: ${e?.code ?? e?.message ?? e}`;
  }
  if (st && !st.isFile()) return "it is not a regular file";
  if (st) {
    try {
      fs.accessSync(target, fs.constants.W_OK);
    } catch {
      return `the file (owner ${ownerLabel(st)}, mode ${modeString(st.mode)}) is not writable by ${currentUserLabel()}`;
    }
  }
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    let dirInfo = "";
    try {
      const dst = fs.statSync(dir);
      dirInfo = ` (owner ${ownerLabel(dst)}, mode ${modeString(dst.mode)})`;
    } catch {
      /* missing directory */
    }
    return `its directory ${dir}${dirInfo} is not writable by ${currentUserLabel()}, so the file cannot be replaced safely`;
  }
  if (st && uid() !== 0 && st.uid !== uid()) {
    return `the file belongs to ${ownerLabel(st)}; only that user (or root) can replace it without changing its owner`;
  }
  return null;
}

/**
 * Refuse (CommandError, exit 1) unless `file` can be updated. The first line is Zulip's message
 * (`<path> is not writable by the current user.`); the second says why and what to do.
 */
export function checkSecretsWritable(file: string): void {
  const reason = secretsNotWritableReason(file);
  if (reason === null) return;
  throw new CommandError(
    `${file} is not writable by the current user.\n` + `(${reason}. Run zulip-manage as the user that owns the Zulip installation, normally 'zulip'.)`,
  );
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, "r");
    fs.fsyncSync(fd);
  } catch {
    // Some filesystems do not support fsync on directories; the rename itself already happened.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Overwrite the file's content keeping its inode (for files that are mount points). */
function rewriteInPlace(target: string, buf: Buffer): void {
  const fd = fs.openSync(target, "r+");
  try {
    let off = 0;
    while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off, off);
    fs.ftruncateSync(fd, buf.length);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function sameFile(a: fs.Stats | undefined, b: fs.Stats | undefined): boolean {
  if (!a || !b) return a === b;
  return a.ino === b.ino && a.dev === b.dev && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;
}

/**
 * Set `updates` (key → value) in the `[secrets]` section of `file`, atomically. See the module
 * comment. Throws CommandError with a secret-free message on failure; the old file is intact.
 */
export function updateSecretsFile(file: string, updates: Record<string, string>, opts: SecretsUpdateOptions = {}): SecretsUpdateResult {
  const section = opts.section ?? SECRETS_SECTION;
  const target = resolveTarget(file);
  const dir = path.dirname(target);

  for (let attempt = 0; ; attempt++) {
    let before: fs.Stats | undefined;
    let text = "";
    try {
      before = fs.statSync(target);
      text = readBounded(target, READ_LIMITS.config, "The secrets file");
    } catch (e: any) {
      if (e?.code !== "ENOENT") throw new CommandError(`Cannot read ${file}: ${e?.code ?? e?.message ?? e}`);
      before = undefined;
    }

    let newText: string;
    try {
      newText = updateIniValues(text, section, updates);
    } catch (e: any) {
      // ini.ts messages name keys, never values that could be secrets… except for the
      // whitespace/line-break checks, which we phrase ourselves to be sure.
      throw new CommandError(`Cannot update ${file}: a key or value cannot be written to an INI file (${String(e?.message ?? e).split(":")[0]}).`);
    }
    const changed = Object.keys(updates).filter((k) => {
      try {
        return updateIniValues(text, section, { [k]: updates[k]! }) !== text;
      } catch {
        return true;
      }
    });
    if (newText === text && before) return { path: target, changed: [], written: false, inPlace: false };

    const mode = before ? before.mode & 0o7777 : 0o640;
    const tmp = path.join(dir, `.${path.basename(target)}.${process.pid}.${crypto().randomBytes(6).toString("hex")}.tmp`);
    let fd: number | undefined;
    try {
      // Created with 0600 so the secrets are never readable by others, even for a moment.
      fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
      const buf = Buffer.from(newText, "utf8");
      let off = 0;
      while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
      if (before) {
        const made = fs.fstatSync(fd);
        if (made.uid !== before.uid || made.gid !== before.gid) {
          // Root can give the file any owner; others can only keep themselves as the owner
          // and pick one of their groups. Failing here (EPERM) aborts and keeps the old file.
          fs.fchownSync(fd, before.uid, before.gid);
        }
      }
      fs.fchmodSync(fd, mode);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fd = undefined;
      opts.hooks?.afterTempWrite?.(tmp);

      // Someone else changed the file meanwhile: start again from their version.
      let now: fs.Stats | undefined;
      try {
        now = fs.statSync(target);
      } catch {
        now = undefined;
      }
      if (!sameFile(before, now)) {
        fs.rmSync(tmp, { force: true });
        if (attempt < 3) continue;
        throw new CommandError(`${file} keeps changing while zulip-manage updates it; try again.`);
      }
      opts.hooks?.beforeRename?.(tmp);
      try {
        fs.renameSync(tmp, target);
      } catch (e: any) {
        // The file is a mount point of its own (docker/kubernetes bind-mounting just this file):
        // it cannot be replaced, only rewritten in place, like `crudini --inplace` does.
        if (!before || (e?.code !== "EBUSY" && e?.code !== "EXDEV")) throw e;
        rewriteInPlace(target, Buffer.from(newText, "utf8"));
        fs.rmSync(tmp, { force: true });
        return { path: target, changed, written: true, inPlace: true };
      }
    } catch (e: any) {
      if (fd !== undefined) {
        try {
          fs.closeSync(fd);
        } catch {
          /* ignore */
        }
      }
      try {
        fs.rmSync(tmp, { force: true });
      } catch {
        /* ignore */
      }
      if (e instanceof CommandError) throw e;
      const reason = e?.code === "EACCES" || e?.code === "EPERM" ? (secretsNotWritableReason(file) ?? e.code) : (e?.code ?? e?.message ?? String(e));
      throw new CommandError(`Could not update ${file}: ${reason}. The file was left unchanged.`);
    }
    fsyncDir(dir);
    return { path: target, changed, written: true, inPlace: false };
  }
}
