// Whole-database snapshots for "nothing else changed" assertions: a row count and a checksum of
// every table in the zulip schema (and optionally every sequence position), computed with plain
// SQL independent of the code under test; and a catalog-driven check that every foreign key holds.
import type { TestDatabase } from "./pg.js";

export type Snapshot = Map<string, string>;

export async function snapshot(db: TestDatabase, withSequences = false): Promise<Snapshot> {
  const tables = await db.query<{ t: string }>(
    `SELECT c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'zulip' AND c.relkind = 'r' ORDER BY 1`,
  );
  const snap: Snapshot = new Map();
  for (const { t } of tables) {
    const [r] = await db.query(`SELECT count(*)::int AS n, md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) AS h FROM zulip."${t}" x`);
    snap.set(t, `${r.n}:${r.h}`);
  }
  if (withSequences) {
    for (const r of await db.query("SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'zulip' ORDER BY 1")) {
      snap.set(`seq:${r.sequencename}`, String(r.last_value));
    }
  }
  return snap;
}

/** Names of the tables (and seq:<sequence>) whose contents differ between two snapshots. */
export function changedTables(a: Snapshot, b: Snapshot): string[] {
  return [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k)).sort();
}

/** Rows of every foreign key in the database that point nowhere (constraint: count). */
export async function foreignKeyViolations(db: TestDatabase): Promise<Record<string, number>> {
  const fks = await db.query(
    `SELECT c.conname, c.conrelid::regclass::text AS t, c.confrelid::regclass::text AS r,
            (SELECT array_agg(a.attname::text ORDER BY k.i) FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n) AS cols,
            (SELECT array_agg(a.attname::text ORDER BY k.i) FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
               JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n) AS refcols
       FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE c.contype = 'f' AND n.nspname = 'zulip'`,
  );
  const out: Record<string, number> = {};
  for (const fk of fks) {
    const notNull = fk.cols.map((c: string) => `x."${c}" IS NOT NULL`).join(" AND ");
    const match = fk.cols.map((c: string, i: number) => `y."${fk.refcols[i]}" = x."${c}"`).join(" AND ");
    const [{ n }] = await db.query(`SELECT count(*)::int AS n FROM ${fk.t} x WHERE ${notNull} AND NOT EXISTS (SELECT 1 FROM ${fk.r} y WHERE ${match})`);
    if (n) out[fk.conname] = n;
  }
  return out;
}
