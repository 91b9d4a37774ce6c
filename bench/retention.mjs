#!/usr/bin/env node
// Benchmark: `zulip-manage archive_messages` (message retention) archiving N expired channel
// messages (default 200,000, one UserMessage each): messages archived per second and the CLI
// process's peak RSS (flat: batches of 100 messages per transaction).
//
//   npm run build && node bench/retention.mjs [--messages N] [--keep]
//
// A throwaway PostgreSQL sandbox (src/lib/sandbox.ts; $ZM_BENCH_PG_BINDIR to choose the
// binaries) with the Zulip 12 fixtures; the messages are seeded 60 days old in a channel of an
// organization with message_retention_days = 30. Removed at the end unless --keep.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
const count = opt("--messages", 200_000);
const keep = args.includes("--keep");

function log(msg) {
  process.stderr.write(`[bench] ${msg}\n`);
}

/** Run a command; wall seconds and peak RSS (GNU time when present, else VmHWM polling). */
async function measure(argv, env, dir) {
  const timeFile = path.join(dir, `time-${Date.now()}.txt`);
  const useTime = fs.existsSync("/usr/bin/time");
  const [cmd, cmdArgs] = useTime ? ["/usr/bin/time", ["-f", "%M %e", "-o", timeFile, ...argv]] : [argv[0], argv.slice(1)];
  const start = process.hrtime.bigint();
  let hwmKb = 0;
  const child = spawn(cmd, cmdArgs, { env, stdio: ["ignore", "pipe", "inherit"] });
  let stdout = "";
  child.stdout.on("data", (d) => (stdout += d));
  const poll = setInterval(() => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, "utf8"));
      if (m) hwmKb = Math.max(hwmKb, Number(m[1]));
    } catch {
      /* exited */
    }
  }, 50);
  const code = await new Promise((r) => child.on("exit", r));
  clearInterval(poll);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (code !== 0) throw new Error(`${argv.join(" ")} failed with exit code ${code}`);
  const peakMb = useTime ? Number(fs.readFileSync(timeFile, "utf8").trim().split(/\s+/)[0]) / 1024 : hwmKb / 1024;
  return { seconds, peakMb, stdout };
}

function dirBytes(p) {
  let n = 0;
  for (const e of fs.readdirSync(p, { withFileTypes: true })) n += e.isDirectory() ? dirBytes(path.join(p, e.name)) : fs.statSync(path.join(p, e.name)).size;
  return n;
}

const t0 = Date.now();
let lib;
let sandbox;

async function main() {
  lib = await import(path.join(ROOT, "dist", "lib", "sandbox.js"));
  const bindir = process.env.ZM_BENCH_PG_BINDIR;
  const bins = await lib.findPostgres(bindir ? { bindir, bindirSetting: "ZM_BENCH_PG_BINDIR" } : lib.demoPostgresOptions());
  sandbox = await lib.startSandbox({ prefix: "zm-bench-retention-", stateFile: null, bins, settings: ["max_wal_size=4GB", "shared_buffers=256MB"] });
  const { dir, port, socketDir } = sandbox;
  const pgEnv = { PGHOST: socketDir, PGPORT: String(port), PGUSER: "zulip", PGDATABASE: "zulip" };
  const client = await lib.createZulipDatabase(sandbox, { root: ROOT });
  client.on("error", () => undefined);
  await client.query(fs.readFileSync(path.join(ROOT, "test", "fixtures", "zulip12", "fresh-install.sql"), "utf8"));
  const { createUser, createChannel } = await import(path.join(ROOT, "dist", "lib", "create.js"));
  const { seedBulkMessages } = await import(path.join(ROOT, "dist", "lib", "seed.js"));
  await client.query("BEGIN");
  const user = await createUser(client, 2, { email: "bulk-sender@zulip.example.net", fullName: "Bulk Sender", externalHost: "zulip.example.net" });
  const channel = await createChannel(client, 2, { name: "bulk", creatorId: user.id, subscribers: [user.id] });
  await client.query("COMMIT");
  const BATCH = 50_000;
  const start0 = new Date(Date.now() - 60 * 86400_000);
  for (let done = 0; done < count; done += BATCH) {
    const n = Math.min(BATCH, count - done);
    await seedBulkMessages(client, { channelId: channel.id, count: n, senderIds: [user.id], start: new Date(start0.getTime() + done), intervalSeconds: 0.001 });
  }
  await client.query("UPDATE zerver_message SET date_sent = now() WHERE recipient_id <> (SELECT recipient_id FROM zerver_stream WHERE id = $1)", [channel.id]);
  await client.query("UPDATE zerver_realm SET message_retention_days = 30 WHERE id = 2");
  await client.query("ANALYZE");
  await client.end();
  log(`seeded ${count} messages (${((Date.now() - t0) / 1000).toFixed(1)} s)`);

  const conf = path.join(dir, "etc");
  fs.mkdirSync(conf);
  fs.writeFileSync(path.join(conf, "settings.py"), "EXTERNAL_HOST = 'zulip.example.net'\nZULIP_ADMINISTRATOR = 'admin@example.net'\n");
  fs.writeFileSync(path.join(conf, "zulip.conf"), "[machine]\ndeploy_type = production\n");
  fs.writeFileSync(path.join(conf, "zulip-secrets.conf"), "[secrets]\nsecret_key = bench\n");
  const env = { ...process.env, ...pgEnv, ZULIP_CONF_DIR: conf, ZULIP_LOG_DIR: dir, ZULIP_DEPLOY_DIR: dir, ZULIP_LOCK_DIR: path.join(dir, "locks"), ZULIP_MANAGE_ALLOW_ROOT: "1" };
  const r = await measure([process.execPath, path.join(ROOT, "bin", "zulip-manage"), "archive_messages", "--json", "--flush-cache", "none"], env, dir);
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

function cleanup() {
  if (!sandbox) return;
  if (keep) log(`kept ${sandbox.dir}; to stop it and remove its files: ${lib.sandboxStopCommand(sandbox)}`);
  else lib.stopSandbox(sandbox, null);
}

main()
  .catch((e) => {
    process.stderr.write(`${e?.stack ?? e}\n`);
    process.exitCode = 1;
  })
  .finally(cleanup);
