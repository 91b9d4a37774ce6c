// Throwaway RabbitMQ for tests: src/dev/rabbitmq.ts's private broker (shared with the
// benchmarks) in a harness temp dir, run as the service user (`nobody` when root), killed with
// the test run. Never the system service. Starting it takes seconds, so the run's global setup starts
// one broker (startRabbitMQ) and hands it to the test files (ZM_TEST_RABBITMQ); each test file
// (each worker process) then claims one of its pre-made virtual hosts (claimVhost), so files
// running side by side never see each other's queues. makeConfDir points settings.py at the
// claimed vhost by default.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import amqp from "amqplib";
import { findRabbitMQ, startBroker } from "../../src/dev/rabbitmq.js";
import { missingToolMessage } from "./tools.js";
import { makeTempDir, removeDirSync, serviceUser, spawnService, track } from "./services.js";

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

export async function startRabbitMQ(opts: { vhosts?: number } = {}): Promise<RabbitInstance> {
  const bins = findRabbitMQ(process.env.ZM_TEST_RABBITMQ_SERVER || undefined);
  if (!bins) throw new Error(missingToolMessage("rabbitmq-server", "rabbitmq-server", "the real-time event tests (a private RabbitMQ node)"));
  const dir = makeTempDir("rabbitmq");
  const claimsDir = makeTempDir("rabbitmq-claims", { serviceOwned: false });
  fs.chmodSync(claimsDir, 0o777);
  let beamPid = -1;
  let epmdPid = -1;
  const untrackBeam = track({ label: "rabbitmq", pid: () => beamPid, signal: "SIGKILL", dir });
  const untrackEpmd = track({ label: "epmd", pid: () => epmdPid, signal: "SIGKILL", dir: claimsDir });
  const untrack = () => {
    untrackBeam();
    untrackEpmd();
  };
  try {
    const broker = await startBroker({
      bins,
      dir,
      runAs: serviceUser(),
      nodeName: "zmtest",
      username: RABBITMQ_USER,
      password: crypto.randomBytes(24).toString("hex"),
      vhosts: ["/", ...Array.from({ length: opts.vhosts ?? 100 }, (_, i) => `zmtest${i + 1}`)],
      // As the service user, killed with this process even when it dies too hard to clean up.
      spawn: (cmd, args, o) => {
        const svc = spawnService(cmd, args, { ...o, deathSignal: "SIGKILL" });
        if (cmd === bins.epmd) epmdPid = svc.pid;
        else beamPid = svc.pid;
        return svc;
      },
    });
    const info: RabbitInfo = { host: broker.host, port: broker.port, username: broker.username, password: broker.password, vhosts: broker.vhosts, claimsDir };
    let stopped = false;
    return {
      ...info,
      dir,
      pid: broker.server.pid,
      info: () => info,
      async stop() {
        if (stopped) return;
        stopped = true;
        untrack();
        await broker.stop();
        removeDirSync(dir);
        removeDirSync(claimsDir);
      },
    };
  } catch (e) {
    untrack();
    removeDirSync(dir);
    removeDirSync(claimsDir);
    throw new Error(`test harness: ${(e as Error).message}`);
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
