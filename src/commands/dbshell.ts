// dbshell: run psql on the Zulip database with exactly the connection zulip-manage itself uses
// (src/db/db.ts planConnection: zulip.conf [postgresql], REMOTE_POSTGRES_* settings, the
// postgres_password secret, and PGHOST/PGPORT/PGDATABASE/PGUSER/PGPASSWORD/PGSSLMODE overrides),
// with search_path zulip, public, like manage.py dbshell on a Zulip server.
//
// Everything is passed to psql through libpq's environment variables — the password only as
// PGPASSWORD, never on the command line where `ps` would show it. Arguments after `--` go to
// psql unchanged:
//
//   zulip-manage dbshell
//   zulip-manage dbshell -- -c 'SELECT count(*) FROM zerver_userprofile'
//
// The exit status is psql's. psql missing from PATH: exit 3 with how to install it.
// --json prints {…envelope, "command": ["psql", ...], "connection": …, "env": {"PGHOST": ..., "PGPASSWORD": "(secret, not shown)"}}
// instead of starting psql (for checking what would be run).
import { spawn } from "node:child_process";
import { defineUntypedCommand } from "../cli/command.js";
import { type ConnectionPlan, libpqEnvironment, planConnection } from "../db/db.js";
import { EnvironmentError } from "../lib/errors.js";
import type { DbshellBody } from "../schemas/dbshell.js";

export const PSQL_INSTALL_HINT =
  "psql (the PostgreSQL command-line client) is not installed or not on PATH.\n" +
  "Install it with: apt-get install postgresql-client   (Debian/Ubuntu; any version 12 or newer works)\n" +
  "or run: /usr/lib/postgresql/<version>/bin/psql with the environment shown by 'zulip-manage dbshell --json'.";

/** libpq environment for a connection plan (what psql gets). */
export function psqlEnvironment(plan: ConnectionPlan): Record<string, string> {
  return libpqEnvironment(plan, "zulip-manage dbshell", { searchPath: true });
}

export default defineUntypedCommand({
  name: "dbshell",
  description:
    "Start psql on the Zulip database, connected exactly as zulip-manage connects (search_path zulip, public).\n" +
    "Arguments after -- are passed to psql.",
  examples: [
    "zulip-manage dbshell",
    "zulip-manage dbshell -- -c 'SELECT id, string_id FROM zerver_realm'",
    "zulip-manage dbshell -- -f fix.sql -v ON_ERROR_STOP=1",
  ],
  configure(cmd) {
    cmd.argument("[psql_args...]", "arguments for psql (after --)");
  },
  async run(ctx, args, _opts) {
    const extra = (Array.isArray(args[0]) ? (args[0] as unknown as string[]) : args.filter((a) => a !== undefined)) ?? [];
    const config = ctx.config();
    const plan = planConnection(config, ctx.env);
    const env = psqlEnvironment(plan);
    if (ctx.out.json) {
      ctx.out.jsonBody<DbshellBody>({
        command: ["psql", ...extra],
        connection: plan.describe,
        env: { ...env, ...(env.PGPASSWORD !== undefined ? { PGPASSWORD: "(secret, not shown)" } : {}) },
      });
      return;
    }
    return runPsql(extra, env);
  },
});

/**
 * Run psql with the terminal (stdin/stdout/stderr inherited) and return its exit status.
 * node:child_process rather than execa: execa is only a development dependency here.
 */
export function runPsql(args: string[], env: Record<string, string>, psql = "psql"): Promise<number> {
  // The terminal's Ctrl-C reaches psql and us alike: psql cancels the query, we keep waiting.
  const ignore = () => undefined;
  process.on("SIGINT", ignore);
  process.on("SIGQUIT", ignore);
  const done = () => {
    process.removeListener("SIGINT", ignore);
    process.removeListener("SIGQUIT", ignore);
  };
  return new Promise<number>((resolve, reject) => {
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(psql, args, { stdio: "inherit", env: { ...process.env, ...env } });
    } catch (e: any) {
      done();
      reject(e?.code === "ENOENT" ? new EnvironmentError(PSQL_INSTALL_HINT, "psql_missing") : new EnvironmentError(`Could not run psql: ${e?.message ?? e}`));
      return;
    }
    child.once("error", (e: NodeJS.ErrnoException) => {
      done();
      reject(e.code === "ENOENT" ? new EnvironmentError(PSQL_INSTALL_HINT, "psql_missing") : new EnvironmentError(`Could not run psql: ${e.message}`));
    });
    child.once("close", (code, signal) => {
      done();
      resolve(code ?? 128 + (signal ? (signalNumber(signal) ?? 1) : 1));
    });
  });
}

function signalNumber(name: string): number | undefined {
  const map: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15 };
  return map[name];
}
