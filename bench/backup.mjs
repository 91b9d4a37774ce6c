#!/usr/bin/env node
// Benchmark: `zulip-manage backup` against a plain `pg_dump --format=directory` of the same
// database: database MB (pg_database_size) per second of wall time for each, the backup's
// tarball size and the CLI process's peak RSS (flat memory: it only pipes tar into gzip).
//
//   npm run build && node bench/backup.mjs [--messages N] [--threads N] [--keep]
//
// Set-up in bench/sandbox-bench.mjs: starts a throwaway PostgreSQL sandbox (src/dev/sandbox.ts; $ZM_BENCH_PG_BINDIR to choose the
// binaries), loads the Zulip 12 fixtures, inserts N messages (default 500,000; one UserMessage
// each) with seedBulkMessages, then runs, in this order: pg_dump (the one backup would pick,
// see findPgDump), `backup --skip-uploads --json`, and with --threads N also
// `backup --threads N`. Everything lives in the sandbox's temp dir, removed at the end.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  cliEnv as cliEnvFor,
  CLI,
  dirBytes,
  elapsed,
  log,
  measure,
  opt,
  ROOT,
  runBench,
  seedBulkChannel,
  startBenchDatabase,
  writeConfDir,
} from "./sandbox-bench.mjs";

const count = opt("--messages", 500_000);
const threads = opt("--threads", 0);

async function main() {
  const { findPgDump } = await import(path.join(ROOT, "dist", "ops", "backup.js"));
  const { dir, bins, pgEnv, client } = await startBenchDatabase("zm-bench-backup-");
  await seedBulkChannel(client, { count, start: new Date(Date.now() - count * 1000), stepMs: 1000 });
  await client.query("CHECKPOINT");
  const { rows } = await client.query("SELECT pg_database_size(current_database()) AS b, current_setting('server_version_num')::int AS v");
  const dbBytes = Number(rows[0].b);
  await client.end();
  log(`seeded ${count} messages; database ${(dbBytes / 1048576).toFixed(0)} MB (${elapsed()})`);

  const env = { ...process.env, ...pgEnv, PATH: `${bins.bindir}:${process.env.PATH}` };
  const pgDump = await findPgDump(Math.floor(rows[0].v / 10000), env);
  const conf = writeConfDir(dir);
  fs.writeFileSync(path.join(dir, "version.py"), 'ZULIP_VERSION = "12.0"\n');
  const cliEnv = cliEnvFor(env, dir, conf);
  const mbps = (s) => +(dbBytes / 1048576 / s).toFixed(1);

  const plainDir = path.join(dir, "plain-dump");
  const plain = await measure([pgDump.path, "--format=directory", `--file=${plainDir}`, "--no-password"], env, dir);
  const plainBytes = dirBytes(plainDir);
  fs.rmSync(plainDir, { recursive: true });
  log(`pg_dump: ${plain.seconds.toFixed(1)} s`);

  const runs = [];
  for (const t of [1, ...(threads > 1 ? [threads] : [])]) {
    const outDir = path.join(dir, `out-${t}`);
    fs.mkdirSync(outDir);
    const r = await measure([process.execPath, CLI, "backup", "--output", outDir + "/", "--skip-uploads", "--threads", String(t), "--json"], cliEnv, dir);
    const doc = JSON.parse(r.stdout);
    runs.push({
      threads: t,
      seconds: +r.seconds.toFixed(1),
      db_mb_per_s: mbps(r.seconds),
      tarball_mb: +(doc.bytes / 1048576).toFixed(1),
      peak_rss_mb: +r.peakMb.toFixed(1),
    });
    fs.rmSync(outDir, { recursive: true });
    log(`backup --threads ${t}: ${r.seconds.toFixed(1)} s`);
  }
  const report = {
    messages: count,
    database_mb: +(dbBytes / 1048576).toFixed(1),
    pg_dump: { binary: pgDump.path, seconds: +plain.seconds.toFixed(1), db_mb_per_s: mbps(plain.seconds), dump_mb: +(plainBytes / 1048576).toFixed(1) },
    backup: runs,
    backup_vs_pg_dump: +(runs[0].seconds / plain.seconds).toFixed(2),
    cores: os.cpus().length,
  };
  process.stdout.write(JSON.stringify(report, null, 2) + "\n");
}

runBench(main);
