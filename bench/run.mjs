#!/usr/bin/env node
// `npm run bench`: zulip-manage's performance on a large server, in one run, as a table.
//
//   npm run build && npm run bench                  # builds the database first if needed (minutes)
//   npm run bench -- --runs 11                      # more repetitions for the medians (default 7)
//   npm run bench -- --scale 0.1                    # generate a tenth-size database (if none exists)
//   npm run bench -- --only startup,list_realms     # a subset: startup, list_realms, change_user_role,
//                                                   #   single_user, password_reset, export
//   npm run bench -- --json                         # the results as JSON too
//   npm run bench -- --stop                         # remove the database afterwards
//   npm run bench -- --keep-node-env                # keep NODE_EXTRA_CA_CERTS / NODE_OPTIONS (below)
//   npm run bench -- --no-rabbitmq                   # write commands with --events=none only
//
// Commands run without this shell's Node start-up variables (NODE_EXTRA_CA_CERTS, NODE_OPTIONS),
// which a Zulip server's environment does not have and which slow every Node process, `node -e 0`
// included, by tens of milliseconds; when the shell has them, start-up and change_user_role are
// also measured with them, and the table says so.
//
// What is measured (wall time of the whole CLI process, start-up included; peak RSS of that
// process from GNU time, or from polling /proc/<pid>/status when /usr/bin/time is missing):
//   - start-up: `zulip-manage --version` and `list_realms` against bare `node -e 0`, interleaved
//     (bench/startup.mjs's measureStartup, run against the large database)
//   - list_realms on the 1,000 realms (median)
//   - change_user_role on the realm with 50,000 users, member <-> moderator (median), with
//     memcached running so the cache invalidation is part of it
//   - the other single-user commands on that realm (deactivate/reactivate, change_user_email,
//     create_user, delete_user, send_password_reset_email -u, change_password, show_admins,
//     generate_realm_creation_link), medians of the same number of runs
//   - every single-user write command that sends real-time events twice: with --events=none and
//     with --events=rabbitmq against a real RabbitMQ this run starts (bench/rabbitmq.mjs; a
//     stand-in consumer drains the queues as Tornado would), interleaved round by round, so the
//     table shows what sending the events costs; without rabbitmq-server (or --no-rabbitmq) only
//     --events=none
//   - send_password_reset_email -r big -a: 50,000 emails through a local SMTP sink (emails/s,
//     peak memory); every email is counted at the sink
//   - export_single_user for the user with 1,000,000 messages (seconds, peak memory):
//     bench/export.mjs when it exists (it builds its own database), else on the generated one
// The database comes from bench/generate.mjs (kept between runs; --stop removes it).
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { BENCH_STATE, defaultSpec, generate, readBenchState, SERVICES_MARK, stopBench } from "./generate.mjs";
import { startRabbitMQ } from "./rabbitmq.mjs";
import { nodeStartupVariablesIn, serverNodeEnv } from "./startup.mjs";

/** --keep-node-env: measure with this shell's Node start-up variables (see bench/startup.mjs). */
let KEEP_NODE_ENV = false;

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BIN = path.join(ROOT, "bin", "zulip-manage");
// The commands that send real-time events run with each of EVENT_MODES: --events=none, and
// --events=rabbitmq when this run has a RabbitMQ (main() adds it). There is no Tornado: "auto"
// would try RabbitMQ and then Tornado's HTTP API, so it is never used.
const EVENT_MODES = ["none"];
const eventsArg = (mode) => [`--events=${mode}`];
const NO_EVENTS = eventsArg("none");
const BENCHES = ["startup", "list_realms", "change_user_role", "single_user", "password_reset", "export"];

function parseArgs(argv) {
  const o = { runs: 7, scale: 1, only: BENCHES, json: false, stop: false, rabbitmq: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--runs") o.runs = Math.max(1, Number(argv[++i]));
    else if (a === "--scale") o.scale = Number(argv[++i]);
    else if (a === "--only") o.only = argv[++i].split(",").map((s) => s.trim());
    else if (a === "--json") o.json = true;
    else if (a === "--stop") o.stop = true;
    else if (a === "--keep-node-env") KEEP_NODE_ENV = true;
    else if (a === "--no-rabbitmq") o.rabbitmq = false;
    else if (a === "-h" || a === "--help") {
      process.stdout.write(
        fs
          .readFileSync(fileURLToPath(import.meta.url), "utf8")
          .split("\nimport ")[0]
          .replace(/^#!.*\n/, "")
          .replace(/^\/\/ ?/gm, ""),
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  for (const b of o.only) if (!BENCHES.includes(b)) throw new Error(`unknown benchmark ${b} (choose from ${BENCHES.join(", ")})`);
  return o;
}

function log(msg) {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

const fmt = (n, d = 0) => n.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// ---------------------------------------------------------------------------------------------
// Running a process and measuring it

const GNU_TIME = fs.existsSync("/usr/bin/time") ? "/usr/bin/time" : null;

/** Run a command; resolves with wall seconds, peak RSS (MB), exit code and output. */
function measure(cmd, args, { env, input } = {}) {
  return new Promise((resolve, reject) => {
    const timeFile = path.join(os.tmpdir(), `zm-bench-time-${process.pid}-${Math.random().toString(36).slice(2)}`);
    const [file, argv] = GNU_TIME ? [GNU_TIME, ["-f", "%M", "-o", timeFile, cmd, ...args]] : [cmd, args];
    const started = process.hrtime.bigint();
    const child = spawn(file, argv, { env, stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let hwmKb = 0;
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    if (input !== undefined) child.stdin.end(input);
    const poll = GNU_TIME
      ? null
      : setInterval(() => {
          try {
            const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, "utf8"));
            if (m) hwmKb = Math.max(hwmKb, Number(m[1]));
          } catch {
            /* exited */
          }
        }, 20);
    child.on("error", reject);
    child.on("close", (code) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (poll) clearInterval(poll);
      let rssMb = hwmKb / 1024;
      if (GNU_TIME) {
        try {
          const lines = fs.readFileSync(timeFile, "utf8").trim().split("\n");
          rssMb = Number(lines.at(-1)) / 1024;
        } catch {
          rssMb = Number.NaN;
        }
        fs.rmSync(timeFile, { force: true });
      }
      resolve({ seconds, rssMb, code, stdout, stderr });
    });
  });
}

/** The environment commands run in: this shell's, pointed at the benchmark database, without
 * Node's start-up variables unless --keep-node-env (see bench/startup.mjs NODE_STARTUP_VARIABLES). */
function cliEnv(state, { keepNodeEnv = KEEP_NODE_ENV } = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("PG") && !k.startsWith("ZULIP_") && k !== "NO_COLOR") env[k] = v;
  const out = { ...env, ...state.env, NO_COLOR: "1" };
  return keepNodeEnv ? out : serverNodeEnv(out);
}

async function cli(state, args, opts = {}) {
  const r = await measure(process.execPath, [BIN, ...args], { ...opts, env: opts.env ?? cliEnv(state) });
  if (r.code !== 0 && !opts.allowFailure) {
    throw new Error(`zulip-manage ${args.join(" ")} exited with ${r.code}:\n${r.stderr.slice(-2000)}`);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Services the commands talk to: memcached (cache invalidation) and an SMTP sink

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

async function startMemcached() {
  const bin = ["/usr/bin/memcached", "/usr/local/bin/memcached"].find((p) => fs.existsSync(p));
  if (!bin) return null;
  const port = await freePort();
  const args = ["-l", "127.0.0.1", "-p", String(port), "-U", "0", "-m", "64"];
  if (process.getuid?.() === 0) args.push("-u", "nobody");
  const proc = spawn(bin, args, { stdio: "ignore" });
  for (let i = 0; i < 50; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect({ host: "127.0.0.1", port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) return { location: `127.0.0.1:${port}`, stop: () => proc.kill() };
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill();
  return null;
}

/**
 * A minimal SMTP sink that accepts and counts every message. Not smtp-server: that library waits
 * 100 ms before its greeting (to catch clients that talk too early), which would be the sink's
 * time, not ours, in every connection; a Postfix on the same machine greets at once.
 */
async function startSmtpSink() {
  const sink = { count: 0, bytes: 0 };
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    let buffer = "";
    let inData = false;
    const reply = (line) => socket.write(`${line}\r\n`);
    socket.on("data", (chunk) => {
      buffer += chunk.toString("latin1");
      for (;;) {
        if (inData) {
          const end = buffer.indexOf("\r\n.\r\n");
          if (end < 0) return;
          sink.bytes += end;
          sink.count++;
          buffer = buffer.slice(end + 5);
          inData = false;
          reply("250 OK: queued");
          continue;
        }
        const nl = buffer.indexOf("\r\n");
        if (nl < 0) return;
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === "EHLO") socket.write("250-bench\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n");
        else if (verb === "DATA") {
          inData = true;
          // The terminator may follow right away (pipelined): look for it from the data's start.
          buffer = `\r\n${buffer}`;
          reply("354 End data with <CR><LF>.<CR><LF>");
        } else if (verb === "QUIT") {
          reply("221 Bye");
          socket.end();
          return;
        } else reply("250 OK");
      }
    });
    reply("220 bench ESMTP");
  });
  const port = await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server.address().port)));
  return {
    ...sink,
    port,
    sink,
    close: () =>
      new Promise((r) => {
        for (const sock of sockets) sock.destroy();
        server.close(() => r());
      }),
  };
}

/** The sandbox's rabbitmq_password secret (zulip-secrets.conf), which the broker's user gets. */
function rabbitPassword(state) {
  const text = fs.readFileSync(path.join(state.conf.confDir, "zulip-secrets.conf"), "utf8");
  const m = /^rabbitmq_password\s*=\s*(.+)$/m.exec(text);
  if (!m) throw new Error("the benchmark configuration has no rabbitmq_password secret");
  return m[1].trim();
}

/** Point the sandbox's settings.py at this run's services. */
function configureServices(state, { smtpPort, memcachedLocation, rabbit }) {
  const file = path.join(state.conf.confDir, "settings.py");
  const text = fs.readFileSync(file, "utf8");
  const block =
    `${SERVICES_MARK}\n` +
    `EMAIL_HOST = "127.0.0.1"\nEMAIL_PORT = ${smtpPort}\n` +
    (memcachedLocation ? `MEMCACHED_LOCATION = "${memcachedLocation}"\n` : "") +
    (rabbit
      ? `RABBITMQ_HOST = "${rabbit.host}"\nRABBITMQ_PORT = ${rabbit.port}\nRABBITMQ_VHOST = "${rabbit.vhost}"\nRABBITMQ_USERNAME = "${rabbit.username}"\n`
      : "") +
    `${SERVICES_MARK} end\n`;
  const re = new RegExp(`${SERVICES_MARK}\\n[\\s\\S]*?${SERVICES_MARK} end\\n`);
  fs.writeFileSync(file, re.test(text) ? text.replace(re, block) : text + "\n" + block);
}

// ---------------------------------------------------------------------------------------------
// The benchmarks

async function benchStartup(state, runs, rows) {
  // bench/startup.mjs (measureStartup) interleaves node -e 0, --version and list_realms round by
  // round; it runs here against the large database.
  const startupModule = path.join(ROOT, "bench", "startup.mjs");
  if (!fs.existsSync(startupModule)) {
    rows.push({ name: "start-up", value: "(bench/startup.mjs not available)", rss: "", target: "" });
    return;
  }
  const { measureStartup } = await import(startupModule);
  const n = Math.max(15, runs);
  const left = KEEP_NODE_ENV ? [] : nodeStartupVariablesIn(process.env);
  const result = await measureStartup(cliEnv(state), { runs: n, warmup: 3, shellEnv: left.length ? cliEnv(state, { keepNodeEnv: true }) : null });
  for (const r of result) {
    const isNode = r.name === "node -e 0";
    if (isNode) state.bareMs = r.median_ms;
    rows.push({
      name: `start-up: ${r.name}${isNode ? ` (median of ${n}, interleaved)` : ""}`,
      value: isNode ? `${fmt(r.median_ms)} ms` : `${fmt(r.median_ms)} ms (${r.ratio.toFixed(2)}x node)`,
      rss: "",
      target: r.name.includes("list_realms") ? "<= 1.6x node" : "",
      ...(r.name.includes("list_realms") ? { ok: r.ratio <= 1.6 } : {}),
    });
  }
}

async function benchListRealms(state, runs, rows) {
  const times = [];
  const rss = [];
  let count = 0;
  for (let i = 0; i < runs + 1; i++) {
    const r = await cli(state, ["list_realms"]);
    if (i === 0) {
      count = r.stdout.trim().split("\n").length - 2;
      continue;
    }
    times.push(r.seconds * 1000);
    rss.push(r.rssMb);
  }
  const ms = median(times);
  rows.push({
    name: `list_realms (${fmt(count)} realms, start-up included)`,
    value: `${fmt(ms)} ms${state.bareMs ? ` (+${fmt(ms - state.bareMs)} ms over node)` : ""}`,
    rss: `${fmt(median(rss))} MB`,
    target: "< 150 ms",
    ok: ms < 150,
  });
}

async function benchChangeUserRole(state, runs, rows) {
  const f = state.facts;
  // Measured in the server environment and, when this shell has Node start-up variables that
  // were left out, also with them; with each events transport. Interleaved, so that machine
  // load affects all alike.
  const envs = [{ label: "", env: cliEnv(state) }];
  const left = KEEP_NODE_ENV ? [] : nodeStartupVariablesIn(process.env);
  if (left.length) envs.push({ label: ` (with ${left.join(", ")})`, env: cliEnv(state, { keepNodeEnv: true }) });
  const variants = envs.flatMap((e) => EVENT_MODES.map((mode) => ({ ...e, mode })));
  const times = variants.map(() => []);
  const rss = variants.map(() => []);
  const roles = ["moderator", "member"];
  let k = 0;
  for (let i = 0; i < runs + 1; i++) {
    for (const [v, { env, mode }] of variants.entries()) {
      const r = await cli(state, ["change_user_role", "-r", f.bigRealm.stringId, f.roleUser.email, roles[k++ % 2], ...eventsArg(mode)], { env });
      if (i === 0) continue;
      times[v].push(r.seconds * 1000);
      rss[v].push(r.rssMb);
    }
  }
  // Leave the user a member.
  if (k % 2 === 1) await cli(state, ["change_user_role", "-r", f.bigRealm.stringId, f.roleUser.email, "member", ...NO_EVENTS]);
  for (const [v, { label, mode }] of variants.entries()) {
    rows.push(singleUserRow(`change_user_role (realm of ${fmt(f.bigRealm.users)} users, member <-> moderator) --events=${mode}${label}`, times[v], rss[v]));
  }
}

/** A table row for a single-user command: median wall time with the range, target 150 ms. */
function singleUserRow(name, times, rss) {
  const ms = median(times);
  return {
    name,
    value: `${fmt(ms)} ms (${fmt(Math.min(...times))}-${fmt(Math.max(...times))})`,
    rss: `${fmt(median(rss))} MB`,
    target: "< 150 ms",
    ok: ms < 150,
  };
}

/**
 * The other single-user commands on the realm of 50,000 users, each run `runs` times, round by
 * round so that machine load affects them alike; every round leaves the user as it found it
 * (deactivate then reactivate, change the address and back, create a user then delete it).
 */
async function benchSingleUser(state, runs, rows) {
  const f = state.facts;
  const realm = f.bigRealm.stringId;
  const user = f.roleUser.email;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "zm-bench-single-"));
  const passwordFile = path.join(dir, "password");
  fs.writeFileSync(passwordFile, "Xk9#mq2!vLr7@pZw-bench\n", { mode: 0o600 });
  const other = `renamed-${process.pid}@big.example.com`;
  const created = (i, mode) => `bench-${process.pid}-${i}-${mode}@big.example.com`;
  // `events: true`: the command sends real-time events; it runs once per EVENT_MODES entry.
  const steps = [
    { name: "deactivate_user -f", events: true, args: () => ["deactivate_user", "-r", realm, user, "-f"] },
    { name: "reactivate_user", events: true, args: () => ["reactivate_user", "-r", realm, user] },
    { name: "change_user_email", events: true, args: () => ["change_user_email", "-r", realm, user, other] },
    { name: "change_user_email (back)", events: true, args: () => ["change_user_email", "-r", realm, other, user], report: false },
    { name: "create_user (no password)", events: true, args: (i, mode) => ["create_user", "-r", realm, created(i, mode), "Bench User"] },
    { name: "delete_user -f", events: true, args: (i, mode) => ["delete_user", "-r", realm, "-u", created(i, mode), "-f"] },
    { name: "send_password_reset_email -u", events: true, args: () => ["send_password_reset_email", "-r", realm, "-u", user] },
    { name: "change_password --password-file", events: false, args: () => ["change_password", "-r", realm, user, "--password-file", passwordFile] },
    { name: "show_admins", events: false, args: () => ["show_admins", "-r", realm] },
    { name: "generate_realm_creation_link", events: false, args: () => ["generate_realm_creation_link"] },
  ];
  // One variant per (step, transport): a round runs every step with --events=none, then every
  // step with --events=rabbitmq (each pass leaves the user as it found it).
  const variants = EVENT_MODES.flatMap((mode) => steps.filter((s) => s.events || mode === EVENT_MODES[0]).map((step) => ({ step, mode })));
  const times = variants.map(() => []);
  const rss = variants.map(() => []);
  try {
    for (let i = 0; i < runs + 1; i++) {
      for (const [k, { step, mode }] of variants.entries()) {
        const r = await cli(state, [...step.args(i, mode), ...(step.events ? eventsArg(mode) : [])]);
        if (i === 0) continue;
        times[k].push(r.seconds * 1000);
        rss[k].push(r.rssMb);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // Rows per step, the transports side by side.
  for (const step of steps) {
    if (step.report === false) continue;
    for (const [k, v] of variants.entries()) {
      if (v.step !== step) continue;
      rows.push(singleUserRow(`${step.name}${step.events ? ` --events=${v.mode}` : ""} (realm of ${fmt(f.bigRealm.users)} users)`, times[k], rss[k]));
    }
  }
}

async function benchPasswordReset(state, smtp, rows) {
  const f = state.facts;
  const before = smtp.sink.count;
  log(`send_password_reset_email -r ${f.bigRealm.stringId} -a: ${fmt(f.bigRealm.users)} emails …`);
  const r = await cli(state, ["send_password_reset_email", "-r", f.bigRealm.stringId, "-a", ...NO_EVENTS]);
  const received = smtp.sink.count - before;
  const expected = Number(/Sent (\d+) password reset email/.exec(r.stdout)?.[1] ?? Number.NaN);
  if (received !== expected) throw new Error(`the SMTP sink received ${received} emails, the command says it sent ${expected}`);
  const perSecond = received / r.seconds;
  rows.push({
    name: `send_password_reset_email -a (${fmt(received)} users, local SMTP sink)`,
    value: `${fmt(perSecond)} emails/s (${fmt(r.seconds, 1)} s)`,
    rss: `${fmt(r.rssMb)} MB`,
    target: ">= 1,000/s, < 200 MB",
    ok: perSecond >= 1000 && r.rssMb < 200,
  });
}

async function benchExport(state, rows) {
  const script = path.join(ROOT, "bench", "export.mjs");
  const messages = state.facts.exportUser.messages;
  if (fs.existsSync(script)) {
    log(`bench/export.mjs --messages ${fmt(messages)} (builds its own database) …`);
    const r = await measure(process.execPath, [script, "--messages", String(messages)], { env: KEEP_NODE_ENV ? process.env : serverNodeEnv(process.env) });
    if (r.code !== 0) throw new Error(`bench/export.mjs failed (${r.code}):\n${r.stderr.slice(-2000)}`);
    const doc = JSON.parse(r.stdout);
    rows.push({
      name: `export_single_user (${fmt(doc.messages)} messages; bench/export.mjs)`,
      value: `${fmt(doc.seconds, 1)} s`,
      rss: `${fmt(doc.peak_rss_mb)} MB`,
      target: "< 60 s, < 200 MB",
      ok: doc.seconds < 60 && doc.peak_rss_mb < 200,
    });
    return;
  }
  if (!fs.existsSync(path.join(ROOT, "src", "commands", "export_single_user.ts"))) {
    rows.push({ name: "export_single_user", value: "(not available)", rss: "", target: "< 60 s, < 200 MB" });
    return;
  }
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "zm-bench-export-"));
  try {
    const u = state.facts.exportUser;
    log(`export_single_user ${u.email} (${fmt(u.messages)} messages) …`);
    const r = await cli(state, ["export_single_user", "-r", u.realm, u.email, "--output", path.join(out, "export"), "--json"]);
    rows.push({
      name: `export_single_user (${fmt(u.messages)} messages)`,
      value: `${fmt(r.seconds, 1)} s`,
      rss: `${fmt(r.rssMb)} MB`,
      target: "< 60 s, < 200 MB",
      ok: r.seconds < 60 && r.rssMb < 200,
    });
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------

function machine() {
  const cpus = os.cpus();
  let pgVersion = "";
  try {
    const st = readBenchState();
    pgVersion = execFileSync(path.join(path.dirname(st.sandbox.pgCtl), "postgres"), ["--version"], { encoding: "utf8" }).trim();
  } catch {
    /* unknown */
  }
  return {
    cpu: cpus[0]?.model?.trim() ?? "unknown",
    cores: cpus.length,
    memoryGb: +(os.totalmem() / 1024 ** 3).toFixed(1),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    postgres: pgVersion,
    loadavg: os.loadavg().map((x) => +x.toFixed(2)),
  };
}

function printTable(rows, m, state) {
  const s = state.sizes;
  const lines = [];
  lines.push(`zulip-manage benchmarks (${new Date().toISOString().slice(0, 10)})`);
  lines.push(`Machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB RAM, ${m.os}, Node.js ${m.node}${m.postgres ? `, ${m.postgres}` : ""}`);
  lines.push(
    `Load average (1/5/15 min) at the start: ${state.loadAtStart.join(" / ")}, at the end: ${m.loadavg.join(" / ")} (other work on the machine skews the figures)`,
  );
  const left = KEEP_NODE_ENV ? [] : nodeStartupVariablesIn(process.env);
  if (left.length) {
    lines.push(`This shell sets ${left.join(", ")}, which a Zulip server does not: figures without it, and rows marked "with ${left.join(", ")}" with it.`);
  }
  if (s) {
    lines.push(
      `Database: ${fmt(s.realms)} realms, ${fmt(s.users)} users, ${fmt(s.messages)} messages, ${fmt(s.usermessages)} UserMessage rows ` +
        `(${fmt(s.bytes / 1048576)} MB), generated in ${fmt(state.seconds)} s by bench/generate.mjs`,
    );
  }
  lines.push("");
  const head = ["Benchmark", "Result", "Peak RSS", "Target", ""];
  const body = rows.map((r) => [r.name, r.value, r.rss ?? "", r.target ?? "", r.ok === undefined ? "" : r.ok ? "ok" : "MISSED"]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => String(b[i]).length)));
  const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(widths[i])).join(" | ")} |`;
  lines.push(line(head));
  lines.push(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const b of body) lines.push(line(b));
  process.stdout.write(lines.join("\n") + "\n");
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (!fs.existsSync(path.join(ROOT, "dist", "bundle", "cli.js")) && !fs.existsSync(path.join(ROOT, "dist", "cli", "main.js"))) {
    throw new Error("dist/ is missing: run `npm run build` first");
  }
  let state = readBenchState();
  if (!state?.facts || !fs.existsSync(state.sandbox.dataDir)) {
    if (state) await stopBench();
    log(`no benchmark database yet: generating one (bench/generate.mjs${o.scale !== 1 ? ` --scale ${o.scale}` : ""}) …`);
    state = await generate(defaultSpec(o.scale));
  } else {
    log(`using the benchmark database in ${state.sandbox.dir} (${BENCH_STATE})`);
  }

  state.loadAtStart = os.loadavg().map((x) => +x.toFixed(2));
  const [memcached, smtp] = await Promise.all([startMemcached(), startSmtpSink()]);
  if (!memcached) log("memcached not found: write commands will warn that the cache could not be updated");
  const rabbit = o.rabbitmq ? await startRabbitMQ({ password: rabbitPassword(state), log }) : null;
  if (rabbit) {
    EVENT_MODES.push("rabbitmq");
    log(`RabbitMQ on 127.0.0.1:${rabbit.port}: write commands run with --events=none and --events=rabbitmq`);
  }
  configureServices(state, { smtpPort: smtp.port, memcachedLocation: memcached?.location, rabbit });
  const rows = [];
  try {
    if (o.only.includes("startup")) await benchStartup(state, o.runs, rows);
    if (o.only.includes("list_realms")) await benchListRealms(state, o.runs, rows);
    if (o.only.includes("change_user_role")) await benchChangeUserRole(state, o.runs, rows);
    if (o.only.includes("single_user")) await benchSingleUser(state, o.runs, rows);
    if (o.only.includes("password_reset")) await benchPasswordReset(state, smtp, rows);
    if (o.only.includes("export")) await benchExport(state, rows);
  } finally {
    memcached?.stop();
    await smtp.close();
    if (rabbit) log(`RabbitMQ: ${fmt(rabbit.published())} messages published by the commands and drained`);
    await rabbit?.stop();
  }
  const m = machine();
  printTable(rows, m, state);
  if (o.json) process.stdout.write(JSON.stringify({ machine: m, database: state.sizes, results: rows }, null, 2) + "\n");
  if (o.stop) {
    await stopBench();
    log("benchmark database removed");
  } else {
    log(`the benchmark database keeps running for the next run; remove it with: node bench/generate.mjs --stop`);
  }
}

main().catch((e) => {
  process.stderr.write(`bench: ${e?.stack ?? e}\n`);
  process.exit(1);
});
