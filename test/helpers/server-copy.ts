// A copy of a Zulip database with a memcached next to it and an /etc/zulip replica pointing at
// both: what the suites of the write commands start in their beforeAll.
import { type ConfDir, makeConfDir } from "./confdir.js";
import { type MemcachedClient, type MemcachedInstance, startMemcached } from "./memcached.js";
import { createDatabase, type TemplateName, type TestDatabase } from "./pg.js";

export interface ServerCopy {
  db: TestDatabase;
  mc: MemcachedInstance;
  /** A connected memcached client when asked for (`client: true`). */
  client: MemcachedClient | undefined;
  conf: ConfDir;
  /** Close the client, stop memcached, remove the configuration, drop the database. */
  stop(): Promise<void>;
}

export async function startServerCopy(opts: { template: TemplateName; externalHost: string; client?: boolean; extraSettings?: string }): Promise<ServerCopy> {
  const copy: Partial<ServerCopy> = {};
  const stop = async () => {
    await copy.client?.close();
    await copy.mc?.stop();
    copy.conf?.cleanup();
    await copy.db?.drop();
  };
  try {
    copy.db = await createDatabase({ template: opts.template });
    copy.mc = await startMemcached();
    copy.client = opts.client ? await copy.mc.connect() : undefined;
    copy.conf = makeConfDir({ memcached: copy.mc, externalHost: opts.externalHost, extraSettings: opts.extraSettings });
  } catch (e) {
    await stop();
    throw e;
  }
  return { ...(copy as ServerCopy), stop };
}
