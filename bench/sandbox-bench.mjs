// Shared set-up of the benchmarks that build their own database (bench/export.mjs, backup.mjs,
// retention.mjs): command-line flags, a throwaway PostgreSQL sandbox (src/dev/sandbox.ts; the
// binaries its findPostgres() finds, or those in $ZM_BENCH_PG_BINDIR; run as `nobody` when
// invoked as root) loaded with the Zulip 12 fixtures, one bulk sender in one channel with N
// seeded messages (seedBulkMessages, one UserMessage each), a minimal /etc/zulip for the CLI, and
// measure(): wall seconds and peak RSS of a command (GNU time when /usr/bin/time exists, else
// polling VmHWM in /proc/<pid>/status). Everything lives in the sandbox's temp dir, stopped and
// removed at the end (--keep leaves it running and says how to stop it). Needs `npm run build`.
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const CLI = path.join(ROOT, "bin", "zulip-manage");
export const BULK_SENDER = "bulk-sender@zulip.example.net";

const argv = process.argv.slice(2);
/** `--name N` as a number, else the default. */
export const opt = (name, dflt) => (argv.includes(name) ? Number(argv[argv.indexOf(name) + 1]) : dflt);
export const keep = argv.includes("--keep");
export const t0 = Date.now();

export function log(msg) {
  process.stderr.write(`[bench] ${msg}\n`);
}

/** Seconds since the benchmark started, for log lines. */
export const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(1)} s`;

/** Run a command; wall seconds, peak RSS in MB and its stdout. Throws on a non-zero exit. */
export async function measure(command, env, dir) {
  const timeFile = path.join(dir, `time-${Date.now()}.txt`);
  const useTime = fs.existsSync("/usr/bin/time");
  const [cmd, cmdArgs] = useTime ? ["/usr/bin/time", ["-f", "%M %e", "-o", timeFile, ...command]] : [command[0], command.slice(1)];
  const start = process.hrtime.bigint();
  let hwmKb = 0;
  const child = spawn(cmd, cmdArgs, { env, stdio: ["ignore", "pipe", "inherit"] });
  let stdout = "";
  child.stdout.on("data", (d) => (stdout += d));
  const poll = setInterval(() => {
    try {
      // With GNU time the measured command is time's child; this is only the fallback.
      const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, "utf8"));
      if (m) hwmKb = Math.max(hwmKb, Number(m[1]));
    } catch {
      /* exited */
    }
  }, 50);
  const code = await new Promise((r) => child.on("exit", r));
  clearInterval(poll);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (code !== 0) throw new Error(`${command.join(" ")} failed with exit code ${code}`);
  const peakMb = useTime ? Number(fs.readFileSync(timeFile, "utf8").trim().split(/\s+/)[0]) / 1024 : hwmKb / 1024;
  return { seconds, peakMb, stdout, rssSource: useTime ? "GNU time (maxrss)" : "VmHWM polling" };
}

/** Total size of the files under a directory. */
export function dirBytes(p) {
  let n = 0;
  for (const e of fs.readdirSync(p, { withFileTypes: true })) n += e.isDirectory() ? dirBytes(path.join(p, e.name)) : fs.statSync(path.join(p, e.name)).size;
  return n;
}

let lib;
let sandbox;

/** A PostgreSQL sandbox with the Zulip 12 schema and a fresh server's rows; its client is open. */
export async function startBenchDatabase(prefix) {
  lib = await import(path.join(ROOT, "dist", "dev", "sandbox.js"));
  const bindir = process.env.ZM_BENCH_PG_BINDIR;
  const bins = await lib.findPostgres(bindir ? { bindir, bindirSetting: "ZM_BENCH_PG_BINDIR" } : lib.demoPostgresOptions());
  sandbox = await lib.startSandbox({ prefix, stateFile: null, bins, settings: ["max_wal_size=4GB", "shared_buffers=256MB"] });
  const { dir, port, socketDir } = sandbox;
  const pgEnv = { PGHOST: socketDir, PGPORT: String(port), PGUSER: "zulip", PGDATABASE: "zulip" };
  const client = await lib.createZulipDatabase(sandbox, { root: ROOT });
  client.on("error", () => undefined);
  await client.query(fs.readFileSync(path.join(ROOT, "test", "fixtures", "zulip12", "fresh-install.sql"), "utf8"));
  log(`PostgreSQL ready, fixtures loaded (${elapsed()})`);
  return { dir, bins, pgEnv, client };
}

/**
 * The bulk sender (realm 2) in a channel of their own, then `count` of their messages from
 * `start`, `stepMs` apart (seedBulkMessages spreads all new ids into Math.min/max, so it is called
 * in batches of 50,000). Returns the channel id and the UserMessage rows written.
 */
export async function seedBulkChannel(client, { count, start, stepMs }) {
  const { createUser } = await import(path.join(ROOT, "dist", "zulip", "actions", "create-user.js"));
  const { createChannel } = await import(path.join(ROOT, "dist", "zulip", "actions", "create-channel.js"));
  const { seedBulkMessages } = await import(path.join(ROOT, "dist", "dev", "seed.js"));
  await client.query("BEGIN");
  const user = await createUser(client, 2, { email: BULK_SENDER, fullName: "Bulk Sender", externalHost: "zulip.example.net" });
  const channel = await createChannel(client, 2, { name: "bulk", creatorId: user.id, subscribers: [user.id] });
  await client.query("COMMIT");
  const BATCH = 50_000;
  let userMessages = 0;
  for (let done = 0; done < count; done += BATCH) {
    const n = Math.min(BATCH, count - done);
    const r = await seedBulkMessages(client, {
      channelId: channel.id,
      count: n,
      senderIds: [user.id],
      start: new Date(start.getTime() + done * stepMs),
      intervalSeconds: stepMs / 1000,
    });
    userMessages += r.userMessages;
  }
  return { channelId: channel.id, userMessages };
}

/** <dir>/etc: settings.py, zulip.conf and zulip-secrets.conf of a production server. */
export function writeConfDir(dir) {
  const conf = path.join(dir, "etc");
  fs.mkdirSync(conf);
  fs.writeFileSync(path.join(conf, "settings.py"), "EXTERNAL_HOST = 'zulip.example.net'\nZULIP_ADMINISTRATOR = 'admin@example.net'\n");
  fs.writeFileSync(path.join(conf, "zulip.conf"), "[machine]\ndeploy_type = production\n");
  fs.writeFileSync(path.join(conf, "zulip-secrets.conf"), "[secrets]\nsecret_key = bench\navatar_salt = bench\nshared_secret = bench\n");
  return conf;
}

/** The environment the built CLI runs with against the sandbox and the conf dir. */
export function cliEnv(env, dir, conf, extra = {}) {
  return { ...env, ZULIP_CONF_DIR: conf, ZULIP_LOG_DIR: dir, ZULIP_DEPLOY_DIR: dir, ZULIP_MANAGE_ALLOW_ROOT: "1", ...extra };
}

/** Run the benchmark; the sandbox is stopped and removed afterwards (kept with --keep). */
export function runBench(main) {
  main()
    .catch((e) => {
      process.stderr.write(`${e?.stack ?? e}\n`);
      process.exitCode = 1;
    })
    .finally(() => {
      if (!sandbox) return;
      if (keep) log(`kept ${sandbox.dir}; to stop it and remove its files: ${lib.sandboxStopCommand(sandbox)}`);
      else lib.stopSandbox(sandbox, null);
    });
}
