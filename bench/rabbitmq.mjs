// A throwaway RabbitMQ for the benchmarks (Debian's rabbitmq-server), started the way the test
// harness starts one (test/helpers/rabbitmq.ts; bench does not import test code): a private
// Erlang node with its own epmd on a free port, AMQP on 127.0.0.1, the Mnesia database, logs,
// configuration and Erlang cookie in a temp dir, run as `nobody` when we are root. Never the
// system service. One user (`zulip`, the password given: the sandbox's rabbitmq_password secret)
// on the default vhost "/".
//
// startRabbitMQ() also starts a consumer that drains what the commands publish to Tornado's and
// the queue workers' queues (a stand-in for a running Zulip, so that nothing piles up).
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** rabbit_password_hashing_sha256: base64(salt(4) + sha256(salt + password)). */
function passwordHash(password) {
  const salt = crypto.randomBytes(4);
  const hash = crypto
    .createHash("sha256")
    .update(Buffer.concat([salt, Buffer.from(password, "utf8")]))
    .digest();
  return Buffer.concat([salt, hash]).toString("base64");
}

function erlangBin(name) {
  const base = "/usr/lib/erlang";
  try {
    for (const d of fs
      .readdirSync(base)
      .filter((x) => x.startsWith("erts-"))
      .sort()
      .reverse()) {
      const p = path.join(base, d, "bin", name);
      if (fs.existsSync(p)) return p;
    }
  } catch {
    /* not installed */
  }
  return ["/usr/bin", "/usr/local/bin"].map((d) => path.join(d, name)).find((p) => fs.existsSync(p)) ?? null;
}

/** The queues the benchmarked commands publish to (declared durable, as Zulip declares them). */
const DRAINED_QUEUES = ["notify_tornado", "deferred_work", "email_senders", "missedmessage_mobile_notifications", "user_activity"];

/**
 * Start the broker; resolves with {host, port, vhost, username, published(), stop()}, or null
 * (with the reason logged) when rabbitmq-server is not installed.
 */
export async function startRabbitMQ({ password, log = () => undefined }) {
  const server = process.env.ZM_BENCH_RABBITMQ_SERVER || "/usr/lib/rabbitmq/bin/rabbitmq-server";
  const epmdBin = erlangBin("epmd");
  if (!fs.existsSync(server) || !epmdBin) {
    log("rabbitmq-server not found (apt-get install rabbitmq-server): events are measured with --events=none only");
    return null;
  }
  const L = await import(path.join(ROOT, "dist", "dev", "sandbox.js"));
  const amqp = (await import("amqplib")).default;
  const runAs = L.unprivilegedUser("nobody");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "zm-bench-rabbitmq-"));
  const [port, distPort, epmdPort] = [await L.freePort(), await L.freePort(), await L.freePort()];
  const files = {
    conf: path.join(dir, "rabbitmq.conf"),
    advanced: path.join(dir, "advanced.config"),
    plugins: path.join(dir, "enabled_plugins"),
    envConf: path.join(dir, "rabbitmq-env.conf"),
    defs: path.join(dir, "definitions.json"),
  };
  fs.writeFileSync(
    files.conf,
    [
      `listeners.tcp.1 = 127.0.0.1:${port}`,
      "loopback_users = none",
      `load_definitions = ${files.defs}`,
      "log.console = false",
      "log.file.level = warning",
      "disk_free_limit.absolute = 1",
      "",
    ].join("\n"),
  );
  fs.writeFileSync(
    files.defs,
    JSON.stringify({
      users: [{ name: "zulip", password_hash: passwordHash(password), hashing_algorithm: "rabbit_password_hashing_sha256", tags: "administrator" }],
      vhosts: [{ name: "/" }],
      permissions: [{ user: "zulip", vhost: "/", configure: ".*", write: ".*", read: ".*" }],
    }),
  );
  fs.writeFileSync(files.advanced, "[].\n");
  fs.writeFileSync(files.plugins, "[].\n");
  fs.writeFileSync(files.envConf, "");
  const logFile = path.join(dir, "rabbitmq.log");
  fs.writeFileSync(logFile, "");
  for (const f of [...Object.values(files), logFile]) fs.chmodSync(f, 0o644);
  if (runAs) L.chownTree(dir, runAs, true);
  const env = {
    PATH: "/usr/bin:/bin:/usr/sbin:/sbin",
    LANG: "C.UTF-8",
    HOME: dir,
    ERL_EPMD_PORT: String(epmdPort),
    ERL_EPMD_ADDRESS: "127.0.0.1",
    RABBITMQ_NODENAME: "zmbench@localhost",
    RABBITMQ_NODE_IP_ADDRESS: "127.0.0.1",
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_CONFIG_FILE: files.conf,
    RABBITMQ_ADVANCED_CONFIG_FILE: files.advanced,
    RABBITMQ_ENABLED_PLUGINS_FILE: files.plugins,
    RABBITMQ_CONF_ENV_FILE: files.envConf,
    RABBITMQ_MNESIA_BASE: path.join(dir, "mnesia"),
    RABBITMQ_LOG_BASE: path.join(dir, "log"),
    RABBITMQ_PID_FILE: path.join(dir, "rabbitmq.pid"),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: "-kernel inet_dist_use_interface {127,0,0,1}",
    // The script then execs the Erlang VM instead of keeping a shell in front of it.
    NOTIFY_SOCKET: path.join(dir, "no-systemd"),
  };
  const epmd = L.spawnServer(epmdBin, ["-port", String(epmdPort), "-address", "127.0.0.1"], { cwd: dir, env, logFile, runAs });
  const broker = L.spawnServer(server, [], { cwd: dir, env, logFile, runAs });
  const connect = () =>
    amqp.connect({ protocol: "amqp", hostname: "127.0.0.1", port, username: "zulip", password, vhost: "/", heartbeat: 0 }, { timeout: 1000 });
  const stopAll = async () => {
    await L.stopServer(broker, "SIGKILL", 5000);
    await L.stopServer(epmd, "SIGKILL", 2000);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  let conn;
  try {
    await L.waitFor(
      "rabbitmq startup",
      async () => {
        try {
          const c = await connect();
          await c.close();
          return true;
        } catch {
          return false;
        }
      },
      { service: broker, timeoutMs: 90_000, intervalMs: 200 },
    );
    broker.child.unref();
    epmd.child.unref();
    // The stand-in consumer: every queue declared as Zulip declares it, messages dropped on arrival.
    conn = await connect();
    const ch = await conn.createChannel();
    let published = 0;
    for (const q of DRAINED_QUEUES) {
      await ch.assertQueue(q, { durable: true, exclusive: false, autoDelete: false });
      await ch.consume(q, () => published++, { noAck: true });
    }
    return {
      host: "127.0.0.1",
      port,
      vhost: "/",
      username: "zulip",
      /** Messages the stand-in consumer has received so far. */
      published: () => published,
      async stop() {
        await conn.close().catch(() => undefined);
        await stopAll();
      },
    };
  } catch (e) {
    await conn?.close().catch(() => undefined);
    const tail = (() => {
      try {
        return fs.readFileSync(logFile, "utf8").slice(-2000);
      } catch {
        return "";
      }
    })();
    await stopAll();
    throw new Error(`RabbitMQ did not start: ${e?.message ?? e}\n${tail}`);
  }
}
