// Interactive questions. Only asked on a terminal: manage.py calls input() and, in cron or a
// pipeline, either hangs or reads whatever happens to be on stdin. Without a terminal we stop
// with a message naming the flag that answers the question instead. @inquirer/prompts is
// imported only when a question is actually asked.
import { CommandError } from "../lib/errors.js";

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
      `Cannot ask ${opts.what}: standard input is not a terminal.\n` +
        `Run this command in a terminal, or pass ${opts.flag} to answer non-interactively.`,
      "no_terminal",
    );
  }
  const { confirm } = await import("@inquirer/prompts");
  try {
    return await confirm(
      { message: question, default: opts.defaultYes },
      { input: input as NodeJS.ReadableStream, output: (opts.output ?? process.stdout) as NodeJS.WritableStream },
    );
  } catch (e: any) {
    // Ctrl-C / Ctrl-D: treat as "no", like an interrupted input() would stop the command.
    if (e?.name === "ExitPromptError" || e?.name === "AbortPromptError") {
      throw new CommandError("Interrupted; nothing was done.", "interrupted");
    }
    throw e;
  }
}
