// Interactive questions. Only asked on a terminal: manage.py calls input() and, in cron or a
// pipeline, either hangs or reads whatever happens to be on stdin. Without a terminal we stop
// with a message naming the flag that answers the question instead. @inquirer/prompts is
// imported only when a question is actually asked. StdinLineReader answers manage.py's input()
// questions from standard input line by line.
import { CommandError, isPromptInterrupted } from "../lib/errors.js";

export interface YesNoOptions {
  /** Answer when the user just presses Enter. */
  defaultYes: boolean;
  /** The flag that answers the question non-interactively, e.g. "--agree-to-terms-of-service". */
  flag: string;
  /** What we are asking about, for the no-terminal message ("whether you agree to …"). */
  what: string;
  /** Where the question is written (default stdout; use stderr when stdout carries JSON). */
  output?: NodeJS.WritableStream;
  input?: NodeJS.ReadableStream & { isTTY?: boolean };
}

function isInteractive(input: { isTTY?: boolean } = process.stdin): boolean {
  return Boolean(input.isTTY);
}

/** Ask a yes/no question on the terminal; exit 1 with a hint when there is no terminal. */
export async function askYesNo(question: string, opts: YesNoOptions): Promise<boolean> {
  const input = opts.input ?? process.stdin;
  if (!isInteractive(input)) {
    throw new CommandError(
      `Cannot ask ${opts.what}: standard input is not a terminal.\n` + `Run this command in a terminal, or pass ${opts.flag} to answer non-interactively.`,
      "no_terminal",
    );
  }
  const { confirm } = await import("@inquirer/prompts");
  try {
    return await confirm(
      { message: question, default: opts.defaultYes },
      { input: input as NodeJS.ReadableStream, output: (opts.output ?? process.stdout) as NodeJS.WritableStream },
    );
  } catch (e) {
    // Ctrl-C / Ctrl-D: treat as "no", like an interrupted input() would stop the command.
    if (isPromptInterrupted(e)) {
      throw new CommandError("Interrupted; nothing was done.", "interrupted");
    }
    throw e;
  }
}

/** Longest answer read from standard input (an email address or a name), in bytes. */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * Reads lines from stdin the way Python's input() does (prompt on stdout, or stderr with
 * --json), e.g. get_create_user_params' questions. A line longer than MAX_ANSWER_BYTES (e.g. stdin is /dev/zero) ends the command
 * instead of growing until the process runs out of memory.
 */
export class StdinLineReader {
  private started = false;
  private pending = "";
  private lines: string[] = [];
  private waiting: ((line: string | null) => void)[] = [];
  private closed = false;
  private tooLong = false;

  private readonly onData = (chunk: Buffer | string): void => {
    this.pending += chunk.toString();
    let nl: number;
    while ((nl = this.pending.indexOf("\n")) >= 0) {
      this.deliver(this.pending.slice(0, nl).replace(/\r$/, ""));
      this.pending = this.pending.slice(nl + 1);
    }
    if (Buffer.byteLength(this.pending) > MAX_ANSWER_BYTES) {
      this.tooLong = true;
      this.pending = "";
      this.end();
    }
  };

  private readonly onEnd = (): void => {
    if (this.pending !== "") this.deliver(this.pending);
    this.pending = "";
    this.end();
  };

  private deliver(line: string): void {
    const w = this.waiting.shift();
    if (w) w(line);
    else this.lines.push(line);
  }

  private end(): void {
    this.closed = true;
    this.close();
    for (const w of this.waiting.splice(0)) w(null);
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    process.stdin.on("data", this.onData);
    process.stdin.on("end", this.onEnd);
    process.stdin.on("error", this.onEnd);
  }

  async ask(prompt: string, json: boolean): Promise<string> {
    (json ? process.stderr : process.stdout).write(prompt);
    this.start();
    const line = this.lines.length ? this.lines.shift()! : this.closed ? null : await new Promise<string | null>((r) => this.waiting.push(r));
    if (line === null && this.tooLong) {
      throw new CommandError(`The answer to "${prompt.trim()}" on standard input is longer than ${MAX_ANSWER_BYTES / 1024} KiB; refusing to read it.`);
    }
    if (line === null) throw new CommandError(`No answer to "${prompt.trim()}": standard input ended. Pass the value as an argument instead.`);
    return line;
  }

  close(): void {
    if (!this.started) return;
    process.stdin.off("data", this.onData);
    process.stdin.off("end", this.onEnd);
    process.stdin.off("error", this.onEnd);
    process.stdin.pause();
    process.stdin.destroy();
  }
}

export interface NewPasswordOptions {
  /** Where the prompts are written (stderr when stdout carries JSON). */
  output: NodeJS.WritableStream;
  /** Why a password is refused (the strength rule), or null. */
  validate: (password: string) => string | null;
  /** str(UserProfile), for the final refusal. */
  label: string;
  /** The "do not match" line (stdout in manage.py). */
  say: (text: string) => void;
  /** A refused password's reason (stderr). */
  complain: (text: string) => void;
}

/**
 * manage.py change_password's questions (Django's changepassword loop): "Password:" and
 * "Password (again):" without echo, at most three tries, an empty answer or Ctrl-C aborts.
 * Without a terminal it stops at once, naming --password-file.
 */
export async function askNewPassword(opts: NewPasswordOptions): Promise<string> {
  if (!process.stdin.isTTY) {
    throw new CommandError(
      "Cannot ask for the new password: standard input is not a terminal.\n" +
        "Run this command in a terminal, or pass --password-file FILE ('-' reads the password from standard input).",
    );
  }
  const { password } = await import("@inquirer/prompts");
  const ask = async (message: string) => {
    try {
      return await password({ message }, { input: process.stdin, output: opts.output });
    } catch (e) {
      if (isPromptInterrupted(e)) throw new CommandError("aborted");
      throw e;
    }
  };
  const maxTries = 3;
  let count = 0;
  while (count < maxTries) {
    const p1 = await ask("Password:");
    if (!p1) throw new CommandError("aborted");
    const p2 = await ask("Password (again):");
    if (!p2) throw new CommandError("aborted");
    if (p1 !== p2) {
      opts.say("Passwords do not match. Please try again.");
      count++;
      continue;
    }
    const problem = opts.validate(p1);
    if (problem !== null) {
      opts.complain(problem);
      count++;
      continue;
    }
    return p1;
  }
  throw new CommandError(`Aborting password change for user '${opts.label}' after ${count} attempts`);
}
