#!/usr/bin/env node
// Build a large Zulip 12 database for the benchmarks, in a throwaway PostgreSQL cluster, with the
// project's own seed builder (dist/dev/seed.js, set-based SQL: a few INSERT … SELECT per realm,
// per 50,000 users, per 100,000 messages).
//
//   npm run build && node bench/generate.mjs            # default size, see below
//   node bench/generate.mjs --scale 0.1                 # a tenth of everything (quick try)
//   node bench/generate.mjs --force                     # throw away the existing one and rebuild
//   node bench/generate.mjs --stop                      # stop the cluster and delete everything
//
// Default population (--realms, --users, --messages, --big-realm-users, --export-messages):
//   - 1,000 realms: zulipinternal and its system bots, "big" (50,000 users: an owner, the user
//     whose role the benchmark changes, and bulk members), "export" (the user whose data is
//     exported, and a peer), and org0001 … org0997 sharing the remaining users (an owner, an
//     admin, bulk members, the three default channels each)
//   - 200,000 users in total
//   - 2,000,000 channel messages: 1,000,000 in a channel of "export" whose two subscribers are
//     the export user and the peer, the rest in a private "bench" channel (owner + admin) of
//     the first 100 org realms; one UserMessage per subscriber per message
//
// The cluster keeps running; its location, the /etc/zulip replica and the facts the benchmark
// needs (realm ids, user emails) are recorded in $TMPDIR/zulip-manage-bench.json for
// bench/run.mjs. Server settings are tuned for loading (fsync off, large WAL, autovacuum off
// while loading, then VACUUM ANALYZE).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
// Per user (several admins may benchmark on one machine): see userStateDir in src/dev/sandbox.ts.
const sandboxModule = path.join(ROOT, "dist", "dev", "sandbox.js");
if (!fs.existsSync(sandboxModule)) throw new Error("dist/ is missing: run `npm run build` first");
export const BENCH_STATE = path.join((await import(sandboxModule)).userStateDir(), "bench.json");
export const EXTERNAL_HOST = "bench.example.net";
/** Settings block bench/run.mjs rewrites with the SMTP sink's and memcached's ports. */
export const SERVICES_MARK = "# --- bench services ---";

const SIZES = ["realms", "users", "messages", "bigRealmUsers", "exportMessages", "messageRealms"];

/** The default population, optionally scaled (0.1 = a tenth of everything). */
export function defaultSpec(scale = 1) {
  return scaleSpec({ realms: 1000, users: 200_000, messages: 2_000_000, bigRealmUsers: 50_000, exportMessages: 1_000_000, messageRealms: 100, scale });
}

function scaleSpec(o) {
  if (o.scale !== 1) for (const k of SIZES) o[k] = Math.max(1, Math.round(o[k] * o.scale));
  o.realms = Math.max(3, o.realms);
  o.messageRealms = Math.min(o.messageRealms, o.realms - 3);
  return o;
}

function parseArgs(argv) {
  const o = { ...defaultSpec(1), force: false, stop: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v < 0) throw new Error(`${a} needs a number`);
      return v;
    };
    if (a === "--realms") o.realms = num();
    else if (a === "--users") o.users = num();
    else if (a === "--messages") o.messages = num();
    else if (a === "--big-realm-users") o.bigRealmUsers = num();
    else if (a === "--export-messages") o.exportMessages = num();
    else if (a === "--message-realms") o.messageRealms = num();
    else if (a === "--scale") o.scale = num();
    else if (a === "--force") o.force = true;
    else if (a === "--stop") o.stop = true;
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
  return scaleSpec(o);
}

function log(msg) {
  process.stderr.write(`[generate ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

function fmt(n) {
  return n.toLocaleString("en-US");
}

export function readBenchState() {
  try {
    return JSON.parse(fs.readFileSync(BENCH_STATE, "utf8"));
  } catch {
    return null;
  }
}

async function lib() {
  const dist = path.join(ROOT, "dist", "dev");
  if (!fs.existsSync(path.join(dist, "sandbox.js"))) throw new Error("dist/ is missing: run `npm run build` first");
  const [sandbox, seed] = await Promise.all([import(path.join(dist, "sandbox.js")), import(path.join(dist, "seed.js"))]);
  return { ...sandbox, ...seed };
}

export async function stopBench() {
  const st = readBenchState();
  if (!st) return false;
  const { stopSandbox } = await lib();
  stopSandbox(st.sandbox, BENCH_STATE);
  fs.rmSync(BENCH_STATE, { force: true });
  return true;
}

/** Build the database; returns the recorded state. */
export async function generate(o) {
  const L = await lib();
  const t0 = Date.now();
  const sandbox = await L.startSandbox({
    prefix: "zulip-manage-bench-",
    settings: [
      "shared_buffers=512MB",
      "maintenance_work_mem=512MB",
      "work_mem=64MB",
      "max_wal_size=8GB",
      "checkpoint_timeout=30min",
      "wal_level=minimal",
      "max_wal_senders=0",
      "autovacuum=off",
    ],
  });
  const state = { sandbox, spec: o, generatedAt: new Date().toISOString() };
  fs.writeFileSync(BENCH_STATE, JSON.stringify(state, null, 2) + "\n");
  log(`PostgreSQL (${sandbox.source}) on port ${sandbox.port}, data in ${sandbox.dataDir}`);
  const db = await L.createZulipDatabase(sandbox, { name: "zulip", root: ROOT });
  try {
    // ---- realms and users -------------------------------------------------------------
    const orgCount = o.realms - 3; // zulipinternal, big, export
    const systemBots = 3;
    const bigUsers = Math.max(2, o.bigRealmUsers);
    const remaining = Math.max(orgCount * 2, o.users - bigUsers - 2 - systemBots);
    const perOrg = Math.floor(remaining / orgCount);
    let extra = remaining - perOrg * orgCount;
    const realms = [
      {
        stringId: "big",
        name: "Big Organization",
        emailDomain: "big.example.com",
        waitingPeriodThreshold: 0,
        users: [
          { fullName: "Big Owner", email: "owner@big.example.com", kind: "owner" },
          { fullName: "Role Target", email: "target@big.example.com", kind: "member" },
        ],
        bulkUsers: bigUsers - 2,
      },
      {
        stringId: "export",
        name: "Export Organization",
        emailDomain: "export.example.com",
        users: [
          { fullName: "Export User", email: "exporter@export.example.com", kind: "owner" },
          { fullName: "Export Peer", email: "peer@export.example.com", kind: "member" },
        ],
        channels: [{ name: "firehose", description: "A million messages", subscribers: "everyone", messages: 0 }],
      },
    ];
    for (let i = 1; i <= orgCount; i++) {
      const n = perOrg + (extra-- > 0 ? 1 : 0);
      realms.push({
        stringId: `org${String(i).padStart(4, "0")}`,
        name: `Organization ${i}`,
        counts: { owners: 1, admins: 1 },
        channels:
          i <= o.messageRealms ? [{ name: "bench", description: "Private benchmark channel", inviteOnly: true, subscribers: "staff", messages: 0 }] : [],
        bulkUsers: Math.max(0, n - 2),
      });
    }
    let t = Date.now();
    await db.query("BEGIN");
    const seeded = await L.seedServer(db, { seed: 2026, externalHost: EXTERNAL_HOST, ageDays: 30, realms });
    await db.query("COMMIT");
    const userCount = Number((await db.query("SELECT count(*) AS n FROM zerver_userprofile")).rows[0].n);
    log(`${fmt(seeded.realms.length + 1)} realms, ${fmt(userCount)} users in ${((Date.now() - t) / 1000).toFixed(0)} s`);

    // ---- messages ---------------------------------------------------------------------
    t = Date.now();
    const big = seeded.realms.find((r) => r.realm.stringId === "big");
    const exp = seeded.realms.find((r) => r.realm.stringId === "export");
    const firehose = exp.channels.find((c) => c.name === "firehose");
    const exporter = exp.users.find((u) => u.deliveryEmail === "exporter@export.example.com");
    const peer = exp.users.find((u) => u.deliveryEmail === "peer@export.example.com");
    const BATCH = 100_000;
    let totalMessages = 0;
    let userMessages = 0;
    const insert = async (channelId, count, senderIds, startMs) => {
      for (let done = 0; done < count; done += BATCH) {
        const n = Math.min(BATCH, count - done);
        await db.query("BEGIN");
        const r = await L.seedBulkMessages(db, {
          channelId,
          count: n,
          senderIds,
          start: new Date(startMs + done * 1000),
          intervalSeconds: 1,
          topics: ["status", "questions", "random", "announcements"],
        });
        await db.query("COMMIT");
        totalMessages += n;
        userMessages += r.userMessages;
      }
    };
    const exportMessages = Math.min(o.exportMessages, o.messages);
    const start = Date.now() - 40 * 86_400_000;
    await insert(firehose.id, exportMessages, [exporter.id, peer.id], start);
    log(`${fmt(exportMessages)} messages for the export user`);
    const rest = o.messages - exportMessages;
    const messageRealms = seeded.realms.filter((r) => r.channels.some((c) => c.name === "bench"));
    if (rest > 0 && messageRealms.length) {
      const per = Math.floor(rest / messageRealms.length);
      let more = rest - per * messageRealms.length;
      for (const r of messageRealms) {
        const n = per + (more-- > 0 ? 1 : 0);
        if (n > 0) await insert(r.channels.find((c) => c.name === "bench").id, n, undefined, start);
      }
    }
    log(`${fmt(totalMessages)} messages, ${fmt(userMessages)} UserMessage rows in ${((Date.now() - t) / 1000).toFixed(0)} s`);

    t = Date.now();
    await db.query("VACUUM (ANALYZE)");
    await db.query("ALTER SYSTEM SET autovacuum = on");
    await db.query("SELECT pg_reload_conf()");
    log(`VACUUM ANALYZE in ${((Date.now() - t) / 1000).toFixed(0)} s`);

    const roleTarget = big.users.find((u) => u.deliveryEmail === "target@big.example.com");
    const conf = L.writeSandboxConfig(sandbox, {
      externalHost: EXTERNAL_HOST,
      dbName: "zulip",
      extraSettings: `\n${SERVICES_MARK}\n${SERVICES_MARK} end\n`,
    });
    const sizes = (
      await db.query(
        `SELECT (SELECT count(*) FROM zerver_realm) AS realms, (SELECT count(*) FROM zerver_userprofile) AS users,
                (SELECT count(*) FROM zerver_message) AS messages, (SELECT count(*) FROM zerver_usermessage) AS usermessages,
                pg_database_size(current_database()) AS bytes`,
      )
    ).rows[0];
    Object.assign(state, {
      conf,
      env: L.sandboxCliEnv(sandbox, conf, "zulip"),
      facts: {
        bigRealm: {
          id: big.realm.id,
          stringId: "big",
          users: Number((await db.query("SELECT count(*) AS n FROM zerver_userprofile WHERE realm_id = $1", [big.realm.id])).rows[0].n),
        },
        roleUser: { id: roleTarget.id, email: roleTarget.deliveryEmail },
        exportUser: { id: exporter.id, email: exporter.deliveryEmail, realm: "export", messages: exportMessages },
      },
      sizes: Object.fromEntries(Object.entries(sizes).map(([k, v]) => [k, Number(v)])),
      seconds: Math.round((Date.now() - t0) / 1000),
    });
    fs.writeFileSync(BENCH_STATE, JSON.stringify(state, null, 2) + "\n");
    log(
      `done in ${state.seconds} s: ${fmt(state.sizes.realms)} realms, ${fmt(state.sizes.users)} users, ${fmt(state.sizes.messages)} messages, ` +
        `${fmt(state.sizes.usermessages)} UserMessage rows, ${(state.sizes.bytes / 1048576).toFixed(0)} MB`,
    );
    return state;
  } catch (e) {
    await db.end().catch(() => undefined);
    L.stopSandbox(sandbox, null);
    fs.rmSync(BENCH_STATE, { force: true });
    throw e;
  } finally {
    await db.end().catch(() => undefined);
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  if (o.stop) {
    const stopped = await stopBench();
    process.stdout.write(stopped ? "Stopped the benchmark database and removed its files.\n" : "No benchmark database is recorded.\n");
    return;
  }
  const existing = readBenchState();
  if (existing && !o.force) {
    if (existing.facts && fs.existsSync(existing.sandbox.dataDir)) {
      process.stdout.write(`A benchmark database already exists (${BENCH_STATE}); use --force to rebuild it or --stop to remove it.\n`);
      return;
    }
  }
  if (existing) await stopBench();
  const state = await generate(o);
  process.stdout.write(`Benchmark database ready (recorded in ${BENCH_STATE}). Run: npm run bench\n`);
  return state;
}

const invokedDirectly = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  main().catch((e) => {
    process.stderr.write(`generate: ${e?.stack ?? e}\n`);
    process.exit(1);
  });
}
