// psql on the Zulip database with exactly the connection zulip-manage itself uses (dbshell):
// the libpq environment of a connection plan (src/db/db.ts planConnection; the password only as
// PGPASSWORD, never on the command line where `ps` would show it; search_path zulip, public), and
// psql run on the terminal with its exit status returned.
import { spawn } from "node:child_process";
import { type ConnectionPlan, libpqEnvironment } from "../db/db.js";
import { EnvironmentError } from "../lib/errors.js";

const PSQL_INSTALL_HINT =
  "psql (the PostgreSQL command-line client) is not installed or not on PATH.\n" +
  "Install it with: apt-get install postgresql-client   (Debian/Ubuntu; any version 12 or newer works)\n" +
  "or run: /usr/lib/postgresql/<version>/bin/psql with the environment shown by 'zulip-manage dbshell --json'.";

/** libpq environment for a connection plan (what psql gets). */
export function psqlEnvironment(plan: ConnectionPlan): Record<string, string> {
  return libpqEnvironment(plan, "zulip-manage dbshell", { searchPath: true });
}

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
