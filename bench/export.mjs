#!/usr/bin/env node
// Benchmark: export_single_user for a user with many messages (default 1,000,000), reporting
// wall-clock seconds and the CLI process's peak RSS. Targets: < 60 s and < 200 MB on 2 cores.
//
//   npm run build && node bench/export.mjs [--messages N] [--keep]
//
// Starts a throwaway PostgreSQL sandbox (src/lib/sandbox.ts: the binaries its findPostgres()
// finds, or those in $ZM_BENCH_PG_BINDIR; run as `nobody` when invoked as root), loads the Zulip 12
// fixtures, creates one user subscribed to one channel and inserts N messages sent by them with
// seedBulkMessages (one UserMessage each), then runs the built CLI:
//   zulip-manage export_single_user <email> --output <tmp>/export --json
// Peak RSS comes from GNU time when /usr/bin/time exists, else from polling VmHWM in
// /proc/<pid>/status. Everything lives in the sandbox's temp dir, which is stopped and removed at
// the end (--keep leaves it running and says how to stop it).
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const count = Number(args.includes("--messages") ? args[args.indexOf("--messages") + 1] : 1_000_000);
const keep = args.includes("--keep");

function log(msg) {
  process.stderr.write(`[bench] ${msg}\n`);
}

const t0 = Date.now();
let lib;
let sandbox;

async function main() {
  lib = await import(path.join(ROOT, "dist", "lib", "sandbox.js"));
  const bindir = process.env.ZM_BENCH_PG_BINDIR;
  const bins = await lib.findPostgres(bindir ? { bindir, bindirSetting: "ZM_BENCH_PG_BINDIR" } : lib.demoPostgresOptions());
  sandbox = await lib.startSandbox({
    prefix: "zm-bench-export-",
    stateFile: null,
    bins,
    settings: ["max_wal_size=4GB", "shared_buffers=256MB"],
  });
  const { dir, port, socketDir } = sandbox;
  const pgEnv = { PGHOST: socketDir, PGPORT: String(port), PGUSER: "zulip", PGDATABASE: "zulip" };
  // Schema and base data (search_path zulip, public), then a freshly installed server's rows.
  const client = await lib.createZulipDatabase(sandbox, { root: ROOT });
  client.on("error", () => undefined);
  await client.query(fs.readFileSync(path.join(ROOT, "test", "fixtures", "zulip12", "fresh-install.sql"), "utf8"));
  log(`PostgreSQL ready, fixtures loaded (${((Date.now() - t0) / 1000).toFixed(1)} s)`);

  // Seed with the project's own builders (compiled).
  const { createUser, createChannel } = await import(path.join(ROOT, "dist", "lib", "create.js"));
  const { seedBulkMessages } = await import(path.join(ROOT, "dist", "lib", "seed.js"));
  const email = "bulk-sender@zulip.example.net";
  const seedStart = Date.now();
  await client.query("BEGIN");
  const user = await createUser(client, 2, { email, fullName: "Bulk Sender", externalHost: "zulip.example.net" });
  const channel = await createChannel(client, 2, { name: "bulk", creatorId: user.id, subscribers: [user.id] });
  await client.query("COMMIT");
  // seedBulkMessages spreads all new ids into Math.min/max, so it is called in batches.
  const BATCH = 50_000;
  const seeded = { userMessages: 0 };
  const start0 = new Date(Date.now() - count * 1000);
  for (let done = 0; done < count; done += BATCH) {
    const n = Math.min(BATCH, count - done);
    const r = await seedBulkMessages(client, {
      channelId: channel.id,
      count: n,
      senderIds: [user.id],
      start: new Date(start0.getTime() + done * 1000),
      intervalSeconds: 1,
    });
    seeded.userMessages += r.userMessages;
  }
  await client.query("ANALYZE");
  await client.end();
  log(`seeded ${count} messages (${seeded.userMessages} UserMessage rows) in ${((Date.now() - seedStart) / 1000).toFixed(1)} s`);

  // The conf dir the CLI reads.
  const conf = path.join(dir, "etc");
  fs.mkdirSync(conf);
  fs.writeFileSync(path.join(conf, "settings.py"), "EXTERNAL_HOST = 'zulip.example.net'\nZULIP_ADMINISTRATOR = 'admin@example.net'\n");
  fs.writeFileSync(path.join(conf, "zulip.conf"), "[machine]\ndeploy_type = production\n");
  fs.writeFileSync(path.join(conf, "zulip-secrets.conf"), "[secrets]\nsecret_key = bench\navatar_salt = bench\nshared_secret = bench\n");
  const out = path.join(dir, "export");
  const env = { ...process.env, ...pgEnv, ZULIP_CONF_DIR: conf, ZULIP_LOG_DIR: dir, ZULIP_DEPLOY_DIR: dir, ZULIP_MANAGE_ALLOW_ROOT: "1" };
  const cli = [path.join(ROOT, "bin", "zulip-manage"), "export_single_user", email, "--output", out, "--json"];
  const timeFile = path.join(dir, "time.txt");
  const useTime = fs.existsSync("/usr/bin/time");
  const [cmd, cmdArgs] = useTime ? ["/usr/bin/time", ["-f", "%M %e", "-o", timeFile, process.execPath, ...cli]] : [process.execPath, cli];
  const start = process.hrtime.bigint();
  let hwmKb = 0;
  const child = spawn(cmd, cmdArgs, { env, stdio: ["ignore", "pipe", "inherit"] });
  let stdout = "";
  child.stdout.on("data", (d) => (stdout += d));
  const poll = setInterval(() => {
    try {
      // With GNU time the CLI is time's child; its pid is not ours to poll.
      const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, "utf8"));
      if (m) hwmKb = Math.max(hwmKb, Number(m[1]));
    } catch {
      /* exited */
    }
  }, 50);
  const code = await new Promise((r) => child.on("exit", r));
  clearInterval(poll);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (code !== 0) throw new Error(`export failed with exit code ${code}`);
  const doc = JSON.parse(stdout);
  let peakMb;
  if (useTime) peakMb = Number(fs.readFileSync(timeFile, "utf8").trim().split(/\s+/)[0]) / 1024;
  else peakMb = hwmKb / 1024;
  const report = {
    messages: doc.messages,
    message_files: doc.message_files,
    tarball_mb: +(doc.tarball_bytes / 1048576).toFixed(1),
    seconds: +seconds.toFixed(1),
    peak_rss_mb: +peakMb.toFixed(1),
    rss_source: useTime ? "GNU time (maxrss)" : "VmHWM polling",
    cores: os.cpus().length,
    targets: { seconds: 60, peak_rss_mb: 200 },
    within_targets: seconds < 60 && peakMb < 200,
  };
  process.stdout.write(JSON.stringify(report, null, 2) + "\n");
  if (doc.messages !== count) throw new Error(`expected ${count} messages in the export, got ${doc.messages}`);
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
