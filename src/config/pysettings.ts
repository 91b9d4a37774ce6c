/**
 * A safe, literal-only reader for Zulip's Python settings file
 * (`/etc/zulip/settings.py`).
 *
 * Nothing is ever evaluated. The file is tokenized the way Python's own
 * tokenizer splits it (strings in every quote style, comments, bracketed
 * continuation lines, backslash continuations), cut into logical lines and
 * simple statements, and every top-level assignment to an upper-case name is
 * recorded. The right-hand side is decoded only if it is a plain literal
 * (strings, numbers, True/False/None, and lists/tuples/dicts of those);
 * anything else (`get_secret("x")`, `LDAPSearch(...)`, `"https://" + HOST`,
 * f-strings, `%` formatting, comprehensions, ...) is recorded as "not a
 * literal" together with its source text, so a caller can refuse to guess.
 *
 * Besides plain assignments the reader notes everything else that could change
 * a name's final value, so that `untrustedReason` can explain why a value cannot
 * be read safely:
 *  - assignments inside indented blocks (`if`/`try`/`for`/`with`, and `global`
 *    names assigned inside functions): `conditional` / `conditionalNames`;
 *  - imports (`imports`; an import of an upper-case name counts as a
 *    non-literal assignment of that name; `from x import *` may define anything);
 *  - in-place changes such as `REALM_HOSTS["x"] = ...`, `ALLOWED_HOSTS.append(...)`:
 *    `mutations`;
 *  - `exec`, `globals()`, `setattr` and similar: `dynamic`.
 *
 * Unterminated strings and brackets raise `PySettingsParseError` with the line
 * number; any other malformed input is recorded as a non-literal value and never
 * crashes or hangs the reader.
 */

/** A decoded Python literal. Lists and tuples both become arrays. */
export type PyValue = string | number | boolean | null | PyValue[] | { [key: string]: PyValue };

/** How a name got its (last) binding. */
export type PyAssignmentKind =
  | "assign" // NAME = value
  | "annotated" // NAME: type = value
  | "augmented" // NAME += value (and the other augmented operators)
  | "unpack" // A, B = ...
  | "walrus" // (NAME := value)
  | "import" // import NAME / from x import NAME
  | "del" // del NAME
  | "typealias"; // type NAME = ...

export type PyAssignment =
  | {
      ok: true;
      value: PyValue;
      /** 1-based line of the assigned name. */
      line: number;
      /** The expression text as written in the file. */
      source: string;
      kind: PyAssignmentKind;
    }
  | {
      ok: false;
      line: number;
      /** The expression text (for `+=`, imports and `del`: the whole statement). */
      source: string;
      /** Short human explanation, e.g. "a function call". */
      reason: string;
      kind: PyAssignmentKind;
    };

export interface PyImport {
  line: number;
  /** The whole import statement as written. */
  source: string;
  /** Imported module (for `from . import x`: "."; for `import a, b`: "a, b"). */
  module: string;
  /** Names the statement binds in the module namespace. */
  names: string[];
  /** `from module import *`. */
  star: boolean;
  /** True if the import sits inside an indented block. */
  conditional: boolean;
}

export interface PyConditional {
  name: string;
  line: number;
  /**
   * True when the assignment happens inside a function (declared `global`):
   * it may run at any later point, so no top-level assignment can override it.
   */
  always?: boolean;
}

export interface PyStatementRef {
  line: number;
  source: string;
  /** For `dynamic`: the code may run later than its line (it sits in a function). */
  always?: boolean;
}

export interface PyMutation extends PyStatementRef {
  name: string;
}

export interface PyAssignments {
  /** Each top-level NAME (`[A-Z][A-Z0-9_]*`) mapped to its LAST top-level binding. */
  assignments: Record<string, PyAssignment>;
  /** Every import statement, top-level or not, in file order. */
  imports: PyImport[];
  /** Upper-case names assigned inside indented blocks (unique, first-seen order). */
  conditionalNames: string[];
  /** Every conditional assignment with its line. */
  conditional: PyConditional[];
  /** In-place modifications of upper-case names (subscript/attribute assignment, method calls). */
  mutations: PyMutation[];
  /** Statements that could define arbitrary names (exec, globals(), setattr, star imports, ...). */
  dynamic: PyStatementRef[];
  /** Other top-level statements (expression statements, decorators, asserts, ...). */
  otherStatements: PyStatementRef[];
}

export class PySettingsParseError extends Error {
  readonly exitCode = 3;
  readonly errorCode = "config_invalid" as const;
  readonly line: number;
  /** The bare problem, without file and line. */
  readonly problem: string;
  readonly path?: string;
  constructor(problem: string, line: number, path?: string) {
    super(
      path === undefined
        ? `line ${line}: ${problem}`
        : `Cannot read ${path}: Python syntax error at line ${line}: ${problem}. Zulip itself cannot load this file either; fix it first.`,
    );
    this.name = "PySettingsParseError";
    this.line = line;
    this.problem = problem;
    if (path !== undefined) this.path = path;
  }
}

const SETTING_NAME_RE = /^[A-Z][A-Z0-9_]*$/;

// ---------------------------------------------------------------------------
// Tokenizer
// ---------------------------------------------------------------------------

type TokType = "name" | "number" | "string" | "op";

interface Tok {
  type: TokType;
  /** Raw source text of the token. */
  text: string;
  start: number;
  end: number;
  /** String tokens only: lower-cased prefix (r, b, f, rb, ...), quote and body. */
  prefix?: string;
  quote?: string;
  body?: string;
}

interface LogicalLine {
  toks: Tok[];
  /** Visual indentation column of the first token (tabs to multiples of 8). */
  indent: number;
}

const MAX_NESTING = 200; // CPython's tokenizer limit on nested brackets

const STRING_PREFIXES = new Set(["r", "u", "b", "br", "rb", "f", "fr", "rf", "t", "tr", "rt"]);

const OPS3 = ["**=", "//=", ">>=", "<<=", "..."];
const OPS2 = ["->", ":=", "==", "!=", "<=", ">=", "**", "//", "<<", ">>", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "@="];
const AUG_OPS = new Set(["+=", "-=", "*=", "/=", "//=", "%=", "@=", "&=", "|=", "^=", ">>=", "<<=", "**="]);
const OPEN = "([{";
const CLOSE = ")]}";

// Python identifiers may use any Unicode letter, but settings files are ASCII in practice. The
// Unicode-property regexes cost milliseconds to compile, so they are built only when a non-ASCII
// character actually shows up (start-up time matters: every command reads settings.py).
const ASCII_NAME_START_RE = /[A-Za-z_]/;
const ASCII_NAME_RE = /[A-Za-z_][A-Za-z0-9_]*/y;
let unicodeNameStart: RegExp | undefined;
let unicodeName: RegExp | undefined;
const NAME_START_RE = {
  test(c: string): boolean {
    if (c.charCodeAt(0) < 128) return ASCII_NAME_START_RE.test(c);
    return (unicodeNameStart ??= /[\p{L}\p{Nl}_]/u).test(c);
  },
};
const NAME_RE = {
  lastIndex: 0,
  exec(src: string): RegExpExecArray | null {
    // Use the ASCII matcher unless the identifier continues with a non-ASCII character.
    ASCII_NAME_RE.lastIndex = this.lastIndex;
    const m = ASCII_NAME_RE.exec(src);
    const end = m ? this.lastIndex + m[0].length : this.lastIndex;
    if (m && (end >= src.length || src.charCodeAt(end) < 128)) return m;
    const re = (unicodeName ??= /[\p{L}\p{Nl}_][\p{L}\p{Nl}\p{Mn}\p{Mc}\p{Nd}\p{Pc}]*/uy);
    re.lastIndex = this.lastIndex;
    return re.exec(src);
  },
};
const NUMBER_RE =
  /(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|(?:(?:\d(?:_?\d)*)?\.\d(?:_?\d)*|\d(?:_?\d)*\.?)(?:[eE][+-]?\d(?:_?\d)*)?)[jJ]?/y;

const COMPOUND_KEYWORDS = new Set(["if", "elif", "else", "for", "while", "try", "except", "finally", "with", "def", "class", "async"]);
const KEYWORDS = new Set([
  "False",
  "None",
  "True",
  "and",
  "as",
  "assert",
  "async",
  "await",
  "break",
  "class",
  "continue",
  "def",
  "del",
  "elif",
  "else",
  "except",
  "finally",
  "for",
  "from",
  "global",
  "if",
  "import",
  "in",
  "is",
  "lambda",
  "nonlocal",
  "not",
  "or",
  "pass",
  "raise",
  "return",
  "try",
  "while",
  "with",
  "yield",
]);
/** Names whose use can define or change arbitrary module-level names. */
const DYNAMIC_NAMES = new Set([
  "exec",
  "eval",
  "execfile",
  "globals",
  "locals",
  "vars",
  "setattr",
  "delattr",
  "__import__",
  "importlib",
  "runpy",
  "__dict__",
  "__builtins__",
]);

class Tokenizer {
  private pos = 0;
  private readonly lineStarts: number[] = [0];
  private readonly stack: { ch: string; pos: number }[] = [];
  private current: Tok[] = [];
  readonly lines: LogicalLine[] = [];

  constructor(private readonly src: string) {
    for (let i = 0; i < src.length; i++) if (src.charCodeAt(i) === 10) this.lineStarts.push(i + 1);
  }

  lineOf(pos: number): number {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  }

  private indentOf(pos: number): number {
    const start = this.lineStarts[this.lineOf(pos) - 1]!;
    let col = 0;
    for (let i = start; i < pos; i++) {
      const c = this.src[i];
      if (c === "\t") col = (Math.floor(col / 8) + 1) * 8;
      else if (c === "\f") col = 0;
      else col++;
    }
    return col;
  }

  private fail(message: string, pos: number): never {
    throw new PySettingsParseError(message, this.lineOf(pos));
  }

  private endLogicalLine(): void {
    if (this.current.length > 0) {
      this.lines.push({ toks: this.current, indent: this.indentOf(this.current[0]!.start) });
      this.current = [];
    }
  }

  run(): LogicalLine[] {
    const src = this.src;
    const n = src.length;
    while (this.pos < n) {
      const c = src[this.pos]!;
      if (c === " " || c === "\t" || c === "\f" || c === "\v") {
        this.pos++;
        continue;
      }
      if (c === "#") {
        while (this.pos < n && src[this.pos] !== "\n") this.pos++;
        continue;
      }
      if (c === "\n") {
        this.pos++;
        if (this.stack.length === 0) this.endLogicalLine();
        continue;
      }
      if (c === "\\" && src[this.pos + 1] === "\n") {
        this.pos += 2; // explicit line continuation
        continue;
      }
      const start = this.pos;
      if (NAME_START_RE.test(c)) {
        NAME_RE.lastIndex = start;
        const m = NAME_RE.exec(src)!;
        const word = m[0];
        const next = src[start + word.length];
        if ((next === '"' || next === "'") && STRING_PREFIXES.has(word.toLowerCase())) {
          this.current.push(this.readString(start, start + word.length, word.toLowerCase()));
        } else {
          this.pos = start + word.length;
          this.current.push({ type: "name", text: word, start, end: this.pos });
        }
        continue;
      }
      if ((c >= "0" && c <= "9") || (c === "." && /[0-9]/.test(src[start + 1] ?? ""))) {
        NUMBER_RE.lastIndex = start;
        const m = NUMBER_RE.exec(src)!;
        this.pos = start + m[0].length;
        this.current.push({ type: "number", text: m[0], start, end: this.pos });
        continue;
      }
      if (c === '"' || c === "'") {
        this.current.push(this.readString(start, start, ""));
        continue;
      }
      let op = OPS3.find((o) => src.startsWith(o, start));
      if (!op) op = OPS2.find((o) => src.startsWith(o, start));
      if (!op) op = c;
      if (OPEN.includes(op)) {
        if (this.stack.length >= MAX_NESTING) this.fail("too many nested parentheses", start);
        this.stack.push({ ch: op, pos: start });
      } else if (CLOSE.includes(op)) {
        const open = this.stack.pop();
        if (!open) this.fail(`unmatched '${op}'`, start);
        if (OPEN.indexOf(open.ch) !== CLOSE.indexOf(op)) {
          this.fail(`closing parenthesis '${op}' does not match opening parenthesis '${open.ch}' on line ${this.lineOf(open.pos)}`, start);
        }
      }
      this.pos = start + op.length;
      this.current.push({ type: "op", text: op, start, end: this.pos });
    }
    if (this.stack.length > 0) {
      const open = this.stack[this.stack.length - 1]!;
      this.fail(`'${open.ch}' was never closed`, open.pos);
    }
    this.endLogicalLine();
    return this.lines;
  }

  /**
   * Read a string literal whose prefix starts at `start` and whose opening quote
   * is at `quotePos`. Handles triple quotes, backslash escapes (which also
   * protect quotes in raw strings) and, for f-/t-strings, replacement fields
   * that may contain nested strings.
   */
  private readString(start: number, quotePos: number, prefix: string): Tok {
    const end = this.scanString(quotePos, prefix.includes("f") || prefix.includes("t"));
    this.pos = end.end;
    return {
      type: "string",
      text: this.src.slice(start, end.end),
      start,
      end: end.end,
      prefix,
      quote: end.quote,
      body: this.src.slice(end.bodyStart, end.bodyEnd),
    };
  }

  private scanString(quotePos: number, formatted: boolean): { end: number; bodyStart: number; bodyEnd: number; quote: string } {
    const src = this.src;
    const q = src[quotePos]!;
    const triple = src.startsWith(q + q + q, quotePos);
    const quote = triple ? q + q + q : q;
    let i = quotePos + quote.length;
    const bodyStart = i;
    for (;;) {
      if (i >= src.length) {
        this.fail(triple ? "unterminated triple-quoted string literal" : "unterminated string literal", quotePos);
      }
      const c = src[i]!;
      if (c === "\\") {
        i += 2;
        continue;
      }
      if (c === "\n" && !triple) this.fail("unterminated string literal", quotePos);
      if (src.startsWith(quote, i)) return { end: i + quote.length, bodyStart, bodyEnd: i, quote };
      if (formatted && c === "{") {
        if (src[i + 1] === "{") {
          i += 2;
          continue;
        }
        i = this.scanReplacementField(i + 1, quotePos, triple);
        continue;
      }
      i++;
    }
  }

  /** Scan an f-string replacement field starting just after `{`; returns the index after its `}`. */
  private scanReplacementField(i: number, stringPos: number, triple: boolean, depthGuard = 0): number {
    const src = this.src;
    if (depthGuard > MAX_NESTING) this.fail("too deeply nested f-string", stringPos);
    let depth = 0;
    let inSpec = false;
    while (i < src.length) {
      const c = src[i]!;
      if (inSpec) {
        if (c === "{") {
          i = this.scanReplacementField(i + 1, stringPos, triple, depthGuard + 1);
          continue;
        }
        if (c === "}") return i + 1;
        if (c === "\\") {
          i += 2;
          continue;
        }
        if (c === "\n" && !triple) this.fail("unterminated string literal", stringPos);
        i++;
        continue;
      }
      if (c === '"' || c === "'") {
        i = this.scanString(i, false).end;
        continue;
      }
      if (NAME_START_RE.test(c)) {
        NAME_RE.lastIndex = i;
        const word = NAME_RE.exec(src)![0];
        const next = src[i + word.length];
        if ((next === '"' || next === "'") && STRING_PREFIXES.has(word.toLowerCase())) {
          const lower = word.toLowerCase();
          i = this.scanString(i + word.length, lower.includes("f") || lower.includes("t")).end;
        } else {
          i += word.length;
        }
        continue;
      }
      if (OPEN.includes(c)) depth++;
      else if (c === ")" || c === "]") depth = Math.max(0, depth - 1);
      else if (c === "}") {
        if (depth === 0) return i + 1;
        depth--;
      } else if (c === ":" && depth === 0 && src[i + 1] !== "=") {
        inSpec = true;
      } else if (c === "\\") {
        i += 2;
        continue;
      }
      i++;
    }
    this.fail("unterminated string literal", stringPos);
  }
}

// ---------------------------------------------------------------------------
// Literal decoding
// ---------------------------------------------------------------------------

type LitResult = { ok: true; value: PyValue; next: number } | { ok: false; reason: string };

class NotLiteral {
  constructor(readonly reason: string) {}
}

function decodeStringBody(body: string, raw: boolean): string {
  if (raw) return body;
  let out = "";
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== "\\") {
      out += c;
      continue;
    }
    const e = body[i + 1];
    if (e === undefined) {
      out += "\\";
      break;
    }
    i++;
    switch (e) {
      case "\n":
        break; // backslash-newline: line continuation inside the string
      case "\\":
        out += "\\";
        break;
      case "'":
        out += "'";
        break;
      case '"':
        out += '"';
        break;
      case "a":
        out += "\x07";
        break;
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
      case "x":
      case "u":
      case "U": {
        const len = e === "x" ? 2 : e === "u" ? 4 : 8;
        const hex = body.slice(i + 1, i + 1 + len);
        if (hex.length !== len || !/^[0-9a-fA-F]+$/.test(hex)) {
          throw new NotLiteral(`an invalid \\${e} escape`);
        }
        const code = parseInt(hex, 16);
        if (code > 0x10ffff) throw new NotLiteral(`an invalid \\${e} escape`);
        out += String.fromCodePoint(code);
        i += len;
        break;
      }
      case "N":
        throw new NotLiteral("a \\N{...} escape");
      default:
        if (e >= "0" && e <= "7") {
          let oct = e;
          while (oct.length < 3 && /[0-7]/.test(body[i + 1] ?? "")) oct += body[++i];
          out += String.fromCodePoint(parseInt(oct, 8));
        } else {
          out += "\\" + e; // unknown escapes keep the backslash
        }
    }
  }
  return out;
}

function decodeNumber(text: string): number {
  const t = text.replace(/_/g, "");
  if (/[jJ]$/.test(t)) throw new NotLiteral("a complex number");
  if (/^0[xXoObB]/.test(t)) return Number(BigInt(t));
  if (/^[0-9]+$/.test(t)) {
    if (/^0+[1-9]/.test(t)) throw new NotLiteral("an invalid number (leading zeros)");
    return Number(BigInt(t));
  }
  return Number(t);
}

class LiteralParser {
  private i = 0;
  constructor(private readonly toks: Tok[]) {}

  /** Parse the whole token list as one literal (a bare `a, b` is a tuple). */
  parseAll(): LitResult {
    try {
      if (this.toks.length === 0) return { ok: false, reason: "a syntax error (no value)" };
      const value = this.exprList(null);
      if (this.i < this.toks.length) return { ok: false, reason: this.describeRest() };
      return { ok: true, value, next: this.i };
    } catch (e) {
      if (!(e instanceof NotLiteral)) throw e;
      // A comprehension fails at its first element; name it for what it is.
      if (this.toks.some((t) => t.type === "name" && t.text === "for")) return { ok: false, reason: "a comprehension" };
      return { ok: false, reason: e.reason };
    }
  }

  private describeRest(): string {
    const t = this.toks[this.i]!;
    if (t.type === "op" && t.text === "(") return "a function call";
    if (t.type === "op" && (t.text === "." || t.text === "[")) return "an attribute or subscript expression";
    if (t.type === "name" && (t.text === "for" || t.text === "async")) return "a comprehension";
    if (t.type === "name" && t.text === "if") return "a conditional expression";
    if (t.type === "op" && t.text === "%") return "%-formatting";
    return "an expression with operators";
  }

  private peek(): Tok | undefined {
    return this.toks[this.i];
  }

  private isOp(text: string): boolean {
    const t = this.toks[this.i];
    return t !== undefined && t.type === "op" && t.text === text;
  }

  /** Comma-separated expressions; returns a tuple (array) if there is a comma. */
  private exprList(close: string | null): PyValue {
    const first = this.expr();
    if (!this.isOp(",")) return first;
    const items = [first];
    while (this.isOp(",")) {
      this.i++;
      const t = this.peek();
      if (t === undefined || (close !== null && t.type === "op" && t.text === close)) break;
      items.push(this.expr());
    }
    return items;
  }

  private expr(): PyValue {
    const t = this.peek();
    if (t === undefined) throw new NotLiteral("a syntax error (missing value)");
    if (t.type === "op" && (t.text === "-" || t.text === "+")) {
      let sign = 1;
      while (this.isOp("-") || this.isOp("+")) {
        if (this.peek()!.text === "-") sign = -sign;
        this.i++;
      }
      const num = this.peek();
      if (num === undefined || num.type !== "number") throw new NotLiteral("an expression with operators");
      this.i++;
      return sign * decodeNumber(num.text);
    }
    if (t.type === "number") {
      this.i++;
      return decodeNumber(t.text);
    }
    if (t.type === "string") return this.strings();
    if (t.type === "name") {
      this.i++;
      if (t.text === "True") return true;
      if (t.text === "False") return false;
      if (t.text === "None") return null;
      if (t.text === "lambda") throw new NotLiteral("a lambda");
      if (t.text === "not" || t.text === "await" || t.text === "yield") throw new NotLiteral("an expression with operators");
      if (this.isOp("(")) throw new NotLiteral("a function call");
      if (this.isOp(".") || this.isOp("[")) throw new NotLiteral("an attribute or subscript expression");
      throw new NotLiteral(`a reference to another name (${t.text})`);
    }
    if (t.type === "op") {
      if (t.text === "(") return this.paren();
      if (t.text === "[") return this.list();
      if (t.text === "{") return this.brace();
      if (t.text === "*" || t.text === "**") throw new NotLiteral("unpacking");
    }
    throw new NotLiteral("an expression with operators");
  }

  private strings(): string {
    let out = "";
    let sawBytes = false;
    let sawText = false;
    while (this.peek()?.type === "string") {
      const t = this.peek()!;
      const p = t.prefix ?? "";
      if (p.includes("f")) throw new NotLiteral("an f-string");
      if (p.includes("t")) throw new NotLiteral("a template string");
      if (p.includes("b")) sawBytes = true;
      else sawText = true;
      out += decodeStringBody(t.body ?? "", p.includes("r"));
      this.i++;
    }
    if (sawBytes) throw new NotLiteral(sawText ? "a mix of bytes and text literals" : "a bytes literal");
    return out;
  }

  private expectClose(close: string): void {
    if (!this.isOp(close)) {
      const t = this.peek();
      if (t && t.type === "name" && (t.text === "for" || t.text === "async")) throw new NotLiteral("a comprehension");
      if (t && t.type === "op" && t.text === ":=") throw new NotLiteral("an assignment expression");
      throw new NotLiteral("an expression with operators");
    }
    this.i++;
  }

  private paren(): PyValue {
    this.i++; // (
    if (this.isOp(")")) {
      this.i++;
      return [];
    }
    const first = this.expr();
    if (this.isOp(")")) {
      this.i++;
      return first; // parenthesized expression, not a tuple
    }
    if (!this.isOp(",")) this.expectClose(")");
    const items = [first];
    while (this.isOp(",")) {
      this.i++;
      if (this.isOp(")")) break;
      items.push(this.expr());
    }
    this.expectClose(")");
    return items;
  }

  private list(): PyValue[] {
    this.i++; // [
    const items: PyValue[] = [];
    while (!this.isOp("]")) {
      items.push(this.expr());
      if (this.isOp(",")) {
        this.i++;
        continue;
      }
      this.expectClose("]");
      return items;
    }
    this.i++;
    return items;
  }

  private brace(): { [key: string]: PyValue } {
    this.i++; // {
    const out: { [key: string]: PyValue } = {};
    if (this.isOp("}")) {
      this.i++;
      return out;
    }
    for (;;) {
      if (this.isOp("**")) throw new NotLiteral("dict unpacking");
      const key = this.expr();
      if (!this.isOp(":")) {
        if (this.isOp(",") || this.isOp("}")) throw new NotLiteral("a set");
        this.expectClose("}");
      }
      this.i++; // :
      if (typeof key !== "string" && typeof key !== "number") {
        throw new NotLiteral("a dict with keys that are not strings or numbers");
      }
      const value = this.expr();
      Object.defineProperty(out, String(key), { value, enumerable: true, writable: true, configurable: true });
      if (this.isOp(",")) {
        this.i++;
        if (this.isOp("}")) break;
        continue;
      }
      this.expectClose("}");
      return out;
    }
    this.i++;
    return out;
  }
}

// ---------------------------------------------------------------------------
// Statements
// ---------------------------------------------------------------------------

function depthMap(toks: Tok[]): number[] {
  const depths: number[] = [];
  let d = 0;
  for (const t of toks) {
    if (t.type === "op" && CLOSE.includes(t.text)) d--;
    depths.push(d);
    if (t.type === "op" && OPEN.includes(t.text)) d++;
  }
  return depths;
}

function splitTopLevel(toks: Tok[], sep: string): Tok[][] {
  const depths = depthMap(toks);
  const parts: Tok[][] = [[]];
  toks.forEach((t, k) => {
    if (depths[k] === 0 && t.type === "op" && t.text === sep) parts.push([]);
    else parts[parts.length - 1]!.push(t);
  });
  return parts;
}

const TARGET_BLOCKERS = new Set(["lambda", "if", "else", "for", "in", "not", "and", "or", "is", "await", "yield"]);

/** Does this token list look like an assignment target (NAME, a.b, a[b], (a, *b), ...)? */
function isTargetLike(toks: Tok[]): boolean {
  if (toks.length === 0) return false;
  const first = toks[0]!;
  if (!(first.type === "name" || (first.type === "op" && ["(", "[", "*"].includes(first.text)))) return false;
  if (first.type === "name" && KEYWORDS.has(first.text)) return false;
  let subscriptDepth = 0;
  for (let k = 0; k < toks.length; k++) {
    const t = toks[k]!;
    const prev = toks[k - 1];
    const trailer = prev !== undefined && (prev.type === "name" || (prev.type === "op" && (prev.text === ")" || prev.text === "]")));
    if (t.type === "op" && (t.text === "[" || t.text === "(")) {
      // Grouping brackets ("(a, b) = ...") need no tracking: only subscripts hide their contents.
      if (subscriptDepth > 0 || trailer) subscriptDepth++;
      continue;
    }
    if (t.type === "op" && (t.text === "]" || t.text === ")")) {
      if (subscriptDepth > 0) subscriptDepth--;
      continue;
    }
    if (subscriptDepth > 0) continue;
    if (t.type === "name" && TARGET_BLOCKERS.has(t.text)) return false;
    if (t.type === "string" || t.type === "number") return false;
    if (t.type === "op" && ![",", "*", "."].includes(t.text)) return false;
  }
  return true;
}

interface TargetInfo {
  /** Names bound directly (plain NAME targets, possibly inside tuples). */
  bound: { name: string; tok: Tok }[];
  /** Base names modified through attribute/subscript targets. */
  mutated: { name: string; tok: Tok }[];
  simple: boolean;
}

function analyzeTarget(toks: Tok[]): TargetInfo {
  const info: TargetInfo = { bound: [], mutated: [], simple: toks.length === 1 && toks[0]!.type === "name" };
  // Brackets are either grouping ("(a, b) = ...") or trailers (subscripts and
  // calls: "a[0] = ..."); names inside trailers are not assignment targets.
  const stack: ("group" | "trailer")[] = [];
  for (let k = 0; k < toks.length; k++) {
    const t = toks[k]!;
    const prev = toks[k - 1];
    if (t.type === "op" && (t.text === "(" || t.text === "[" || t.text === "{")) {
      const afterOperand = prev !== undefined && (prev.type === "name" || (prev.type === "op" && (prev.text === ")" || prev.text === "]")));
      stack.push(afterOperand ? "trailer" : "group");
      continue;
    }
    if (t.type === "op" && (t.text === ")" || t.text === "]" || t.text === "}")) {
      stack.pop();
      continue;
    }
    if (stack.includes("trailer") || t.type !== "name") continue;
    if (prev && prev.type === "op" && prev.text === ".") continue; // attribute name
    const next = toks[k + 1];
    if (next && next.type === "op" && (next.text === "." || next.text === "[" || next.text === "(")) {
      info.mutated.push({ name: t.text, tok: t });
    } else {
      info.bound.push({ name: t.text, tok: t });
    }
  }
  return info;
}

function parseImportNames(toks: Tok[]): { names: string[]; star: boolean } {
  // toks: the part after `import` (for `from`) or after `import` (plain)
  const names: string[] = [];
  let star = false;
  for (const part of splitTopLevel(
    toks.filter((t) => !(t.type === "op" && (t.text === "(" || t.text === ")"))),
    ",",
  )) {
    if (part.length === 0) continue;
    if (part.length === 1 && part[0]!.type === "op" && part[0]!.text === "*") {
      star = true;
      continue;
    }
    const asIdx = part.findIndex((t) => t.type === "name" && t.text === "as");
    if (asIdx >= 0 && part[asIdx + 1]) names.push(part[asIdx + 1]!.text);
    else if (part[0]!.type === "name") names.push(part[0]!.text);
  }
  return { names, star };
}

interface Scope {
  indent: number;
  /** "function" for def/class bodies (their names are not module names), else "block". */
  kind: "function" | "class" | "block";
}

class StatementProcessor {
  readonly result: PyAssignments = {
    assignments: {},
    imports: [],
    conditionalNames: [],
    conditional: [],
    mutations: [],
    dynamic: [],
    otherStatements: [],
  };
  private readonly seenConditional = new Set<string>();

  constructor(
    private readonly src: string,
    private readonly lineOf: (pos: number) => number,
  ) {}

  private text(toks: Tok[]): string {
    if (toks.length === 0) return "";
    return this.src.slice(toks[0]!.start, toks[toks.length - 1]!.end);
  }

  private line(tok: Tok): number {
    return this.lineOf(tok.start);
  }

  private setAssignment(name: string, a: PyAssignment): void {
    if (!SETTING_NAME_RE.test(name)) return;
    this.result.assignments[name] = a;
  }

  private addConditional(name: string, line: number, always = false): void {
    if (!SETTING_NAME_RE.test(name)) return;
    this.result.conditional.push(always ? { name, line, always } : { name, line });
    if (!this.seenConditional.has(name)) {
      this.seenConditional.add(name);
      this.result.conditionalNames.push(name);
    }
  }

  private addMutation(name: string, toks: Tok[], tok: Tok, always = false): void {
    if (!SETTING_NAME_RE.test(name)) return;
    const m: PyMutation = { name, line: this.line(tok), source: this.text(toks) };
    if (always) m.always = true;
    this.result.mutations.push(m);
  }

  private noteDynamic(toks: Tok[], always: boolean): void {
    const hit = toks.find((t) => t.type === "name" && DYNAMIC_NAMES.has(t.text));
    if (hit) {
      const ref: PyStatementRef = { line: this.line(hit), source: this.text(toks) };
      if (always) ref.always = true;
      this.result.dynamic.push(ref);
    }
  }

  private scopes: Scope[] = [];

  process(lines: LogicalLine[]): PyAssignments {
    for (const ll of lines) {
      let context: Context;
      if (ll.indent === 0) {
        this.scopes = [];
        context = "top";
      } else {
        while (this.scopes.length > 0 && this.scopes[this.scopes.length - 1]!.indent >= ll.indent) this.scopes.pop();
        context = this.scopes.some((sc) => sc.kind === "function") ? "function" : this.scopes.some((sc) => sc.kind === "class") ? "class" : "block";
      }
      this.logicalLine(ll, context);
    }
    return this.result;
  }

  private logicalLine(ll: LogicalLine, context: Context): void {
    const toks = ll.toks;
    const first = toks[0]!;
    this.noteDynamic(toks, context === "function");
    if (first.type === "op" && first.text === "@") {
      if (context === "top") this.result.otherStatements.push({ line: this.line(first), source: this.text(toks) });
      return;
    }
    const header = this.compoundHeader(toks);
    if (header) {
      const kind: Scope["kind"] = header.keyword === "def" ? "function" : header.keyword === "class" ? "class" : "block";
      // Names bound by the header itself: for-targets, `with ... as x`, `except E as x`.
      if (context !== "function" && context !== "class" && kind === "block") {
        this.headerBindings(header.keyword, header.head);
      }
      const bodyContext: Context = context === "function" || kind === "function" ? "function" : context === "class" || kind === "class" ? "class" : "block";
      if (header.body.length > 0) {
        for (const stmt of splitTopLevel(header.body, ";")) if (stmt.length > 0) this.simpleStatement(stmt, bodyContext);
      } else {
        this.scopes.push({ indent: ll.indent, kind });
      }
      return;
    }
    for (const stmt of splitTopLevel(toks, ";")) if (stmt.length > 0) this.simpleStatement(stmt, context);
  }

  private compoundHeader(toks: Tok[]): { keyword: string; head: Tok[]; body: Tok[] } | null {
    const first = toks[0]!;
    if (first.type !== "name") return null;
    let keyword = first.text;
    let offset = 0;
    if (keyword === "async" && toks[1]?.type === "name") {
      keyword = toks[1].text;
      offset = 1;
    }
    const softKeyword = keyword === "match" || keyword === "case";
    if (!COMPOUND_KEYWORDS.has(keyword) && !softKeyword) return null;
    const depths = depthMap(toks);
    const colon = toks.findIndex((t, k) => k > offset && depths[k] === 0 && t.type === "op" && t.text === ":");
    if (colon < 0) return null;
    if (softKeyword) {
      // `match = 1` and `match: int = 1` are ordinary statements; a match/case header ends with ':'.
      if (colon !== toks.length - 1) return null;
      const second = toks[1];
      if (!second || (second.type === "op" && ["=", ".", ":"].includes(second.text))) return null;
    }
    return { keyword, head: toks.slice(offset + 1, colon), body: toks.slice(colon + 1) };
  }

  private headerBindings(keyword: string, head: Tok[]): void {
    if (keyword === "for") {
      const inIdx = head.findIndex((t) => t.type === "name" && t.text === "in");
      const target = head.slice(0, inIdx < 0 ? head.length : inIdx);
      const info = analyzeTarget(target);
      for (const b of info.bound) this.addConditional(b.name, this.line(b.tok));
      for (const m of info.mutated) this.addMutation(m.name, head, m.tok);
    } else if (keyword === "with" || keyword === "except") {
      head.forEach((t, k) => {
        if (t.type === "name" && t.text === "as") {
          const n = head[k + 1];
          if (n && n.type === "name") this.addConditional(n.text, this.line(n));
        }
      });
    }
    // Walrus in a condition: `if (X := ...):`
    this.walrus(head, "block");
  }

  private walrus(toks: Tok[], context: Context): void {
    toks.forEach((t, k) => {
      if (t.type === "op" && t.text === ":=") {
        const n = toks[k - 1];
        if (n && n.type === "name") {
          if (context === "top") {
            this.setAssignment(n.text, {
              ok: false,
              line: this.line(n),
              source: this.text(toks),
              reason: "an assignment expression",
              kind: "walrus",
            });
          } else if (context === "block") {
            this.addConditional(n.text, this.line(n));
          }
        }
      }
    });
  }

  private simpleStatement(stmt: Tok[], context: Context): void {
    const first = stmt[0]!;
    if (context === "class") return; // class attributes are not module names
    if (context === "function") {
      // Only `global` declarations can make a function assign module names; since
      // the function may run at any time, such names are never trustworthy.
      if (first.type === "name" && first.text === "global") {
        for (const t of stmt.slice(1)) if (t.type === "name") this.addConditional(t.text, this.line(t), true);
      }
      return;
    }
    const top = context === "top";
    const line = this.line(first);

    if (first.type === "name" && (first.text === "import" || first.text === "from")) {
      this.importStatement(stmt, top);
      return;
    }
    if (first.type === "name" && first.text === "del") {
      for (const part of splitTopLevel(stmt.slice(1), ",")) {
        const info = analyzeTarget(part);
        for (const b of info.bound) {
          if (top) {
            this.setAssignment(b.name, { ok: false, line: this.line(b.tok), source: this.text(stmt), reason: "deleted with del", kind: "del" });
          } else {
            this.addConditional(b.name, this.line(b.tok));
          }
        }
        for (const m of info.mutated) this.addMutation(m.name, stmt, m.tok);
      }
      return;
    }
    if (
      first.type === "name" &&
      first.text === "type" &&
      stmt[1]?.type === "name" &&
      stmt[2]?.type === "op" &&
      (stmt[2].text === "=" || stmt[2].text === "[")
    ) {
      const n = stmt[1];
      if (top) this.setAssignment(n.text, { ok: false, line: this.line(n), source: this.text(stmt), reason: "a type alias", kind: "typealias" });
      else this.addConditional(n.text, this.line(n));
      return;
    }

    this.walrus(stmt, context);

    const depths = depthMap(stmt);
    const augIdx = stmt.findIndex((t, k) => depths[k] === 0 && t.type === "op" && AUG_OPS.has(t.text));
    const eqIdx = stmt.findIndex((t, k) => depths[k] === 0 && t.type === "op" && t.text === "=");
    if (augIdx >= 0 && (eqIdx < 0 || augIdx < eqIdx)) {
      const target = stmt.slice(0, augIdx);
      if (isTargetLike(target)) {
        const info = analyzeTarget(target);
        if (info.simple) {
          const n = info.bound[0]!;
          if (top) {
            this.setAssignment(n.name, {
              ok: false,
              line: this.line(n.tok),
              source: this.text(stmt),
              reason: `an augmented assignment (${stmt[augIdx]!.text})`,
              kind: "augmented",
            });
          } else {
            this.addConditional(n.name, this.line(n.tok));
          }
        } else {
          for (const m of info.mutated) this.addMutation(m.name, stmt, m.tok);
        }
        return;
      }
    }
    if (eqIdx >= 0) {
      const parts = splitTopLevel(stmt, "=");
      const targets: { toks: Tok[]; annotated: boolean }[] = [];
      let k = 0;
      for (; k < parts.length - 1; k++) {
        let part = parts[k]!;
        let annotated = false;
        if (k === 0) {
          const pd = depthMap(part);
          const colon = part.findIndex((t, j) => pd[j] === 0 && t.type === "op" && t.text === ":");
          if (colon >= 0) {
            part = part.slice(0, colon);
            annotated = true;
          }
        }
        if (!isTargetLike(part)) break;
        targets.push({ toks: part, annotated });
      }
      if (targets.length > 0) {
        const eqPositions = stmt.flatMap((t, j) => (depths[j] === 0 && t.type === "op" && t.text === "=" ? [j] : []));
        const valueToks = stmt.slice(eqPositions[targets.length - 1]! + 1);
        this.assignment(stmt, targets, valueToks, context);
        return;
      }
    }
    // An expression statement: note method calls on upper-case names (ALLOWED_HOSTS.append(...)).
    const second = stmt[1];
    if (first.type === "name" && second && second.type === "op" && (second.text === "." || second.text === "[")) {
      this.addMutation(first.text, stmt, first);
    }
    if (top) {
      const hasAnnotationOnly = first.type === "name" && second?.type === "op" && second.text === ":" && eqIdx < 0;
      if (!hasAnnotationOnly) this.result.otherStatements.push({ line, source: this.text(stmt) });
    }
  }

  private assignment(stmt: Tok[], targets: { toks: Tok[]; annotated: boolean }[], valueToks: Tok[], context: Context): void {
    const top = context === "top";
    let lit: LitResult | null = null;
    const source = this.text(valueToks);
    for (const target of targets) {
      const info = analyzeTarget(target.toks);
      for (const m of info.mutated) this.addMutation(m.name, stmt, m.tok);
      if (!top) {
        for (const b of info.bound) this.addConditional(b.name, this.line(b.tok));
        continue;
      }
      if (info.simple) {
        const n = info.bound[0]!;
        if (!SETTING_NAME_RE.test(n.name)) continue;
        lit ??= new LiteralParser(valueToks).parseAll();
        const kind: PyAssignmentKind = target.annotated ? "annotated" : "assign";
        this.setAssignment(
          n.name,
          lit.ok
            ? { ok: true, value: lit.value, line: this.line(n.tok), source, kind }
            : { ok: false, line: this.line(n.tok), source, reason: lit.reason, kind },
        );
      } else {
        for (const b of info.bound) {
          this.setAssignment(b.name, {
            ok: false,
            line: this.line(b.tok),
            source: this.text(stmt),
            reason: "tuple unpacking",
            kind: "unpack",
          });
        }
      }
    }
  }

  private importStatement(stmt: Tok[], top: boolean): void {
    const first = stmt[0]!;
    const line = this.line(first);
    const source = this.text(stmt);
    let module: string;
    let names: string[];
    let star = false;
    if (first.text === "import") {
      const modules: string[] = [];
      names = [];
      for (const p of splitTopLevel(stmt.slice(1), ",")) {
        if (p.length === 0) continue;
        const asIdx = p.findIndex((t) => t.type === "name" && t.text === "as");
        modules.push(this.text(asIdx >= 0 ? p.slice(0, asIdx) : p).replace(/\s+/g, ""));
        if (asIdx >= 0 && p[asIdx + 1]) names.push(p[asIdx + 1]!.text);
        else if (p[0]!.type === "name") names.push(p[0]!.text); // `import a.b` binds `a`
      }
      module = modules.join(", ");
    } else {
      const importIdx = stmt.findIndex((t) => t.type === "name" && t.text === "import");
      module = this.text(stmt.slice(1, importIdx < 0 ? stmt.length : importIdx)).replace(/\s+/g, "");
      const parsed = parseImportNames(importIdx < 0 ? [] : stmt.slice(importIdx + 1));
      names = parsed.names;
      star = parsed.star;
    }
    this.result.imports.push({ line, source, module, names, star, conditional: !top });
    for (const name of names) {
      if (top) {
        this.setAssignment(name, { ok: false, line, source, reason: "imported from another module", kind: "import" });
      } else {
        this.addConditional(name, line);
      }
    }
  }
}

type Context = "top" | "block" | "function" | "class";

/**
 * Parse a Python settings file. Throws `PySettingsParseError` for unterminated
 * strings or brackets; never evaluates anything.
 */
export function parsePySettings(text: string, opts: { path?: string } = {}): PyAssignments {
  // Python reads source files with universal newlines; a UTF-8 BOM is allowed.
  const src = text.replace(/^\uFEFF/, "").replace(/\r\n?/g, "\n");
  const tokenizer = new Tokenizer(src);
  let lines: LogicalLine[];
  try {
    lines = tokenizer.run();
  } catch (e) {
    if (e instanceof PySettingsParseError && opts.path !== undefined) {
      throw new PySettingsParseError(e.problem, e.line, opts.path);
    }
    throw e;
  }
  return new StatementProcessor(src, (pos) => tokenizer.lineOf(pos)).process(lines);
}

/** Why a name's final value cannot be read from the file without running it. */
export interface UntrustedReason {
  kind: "not-literal" | "conditional" | "mutated" | "star-import" | "dynamic";
  line: number;
  source: string;
  /** For "not-literal": the parser's explanation (e.g. "a function call"). */
  detail?: string;
}

/**
 * Decide whether the value a Python run would end up with for `name` can be
 * known from the literal assignments alone. Returns null if it can (the name's
 * last top-level assignment is a literal, or the name is not touched at all),
 * else the first reason it cannot.
 */
export function untrustedReason(parsed: PyAssignments, name: string): UntrustedReason | null {
  const last = parsed.assignments[name];
  if (last && !last.ok) {
    return { kind: "not-literal", line: last.line, source: last.source, detail: last.reason };
  }
  const after = last?.line ?? 0;
  const cond = parsed.conditional.find((c) => c.name === name && (c.always || c.line > after));
  if (cond) return { kind: "conditional", line: cond.line, source: name };
  const mut = parsed.mutations.find((m) => m.name === name && (m.always || m.line > after));
  if (mut) return { kind: "mutated", line: mut.line, source: mut.source };
  const star = parsed.imports.find((i) => i.star && i.line > after);
  if (star) return { kind: "star-import", line: star.line, source: star.source };
  const dyn = parsed.dynamic.find((d) => d.always || d.line > after);
  if (dyn) return { kind: "dynamic", line: dyn.line, source: dyn.source };
  return null;
}
