// Throwaway Redis for tests (redis-server, no persistence, requirepass like Zulip's
// redis_password). Tests talk to it with the product's client (src/services/redis.ts), re-exported here.
import fs from "node:fs";
import path from "node:path";
import { RedisClient } from "../../src/services/redis.js";
import { chownToServiceUser, launchService, randomHex, spawnService } from "./services.js";
import { requireTool } from "./tools.js";

export { RedisClient } from "../../src/services/redis.js";

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
  const bin = requireTool("redis-server");
  const password = opts.password === undefined ? randomHex(32) : opts.password;
  const svc = await launchService({
    kind: "redis",
    spawn(port, dir, logFile) {
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
      return spawnService(bin, [conf], { cwd: dir, logFile, deathSignal: "SIGTERM" });
    },
    async ready(port) {
      const c = await RedisClient.connect({ host: "127.0.0.1", port, timeoutMs: 1000 });
      try {
        await c.ping();
        return true;
      } catch (e) {
        return /NOAUTH/.test(String(e));
      } finally {
        c.close();
      }
    },
    stopSignal: "SIGTERM",
  });
  return {
    host: "127.0.0.1",
    port: svc.port,
    password,
    pid: svc.pid,
    dir: svc.dir,
    async connect(copts = {}) {
      const auth = copts.auth ?? password !== null;
      const pw = typeof auth === "string" ? auth : auth && password !== null ? password : undefined;
      return RedisClient.connect({ host: "127.0.0.1", port: svc.port, ...(pw !== undefined ? { password: pw } : {}) });
    },
    stop: () => svc.stop(),
  };
}
