#!/usr/bin/env node
// Start-up benchmark: the median wall time of a bare `node -e 0`, `zulip-manage --version` and
// `zulip-manage list_realms` against a local database, measured in one run with the three
// commands interleaved round by round (so machine load affects them alike), and the ratios to
// the bare node start. Target (issue 2): list_realms within 1.6× of `node -e 0`.
//
//   npm run build && node bench/startup.mjs [--runs 40] [--warmup 5] [--use-env] [--keep-node-env] [--json]
//
// Node's own start-up variables (NODE_EXTRA_CA_CERTS, NODE_OPTIONS; see NODE_STARTUP_VARIABLES)
// are left out of the measured environment unless --keep-node-env is given; when the shell has
// them, node -e 0 and list_realms are measured with them as well.
//
// Without --use-env it starts a throwaway PostgreSQL sandbox (src/dev/sandbox.ts) with the demo
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

/**
 * Variables that change how Node itself starts, which some shells set (CI images, proxies with
 * their own CA) but a Zulip server's `zulip` user does not have. NODE_EXTRA_CA_CERTS makes every
 * Node process, `node -e 0` included, read and parse that certificate file before running any
 * JavaScript: on a 2-core VM with the Debian CA bundle that is about 30 ms per process. The
 * benchmarks leave these variables out unless asked to keep them, and say when they did.
 */
export const NODE_STARTUP_VARIABLES = ["NODE_EXTRA_CA_CERTS", "NODE_OPTIONS"];

/** `env` without NODE_STARTUP_VARIABLES. */
export function serverNodeEnv(env) {
  const out = { ...env };
  for (const k of NODE_STARTUP_VARIABLES) delete out[k];
  return out;
}

/** The NODE_STARTUP_VARIABLES set in `env`. */
export function nodeStartupVariablesIn(env) {
  return NODE_STARTUP_VARIABLES.filter((k) => env[k]);
}

/**
 * Median wall times (ms) of node -e 0, --version and list_realms; `env` points the CLI at a
 * database. With `shellEnv` (the invoking shell's environment, when it differs from `env` by
 * Node start-up variables), node -e 0 and list_realms are also measured with it, interleaved.
 */
export async function measureStartup(env, { runs = 40, warmup = 5, shellEnv = null } = {}) {
  const cases = [
    { name: "node -e 0", argv: [process.execPath, "-e", "0"], env },
    { name: "zulip-manage --version", argv: [process.execPath, BIN, "--version"], env },
    { name: "zulip-manage list_realms", argv: [process.execPath, BIN, "list_realms"], env },
  ];
  if (shellEnv) {
    const vars = nodeStartupVariablesIn(shellEnv).join(", ");
    cases.push(
      { name: `node -e 0 (with ${vars})`, argv: [process.execPath, "-e", "0"], env: shellEnv, shell: true },
      { name: `zulip-manage list_realms (with ${vars})`, argv: [process.execPath, BIN, "list_realms"], env: shellEnv, shell: true },
    );
  }
  const times = cases.map(() => []);
  for (let i = 0; i < warmup + runs; i++) {
    for (let c = 0; c < cases.length; c++) {
      const ms = await runOnce(cases[c].argv, cases[c].env);
      if (i >= warmup) times[c].push(ms);
    }
  }
  const base = median(times[0]);
  const shellBase = shellEnv ? median(times[3]) : base;
  return cases.map((c, i) => ({
    name: c.name,
    median_ms: median(times[i]),
    min_ms: Math.min(...times[i]),
    ratio: median(times[i]) / (c.shell ? shellBase : base),
  }));
}

export function machine() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    memory_gb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    loadavg: os.loadavg().map((x) => x.toFixed(2)),
  };
}

export function printStartup(rows) {
  console.log("start-up (median wall time, interleaved runs)");
  for (const r of rows)
    console.log(`  ${r.name.padEnd(28)} ${r.median_ms.toFixed(1).padStart(7)} ms  (min ${r.min_ms.toFixed(1)})  ${r.ratio.toFixed(2)}× node`);
}

async function main() {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : dflt);
  const runs = opt("--runs", 40);
  const warmup = opt("--warmup", 5);
  const keepNodeEnv = args.includes("--keep-node-env");
  let env = keepNodeEnv ? { ...process.env } : serverNodeEnv(process.env);
  let cleanup = async () => {};
  if (!args.includes("--use-env")) {
    const sandbox = await import(path.join(ROOT, "dist", "dev", "sandbox.js"));
    const { DEMO_SPEC, seedServer } = await import(path.join(ROOT, "dist", "dev", "seed.js"));
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
    const left = keepNodeEnv ? [] : nodeStartupVariablesIn(process.env);
    const rows = await measureStartup(env, {
      runs,
      warmup,
      shellEnv: left.length ? { ...env, ...Object.fromEntries(left.map((k) => [k, process.env[k]])) } : null,
    });
    if (args.includes("--json")) console.log(JSON.stringify({ machine: machine(), startup: rows }, null, 2));
    else {
      const m = machine();
      console.log(`machine: ${m.cpu}, ${m.cores} cores, ${m.memory_gb} GB, node ${m.node}, load ${m.loadavg.join(" ")}`);
      printStartup(rows);
      const lr = rows[2];
      console.log(`target: list_realms ≤ 1.6× node -e 0 → ${lr.ratio <= 1.6 ? "met" : "not met"} (${lr.ratio.toFixed(2)}×)`);
      if (left.length) {
        console.log(
          `(this shell sets ${left.join(", ")}, which a Zulip server does not: the first three figures are without it, ` +
            `the last two with it; --keep-node-env measures everything with it)`,
        );
      }
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
