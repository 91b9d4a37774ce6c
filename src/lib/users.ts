// Operating-system users: who we are, who owns a file. Reads /etc/passwd directly (Zulip
// servers use local accounts), so no native module is needed.
import fs from "node:fs";

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

function readPasswd(): PasswdEntry[] {
  let text: string;
  try {
    text = fs.readFileSync("/etc/passwd", "utf8");
  } catch {
    return [];
  }
  const out: PasswdEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 7) continue;
    out.push({ name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5] });
  }
  return out;
}

export function userByName(name: string): PasswdEntry | undefined {
  return readPasswd().find((e) => e.name === name);
}

export function userById(uid: number): PasswdEntry | undefined {
  return readPasswd().find((e) => e.uid === uid);
}

export function userLabel(uid: number): string {
  const e = userById(uid);
  return e ? `'${e.name}' (uid ${uid})` : `uid ${uid}`;
}

export function groupName(gid: number): string {
  try {
    for (const line of fs.readFileSync("/etc/group", "utf8").split("\n")) {
      const f = line.split(":");
      if (f.length >= 3 && Number(f[2]) === gid) return f[0];
    }
  } catch {
    /* fall through */
  }
  return String(gid);
}

export function currentUid(): number {
  return typeof process.getuid === "function" ? process.getuid() : -1;
}
