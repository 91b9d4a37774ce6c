// A minimal Redis client (RESP2 over TCP) for the few keys zulip-manage touches, the way Zulip's
// get_redis_client() connects: REDIS_HOST/REDIS_PORT, database 0, AUTH with the
// `redis_password` secret when there is one. Every step has a deadline, so a stuck or
// unreachable server makes the command fail with a clear message instead of hanging.
import net from "node:net";
import { EnvironmentError } from "../lib/errors.js";

export type RespValue = string | number | null | RespValue[];

export class RedisError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RedisError";
  }
}

export interface RedisOptions {
  host: string;
  port: number;
  password?: string | null;
  /** Username for Redis 6 ACLs (Zulip uses the default user). */
  username?: string | null;
  db?: number;
  /** Deadline for connecting and for each command's reply, in milliseconds (default 5000). */
  timeoutMs?: number;
}

/** Encode one command as a RESP array of bulk strings. */
function encodeCommand(args: (string | number | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a), "utf8");
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from("\r\n"));
  }
  return Buffer.concat(parts);
}

/**
 * Parse one RESP reply from `buf` at `offset`. Returns the value and the offset after it, or
 * undefined when the buffer does not hold a complete reply yet. Error replies come back as
 * RedisError instances (not thrown) so the caller can match them to their command.
 */
function parseReply(buf: Buffer, offset = 0): { value: RespValue | RedisError; next: number } | undefined {
  if (offset >= buf.length) return undefined;
  const lineEnd = buf.indexOf("\r\n", offset);
  if (lineEnd < 0) return undefined;
  const type = String.fromCharCode(buf[offset]!);
  const line = buf.toString("utf8", offset + 1, lineEnd);
  const after = lineEnd + 2;
  switch (type) {
    case "+":
      return { value: line, next: after };
    case "-":
      return { value: new RedisError(line), next: after };
    case ":":
      return { value: Number(line), next: after };
    case "$": {
      const len = Number(line);
      if (len < 0) return { value: null, next: after };
      if (buf.length < after + len + 2) return undefined;
      return { value: buf.toString("utf8", after, after + len), next: after + len + 2 };
    }
    case "*": {
      const n = Number(line);
      if (n < 0) return { value: null, next: after };
      const items: RespValue[] = [];
      let pos = after;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, pos);
        if (!r) return undefined;
        if (r.value instanceof RedisError) return { value: r.value, next: r.next };
        items.push(r.value);
        pos = r.next;
      }
      return { value: items, next: pos };
    }
    default:
      throw new RedisError(`unexpected reply from the Redis server (type byte ${JSON.stringify(type)})`);
  }
}

export class RedisClient {
  private buffer: Buffer = Buffer.alloc(0);
  private waiting: { resolve: (v: RespValue) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }[] = [];
  private closedError: Error | null = null;

  private constructor(
    private readonly socket: net.Socket,
    readonly where: string,
    private readonly timeoutMs: number,
  ) {
    socket.on("data", (chunk) => this.onData(chunk));
    socket.on("error", (e) => this.fail(new RedisError(`connection to Redis at ${where} failed: ${e.message}`)));
    socket.on("close", () => this.fail(new RedisError(`connection to Redis at ${where} closed`)));
  }

  /** Connect, authenticate and select the database. Throws RedisError on any failure. */
  static async connect(opts: RedisOptions): Promise<RedisClient> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    const where = `${opts.host}:${opts.port}`;
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: opts.host, port: opts.port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new RedisError(`cannot connect to Redis at ${where}: no answer within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      s.once("connect", () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once("error", (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new RedisError(`cannot connect to Redis at ${where}: ${e.code ?? e.message}`));
      });
    });
    socket.setNoDelay(true);
    const client = new RedisClient(socket, where, timeoutMs);
    try {
      if (opts.password) {
        await client.auth(opts.password, opts.username).catch((e: Error) => {
          // Never echo the password; Redis' own message does not contain it.
          throw new RedisError(`Redis at ${where} refused the password (redis_password): ${e.message}`);
        });
      }
      if (opts.db) await client.command(["SELECT", opts.db]);
    } catch (e) {
      client.close();
      throw e;
    }
    return client;
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    for (;;) {
      let r: ReturnType<typeof parseReply>;
      try {
        r = parseReply(this.buffer);
      } catch (e) {
        this.fail(e as Error);
        this.socket.destroy();
        return;
      }
      if (!r) return;
      this.buffer = this.buffer.subarray(r.next);
      const w = this.waiting.shift();
      if (!w) continue;
      clearTimeout(w.timer);
      if (r.value instanceof RedisError) w.reject(r.value);
      else w.resolve(r.value);
    }
  }

  private fail(e: Error): void {
    if (!this.closedError) this.closedError = e;
    for (const w of this.waiting.splice(0)) {
      clearTimeout(w.timer);
      w.reject(e);
    }
  }

  /** Send one command and wait for its reply. Error replies reject with RedisError. */
  command(args: (string | number | Buffer)[]): Promise<RespValue> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise<RespValue>((resolve, reject) => {
      const timer = setTimeout(() => {
        const e = new RedisError(`Redis at ${this.where} did not answer ${String(args[0])} within ${this.timeoutMs / 1000} s`);
        this.fail(e);
        this.socket.destroy();
      }, this.timeoutMs);
      this.waiting.push({ resolve, reject, timer });
      this.socket.write(encodeCommand(args));
    });
  }

  async get(key: string): Promise<string | null> {
    const v = await this.command(["GET", key]);
    return typeof v === "string" ? v : null;
  }

  /** AUTH [username] password on this connection (connect() does it when given a password). */
  async auth(password: string, username?: string | null): Promise<void> {
    await this.command(username ? ["AUTH", username, password] : ["AUTH", password]);
  }

  async ping(): Promise<string> {
    return String(await this.command(["PING"]));
  }

  /** SET key value [EX seconds | PX milliseconds]. */
  async set(key: string, value: string | number, opts: { ex?: number; px?: number } = {}): Promise<void> {
    const args: (string | number)[] = ["SET", key, value];
    if (opts.ex !== undefined) args.push("EX", opts.ex);
    if (opts.px !== undefined) args.push("PX", opts.px);
    const v = await this.command(args);
    if (v !== "OK") throw new RedisError(`Redis at ${this.where} did not store ${key} (answer: ${JSON.stringify(v)})`);
  }

  /** DEL key [key ...]: how many of the keys existed. */
  async del(...keys: string[]): Promise<number> {
    if (keys.length === 0) return 0;
    return Number(await this.command(["DEL", ...keys]));
  }

  /** Seconds to live: -1 = the key has no expiry, -2 = no such key. */
  async ttl(key: string): Promise<number> {
    return Number(await this.command(["TTL", key]));
  }

  /** KEYS pattern, sorted (the server's order is arbitrary). Scans the whole keyspace. */
  async keys(pattern = "*"): Promise<string[]> {
    const v = await this.command(["KEYS", pattern]);
    return (Array.isArray(v) ? v.map(String) : []).sort();
  }

  /** FLUSHALL: delete every key of every database. */
  async flushall(): Promise<void> {
    await this.command(["FLUSHALL"]);
  }

  close(): void {
    this.closedError ??= new RedisError("connection closed");
    this.socket.end();
    this.socket.destroy();
  }
}

/** Redis connection settings the way Zulip's get_redis_client() derives them. */
export function zulipRedisOptions(settings: { get(name: string): unknown }, secret: (name: string) => string | undefined): RedisOptions {
  const host = String(settings.get("REDIS_HOST") ?? "127.0.0.1");
  const port = Number(settings.get("REDIS_PORT") ?? 6379);
  return { host, port, password: secret("redis_password") ?? null, db: 0 };
}

/** Connect with Zulip's settings; failures become EnvironmentError (exit 3) with a hint. */
export async function connectZulipRedis(opts: RedisOptions): Promise<RedisClient> {
  try {
    return await RedisClient.connect(opts);
  } catch (e: any) {
    throw new EnvironmentError(
      `${e?.message ?? e}\nzulip-manage uses Zulip's Redis server (REDIS_HOST/REDIS_PORT in /etc/zulip/settings.py, password 'redis_password' in zulip-secrets.conf); check that it is running.`,
      "redis_unreachable",
    );
  }
}
