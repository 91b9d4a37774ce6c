// The lock of Zulip's @abort_unless_locked cron commands (zerver/lib/management.py): a
// non-blocking exclusive flock(2) on settings.LOCKFILE_DIRECTORY/<command>.lock
// (/srv/zulip-locks on a production server), held for the whole command, so that our run and
// manage.py's (from Zulip's own cron) never overlap. When it is taken, Zulip prints
// "Lock <path> is unavailable; exiting." and exits 1.
//
// Node has no flock(); util-linux's flock(1) holds it for us: `flock --nonblock FILE cat` keeps
// the lock while `cat` waits on our pipe, and lets go when we close the pipe or die.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { CommandError, EnvironmentError } from "../lib/errors.js";

export interface HeldLock {
  path: string;
  release(): Promise<void>;
}

const CONFLICT = 75;

/** Take `<lockDir>/<name>.lock` or refuse as Zulip does (CommandError, exit 1). */
async function lockOrAbort(lockDir: string, name: string): Promise<HeldLock> {
  const file = path.join(lockDir, `${name}.lock`);
  try {
    fs.mkdirSync(lockDir, { recursive: true }); // os.makedirs(LOCKFILE_DIRECTORY, exist_ok=True)
  } catch (e: any) {
    throw new EnvironmentError(`Cannot create the lock directory ${lockDir}: ${e.message}`);
  }
  const child: ChildProcess = spawn(
    "flock",
    ["--exclusive", "--nonblock", "--conflict-exit-code", String(CONFLICT), file, "sh", "-c", "echo locked; exec cat >/dev/null"],
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; error?: NodeJS.ErrnoException }>((resolve) => {
    child.once("error", (error: NodeJS.ErrnoException) => resolve({ code: null, error }));
    child.once("close", (code) => resolve({ code }));
  });
  const locked = new Promise<boolean>((resolve) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
      if (out.includes("locked")) resolve(true);
    });
    void exited.then(() => resolve(false));
  });
  if (await locked) {
    return {
      path: file,
      async release() {
        child.stdin!.end();
        await exited;
      },
    };
  }
  const { code, error } = await exited;
  if (error?.code === "ENOENT")
    throw new EnvironmentError("flock (util-linux) is not installed or not on PATH; it is needed to take the lock Zulip's cron jobs use.");
  if (code === CONFLICT) throw new CommandError(`Lock ${file} is unavailable; exiting.`);
  throw new EnvironmentError(`Cannot lock ${file}: ${(error?.message ?? stderr.trim()) || `flock exited with status ${code}`}`);
}

/** Run `fn` holding the lock, releasing it afterwards whatever happens. */
export async function withLock<T>(lockDir: string, name: string, fn: () => Promise<T>): Promise<T> {
  const lock = await lockOrAbort(lockDir, name);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
