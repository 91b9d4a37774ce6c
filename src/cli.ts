// zulip-manage entry point: global help and version without loading any command, then the one
// command asked for, parsed with commander, run with a Context, and its errors mapped to exit codes.
import fs from "node:fs";
import { Command, CommanderError, Option } from "commander";
import { COMMANDS, findCommand } from "./commands/index.js";
import { type CommandModule, GROUP_ORDER } from "./lib/command.js";
import { Context, type GlobalOptions } from "./lib/context.js";
import { CliError, EXIT, UsageError } from "./lib/errors.js";
import { logInvocation } from "./lib/managelog.js";
import { resolvePaths } from "./lib/paths.js";
import { decideRunAs, rootRefusal, switchUser } from "./lib/runas.js";
import { currentUid } from "./lib/users.js";

const PROG = "zulip-manage";

export function version(): string {
  try {
    return JSON.parse(fs.readFileSync(new URL("../package.json", import.meta.url), "utf8")).version;
  } catch {
    return "unknown";
  }
}

const GLOBAL_HELP = [
  ["--json", "print one JSON document on stdout instead of text"],
  ["--conf-dir <dir>", "Zulip configuration directory (default /etc/zulip, or $ZULIP_CONF_DIR)"],
  ["--no-color", "never colour the output (also: NO_COLOR=1); colour is only used on a terminal"],
  ["--traceback", "show a stack trace when a command fails"],
  ["--setting NAME=VALUE", "use VALUE for a settings.py setting zulip-manage cannot read safely (repeatable)"],
  ["--allow-root", "run as root instead of switching to the Zulip user (also: ZULIP_MANAGE_ALLOW_ROOT=1)"],
];

export function globalHelp(): string {
  const lines: string[] = [];
  lines.push(`${PROG} ${version()} — Zulip server management commands, compatible with manage.py`);
  lines.push("");
  lines.push(`Usage: ${PROG} <command> [options]`);
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  for (const group of GROUP_ORDER) {
    const cmds = COMMANDS.filter((c) => c.group === group).sort((a, b) => a.name.localeCompare(b.name));
    if (cmds.length === 0) continue;
    lines.push("");
    lines.push(`${group}:`);
    for (const c of cmds) lines.push(`  ${c.name.padEnd(width)}${c.summary}`);
  }
  lines.push("");
  lines.push("Options every command accepts:");
  for (const [flag, text] of GLOBAL_HELP) lines.push(`  ${flag.padEnd(22)}${text}`);
  lines.push("");
  lines.push(`Type '${PROG} help <command>' (or '${PROG} <command> --help') for help on a specific command.`);
  lines.push(`Exit codes: 0 success, 1 refused or failed, 2 usage error, 3 environment error (config, database).`);
  return lines.join("\n") + "\n";
}

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
  mod.configure?.(cmd);
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

function suggest(name: string): string[] {
  const dist = (a: string, b: string) => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0][j] = j;
    for (let i = 1; i <= a.length; i++)
      for (let j = 1; j <= b.length; j++)
        d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    return d[a.length][b.length];
  };
  return COMMANDS.map((c) => c.name).filter((n) => dist(n, name) <= 3 || n.includes(name) || name.includes(n));
}

function unknownCommand(name: string): number {
  const close = suggest(name);
  process.stderr.write(
    `Unknown command: '${name}'\n` +
      (close.length ? `Did you mean ${close.map((c) => `'${c}'`).join(" or ")}?\n` : "") +
      `Type '${PROG} help' for usage.\n`,
  );
  return EXIT.USAGE;
}

/** Run one invocation; returns the exit code. */
export async function run(argv: string[]): Promise<number> {
  const first = argv[0];
  if (first === undefined || first === "help" && argv.length === 1 || first === "--help" || first === "-h") {
    process.stdout.write(globalHelp());
    return EXIT.OK;
  }
  if (first === "--version" || first === "-V" || first === "version") {
    process.stdout.write(version() + "\n");
    return EXIT.OK;
  }
  if (first === "help") {
    if (argv[1] === "--commands") {
      process.stdout.write(COMMANDS.map((c) => c.name).sort().join("\n") + "\n");
      return EXIT.OK;
    }
    const entry = findCommand(argv[1]);
    if (!entry) return unknownCommand(argv[1]);
    const cmd = buildCommand((await entry.load()).default);
    cmd.outputHelp();
    return EXIT.OK;
  }
  const entry = findCommand(first);
  if (!entry) return unknownCommand(first);
  const mod = (await entry.load()).default;
  const cmd = buildCommand(mod);

  let parsedArgs: string[] = [];
  let opts: Record<string, any> = {};
  cmd.action((...actionArgs: any[]) => {
    const c = actionArgs[actionArgs.length - 1] as Command;
    opts = c.opts();
    parsedArgs = actionArgs.slice(0, c.registeredArguments.length) as string[];
  });
  try {
    await cmd.parseAsync(argv.slice(1), { from: "user" });
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.help" || e.code === "commander.version") return EXIT.OK;
      return EXIT.USAGE;
    }
    throw e;
  }

  const globals: GlobalOptions = {
    confDir: opts.confDir,
    json: Boolean(opts.json),
    color: opts.color,
    traceback: Boolean(opts.traceback),
    allowRoot: Boolean(opts.allowRoot) || process.env.ZULIP_MANAGE_ALLOW_ROOT === "1",
    settings: opts.setting,
  };

  const paths = resolvePaths(globals.confDir);
  const decision = decideRunAs(paths.deployDir, Boolean(globals.allowRoot), currentUid());
  if (decision.action === "switch" && decision.user) {
    try {
      switchUser(decision.user);
    } catch (e: any) {
      process.stderr.write(`${PROG}: cannot switch to user '${decision.user.name}': ${e?.message ?? e}\n`);
      return EXIT.FAILED;
    }
    process.stderr.write(`${PROG}: running as '${decision.user.name}' (${decision.reason}) instead of root.\n`);
  } else if (currentUid() === 0 && !globals.allowRoot) {
    process.stderr.write(rootRefusal(argv).message + "\n");
    return EXIT.FAILED;
  }

  logInvocation(paths.logDir, argv);

  const ctx = new Context(globals);
  try {
    const code = await mod.run(ctx, parsedArgs, opts);
    return typeof code === "number" ? code : EXIT.OK;
  } catch (e: any) {
    return reportError(ctx, mod.name, e);
  } finally {
    await ctx.close();
  }
}

function reportError(ctx: Context, name: string, e: any): number {
  const traceback = ctx.globals.traceback;
  let code: number;
  let message: string;
  if (e instanceof UsageError) {
    process.stderr.write(formatUsageError(name, e.message));
    code = EXIT.USAGE;
    message = e.message;
  } else if (e instanceof CliError || (e && typeof e.exitCode === "number")) {
    message = e.message;
    code = e.exitCode;
    process.stderr.write(message + "\n");
  } else {
    message = String(e?.message ?? e);
    code = EXIT.FAILED;
    process.stderr.write(`${PROG} ${name}: unexpected error: ${message}\n`);
    if (!traceback) process.stderr.write("Run again with --traceback for details.\n");
  }
  if (traceback && e?.stack) process.stderr.write(e.stack + "\n");
  if (ctx.globals.json) {
    try {
      ctx.out.jsonResult({ ok: false, error: message, exit_code: code });
    } catch {
      /* the command already printed its document */
    }
  }
  return code;
}

export async function main(argv: string[]): Promise<void> {
  let code: number;
  try {
    code = await run(argv);
  } catch (e: any) {
    process.stderr.write(`${PROG}: ${e?.stack ?? e}\n`);
    code = EXIT.FAILED;
  }
  process.exitCode = code;
}
