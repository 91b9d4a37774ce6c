// vitest globalSetup: one throwaway PostgreSQL cluster per test run, shared with the test files
// through provide('zmPg') / inject('zmPg') and the ZM_TEST_PG environment variable.
// Template databases are built lazily by createDatabase() (see pg.ts).
import type { TestProject } from "vitest/node";
import { PG_INFO_ENV, startPostgres, type PgCluster } from "./pg.js";
import { sweepStaleTempDirs } from "./services.js";

let cluster: PgCluster | undefined;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Leftovers of runs that were killed too hard to clean up after themselves.
  sweepStaleTempDirs();
  cluster = await startPostgres();
  const info = cluster.info();
  project.provide("zmPg", info);
  process.env[PG_INFO_ENV] = JSON.stringify(info);
  if (process.env.ZM_TEST_VERBOSE) {
    process.stderr.write(`test PostgreSQL ${info.version} (${info.source}) on ${info.host}:${info.port}\n`);
  }
  return async () => {
    delete process.env[PG_INFO_ENV];
    const t0 = Date.now();
    await cluster?.stop();
    if (process.env.ZM_TEST_VERBOSE) process.stderr.write(`test PostgreSQL stopped in ${Date.now() - t0} ms\n`);
    cluster = undefined;
  };
}
