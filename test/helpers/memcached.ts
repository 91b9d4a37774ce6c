// Throwaway memcached for tests (Debian's /usr/bin/memcached), with SASL set up the way Zulip's
// puppet does it (sasldb entry zulip@localhost + zulip@<hostname>, mech_list: plain). Tests talk
// to it with the product's client (src/services/memcached.ts), re-exported here.
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { MemcachedClient } from "../../src/services/memcached.js";
import { canConnect, chownToServiceUser, launchService, randomHex, spawnService } from "./services.js";
import { requireTool } from "./tools.js";

export { MemcachedClient, MemcachedError, STATUS } from "../../src/services/memcached.js";

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

const MEMCACHED_USER = "zulip";

const memcachedBinary = (): string => requireTool("memcached");

function saslpasswd(db: string, realm: string, user: string, password: string): Promise<void> {
  const bin = requireTool("saslpasswd2");
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
  const env: NodeJS.ProcessEnv = { ...process.env };
  const svc = await launchService({
    kind: "memcached",
    async prepare(dir) {
      if (!sasl) return;
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
    },
    spawn(port, dir, logFile) {
      const args = ["-l", "127.0.0.1", "-p", String(port), "-U", "0", "-m", String(opts.memoryMb ?? 64), "-c", "1024", "-t", "2"];
      if (sasl) args.push("-S");
      return spawnService(bin, args, { cwd: dir, env, logFile, deathSignal: "SIGTERM" });
    },
    ready: (port) => canConnect("127.0.0.1", port),
    // SIGTERM takes memcached ~1 s (its clock tick); it holds nothing worth a clean exit.
    stopSignal: "SIGKILL",
  });
  const username = sasl ? `${MEMCACHED_USER}@localhost` : null;
  return {
    host: "127.0.0.1",
    port: svc.port,
    location: `127.0.0.1:${svc.port}`,
    sasl,
    username,
    password,
    pid: svc.pid,
    dir: svc.dir,
    async connect(copts = {}) {
      const auth = copts.auth ?? sasl;
      const creds = typeof auth === "object" ? auth : auth && sasl ? { username: username!, password: password! } : {};
      return MemcachedClient.connect({ host: "127.0.0.1", port: svc.port }, creds);
    },
    stop: () => svc.stop(),
  };
}
