// Talking to the Zulip server's RabbitMQ the way Zulip's producers do
// (zerver/lib/queue.py SimpleQueueClient): settings RABBITMQ_HOST / _PORT / _VHOST / _USERNAME /
// _USE_TLS and the `rabbitmq_password` secret; AMQP heartbeats off (the blocking publisher's
// heartbeat=0); each queue declared `durable=True` with every other flag at its default before
// the first publish to it (Tornado and the queue workers declare it the same way: any other
// flag makes RabbitMQ close the channel with PRECONDITION_FAILED); messages go through the
// default exchange ("") with the queue name as routing key and only delivery_mode=2
// (persistent) set — no content type, headers or other properties; the body is compact JSON.
//
// The AMQP client is amqplib (no dependencies, no install scripts), loaded only here and only
// by commands that publish or check RabbitMQ: it costs ~12 ms to load. We publish on a confirm
// channel, so that "published" means the broker has taken the message (Zulip does not wait for
// confirms; the messages are the same).
import type { ChannelModel, ConfirmChannel } from "amqplib";
import type { Config } from "../config/config.js";
import { withTimeout } from "../lib/timeout.js";

export interface RabbitTarget {
  host: string;
  port: number;
  vhost: string;
  username: string;
  password: string | null;
  tls: boolean;
  /** "amqp://zulip@127.0.0.1:5672/" for messages (no password). */
  label: string;
}

/** The connection Zulip's settings describe. Throws ConfigError when a setting cannot be read. */
export function rabbitTarget(config: Config): RabbitTarget {
  const s = config.settings;
  const host = s.get("RABBITMQ_HOST");
  const port = s.get("RABBITMQ_PORT");
  const vhost = s.get("RABBITMQ_VHOST");
  const username = s.get("RABBITMQ_USERNAME");
  const tls = s.get("RABBITMQ_USE_TLS");
  const hostPart = host.includes(":") ? `[${host}]` : host;
  return {
    host,
    port,
    vhost,
    username,
    password: s.get("RABBITMQ_PASSWORD"),
    tls,
    label: `${tls ? "amqps" : "amqp"}://${username}@${hostPart}:${port}/${vhost === "/" ? "" : encodeURIComponent(vhost)}`,
  };
}

/** Why a connection failed, in words that name the setting to look at. */
export class RabbitError extends Error {
  constructor(
    message: string,
    /** "connect" (host/port/TLS), "auth" (user/password), "vhost", "channel" (a broker error on a queue), "timeout". */
    readonly kind: "connect" | "auth" | "vhost" | "channel" | "timeout",
  ) {
    super(message);
  }
}

function describeFailure(e: any, t: RabbitTarget): RabbitError {
  const msg = String(e?.message ?? e);
  if (/ACCESS[-_]REFUSED|authentication|403/i.test(msg) && !/vhost/i.test(msg)) {
    return new RabbitError(
      `RabbitMQ refused the login of user '${t.username}' (check RABBITMQ_USERNAME in settings.py and the rabbitmq_password secret in zulip-secrets.conf)`,
      "auth",
    );
  }
  // RabbitMQ answers connection.open for a virtual host the user may not use (or that does not
  // exist) by closing the connection (530 NOT_ALLOWED); amqplib reports the unexpected close.
  if (/vhost|NOT_ALLOWED|530|Expected ConnectionOpenOk/i.test(msg)) {
    return new RabbitError(`RabbitMQ refused access to virtual host '${t.vhost}' for user '${t.username}' (check RABBITMQ_VHOST in settings.py)`, "vhost");
  }
  if (/ETIMEDOUT|timed out/i.test(msg)) {
    return new RabbitError(`no answer from RabbitMQ at ${t.host}:${t.port} (check RABBITMQ_HOST and RABBITMQ_PORT in settings.py)`, "timeout");
  }
  const code = e?.code ? `${e.code}` : msg;
  return new RabbitError(
    `cannot connect to RabbitMQ at ${t.host}:${t.port}${t.tls ? " (TLS)" : ""}: ${code} (check that rabbitmq-server runs, and RABBITMQ_HOST, RABBITMQ_PORT${t.tls ? ", RABBITMQ_USE_TLS" : ""} in settings.py)`,
    "connect",
  );
}

export interface RabbitConnectOptions {
  /** TCP connect + AMQP handshake (default 2000 ms). */
  timeoutMs?: number;
}

/** An open connection with one confirm channel; never emits unhandled errors. */
export class RabbitConnection {
  private declared = new Set<string>();
  /** Set when the broker closed the channel or the connection. */
  private failure: RabbitError | null = null;

  private constructor(
    readonly target: RabbitTarget,
    private readonly model: ChannelModel,
    private channel: ConfirmChannel,
  ) {}

  static async open(target: RabbitTarget, opts: RabbitConnectOptions = {}): Promise<RabbitConnection> {
    if (target.password === null) {
      throw new RabbitError("the rabbitmq_password secret is not set in zulip-secrets.conf, so RabbitMQ cannot be logged into", "auth");
    }
    const amqp = await import("amqplib");
    const timeoutMs = opts.timeoutMs ?? 2000;
    let model: ChannelModel;
    try {
      model = await withTimeout(
        amqp.connect(
          {
            protocol: target.tls ? "amqps" : "amqp",
            hostname: target.host,
            port: target.port,
            username: target.username,
            password: target.password,
            // amqplib unescapes the object form's vhost; escaping first keeps it verbatim.
            vhost: encodeURIComponent(target.vhost),
            heartbeat: 0,
          },
          // noDelay: without it Nagle's algorithm and delayed ACKs stall each small AMQP frame
          // of the handshake and the publishes by tens of milliseconds.
          { timeout: timeoutMs, noDelay: true, clientProperties: { connection_name: "zulip-manage" } },
        ),
        timeoutMs + 500,
      );
    } catch (e) {
      throw describeFailure(e, target);
    }
    model.on("error", () => undefined);
    let channel: ConfirmChannel;
    try {
      channel = await model.createConfirmChannel();
    } catch (e) {
      await model.close().catch(() => undefined);
      throw describeFailure(e, target);
    }
    const conn = new RabbitConnection(target, model, channel);
    conn.watch(channel);
    model.on("close", (err?: Error) => {
      conn.failure ??= new RabbitError(`RabbitMQ closed the connection${err ? `: ${err.message}` : ""}`, "channel");
    });
    return conn;
  }

  private watch(channel: ConfirmChannel): void {
    channel.on("error", (err: Error) => {
      this.failure = new RabbitError(`RabbitMQ closed the channel: ${err.message}`, "channel");
    });
    channel.on("close", () => {
      this.failure ??= new RabbitError("RabbitMQ closed the channel", "channel");
    });
  }

  /** The connection's socket, to let a background connection not hold the process open. */
  private socket(): { ref(): void; unref(): void } | null {
    return (this.model as any)?.connection?.stream ?? null;
  }

  unref(): void {
    this.socket()?.unref();
  }

  ref(): void {
    this.socket()?.ref();
  }

  get broken(): RabbitError | null {
    return this.failure;
  }

  /** queue_declare(queue, durable=True) once per queue on this connection. */
  async declare(queue: string): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.declared.has(queue)) return;
    try {
      await this.channel.assertQueue(queue, { durable: true, exclusive: false, autoDelete: false });
    } catch (e: any) {
      throw this.failure ?? new RabbitError(`RabbitMQ refused to declare queue ${queue}: ${e?.message ?? e}`, "channel");
    }
    this.declared.add(queue);
  }

  /**
   * Publish a JSON body to a queue (declared first). Resolves when the broker has confirmed it;
   * publishes are pipelined (call several, then await them together).
   */
  async publishJson(queue: string, body: unknown): Promise<void> {
    await this.declare(queue);
    const payload = Buffer.from(JSON.stringify(body), "utf8");
    return new Promise<void>((resolve, reject) => {
      try {
        this.channel.publish("", queue, payload, { persistent: true }, (err) => {
          if (err) reject(this.failure ?? new RabbitError(`RabbitMQ did not accept a message for ${queue}`, "channel"));
          else resolve();
        });
      } catch (e: any) {
        reject(this.failure ?? new RabbitError(`cannot publish to ${queue}: ${e?.message ?? e}`, "channel"));
      }
    });
  }

  /**
   * A passive declare: the queue's message and consumer counts, or null when it does not exist.
   * A missing queue makes RabbitMQ close the channel (404); a new channel is opened for what follows.
   */
  async inspect(queue: string): Promise<{ messageCount: number; consumerCount: number } | null> {
    if (this.failure) throw this.failure;
    const ch = await this.model.createChannel();
    ch.on("error", () => undefined);
    try {
      const ok = await ch.checkQueue(queue);
      return { messageCount: ok.messageCount, consumerCount: ok.consumerCount };
    } catch (e: any) {
      if (/NOT_FOUND|404/.test(String(e?.message))) return null;
      throw new RabbitError(`cannot check queue ${queue}: ${e?.message ?? e}`, "channel");
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    try {
      await withTimeout(this.model.close(), 1000);
    } catch {
      try {
        (this.socket() as any)?.destroy?.();
      } catch {
        /* gone */
      }
    }
  }
}
