// A copy of a Zulip server for one suite: a clone of a template database, a memcached (and a
// Redis when asked) next to it, and an /etc/zulip replica pointing at all of them (zulip.conf
// names the database, as a server's does). Every suite that needs a server starts it this way:
//
//   let copy: ServerCopy;
//   beforeAll(async () => { copy = await startServerCopy({ template: "zulip12_fresh" }); }, 120_000);
//   afterAll(() => copy?.stop());
//   ... runCli([...], { db: copy.db, confDir: copy.conf }) ...
import { type ConfDir, type MakeConfDirOptions, makeConfDir } from "./confdir.js";
import { type MemcachedClient, type MemcachedInstance, startMemcached } from "./memcached.js";
import { createDatabase, type CustomTemplate, type TemplateName, type TestDatabase } from "./pg.js";
import { type RedisInstance, startRedis } from "./redis.js";

export interface ServerCopyOptions {
  template: TemplateName | CustomTemplate;
  /** settings.py's EXTERNAL_HOST (default: makeConfDir's, zulip.example.net). */
  externalHost?: string;
  /** Appended to settings.py. */
  extraSettings?: string;
  /**
   * Start a memcached and point settings.py at it (default true); or point it at a memcached the
   * suite already runs (shared by several copies; stop() leaves it running).
   */
  memcached?: boolean | MemcachedInstance;
  /** Also connect a memcached client (`copy.client`). */
  client?: boolean;
  /** Also start a Redis and point settings.py at it (`copy.redis`). */
  redis?: boolean;
  /** Anything else makeConfDir takes (settings, secrets, rabbitmq, deployment dirs, ...). */
  conf?: Omit<MakeConfDirOptions, "db" | "memcached" | "redis" | "externalHost" | "extraSettings">;
}

export interface ServerCopy {
  db: TestDatabase;
  /** The memcached (undefined with `memcached: false`). */
  mc: MemcachedInstance;
  /** A connected memcached client when asked for (`client: true`). */
  client: MemcachedClient | undefined;
  /** The Redis when asked for (`redis: true`). */
  redis: RedisInstance | undefined;
  conf: ConfDir;
  /** Close the client, stop the servers, remove the configuration, drop the database. */
  stop(): Promise<void>;
}

export async function startServerCopy(opts: ServerCopyOptions): Promise<ServerCopy> {
  const copy: Partial<ServerCopy> = {};
  const sharedMc = typeof opts.memcached === "object" ? opts.memcached : undefined;
  const stop = async () => {
    await copy.client?.close();
    await copy.redis?.stop();
    if (!sharedMc) await copy.mc?.stop();
    copy.conf?.cleanup();
    await copy.db?.drop();
  };
  try {
    copy.db = await createDatabase({ template: opts.template });
    if (opts.memcached !== false) copy.mc = sharedMc ?? (await startMemcached());
    copy.client = opts.client && copy.mc ? await copy.mc.connect() : undefined;
    if (opts.redis) copy.redis = await startRedis();
    copy.conf = makeConfDir({
      ...opts.conf,
      db: { name: copy.db.name },
      memcached: copy.mc ? { location: copy.mc.location, password: copy.mc.password } : undefined,
      redis: copy.redis ? { host: copy.redis.host, port: copy.redis.port, password: copy.redis.password } : undefined,
      externalHost: opts.externalHost,
      extraSettings: opts.extraSettings,
    });
  } catch (e) {
    await stop();
    throw e;
  }
  return { ...(copy as ServerCopy), stop };
}
