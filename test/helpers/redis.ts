// Throwaway Redis for tests (redis-server, no persistence, requirepass like Zulip's
// redis_password), plus a minimal RESP client for the tests themselves.
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import {
  chownToServiceUser,
  findExecutable,
  freePort,
  makeTempDir,
  randomHex,
  removeDirSync,
  spawnService,
  stopPidSync,
  stopService,
  track,
  waitFor,
} from "./services.js";

// ---------------------------------------------------------------------------------------------
// RESP client

export type RespValue = string | number | null | RespValue[];

export class RedisError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RedisError";
  }
}

const INCOMPLETE = Symbol("incomplete");

/** Parse one RESP2 value at `pos`; returns [value, nextPos] or INCOMPLETE. */
function parse(buf: Buffer, pos: number): [RespValue | RedisError, number] | typeof INCOMPLETE {
  const eol = buf.indexOf("\r\n", pos);
  if (eol < 0) return INCOMPLETE;
  const type = String.fromCharCode(buf[pos]!);
  const line = buf.toString("utf8", pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case "+":
      return [line, next];
    case "-":
      return [new RedisError(line), next];
    case ":":
      return [Number(line), next];
    case "$": {
      const len = Number(line);
      if (len < 0) return [null, next];
      if (buf.length < next + len + 2) return INCOMPLETE;
      return [buf.toString("utf8", next, next + len), next + len + 2];
    }
    case "*": {
      const n = Number(line);
      if (n < 0) return [null, next];
      const items: RespValue[] = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = parse(buf, p);
        if (r === INCOMPLETE) return INCOMPLETE;
        // An error nested in an array (e.g. EXEC) is returned as its message.
        items.push(r[0] instanceof RedisError ? r[0].message : r[0]);
        p = r[1];
      }
      return [items, p];
    }
    default:
      throw new Error(`RESP: unexpected type byte ${JSON.stringify(type)}`);
  }
}

export interface RedisClientOptions {
  host: string;
  port: number;
  /** AUTH with this password right after connecting. */
  password?: string;
  timeoutMs?: number;
}

/** Minimal Redis client: one connection, pipelined commands answered in order. */
export class RedisClient {
  private buf: Buffer = Buffer.alloc(0);
  private pending: { resolve: (v: RespValue) => void; reject: (e: Error) => void }[] = [];
  private closed = false;

  private constructor(
    private readonly sock: net.Socket,
    private readonly timeoutMs: number,
  ) {
    sock.on("data", (d) => this.onData(d));
    const fail = (e: Error): void => {
      this.closed = true;
      for (const p of this.pending.splice(0)) p.reject(e);
    };
    sock.on("error", fail);
    sock.on("close", () => fail(new Error("redis connection closed")));
  }

  static async connect(opts: RedisClientOptions): Promise<RedisClient> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: opts.host, port: opts.port });
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error(`redis connect to ${opts.host}:${opts.port} timed out`));
      }, timeoutMs);
      s.once("connect", () => {
        clearTimeout(t);
        resolve(s);
      });
      s.once("error", (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
    const c = new RedisClient(sock, timeoutMs);
    if (opts.password !== undefined) {
      try {
        await c.auth(opts.password);
      } catch (e) {
        await c.close();
        throw e;
      }
    }
    return c;
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    let pos = 0;
    while (pos < this.buf.length) {
      const r = parse(this.buf, pos);
      if (r === INCOMPLETE) break;
      pos = r[1];
      const p = this.pending.shift();
      if (!p) continue;
      if (r[0] instanceof RedisError) p.reject(r[0]);
      else p.resolve(r[0]);
    }
    this.buf = this.buf.subarray(pos);
  }

  /** Send any command, e.g. call("HSET", "k", "f", "v"). Rejects with RedisError on -ERR. */
  call(...args: (string | number | Buffer)[]): Promise<RespValue> {
    if (this.closed) return Promise.reject(new Error("redis connection closed"));
    const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
    for (const a of args) {
      const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a), "utf8");
      parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from("\r\n"));
    }
    return new Promise<RespValue>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`redis ${String(args[0])} timed out`)), this.timeoutMs);
      this.pending.push({
        resolve: (v) => {
          clearTimeout(t);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      this.sock.write(Buffer.concat(parts));
    });
  }

  async auth(password: string): Promise<void> {
    await this.call("AUTH", password);
  }
  async ping(): Promise<string> {
    return (await this.call("PING")) as string;
  }
  async get(key: string): Promise<string | null> {
    return (await this.call("GET", key)) as string | null;
  }
  /** SET with optional expiry in seconds (ex) or milliseconds (px). */
  async set(key: string, value: string | number, opts: { ex?: number; px?: number } = {}): Promise<void> {
    const args: (string | number)[] = ["SET", key, value];
    if (opts.ex !== undefined) args.push("EX", opts.ex);
    if (opts.px !== undefined) args.push("PX", opts.px);
    await this.call(...args);
  }
  /** Seconds to live; -1 = no expiry, -2 = no such key. */
  async ttl(key: string): Promise<number> {
    return (await this.call("TTL", key)) as number;
  }
  async keys(pattern = "*"): Promise<string[]> {
    return ((await this.call("KEYS", pattern)) as string[]).sort();
  }
  /** Number of keys removed. */
  async del(...keys: string[]): Promise<number> {
    if (keys.length === 0) return 0;
    return (await this.call("DEL", ...keys)) as number;
  }
  async flushall(): Promise<void> {
    await this.call("FLUSHALL");
  }

  async close(): Promise<void> {
    if (this.sock.destroyed) return;
    await new Promise<void>((resolve) => {
      this.sock.once("close", () => resolve());
      this.sock.end();
      setTimeout(() => {
        this.sock.destroy();
        resolve();
      }, 1000).unref();
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Server

export interface StartRedisOptions {
  /** requirepass value (like Zulip's redis_password). Default: random 64 hex. null = no password. */
  password?: string | null;
}

export interface RedisInstance {
  host: string;
  port: number;
  password: string | null;
  pid: number;
  dir: string;
  /** Connected client, authenticated with the instance password unless auth:false. */
  connect(opts?: { auth?: boolean | string }): Promise<RedisClient>;
  /** Stop redis-server and delete its temp dir. Idempotent. */
  stop(): Promise<void>;
}

function quoteConf(v: string): string {
  return `"${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisInstance> {
  const bin = process.env.ZM_TEST_REDIS || findExecutable("redis-server", ["/usr/bin", "/usr/local/bin"]);
  if (!bin) throw new Error("test harness: redis-server not found (apt-get install redis-server)");
  const password = opts.password === undefined ? randomHex(32) : opts.password;
  const dir = makeTempDir("redis");
  const logFile = path.join(dir, "redis.log");
  let pid = -1;
  let stopped = false;
  const untrack = track({ label: "redis", pid: () => pid, signal: "SIGKILL", dir });
  try {
    fs.writeFileSync(logFile, "");
    chownToServiceUser(logFile);
    let lastErr: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freePort();
      const conf = path.join(dir, "redis.conf");
      const lines = [
        "bind 127.0.0.1",
        `port ${port}`,
        "protected-mode yes",
        "daemonize no",
        'save ""',
        "appendonly no",
        `dir ${quoteConf(dir)}`,
        'logfile ""',
        "databases 16",
      ];
      if (password !== null) lines.push(`requirepass ${quoteConf(password)}`);
      fs.writeFileSync(conf, lines.join("\n") + "\n", { mode: 0o600 });
      chownToServiceUser(conf);
      const svc = spawnService(bin, [conf], { cwd: dir, logFile, deathSignal: "SIGTERM" });
      pid = svc.pid;
      try {
        await waitFor(
          "redis startup",
          async () => {
            const c = await RedisClient.connect({ host: "127.0.0.1", port, timeoutMs: 1000 });
            try {
              await c.ping();
              return true;
            } catch (e) {
              return /NOAUTH/.test(String(e));
            } finally {
              await c.close();
            }
          },
          { service: svc, timeoutMs: 15_000 },
        );
        svc.child.unref();
        const inst: RedisInstance = {
          host: "127.0.0.1",
          port,
          password,
          pid,
          dir,
          async connect(copts = {}) {
            const auth = copts.auth ?? password !== null;
            const pw = typeof auth === "string" ? auth : auth && password !== null ? password : undefined;
            return RedisClient.connect({ host: "127.0.0.1", port, ...(pw !== undefined ? { password: pw } : {}) });
          },
          async stop() {
            if (stopped) return;
            stopped = true;
            untrack();
            await stopService(svc, "SIGTERM", 5000);
            removeDirSync(dir);
          },
        };
        return inst;
      } catch (e) {
        lastErr = e;
        await stopService(svc, "SIGKILL", 2000);
        if (!/address already in use/i.test(svc.readLog())) break;
      }
    }
    throw lastErr;
  } catch (e) {
    untrack();
    stopPidSync(pid, "SIGKILL");
    removeDirSync(dir);
    throw e;
  }
}
