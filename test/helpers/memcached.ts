// Throwaway memcached for tests (Debian's /usr/bin/memcached), with SASL set up the way Zulip's
// puppet does it (sasldb entry zulip@localhost + zulip@<hostname>, mech_list: plain), plus a tiny
// binary-protocol client so tests can prefill keys and check which ones the CLI deleted.
import { execFile } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import {
  canConnect,
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
// Binary protocol client

const OP = {
  get: 0x00,
  set: 0x01,
  delete: 0x04,
  flush: 0x08,
  noop: 0x0a,
  version: 0x0b,
  saslListMechs: 0x20,
  saslAuth: 0x21,
} as const;

export const STATUS = {
  ok: 0x00,
  keyNotFound: 0x01,
  keyExists: 0x02,
  authError: 0x20,
  authContinue: 0x21,
  unknownCommand: 0x81,
} as const;

export class MemcachedError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "MemcachedError";
  }
}

interface Response {
  opcode: number;
  status: number;
  extras: Buffer;
  key: Buffer;
  value: Buffer;
}

export interface MemcachedClientOptions {
  host: string;
  port: number;
  /** SASL PLAIN credentials; auth happens in connect() when both are given. */
  username?: string;
  password?: string;
  timeoutMs?: number;
}

/** Minimal memcached binary-protocol client (one connection, requests answered in order). */
export class MemcachedClient {
  private buf: Buffer = Buffer.alloc(0);
  private pending: { opaque: number; resolve: (r: Response) => void; reject: (e: Error) => void }[] = [];
  private nextOpaque = 1;
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
    sock.on("close", () => fail(new Error("memcached connection closed")));
  }

  static async connect(opts: MemcachedClientOptions): Promise<MemcachedClient> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: opts.host, port: opts.port });
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error(`memcached connect to ${opts.host}:${opts.port} timed out`));
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
    sock.setNoDelay(true);
    const c = new MemcachedClient(sock, timeoutMs);
    if (opts.username !== undefined && opts.password !== undefined) {
      try {
        await c.auth(opts.username, opts.password);
      } catch (e) {
        await c.close();
        throw e;
      }
    }
    return c;
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    while (this.buf.length >= 24) {
      const bodyLen = this.buf.readUInt32BE(8);
      if (this.buf.length < 24 + bodyLen) break;
      const h = this.buf.subarray(0, 24);
      const body = this.buf.subarray(24, 24 + bodyLen);
      this.buf = this.buf.subarray(24 + bodyLen);
      const keyLen = h.readUInt16BE(2);
      const extLen = h.readUInt8(4);
      const opaque = h.readUInt32BE(12);
      const resp: Response = {
        opcode: h.readUInt8(1),
        status: h.readUInt16BE(6),
        extras: Buffer.from(body.subarray(0, extLen)),
        key: Buffer.from(body.subarray(extLen, extLen + keyLen)),
        value: Buffer.from(body.subarray(extLen + keyLen)),
      };
      const idx = this.pending.findIndex((p) => p.opaque === opaque);
      if (idx >= 0) this.pending.splice(idx, 1)[0]!.resolve(resp);
    }
  }

  private request(opcode: number, key: Buffer | string = "", value: Buffer | string = "", extras = Buffer.alloc(0)): Promise<Response> {
    if (this.closed) return Promise.reject(new Error("memcached connection closed"));
    const k = typeof key === "string" ? Buffer.from(key, "utf8") : key;
    const v = typeof value === "string" ? Buffer.from(value, "utf8") : value;
    const opaque = this.nextOpaque++ >>> 0;
    const h = Buffer.alloc(24);
    h.writeUInt8(0x80, 0);
    h.writeUInt8(opcode, 1);
    h.writeUInt16BE(k.length, 2);
    h.writeUInt8(extras.length, 4);
    h.writeUInt32BE(extras.length + k.length + v.length, 8);
    h.writeUInt32BE(opaque, 12);
    return new Promise<Response>((resolve, reject) => {
      const t = setTimeout(() => {
        const idx = this.pending.findIndex((p) => p.opaque === opaque);
        if (idx >= 0) this.pending.splice(idx, 1);
        reject(new Error(`memcached request 0x${opcode.toString(16)} timed out`));
      }, this.timeoutMs);
      this.pending.push({
        opaque,
        resolve: (r) => {
          clearTimeout(t);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(t);
          reject(e);
        },
      });
      this.sock.write(Buffer.concat([h, extras, k, v]));
    });
  }

  private static check(r: Response, what: string, ok: number[] = [STATUS.ok]): Response {
    if (!ok.includes(r.status)) {
      throw new MemcachedError(`memcached ${what}: status 0x${r.status.toString(16)} ${r.value.toString("utf8")}`, r.status);
    }
    return r;
  }

  /** Note: memcached resets a connection's SASL state on LIST_MECHS; call it before auth(). */
  async listMechs(): Promise<string[]> {
    const r = MemcachedClient.check(await this.request(OP.saslListMechs), "SASL list mechs");
    return r.value.toString("utf8").split(/\s+/).filter(Boolean);
  }

  /** SASL PLAIN; throws MemcachedError (status 0x20) on bad credentials. */
  async auth(username: string, password: string): Promise<void> {
    const token = Buffer.concat([Buffer.from([0]), Buffer.from(username, "utf8"), Buffer.from([0]), Buffer.from(password, "utf8")]);
    MemcachedClient.check(await this.request(OP.saslAuth, "PLAIN", token), "SASL auth");
  }

  async get(key: string): Promise<Buffer | null> {
    const r = MemcachedClient.check(await this.request(OP.get, key), `get ${key}`, [STATUS.ok, STATUS.keyNotFound]);
    return r.status === STATUS.ok ? r.value : null;
  }

  async getString(key: string): Promise<string | null> {
    const v = await this.get(key);
    return v === null ? null : v.toString("utf8");
  }

  async has(key: string): Promise<boolean> {
    return (await this.get(key)) !== null;
  }

  async set(key: string, value: string | Buffer, opts: { exptime?: number; flags?: number } = {}): Promise<void> {
    const extras = Buffer.alloc(8);
    extras.writeUInt32BE(opts.flags ?? 0, 0);
    extras.writeUInt32BE(opts.exptime ?? 0, 4);
    MemcachedClient.check(await this.request(OP.set, key, value, extras), `set ${key}`);
  }

  /** true if the key existed. */
  async delete(key: string): Promise<boolean> {
    const r = MemcachedClient.check(await this.request(OP.delete, key), `delete ${key}`, [STATUS.ok, STATUS.keyNotFound]);
    return r.status === STATUS.ok;
  }

  async flush(): Promise<void> {
    MemcachedClient.check(await this.request(OP.flush), "flush");
  }

  async version(): Promise<string> {
    return MemcachedClient.check(await this.request(OP.version), "version").value.toString("utf8");
  }

  async noop(): Promise<void> {
    MemcachedClient.check(await this.request(OP.noop), "noop");
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

export interface StartMemcachedOptions {
  /**
   * SASL password for user zulip@localhost (like the `memcached_password` secret). Default: a
   * random 64-hex one. null = start without SASL (same as sasl: false).
   */
  password?: string | null;
  /** Default true unless password is null. */
  sasl?: boolean;
  memoryMb?: number;
}

export interface MemcachedInstance {
  host: string;
  port: number;
  /** "127.0.0.1:<port>", the form of Zulip's MEMCACHED_LOCATION. */
  location: string;
  sasl: boolean;
  /** "zulip@localhost" (Zulip's MEMCACHED_USERNAME) when SASL is on, else null. */
  username: string | null;
  password: string | null;
  pid: number;
  dir: string;
  /** Connected client; authenticates with the instance's credentials unless auth:false. */
  connect(opts?: { auth?: boolean | { username: string; password: string } }): Promise<MemcachedClient>;
  /** Stop memcached and delete its temp dir. Idempotent. */
  stop(): Promise<void>;
}

export const MEMCACHED_USER = "zulip";

function memcachedBinary(): string {
  const p = process.env.ZM_TEST_MEMCACHED || findExecutable("memcached", ["/usr/bin", "/usr/local/bin"]);
  if (!p) throw new Error("test harness: memcached not found (apt-get install memcached)");
  return p;
}

function saslpasswd(db: string, realm: string, user: string, password: string): Promise<void> {
  const bin = findExecutable("saslpasswd2", ["/usr/sbin", "/usr/bin"]);
  if (!bin) throw new Error("test harness: saslpasswd2 not found (apt-get install sasl2-bin)");
  return new Promise((resolve, reject) => {
    // -p: read the password from stdin, no prompt/confirmation; -c: create the entry.
    const child = execFile(bin, ["-p", "-c", "-f", db, "-a", "memcached", "-u", realm, user], (err, _out, stderr) => {
      if (err) reject(new Error(`saslpasswd2 failed: ${stderr || err.message}`));
      else resolve();
    });
    child.stdin!.end(password);
  });
}

export async function startMemcached(opts: StartMemcachedOptions = {}): Promise<MemcachedInstance> {
  const bin = memcachedBinary();
  const sasl = opts.sasl ?? opts.password !== null;
  const password = sasl ? (opts.password ?? randomHex(32)) : null;
  const dir = makeTempDir("memcached");
  const logFile = path.join(dir, "memcached.log");
  let pid = -1;
  let stopped = false;
  const untrack = track({ label: "memcached", pid: () => pid, signal: "SIGKILL", dir });
  try {
    const env: NodeJS.ProcessEnv = { ...process.env };
    if (sasl) {
      // Same layout as Zulip's /etc/sasl2: memcached.conf (mech_list + sasldb_path) and a
      // sasldb with zulip@localhost and zulip@<hostname> (the latter for MEMCACHED_USERNAME="zulip").
      const saslDir = path.join(dir, "sasl2");
      fs.mkdirSync(saslDir);
      const db = path.join(saslDir, "memcached-sasldb2");
      fs.writeFileSync(path.join(saslDir, "memcached.conf"), `mech_list: plain\nsasldb_path: ${db}\n`);
      await saslpasswd(db, "localhost", MEMCACHED_USER, password!);
      const host = os.hostname();
      if (host && host !== "localhost") await saslpasswd(db, host, MEMCACHED_USER, password!);
      chownToServiceUser(saslDir, true);
      env.SASL_CONF_PATH = saslDir;
    }
    fs.writeFileSync(logFile, "");
    chownToServiceUser(logFile);

    let lastErr: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freePort();
      const args = ["-l", "127.0.0.1", "-p", String(port), "-U", "0", "-m", String(opts.memoryMb ?? 64), "-c", "1024", "-t", "2"];
      if (sasl) args.push("-S");
      const svc = spawnService(bin, args, { cwd: dir, env, logFile, deathSignal: "SIGTERM" });
      pid = svc.pid;
      try {
        await waitFor("memcached startup", async () => canConnect("127.0.0.1", port), { service: svc, timeoutMs: 15_000 });
        svc.child.unref();
        const inst: MemcachedInstance = {
          host: "127.0.0.1",
          port,
          location: `127.0.0.1:${port}`,
          sasl,
          username: sasl ? `${MEMCACHED_USER}@localhost` : null,
          password,
          pid,
          dir,
          async connect(copts = {}) {
            const auth = copts.auth ?? sasl;
            const creds =
              typeof auth === "object" ? auth : auth && sasl ? { username: inst.username!, password: password! } : null;
            return MemcachedClient.connect({ host: "127.0.0.1", port, ...(creds ?? {}) });
          },
          async stop() {
            if (stopped) return;
            stopped = true;
            untrack();
            // SIGTERM takes memcached ~1 s (its clock tick); it holds nothing worth a clean exit.
            await stopService(svc, "SIGKILL", 5000);
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
