// zulip-manage entry point: global help and version without loading any command, then the one
// command asked for, parsed with commander, run with a Context, and its errors mapped to exit codes.
import fs from "node:fs";
import { version } from "../lib/version.js";
import { COMMANDS, findCommand } from "../commands/index.js";
import { GROUP_ORDER } from "./command.js";
import { type ErrorCode, errorMessage, EXIT } from "../lib/errors.js";
import { argvWantsJson, document, documentText } from "./json-contract.js";

const PROG = "zulip-manage";

const GLOBAL_HELP = [
  ["--json", "print one JSON document on stdout instead of text ('help <command> --json-schema' prints its schema)"],
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

function suggest(name: string): string[] {
  const dist = (a: string, b: string) => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0][j] = j;
    for (let i = 1; i <= a.length; i++)
      for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    return d[a.length][b.length];
  };
  return COMMANDS.map((c) => c.name).filter((n) => dist(n, name) <= 3 || n.includes(name) || name.includes(n));
}

/** A failure before any command runs: the message on stderr, and with --json the error document on stdout. */
function earlyFailure(argv: string[], exitCode: number, message: string, errorCode: ErrorCode, hint = ""): number {
  process.stderr.write(message + "\n" + hint);
  if (argvWantsJson(argv)) process.stdout.write(documentText(document(exitCode, { error: message, error_code: errorCode }, null)));
  return exitCode;
}

function unknownCommand(argv: string[], name: string | undefined): number {
  if (name === undefined || name.startsWith("-")) {
    return earlyFailure(argv, EXIT.USAGE, `No command given${name === undefined ? "" : ` before '${name}'`}.`, "usage", `Type '${PROG} help' for usage.\n`);
  }
  const close = suggest(name);
  return earlyFailure(
    argv,
    EXIT.USAGE,
    `Unknown command: '${name}'`,
    "unknown_command",
    (close.length ? `Did you mean ${close.map((c) => `'${c}'`).join(" or ")}?\n` : "") + `Type '${PROG} help' for usage.\n`,
  );
}

/** The directory the build writes the commands' JSON Schemas to (dist/json-schema), from dist/ or dist/bundle/. */
function schemaFile(name: string): string | null {
  for (const rel of ["./json-schema/", "../json-schema/"]) {
    try {
      const file = new URL(`${rel}${name}.schema.json`, import.meta.url);
      if (fs.statSync(file).isFile()) return fs.readFileSync(file, "utf8");
    } catch {
      /* try the next level */
    }
  }
  return null;
}

/** `help [<command>] --json-schema`: the command's published schema (without a command: the error document's). */
function printSchema(argv: string[], name: string | undefined): number {
  const text = schemaFile(name ?? "error");
  if (text === null) {
    return earlyFailure(
      argv,
      EXIT.FAILED,
      `${name}'s --json document has no published schema yet (error documents follow \`${PROG} help --json-schema\`).`,
      "schema_unavailable",
    );
  }
  process.stdout.write(text.endsWith("\n") ? text : text + "\n");
  return EXIT.OK;
}

/** Run one invocation; returns the exit code. */
export async function run(argv: string[]): Promise<number> {
  const first = argv[0];
  if (first === undefined || (first === "help" && argv.length === 1) || first === "--help" || first === "-h") {
    process.stdout.write(globalHelp());
    return EXIT.OK;
  }
  if (first === "--version" || first === "-V" || first === "version") {
    process.stdout.write(version() + "\n");
    return EXIT.OK;
  }
  if (first === "help") {
    if (argv[1] === "--commands") {
      process.stdout.write(
        COMMANDS.map((c) => c.name)
          .sort()
          .join("\n") + "\n",
      );
      return EXIT.OK;
    }
    // Command names only: flags such as --json, --allow-root or --no-color do not count.
    const rest = argv.slice(1).filter((a) => !a.startsWith("-"));
    if (argv.includes("--json-schema")) {
      if (rest.length > 1) return earlyFailure(argv, EXIT.USAGE, `help --json-schema takes one command name, got ${rest.length}.`, "usage");
      if (rest[0] !== undefined && !findCommand(rest[0])) return unknownCommand(argv, rest[0]);
      return printSchema(argv, rest[0]);
    }
    const entry = findCommand(argv[1]);
    if (!entry) return unknownCommand(argv, argv[1]);
    const { printCommandHelp } = await import("./runner.js");
    await printCommandHelp(entry);
    return EXIT.OK;
  }
  const entry = findCommand(first);
  if (!entry) return unknownCommand(argv, first);
  // Fetch the runner, the command's own chunk and (for database commands) pg at the same time.
  const wantsHelp = argv.includes("--help") || argv.includes("-h");
  if (!entry.noDb && !wantsHelp) void import("../db/pg-loader.js").then((m) => m.loadPg());
  const [{ runCommand }] = await Promise.all([import("./runner.js"), entry.load()]);
  return runCommand(entry, argv);
}

export async function main(argv: string[]): Promise<void> {
  // `zulip-manage … | head`: a closed pipe is not an error worth a stack trace.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EPIPE") process.exit(typeof process.exitCode === "number" ? process.exitCode : 0);
      throw e;
    });
  }
  let code: number;
  try {
    code = await run(argv);
  } catch (e) {
    process.stderr.write(`${PROG}: ${e instanceof Error && e.stack ? e.stack : String(e)}\n`);
    code = EXIT.FAILED;
    if (argvWantsJson(argv)) {
      process.stdout.write(documentText(document(code, { error: errorMessage(e), error_code: "internal_error" }, null)));
    }
  }
  process.exitCode = code;
}

/**
 * Build step only (scripts/loader.cjs): exercise what every database command does on start-up
 * — load pg and build a client, read a typical settings.py and INI files, define every
 * command's options — so that the V8 code cache written afterwards covers it.
 */
export async function warmUp(): Promise<void> {
  const [{ loadPg }, { parsePySettings }, { computeSettings }, { parseIni }, { buildCommand }] = await Promise.all([
    import("../db/pg-loader.js"),
    import("../config/pysettings.js"),
    import("../config/settings.js"),
    import("../config/ini.js"),
    import("./runner.js"),
  ]);
  const pg = await loadPg();
  new pg.Client({ host: "/nonexistent", database: "zulip", user: "zulip" });
  const sample = [
    "from typing import Any",
    "EXTERNAL_HOST = 'zulip.example.com'",
    'ZULIP_ADMINISTRATOR = "admin@example.com"',
    "REALM_HOSTS: dict[str, str] = {\n    'a': 'b.example.com',  # comment\n}",
    "AUTHENTICATION_BACKENDS: tuple[str, ...] = (\n    'zproject.backends.EmailAuthBackend',\n)",
    "EMAIL_PORT = 587",
    "EMAIL_USE_TLS = True",
  ].join("\n");
  const conf = parseIni("[machine]\ndeploy_type = production\n[postgresql]\ndatabase_name = zulip\n");
  const settings = computeSettings(parsePySettings(sample), parseIni("[secrets]\nsecret_key = x\n").get("secrets") ?? new Map(), conf, {
    settingsPath: "settings.py",
  });
  for (const name of ["EXTERNAL_HOST", "REALM_HOSTS", "EXTERNAL_URI_SCHEME", "AUTHENTICATION_BACKENDS", "REMOTE_POSTGRES_HOST"] as const) settings.get(name);
  for (const entry of COMMANDS) buildCommand((await entry.load()).default);

  // A whole command run up to the database connection, which fails at once (nothing listens on
  // port 1): argument parsing, the root check (skipped), manage.log, configuration loading and
  // the pg client's connect path. Everything it touches lives in a temporary directory.
  const os = await import("node:os");
  const path = await import("node:path");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "zulip-manage-warmup-"));
  const saved = { ...process.env };
  const stderrWrite = process.stderr.write;
  try {
    fs.writeFileSync(path.join(dir, "settings.py"), sample + "\n");
    fs.writeFileSync(path.join(dir, "zulip.conf"), "[machine]\ndeploy_type = production\n");
    fs.writeFileSync(path.join(dir, "zulip-secrets.conf"), "[secrets]\nsecret_key = x\n");
    Object.assign(process.env, { PGHOST: "127.0.0.1", PGPORT: "1", ZULIP_LOG_DIR: dir, ZULIP_DEPLOY_DIR: dir });
    process.stderr.write = () => true;
    await run(["list_realms", "--conf-dir", dir, "--allow-root"]);
  } finally {
    process.stderr.write = stderrWrite;
    for (const k of ["PGHOST", "PGPORT", "ZULIP_LOG_DIR", "ZULIP_DEPLOY_DIR"]) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
