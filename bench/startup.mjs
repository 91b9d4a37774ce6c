#!/usr/bin/env node
// Start-up benchmark: the median wall time of a bare `node -e 0`, `zulip-manage --version` and
// `zulip-manage list_realms` against a local database, measured in one run with the three
// commands interleaved round by round (so machine load affects them alike), and the ratios to
// the bare node start. Target (issue 2): list_realms within 1.6× of `node -e 0`.
//
//   npm run build && node bench/startup.mjs [--runs 40] [--warmup 5] [--use-env] [--json]
//
// Without --use-env it starts a throwaway PostgreSQL sandbox (src/lib/sandbox.ts) with the demo
// server's data and removes it afterwards; with --use-env it uses PG*/ZULIP_CONF_DIR from the
// environment (e.g. the lines `npm run demo` prints). Exported for bench/run.mjs as
// measureStartup(env, opts).
import { spawn } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BIN = path.join(ROOT, "bin", "zulip-manage");

function runOnce(argv, env) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(argv[0], argv.slice(1), { env, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("exit", (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code !== 0) reject(new Error(`${argv.join(" ")} exited ${code}: ${err}`));
      else resolve(ms);
    });
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Median wall times (ms) of node -e 0, --version and list_realms; `env` points the CLI at a database. */
export async function measureStartup(env, { runs = 40, warmup = 5 } = {}) {
  const cases = [
    { name: "node -e 0", argv: [process.execPath, "-e", "0"] },
    { name: "zulip-manage --version", argv: [process.execPath, BIN, "--version"] },
    { name: "zulip-manage list_realms", argv: [process.execPath, BIN, "list_realms"] },
  ];
  const times = cases.map(() => []);
  for (let i = 0; i < warmup + runs; i++) {
    for (let c = 0; c < cases.length; c++) {
      const ms = await runOnce(cases[c].argv, env);
      if (i >= warmup) times[c].push(ms);
    }
  }
  const base = median(times[0]);
  return cases.map((c, i) => ({ name: c.name, median_ms: median(times[i]), min_ms: Math.min(...times[i]), ratio: median(times[i]) / base }));
}

export function machine() {
  const cpus = os.cpus();
  return { cpu: cpus[0]?.model ?? "unknown", cores: cpus.length, memory_gb: Math.round(os.totalmem() / 2 ** 30), node: process.version, loadavg: os.loadavg().map((x) => x.toFixed(2)) };
}

export function printStartup(rows) {
  console.log("start-up (median wall time, interleaved runs)");
  for (const r of rows) console.log(`  ${r.name.padEnd(28)} ${r.median_ms.toFixed(1).padStart(7)} ms  (min ${r.min_ms.toFixed(1)})  ${r.ratio.toFixed(2)}× node`);
}

async function main() {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
  const runs = opt("--runs", 40);
  const warmup = opt("--warmup", 5);
  let env = { ...process.env };
  let cleanup = async () => {};
  if (!args.includes("--use-env")) {
    const sandbox = await import(path.join(ROOT, "dist", "lib", "sandbox.js"));
    const { DEMO_SPEC, seedServer } = await import(path.join(ROOT, "dist", "lib", "seed.js"));
    const state = await sandbox.startSandbox({ prefix: "zulip-manage-bench-startup-", stateFile: null });
    cleanup = async () => sandbox.stopSandbox(state, null);
    try {
      const db = await sandbox.createZulipDatabase(state);
      await db.query("BEGIN");
      await seedServer(db, DEMO_SPEC);
      await db.query("COMMIT");
      await db.end();
      const conf = sandbox.writeSandboxConfig(state, { externalHost: "zulip.example.net" });
      // Over the Unix socket, as a Zulip server's own database is reached (peer authentication).
      env = { ...env, ...sandbox.sandboxCliEnv(state, conf), PGHOST: state.socketDir, ZULIP_MANAGE_ALLOW_ROOT: "1" };
    } catch (e) {
      await cleanup();
      throw e;
    }
  }
  try {
    const rows = await measureStartup(env, { runs, warmup });
    if (args.includes("--json")) console.log(JSON.stringify({ machine: machine(), startup: rows }, null, 2));
    else {
      const m = machine();
      console.log(`machine: ${m.cpu}, ${m.cores} cores, ${m.memory_gb} GB, node ${m.node}, load ${m.loadavg.join(" ")}`);
      printStartup(rows);
      const lr = rows[2];
      console.log(`target: list_realms ≤ 1.6× node -e 0 → ${lr.ratio <= 1.6 ? "met" : "not met"} (${lr.ratio.toFixed(2)}×)`);
    }
  } finally {
    await cleanup();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
