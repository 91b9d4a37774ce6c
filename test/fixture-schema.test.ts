// The schema fixtures against the real thing: test/fixtures/zulip12/schema.sql must load on
// stock PostgreSQL and reproduce the catalog of the real Zulip 12.2 dump (snapshotted in
// test/fixtures/zulip12.2-reference.json); base-data/fresh-install and the 11.x/10.x patches
// must load on top (through the shared harness' templates) and agree with
// src/db/zulip-versions.ts.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
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
} from "../src/db/zulip-versions.js";
import { FIXTURES_DIR, createDatabase, sharedCluster, type PgServerInfo, type TemplateName, type TestDatabase } from "./helpers/pg.js";

const fixture = (name: string) => path.join(FIXTURES_DIR, name);

/** A role that owns its database but is not a superuser: the fixtures must load as that. */
const OWNER = "zm_fixture_owner";

let server: PgServerInfo;
const cleanups: (() => Promise<void>)[] = [];

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ host: server.host, port: server.port, user: server.user, database: "postgres" });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Load a file as OWNER: with psql -v ON_ERROR_STOP=1 -f when available, else through pg. */
async function loadAsOwner(database: string, file: string): Promise<void> {
  if (server.psql) {
    execFileSync(
      server.psql,
      ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", server.socketDir, "-p", String(server.port), "-U", OWNER, "-d", database, "-f", file],
      { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, PGOPTIONS: "-c client_min_messages=warning" } },
    );
    return;
  }
  const c = new pg.Client({ host: server.host, port: server.port, user: OWNER, database });
  await c.connect();
  try {
    await c.query(fs.readFileSync(file, "utf8"));
  } finally {
    await c.end();
  }
}

async function ownerClient(database: string): Promise<pg.Client> {
  const c = new pg.Client({ host: server.host, port: server.port, user: OWNER, database });
  await c.connect();
  return c;
}

async function fromTemplate(template: TemplateName | { name: string; base: TemplateName; files: string[] }): Promise<TestDatabase> {
  const db = await createDatabase({ template });
  cleanups.push(() => db.drop());
  return db;
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
        ? await c.query("SELECT 1 FROM information_schema.columns WHERE table_schema = 'zulip' AND table_name = $1 AND column_name = $2", [
            change.table,
            column,
          ])
        : await c.query("SELECT 1 FROM information_schema.tables WHERE table_schema = 'zulip' AND table_name = $1", [change.table]);
      expect(r.rowCount === 1, `${series}: ${change.table}${column ? "." + column : ""} (${change.migration})`).toBe(expected);
    }
  }
}

describe("Zulip 12 schema fixture", () => {
  beforeAll(async () => {
    server = await sharedCluster();
    await admin((c) =>
      c.query(`DO $$ BEGIN
                 IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${OWNER}') THEN
                   CREATE ROLE ${OWNER} LOGIN NOSUPERUSER;
                 END IF;
               END $$`),
    );
  });
  afterAll(async () => {
    for (const f of cleanups.reverse()) await f().catch(() => undefined);
  });

  it("schema.sql loads as the database owner and matches the real 12.2 catalog", async () => {
    const reference = JSON.parse(fs.readFileSync(fixture("zulip12.2-reference.json"), "utf8"));
    const db = `fx_owner_${process.pid}`;
    await admin(async (c) => {
      await c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      await c.query(`CREATE DATABASE ${db} OWNER ${OWNER} TEMPLATE template0`);
    });
    cleanups.push(() => admin(async (c) => void (await c.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`))));
    for (const f of ["zulip12/schema.sql", "zulip12/base-data.sql"]) await loadAsOwner(db, fixture(f));

    const client = await ownerClient(db);
    let actual;
    try {
      actual = await readCatalog(client, "zulip");
    } finally {
      await client.end();
    }

    expect(Object.keys(actual.tables)).toEqual(Object.keys(reference.tables));
    for (const table of Object.keys(reference.tables)) {
      expect(actual.tables[table], table).toEqual(reference.tables[table]);
    }
    expect(actual.sequences).toEqual(reference.sequences);
    expect(actual.functions).toEqual(reference.functions);
    expect(actual.statistics).toEqual(reference.statistics);
    expect(actual.textSearchConfigurations).toEqual(reference.textSearchConfigurations);

    // The search_path is stored for the database (OWNER has no role-level setting), so new
    // sessions find the tables.
    const c = await ownerClient(db);
    try {
      expect((await c.query("SHOW search_path")).rows[0].search_path).toBe("zulip, public");
      expect((await c.query("SELECT count(*)::int AS n FROM zerver_realm")).rows[0].n).toBe(0);
      expect(releaseForMigrations(await zerverMigrations(c))).toBe("12.x");
      // The stand-in text search configuration works on stock PostgreSQL.
      const ts = await c.query("SELECT to_tsvector('english_us_search', 'Running tests') AS v");
      expect(String(ts.rows[0].v)).toContain("run");
    } finally {
      await c.end();
    }
  });

  it("base-data and fresh-install load; sequences are past every loaded id", async () => {
    const db = await fromTemplate("zulip12_fresh");
    const c = db.client;
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

  for (const [file, series, template] of [
    ["zulip11.sql", "11.x", "zulip11_fresh"],
    ["zulip10.sql", "10.x", "zulip10_fresh"],
  ] as const) {
    it(`${file} turns the fixture into a ${series} database`, async () => {
      const db = await fromTemplate(template);
      const c = db.client;
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

    it(`${file} also loads on the bare schema + base data`, async () => {
      const db = await fromTemplate({ name: `fx_${series.replace(".x", "")}_bare`, base: "zulip12_empty", files: [file] });
      expect(releaseForMigrations(await zerverMigrations(db.client))).toBe(series);
      await checkSchemaChanges(db.client, series);
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
