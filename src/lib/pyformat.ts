// Python's str()/repr() of values read from PostgreSQL, so text output matches what manage.py
// prints for Django model attributes.

/** repr() of a JSON value as Python would print the decoded object. */
export function pyRepr(v: unknown): string {
  if (v === null || v === undefined) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : pyFloat(v);
  if (typeof v === "string") return pyStrRepr(v);
  if (Array.isArray(v)) return "[" + v.map(pyRepr).join(", ") + "]";
  if (typeof v === "object") {
    return "{" + Object.entries(v as Record<string, unknown>).map(([k, x]) => `${pyStrRepr(k)}: ${pyRepr(x)}`).join(", ") + "}";
  }
  return String(v);
}

function pyFloat(v: number): string {
  if (!Number.isFinite(v)) return Number.isNaN(v) ? "nan" : v > 0 ? "inf" : "-inf";
  const s = String(v);
  return /[.e]/.test(s) ? s.replace(/e([+-])(\d)$/, "e$10$2") : s + ".0";
}

/** Python's repr() of a str: single quotes unless the text has ' and no ". */
export function pyStrRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === "\\") out += "\\\\";
    else if (ch === quote) out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (cp < 0x20 || cp === 0x7f) out += "\\x" + cp.toString(16).padStart(2, "0");
    else out += ch;
  }
  return out + quote;
}

/** str() of a PostgreSQL timestamptz printed in UTC ("2024-01-02 03:04:05.12+00"). */
export function pyDatetimeFromPg(text: string): string {
  const m = /^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:\.(\d+))?([+-]\d{2})(?::?(\d{2}))?$/.exec(text);
  if (!m) return text;
  const frac = m[2] ? "." + m[2].padEnd(6, "0").slice(0, 6) : "";
  return `${m[1]}${frac}${m[3]}:${m[4] ?? "00"}`;
}

// PostgreSQL type OIDs we format specially.
const BOOL = 16, JSON_OID = 114, JSONB = 3802, TIMESTAMPTZ = 1184, TIMESTAMP = 1114;

/** str() of a column value given as PostgreSQL text output and its type OID. */
export function pyStrFromPg(text: string | null, typeOid: number): string {
  if (text === null) return "None";
  switch (typeOid) {
    case BOOL:
      return text === "t" ? "True" : "False";
    case JSON_OID:
    case JSONB:
      return pyRepr(JSON.parse(text));
    case TIMESTAMPTZ:
      return pyDatetimeFromPg(text);
    case TIMESTAMP:
      return pyDatetimeFromPg(text + "+00").replace(/\+00:00$/, "");
    default:
      return text;
  }
}
