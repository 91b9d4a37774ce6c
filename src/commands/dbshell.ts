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
import { defineCommand } from "../cli/command.js";
import { planConnection } from "../db/db.js";
import { psqlEnvironment, runPsql } from "../ops/dbshell.js";
import type { DbshellBody } from "../schemas/dbshell.js";

export default defineCommand({
  name: "dbshell",
  description:
    "Start psql on the Zulip database, connected exactly as zulip-manage connects (search_path zulip, public).\n" + "Arguments after -- are passed to psql.",
  examples: [
    "zulip-manage dbshell",
    "zulip-manage dbshell -- -c 'SELECT id, string_id FROM zerver_realm'",
    "zulip-manage dbshell -- -f fix.sql -v ON_ERROR_STOP=1",
  ],
  configure: (cmd) => cmd.argument("[psql_args...]", "arguments for psql (after --)"),
  async run(ctx, args) {
    const extra = args[0] ?? [];
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
