// Writing rows the way Django writes them, on every supported Zulip release: each INSERT keeps
// only the columns the table has (a release without some column simply does not get it) and
// first checks that every NOT NULL column without a database default gets a value; a column this
// code does not know makes it refuse (CreationSchemaError) instead of writing a row Zulip would
// not have written. Table shapes are db.ts's (read from the catalog once per connection). Also the Zulip
// release series of the database, for behaviour the schema does not show.
import { hasColumn, type Queryable, type TableShape, tableShape } from "../db/db.js";
import { quoteIdent } from "../db/sql.js";
import { releaseForMigration, releaseForMigrations } from "../db/zulip-versions.js";

/** A row's values by column name. */
export type Row = Record<string, unknown>;

/** The table's shape (db.ts, cached per connection); a table the search path does not have is an error here. */
async function shapeOf(db: Queryable, table: string): Promise<TableShape> {
  const shape = await tableShape(db, table);
  if (shape.columns.size === 0) throw new Error(`table ${table} not found in the search path`);
  return shape;
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
  const shape = await shapeOf(db, table);
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
  const shape = await shapeOf(db, table);
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
  return hasColumn(db, "zerver_userprofile", "recipient_id");
}

/** nextval of a table's id sequence (an id to write before the row, as bulk creation needs). */
export async function nextId(db: Queryable, table: string): Promise<number> {
  const { rows } = await db.query(`SELECT nextval(pg_get_serial_sequence($1, 'id')) AS id`, [table]);
  return Number(rows[0].id);
}
