// Read the schema-level catalog of one PostgreSQL schema into a plain,
// deterministic JSON-able object. Used to generate the schema fixture,
// to snapshot the real Zulip dump, and by test/fixture-schema.test.ts to
// compare the two.
//
// Object definitions are rendered with search_path set to the inspected
// schema, so names inside them come out unqualified and the result does
// not depend on where the schema was loaded from.

/**
 * @param {import('pg').Client} client
 * @param {string} [schema]
 */
export async function readCatalog(client, schema = "zulip") {
  await client.query("BEGIN READ ONLY");
  try {
    await client.query(`SELECT set_config('search_path', $1, true)`, [`${quoteIdent(schema)}, pg_catalog`]);
    return await readCatalogInTransaction(client, schema);
  } finally {
    await client.query("ROLLBACK");
  }
}

function quoteIdent(name) {
  return `"${name.replace(/"/g, '""')}"`;
}

async function readCatalogInTransaction(client, schema) {
  const q = async (sql) => (await client.query(sql, [schema])).rows;

  const relkinds = await q(`
    SELECT c.relname, c.relkind FROM pg_class c
    WHERE c.relnamespace = $1::regnamespace AND c.relkind NOT IN ('r', 'i', 'S')
    ORDER BY 1`);
  if (relkinds.length > 0) {
    throw new Error(`unsupported relations in schema: ${relkinds.map((r) => `${r.relname}(${r.relkind})`).join(", ")}`);
  }

  const tableRows = await q(`
    SELECT c.oid, c.relname, c.relpersistence, c.relhasrules, c.relhassubclass, c.relispartition
    FROM pg_class c WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'r'
    ORDER BY c.relname COLLATE "C"`);

  const columnRows = await q(`
    SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS type,
           a.attnotnull, pg_get_expr(d.adbin, d.adrelid) AS default, a.attidentity,
           a.attgenerated, a.attstattarget,
           (a.attcollation <> t.typcollation) AS nondefault_collation
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_type t ON t.oid = a.atttypid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY c.relname COLLATE "C", a.attnum`);

  const constraintRows = await q(`
    SELECT c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid) AS def,
           k.condeferrable, k.condeferred, k.convalidated,
           ft.relname AS references_table
    FROM pg_constraint k
    JOIN pg_class c ON c.oid = k.conrelid
    LEFT JOIN pg_class ft ON ft.oid = k.confrelid
    WHERE c.relnamespace = $1::regnamespace
      AND k.contype <> 'n' -- PostgreSQL 18+ NOT NULL constraints: covered by attnotnull
    ORDER BY c.relname COLLATE "C", k.conname COLLATE "C"`);

  const indexRows = await q(`
    SELECT c.relname, i.relname AS indexname, pg_get_indexdef(i.oid) AS def,
           k.conname AS constraint
    FROM pg_index x
    JOIN pg_class c ON c.oid = x.indrelid
    JOIN pg_class i ON i.oid = x.indexrelid
    LEFT JOIN pg_constraint k ON k.conindid = x.indexrelid AND k.conrelid = x.indrelid
         AND k.contype IN ('p', 'u', 'x')
    WHERE c.relnamespace = $1::regnamespace
    ORDER BY c.relname COLLATE "C", i.relname COLLATE "C"`);

  const triggerRows = await q(`
    SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid) AS def, t.tgenabled
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    WHERE c.relnamespace = $1::regnamespace AND NOT t.tgisinternal
    ORDER BY c.relname COLLATE "C", t.tgname COLLATE "C"`);

  const sequenceRows = await q(`
    SELECT s.relname, format_type(q.seqtypid, NULL) AS type, q.seqstart::text AS start,
           q.seqincrement::text AS increment, q.seqmin::text AS min, q.seqmax::text AS max,
           q.seqcache::text AS cache, q.seqcycle AS cycle,
           oc.relname AS owned_by_table, oa.attname AS owned_by_column, d.deptype AS owned_deptype
    FROM pg_sequence q
    JOIN pg_class s ON s.oid = q.seqrelid
    LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid
         AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
    LEFT JOIN pg_class oc ON oc.oid = d.refobjid
    LEFT JOIN pg_attribute oa ON oa.attrelid = d.refobjid AND oa.attnum = d.refobjsubid
    WHERE s.relnamespace = $1::regnamespace
    ORDER BY s.relname COLLATE "C"`);

  const functionRows = await q(`
    SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args,
           pg_get_function_result(p.oid) AS result, l.lanname AS language,
           p.provolatile, p.prosrc, pg_get_functiondef(p.oid) AS def
    FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
    WHERE p.pronamespace = $1::regnamespace
    ORDER BY p.proname COLLATE "C", 2`);

  const statisticsRows = await q(`
    SELECT s.stxname, c.relname, pg_get_statisticsobjdef(s.oid) AS def, s.stxstattarget
    FROM pg_statistic_ext s JOIN pg_class c ON c.oid = s.stxrelid
    WHERE s.stxnamespace = $1::regnamespace
    ORDER BY s.stxname COLLATE "C"`);

  const tsConfigRows = await q(`
    SELECT cfgname FROM pg_ts_config WHERE cfgnamespace = $1::regnamespace ORDER BY 1`);

  const otherObjects = await q(`
    SELECT 'type ' || typname AS what FROM pg_type
      WHERE typnamespace = $1::regnamespace AND typrelid = 0 AND typcategory <> 'A'
    UNION ALL SELECT 'collation ' || collname FROM pg_collation WHERE collnamespace = $1::regnamespace
    UNION ALL SELECT 'operator ' || oprname FROM pg_operator WHERE oprnamespace = $1::regnamespace
    UNION ALL SELECT 'ts dictionary ' || dictname FROM pg_ts_dict WHERE dictnamespace = $1::regnamespace
    ORDER BY 1`);
  if (otherObjects.length > 0) {
    throw new Error(`unsupported objects in schema: ${otherObjects.map((r) => r.what).join(", ")}`);
  }

  /** @type {Record<string, any>} */
  const tables = {};
  for (const t of tableRows) {
    if (t.relpersistence !== "p" || t.relhasrules || t.relhassubclass || t.relispartition) {
      throw new Error(`table ${t.relname}: unlogged/temporary/inherited/partitioned tables are not supported`);
    }
    tables[t.relname] = { columns: [], constraints: [], indexes: [], triggers: [] };
  }
  for (const c of columnRows) {
    if (c.attgenerated) throw new Error(`${c.relname}.${c.attname}: generated columns are not supported`);
    if (c.nondefault_collation) throw new Error(`${c.relname}.${c.attname}: column collations are not supported`);
    const col = { name: c.attname, type: c.type, notNull: c.attnotnull, default: c.default };
    if (c.attidentity) col.identity = c.attidentity === "d" ? "BY DEFAULT" : "ALWAYS";
    if (c.attstattarget >= 0) col.statistics = c.attstattarget;
    tables[c.relname].columns.push(col);
  }
  for (const k of constraintRows) {
    if (!k.convalidated) throw new Error(`${k.conname}: NOT VALID constraints are not supported`);
    const con = { name: k.conname, type: CONTYPES[k.contype] ?? k.contype, definition: k.def };
    if (k.references_table) con.references = k.references_table;
    tables[k.relname].constraints.push(con);
  }
  for (const i of indexRows) {
    const idx = { name: i.indexname, definition: i.def };
    if (i.constraint) idx.constraint = i.constraint;
    tables[i.relname].indexes.push(idx);
  }
  for (const t of triggerRows) {
    if (t.tgenabled !== "O") throw new Error(`trigger ${t.tgname}: only enabled triggers are supported`);
    tables[t.relname].triggers.push({ name: t.tgname, definition: t.def });
  }

  return {
    schema,
    tables,
    sequences: sequenceRows.map((s) => ({
      name: s.relname,
      type: s.type,
      start: s.start,
      increment: s.increment,
      min: s.min,
      max: s.max,
      cache: s.cache,
      cycle: s.cycle,
      ownedBy: s.owned_by_table ? `${s.owned_by_table}.${s.owned_by_column}` : null,
      identity: s.owned_deptype === "i",
    })),
    functions: functionRows.map((f) => ({
      name: f.proname,
      arguments: f.args,
      result: f.result,
      language: f.language,
      volatility: VOLATILITY[f.provolatile],
      body: f.prosrc,
      definition: f.def,
    })),
    statistics: statisticsRows.map((s) => {
      const st = { name: s.stxname, table: s.relname, definition: s.def };
      if (s.stxstattarget >= 0) st.target = s.stxstattarget;
      return st;
    }),
    textSearchConfigurations: tsConfigRows.map((r) => r.cfgname),
  };
}

const CONTYPES = { p: "PRIMARY KEY", u: "UNIQUE", f: "FOREIGN KEY", c: "CHECK", x: "EXCLUDE", t: "TRIGGER" };
const VOLATILITY = { i: "IMMUTABLE", s: "STABLE", v: "VOLATILE" };
