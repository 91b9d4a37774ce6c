// The options several commands share, declared once: manage.py's -r/--realm and -u/--users /
// -a/--all-users, create_user / create_realm's user arguments, and our --flush-cache and --events. Each helper returns the command it was
// given with the option's type added (@commander-js/extra-typings), so that a command's
// configure() is one chain and its run() receives typed options.
import { type Command, InvalidArgumentError, type OptionValues, Option } from "@commander-js/extra-typings";
import { FLUSH_MODES } from "../zulip/cache.js";
import { parsePythonInt, REALM_HELP } from "../zulip/lookup.js";
import { EVENTS_MODES } from "../services/events.js";
import { validateEmailAddress } from "../zulip/email-address.js";
import { CommandError } from "../lib/errors.js";
import { READ_LIMITS, readOptionFile } from "../lib/files.js";
import type { Context } from "./context.js";
import { StdinLineReader } from "./prompt.js";

/** manage.py's -r/--realm (optional, as in ZulipBaseCommand.add_realm_args). */
export function addRealmOption<A extends unknown[], O extends OptionValues>(cmd: Command<A, O>, help: string = REALM_HELP) {
  return cmd.option("-r, --realm <realm>", help);
}

/** manage.py's -r/--realm with required=True. */
export function addRequiredRealmOption<A extends unknown[], O extends OptionValues>(cmd: Command<A, O>, help: string = REALM_HELP) {
  return cmd.requiredOption("-r, --realm <realm>", help);
}

/** manage.py's -u/--users and -a/--all-users (ZulipBaseCommand.add_user_list_args). */
export function addUserListOptions<A extends unknown[], O extends OptionValues>(cmd: Command<A, O>, help: { users?: string; all?: string } = {}) {
  return cmd
    .option("-u, --users <emails>", help.users ?? "A comma-separated list of email addresses.")
    .option("-a, --all-users", help.all ?? "All users in realm.");
}

/** --flush-cache=keys|all|none on a write command (see src/zulip/cache.ts). */
export function addFlushCacheOption<A extends unknown[], O extends OptionValues>(cmd: Command<A, O>) {
  return cmd.addOption(
    new Option(
      "--flush-cache <mode>",
      "after writing, update the Zulip server's memcached: 'keys' deletes exactly the cached entries the change affects " +
        "(what Zulip does itself), 'all' flushes the whole cache (safe; Zulip refills it), 'none' leaves it alone",
    )
      .choices(FLUSH_MODES)
      .default("keys" as const),
  );
}

/** --events=auto|rabbitmq|http|none on a write command (see src/services/events.ts). */
export function addEventsOption<A extends unknown[], O extends OptionValues>(cmd: Command<A, O>) {
  return cmd.addOption(
    new Option(
      "--events <transport>",
      "after writing, tell open browsers and apps (Zulip's real-time events) and Zulip's queue workers: 'rabbitmq' publishes " +
        "to RabbitMQ as Zulip does, 'http' posts the events to Tornado directly, 'auto' uses RabbitMQ and falls back to " +
        "Tornado, 'none' sends nothing (clients update when they reload)",
    )
      .choices(EVENTS_MODES)
      .default("auto" as const),
  );
}

/** add_create_user_args: [email] [full_name], --password, --password-file. */
export function addCreateUserArguments<A extends unknown[], O extends OptionValues>(cmd: Command<A, O>) {
  return cmd
    .argument("[email]", "Email address for the new user")
    .argument("[full_name]", "Full name for the new user")
    .option(
      "--password <password>",
      "Password for the new user. Recommended only in a development environment.\n\n" +
        "Sending passwords via command-line arguments is insecure, since it can be snooped by any process running on the " +
        "server via `ps -ef` or reading bash history. Prefer --password-file.",
    )
    .option("--password-file <file>", "File containing a password for the new user.");
}

export interface CreateUserParams {
  email: string;
  fullName: string;
  /** null = an unusable password */
  password: string | null;
}

/** ZulipBaseCommand.get_create_user_params: missing <email> / <full name> are asked for on stdin. */
export async function getCreateUserParams(
  ctx: Context,
  args: readonly (string | undefined)[],
  opts: { password?: string; passwordFile?: string },
): Promise<CreateUserParams> {
  const reader = new StdinLineReader();
  try {
    const email = args[0] ?? (await reader.ask("Email: ", ctx.out.json));
    // Django's validate_email, the one validator every command uses (change_user_email too).
    if (validateEmailAddress(email) !== null) throw new CommandError("Invalid email address.");
    const fullName = args[1] ?? (await reader.ask("Full name: ", ctx.out.json));
    let password: string | null = null;
    if (opts.passwordFile !== undefined) {
      password = readOptionFile(opts.passwordFile, READ_LIMITS.password, "the password file").trim();
    } else if (opts.password !== undefined) {
      ctx.out.warn("WARNING: Passing password on the command line is insecure; prefer --password-file.");
      password = opts.password;
    }
    return { email, fullName, password };
  } finally {
    reader.close();
  }
}

/**
 * Python's int(text), as argparse's type=int applies it: null where int() raises ValueError.
 * Built on lookup.ts parsePythonInt (sign, digits with single underscores between them,
 * surrounding whitespace), with what int() does before parsing
 * (_PyUnicode_TransformDecimalAndSpaceToASCII): every Unicode decimal digit counts as its ASCII
 * digit ("１２" and "٣" are ints), every non-ASCII whitespace character (str.isspace) as a space.
 * Of ASCII characters only " \t\n\v\f\r" are whitespace to int() (not \x1c-\x1f, which
 * str.isspace accepts; parsePythonInt's \s agrees), and U+FEFF is none (JavaScript's \s has it).
 */
export function pythonInt(text: string): number | null {
  let ascii = "";
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp < 0x80) ascii += ch;
    else if (/\p{Nd}/u.test(ch)) ascii += String(decimalDigitValue(cp));
    else if (cp === 0x85 || (cp !== 0xfeff && /\s/u.test(ch))) ascii += " ";
    else return null;
  }
  return parsePythonInt(ascii);
}

/** The value of a Unicode decimal digit: Nd characters come in contiguous runs of ten, 0 to 9. */
function decimalDigitValue(cp: number): number {
  let start = cp;
  while (/\p{Nd}/u.test(String.fromCodePoint(start - 1))) start--;
  return (cp - start) % 10;
}

/** argparse's type=int for an option's value (commander's argParser): "invalid int value: '…'" otherwise. */
export function pythonIntArg(value: string): number {
  const n = pythonInt(value);
  if (n === null) throw new InvalidArgumentError(`invalid int value: '${value}'`);
  return n;
}
