// Writing rows the way Django writes them, on every supported Zulip release: each INSERT keeps
// only the columns the table has (a release without some column simply does not get it) and
// first checks that every NOT NULL column without a database default gets a value; a column this
// code does not know makes it refuse (CreationSchemaError) instead of writing a row Zulip would
// not have written. Table shapes are read from the catalog once per connection. Also the Zulip
// release series of the database, for behaviour the schema does not show.
import type { Queryable } from "../db/db.js";
import { quoteIdent } from "../db/sql.js";
import { releaseForMigration, releaseForMigrations } from "../db/zulip-versions.js";

/** A row's values by column name. */
export type Row = Record<string, unknown>;

interface TableShape {
  columns: Set<string>;
  /** NOT NULL columns without a database default (Django's Python defaults must fill these). */
  required: Set<string>;
}

const shapeCache = new WeakMap<object, Map<string, TableShape>>();

async function tableShape(db: Queryable, table: string): Promise<TableShape> {
  let perDb = shapeCache.get(db);
  if (!perDb) shapeCache.set(db, (perDb = new Map()));
  let shape = perDb.get(table);
  if (!shape) {
    const { rows } = await db.query(
      `SELECT a.attname, a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AS required
         FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`,
      [table],
    );
    if (rows.length === 0) throw new Error(`table ${table} not found in the search path`);
    shape = {
      columns: new Set(rows.map((r) => r.attname as string)),
      required: new Set(rows.filter((r) => r.required).map((r) => r.attname as string)),
    };
    perDb.set(table, shape);
  }
  return shape;
}

/** Read the shapes of several tables in one query (into the cache tableShape uses). */
export async function prefetchTableShapes(db: Queryable, tables: string[]): Promise<void> {
  let perDb = shapeCache.get(db);
  if (!perDb) shapeCache.set(db, (perDb = new Map()));
  const missing = tables.filter((t) => !perDb!.has(t));
  if (missing.length === 0) return;
  const { rows } = await db.query(
    `SELECT t.name, a.attname, a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AS required
       FROM unnest($1::text[]) AS t(name)
       JOIN pg_catalog.pg_attribute a ON a.attrelid = to_regclass(t.name) AND a.attnum > 0 AND NOT a.attisdropped`,
    [missing],
  );
  for (const table of missing) {
    const mine = rows.filter((r) => r.name === table);
    if (mine.length === 0) continue; // tableShape says so when asked
    perDb.set(table, {
      columns: new Set(mine.map((r) => r.attname as string)),
      required: new Set(mine.filter((r) => r.required).map((r) => r.attname as string)),
    });
  }
}

/** Column names of a table in the search path (cached per connection object). */
export async function tableColumns(db: Queryable, table: string): Promise<Set<string>> {
  return (await tableShape(db, table)).columns;
}

/** NOT NULL columns of a table that have no database default (cached per connection object). */
export async function requiredColumns(db: Queryable, table: string): Promise<Set<string>> {
  return (await tableShape(db, table)).required;
}

/** A table has a NOT NULL column this code has no value for (a schema it does not know). */
export class CreationSchemaError extends Error {}

/** The required columns of `table` missing from `supplied`, as "table.column", sorted. */
export function missingRequired(table: string, required: Set<string>, supplied: Iterable<string>): string[] {
  const have = new Set(supplied);
  return [...required]
    .filter((c) => !have.has(c))
    .sort()
    .map((c) => `${table}.${c}`);
}

function requireColumns(table: string, required: Set<string>, supplied: Iterable<string>): void {
  const missing = missingRequired(table, required, supplied);
  if (missing.length) {
    throw new CreationSchemaError(
      `This database has required column(s) zulip-manage does not know how to fill as this Zulip release would: ${missing.join(", ")}`,
    );
  }
}

/**
 * INSERT one row built from `values`, keeping only columns the table has (a release without
 * some column simply does not get it); every NOT NULL column without a database default must be
 * among them, else CreationSchemaError (before anything is sent).
 */
export async function insertRow(db: Queryable, table: string, values: Row, returning = "id"): Promise<Row> {
  const shape = await tableShape(db, table);
  const names = Object.keys(values).filter((k) => shape.columns.has(k));
  requireColumns(table, shape.required, names);
  const params = names.map((n) => values[n]);
  const sql =
    `INSERT INTO ${table} (${names.map(quoteIdent).join(", ")}) VALUES (${names.map((_, i) => `$${i + 1}`).join(", ")})` +
    (returning ? ` RETURNING ${returning}` : "");
  const { rows } = await db.query(sql, params);
  return rows[0] ?? {};
}

/** Multi-row INSERT of rows with identical keys; returns ids in input order. Chunked. */
export async function insertRows(db: Queryable, table: string, rows: Row[], returning: string | null = "id"): Promise<Row[]> {
  if (rows.length === 0) return [];
  const shape = await tableShape(db, table);
  const names = Object.keys(rows[0]).filter((k) => shape.columns.has(k));
  requireColumns(table, shape.required, names);
  const out: Row[] = [];
  const chunk = Math.max(1, Math.floor(30000 / Math.max(1, names.length)));
  for (let start = 0; start < rows.length; start += chunk) {
    const part = rows.slice(start, start + chunk);
    const params: unknown[] = [];
    const tuples = part.map((r) => {
      const ph = names.map((n) => {
        params.push(r[n]);
        return `$${params.length}`;
      });
      return `(${ph.join(", ")})`;
    });
    const res = await db.query(
      `INSERT INTO ${table} (${names.map(quoteIdent).join(", ")}) VALUES ${tuples.join(", ")}` + (returning ? ` RETURNING ${returning}` : ""),
      params,
    );
    // INSERT … VALUES … RETURNING returns rows in VALUES order in PostgreSQL.
    out.push(...res.rows);
  }
  return out;
}

const seriesCache = new WeakMap<object, string>();

/**
 * The Zulip release series the database belongs to ("10.x", "11.x", "12.x", or one of
 * zulip-versions' "older than 10.0" / "newer than 12"), from its zerver migrations (a Db knows
 * its newest mainline migration already). Only for behaviour the schema does not show; a
 * database without django_migrations counts as the newest release this code knows.
 */
export async function databaseSeries(db: Queryable): Promise<string> {
  const cached = seriesCache.get(db);
  if (cached) return cached;
  let series: string;
  const known = (db as { zerverMigration?: unknown }).zerverMigration;
  if (typeof known === "number" && Number.isFinite(known)) {
    series = releaseForMigration(known);
  } else {
    const { rows: t } = await db.query(`SELECT to_regclass('django_migrations') IS NOT NULL AS ok`);
    if (t[0]?.ok) {
      const { rows } = await db.query(`SELECT name FROM django_migrations WHERE app = 'zerver'`);
      series = rows.length ? releaseForMigrations(rows.map((r) => r.name as string)) : "12.x";
    } else {
      series = "12.x";
    }
  }
  seriesCache.set(db, series);
  return series;
}

/** Whether users have personal recipients (zerver_userprofile.recipient_id, before 0798). */
export async function hasPersonalRecipients(db: Queryable): Promise<boolean> {
  return (await tableColumns(db, "zerver_userprofile")).has("recipient_id");
}

/** nextval of a table's id sequence (an id to write before the row, as bulk creation needs). */
export async function nextId(db: Queryable, table: string): Promise<number> {
  const { rows } = await db.query(`SELECT nextval(pg_get_serial_sequence($1, 'id')) AS id`, [table]);
  return Number(rows[0].id);
}
