// Running one command: commander parsing, the root switch, manage.log, the Context, and the
// mapping of errors to exit codes. Loaded by src/cli/main.ts only when a command actually runs, so
// `--version` and `help` never pay for commander, chalk or the config parsers.
import { Command, CommanderError, Option } from "commander";
import type { CommandEntry, CommandModule } from "./command.js";
import { Context, type GlobalOptions } from "./context.js";
import { CliError, ERROR_CODES, type ErrorCode, errorMessage, EXIT, UsageError } from "../lib/errors.js";
import { argvWantsJson, document, documentText } from "./json-contract.js";
import { logInvocation } from "../lib/managelog.js";
import { loadChalkIfNeeded } from "./output.js";
import { resolvePaths } from "../config/paths.js";
import { decideRunAs, rootRefusal, switchUser } from "./runas.js";
import { currentUid } from "../lib/users.js";

const PROG = "zulip-manage";

function addGlobalOptions(cmd: Command): void {
  cmd.option("--json", "print one JSON document on stdout instead of text");
  cmd.option("--conf-dir <dir>", "Zulip configuration directory (default: /etc/zulip or $ZULIP_CONF_DIR)");
  cmd.option("--no-color", "never colour the output");
  cmd.option("--traceback", "show a stack trace when the command fails");
  cmd.option("--allow-root", "run as root instead of switching to the Zulip user");
  cmd.option(
    "--setting <NAME=VALUE>",
    "use VALUE (a Python literal or plain text) for a settings.py setting that is not a plain literal; repeatable",
    (v: string, prev: string[] = []) => [...prev, v],
  );
  // Accepted for compatibility with manage.py invocations; they change nothing here.
  cmd.addOption(new Option("--automated").hideHelp());
  cmd.addOption(new Option("--no-automated").hideHelp());
  cmd.addOption(new Option("--force-color").hideHelp());
  cmd.addOption(new Option("--skip-checks").hideHelp());
  cmd.addOption(new Option("-v, --verbosity <level>").choices(["0", "1", "2", "3"]).hideHelp());
}

export function buildCommand(mod: CommandModule): Command {
  // A parent program only so that usage lines read "zulip-manage <command> …".
  const program = new Command(PROG);
  const cmd = new Command(mod.name);
  program.addCommand(cmd);
  cmd.description(mod.description);
  // The same class at run time; extra-typings only adds the types.
  mod.configure?.(cmd as unknown as Parameters<NonNullable<CommandModule["configure"]>>[0]);
  addGlobalOptions(cmd);
  cmd.helpOption("-h, --help", "show this help and exit");
  cmd.showSuggestionAfterError(true);
  cmd.allowExcessArguments(false);
  if (mod.examples.length) {
    cmd.addHelpText("after", "\nExamples:\n" + mod.examples.map((e) => `  ${e}`).join("\n"));
  }
  cmd.exitOverride();
  cmd.configureOutput({
    writeOut: (s) => process.stdout.write(s),
    writeErr: (s) => process.stderr.write(s),
    outputError: (s, write) => write(formatUsageError(mod.name, s.replace(/^error: /, "").trim())),
  });
  return cmd;
}

function formatUsageError(name: string, message: string): string {
  return `usage: ${PROG} ${name} [options]\n${PROG} ${name}: error: ${message}\nRun '${PROG} ${name} --help' for the options.\n`;
}

/** Print a command's full help (options, examples). */
export async function printCommandHelp(entry: CommandEntry): Promise<void> {
  buildCommand((await entry.load()).default).outputHelp();
}

/** Parse and run one command; returns the exit code. */
export async function runCommand(entry: CommandEntry, argv: string[]): Promise<number> {
  const mod = (await entry.load()).default;
  const cmd = buildCommand(mod);

  let parsedArgs: string[] = [];
  let opts: Record<string, unknown> = {};
  // commander calls the action with the declared arguments' values, then the options, then the command.
  cmd.action((...actionArgs: unknown[]) => {
    const c = actionArgs[actionArgs.length - 1] as Command;
    opts = c.opts();
    parsedArgs = actionArgs.slice(0, c.registeredArguments.length) as string[];
  });
  try {
    await cmd.parseAsync(argv.slice(1), { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.help" || e.code === "commander.version") return EXIT.OK;
      if (argvWantsJson(argv)) printErrorDocument(EXIT.USAGE, e.message.replace(/^error: /, "").trim(), "usage");
      return EXIT.USAGE;
    }
    throw e;
  }

  // The global options addGlobalOptions() declares: --conf-dir <dir> a string, --no-color a
  // boolean, --setting a list of strings (absent: undefined).
  const globals: GlobalOptions = {
    confDir: opts.confDir as string | undefined,
    json: Boolean(opts.json),
    color: opts.color as boolean | undefined,
    traceback: Boolean(opts.traceback),
    allowRoot: Boolean(opts.allowRoot) || process.env.ZULIP_MANAGE_ALLOW_ROOT === "1",
    settings: opts.setting as string[] | undefined,
  };

  const paths = resolvePaths(globals.confDir);
  const decision = decideRunAs(paths.deployDir, Boolean(globals.allowRoot), currentUid());
  if (decision.action === "switch" && decision.user) {
    try {
      switchUser(decision.user);
    } catch (e) {
      const message = `${PROG}: cannot switch to user '${decision.user.name}': ${errorMessage(e)}`;
      process.stderr.write(message + "\n");
      if (globals.json) printErrorDocument(EXIT.FAILED, message, "switch_user_failed");
      return EXIT.FAILED;
    }
    if (!entry.helper) process.stderr.write(`${PROG}: running as '${decision.user.name}' (${decision.reason}) instead of root.\n`);
  } else if (currentUid() === 0 && !globals.allowRoot && !entry.helper) {
    const refusal = rootRefusal(argv);
    process.stderr.write(refusal.message + "\n");
    if (globals.json) printErrorDocument(EXIT.FAILED, refusal.message, refusal.errorCode);
    return EXIT.FAILED;
  }

  if (!entry.helper) logInvocation(paths.logDir, argv);

  const ctx = new Context(globals, process.env, await loadChalkIfNeeded(globals.color), () => cmd.helpInformation());
  try {
    const result = await mod.run(ctx, parsedArgs, opts);
    const code = typeof result === "number" ? result : EXIT.OK;
    // The contract document (a no-op when the command printed its own with jsonResult).
    ctx.out.finishJson(code, null);
    return code;
  } catch (e) {
    return reportError(ctx, mod.name, e);
  } finally {
    await ctx.close();
  }
}

/** The error document, for failures before a command's Context exists. */
function printErrorDocument(exitCode: number, error: string, errorCode: ErrorCode): void {
  process.stdout.write(documentText(document(exitCode, { error, error_code: errorCode }, null)));
}

/** What carries its own exit code: a CliError, or a configuration parser's error (exitCode 3, errorCode). */
function withExitCode(e: unknown): e is { exitCode: number; errorCode?: unknown } {
  return typeof e === "object" && e !== null && "exitCode" in e && typeof e.exitCode === "number";
}

function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === "string" && Object.hasOwn(ERROR_CODES, code);
}

function reportError(ctx: Context, name: string, e: unknown): number {
  const traceback = ctx.globals.traceback;
  let code: number;
  let message: string;
  let errorCode: ErrorCode;
  if (e instanceof UsageError) {
    process.stderr.write(formatUsageError(name, e.message));
    code = EXIT.USAGE;
    message = e.message;
    errorCode = e.errorCode;
  } else if (e instanceof CliError || withExitCode(e)) {
    message = errorMessage(e);
    code = e.exitCode;
    // CliError's own code; the configuration parsers' errors carry one too (errorCode).
    errorCode = isErrorCode(e.errorCode) ? e.errorCode : code === EXIT.ENVIRONMENT ? "environment" : "refused";
    process.stderr.write(message + "\n");
  } else {
    message = errorMessage(e);
    code = EXIT.FAILED;
    errorCode = "internal_error";
    process.stderr.write(`${PROG} ${name}: unexpected error: ${message}\n`);
    if (!traceback) process.stderr.write("Run again with --traceback for details.\n");
  }
  if (traceback && typeof e === "object" && e !== null && "stack" in e && e.stack) process.stderr.write(String(e.stack) + "\n");
  // The command's document with this failure (its body, if it gave one); nothing when it
  // printed its own document already.
  ctx.out.finishJson(code, { error: message, error_code: errorCode });
  return code;
}
