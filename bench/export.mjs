#!/usr/bin/env node
// Benchmark: export_single_user for a user with many messages (default 1,000,000), reporting
// wall-clock seconds and the CLI process's peak RSS. Targets: < 60 s and < 200 MB on 2 cores.
//
//   npm run build && node bench/export.mjs [--messages N] [--keep]
//
// The set-up (bench/sandbox-bench.mjs): a throwaway PostgreSQL sandbox with the Zulip 12
// fixtures, one user subscribed to one channel with N messages sent by them; then the built CLI:
//   zulip-manage export_single_user <email> --output <tmp>/export --json
// Peak RSS as measure() takes it. The sandbox is removed at the end (kept with --keep).
import os from "node:os";
import path from "node:path";
import { BULK_SENDER, cliEnv, CLI, elapsed, log, measure, opt, runBench, seedBulkChannel, startBenchDatabase, writeConfDir } from "./sandbox-bench.mjs";

const count = opt("--messages", 1_000_000);

async function main() {
  const { dir, pgEnv, client } = await startBenchDatabase("zm-bench-export-");
  const seedStart = Date.now();
  const seeded = await seedBulkChannel(client, { count, start: new Date(Date.now() - count * 1000), stepMs: 1000 });
  await client.query("ANALYZE");
  await client.end();
  log(`seeded ${count} messages (${seeded.userMessages} UserMessage rows) in ${((Date.now() - seedStart) / 1000).toFixed(1)} s (${elapsed()})`);

  const conf = writeConfDir(dir);
  const out = path.join(dir, "export");
  const env = cliEnv({ ...process.env, ...pgEnv }, dir, conf);
  const r = await measure([process.execPath, CLI, "export_single_user", BULK_SENDER, "--output", out, "--json"], env, dir);
  const { stdout, peakMb, seconds } = r;
  const doc = JSON.parse(stdout);
  const report = {
    messages: doc.messages_count,
    message_files: doc.message_files_count,
    tarball_mb: +(doc.tarball_bytes / 1048576).toFixed(1),
    seconds: +seconds.toFixed(1),
    peak_rss_mb: +peakMb.toFixed(1),
    rss_source: r.rssSource,
    cores: os.cpus().length,
    targets: { seconds: 60, peak_rss_mb: 200 },
    within_targets: seconds < 60 && peakMb < 200,
  };
  process.stdout.write(JSON.stringify(report, null, 2) + "\n");
  if (doc.messages_count !== count) throw new Error(`expected ${count} messages in the export, got ${doc.messages_count}`);
}

runBench(main);
