// vitest globalSetup: one throwaway PostgreSQL cluster per test run, shared with the test files
// through provide('zmPg') / inject('zmPg') and the ZM_TEST_PG environment variable.
// Template databases are built lazily by createDatabase() (see pg.ts).
import type { TestProject } from "vitest/node";
import { PG_INFO_ENV, startPostgres, type PgCluster } from "./pg.js";
import { RABBITMQ_INFO_ENV, type RabbitInstance, startRabbitMQ } from "./rabbitmq.js";
import { sweepStaleTempDirs } from "./services.js";

let cluster: PgCluster | undefined;
let rabbit: RabbitInstance | undefined;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Leftovers of runs that were killed too hard to clean up after themselves.
  sweepStaleTempDirs();
  // RabbitMQ takes seconds to boot: started beside PostgreSQL, once per run.
  const [pg, mq] = await Promise.allSettled([startPostgres(), startRabbitMQ()]);
  if (pg.status === "fulfilled") cluster = pg.value;
  if (mq.status === "fulfilled") rabbit = mq.value;
  if (pg.status === "rejected" || mq.status === "rejected") {
    await cluster?.stop();
    await rabbit?.stop();
    throw pg.status === "rejected" ? pg.reason : (mq as PromiseRejectedResult).reason;
  }
  process.env[RABBITMQ_INFO_ENV] = JSON.stringify(rabbit!.info());
  project.provide("zmRabbit", rabbit!.info());
  const info = cluster!.info();
  project.provide("zmPg", info);
  process.env[PG_INFO_ENV] = JSON.stringify(info);
  if (process.env.ZM_TEST_VERBOSE) {
    process.stderr.write(`test PostgreSQL ${info.version} (${info.source}) on ${info.host}:${info.port}\n`);
  }
  return async () => {
    delete process.env[PG_INFO_ENV];
    delete process.env[RABBITMQ_INFO_ENV];
    await rabbit?.stop();
    rabbit = undefined;
    const t0 = Date.now();
    await cluster?.stop();
    if (process.env.ZM_TEST_VERBOSE) process.stderr.write(`test PostgreSQL stopped in ${Date.now() - t0} ms\n`);
    cluster = undefined;
  };
}
