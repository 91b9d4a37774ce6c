// Throwaway RabbitMQ for tests (Debian's rabbitmq-server), as a private Erlang node: its own
// epmd on a free port, AMQP and distribution ports on 127.0.0.1, the Mnesia database, logs,
// configuration and Erlang cookie (HOME) in a temp dir, run as the service user (`nobody` when
// root). Never the system service. Starting it takes seconds, so the run's global setup starts
// one broker (startRabbitMQ) and hands it to the test files (ZM_TEST_RABBITMQ); each test file
// (each worker process) then claims one of its pre-made virtual hosts (claimVhost), so files
// running side by side never see each other's queues. makeConfDir points settings.py at the
// claimed vhost by default.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import amqp from "amqplib";
import { missingToolMessage } from "./tools.js";
import { chownToServiceUser, findExecutable, freePort, makeTempDir, removeDirSync, spawnService, stopService, track, waitFor } from "./services.js";

export const RABBITMQ_INFO_ENV = "ZM_TEST_RABBITMQ";

declare module "vitest" {
  export interface ProvidedContext {
    zmRabbit: RabbitInfo;
  }
}
const RABBITMQ_USER = "zulip";

export interface RabbitInfo {
  host: string;
  port: number;
  username: string;
  password: string;
  /** Virtual hosts made at boot, each with full permissions for `username`. */
  vhosts: string[];
  /** Where test processes claim a vhost (one file per claimed vhost). */
  claimsDir: string;
}

export interface RabbitInstance extends RabbitInfo {
  dir: string;
  pid: number;
  info(): RabbitInfo;
  /** Stop the broker and its epmd, delete the temp dir. Idempotent. */
  stop(): Promise<void>;
}

function erlangBin(name: string): string | null {
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
  return findExecutable(name, ["/usr/bin"]);
}

/** rabbit_password_hashing_sha256: base64(salt(4) + sha256(salt + password)). */
function passwordHash(password: string): string {
  const salt = crypto.randomBytes(4);
  const hash = crypto
    .createHash("sha256")
    .update(Buffer.concat([salt, Buffer.from(password, "utf8")]))
    .digest();
  return Buffer.concat([salt, hash]).toString("base64");
}

export async function startRabbitMQ(opts: { vhosts?: number } = {}): Promise<RabbitInstance> {
  const server = process.env.ZM_TEST_RABBITMQ_SERVER || "/usr/lib/rabbitmq/bin/rabbitmq-server";
  const epmdBin = erlangBin("epmd");
  // Debian's own server script (not /usr/sbin's wrapper, which insists on running as rabbitmq).
  if (!fs.existsSync(server) || !epmdBin)
    throw new Error(missingToolMessage("rabbitmq-server", "rabbitmq-server", "the real-time event tests (a private RabbitMQ node)"));
  const dir = makeTempDir("rabbitmq");
  const claimsDir = makeTempDir("rabbitmq-claims", { serviceOwned: false });
  fs.chmodSync(claimsDir, 0o777);
  const password = crypto.randomBytes(24).toString("hex");
  const vhosts = ["/", ...Array.from({ length: opts.vhosts ?? 100 }, (_, i) => `zmtest${i + 1}`)];
  const [port, distPort, epmdPort] = [await freePort(), await freePort(), await freePort()];
  let beamPid = -1;
  let epmdPid = -1;
  const untrackBeam = track({ label: "rabbitmq", pid: () => beamPid, signal: "SIGKILL", dir });
  const untrackEpmd = track({ label: "epmd", pid: () => epmdPid, signal: "SIGKILL", dir: claimsDir });
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
      // A test machine may be short of disk; never block publishers over it.
      "disk_free_limit.absolute = 1",
      "",
    ].join("\n"),
  );
  fs.writeFileSync(
    files.defs,
    JSON.stringify({
      users: [{ name: RABBITMQ_USER, password_hash: passwordHash(password), hashing_algorithm: "rabbit_password_hashing_sha256", tags: "administrator" }],
      vhosts: vhosts.map((name) => ({ name })),
      permissions: vhosts.map((vhost) => ({ user: RABBITMQ_USER, vhost, configure: ".*", write: ".*", read: ".*" })),
    }),
  );
  fs.writeFileSync(files.advanced, "[].\n");
  fs.writeFileSync(files.plugins, "[].\n");
  fs.writeFileSync(files.envConf, "");
  const logFile = path.join(dir, "rabbitmq.log");
  fs.writeFileSync(logFile, "");
  for (const f of [...Object.values(files), logFile]) fs.chmodSync(f, 0o644);
  chownToServiceUser(dir, true);
  const env: NodeJS.ProcessEnv = {
    PATH: "/usr/bin:/bin:/usr/sbin:/sbin",
    LANG: "C.UTF-8",
    HOME: dir,
    ERL_EPMD_PORT: String(epmdPort),
    ERL_EPMD_ADDRESS: "127.0.0.1",
    RABBITMQ_NODENAME: "zmtest@localhost",
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
    // The script then execs the Erlang VM instead of keeping a shell in front of it, so the
    // VM is the process we started (and gets the parent-death signal).
    NOTIFY_SOCKET: path.join(dir, "no-systemd"),
  };
  try {
    const epmd = spawnService(epmdBin, ["-port", String(epmdPort), "-address", "127.0.0.1"], { cwd: dir, env, logFile, deathSignal: "SIGKILL" });
    epmdPid = epmd.pid;
    epmd.child.unref();
    const svc = spawnService(server, [], { cwd: dir, env, logFile, deathSignal: "SIGKILL" });
    beamPid = svc.pid;
    await waitFor(
      "rabbitmq startup",
      async () => {
        try {
          const c = await amqp.connect(
            { protocol: "amqp", hostname: "127.0.0.1", port, username: RABBITMQ_USER, password, vhost: "/", heartbeat: 0 },
            { timeout: 1000 },
          );
          await c.close();
          return true;
        } catch {
          return false;
        }
      },
      { service: svc, timeoutMs: 90_000, intervalMs: 200 },
    );
    svc.child.unref();
    const info: RabbitInfo = { host: "127.0.0.1", port, username: RABBITMQ_USER, password, vhosts, claimsDir };
    let stopped = false;
    return {
      ...info,
      dir,
      pid: svc.pid,
      info: () => info,
      async stop() {
        if (stopped) return;
        stopped = true;
        untrackBeam();
        untrackEpmd();
        await stopService(svc, "SIGKILL", 5000);
        await stopService(epmd, "SIGKILL", 2000);
        removeDirSync(dir);
        removeDirSync(claimsDir);
      },
    };
  } catch (e) {
    for (const pid of [beamPid, epmdPid]) {
      try {
        if (pid > 0) process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    untrackBeam();
    untrackEpmd();
    const log = (() => {
      try {
        return fs.readFileSync(logFile, "utf8").slice(-2000);
      } catch {
        return "";
      }
    })();
    removeDirSync(dir);
    removeDirSync(claimsDir);
    throw new Error(`test harness: RabbitMQ did not start: ${(e as Error).message}\n${log}`);
  }
}

/** The run's broker (started by the global setup), or null. */
export function sharedRabbit(): RabbitInfo | null {
  const raw = process.env[RABBITMQ_INFO_ENV];
  return raw ? (JSON.parse(raw) as RabbitInfo) : null;
}

let claimed: string | undefined;

/** This process's own virtual host on the run's broker (claimed once per test file). */
export function claimVhost(info: RabbitInfo | null = sharedRabbit()): string {
  if (!info) throw new Error("test harness: no RabbitMQ (the global setup starts one)");
  if (claimed) return claimed;
  for (const vhost of info.vhosts.slice(1)) {
    try {
      fs.writeFileSync(path.join(info.claimsDir, vhost), `${process.pid}\n`, { flag: "wx" });
      claimed = vhost;
      return vhost;
    } catch {
      /* taken */
    }
  }
  throw new Error(`test harness: all ${info.vhosts.length - 1} RabbitMQ test vhosts are taken; raise startRabbitMQ's vhosts`);
}

/** Settings for makeConfDir / settings.py pointing at a vhost of the run's broker. */
export function rabbitSettings(vhost = claimVhost(), info: RabbitInfo | null = sharedRabbit()) {
  if (!info) throw new Error("test harness: no RabbitMQ");
  return { host: info.host, port: info.port, vhost, username: info.username, password: info.password };
}

export interface Notice {
  event: Record<string, any>;
  users: any[];
}

/**
 * A test's view of one vhost: drain queues (every message published so far, in order),
 * purge them, check them, and attach a consumer (a stand-in for a running Tornado).
 */
export class QueueReader {
  private constructor(
    private readonly conn: amqp.ChannelModel,
    private readonly ch: amqp.Channel,
  ) {}

  static async open(vhost = claimVhost(), info: RabbitInfo | null = sharedRabbit()): Promise<QueueReader> {
    if (!info) throw new Error("test harness: no RabbitMQ");
    const conn = await amqp.connect({
      protocol: "amqp",
      hostname: info.host,
      port: info.port,
      username: info.username,
      password: info.password,
      vhost,
      heartbeat: 0,
    });
    conn.on("error", () => undefined);
    const ch = await conn.createChannel();
    ch.on("error", () => undefined);
    return new QueueReader(conn, ch);
  }

  /** Declare a queue as Zulip does (durable) — what Tornado does at start-up. */
  async declare(queue: string): Promise<void> {
    await this.ch.assertQueue(queue, { durable: true });
  }

  /** Remove every message from these queues (declaring them first). */
  async purge(...queues: string[]): Promise<void> {
    for (const q of queues) {
      await this.declare(q);
      await this.ch.purgeQueue(q);
    }
  }

  /** All messages now in a queue, in order (removed from it), with their AMQP properties. */
  async drainRaw(queue: string): Promise<Array<{ body: any; properties: amqp.MessageProperties; exchange: string; routingKey: string }>> {
    await this.declare(queue);
    const out = [];
    for (;;) {
      const m = await this.ch.get(queue, { noAck: true });
      if (m === false) break;
      out.push({ body: JSON.parse(m.content.toString("utf8")), properties: m.properties, exchange: m.fields.exchange, routingKey: m.fields.routingKey });
    }
    return out;
  }

  /** The notices in a notify queue, in order (removed from it). */
  async drain(queue = "notify_tornado"): Promise<Notice[]> {
    return (await this.drainRaw(queue)).map((m) => m.body as Notice);
  }

  /** Attach a consumer that acks and keeps what it gets (a running Tornado stand-in). */
  async consume(queue: string): Promise<{ received: Notice[]; cancel(): Promise<void> }> {
    await this.declare(queue);
    const received: Notice[] = [];
    const { consumerTag } = await this.ch.consume(queue, (m) => {
      if (!m) return;
      received.push(JSON.parse(m.content.toString("utf8")));
      this.ch.ack(m);
    });
    return { received, cancel: async () => void (await this.ch.cancel(consumerTag)) };
  }

  async deleteQueue(queue: string): Promise<void> {
    await this.ch.deleteQueue(queue);
  }

  async close(): Promise<void> {
    await this.conn.close().catch(() => undefined);
  }
}

/** Notices with their recipient lists sorted (Zulip sends sets as lists in no fixed order). */
export function sortedUsers(notices: Notice[]): Notice[] {
  return notices.map((n) => ({ event: n.event, users: [...n.users].sort((a, b) => (typeof a === "number" ? a - b : a.id - b.id)) }));
}
