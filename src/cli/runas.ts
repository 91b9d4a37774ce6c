// manage.py refuses to run as root. We do better: switch to the owner of the deployment
// directory (else the 'zulip' user) in-process, before reading any configuration, and say so.
import fs from "node:fs";
import { CommandError } from "../lib/errors.js";
import { shellQuote } from "../lib/shell.js";
import { type PasswdEntry, userById, userByName } from "../lib/users.js";

export interface RootDecision {
  action: "none" | "switch";
  user?: PasswdEntry;
  reason?: string;
}

export function decideRunAs(deployDir: string, allowRoot: boolean, uid: number): RootDecision {
  if (uid !== 0 || allowRoot) return { action: "none" };
  let owner: PasswdEntry | undefined;
  try {
    const st = fs.statSync(fs.realpathSync(deployDir));
    if (st.uid !== 0) owner = userById(st.uid);
    if (owner) return { action: "switch", user: owner, reason: `the owner of ${deployDir}` };
  } catch {
    /* no deployment directory here (docker with another layout, a workstation, …) */
  }
  const zulip = userByName("zulip");
  if (zulip && zulip.uid !== 0) return { action: "switch", user: zulip, reason: "the Zulip user" };
  return { action: "none" };
}

export function rootRefusal(argv: string[]): CommandError {
  const shown = ["zulip-manage", ...argv].map(shellQuote).join(" ");
  return new CommandError(
    "zulip-manage should not be run as root, and there is no 'zulip' user (or deployment owner) to switch to.\n" +
      "Run it as the user that owns your Zulip installation, for example:\n" +
      `  su zulip -c '${shown.replace(/'/g, "'\\''")}'\n` +
      "or, for Zulip in docker:\n" +
      `  docker exec -u zulip <container> ${shown}\n` +
      "To run as root anyway, pass --allow-root or set ZULIP_MANAGE_ALLOW_ROOT=1.",
    "root_refused",
  );
}

/** Drop privileges to `user` for the rest of the process. */
export function switchUser(user: PasswdEntry): void {
  const proc = process as NodeJS.Process & {
    initgroups(user: string, group: number): void;
    setgid(id: number): void;
    setuid(id: number): void;
  };
  proc.initgroups(user.name, user.gid);
  proc.setgid(user.gid);
  proc.setuid(user.uid);
  process.env.HOME = user.home;
  process.env.USER = user.name;
  process.env.LOGNAME = user.name;
}

export { shellQuote } from "../lib/shell.js";
