#!/usr/bin/env node
// Benchmark: `zulip-manage archive_messages` (message retention) archiving N expired channel
// messages (default 200,000, one UserMessage each): messages archived per second and the CLI
// process's peak RSS (flat: batches of 100 messages per transaction).
//
//   npm run build && node bench/retention.mjs [--messages N] [--keep]
//
// Set-up in bench/sandbox-bench.mjs: a throwaway PostgreSQL sandbox (src/dev/sandbox.ts; $ZM_BENCH_PG_BINDIR to choose the
// binaries) with the Zulip 12 fixtures; the messages are seeded 60 days old in a channel of an
// organization with message_retention_days = 30. Removed at the end unless --keep.
import os from "node:os";
import path from "node:path";
import { cliEnv, CLI, elapsed, log, measure, opt, runBench, seedBulkChannel, startBenchDatabase, writeConfDir } from "./sandbox-bench.mjs";

const count = opt("--messages", 200_000);

async function main() {
  const { dir, pgEnv, client } = await startBenchDatabase("zm-bench-retention-");
  const { channelId } = await seedBulkChannel(client, { count, start: new Date(Date.now() - 60 * 86400_000), stepMs: 1 });
  await client.query("UPDATE zerver_message SET date_sent = now() WHERE recipient_id <> (SELECT recipient_id FROM zerver_stream WHERE id = $1)", [channelId]);
  await client.query("UPDATE zerver_realm SET message_retention_days = 30 WHERE id = 2");
  await client.query("ANALYZE");
  await client.end();
  log(`seeded ${count} messages (${elapsed()})`);

  const conf = writeConfDir(dir);
  const env = cliEnv({ ...process.env, ...pgEnv }, dir, conf, { ZULIP_LOCK_DIR: path.join(dir, "locks") });
  const r = await measure([process.execPath, CLI, "archive_messages", "--json", "--flush-cache", "none"], env, dir);
  const doc = JSON.parse(r.stdout);
  const archived = doc.archived.channel_messages + doc.archived.direct_messages;
  const report = {
    messages: count,
    archived,
    transactions: doc.archived.transactions.length,
    seconds: +r.seconds.toFixed(1),
    messages_per_s: Math.round(archived / r.seconds),
    peak_rss_mb: +r.peakMb.toFixed(1),
    cores: os.cpus().length,
  };
  process.stdout.write(JSON.stringify(report, null, 2) + "\n");
  if (archived !== count) throw new Error(`expected ${count} archived messages, got ${archived}`);
}

runBench(main);
