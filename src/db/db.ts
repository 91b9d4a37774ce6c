// The one database connection a command uses, derived exactly as Zulip's computed_settings.py
// derives DATABASES, with the standard libpq variables (PGHOST, PGPORT, PGDATABASE, PGUSER,
// PGPASSWORD, PGSSLMODE) overriding each piece. `pg` is imported lazily: commands that never
// touch the database do not pay for it.
import os from "node:os";
import path from "node:path";
import type { Client, ClientConfig } from "pg";
import type { Config } from "../config/config.js";
import { EnvironmentError } from "../lib/errors.js";
import { loadPg } from "./pg-loader.js";
import { latestMainlineMigration, OLDER_THAN_SUPPORTED, releaseForMigration } from "./zulip-versions.js";
import { READ_LIMITS, readBounded } from "../lib/files.js";

/** What library functions need from a connection (a pg Client satisfies it). */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: any[]; rowCount: number | null }>;
}

export interface ConnectionPlan {
  hosts: string[]; // one entry per host to try; a Unix socket directory starts with '/'
  port: number;
  database: string;
  user: string;
  password?: string;
  sslmode: string;
  /** Several hosts: connect to the one that accepts writes (libpq target_session_attrs=read-write). */
  readWrite: boolean;
  /** Human-readable origin of each piece, for error messages and `doctor`. */
  describe: string;
}

const CONNECT_TIMEOUT_MS = 2000; // Zulip: OPTIONS connect_timeout=2

/**
 * Session settings sent in the start-up packet (no extra round trip): Zulip's search_path, and
 * TimeZone=UTC as Django's PostgreSQL backend sets it for USE_TZ=True (DatabaseWrapper's
 * timezone_name is 'UTC'; ensure_timezone() switches the session to it). SQL date arithmetic
 * (`now() - interval '28 days'`, `make_interval(weeks => n)`, ::date, date_trunc) then counts in
 * UTC, like Zulip's `timezone_now() - timedelta(...)`, whatever the server's default time zone.
 */
const SESSION_OPTIONS = "-c search_path=zulip,public -c TimeZone=UTC";

export function planConnection(config: Config, env: NodeJS.ProcessEnv = process.env): ConnectionPlan {
  const s = config.settings;
  const database = config.conf("postgresql", "database_name") || "zulip";
  const user = config.conf("postgresql", "database_user") || "zulip";
  let hostSpec = "/var/run/postgresql";
  let port = 5432;
  let password: string | undefined;
  let sslmode = "prefer";
  const remoteHost = s.get("REMOTE_POSTGRES_HOST") as string;
  if (remoteHost) {
    hostSpec = remoteHost;
    const remotePort = s.get("REMOTE_POSTGRES_PORT");
    if (remotePort !== "" && remotePort !== null && remotePort !== undefined) port = Number(remotePort);
    password = config.secret("postgres_password");
    sslmode = (s.get("REMOTE_POSTGRES_SSLMODE") as string) || "verify-full";
  } else if (user !== "zulip" && config.secret("postgres_password") !== undefined) {
    hostSpec = "localhost";
    password = config.secret("postgres_password");
  }
  if (env.PGHOST) hostSpec = env.PGHOST;
  if (env.PGPORT) port = Number(env.PGPORT);
  const plan: ConnectionPlan = {
    hosts: hostSpec
      .split(",")
      .map((h) => h.trim())
      .filter(Boolean),
    port,
    database: env.PGDATABASE || database,
    user: env.PGUSER || user,
    password: env.PGPASSWORD !== undefined ? env.PGPASSWORD : password,
    sslmode: env.PGSSLMODE || sslmode,
    readWrite: false,
    describe: "",
  };
  plan.readWrite = plan.hosts.length > 1;
  plan.describe = `database '${plan.database}' as user '${plan.user}' on ${plan.hosts.join(",")}${
    plan.hosts.some((h) => !h.startsWith("/")) ? `:${plan.port}` : ""
  }`;
  return plan;
}

/**
 * libpq's environment for a connection plan: what psql and pg_dump get. The password goes only
 * into PGPASSWORD (a child's environment is readable by its own user and root alone), never onto
 * a command line where `ps` shows it to everyone.
 */
export function libpqEnvironment(plan: ConnectionPlan, appName: string, opts: { searchPath?: boolean } = {}): Record<string, string> {
  const env: Record<string, string> = {
    PGHOST: plan.hosts.join(","),
    PGPORT: String(plan.port),
    PGDATABASE: plan.database,
    PGUSER: plan.user,
    PGSSLMODE: plan.sslmode,
    PGCONNECT_TIMEOUT: String(Math.max(2, Math.ceil(CONNECT_TIMEOUT_MS / 1000))),
    PGAPPNAME: appName,
  };
  if (opts.searchPath) env.PGOPTIONS = "-c search_path=zulip,public";
  if (plan.readWrite) env.PGTARGETSESSIONATTRS = "read-write";
  if (plan.password !== undefined) env.PGPASSWORD = plan.password;
  return env;
}

function sslOption(sslmode: string, host: string): ClientConfig["ssl"] {
  if (host.startsWith("/")) return false;
  switch (sslmode) {
    case "disable":
    case "allow":
    case "prefer":
      return false;
    case "require":
      return { rejectUnauthorized: false };
    case "verify-ca":
    case "verify-full": {
      const rootCert = process.env.PGSSLROOTCERT || path.join(os.homedir(), ".postgresql", "root.crt");
      let ca: string | undefined;
      try {
        ca = readBounded(rootCert, READ_LIMITS.config, "The CA certificate file");
      } catch {
        ca = undefined; // fall back to the system's trusted CAs
      }
      return sslmode === "verify-ca" ? { rejectUnauthorized: true, ca, checkServerIdentity: () => undefined } : { rejectUnauthorized: true, ca };
    }
    default:
      throw new EnvironmentError(`Unsupported PostgreSQL sslmode '${sslmode}' (use disable, require, verify-ca or verify-full).`, "config_invalid");
  }
}

/** A statement that may change zerver_userprofile rows (see Db.userProfileWrites). */
const USER_PROFILE_WRITE = /\b(?:UPDATE|INSERT\s+INTO|DELETE\s+FROM)\s+(?:ONLY\s+)?"?zerver_userprofile"?(?!\w)|\b(?:TRUNCATE|COPY)\b/i;

export class Db implements Queryable {
  /** Newest mainline zerver migration applied (backports to older releases ignored), or null. */
  zerverMigration: number | null = null;

  /**
   * A stamp that changes whenever this connection runs a statement that may change
   * zerver_userprofile rows, or ends a transaction: what was read of a realm's users (the
   * recipients of an action's events, audiences.ts) can be reused while it stays the same.
   */
  userProfileWrites = 0;

  constructor(
    readonly client: Client,
    readonly plan: ConnectionPlan,
  ) {}

  query(text: string, values?: unknown[]) {
    if (USER_PROFILE_WRITE.test(text)) this.userProfileWrites++;
    return this.client.query(text, values as any[]);
  }

  /** Run fn inside one transaction; roll back on any error. */
  async tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    this.userProfileWrites++;
    await this.client.query("BEGIN");
    try {
      const result = await fn(this);
      await this.client.query("COMMIT");
      this.userProfileWrites++;
      return result;
    } catch (e) {
      this.userProfileWrites++;
      try {
        await this.client.query("ROLLBACK");
      } catch {
        /* the connection may be gone; the server rolls back */
      }
      throw e;
    }
  }

  /** Feature detection from the catalog: tableColumns(this, table). */
  columns(table: string): Promise<Set<string>> {
    return tableColumns(this, table);
  }

  hasTable(table: string): Promise<boolean> {
    return hasTable(this, table);
  }

  hasColumn(table: string, column: string): Promise<boolean> {
    return hasColumn(this, table, column);
  }

  /** The Zulip release this database's schema belongs to, e.g. "12.x". */
  get release(): string {
    return this.zerverMigration !== null ? releaseForMigration(this.zerverMigration) : "unknown";
  }

  /**
   * Say goodbye (the protocol's Terminate) and close our end, without waiting for the server
   * to close its end: a server backend takes milliseconds to exit, which a command that is
   * done should not wait for.
   */
  async close(): Promise<void> {
    await closeClient(this.client);
  }
}

/** End a pg Client without waiting for the server's side of the close. */
async function closeClient(client: Client): Promise<void> {
  const stream = (client as any).connection?.stream;
  const ended = client.end().catch(() => undefined);
  if (typeof stream?.unref === "function") stream.unref();
  else await ended;
}

/**
 * Run `fn` on a second, short-lived connection made like the command's own (a read that can go
 * on beside the command's transaction). Resolves null instead of failing: callers fall back to
 * doing the read on their own connection. Only for a single configured host (with several,
 * which one accepts writes is for connect() to find out).
 */
export async function withSideConnection<T>(config: Config, env: NodeJS.ProcessEnv, fn: (q: Queryable) => Promise<T>): Promise<T | null> {
  let client: Client | undefined;
  try {
    const plan = planConnection(config, env);
    if (plan.hosts.length !== 1) return null;
    client = await connectOne(await loadPg(), plan, plan.hosts[0]);
    client.on("error", () => undefined);
    return await fn(client);
  } catch {
    return null;
  } finally {
    if (client) await closeClient(client);
  }
}

/** The tables whose shapes the version probe preloads: the ones most commands look at. */
const PRELOADED_TABLES = ["zerver_realm", "zerver_userprofile", "zerver_realmauditlog", "zerver_namedusergroup"];

// ---------------------------------------------------------------------------------------------
// The catalog: which tables and columns this database has (feature detection across Zulip
// releases) and which columns an INSERT must fill. One cache per connection object, for every
// caller: a Db, or a bare pg Client (tests, side connections).

/** A table's columns as the catalog describes them. */
export interface TableShape {
  /** Column names in table order (attnum); empty when there is no such table. */
  columns: Set<string>;
  /** NOT NULL columns without a database default or identity (Django's Python defaults must fill these). */
  required: Set<string>;
}

/**
 * SQL for the shapes of several tables (a text[] of names in placeholder `param`), each name
 * resolved as an unqualified name in a statement is (to_regclass: the first match in the search
 * path): JSON {table: [[column, required], …] in column order, or null}; to embed in a larger
 * statement or run alone (queryTableShapes).
 */
function shapesJsonSql(param: string): string {
  return `(SELECT json_object_agg(t.name, (
       SELECT json_agg(json_build_array(a.attname, a.attnotnull AND NOT a.atthasdef AND a.attidentity = '') ORDER BY a.attnum)
         FROM pg_catalog.pg_attribute a WHERE a.attrelid = to_regclass(t.name) AND a.attnum > 0 AND NOT a.attisdropped))
     FROM unnest(${param}::text[]) AS t(name))`;
}

function shapesFromJson(tables: string[], json: Record<string, [string, boolean][] | null> | null): Map<string, TableShape> {
  return new Map(
    tables.map((t) => {
      const cols = json?.[t] ?? [];
      return [t, { columns: new Set(cols.map(([c]) => c)), required: new Set(cols.filter(([, r]) => r).map(([c]) => c)) }];
    }),
  );
}

/** Read the shapes of these tables now (no cache). */
export async function queryTableShapes(q: Queryable, tables: string[]): Promise<Map<string, TableShape>> {
  const { rows } = await q.query(`SELECT ${shapesJsonSql("$1")} AS shapes`, [tables]);
  return shapesFromJson(tables, rows[0]?.shapes ?? null);
}

const shapeCache = new WeakMap<object, Map<string, Promise<TableShape>>>();

function shapesOf(q: Queryable): Map<string, Promise<TableShape>> {
  let cache = shapeCache.get(q);
  if (!cache) shapeCache.set(q, (cache = new Map()));
  return cache;
}

/** Cache `shape` (a pending read) for `table` on this connection; a failed read is forgotten. */
function remember(cache: Map<string, Promise<TableShape>>, table: string, shape: Promise<TableShape>): void {
  cache.set(table, shape);
  shape.catch(() => {
    if (cache.get(table) === shape) cache.delete(table);
  });
}

/** Read (once per connection) the shapes of several tables in one statement. */
export async function prefetchTableShapes(q: Queryable, tables: string[]): Promise<void> {
  const cache = shapesOf(q);
  const missing = tables.filter((t) => !cache.has(t));
  if (missing.length === 0) return;
  const all = queryTableShapes(q, missing);
  for (const t of missing)
    remember(
      cache,
      t,
      all.then((m) => m.get(t)!),
    );
  await all;
}

/** A table's shape (read once per connection). */
export function tableShape(q: Queryable, table: string): Promise<TableShape> {
  const cache = shapesOf(q);
  let shape = cache.get(table);
  if (!shape) remember(cache, table, (shape = queryTableShapes(q, [table]).then((m) => m.get(table)!)));
  return shape;
}

/** The columns of `table` (a table or view in the search path), in table order; empty when there is no such table. */
export async function tableColumns(q: Queryable, table: string): Promise<Set<string>> {
  return (await tableShape(q, table)).columns;
}

/** NOT NULL columns of a table that have no database default. */
export async function requiredColumns(q: Queryable, table: string): Promise<Set<string>> {
  return (await tableShape(q, table)).required;
}

async function hasTable(q: Queryable, table: string): Promise<boolean> {
  return (await tableColumns(q, table)).size > 0;
}

export async function hasColumn(q: Queryable, table: string, column: string): Promise<boolean> {
  return (await tableColumns(q, table)).has(column);
}

/** The newest zerver migrations: only backports can lie above the newest mainline one, so the newest few are enough. */
const NEWEST_ZERVER_MIGRATIONS_SQL = "SELECT name FROM django_migrations WHERE app = 'zerver' ORDER BY name DESC LIMIT 16";

const NO_ZULIP_DB_MESSAGE = "The Zulip database does not appear to exist. Have you run initialize-database?";

async function connectOne(pg: Awaited<ReturnType<typeof loadPg>>, plan: ConnectionPlan, host: string): Promise<Client> {
  const ssl = sslOption(plan.sslmode, host);
  const make = (sslSetting: ClientConfig["ssl"]) =>
    new pg.Client({
      host,
      port: plan.port,
      database: plan.database,
      user: plan.user,
      password: plan.password,
      ssl: sslSetting,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      options: SESSION_OPTIONS,
      application_name: "zulip-manage",
    });
  let client = make(ssl);
  try {
    await client.connect();
  } catch (e) {
    // sslmode=prefer/allow on TCP: libpq tries SSL first and falls back; we try plain first and
    // upgrade only if the server insists (pg_hba hostssl), which is equivalent for our purposes.
    if (!host.startsWith("/") && (plan.sslmode === "prefer" || plan.sslmode === "allow") && /SSL|encryption|hostssl/i.test(String((e as Error).message))) {
      client = make({ rejectUnauthorized: false });
      await client.connect();
    } else {
      throw e;
    }
  }
  return client;
}

/** Connect, check that this is a Zulip database of a supported release, and return it. */
export async function connect(config: Config, env: NodeJS.ProcessEnv = process.env): Promise<Db> {
  const plan = planConnection(config, env);
  const pg = await loadPg();
  let client: Client | undefined;
  const errors: string[] = [];
  for (const host of plan.hosts) {
    try {
      const c = await connectOne(pg, plan, host);
      if (plan.readWrite) {
        const { rows } = await c.query("SELECT pg_catalog.pg_is_in_recovery() AS ro");
        if (rows[0].ro) {
          errors.push(`${host}: read-only (standby)`);
          await c.end();
          continue;
        }
      }
      client = c;
      break;
    } catch (e: any) {
      errors.push(`${host}: ${e?.message ?? e}`);
    }
  }
  if (!client) {
    throw new EnvironmentError(
      `Cannot connect to the Zulip database (${plan.describe}): ${errors.join("; ")}\n` +
        `Check that PostgreSQL is running and that you run zulip-manage as the Zulip user ('zulip'); ` +
        `PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD and PGSSLMODE override the connection settings.`,
      "database_unreachable",
    );
  }
  // Never let a stray 'error' event (server restart, idle disconnect) crash the process.
  client.on("error", () => undefined);
  const db = new Db(client, plan);
  // One round trip for a Zulip database: the newest migrations and the shapes of the most used
  // tables. It fails when django_migrations does not exist; then the step-by-step probe says why.
  let names: string[] | null = null;
  try {
    const { rows } = await client.query(
      `SELECT ARRAY(${NEWEST_ZERVER_MIGRATIONS_SQL}) AS names, to_regclass('zerver_realm') IS NOT NULL AS has_realm,
              ${shapesJsonSql("$1")} AS shapes`,
      [PRELOADED_TABLES],
    );
    if (rows[0].has_realm) {
      names = rows[0].names;
      const cache = shapesOf(db);
      for (const [table, shape] of shapesFromJson(PRELOADED_TABLES, rows[0].shapes)) remember(cache, table, Promise.resolve(shape));
    }
  } catch {
    names = null;
  }
  if (names === null) {
    const { rows } = await client.query(
      "SELECT to_regclass('zerver_realm') IS NOT NULL AS has_realm, to_regclass('django_migrations') IS NOT NULL AS has_migrations",
    );
    if (!rows[0].has_realm) {
      await db.close();
      throw new EnvironmentError(`${NO_ZULIP_DB_MESSAGE}\n(${plan.describe} has no zerver_realm table.)`, "not_a_zulip_database");
    }
    if (rows[0].has_migrations) {
      const m = await client.query(NEWEST_ZERVER_MIGRATIONS_SQL);
      names = m.rows.map((r: { name: string }) => r.name);
    }
  }
  if (names !== null) {
    const n = latestMainlineMigration(names);
    db.zerverMigration = Number.isFinite(n) && n > 0 ? n : null;
  }
  const n = db.zerverMigration;
  // Newer releases than we know are accepted: every command detects the tables and columns it uses.
  if (n === null || releaseForMigration(n) === OLDER_THAN_SUPPORTED) {
    await db.close();
    throw new EnvironmentError(
      n === null
        ? `${plan.describe} has a zerver_realm table but no Zulip migration history (django_migrations); it does not look like a Zulip database.`
        : `This Zulip database is too old: its newest zerver migration is ${String(n).padStart(4, "0")} ` +
            `(Zulip ${releaseForMigration(n)}). zulip-manage supports Zulip 10.0 and newer; upgrade the server first.`,
      n === null ? "not_a_zulip_database" : "database_unsupported",
    );
  }
  return db;
}
