// A small memcached client speaking the binary protocol, which is what Zulip's cache backend
// (django-bmemcached / python-binary-memcached) uses, with SASL PLAIN authentication
// (Zulip runs memcached with `-S` and the user `zulip@localhost`).
//
// Only what zulip-manage and its tests need: get / getString / has (to read the few plain
// values it must understand), set (tests prefill caches with it), delete / multi-delete
// (pipelined quiet deletes), flush, version and the SASL mechanism list. Every operation is bounded by a timeout; on a timeout or a broken connection the
// client is closed and the pending operations fail with a MemcachedError.
import net from "node:net";

const OPCODE = {
  GET: 0x00,
  SET: 0x01,
  DELETE: 0x04,
  QUIT: 0x07,
  FLUSH: 0x08,
  NOOP: 0x0a,
  VERSION: 0x0b,
  DELETEQ: 0x14,
  SASL_LIST_MECHS: 0x20,
  SASL_AUTH: 0x21,
} as const;

export const STATUS = {
  OK: 0x0000,
  KEY_NOT_FOUND: 0x0001,
  KEY_EXISTS: 0x0002,
  VALUE_TOO_LARGE: 0x0003,
  INVALID_ARGUMENTS: 0x0004,
  NOT_STORED: 0x0005,
  AUTH_ERROR: 0x0020,
  AUTH_CONTINUE: 0x0021,
  UNKNOWN_COMMAND: 0x0081,
  OUT_OF_MEMORY: 0x0082,
} as const;

const STATUS_TEXT: Record<number, string> = {
  0x0001: "key not found",
  0x0002: "key exists",
  0x0003: "value too large",
  0x0004: "invalid arguments",
  0x0005: "item not stored",
  0x0020: "authentication failed or required",
  0x0021: "authentication continue",
  0x0081: "unknown command",
  0x0082: "out of memory",
};

export const MAX_KEY_BYTES = 250;

export class MemcachedError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = "MemcachedError";
  }
}

/** Where a memcached server listens: TCP host/port or a Unix socket path. */
export interface MemcachedAddress {
  host?: string;
  port?: number;
  path?: string;
}

export interface MemcachedOptions {
  /** SASL user; omit for servers without SASL. */
  username?: string;
  password?: string;
  /** Connection (and SASL handshake) timeout. Default 2000 ms. */
  connectTimeoutMs?: number;
  /** Timeout of each operation. Default 3000 ms. */
  timeoutMs?: number;
  /**
   * Open the connection in the background: neither it nor its timers keep the process alive
   * (a process that ends without using it just ends) until ref() is called.
   */
  background?: boolean;
}

export interface MemcachedResponse {
  opcode: number;
  status: number;
  opaque: number;
  cas: bigint;
  extras: Buffer;
  key: Buffer;
  value: Buffer;
}

export interface GetResult {
  flags: number;
  value: Buffer;
}

/**
 * Parse one memcached location the way python-binary-memcached does: "host:port", "host"
 * (port 11211), "[v6addr]:port", or a Unix socket path ("/path" or "unix:/path").
 */
export function parseMemcachedLocation(location: string): MemcachedAddress {
  const loc = location.trim();
  if (loc.startsWith("unix:")) return { path: loc.slice("unix:".length) };
  if (loc.startsWith("/")) return { path: loc };
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(loc);
  if (v6) return { host: v6[1], port: v6[2] ? Number(v6[2]) : 11211 };
  const colon = loc.lastIndexOf(":");
  if (colon > 0 && loc.indexOf(":") === colon) {
    const port = Number(loc.slice(colon + 1));
    if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new MemcachedError(`invalid memcached location '${location}'`);
    return { host: loc.slice(0, colon), port };
  }
  if (loc === "") throw new MemcachedError("empty memcached location");
  return { host: loc, port: 11211 };
}

/** Django's LOCATION may be a list or a ';'/','-separated string of servers. */
export function parseMemcachedLocations(location: string | string[]): MemcachedAddress[] {
  const parts = Array.isArray(location) ? location : location.split(/[;,]/);
  return parts
    .map((p) => p.trim())
    .filter(Boolean)
    .map(parseMemcachedLocation);
}

export function describeAddress(a: MemcachedAddress): string {
  if (a.path) return a.path;
  return a.host && a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

function encodeRequest(opcode: number, opaque: number, key: Buffer, extras: Buffer, value: Buffer): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt8(0x80, 0);
  header.writeUInt8(opcode, 1);
  header.writeUInt16BE(key.length, 2);
  header.writeUInt8(extras.length, 4);
  header.writeUInt8(0, 5); // data type
  header.writeUInt16BE(0, 6); // vbucket
  header.writeUInt32BE(extras.length + key.length + value.length, 8);
  header.writeUInt32BE(opaque, 12);
  // CAS (8 bytes) left zero
  return Buffer.concat([header, extras, key, value]);
}

interface Pending {
  opaque: number;
  quiet: boolean;
  resolve(r: MemcachedResponse | null): void;
  reject(e: Error): void;
}

export class MemcachedClient {
  private socket?: net.Socket;
  private buffer: Buffer = Buffer.alloc(0);
  private pending: Pending[] = [];
  private nextOpaque = 1;
  private closed = false;
  private failure?: Error;
  readonly label: string;
  private readonly timeoutMs: number;

  private background: boolean;

  private constructor(
    readonly address: MemcachedAddress,
    opts: MemcachedOptions,
  ) {
    this.label = describeAddress(address);
    this.timeoutMs = opts.timeoutMs ?? 3000;
    this.background = Boolean(opts.background);
  }

  /** From now on the connection keeps the process alive like any other (see MemcachedOptions.background). */
  ref(): void {
    this.background = false;
    this.socket?.ref();
  }

  /** Connect (and authenticate when a username is given). */
  static async connect(address: MemcachedAddress, opts: MemcachedOptions = {}): Promise<MemcachedClient> {
    const client = new MemcachedClient(address, opts);
    const connectTimeout = opts.connectTimeoutMs ?? 2000;
    await client.open(connectTimeout);
    try {
      if (opts.username !== undefined && opts.username !== null) {
        await client.authenticate(opts.username, opts.password ?? "", connectTimeout);
      }
    } catch (e) {
      client.destroy();
      throw e;
    }
    return client;
  }

  private open(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const sock = this.address.path
        ? net.createConnection({ path: this.address.path })
        : net.createConnection({ host: this.address.host, port: this.address.port ?? 11211 });
      this.socket = sock;
      sock.setNoDelay(true);
      if (this.background) sock.unref();
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        sock.destroy();
        reject(new MemcachedError(`timed out after ${timeoutMs} ms connecting to memcached at ${this.label}`));
      }, timeoutMs);
      if (this.background) timer.unref();
      sock.once("connect", () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve();
      });
      sock.on("error", (err) => {
        if (!settled) {
          settled = true;
          clearTimeout(timer);
          reject(new MemcachedError(`cannot connect to memcached at ${this.label}: ${err.message}`));
          return;
        }
        this.fail(new MemcachedError(`memcached connection to ${this.label} failed: ${err.message}`));
      });
      sock.on("close", () => {
        this.closed = true;
        this.fail(new MemcachedError(`memcached at ${this.label} closed the connection`));
      });
      sock.on("data", (chunk) => this.onData(chunk));
    });
  }

  /** SASL mechanisms the server offers; null when it runs without SASL (unknown command). */
  private async saslMechs(timeoutMs: number): Promise<string[] | null> {
    const mechs = await this.send(OPCODE.SASL_LIST_MECHS, Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0), timeoutMs);
    if (mechs.status === STATUS.UNKNOWN_COMMAND) return null;
    if (mechs.status !== STATUS.OK) {
      throw new MemcachedError(`memcached at ${this.label}: listing SASL mechanisms failed (${statusText(mechs.status)})`, mechs.status);
    }
    return mechs.value.toString("latin1").split(/\s+/).filter(Boolean);
  }

  /**
   * The SASL mechanisms the server offers (e.g. ["PLAIN"]); [] when it runs without SASL.
   * memcached resets the connection's SASL state on this request, so call it before
   * authenticating, not after.
   */
  async listMechs(): Promise<string[]> {
    return (await this.saslMechs(this.timeoutMs)) ?? [];
  }

  private async authenticate(username: string, password: string, timeoutMs: number): Promise<void> {
    const list = await this.saslMechs(timeoutMs);
    if (list === null) return; // server built/run without SASL: nothing to do
    if (!list.includes("PLAIN")) {
      throw new MemcachedError(`memcached at ${this.label} does not offer SASL PLAIN (offers: ${list.join(" ") || "nothing"})`);
    }
    const token = Buffer.from(`\0${username}\0${password}`, "utf8");
    const r = await this.send(OPCODE.SASL_AUTH, Buffer.from("PLAIN"), Buffer.alloc(0), token, timeoutMs);
    if (r.status !== STATUS.OK) {
      throw new MemcachedError(`memcached at ${this.label} rejected SASL authentication as '${username}' (${statusText(r.status)})`, r.status);
    }
  }

  private onData(chunk: Buffer): void {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
    while (this.buffer.length >= 24) {
      if (this.buffer.readUInt8(0) !== 0x81) {
        this.fail(new MemcachedError(`memcached at ${this.label} sent a malformed response`));
        this.destroy();
        return;
      }
      const bodyLen = this.buffer.readUInt32BE(8);
      if (this.buffer.length < 24 + bodyLen) return;
      const keyLen = this.buffer.readUInt16BE(2);
      const extLen = this.buffer.readUInt8(4);
      const body = this.buffer.subarray(24, 24 + bodyLen);
      const resp: MemcachedResponse = {
        opcode: this.buffer.readUInt8(1),
        status: this.buffer.readUInt16BE(6),
        opaque: this.buffer.readUInt32BE(12),
        cas: this.buffer.readBigUInt64BE(16),
        extras: Buffer.from(body.subarray(0, extLen)),
        key: Buffer.from(body.subarray(extLen, extLen + keyLen)),
        value: Buffer.from(body.subarray(extLen + keyLen)),
      };
      this.buffer = this.buffer.subarray(24 + bodyLen);
      this.dispatch(resp);
    }
  }

  private dispatch(resp: MemcachedResponse): void {
    // Responses come back in request order; quiet requests answered by silence are
    // complete once a later request's response arrives.
    while (this.pending.length) {
      const p = this.pending[0];
      if (p.opaque === resp.opaque) {
        this.pending.shift();
        p.resolve(resp);
        return;
      }
      if (p.quiet) {
        this.pending.shift();
        p.resolve(null);
        continue;
      }
      break;
    }
    // A response nobody waits for (e.g. after a timeout): ignore it.
  }

  private fail(err: Error): void {
    if (!this.failure) this.failure = err;
    const pending = this.pending;
    this.pending = [];
    for (const p of pending) p.reject(err);
  }

  private ensureUsable(): void {
    if (this.failure) throw this.failure;
    if (this.closed || !this.socket) throw new MemcachedError(`memcached connection to ${this.label} is closed`);
  }

  private enqueue(opcode: number, key: Buffer, extras: Buffer, value: Buffer, quiet: boolean): Promise<MemcachedResponse | null> {
    this.ensureUsable();
    if (key.length > MAX_KEY_BYTES) {
      return Promise.reject(new MemcachedError(`memcached key longer than ${MAX_KEY_BYTES} bytes: ${key.toString("latin1").slice(0, 60)}…`));
    }
    const opaque = this.nextOpaque;
    this.nextOpaque = this.nextOpaque >= 0xffffffff ? 1 : this.nextOpaque + 1;
    return new Promise((resolve, reject) => {
      this.pending.push({ opaque, quiet, resolve, reject });
      this.socket!.write(encodeRequest(opcode, opaque, key, extras, value));
    });
  }

  /** Run a batch of requests with one deadline; the connection is destroyed on timeout. */
  private async withDeadline<T>(what: string, timeoutMs: number, work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new MemcachedError(`memcached at ${this.label} did not answer ${what} within ${timeoutMs} ms`);
        this.fail(err);
        this.destroy();
        reject(err);
      }, timeoutMs);
      if (this.background) timer.unref();
    });
    try {
      return await Promise.race([work, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async send(opcode: number, key: Buffer, extras: Buffer, value: Buffer, timeoutMs = this.timeoutMs): Promise<MemcachedResponse> {
    const r = await this.withDeadline(`opcode 0x${opcode.toString(16)}`, timeoutMs, this.enqueue(opcode, key, extras, value, false));
    return r!;
  }

  private check(r: MemcachedResponse, what: string, allowed: number[] = []): void {
    if (r.status === STATUS.OK || allowed.includes(r.status)) return;
    throw new MemcachedError(`memcached at ${this.label}: ${what} failed (${statusText(r.status)})`, r.status);
  }

  async version(): Promise<string> {
    const r = await this.send(OPCODE.VERSION, Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0));
    this.check(r, "version");
    return r.value.toString("latin1");
  }

  /** The stored value and its client flags, or null when the key is absent. */
  async get(key: string): Promise<GetResult | null> {
    const r = await this.send(OPCODE.GET, Buffer.from(key, "utf8"), Buffer.alloc(0), Buffer.alloc(0));
    if (r.status === STATUS.KEY_NOT_FOUND) return null;
    this.check(r, `get ${key}`);
    return { flags: r.extras.length >= 4 ? r.extras.readUInt32BE(0) : 0, value: r.value };
  }

  /** The stored value decoded as UTF-8, or null when the key is absent. */
  async getString(key: string): Promise<string | null> {
    const r = await this.get(key);
    return r === null ? null : r.value.toString("utf8");
  }

  /** Whether the key is present. */
  async has(key: string): Promise<boolean> {
    return (await this.get(key)) !== null;
  }

  async set(key: string, value: Buffer | string, opts: { flags?: number; expiresSeconds?: number } = {}): Promise<void> {
    const extras = Buffer.alloc(8);
    extras.writeUInt32BE(opts.flags ?? 0, 0);
    extras.writeUInt32BE(opts.expiresSeconds ?? 0, 4);
    const v = typeof value === "string" ? Buffer.from(value, "utf8") : value;
    const r = await this.send(OPCODE.SET, Buffer.from(key, "utf8"), extras, v);
    this.check(r, `set ${key}`);
  }

  /** Delete one key; true when it existed. */
  async delete(key: string): Promise<boolean> {
    const r = await this.send(OPCODE.DELETE, Buffer.from(key, "utf8"), Buffer.alloc(0), Buffer.alloc(0));
    this.check(r, `delete ${key}`, [STATUS.KEY_NOT_FOUND]);
    return r.status === STATUS.OK;
  }

  /**
   * Delete many keys with pipelined quiet deletes, in batches, each batch closed by a NOOP.
   * Returns the keys that existed (were deleted) and those that did not.
   */
  async deleteMany(keys: string[], batchSize = 1000): Promise<{ deleted: string[]; missing: string[] }> {
    const deleted: string[] = [];
    const missing: string[] = [];
    for (let start = 0; start < keys.length; start += batchSize) {
      const batch = keys.slice(start, start + batchSize);
      const work = (async () => {
        const results = batch.map((k) => this.enqueue(OPCODE.DELETEQ, Buffer.from(k, "utf8"), Buffer.alloc(0), Buffer.alloc(0), true));
        const noop = this.enqueue(OPCODE.NOOP, Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0), false);
        const all = await Promise.all([...results, noop]);
        return all.slice(0, batch.length);
      })();
      const answers = await this.withDeadline(`${batch.length} deletes`, this.timeoutMs + batch.length, work);
      answers.forEach((r, i) => {
        if (r === null) deleted.push(batch[i]);
        else if (r.status === STATUS.KEY_NOT_FOUND) missing.push(batch[i]);
        else this.check(r, `delete ${batch[i]}`);
      });
    }
    return { deleted, missing };
  }

  /** Invalidate every item (memcached's flush_all). */
  async flushAll(): Promise<void> {
    const r = await this.send(OPCODE.FLUSH, Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0));
    this.check(r, "flush_all");
  }

  /** Say goodbye politely (bounded) and close. */
  async close(): Promise<void> {
    if (!this.socket || this.closed || this.failure) {
      this.destroy();
      return;
    }
    try {
      await this.send(OPCODE.QUIT, Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0), 500);
    } catch {
      /* already gone */
    }
    this.destroy();
  }

  destroy(): void {
    this.closed = true;
    this.socket?.destroy();
  }
}

function statusText(status: number): string {
  return STATUS_TEXT[status] ?? `status 0x${status.toString(16).padStart(4, "0")}`;
}
