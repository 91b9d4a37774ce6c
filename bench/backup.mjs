#!/usr/bin/env node
// Benchmark: `zulip-manage backup` against a plain `pg_dump --format=directory` of the same
// database: database MB (pg_database_size) per second of wall time for each, the backup's
// tarball size and the CLI process's peak RSS (flat memory: it only pipes tar into gzip).
//
//   npm run build && node bench/backup.mjs [--messages N] [--threads N] [--keep]
//
// Starts a throwaway PostgreSQL sandbox (src/lib/sandbox.ts; $ZM_BENCH_PG_BINDIR to choose the
// binaries), loads the Zulip 12 fixtures, inserts N messages (default 500,000; one UserMessage
// each) with seedBulkMessages, then runs, in this order: pg_dump (the one backup would pick,
// see findPgDump), `backup --skip-uploads --json`, and with --threads N also
// `backup --threads N`. Everything lives in the sandbox's temp dir, removed at the end.
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
const count = opt("--messages", 500_000);
const threads = opt("--threads", 0);
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
  const { findPgDump } = await import(path.join(ROOT, "dist", "lib", "backup.js"));
  const bindir = process.env.ZM_BENCH_PG_BINDIR;
  const bins = await lib.findPostgres(bindir ? { bindir, bindirSetting: "ZM_BENCH_PG_BINDIR" } : lib.demoPostgresOptions());
  sandbox = await lib.startSandbox({ prefix: "zm-bench-backup-", stateFile: null, bins, settings: ["max_wal_size=4GB", "shared_buffers=256MB"] });
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
  const start0 = new Date(Date.now() - count * 1000);
  for (let done = 0; done < count; done += BATCH) {
    const n = Math.min(BATCH, count - done);
    await seedBulkMessages(client, { channelId: channel.id, count: n, senderIds: [user.id], start: new Date(start0.getTime() + done * 1000), intervalSeconds: 1 });
  }
  await client.query("CHECKPOINT");
  const { rows } = await client.query("SELECT pg_database_size(current_database()) AS b, current_setting('server_version_num')::int AS v");
  const dbBytes = Number(rows[0].b);
  await client.end();
  log(`seeded ${count} messages; database ${(dbBytes / 1048576).toFixed(0)} MB (${((Date.now() - t0) / 1000).toFixed(1)} s)`);

  const env = { ...process.env, ...pgEnv, PATH: `${bins.bindir}:${process.env.PATH}` };
  const pgDump = await findPgDump(Math.floor(rows[0].v / 10000), env);
  const conf = path.join(dir, "etc");
  fs.mkdirSync(conf);
  fs.writeFileSync(path.join(conf, "settings.py"), "EXTERNAL_HOST = 'zulip.example.net'\nZULIP_ADMINISTRATOR = 'admin@example.net'\n");
  fs.writeFileSync(path.join(conf, "zulip.conf"), "[machine]\ndeploy_type = production\n");
  fs.writeFileSync(path.join(conf, "zulip-secrets.conf"), "[secrets]\nsecret_key = bench\n");
  fs.writeFileSync(path.join(dir, "version.py"), 'ZULIP_VERSION = "12.0"\n');
  const cliEnv = { ...env, ZULIP_CONF_DIR: conf, ZULIP_LOG_DIR: dir, ZULIP_DEPLOY_DIR: dir, ZULIP_MANAGE_ALLOW_ROOT: "1" };
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
    const r = await measure([process.execPath, path.join(ROOT, "bin", "zulip-manage"), "backup", "--output", outDir + "/", "--skip-uploads", "--threads", String(t), "--json"], cliEnv, dir);
    const doc = JSON.parse(r.stdout);
    runs.push({ threads: t, seconds: +r.seconds.toFixed(1), db_mb_per_s: mbps(r.seconds), tarball_mb: +(doc.bytes / 1048576).toFixed(1), peak_rss_mb: +r.peakMb.toFixed(1) });
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
