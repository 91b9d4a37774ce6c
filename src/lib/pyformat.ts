// Python's str()/repr() of values read from PostgreSQL, so text output matches what manage.py
// prints for Django model attributes.

/**
 * Python's repr() of a decoded JSON value or settings.py literal: None/True/False, ints, floats,
 * str (see pyStrRepr), lists and dicts. The one repr in the project: list_realms and
 * logout_all_users print it where manage.py does, config errors show a settings value with it.
 * Numbers that are whole print as ints (JSON.parse and the settings parser do not keep "1.0"
 * apart from "1").
 */
export function pyRepr(v: unknown): string {
  if (v === null || v === undefined) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "number") return Number.isInteger(v) ? pyInt(v) : pyFloatRepr(v);
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "string") return pyStrRepr(v);
  if (Array.isArray(v)) return "[" + v.map(pyRepr).join(", ") + "]";
  if (typeof v === "object") {
    return (
      "{" +
      Object.entries(v as Record<string, unknown>)
        .map(([k, x]) => `${pyStrRepr(k)}: ${pyRepr(x)}`)
        .join(", ") +
      "}"
    );
  }
  return String(v);
}

/** An int's digits as Python prints them (String() would switch to exponent notation from 1e21). */
export function pyInt(v: number): string {
  return Math.abs(v) < 1e21 ? String(v) : BigInt(v).toString();
}

/**
 * repr() of a float: the shortest digits that round-trip (JavaScript finds the same ones), in
 * fixed notation for exponents -4..15 and scientific notation otherwise ("1e-05", "1.5e+16"),
 * as CPython's float_repr_style "short" prints them.
 */
function pyFloatRepr(v: number): string {
  if (!Number.isFinite(v)) return Number.isNaN(v) ? "nan" : v > 0 ? "inf" : "-inf";
  if (Object.is(v, -0)) return "-0.0";
  const [mantissa, expText] = v.toExponential().split("e") as [string, string];
  const exp = Number(expText);
  const sign = mantissa.startsWith("-") ? "-" : "";
  const digits = mantissa.replace(/^-/, "").replace(".", "");
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
  const frac = digits.slice(exp + 1);
  return `${sign}${intPart}.${frac || "0"}`;
}

/** Characters str.isprintable() rejects (other than the ASCII space): repr() escapes them. */
const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

/**
 * Python's repr() of a str: single quotes unless the text has ' and no "; backslash, the chosen
 * quote, \n, \r and \t escaped; other non-printable characters as \xhh, \uhhhh or \Uhhhhhhhh.
 */
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
    else if (ch !== " " && NON_PRINTABLE.test(ch)) {
      out += cp < 0x100 ? "\\x" + hex(cp, 2) : cp < 0x10000 ? "\\u" + hex(cp, 4) : "\\U" + hex(cp, 8);
    } else out += ch;
  }
  return out + quote;
}

function hex(cp: number, width: number): string {
  return cp.toString(16).padStart(width, "0");
}

/** str() of a PostgreSQL timestamptz printed in UTC ("2024-01-02 03:04:05.12+00"). */
export function pyDatetimeFromPg(text: string): string {
  const m = /^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:\.(\d+))?([+-]\d{2})(?::?(\d{2}))?$/.exec(text);
  if (!m) return text;
  const frac = m[2] ? "." + m[2].padEnd(6, "0").slice(0, 6) : "";
  return `${m[1]}${frac}${m[3]}:${m[4] ?? "00"}`;
}

// PostgreSQL type OIDs we format specially.
const BOOL = 16,
  JSON_OID = 114,
  JSONB = 3802,
  TIMESTAMPTZ = 1184,
  TIMESTAMP = 1114;

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

/**
 * The characters Python's str.isspace() accepts — what str.strip()/rstrip()/split() remove and
 * what `\s` matches in a str regular expression (re): ASCII whitespace, the information
 * separators \x1c-\x1f, NEL, and Unicode's space separators and line/paragraph separators. As a
 * character-class body for RegExp. JavaScript's `\s` and String.prototype.trim() differ: they
 * lack \x1c-\x1f and \x85 and include U+FEFF (not whitespace in Python).
 */
export const PY_WHITESPACE = "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

const LEADING = new RegExp(`^[${PY_WHITESPACE}]+`);
const TRAILING = new RegExp(`[${PY_WHITESPACE}]+$`);

/** Python's str.strip(). */
export function pyStrip(s: string): string {
  return s.replace(LEADING, "").replace(TRAILING, "");
}

/** Python's str.rstrip(). */
export function pyRstrip(s: string): string {
  return s.replace(TRAILING, "");
}
