// Helpers for reading a plain-format pg_dump of a Zulip database.
import { readFileSync } from "node:fs";

const HEADER = /^-- (?:Data for )?Name: (.*); Type: (.*); Schema: (.*); Owner: ?(.*)$/;

export function readDump(path) {
  return readFileSync(path, "utf8");
}

/**
 * Split a dump into its table-of-contents entries.
 * @returns {{preamble: string, entries: {name: string, type: string, schema: string, text: string}[]}}
 */
function splitDump(text) {
  const lines = text.split("\n");
  const starts = [];
  for (let i = 1; i < lines.length; i++) {
    if (lines[i - 1] === "--" && HEADER.test(lines[i])) starts.push(i - 1);
  }
  const preamble = lines.slice(0, starts[0] ?? lines.length).join("\n");
  const entries = starts.map((start, k) => {
    const end = starts[k + 1] ?? lines.length;
    const m = HEADER.exec(lines[start + 1]);
    return { name: m[1], type: m[2], schema: m[3], text: lines.slice(start, end).join("\n") };
  });
  return { preamble, entries };
}

/** The text-search configuration every fixture uses in place of the hunspell-based one. */
export const TS_CONFIG_STANDIN = "CREATE TEXT SEARCH CONFIGURATION zulip.english_us_search (COPY = pg_catalog.english);";

/**
 * Make a real Zulip dump loadable on stock PostgreSQL: drop the pgroonga
 * extension, the hunspell dictionary and the english_us_search
 * configuration built on it (replaced by a copy of pg_catalog.english),
 * and psql's \restrict/\unrestrict meta-commands.
 */
export function stripForStockPostgres(text) {
  const { preamble, entries } = splitDump(text);
  const kept = [];
  let standinPlaced = false;
  for (const e of entries) {
    const dropped =
      e.type === "EXTENSION" ||
      (e.type === "COMMENT" && e.name.startsWith("EXTENSION ")) ||
      e.type === "TEXT SEARCH DICTIONARY" ||
      e.type === "TEXT SEARCH CONFIGURATION" ||
      /pgroonga|english_us_hunspell/.test(e.text.replace(/^--.*$/gm, ""));
    if (dropped) {
      if (e.type === "TEXT SEARCH CONFIGURATION" && !standinPlaced) {
        kept.push(`--\n-- english_us_search stand-in (stock PostgreSQL)\n--\n\n${TS_CONFIG_STANDIN}\n`);
        standinPlaced = true;
      }
      continue;
    }
    kept.push(e.text);
  }
  if (!standinPlaced) kept.unshift(`${TS_CONFIG_STANDIN}\n`);
  return [preamble, ...kept]
    .join("\n")
    .split("\n")
    .filter((l) => !/^\\(un)?restrict\b/.test(l))
    .join("\n");
}

/** Decode one field of COPY text format; returns null for \N. */
function decodeCopyField(field) {
  if (field === "\\N") return null;
  if (!field.includes("\\")) return field;
  let out = "";
  for (let i = 0; i < field.length; i++) {
    const c = field[i];
    if (c !== "\\") {
      out += c;
      continue;
    }
    const n = field[++i];
    switch (n) {
      case "b":
        out += "\b";
        break;
      case "f":
        out += "\f";
        break;
      case "n":
        out += "\n";
        break;
      case "r":
        out += "\r";
        break;
      case "t":
        out += "\t";
        break;
      case "v":
        out += "\v";
        break;
      case "x": {
        const m = /^[0-9a-fA-F]{1,2}/.exec(field.slice(i + 1));
        if (!m) {
          out += "x";
          break;
        }
        out += String.fromCharCode(parseInt(m[0], 16));
        i += m[0].length;
        break;
      }
      default:
        if (n >= "0" && n <= "7") {
          const m = /^[0-7]{1,3}/.exec(field.slice(i));
          out += String.fromCharCode(parseInt(m[0], 8));
          i += m[0].length - 1;
        } else {
          out += n; // \\ and any other escaped character stand for themselves
        }
    }
  }
  return out;
}

/**
 * All COPY ... FROM stdin blocks, in dump order.
 * @returns {{schema: string, table: string, columns: string[], rows: (string|null)[][]}[]}
 */
export function parseCopyBlocks(text) {
  const blocks = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = /^COPY (?:(\w+)\.)?(\w+) \((.*)\) FROM stdin;$/.exec(lines[i]);
    if (!m) continue;
    const columns = m[3].split(", ").map((c) => c.replace(/^"(.*)"$/, "$1"));
    const rows = [];
    for (i++; lines[i] !== "\\."; i++) {
      if (i >= lines.length) throw new Error(`unterminated COPY block for ${m[2]}`);
      const fields = lines[i].split("\t").map(decodeCopyField);
      if (fields.length !== columns.length) {
        throw new Error(`COPY ${m[2]}: row has ${fields.length} fields, expected ${columns.length}`);
      }
      rows.push(fields);
    }
    blocks.push({ schema: m[1] ?? "", table: m[2], columns, rows });
  }
  return blocks;
}

/**
 * All `SELECT pg_catalog.setval('schema.seq', N, called);` lines.
 * @returns {{sequence: string, value: string, isCalled: boolean}[]}
 */
export function parseSetvals(text) {
  const out = [];
  const re = /^SELECT pg_catalog\.setval\('(?:\w+\.)?(\w+)', (\d+), (true|false)\);$/gm;
  for (const m of text.matchAll(re)) out.push({ sequence: m[1], value: m[2], isCalled: m[3] === "true" });
  return out;
}

/** SQL string literal (standard_conforming_strings = on), or NULL. */
function sqlLiteral(value) {
  if (value === null) return "NULL";
  if (value.includes("\0")) throw new Error("NUL byte cannot be stored in a PostgreSQL text value");
  return `'${value.replace(/'/g, "''")}'`;
}

/** Quote an identifier only when needed. */
export function ident(name) {
  return /^[a-z_][a-z0-9_]*$/.test(name) && !RESERVED.has(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

// Reserved words that occur (or could plausibly occur) as Zulip column names.
const RESERVED = new Set([
  "all",
  "analyse",
  "analyze",
  "and",
  "any",
  "array",
  "as",
  "asc",
  "both",
  "case",
  "cast",
  "check",
  "collate",
  "column",
  "constraint",
  "create",
  "default",
  "desc",
  "distinct",
  "do",
  "else",
  "end",
  "except",
  "false",
  "for",
  "foreign",
  "from",
  "grant",
  "group",
  "having",
  "in",
  "into",
  "leading",
  "limit",
  "not",
  "null",
  "offset",
  "on",
  "only",
  "or",
  "order",
  "primary",
  "references",
  "select",
  "table",
  "then",
  "to",
  "trailing",
  "true",
  "union",
  "unique",
  "user",
  "using",
  "when",
  "where",
  "with",
  "window",
]);

/**
 * INSERT statement(s) for the rows of one COPY block: one multi-row
 * INSERT per `chunk` rows, one row per line. Values are written as
 * untyped string literals, so PostgreSQL converts them with each column's
 * input function exactly as COPY would.
 */
export function insertStatements(block, chunk = 500) {
  const cols = block.columns.map(ident).join(", ");
  const out = [];
  for (let i = 0; i < block.rows.length; i += chunk) {
    const values = block.rows
      .slice(i, i + chunk)
      .map((row) => `    (${row.map(sqlLiteral).join(", ")})`)
      .join(",\n");
    out.push(`INSERT INTO ${ident(block.table)} (${cols}) VALUES\n${values};`);
  }
  return out.join("\n");
}

/** `SELECT setval(...)` for a parsed dump setval line (schema-unqualified). */
export function setvalStatement(s) {
  return `SELECT pg_catalog.setval('${s.sequence}', ${s.value}, ${s.isCalled});`;
}

/** Tables whose rows live in base-data.sql rather than fresh-install.sql. */
export const BASE_DATA_TABLES = ["django_content_type", "django_migrations"];

/** The lines after a generated data fixture's header comment, up to BEGIN: the session settings it loads with. */
export const DATA_FIXTURE_PREAMBLE = [
  "",
  "SET client_min_messages = warning;",
  "SET standard_conforming_strings = on;",
  "SET search_path TO zulip, public;",
  "",
  "BEGIN;",
  "",
];
