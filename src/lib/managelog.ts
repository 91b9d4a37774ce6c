// Append each invocation to <log dir>/manage.log like manage.py does
// ("<asctime>: Ran <shell-joined argv>"). Failing to write is not an error.
import fs from "node:fs";
import path from "node:path";
import { shellQuote } from "./shell.js";

/** Python logging's default asctime: "2026-01-02 03:04:05,678" (local time). */
export function asctime(d = new Date()): string {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())},${p(d.getMilliseconds(), 3)}`;
}

export function logInvocation(logDir: string, argv: string[]): void {
  try {
    const line = `${asctime()}: Ran ${["zulip-manage", ...argv].map(shellQuote).join(" ")}\n`;
    fs.appendFileSync(path.join(logDir, "manage.log"), line);
  } catch {
    /* continue silently, like manage.py when the log is not writable */
  }
}

/**
 * A Zulip log file written the way log_to_file's handler writes it
 * ("<asctime> <LEVEL padded to 8> <message>"), e.g. soft_deactivation.log, retention.log.
 * Failing to write is not an error (as in Zulip).
 */
export class ZulipLogFile {
  constructor(
    private readonly logDir: string | null,
    private readonly name: string,
  ) {}
  write(level: "INFO" | "WARNING" | "ERROR", message: string): void {
    if (!this.logDir) return;
    try {
      fs.appendFileSync(path.join(this.logDir, this.name), `${asctime()} ${level.padEnd(8)} ${message}\n`);
    } catch {
      /* carry on */
    }
  }
}
