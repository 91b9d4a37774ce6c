// The organization's linkifiers (zerver_realmfilter) as Zulip applies them to a topic
// (zerver/lib/markdown/__init__.py topic_links, prepare_linkifier_pattern;
// zerver/models/linkifiers.py linkifiers_for_realm) — read in the zulip/zulip source of the
// 12.x era; topic_links has had this shape (links {url, text}, linkifiers ordered by their
// `order`, precedence before index, overlapping matches dropped) since before 10.0.
//
// Zulip compiles each prepared pattern with re2 (google-re2, default options: Perl syntax,
// UTF-8, `^`/`$` at the text's ends only, `.` not matching \n, negated classes matching \n,
// ASCII \d \s \w \b, leftmost-first matching) and expands the url_template with the Python
// `uri_template` library (1.3.x) from the match's named groups. JavaScript's RegExp is not re2,
// so each pattern is translated here, exactly or not at all: `translateRe2` accepts the re2
// syntax whose JavaScript meaning (with the `u` flag) is certain and says "unsupported" for
// everything else; `parseUriTemplate` likewise for the URL templates. The callers then keep
// to what they did without linkifier support (the message event is not sent, the notice not
// written) and say which pattern or template stopped them.
//
// Differences between the engines this translation steers around:
//  - re2's \d \s \w \b are ASCII (\s is [\t\n\f\r ]); JavaScript's \s is Unicode: all are
//    written out as explicit classes (\b is ASCII in JavaScript too without the `i` flag).
//  - re2's `.` excludes only \n (JavaScript's also \r, U+2028, U+2029): written [^\n].
//  - A capture inside a repetition keeps its last value in re2 and is reset at each iteration
//    in JavaScript; a repeated expression that can match the empty string is treated
//    differently (JavaScript rejects empty iterations): both are refused.
//  - re2 runs in linear time, JavaScript backtracks: repetitions of groups that hold
//    alternatives or other unbounded repetitions (exponential cases) are refused.
//  - POSIX classes, \Q…\E, \C, octal escapes, \pC (re2 leaves out unassigned code points,
//    JavaScript does not) and anything not listed are refused.
//  - Inline flags (?i) (?m) (?s) (?U), their negations (?-i) and scoped groups (?i:…) are
//    translated into the pattern itself; the JavaScript RegExp gets no i, m or s flag (see
//    "Flags" below for what re2 does and why the JavaScript `i` flag would not be exact).
// The Unicode tables (\pL, scripts) of re2 and of Node's ICU may differ in the characters the
// latest Unicode versions added; the topics these are used on are fixed English words.
import type { Queryable } from "../db/db.js";
import { hasColumn } from "../db/db.js";

/** A row of zerver_realmfilter. */
export interface Linkifier {
  id: number;
  pattern: string;
  urlTemplate: string;
  /** The `order` column (null before it existed: the id order then). */
  order: number | null;
}

/** linkifiers_for_realm(realm_id): RealmFilter.objects.filter(realm_id=…).order_by("order"); ties in id order here (see topicLinks). */
export async function realmLinkifiers(q: Queryable, realmId: number): Promise<Linkifier[]> {
  const ordered = await hasColumn(q, "zerver_realmfilter", "order");
  const { rows } = await q.query(
    `SELECT id, pattern, url_template, ${ordered ? `"order"` : "NULL::int"} AS ord FROM zerver_realmfilter WHERE realm_id = $1 ORDER BY ${ordered ? `"order", ` : ""}id`,
    [realmId],
  );
  return rows.map((r) => ({ id: Number(r.id), pattern: r.pattern, urlTemplate: r.url_template, order: r.ord === null ? null : Number(r.ord) }));
}

// ---------------------------------------------------------------------------------------------
// re2 → JavaScript

export type Translation = { ok: true; source: string; groupNames: string[] } | { ok: false; why: string };

const BEFORE = "linkifier_before_match";
const ACTUAL = "linkifier_actual_match";
const AFTER = "linkifier_after_match";

/** A code point written for a JavaScript `u` RegExp, inside or outside a class. */
function cp(c: number): string {
  return /[A-Za-z0-9]/.test(String.fromCodePoint(c)) ? String.fromCodePoint(c) : `\\u{${c.toString(16)}}`;
}

const MAX_CP = 0x10ffff;
type Range = [number, number];
const DIGIT: Range[] = [[0x30, 0x39]];
const SPACE: Range[] = [
  [0x09, 0x0a],
  [0x0c, 0x0d],
  [0x20, 0x20],
];
const WORD: Range[] = [
  [0x30, 0x39],
  [0x41, 0x5a],
  [0x5f, 0x5f],
  [0x61, 0x7a],
];

function complement(rs: Range[]): Range[] {
  const out: Range[] = [];
  let next = 0;
  for (const [lo, hi] of rs) {
    if (lo > next) out.push([next, lo - 1]);
    next = hi + 1;
  }
  if (next <= MAX_CP) out.push([next, MAX_CP]);
  return out;
}

const rangesText = (rs: Range[]) => rs.map(([lo, hi]) => (lo === hi ? cp(lo) : `${cp(lo)}-${cp(hi)}`)).join("");

// ---------------------------------------------------------------------------------------------
// Inline flags, as re2 reads them (google/re2 re2/parse.cc: ParsePerlFlags, PushLiteral,
// AddFoldedRange, AddRangeFlags, AddUGroup, ParseCharClass, PushDot, PushCarat, PushDollar,
// PushRepeatOp; re2/unicode.py CaseGroups; prog.h IsWordChar).
//
// `(?flags)` sets or (after `-`) clears i m s U up to the end of the enclosing group: a group's
// `)` gives back the flags it opened with (DoRightParen); `|` does not. `(?flags:…)` is a
// non-capturing group with them. `(?i-)`, `(?-)` and other letters are errors.
//
// (?i) sets FoldCase, which re2 applies while parsing:
//  - a literal becomes the class of its case-folding orbit (PushLiteral, CycleFoldRune);
//  - class ranges, \d \s \w and \p{…} get every code point fold-equivalent to one they hold
//    (AddRangeFlags → AddFoldedRange); a negated class is negated after folding
//    (ParseCharClass); \D \S \W \P{…} are the complement of the folded group (AddUGroup with
//    FoldCase: "build up the group positively, then negate"). So (?i)\w is [0-9A-Z_a-z] plus
//    U+017F ſ (orbit of s) and U+212A Kelvin (orbit of k), (?i)\W its complement;
//  - `.`, ^, $, \b and \B are not folded: \b stays ASCII (IsWordChar).
// The orbits are CaseFolding.txt's simple foldings, statuses C and S (CaseGroups), e.g.
// {K, k, U+212A}, {S, s, U+017F}, {Ω, ω, U+2126}, {ß, U+1E9E}, {Σ, σ, ς}, {ι, Ι, U+0345, U+1FBE}.
// JavaScript's `iu` canonicalizes by the same simple foldings, but the result differs: its \b
// and \w count U+017F and U+212A as word characters, its \P{…} (u mode) is not the complement
// of the folded class, and a RegExp-wide `i` would also fold prepare_linkifier_pattern's groups
// around the pattern, which re2 does not ((?i) ends with the group holding it; [^\pL\pN] would
// lose U+0345). So the folding is written out here and the RegExp gets no `i` flag: a literal as
// its orbit, a class with its fold-equivalents added (for \p{X}: the code points outside X
// equivalent to one inside), negated after folding; no text needs refusing for ſ or K.
// The orbits are computed from JavaScript's own `iu` equivalence (CaseFolding.txt in Node's
// Unicode version; candidates connected through toLowerCase/toUpperCase, which link every
// simple-folding orbit; no cased character lies beyond U+1FFFF).
//
// (?s): `.` is any character (PushDot: kRegexpAnyChar). (?m): ^ and $ match at the text's ends
// and after/before \n only (kRegexpBeginLine/EndLine; JavaScript's m flag also breaks at \r,
// U+2028, U+2029): written (?<![^\n]) and (?![^\n]). (?U): greedy and lazy swap (`fl ^
// NonGreedy` for a trailing ?). \A and \z are the text's ends under every flag.

interface Flags {
  i: boolean;
  m: boolean;
  s: boolean;
  U: boolean;
}

/** Sorted, merged ranges. */
function normalize(rs: Range[]): Range[] {
  const out: Range[] = [];
  for (const [lo, hi] of [...rs].sort((a, b) => a[0] - b[0])) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else out.push([lo, hi]);
  }
  return out;
}

let orbitTable: Map<number, number[]> | null = null;

/** Each code point whose simple case-folding orbit has more than one member → that orbit (sorted). */
function orbits(): Map<number, number[]> {
  if (orbitTable) return orbitTable;
  const parent = new Map<string, string>();
  const find = (x: string): string => {
    let r = x;
    for (let p = parent.get(r); p !== undefined && p !== r; p = parent.get(r)) r = p;
    parent.set(x, r);
    return r;
  };
  const union = (a: string, b: string) => {
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent.set(ra, rb);
  };
  for (let c = 0; c < 0x20000; c++) {
    if (c >= 0xd800 && c <= 0xdfff) continue;
    const ch = String.fromCodePoint(c);
    const lower = ch.toLowerCase();
    const upper = ch.toUpperCase();
    if (lower === ch && upper === ch) continue;
    // Same full lower or upper case (e.g. U+0390 and U+1FD3), or one the other's single-character case.
    union(ch, `L:${lower}`);
    union(ch, `U:${upper}`);
    if ([...lower].length === 1) union(ch, lower);
    if ([...upper].length === 1) union(ch, upper);
  }
  const components = new Map<string, number[]>();
  for (const key of parent.keys()) {
    if ([...key].length !== 1) continue;
    const root = find(key);
    const members = components.get(root) ?? [];
    members.push(key.codePointAt(0)!);
    components.set(root, members);
  }
  const table = new Map<number, number[]>();
  for (const members of components.values()) {
    // Split by the `iu` equivalence itself (toUpperCase links ı with I, which do not fold together).
    const groups: number[][] = [];
    for (const m of members.sort((a, b) => a - b)) {
      const g = groups.find((g) => new RegExp(`^${cp(g[0]!)}$`, "iu").test(String.fromCodePoint(m)));
      if (g) g.push(m);
      else groups.push([m]);
    }
    for (const g of groups) if (g.length > 1) for (const m of g) table.set(m, g);
  }
  orbitTable = table;
  return table;
}

/** AddFoldedRange over ranges: the ranges with every code point fold-equivalent to one of them. */
function foldRanges(rs: Range[]): Range[] {
  const out = [...rs];
  for (const [c, orbit] of orbits()) if (rs.some(([lo, hi]) => lo <= c && c <= hi)) for (const m of orbit) out.push([m, m]);
  return normalize(out);
}

/** The code points outside the JavaScript property `prop` fold-equivalent to one inside it. */
function propertyFoldExtras(prop: string): Range[] {
  const re = new RegExp(`^\\p{${prop}}$`, "u");
  const has = (c: number) => re.test(String.fromCodePoint(c));
  const extra: Range[] = [];
  for (const [c, orbit] of orbits()) if (!has(c) && orbit.some(has)) extra.push([c, c]);
  return normalize(extra);
}

/** re2's one- and two-letter general categories that mean the same in JavaScript (not C: re2's leaves out Cn). */
const CATEGORIES = new Set("L Lu Ll Lt Lm Lo M Mn Mc Me N Nd Nl No P Pc Pd Ps Pe Pi Pf Po S Sm Sc Sk So Z Zs Zl Zp Cc Cf Co Cs".split(" "));

class Unsupported extends Error {}

interface Node {
  src: string;
  /** Can match the empty string. */
  nullable: boolean;
  /** Holds a capturing group. */
  captures: boolean;
  /** Holds an alternation or a repetition of more than one. */
  branching: boolean;
  /** Holds a counted repetition {n,m}. */
  counted: boolean;
}

class Re2Parser {
  private i = 0;
  private readonly s: string[];
  readonly names: string[] = [];
  private flags: Flags = { i: false, m: false, s: false, U: false };
  constructor(source: string) {
    this.s = [...source];
  }
  private fail(why: string): never {
    throw new Unsupported(why);
  }
  private peek(k = 0): string | undefined {
    return this.s[this.i + k];
  }

  parse(): Node {
    const n = this.alternation();
    if (this.i < this.s.length) this.fail("an unmatched )");
    return n;
  }

  private alternation(): Node {
    const alts = [this.sequence()];
    while (this.peek() === "|") {
      this.i++;
      alts.push(this.sequence());
    }
    return {
      src: alts.map((a) => a.src).join("|"),
      nullable: alts.some((a) => a.nullable),
      captures: alts.some((a) => a.captures),
      branching: alts.length > 1 || alts.some((a) => a.branching),
      counted: alts.some((a) => a.counted),
    };
  }

  private sequence(): Node {
    const items: Node[] = [];
    while (this.i < this.s.length && this.peek() !== "|" && this.peek() !== ")") {
      const atom = this.atom();
      items.push(this.quantified(atom));
    }
    return {
      src: items.map((a) => a.src).join(""),
      nullable: items.every((a) => a.nullable),
      captures: items.some((a) => a.captures),
      branching: items.some((a) => a.branching),
      counted: items.some((a) => a.counted),
    };
  }

  /** A `{n}`, `{n,}` or `{n,m}` repetition at the current position: [min, max (-1: none), length]. */
  private counted(): [number, number, number] | null {
    const rest = this.s.slice(this.i, this.i + 20).join("");
    const m = /^\{(\d+)(,(\d*))?\}/.exec(rest);
    if (!m) return null;
    const min = Number(m[1]);
    const max = m[2] === undefined ? min : m[3] === "" ? -1 : Number(m[3]);
    return [min, max, [...m[0]].length];
  }

  private quantified(atom: Node): Node {
    let node = atom;
    let repeated = false;
    for (;;) {
      const c = this.peek();
      let min: number, max: number, len: number;
      if (c === "*" || c === "+" || c === "?") {
        [min, max, len] = [c === "+" ? 1 : 0, c === "?" ? 1 : -1, 1];
      } else if (c === "{" && this.counted()) {
        [min, max, len] = this.counted()!;
        if (min > 1000 || max > 1000 || (max !== -1 && max < min)) this.fail("a repetition count re2 does not accept");
      } else return node;
      // re2 (Perl mode) refuses stacked repetitions such as a** or a*+.
      if (repeated) this.fail("stacked repetition operators");
      repeated = true;
      this.i += len;
      // (?U) swaps greedy and lazy (re2: `fl ^ NonGreedy` for a trailing ?).
      let lazy = this.flags.U ? "?" : "";
      if (this.peek() === "?") {
        this.i++;
        lazy = this.flags.U ? "" : "?";
      }
      if (atom.nullable) this.fail("a repetition of something that can match the empty string");
      if (atom.captures && max !== 1) this.fail("a capturing group inside a repetition");
      if (max !== 1 && atom.branching) this.fail("a repetition of alternatives or of another repetition");
      if (c === "{" && atom.counted) this.fail("nested counted repetitions");
      const q = c === "{" ? `{${min}${max === min ? "" : `,${max === -1 ? "" : max}`}}` : c;
      node = {
        src: `${atom.src}${q}${lazy}`,
        nullable: min === 0,
        captures: atom.captures,
        branching: atom.branching || max !== 1,
        counted: atom.counted || c === "{",
      };
    }
  }

  private leaf(src: string, nullable = false): Node {
    return { src, nullable, captures: false, branching: false, counted: false };
  }

  /** A literal code point: under (?i) the class of its case-folding orbit (PushLiteral). */
  private literal(c: number): Node {
    const orbit = this.flags.i ? orbits().get(c) : undefined;
    return this.leaf(orbit ? `[${rangesText(normalize(orbit.map((m): Range => [m, m])))}]` : cp(c));
  }

  private atom(): Node {
    const c = this.s[this.i]!;
    if (c === "*" || c === "+" || c === "?" || (c === "{" && this.counted())) this.fail("a repetition operator with nothing to repeat");
    this.i++;
    switch (c) {
      case "(":
        return this.group();
      case "[":
        return this.leaf(this.charClass());
      case ".":
        return this.leaf(this.flags.s ? "[\\u{0}-\\u{10ffff}]" : "[^\\n]");
      case "^":
        return this.leaf(this.flags.m ? "(?<![^\\n])" : "^", true);
      case "$":
        return this.leaf(this.flags.m ? "(?![^\\n])" : "$", true);
      case "\\":
        return this.escape();
      default:
        return this.literal(c.codePointAt(0)!);
    }
  }

  private group(): Node {
    let name: string | null = null;
    let capture = true;
    // Every group gives back the flags it opened with (DoRightParen); `(?flags)` changes them up to there.
    const saved = { ...this.flags };
    if (this.peek() === "?") {
      const rest = this.s.slice(this.i, this.i + 200).join("");
      const named = /^\?P?<([^>]*)>/.exec(rest);
      if (named) {
        name = named[1]!;
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) this.fail(`the group name "${name}"`);
        if (this.names.includes(name) || [BEFORE, ACTUAL, AFTER].includes(name)) this.fail(`the group name "${name}" used twice`);
        this.names.push(name);
        this.i += [...named[0]].length;
      } else if (rest.startsWith("?:")) {
        capture = false;
        this.i += 2;
      } else {
        // ParsePerlFlags: letters i m s U, at most one `-` followed by at least one letter, then `)` or `:`.
        const f = /^\?([imsU]*)(?:(-)([imsU]*))?([:)])/.exec(rest);
        if (!f || (f[2] !== undefined && f[3] === "")) this.fail("an unknown (? construct");
        for (const flag of f[1]!) this.flags[flag as keyof Flags] = true;
        for (const flag of f[3] ?? "") this.flags[flag as keyof Flags] = false;
        this.i += f[0].length;
        if (f[4] === ")") return this.leaf("", true);
        capture = false;
      }
    }
    const inner = this.alternation();
    if (this.peek() !== ")") this.fail("an unclosed (");
    this.i++;
    this.flags = saved;
    const open = !capture ? "(?:" : name !== null ? `(?<${name}>` : "(";
    return { ...inner, src: `${open}${inner.src})`, captures: inner.captures || capture };
  }

  /** A single-character escape (after the backslash), as a code point; null when it is not one. */
  private charEscape(): number | null {
    const c = this.peek();
    if (c === undefined) this.fail("a trailing backslash");
    const simple: Record<string, number> = { a: 7, f: 12, t: 9, n: 10, r: 13, v: 11 };
    if (c in simple) {
      this.i++;
      return simple[c]!;
    }
    if (c === "x") {
      const rest = this.s.slice(this.i, this.i + 12).join("");
      const m = /^x(?:\{([0-9A-Fa-f]{1,6})\}|([0-9A-Fa-f]{2}))/.exec(rest);
      if (!m) this.fail("a \\x escape");
      const v = parseInt(m[1] ?? m[2]!, 16);
      if (v > MAX_CP || (v >= 0xd800 && v <= 0xdfff)) this.fail("a \\x escape outside Unicode scalar values");
      this.i += m[0].length;
      return v;
    }
    // Escaped ASCII punctuation stands for itself.
    const code = c.codePointAt(0)!;
    if (code > 0x20 && code < 0x7f && !/[A-Za-z0-9_]/.test(c)) {
      this.i++;
      return c.codePointAt(0)!;
    }
    return null;
  }

  /** \d \s \w and their negations as ranges (folded under (?i)); \pX \p{X} \PX \P{X} \p{^X} as a property (null: Any); null when not one. */
  private classEscape(): { ranges: Range[] } | { prop: string | null; negated: boolean } | null {
    const c = this.peek();
    const perl: Record<string, Range[]> = { d: DIGIT, s: SPACE, w: WORD };
    if (c !== undefined && c.toLowerCase() in perl) {
      this.i++;
      const rs = this.flags.i ? foldRanges(perl[c.toLowerCase()]!) : perl[c.toLowerCase()]!;
      return { ranges: c === c.toLowerCase() ? rs : complement(rs) };
    }
    if (c === "p" || c === "P") {
      this.i++;
      let name: string;
      if (this.peek() === "{") {
        const close = this.s.indexOf("}", this.i);
        if (close < 0) this.fail("an unclosed \\p{");
        name = this.s.slice(this.i + 1, close).join("");
        this.i = close + 1;
      } else {
        const n = this.peek();
        if (n === undefined) this.fail("a trailing \\p");
        name = n;
        this.i++;
      }
      let negated = c === "P";
      if (name.startsWith("^")) {
        negated = !negated;
        name = name.slice(1);
      }
      let prop: string | null;
      if (name === "Any") prop = null;
      else if (CATEGORIES.has(name)) prop = name;
      else if (/^[A-Z][A-Za-z_]+$/.test(name)) {
        prop = `Script=${name}`;
        try {
          new RegExp(`\\p{${prop}}`, "u");
        } catch {
          this.fail(`the Unicode class \\p{${name}}`);
        }
      } else this.fail(`the Unicode class \\p{${name}}`);
      return { prop, negated };
    }
    return null;
  }

  private escape(): Node {
    const c = this.peek();
    if (c === "b" || c === "B") {
      this.i++;
      return this.leaf(`\\${c}`, true);
    }
    if (c === "A") {
      this.i++;
      return this.leaf("^", true);
    }
    if (c === "z") {
      this.i++;
      return this.leaf("$", true);
    }
    const cls = this.classEscape();
    if (cls) return this.leaf("ranges" in cls ? `[${rangesText(cls.ranges)}]` : this.classSource(false, [], [cls]));
    const ch = this.charEscape();
    if (ch === null) this.fail(`the escape \\${c}`);
    return this.literal(ch);
  }

  /** A class's single character (for ranges): a literal or a character escape. */
  private classChar(): number {
    const c = this.s[this.i]!;
    this.i++;
    if (c !== "\\") return c.codePointAt(0)!;
    const ch = this.charEscape();
    if (ch === null) this.fail(`the escape \\${this.peek() ?? ""} in a range`);
    return ch;
  }

  /**
   * A class of ranges and Unicode properties, negated or not. Without (?i) as written; under
   * (?i) folded (ranges and properties get their fold-equivalents) and then negated, as re2's
   * ParseCharClass does. A negated property under (?i) is the complement of the folded property
   * (AddUGroup), written as a negated class: only when it is the class's one item.
   */
  private classSource(negate: boolean, ranges: Range[], props: { prop: string | null; negated: boolean }[]): string {
    const propText = (p: string | null, negated: boolean) => (p === null ? (negated ? "" : "\\u{0}-\\u{10ffff}") : `\\${negated ? "P" : "p"}{${p}}`);
    if (!this.flags.i) return `[${negate ? "^" : ""}${rangesText(ranges)}${props.map((p) => propText(p.prop, p.negated)).join("")}]`;
    const folded = (p: string | null) => (p === null ? "\\u{0}-\\u{10ffff}" : `${propText(p, false)}${rangesText(propertyFoldExtras(p))}`);
    const negatedProps = props.filter((p) => p.negated && p.prop !== null);
    if (negatedProps.length) {
      if (props.length > 1 || ranges.length) this.fail("a negated Unicode class among other items of a case-insensitive class");
      return `[${negate ? "" : "^"}${folded(negatedProps[0]!.prop)}]`;
    }
    const positive = props.filter((p) => !p.negated);
    return `[${negate ? "^" : ""}${rangesText(foldRanges(ranges))}${positive.map((p) => folded(p.prop)).join("")}]`;
  }

  private charClass(): string {
    let negate = false;
    if (this.peek() === "^") {
      negate = true;
      this.i++;
    }
    const ranges: Range[] = [];
    const props: { prop: string | null; negated: boolean }[] = [];
    let first = true;
    for (;;) {
      const c = this.peek();
      if (c === undefined) this.fail("an unclosed [");
      if (c === "]" && !first) {
        this.i++;
        break;
      }
      first = false;
      if (c === "[" && this.peek(1) === ":") this.fail("a POSIX class [:…:]");
      if (c === "\\") {
        this.i++;
        const cls = this.classEscape();
        if (cls) {
          if ("ranges" in cls) ranges.push(...cls.ranges);
          else props.push(cls);
          continue;
        }
        this.i--;
      }
      const lo = this.classChar();
      if (this.peek() === "-" && this.peek(1) !== undefined && this.peek(1) !== "]") {
        this.i++;
        const hi = this.classChar();
        if (hi < lo) this.fail("a reversed class range");
        ranges.push([lo, hi]);
      } else ranges.push([lo, lo]);
    }
    return this.classSource(negate, ranges, props);
  }
}

/** The JavaScript (`u` flag) source of an re2 pattern, or why it cannot be translated with certainty. */
export function translateRe2(pattern: string): Translation {
  const p = new Re2Parser(pattern);
  try {
    const source = p.parse().src;
    new RegExp(source, "u");
    return { ok: true, source, groupNames: p.names };
  } catch (e) {
    const why = e instanceof Unsupported ? e.message : `JavaScript does not accept the translation (${(e as Error).message})`;
    return { ok: false, why };
  }
}

/**
 * prepare_linkifier_pattern(source), translated: the match must follow the start, whitespace
 * (\s, NEL, \pZ) or an opening delimiter, and not be followed by a letter or digit.
 */
export function prepareLinkifierRegex(pattern: string): { ok: true; regex: RegExp } | (Translation & { ok: false }) {
  const t = translateRe2(pattern);
  if (!t.ok) return t;
  const before = `(?<${BEFORE}>^|[${rangesText(SPACE)}]|\\u{85}|\\p{Z}|[${[..."'\"(,:<"].map((c) => cp(c.codePointAt(0)!)).join("")}])`;
  const source = `${before}(?<${ACTUAL}>${t.source})(?<${AFTER}>$|[^\\p{L}\\p{N}])`;
  return { ok: true, regex: new RegExp(source, "gu") };
}

// ---------------------------------------------------------------------------------------------
// RFC 6570 URI templates, as the uri_template library expands them for string values

const UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
const RESERVED = ":/?#[]@!$&'()*+,;=";
const HEX = "0123456789ABCDEFabcdef";

/** Expansion._encode: legal characters kept, (with pctEncoded) %XX triplets kept, everything else as UTF-8 %XX (upper case). */
function encode(value: string, legal: string, pctEncoded: boolean): string {
  const cps = [...value];
  let out = "";
  for (let i = 0; i < cps.length; i++) {
    const c = cps[i]!;
    if (legal.includes(c)) out += c;
    else if (pctEncoded && c === "%" && i + 2 < cps.length && HEX.includes(cps[i + 1]!) && HEX.includes(cps[i + 2]!)) {
      out += cps.slice(i, i + 3).join("");
      i += 2;
    } else for (const b of Buffer.from(c, "utf8")) out += "%" + b.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

interface TemplateVar {
  name: string;
  maxLength: number;
  explode: boolean;
}
type TemplatePart = { literal: string } | { op: string; vars: TemplateVar[] };
export type ParsedTemplate = { ok: true; parts: TemplatePart[] } | { ok: false; why: string };

/** URITemplate(template), for the operators of RFC 6570 level 4 and plain variable names; the library's extensions (defaults, arrays, {,…}, trailing joiners) are refused. */
export function parseUriTemplate(template: string): ParsedTemplate {
  const parts: TemplatePart[] = [];
  for (const part of template.split(/(\{[^}]*\})/)) {
    if (!part) continue;
    if (part.startsWith("{") && part.endsWith("}")) {
      let body = part.slice(1, -1);
      let op = "";
      if (/^[+#./;?&]/.test(body)) {
        op = body[0]!;
        body = body.slice(1);
      } else if (!/^[A-Za-z0-9_]/.test(body)) return { ok: false, why: `the expression ${part}` };
      const vars: TemplateVar[] = [];
      for (const spec of body.split(",")) {
        const m = /^([A-Za-z0-9_]+)(?::([1-9][0-9]{0,2}|0[0-9]{1,2})|(\*))?$/.exec(spec);
        if (!m) return { ok: false, why: `the expression ${part}` };
        const maxLength = m[2] === undefined ? 0 : Number(m[2]);
        if (m[2] !== undefined && maxLength === 0) return { ok: false, why: `the expression ${part}` };
        vars.push({ name: m[1]!, maxLength, explode: m[3] === "*" });
      }
      parts.push({ op, vars });
    } else {
      if (part.includes("{") || part.includes("}")) return { ok: false, why: `the text ${JSON.stringify(part)}` };
      parts.push({ literal: part });
    }
  }
  return { ok: true, parts };
}

/** URITemplate.expand(**values) with string values; undefined (an unmatched group) leaves the variable out. */
export function expandUriTemplate(t: TemplatePart[], values: Record<string, string | undefined>): string {
  let out = "";
  for (const part of t) {
    if ("literal" in part) {
      out += encode(part.literal, UNRESERVED + RESERVED, true);
      continue;
    }
    const { op } = part;
    const reserved = op === "+" || op === "#";
    const enc = (v: string) => (reserved ? encode(v, UNRESERVED + RESERVED, true) : encode(v, UNRESERVED, false));
    const prefix = op === "+" ? "" : op;
    const joiner = op === "" || op === "+" || op === "#" ? "," : op === "?" || op === "&" ? "&" : op;
    const expanded: string[] = [];
    for (const v of part.vars) {
      const raw = values[v.name];
      if (raw === undefined) continue;
      const value = enc(v.maxLength ? [...raw].slice(0, v.maxLength).join("") : raw);
      if (op === ";" || op === "?" || op === "&") {
        // PathStyleExpansion / FormStyleQueryExpansion: name=value; `;` writes a bare name for an empty value (not exploded).
        if (v.explode) expanded.push(`${v.name}=${value}`);
        else if (op === ";" && value === "") expanded.push(v.name);
        else expanded.push(`${v.name}=${value}`);
      } else expanded.push(value);
    }
    if (expanded.length) out += prefix + expanded.join(joiner);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// topic_links

export interface TopicLink {
  url: string;
  text: string;
}

/**
 * topic_links(realm_id, topic) for the linkifier part: each linkifier (in `order`) searched
 * from `pos`, resuming at the end of the match minus the delimiter after it; matches sorted by
 * (precedence, index), overlapping ones dropped, the rest sorted by index. The raw-URL part is
 * not computed: the caller refuses topics that could hold a URL. Returns why not, when a
 * pattern or a matching linkifier's template cannot be reproduced, or when linkifiers of equal
 * `order` (whose relative order PostgreSQL leaves open) both match.
 */
export function topicLinks(linkifiers: Linkifier[], topic: string): { links: TopicLink[] } | { why: string } {
  interface Match extends TopicLink {
    index: number;
    precedence: number;
  }
  const matches: Match[] = [];
  const matchedOrders = new Map<number, string>();
  // An empty topic: `while pos < len(topic_name)` never runs.
  if (topic === "") return { links: [] };
  for (const [precedence, l] of linkifiers.entries()) {
    const prepared = prepareLinkifierRegex(l.pattern);
    if (!prepared.ok) return { why: `the linkifier pattern ${JSON.stringify(l.pattern)} has ${prepared.why}, which zulip-manage does not translate from re2` };
    const re = prepared.regex;
    let pos = 0;
    let any = false;
    while (pos < topic.length) {
      re.lastIndex = pos;
      const m = re.exec(topic);
      if (m === null) break;
      const g = m.groups!;
      const next = m.index + m[0].length - g[AFTER]!.length;
      if (next <= pos) return { why: `the linkifier pattern ${JSON.stringify(l.pattern)} matches the empty string, where Zulip's topic_links does not end` };
      pos = next;
      const template = parseUriTemplate(l.urlTemplate);
      if (!template.ok) return { why: `the linkifier URL template ${JSON.stringify(l.urlTemplate)} has ${template.why}, which zulip-manage does not expand` };
      matches.push({ url: expandUriTemplate(template.parts, g), text: g[ACTUAL]!, index: m.index, precedence });
      any = true;
    }
    if (any && l.order !== null) {
      const other = matchedOrders.get(l.order);
      if (other !== undefined)
        return {
          why: `the linkifiers ${JSON.stringify(other)} and ${JSON.stringify(l.pattern)} have the same order and both match, in an order the database leaves open`,
        };
      matchedOrders.set(l.order, l.pattern);
    }
  }
  matches.sort((a, b) => a.precedence - b.precedence || a.index - b.index);
  const overlap = (a: Match, b: Match) =>
    (b.index <= a.index && a.index < b.index + b.text.length) || (a.index <= b.index && b.index < a.index + a.text.length);
  const applied: Match[] = [];
  for (const m of matches) if (applied.every((o) => !overlap(o, m))) applied.push(m);
  applied.sort((a, b) => a.index - b.index);
  return { links: applied.map((m) => ({ url: m.url, text: m.text })) };
}

/**
 * The first linkifier whose prepared pattern matches one of `texts` (the linkifier then turns
 * part of the message into a link, which the notices' hand-written HTML does not hold), or one
 * whose pattern cannot be translated (whether it matches is then unknown).
 */
export function linkifierMatching(linkifiers: Linkifier[], texts: string[]): { pattern: string; why: "matches" | string } | null {
  for (const l of linkifiers) {
    const prepared = prepareLinkifierRegex(l.pattern);
    if (!prepared.ok) return { pattern: l.pattern, why: prepared.why };
    for (const t of texts) {
      prepared.regex.lastIndex = 0;
      if (prepared.regex.test(t)) return { pattern: l.pattern, why: "matches" };
    }
  }
  return null;
}
