// The schema fixtures against the real thing: test/fixtures/zulip12/schema.sql must load on
// stock PostgreSQL and reproduce the catalog of the real Zulip 12.2 dump (snapshotted in
// test/fixtures/zulip12.2-reference.json); base-data/fresh-install and the 11.x/10.x patches
// must load on top and agree with src/lib/zulip-versions.ts.
//
// PostgreSQL: a private throwaway cluster (below). TODO: switch to the shared harness in
// test/helpers/pg.ts once it is committed.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error plain ESM helper without type declarations
import { readCatalog } from "../scripts/lib/catalog.mjs";
import {
  LAST_ZULIP9_MIGRATION,
  NEWER_THAN_SUPPORTED,
  OLDER_BACKPORTS,
  OLDER_THAN_SUPPORTED,
  RELEASES,
  SCHEMA_CHANGES,
  ZERVER_MIGRATION_FLOOR,
  existsIn,
  isSupportedMigration,
  latestMainlineMigration,
  migrationNumber,
  releaseForMigration,
  releaseForMigrations,
} from "../src/lib/zulip-versions.js";

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures");
const fixture = (name: string) => path.join(FIXTURES, name);

// ---------------------------------------------------------------------------------------------
// Minimal private PostgreSQL cluster: initdb into a temp dir (as `nobody` when root), listen on
// 127.0.0.1:<free port> and a socket in the temp dir, trust auth; removed in stop().

interface Cluster {
  socketDir: string;
  port: number;
  psql(database: string, user: string, args: string[]): void;
  connect(database: string): Promise<pg.Client>;
  stop(): Promise<void>;
}

function pgBinDir(): string {
  if (process.env.ZM_TEST_PG_BINDIR) return process.env.ZM_TEST_PG_BINDIR;
  const base = "/usr/lib/postgresql";
  const versions = fs.existsSync(base)
    ? fs.readdirSync(base).filter((v) => fs.existsSync(path.join(base, v, "bin", "initdb")))
    : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error("no PostgreSQL server binaries under /usr/lib/postgresql");
  return path.join(base, versions[0], "bin");
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function startCluster(): Promise<Cluster> {
  const bin = pgBinDir();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "zm-fixture-pg-"));
  const asRoot = process.getuid?.() === 0;
  const ids = asRoot
    ? {
        uid: Number(spawnSync("id", ["-u", "nobody"], { encoding: "utf8" }).stdout),
        gid: Number(spawnSync("id", ["-g", "nobody"], { encoding: "utf8" }).stdout),
      }
    : {};
  if (asRoot) fs.chownSync(dir, ids.uid!, ids.gid!);
  const data = path.join(dir, "data");
  const init = spawnSync(
    path.join(bin, "initdb"),
    ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
    { cwd: dir, encoding: "utf8", ...ids },
  );
  if (init.status !== 0) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${init.stderr}`);
  }
  const port = await freePort();
  const server = spawn(
    path.join(bin, "postgres"),
    ["-D", data, "-k", dir, "-p", String(port), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
    { cwd: dir, stdio: ["ignore", "ignore", "pipe"], ...ids },
  );
  let log = "";
  server.stderr.on("data", (c) => (log += c));
  let exited = false;
  server.on("exit", () => (exited = true));

  const connect = async (database: string) => {
    const client = new pg.Client({ host: dir, port, user: "postgres", database });
    await client.connect();
    return client;
  };
  const stop = async () => {
    if (!exited) {
      const done = new Promise((r) => server.once("exit", r));
      server.kill("SIGINT");
      await done;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  for (const deadline = Date.now() + 30_000; ; ) {
    try {
      await (await connect("postgres")).end();
      break;
    } catch (err) {
      if (exited || Date.now() > deadline) {
        await stop();
        throw new Error(`postgres did not start: ${err}\n${log}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const psqlBin = fs.existsSync(path.join(bin, "psql")) ? path.join(bin, "psql") : "psql";
  const psql = (database: string, user: string, args: string[]) => {
    const res = spawnSync(
      psqlBin,
      ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", dir, "-p", String(port), "-U", user, "-d", database, ...args],
      { encoding: "utf8" },
    );
    if (res.status !== 0) throw new Error(`psql ${args.join(" ")} failed:\n${res.stderr}`);
  };
  return { socketDir: dir, port, psql, connect, stop };
}

// ---------------------------------------------------------------------------------------------

const OWNER = "zulip"; // loads run as the (non-superuser) database owner

let cluster: Cluster;
let dbCounter = 0;

/** A new database owned by OWNER with the given fixture files loaded through psql. */
async function databaseWith(files: string[]): Promise<string> {
  const name = `fx_${++dbCounter}`;
  const admin = await cluster.connect("postgres");
  try {
    await admin.query(`CREATE DATABASE ${name} OWNER ${OWNER}`);
  } finally {
    await admin.end();
  }
  for (const f of files) cluster.psql(name, OWNER, ["-f", fixture(f)]);
  return name;
}

async function withClient<T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = await cluster.connect(database);
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function zerverMigrations(c: pg.Client): Promise<string[]> {
  const r = await c.query<{ name: string }>("SELECT name FROM django_migrations WHERE app = 'zerver'");
  return r.rows.map((x) => x.name);
}

/** Which of the tables/columns named in SCHEMA_CHANGES exist in the database. */
async function checkSchemaChanges(c: pg.Client, series: string): Promise<void> {
  for (const change of SCHEMA_CHANGES) {
    for (const column of change.kind === "renamed" ? [change.column, change.oldName!] : [change.column]) {
      const expected = existsIn(series, change.table, column);
      expect(expected, `SCHEMA_CHANGES covers ${change.table}.${column}`).not.toBeUndefined();
      const r = column
        ? await c.query(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = 'zulip' AND table_name = $1 AND column_name = $2",
            [change.table, column],
          )
        : await c.query("SELECT 1 FROM information_schema.tables WHERE table_schema = 'zulip' AND table_name = $1", [
            change.table,
          ]);
      expect(r.rowCount === 1, `${series}: ${change.table}${column ? "." + column : ""} (${change.migration})`).toBe(
        expected,
      );
    }
  }
}

const BASE = ["zulip12/schema.sql", "zulip12/base-data.sql"];
const FRESH = [...BASE, "zulip12/fresh-install.sql"];

describe("Zulip 12 schema fixture", () => {
  beforeAll(async () => {
    cluster = await startCluster();
    const admin = await cluster.connect("postgres");
    try {
      await admin.query(`CREATE ROLE ${OWNER} LOGIN`);
    } finally {
      await admin.end();
    }
  }, 120_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it("schema.sql loads as the database owner and matches the real 12.2 catalog", async () => {
    const reference = JSON.parse(fs.readFileSync(fixture("zulip12.2-reference.json"), "utf8"));
    const db = await databaseWith(["zulip12/schema.sql"]);
    const actual = await withClient(db, (c) => readCatalog(c, "zulip"));

    expect(Object.keys(actual.tables)).toEqual(Object.keys(reference.tables));
    for (const table of Object.keys(reference.tables)) {
      expect(actual.tables[table], table).toEqual(reference.tables[table]);
    }
    expect(actual.sequences).toEqual(reference.sequences);
    expect(actual.functions).toEqual(reference.functions);
    expect(actual.statistics).toEqual(reference.statistics);
    expect(actual.textSearchConfigurations).toEqual(reference.textSearchConfigurations);

    // The search_path is stored for the database, so new sessions find the tables.
    await withClient(db, async (c) => {
      expect((await c.query("SHOW search_path")).rows[0].search_path).toBe("zulip, public");
      expect((await c.query("SELECT count(*)::int AS n FROM zerver_realm")).rows[0].n).toBe(0);
      // The stand-in text search configuration works on stock PostgreSQL.
      const ts = await c.query("SELECT to_tsvector('english_us_search', 'Running tests') AS v");
      expect(String(ts.rows[0].v)).toContain("run");
    });
  });

  it("base-data and fresh-install load; sequences are past every loaded id", async () => {
    const db = await databaseWith(FRESH);
    await withClient(db, async (c) => {
      expect(releaseForMigrations(await zerverMigrations(c))).toBe("12.x");

      const seqs = await c.query<{ seq: string; tbl: string; col: string }>(`
        SELECT s.relname AS seq, t.relname AS tbl, a.attname AS col
        FROM pg_depend d
        JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
        JOIN pg_class t ON t.oid = d.refobjid
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
        WHERE d.deptype IN ('a', 'i') AND s.relnamespace = 'zulip'::regnamespace`);
      expect(seqs.rowCount).toBeGreaterThan(90);
      let tablesWithRows = 0;
      for (const { seq, tbl, col } of seqs.rows) {
        const r = await c.query(
          `SELECT (SELECT max(${col}) FROM ${tbl})::bigint AS max_id,
                  (SELECT last_value FROM pg_sequences WHERE schemaname = 'zulip' AND sequencename = $1)::bigint AS last`,
          [seq],
        );
        const { max_id, last } = r.rows[0];
        if (max_id === null) continue;
        tablesWithRows++;
        expect(Number(last), `${seq} vs max(${tbl}.${col})`).toBeGreaterThanOrEqual(Number(max_id));
      }
      expect(tablesWithRows).toBeGreaterThan(20);

      // Loading messages must not leave rows queued by the full-text-search trigger
      // beyond what the real database had.
      const text = fs.readFileSync(fixture("zulip12/fresh-install.sql"), "utf8");
      const queued = Number(/^-- fts_update_log: (\d+) row/m.exec(text)?.[1] ?? 0);
      expect((await c.query("SELECT count(*)::int AS n FROM fts_update_log")).rows[0].n).toBe(queued);
      expect((await c.query("SELECT count(*)::int AS n FROM zerver_message")).rows[0].n).toBeGreaterThan(0);

      // The trigger is live afterwards: touching a message queues it.
      await c.query("UPDATE zerver_message SET rendered_content = rendered_content WHERE id = (SELECT min(id) FROM zerver_message)");
      expect((await c.query("SELECT count(*)::int AS n FROM fts_update_log")).rows[0].n).toBe(queued + 1);

      await checkSchemaChanges(c, "12.x");
    });
  });

  for (const [file, series] of [
    ["zulip11.sql", "11.x"],
    ["zulip10.sql", "10.x"],
  ] as const) {
    it(`${file} turns the fixture into a ${series} database`, async () => {
      const db = await databaseWith([...FRESH, file]);
      await withClient(db, async (c) => {
        const names = await zerverMigrations(c);
        expect(releaseForMigrations(names)).toBe(series);
        const release = RELEASES.find((r) => r.series === series)!;
        expect(names).toContain(release.lastZerverMigration);
        for (const b of release.backports) expect(names).toContain(b);
        const later = RELEASES.filter((r) => migrationNumber(r.firstZerverMigration) > migrationNumber(release.lastZerverMigration));
        for (const r of later) expect(names).not.toContain(r.firstZerverMigration);

        await checkSchemaChanges(c, series);

        // Every user has its personal recipient and a subscription to it (pre-0798 shape).
        const users = await c.query(`
          SELECT u.id, r.type, r.type_id, s.id AS sub
          FROM zerver_userprofile u
          LEFT JOIN zerver_recipient r ON r.id = u.recipient_id
          LEFT JOIN zerver_subscription s ON s.recipient_id = u.recipient_id AND s.user_profile_id = u.id`);
        expect(users.rowCount).toBeGreaterThan(0);
        for (const u of users.rows) {
          expect(u.type).toBe(1);
          expect(u.type_id).toBe(u.id);
          expect(u.sub).not.toBeNull();
        }
      });
    });

    it(`${file} also loads on the bare schema + base data`, async () => {
      const db = await databaseWith([...BASE, file]);
      await withClient(db, async (c) => {
        expect(releaseForMigrations(await zerverMigrations(c))).toBe(series);
        await checkSchemaChanges(c, series);
      });
    });
  }
});

describe("zulip-versions", () => {
  it("maps each release's first and last zerver migration to its series", () => {
    for (const r of RELEASES) {
      expect(releaseForMigration(migrationNumber(r.firstZerverMigration))).toBe(r.series);
      expect(releaseForMigration(migrationNumber(r.lastZerverMigration))).toBe(r.series);
      for (const b of r.backports) expect(releaseForMigration(migrationNumber(b))).toBe(r.series);
    }
    const last = RELEASES[RELEASES.length - 1];
    expect(releaseForMigration(migrationNumber(last.lastZerverMigration) + 1)).toBe(NEWER_THAN_SUPPORTED);
  });

  it("treats Zulip 9.x (including its backports above the floor) as too old", () => {
    expect(migrationNumber(RELEASES[0].firstZerverMigration)).toBe(ZERVER_MIGRATION_FLOOR);
    expect(releaseForMigration(ZERVER_MIGRATION_FLOOR - 1)).toBe(OLDER_THAN_SUPPORTED);
    expect(isSupportedMigration(ZERVER_MIGRATION_FLOOR - 1)).toBe(false);
    for (const b of OLDER_BACKPORTS) {
      expect(migrationNumber(b)).toBeGreaterThan(ZERVER_MIGRATION_FLOOR);
      expect(releaseForMigration(migrationNumber(b))).toBe(OLDER_THAN_SUPPORTED);
    }
    const nine = ["0001_squashed_0569", LAST_ZULIP9_MIGRATION, ...OLDER_BACKPORTS];
    expect(latestMainlineMigration(nine)).toBe(migrationNumber(LAST_ZULIP9_MIGRATION));
    expect(releaseForMigrations(nine)).toBe(OLDER_THAN_SUPPORTED);
    expect(releaseForMigrations([])).toBe(OLDER_THAN_SUPPORTED);
  });

  it("ignores backports when judging from all applied names", () => {
    const ten = [LAST_ZULIP9_MIGRATION, RELEASES[0].firstZerverMigration, RELEASES[0].lastZerverMigration];
    expect(releaseForMigrations([...ten, ...RELEASES[0].backports])).toBe("10.x");
    expect(latestMainlineMigration([...ten, ...RELEASES[0].backports])).toBe(migrationNumber(RELEASES[0].lastZerverMigration));
    expect(isSupportedMigration(migrationNumber(RELEASES[1].lastZerverMigration))).toBe(true);
    expect(() => releaseForMigration(Number.NaN)).toThrow();
    expect(Number.isNaN(migrationNumber("0001x"))).toBe(true);
  });
});
