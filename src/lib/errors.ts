// Error classes the CLI maps to exit codes. A command throws these; src/cli/runner.ts prints the
// message (no stack unless --traceback) and exits with the class's code; with --json it prints the
// error document {ok: false, exit_code, error, error_code, schema_version} (src/cli/json-contract.ts).
//   0 success · 1 the command refused or failed · 2 usage error · 3 environment error
//
// error_code: a stable machine-readable name for what went wrong, given where the error is
// thrown (lookups, connection, configuration) rather than per command. The README lists them;
// a new code may be added without a schema_version change (consumers treat an unknown code as
// its exit code's general case), an existing code is never renamed or reused.

/** Every error_code, with the exit code it comes with and its meaning (README's table is checked against this). */
export const ERROR_CODES = {
  // exit 2
  usage: [2, "bad arguments: unknown or missing option or argument, invalid value"],
  unknown_command: [2, "no command of that name (also `help <name>`)"],
  // exit 1
  refused: [1, "the command refused or failed (manage.py's CommandError); the message says why"],
  invalid_arguments: [1, "a combination of options manage.py refuses with exit 1 (e.g. neither -u nor -a)"],
  realm_not_found: [1, "no organization with that id or subdomain"],
  user_not_found: [1, "no user with that email (in that organization)"],
  user_ambiguous: [1, "several organizations have a user with that email; pass --realm"],
  file_unreadable: [1, "a file an option names cannot be read (missing, too big, not a regular file)"],
  file_unwritable: [1, "an output directory or file cannot be created"],
  email_failed: [1, "the SMTP server refused or could not be reached while sending"],
  audit_log_failed: [1, "send_custom_email: the emails were sent but recording them in the audit log failed"],
  checks_failed: [1, "doctor: a required check failed"],
  no_terminal: [1, "the command needs to ask a question but there is no terminal"],
  interrupted: [1, "interrupted at a prompt; nothing was done"],
  root_refused: [1, "run as root with no Zulip user to switch to (see --allow-root)"],
  switch_user_failed: [1, "switching to the Zulip user failed"],
  schema_unavailable: [1, "help --json-schema: that command's document has no published schema yet"],
  internal_error: [1, "an unexpected error (a bug): run again with --traceback and report it"],
  // exit 3
  environment: [3, "the environment is not usable (other than the cases below)"],
  config_unreadable: [3, "a configuration file (settings.py, zulip.conf, zulip-secrets.conf) cannot be read"],
  config_invalid: [3, "a configuration value is invalid (--setting, sslmode, …)"],
  database_unreachable: [3, "cannot connect to PostgreSQL"],
  not_a_zulip_database: [3, "the database has no Zulip schema"],
  database_unsupported: [3, "the Zulip database is older than Zulip 10, or lacks tables zulip-manage needs"],
  email_not_configured: [3, "outgoing email is not configured (EMAIL_HOST, EMAIL_BACKEND, TLS settings)"],
  redis_unreachable: [3, "cannot connect to or use Zulip's Redis server"],
  psql_missing: [3, "psql is not installed (dbshell)"],
} as const satisfies Record<string, readonly [number, string]>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class CliError extends Error {
  readonly exitCode: number;
  readonly errorCode: ErrorCode;
  constructor(message: string, exitCode: number, code: ErrorCode) {
    super(message);
    this.exitCode = exitCode;
    this.errorCode = code;
    this.name = new.target.name;
  }
}

/** manage.py's CommandError: the command refused or failed (exit 1). */
export class CommandError extends CliError {
  constructor(message: string, code: ErrorCode = "refused") {
    super(message, 1, code);
  }
}

/** Bad arguments (exit 2), printed argparse-style with the command's usage line. */
export class UsageError extends CliError {
  constructor(message: string, code: ErrorCode = "usage") {
    super(message, 2, code);
  }
}

/** Config unreadable, database unreachable, not a Zulip database, … (exit 3). */
export class EnvironmentError extends CliError {
  constructor(message: string, code: ErrorCode = "environment") {
    super(message, 3, code);
  }
}

export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, ENVIRONMENT: 3 } as const;

/** What was thrown, as text: its message when it has one (`e?.message ?? e` without `any`). */
export function errorMessage(e: unknown): string {
  if (typeof e === "object" && e !== null && "message" in e && e.message !== undefined && e.message !== null) return String(e.message);
  return String(e);
}

/** The `code` of what was thrown: a Node system error's (ENOENT, …) or a PostgreSQL error's SQLSTATE; undefined when it has none. */
export function errorCode(e: unknown): string | undefined {
  if (typeof e === "object" && e !== null && "code" in e && e.code !== undefined && e.code !== null) return String(e.code);
  return undefined;
}

/** Whether an @inquirer/prompts prompt was interrupted (Ctrl-C / Ctrl-D). */
export function isPromptInterrupted(e: unknown): boolean {
  return typeof e === "object" && e !== null && "name" in e && (e.name === "ExitPromptError" || e.name === "AbortPromptError");
}
