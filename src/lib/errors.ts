// Error classes the CLI maps to exit codes. A command throws these; src/cli.ts prints the
// message (no stack unless --traceback) and exits with the class's code.
//   0 success · 1 the command refused or failed · 2 usage error · 3 environment error

export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
    this.name = new.target.name;
  }
}

/** manage.py's CommandError: the command refused or failed (exit 1). */
export class CommandError extends CliError {
  constructor(message: string) {
    super(message, 1);
  }
}

/** Bad arguments (exit 2), printed argparse-style with the command's usage line. */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2);
  }
}

/** Config unreadable, database unreachable, not a Zulip database, … (exit 3). */
export class EnvironmentError extends CliError {
  constructor(message: string) {
    super(message, 3);
  }
}

export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, ENVIRONMENT: 3 } as const;
