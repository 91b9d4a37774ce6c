/**
 * INI files read the way Zulip reads them: Python's `configparser.RawConfigParser`
 * with its default options (used for /etc/zulip/zulip.conf and
 * /etc/zulip/zulip-secrets.conf).
 *
 * Reading rules (mirroring RawConfigParser):
 *  - no interpolation: `%` and `$` are ordinary characters;
 *  - option names are lower-cased (`optionxform = str.lower`); section names are
 *    case-sensitive and kept exactly as written between the brackets;
 *  - `key = value` or `key: value`, split at the first `=` or `:`; surrounding
 *    whitespace is trimmed from both;
 *  - lines whose first non-blank character is `#` or `;` are comments; there are
 *    no inline comments (`key = a # b` has the value `a # b`);
 *  - a line indented deeper than its option line continues the value; the parts
 *    are joined with "\n" (blank lines inside a value are kept, trailing ones dropped);
 *  - keys of the `[DEFAULT]` section are visible in every other section (a
 *    section's own keys win); the returned map also keeps `DEFAULT` itself;
 *  - line endings: \n, \r\n and \r are all accepted.
 *
 * Differences, on purpose:
 *  - Python's strict mode rejects a section or option that appears twice in one
 *    file; here the last occurrence wins (sections with the same name are
 *    merged) and the repetition is reported by `parseIniDetailed`.
 *  - Lines Python cannot parse (no separator, an option before any section
 *    header) raise `IniParseError` with the line number, as Python would fail too.
 *
 * `updateIniValues` edits a file in place the way `crudini --set` does: only the
 * lines of keys whose value changes are rewritten, new keys are appended at the
 * end of their section (the section is created at the end of the file if
 * missing), and every other byte - comments, blank lines, order, line endings -
 * is kept.
 */

import { PY_WHITESPACE, pyRstrip, pyStrip } from "../lib/pyformat.js";

export type IniData = Map<string, Map<string, string>>;

export class IniParseError extends Error {
  readonly exitCode = 3;
  readonly errorCode = "config_invalid" as const;
  readonly line: number;
  constructor(message: string, line: number, path?: string) {
    super(path === undefined ? `line ${line}: ${message}` : `Cannot parse ${path} line ${line}: ${message}`);
    this.name = "IniParseError";
    this.line = line;
  }
}

export interface IniDuplicate {
  section: string;
  /** Lower-cased key; absent when the whole section header is repeated. */
  key?: string;
  line: number;
}

export interface IniParseResult {
  sections: IniData;
  /** Repeated sections/keys (Python's strict parser would refuse the file). */
  duplicates: IniDuplicate[];
}

const DEFAULT_SECTION = "DEFAULT";
const SECTION_RE = /^\[(.+)\]/;
// configparser's _OPT_TMPL and NONSPACECRE: `\s` of Python's re is str.isspace()'s set.
const OPTION_RE = new RegExp(`^(.*?)[${PY_WHITESPACE}]*([=:])[${PY_WHITESPACE}]*(.*)$`, "s");
const NONSPACE_RE = new RegExp(`[^${PY_WHITESPACE}]`);

interface PhysicalLine {
  /** Text without its line terminator. */
  text: string;
  /** The terminator: "\n", "\r\n", "\r" or "" (last line). */
  eol: string;
}

function splitLines(text: string): PhysicalLine[] {
  const lines: PhysicalLine[] = [];
  const re = /\r\n|\n|\r/g;
  let last = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    lines.push({ text: text.slice(last, m.index), eol: m[0] });
    last = m.index + m[0].length;
  }
  if (last < text.length) lines.push({ text: text.slice(last), eol: "" });
  return lines;
}

type LineInfo =
  | { kind: "blank" }
  | { kind: "comment" }
  | { kind: "section"; section: string }
  | { kind: "option"; section: string; key: string; rawKey: string; value: string; valueStart: number }
  /** A continuation line of the option on line `owner` (index); `blank` for empty lines inside a value. */
  | { kind: "continuation"; owner: number; value: string; blank: boolean }
  | { kind: "error"; message: string };

/** Classify every physical line exactly like RawConfigParser._read does. */
function scan(lines: PhysicalLine[]): LineInfo[] {
  const out: LineInfo[] = [];
  let section: string | null = null;
  let option: number | null = null; // index of the current option line
  let indentLevel = 0;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.text;
    const stripped = pyStrip(raw);
    if (stripped.startsWith("#") || stripped.startsWith(";")) {
      out.push({ kind: "comment" });
      continue;
    }
    if (stripped === "") {
      // Empty lines inside a value are kept (empty_lines_in_values=True).
      if (section !== null && option !== null) out.push({ kind: "continuation", owner: option, value: "", blank: true });
      else out.push({ kind: "blank" });
      continue;
    }
    const curIndent = raw.search(NONSPACE_RE);
    if (section !== null && option !== null && curIndent > indentLevel) {
      out.push({ kind: "continuation", owner: option, value: stripped, blank: false });
      continue;
    }
    indentLevel = curIndent;
    const sm = SECTION_RE.exec(stripped);
    if (sm) {
      section = sm[1]!;
      option = null;
      out.push({ kind: "section", section });
      continue;
    }
    if (section === null) {
      out.push({ kind: "error", message: "file contains no section headers" });
      continue;
    }
    const om = OPTION_RE.exec(stripped);
    if (!om || om[1] === "") {
      out.push({ kind: "error", message: `cannot parse ${JSON.stringify(raw)}: expected "key = value"` });
      option = null;
      continue;
    }
    const rawKey = pyRstrip(om[1]!);
    const valueStart = curIndent + om[0].length - om[3]!.length;
    out.push({ kind: "option", section, key: rawKey.toLowerCase(), rawKey, value: pyStrip(om[3]!), valueStart });
    option = i;
  }
  // Blank lines after the last line of a value are not part of it (Python rstrips the value).
  let nextReal: LineInfo | undefined;
  for (let i = out.length - 1; i >= 0; i--) {
    const info = out[i]!;
    if (info.kind === "continuation" && info.blank) {
      if (!nextReal || nextReal.kind !== "continuation" || nextReal.owner !== info.owner) out[i] = { kind: "blank" };
      continue;
    }
    if (info.kind !== "comment") nextReal = info;
  }
  return out;
}

/**
 * Parse with diagnostics. Throws `IniParseError` (line number, and `path` if
 * given) for lines Python's RawConfigParser would reject.
 */
export function parseIniDetailed(text: string, opts: { path?: string } = {}): IniParseResult {
  const lines = splitLines(text);
  const infos = scan(lines);
  const raw = new Map<string, Map<string, string[]>>();
  const duplicates: IniDuplicate[] = [];
  const seenSections = new Set<string>();
  const seenKeys = new Set<string>();
  infos.forEach((info, i) => {
    if (info.kind === "error") throw new IniParseError(info.message, i + 1, opts.path);
    if (info.kind === "section") {
      if (seenSections.has(info.section)) duplicates.push({ section: info.section, line: i + 1 });
      seenSections.add(info.section);
      if (!raw.has(info.section)) raw.set(info.section, new Map());
    } else if (info.kind === "option") {
      const id = `${info.section}\u0000${info.key}`;
      if (seenKeys.has(id)) duplicates.push({ section: info.section, key: info.key, line: i + 1 });
      seenKeys.add(id);
      raw.get(info.section)!.set(info.key, [info.value]); // last wins (Python keeps the first position)
    } else if (info.kind === "continuation") {
      const owner = infos[info.owner];
      if (owner?.kind === "option") raw.get(owner.section)!.get(owner.key)!.push(info.value);
    }
  });
  const sections: IniData = new Map();
  for (const [name, opts2] of raw) {
    const m = new Map<string, string>();
    for (const [key, parts] of opts2) m.set(key, pyRstrip(parts.join("\n")));
    sections.set(name, m);
  }
  const defaults = sections.get(DEFAULT_SECTION);
  if (defaults) {
    for (const [name, m] of sections) {
      if (name === DEFAULT_SECTION) continue;
      for (const [k, v] of defaults) if (!m.has(k)) m.set(k, v);
    }
  }
  return { sections, duplicates };
}

/** Parse an INI file into section → (lower-cased key → value). See the module comment. */
export function parseIni(text: string, opts: { path?: string } = {}): IniData {
  return parseIniDetailed(text, opts).sections;
}

/** Look a value up the way `RawConfigParser.get(section, key, fallback=None)` does. */
export function iniGet(data: IniData, section: string, key: string): string | undefined {
  return data.get(section)?.get(key.toLowerCase());
}

function validateUpdate(key: string, value: string): void {
  if (key === "" || key !== pyStrip(key)) throw new Error(`Invalid INI key ${JSON.stringify(key)}: empty or surrounded by whitespace.`);
  if (/[=:\r\n]/.test(key)) throw new Error(`Invalid INI key ${JSON.stringify(key)}: it may not contain '=', ':' or line breaks.`);
  if (/^[#;[]/.test(key)) throw new Error(`Invalid INI key ${JSON.stringify(key)}: it may not start with '#', ';' or '['.`);
  if (/[\r\n]/.test(value)) throw new Error(`Invalid value for INI key ${key}: it may not contain line breaks.`);
  if (value !== pyStrip(value)) {
    throw new Error(`Invalid value for INI key ${key}: leading or trailing whitespace would be lost when Zulip reads it.`);
  }
}

/**
 * Set `updates` (key → value) in `section` of the INI `text`, changing as little
 * as possible:
 *  - a key whose current value (as `parseIni` would read it) already equals the
 *    new value is left alone;
 *  - a key that exists gets its value rewritten in place on every line that
 *    defines it in that section (keeping the original key spelling, separator and
 *    spacing); continuation lines of the old value are removed;
 *  - a new key is appended as `key = value` after the last option of the last
 *    `[section]` block (or right after its header); a missing section is created
 *    at the end of the file, after a blank line.
 * All other lines, comments, blank lines, ordering and line endings are kept
 * byte for byte. Throws for keys/values that could not round-trip (line breaks,
 * separators in keys, surrounding whitespace in values).
 */
export function updateIniValues(text: string, section: string, updates: Record<string, string>): string {
  // Keys are case-insensitive: if the same key is given twice, the last spelling wins.
  const wanted = new Map<string, { key: string; value: string }>();
  for (const [key, value] of Object.entries(updates)) {
    validateUpdate(key, value);
    wanted.delete(key.toLowerCase());
    wanted.set(key.toLowerCase(), { key, value });
  }
  const lines = splitLines(text);
  const infos = scan(lines);
  let current: Map<string, string> | undefined;
  try {
    current = parseIni(text).get(section);
  } catch {
    current = undefined; // a file Python cannot parse: never treat a value as unchanged
  }
  const eol = /\r\n/.test(text) ? "\r\n" : /\n/.test(text) ? "\n" : /\r/.test(text) ? "\r" : "\n";

  const replaced = new Map<number, string>(); // line index → new text (terminator kept)
  const removed = new Set<number>(); // continuation lines of rewritten values
  const toAppend: string[] = [];
  for (const [lower, { key, value }] of wanted) {
    if (current?.get(lower) === value) continue; // unchanged (possibly inherited from [DEFAULT])
    const defining = infos.flatMap((info, i) => (info.kind === "option" && info.section === section && info.key === lower ? [i] : []));
    if (defining.length === 0) {
      toAppend.push(`${key} = ${value}`);
      continue;
    }
    for (const i of defining) {
      const info = infos[i] as Extract<LineInfo, { kind: "option" }>;
      replaced.set(i, lines[i]!.text.slice(0, info.valueStart) + value);
      infos.forEach((c, j) => {
        if (c.kind === "continuation" && c.owner === i) removed.add(j);
      });
    }
  }
  if (replaced.size === 0 && toAppend.length === 0) return text;

  // Where new keys go: after the last option (or value line) of the last [section] block.
  let insertAfter = -1;
  const headers = infos.flatMap((info, i) => (info.kind === "section" && info.section === section ? [i] : []));
  if (toAppend.length > 0 && headers.length > 0) {
    insertAfter = headers[headers.length - 1]!;
    for (let i = insertAfter + 1; i < infos.length; i++) {
      const info = infos[i]!;
      if (info.kind === "section") break;
      if (info.kind === "option" || (info.kind === "continuation" && !info.blank && !removed.has(i))) insertAfter = i;
    }
  }

  const out: string[] = [];
  lines.forEach((line, i) => {
    if (removed.has(i)) return;
    const body = replaced.get(i) ?? line.text;
    if (i !== insertAfter) {
      out.push(body + line.eol);
      return;
    }
    out.push(body + (line.eol || eol));
    toAppend.forEach((t, j) => {
      // Keep a missing final newline missing if we append at the very end of the file.
      const last = j === toAppend.length - 1 && i === lines.length - 1 && line.eol === "";
      out.push(t + (last ? "" : eol));
    });
  });
  if (toAppend.length > 0 && headers.length === 0) {
    let joined = out.join("");
    if (joined.length > 0 && !/(\r\n|\n|\r)$/.test(joined)) joined += eol;
    const lastLine = splitLines(joined).pop();
    if (joined.length > 0 && lastLine !== undefined && pyStrip(lastLine.text) !== "") joined += eol;
    return joined + `[${section}]${eol}` + toAppend.map((t) => t + eol).join("");
  }
  return out.join("");
}
