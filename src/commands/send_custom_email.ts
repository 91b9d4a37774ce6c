// send_custom_email: email users a Markdown document with Zulip branding, as manage.py's
// send_custom_email does (zerver/management/commands/send_custom_email.py and
// zerver/lib/send_email.py: custom_email_sender, send_custom_email).
//
// Recipients: exactly one of --entire-server (active humans of active realms), --marketing (those
// with enable_marketing_emails, not long-term idle unless owner/admin, one email per address, with
// a one-click unsubscribe link), --all-sponsored-org-admins (admins/owners of realms on the
// sponsored plan, one email per address), --json-file (the users whose ids are the keys; each
// value extends that user's template context), -u/--users, -a/--all-users (with -r). Then
// --admins-only keeps administrators and owners; with TERMS_OF_SERVICE_VERSION set, users who never
// accepted the terms are left out. The Zulip-Cloud-only selectors (--remote-servers,
// --announce-release) are refused.
//
// The Markdown file may start with RFC 822 headers (`Subject:` and `From:` — the sender's name);
// --subject / --from-name give them on the command line instead, and giving one in both places
// (or in neither) is the same error as manage.py's. The email id is the first 32 hex digits of
// the SHA-256 of the file text.
//
// Zulip 12 and newer record one RealmAuditLog row (810 CUSTOM_EMAIL_SENT, modified_user = the
// recipient, extra_data {"email_id": <id>, "email_subject": <subject>}) per delivered email, and
// skip users who already have one for the same email id ("Excluded N users who already received
// this email"); with --marketing/--all-sponsored-org-admins an address counts as received when any
// account with that address got it. Older databases: no rows, no exclusion (as Zulip 10/11).
// Unlike Zulip, rows are written only for emails the SMTP server accepted, so running the command
// again retries exactly the failures. --marketing writes one confirmation_confirmation row (type 4,
// UNSUBSCRIBE) per recipient, as Zulip's one_click_unsubscribe_link does.
//
// Differences from manage.py (documented limitations):
//  - Markdown is rendered by a small built-in renderer covering what custom emails use
//    (headings, paragraphs, emphasis, inline code, links, images, lists, block quotes, fenced
//    code, tables, rules). Raw HTML in the Markdown is shown as text, not passed through, and
//    Zulip's help-center extensions ({!macro.md!}, tabs, admonitions) are not supported.
//  - Template interpolation supports {{ name }} and {{ name.attribute }} (e.g. {{ realm_name }},
//    {{ realm.string_id }}, keys from --json-file) and {# comments #}; Jinja statements
//    ({% if %}, filters) are refused with an error before anything is sent.
//  - Nothing is written into the Zulip deployment (manage.py writes generated templates there).
//  - The From header's name is used as written (Python's email parser would re-quote a name
//    with spaces).
//  - --dry-run prints the first email's Subject/From/To headers and its plain-text part.
//
// --json: src/schemas/send_custom_email.ts (README: --json output). `subject` is before per-user
// interpolation; a result's status is done, failed, not_attempted or would_do.
import { addRealmOption } from "../cli/options.js";
import { Option } from "commander";
import { AuditLogEventType, insertAuditLog } from "../zulip/audit.js";
import { defineUntypedCommand } from "../cli/command.js";
import { CONFIRMATION_TYPES, contentTypeId, generateKey } from "../zulip/confirmation.js";
import type { Db, Queryable } from "../db/db.js";
import { buildEmail, type Delivery, deliverEmails, emailConfigWarnings, type EmailSettings, emailSettings, formatAddress, noreplyAddress, type OutgoingEmail, requireOutgoingEmail, supportAddress, tokenizedNoreplyAddress } from "../services/email.js";
import { CommandError, UsageError } from "../lib/errors.js";
import { READ_LIMITS, readBounded, readOptionFile } from "../lib/files.js";
import { getRealm, getUsers } from "../zulip/lookup.js";
import { realmHost, realmUrl, type ZulipSettings } from "../config/settings.js";
import { emailBaseDefault, escapeHtml } from "../zulip/templates/html.js";
import { seriesAtLeast } from "../db/zulip-versions.js";
import { crypto } from "../lib/builtins.js";
import { outcome, type StatusJson } from "../cli/json-contract.js";
import { realmJson, userJson } from "../cli/json-objects.js";
import type { CustomEmailResult, SendCustomEmailBody } from "../schemas/send_custom_email.js";

const ROLE_OWNER = 100;
const ROLE_ADMINISTRATOR = 200;
/** Realm.PLAN_TYPE_STANDARD_FREE: organizations sponsored by Zulip. */
const PLAN_TYPE_STANDARD_FREE = 4;
/** UserProfile.TOS_VERSION_BEFORE_FIRST_LOGIN */
const TOS_VERSION_BEFORE_FIRST_LOGIN = "-1";
/** confirmation: UNSUBSCRIBE links are meant never to expire. */
const UNSUBSCRIBE_VALIDITY_DAYS = 1_000_000;
/** Zulip's release that added the 810 rows and the "already received" exclusion. */
const AUDITED_SINCE = "12.x";

const TARGETS = [
  ["entireServer", "--entire-server"],
  ["marketing", "--marketing"],
  ["remoteServers", "--remote-servers"],
  ["announceRelease", "--announce-release"],
  ["allSponsoredOrgAdmins", "--all-sponsored-org-admins"],
  ["jsonFile", "--json-file"],
  ["users", "-u/--users"],
  ["allUsers", "-a/--all-users"],
] as const;

// =============================================================================================
// The template file: RFC 822 headers (Python's email.parser, policy=default) and the body.

export interface EmailTemplateFile {
  /** The file text with newlines normalized as Python's text mode reads it. */
  text: string;
  /** First value of each header, by lower-cased name. */
  headers: Map<string, string>;
  /** The payload: everything after the headers and their blank separator line. */
  body: string;
  /** sha256(text)[0:32] */
  hash: string;
}

const HEADER_LINE = /^(From |[\x21-\x39\x3b-\x7e]*:|[\t ])/;

/** Parse the headers the way Python's email.parser does (including its quirks, see below). */
export function parseEmailTemplate(raw: string): EmailTemplateFile {
  // open() in text mode: universal newlines. The hash is of this text.
  const text = raw.replace(/\r\n?/g, "\n");
  const hash = crypto().createHash("sha256").update(text, "utf8").digest("hex").slice(0, 32);
  const lines = text.split(/(?<=\n)/);
  const headerLines: string[] = [];
  let i = 0;
  for (; i < lines.length; i++) {
    const line = lines[i];
    if (!HEADER_LINE.test(line)) {
      // A blank line ends the headers (and is consumed); any other line is the start of the
      // body (Python records a MissingHeaderBodySeparatorDefect and keeps the line).
      if (line === "\n") i++;
      break;
    }
    headerLines.push(line);
  }
  const body = lines.slice(i).join("");
  const headers = new Map<string, string>();
  let last: { name: string; value: string } | null = null;
  const flush = () => {
    if (last && !headers.has(last.name.toLowerCase())) {
      headers.set(last.name.toLowerCase(), last.value.replace(/\n/g, "").replace(/^[ \t]+/, "").trimEnd());
    }
  };
  headerLines.forEach((line, n) => {
    if (line[0] === " " || line[0] === "\t") {
      if (last) last.value += line; // a continuation line (its leading whitespace is kept)
      return; // else FirstHeaderLineIsContinuationDefect: ignored
    }
    if (line.startsWith("From ")) return; // the unix "From " envelope line (first line) or a misplaced one
    const colon = line.indexOf(":");
    if (colon <= 0) return; // InvalidHeaderDefect
    flush();
    last = { name: line.slice(0, colon), value: line.slice(colon + 1) };
    void n;
  });
  flush();
  return { text, headers, body, hash };
}

/** get_header(): exactly one of the option and the template header must be given. */
export function getHeader(option: string | undefined | null, header: string | undefined | null, name: string): string {
  if (option && header) throw new CommandError(`Argument '${name}' is ambiguously present in both options and email template.`);
  if (!option && !header) throw new CommandError(`Argument '${name}' is required in either options or email template.`);
  return String(option || header);
}

// =============================================================================================
// Template interpolation: {{ name }} / {{ name.attr }} and {# comments #}, like the Jinja2 Zulip
// renders custom emails with (autoescaped in HTML, not in the plain-text part).

type Part = { literal: string } | { path: string[] };

export interface CompiledTemplate {
  parts: Part[];
}

const EXPR = /\{\{-?\s*(.*?)\s*-?\}\}|\{#[\s\S]*?#\}|\{%-?\s*([\s\S]*?)\s*-?%\}/g;

export function compileTemplate(source: string, where: string): CompiledTemplate {
  const parts: Part[] = [];
  let last = 0;
  for (const m of source.matchAll(EXPR)) {
    if (m.index! > last) parts.push({ literal: source.slice(last, m.index) });
    last = m.index! + m[0].length;
    if (m[0].startsWith("{#")) continue;
    if (m[0].startsWith("{%")) {
      throw new CommandError(
        `${where}: Jinja statements like "{% ${m[2]} %}" are not supported by zulip-manage's send_custom_email; ` +
          `only {{ name }} / {{ name.attribute }} substitutions are. Use manage.py send_custom_email for this template.`,
      );
    }
    const expr = m[1];
    if (!/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/.test(expr)) {
      throw new CommandError(
        `${where}: the template expression "{{ ${expr} }}" is not supported by zulip-manage's send_custom_email; ` +
          `only {{ name }} / {{ name.attribute }} substitutions are (for example {{ realm_name }}, {{ realm_url }}).`,
      );
    }
    parts.push({ path: expr.split(".") });
  }
  if (last < source.length) parts.push({ literal: source.slice(last) });
  return { parts };
}

/** Python's str() of a template value (Jinja2 prints undefined values as ""). */
function pyStr(v: unknown): string {
  if (v === undefined || v === null) return v === null ? "None" : "";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "object") {
    if (typeof (v as any).toString === "function" && (v as any).toString !== Object.prototype.toString) return String(v);
    return JSON.stringify(v);
  }
  return String(v);
}

export function renderTemplate(t: CompiledTemplate, context: Record<string, unknown>, escape: boolean): string {
  let out = "";
  for (const p of t.parts) {
    if ("literal" in p) {
      out += p.literal;
      continue;
    }
    let v: unknown = context;
    for (const key of p.path) {
      if (v === null || v === undefined || typeof v !== "object") {
        v = undefined;
        break;
      }
      v = Object.hasOwn(v as object, key) ? (v as Record<string, unknown>)[key] : undefined;
    }
    const s = pyStr(v);
    out += escape ? escapeHtml(s) : s;
  }
  return out;
}

// =============================================================================================
// Markdown → HTML: a small, safe renderer for the Markdown custom emails use. Raw HTML is
// escaped; link targets other than http(s)/mailto/relative ones are dropped. Template
// expressions ({{ … }}, {# … #}, {% … %}) are protected so they survive rendering untouched.

const TOKEN = (n: number) => `\u0000T${n}\u0000`;
const TOKEN_RE = /\u0000T(\d+)\u0000/g;

function escapeText(s: string): string {
  // Like Python-Markdown: & < > escaped, existing character references kept.
  return s
    .replace(/&(?!#?[A-Za-z0-9]+;)/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;");
}

function escapeAttr(s: string): string {
  return escapeText(s).replace(/"/g, "&quot;");
}

class InlineRenderer {
  constructor(
    private readonly refs: Map<string, { url: string; title?: string }>,
    private readonly protectedParts: string[],
  ) {}

  private stash(html: string): string {
    this.protectedParts.push(html);
    return TOKEN(this.protectedParts.length - 1);
  }

  safeUrl(url: string): string | null {
    const u = url.trim().replace(/^<(.*)>$/, "$1");
    if (/^\u0000J\d+\u0000/.test(u)) return u; // starts with a template expression ({{ realm_url }}/…)
    const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(u);
    if (!scheme) return u; // relative, #anchor, //host
    return ["http", "https", "mailto", "ftp"].includes(scheme[1].toLowerCase()) ? u : null;
  }

  private link(text: string, url: string, title: string | undefined, image: boolean): string {
    const href = this.safeUrl(url);
    const t = title !== undefined ? ` title="${escapeAttr(title)}"` : "";
    if (image) {
      if (href === null) return this.stash(escapeText(text));
      return this.stash(`<img alt="${escapeAttr(text)}" src="${escapeAttr(href)}"${t} />`);
    }
    const inner = this.render(text);
    if (href === null) return this.stash(inner);
    return this.stash(`<a href="${escapeAttr(href)}"${t}>${inner}</a>`);
  }

  render(src: string): string {
    let s = src;
    // Code spans first: nothing inside them is Markdown.
    s = s.replace(/(`+)([\s\S]*?[^`])\1(?!`)/g, (_m, _ticks: string, code: string) => this.stash(`<code>${escapeText(code.trim())}</code>`));
    // Backslash escapes.
    s = s.replace(/\\([\\`*_{}[\]()#+\-.!<>|])/g, (_m, ch: string) => this.stash(escapeText(ch)));
    // Autolinks.
    s = s.replace(/<((?:https?|ftp):\/\/[^\s<>]+)>/gi, (_m, url: string) => this.stash(`<a href="${escapeAttr(url)}">${escapeText(url)}</a>`));
    s = s.replace(/<(?:mailto:)?([^\s<>@]+@[^\s<>@]+\.[^\s<>@]+)>/gi, (_m, addr: string) =>
      this.stash(`<a href="mailto:${escapeAttr(addr)}">${escapeText(addr)}</a>`),
    );
    // Images and links: inline, then reference style.
    const inlineLink = /(!?)\[((?:[^[\]]|\[[^[\]]*\])*)\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:"([^"]*)"|'([^']*)'))?\s*\)/g;
    s = s.replace(inlineLink, (_m, bang: string, text: string, url: string, t1?: string, t2?: string) => this.link(text, url, t1 ?? t2, bang === "!"));
    s = s.replace(/(!?)\[((?:[^[\]]|\[[^[\]]*\])*)\](?:\s?\[([^\]]*)\])?/g, (m, bang: string, text: string, ref?: string) => {
      const key = (ref && ref.trim() ? ref : text).trim().toLowerCase().replace(/\s+/g, " ");
      const def = this.refs.get(key);
      return def ? this.link(text, def.url, def.title, bang === "!") : m;
    });
    // Everything left is text: escape it, then emphasis and line breaks.
    s = escapeText(s);
    s = s.replace(/(\*\*\*|___)(?=\S)([\s\S]*?\S)\1/g, "<strong><em>$2</em></strong>");
    s = s.replace(/(\*\*|__)(?=\S)([\s\S]*?\S)\1/g, "<strong>$2</strong>");
    s = s.replace(/\*(?=[^\s*])([\s\S]*?[^\s*])\*/g, "<em>$1</em>");
    s = s.replace(/(^|[^\w])_(?=[^\s_])([\s\S]*?[^\s_])_(?!\w)/g, "$1<em>$2</em>");
    s = s.replace(/ {2,}\n/g, "<br />\n");
    return s;
  }
}

function isBlank(line: string): boolean {
  return /^\s*$/.test(line);
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*\{?\.?([\w+#-]*)\}?\s*$/;
const ATX = /^ {0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$/;
const HR = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const LIST_ITEM = /^( *)([*+-]|\d+[.)])(\s+)(.*)$/;
const TABLE_SEP = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

class BlockRenderer {
  constructor(private readonly inline: InlineRenderer) {}

  /** `inList`: inside a list item, where a nested list may follow a line of text directly. */
  render(lines: string[], inList = false): string {
    const out: string[] = [];
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      if (isBlank(line)) {
        i++;
        continue;
      }
      let m: RegExpExecArray | null;
      if ((m = FENCE.exec(line))) {
        const fence = m[1];
        const lang = m[2];
        const body: string[] = [];
        i++;
        while (i < lines.length && !new RegExp(`^ {0,3}${fence[0] === "`" ? "`" : "~"}{${fence.length},}\\s*$`).test(lines[i])) body.push(lines[i++]);
        i++; // the closing fence
        out.push(`<pre><code${lang ? ` class="language-${escapeAttr(lang)}"` : ""}>${escapeText(body.join("\n"))}\n</code></pre>`);
        continue;
      }
      if ((m = ATX.exec(line)) && !HR.test(line)) {
        const level = m[1].length;
        out.push(`<h${level}>${this.inline.render(m[2] ?? "")}</h${level}>`);
        i++;
        continue;
      }
      if (HR.test(line)) {
        out.push("<hr />");
        i++;
        continue;
      }
      if (/^ {0,3}>/.test(line)) {
        const inner: string[] = [];
        while (i < lines.length && !isBlank(lines[i])) {
          inner.push(lines[i].replace(/^ {0,3}> ?/, ""));
          i++;
        }
        out.push(`<blockquote>\n${this.render(inner)}\n</blockquote>`);
        continue;
      }
      if ((m = LIST_ITEM.exec(line)) && m[1].length <= 3) {
        i = this.list(lines, i, out);
        continue;
      }
      if (/^ {4}/.test(line)) {
        const code: string[] = [];
        while (i < lines.length && (/^ {4}/.test(lines[i]) || (isBlank(lines[i]) && i + 1 < lines.length && /^ {4}/.test(lines[i + 1])))) {
          code.push(lines[i].slice(4));
          i++;
        }
        out.push(`<pre><code>${escapeText(code.join("\n"))}\n</code></pre>`);
        continue;
      }
      if (line.includes("|") && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1]) && lines[i + 1].includes("-")) {
        i = this.table(lines, i, out);
        continue;
      }
      // A paragraph: up to a blank line or a block that may interrupt it.
      const para: string[] = [];
      while (i < lines.length && !isBlank(lines[i])) {
        const l = lines[i];
        if (para.length && (FENCE.test(l) || ATX.test(l) || /^ {0,3}>/.test(l) || (inList && LIST_ITEM.test(l)))) break;
        if (para.length && /^ {0,3}(=+|-+)\s*$/.test(l)) {
          // setext heading underline for the paragraph so far
          const level = l.trim()[0] === "=" ? 1 : 2;
          const text = para.pop()!;
          if (para.length) out.push(`<p>${this.inline.render(para.join("\n"))}</p>`);
          out.push(`<h${level}>${this.inline.render(text.trim())}</h${level}>`);
          para.length = 0;
          i++;
          break;
        }
        para.push(l.replace(/^ {1,3}/, ""));
        i++;
      }
      if (para.length) out.push(`<p>${this.inline.render(para.join("\n"))}</p>`);
    }
    return out.join("\n");
  }

  private list(lines: string[], start: number, out: string[]): number {
    const first = LIST_ITEM.exec(lines[start])!;
    const ordered = /\d/.test(first[2]);
    const indent = first[1].length;
    const sameList = (l: string) => {
      const m = LIST_ITEM.exec(l);
      return m !== null && m[1].length === indent && /\d/.test(m[2]) === ordered;
    };
    const items: string[][] = [];
    let i = start;
    let loose = false;
    while (i < lines.length && sameList(lines[i])) {
      const m = LIST_ITEM.exec(lines[i])!;
      const contentIndent = indent + m[2].length + Math.min(m[3].length, 4);
      const item = [m[4]];
      i++;
      let afterBlank = false;
      while (i < lines.length) {
        const l = lines[i];
        if (isBlank(l)) {
          // What follows the blank lines decides: more of this item, the next item, or the end.
          let j = i;
          while (j < lines.length && isBlank(lines[j])) j++;
          if (j < lines.length && sameList(lines[j])) {
            loose = true;
            i = j;
            break;
          }
          if (j < lines.length && /^\s*/.exec(lines[j])![0].length > indent) {
            afterBlank = true;
            loose = true;
            for (let k = i; k < j; k++) item.push("");
            i = j;
            continue;
          }
          i = j;
          items.push(item);
          return this.closeList(out, items, ordered, first[2], loose, i);
        }
        const lead = /^\s*/.exec(l)![0].length;
        const asItem = LIST_ITEM.exec(l);
        if (asItem && asItem[1].length <= indent) break;
        if (lead > indent) {
          item.push(l.slice(Math.min(lead, contentIndent)));
          i++;
          continue;
        }
        if (afterBlank) break;
        item.push(l.trim()); // lazy continuation of the item's paragraph
        i++;
      }
      items.push(item);
    }
    return this.closeList(out, items, ordered, first[2], loose, i);
  }

  private closeList(out: string[], items: string[][], ordered: boolean, marker: string, loose: boolean, next: number): number {
    const tag = ordered ? "ol" : "ul";
    const startNo = ordered ? Number.parseInt(marker, 10) : 1;
    out.push(`<${tag}${ordered && startNo !== 1 ? ` start="${startNo}"` : ""}>`);
    for (const item of items) {
      let html = this.render(item, true);
      if (!loose) html = html.replace(/^<p>([\s\S]*?)<\/p>/, "$1");
      out.push(`<li>${html}</li>`);
    }
    out.push(`</${tag}>`);
    return next;
  }

  private table(lines: string[], start: number, out: string[]): number {
    const cells = (l: string) =>
      l
        .trim()
        .replace(/^\|/, "")
        .replace(/\|$/, "")
        .split(/(?<!\\)\|/)
        .map((c) => c.trim());
    const head = cells(lines[start]);
    const aligns = cells(lines[start + 1]).map((c) => (c.startsWith(":") && c.endsWith(":") ? "center" : c.endsWith(":") ? "right" : c.startsWith(":") ? "left" : null));
    const attr = (k: number) => (aligns[k] ? ` style="text-align: ${aligns[k]};"` : "");
    const rows: string[] = ["<table>", "<thead>", "<tr>"];
    head.forEach((c, k) => rows.push(`<th${attr(k)}>${this.inline.render(c)}</th>`));
    rows.push("</tr>", "</thead>", "<tbody>");
    let i = start + 2;
    while (i < lines.length && !isBlank(lines[i]) && lines[i].includes("|")) {
      const r = cells(lines[i]);
      rows.push("<tr>");
      head.forEach((_c, k) => rows.push(`<td${attr(k)}>${this.inline.render(r[k] ?? "")}</td>`));
      rows.push("</tr>");
      i++;
    }
    rows.push("</tbody>", "</table>");
    out.push(rows.join("\n"));
    return i;
  }
}

/**
 * Render Markdown to HTML. Template expressions ({{ … }}, {# … #}, {% … %}) come out exactly as
 * written, wherever they are (text, link targets), so the result can be interpolated per user.
 */
export function renderMarkdown(markdown: string): string {
  const protectedParts: string[] = [];
  const templateTokens: string[] = [];
  let src = markdown.replace(/\r\n?/g, "\n").replace(/\t/g, "    ");
  src = src.replace(EXPR, (m) => {
    templateTokens.push(m);
    return `\u0000J${templateTokens.length - 1}\u0000`;
  });
  // Reference definitions: [id]: url "title"
  const refs = new Map<string, { url: string; title?: string }>();
  src = src.replace(/^ {0,3}\[([^\]]+)\]:\s*(\S+)(?:\s+(?:"([^"]*)"|'([^']*)'|\(([^)]*)\)))?\s*$/gm, (_m, id: string, url: string, t1?: string, t2?: string, t3?: string) => {
    refs.set(id.trim().toLowerCase().replace(/\s+/g, " "), { url: url.replace(/^<(.*)>$/, "$1"), title: t1 ?? t2 ?? t3 });
    return "";
  });
  const inline = new InlineRenderer(refs, protectedParts);
  let html = new BlockRenderer(inline).render(src.split("\n"));
  // Restore stashed HTML (repeatedly: stashes can contain stashes), then the template expressions.
  for (let n = 0; n < 10 && TOKEN_RE.test(html); n++) {
    TOKEN_RE.lastIndex = 0;
    html = html.replace(TOKEN_RE, (_m, k: string) => protectedParts[Number(k)]);
  }
  return html.replace(/\u0000J(\d+)\u0000/g, (_m, k: string) => templateTokens[Number(k)]);
}

// =============================================================================================
// Recipients

interface RecipientRow {
  id: number;
  email: string;
  delivery_email: string;
  full_name: string;
  realm_id: number;
  role: number;
  string_id: string;
  realm_name: string;
}

interface Selection {
  where: string;
  params: unknown[];
  distinctEmail: boolean;
  marketing: boolean;
  extraContext: Map<number, Record<string, unknown>> | null;
}

function activeHumans(alias = "u"): string {
  return `${alias}.is_active AND NOT ${alias}.is_bot AND NOT ${alias}.is_mirror_dummy AND NOT r.deactivated`;
}

async function selectTargets(db: Db, opts: Record<string, any>): Promise<Selection> {
  if (opts.entireServer) return { where: activeHumans(), params: [], distinctEmail: false, marketing: false, extraContext: null };
  if (opts.marketing) {
    return {
      where: `${activeHumans()} AND u.enable_marketing_emails AND (NOT u.long_term_idle OR u.role IN (${ROLE_OWNER}, ${ROLE_ADMINISTRATOR}))`,
      params: [],
      distinctEmail: true,
      marketing: true,
      extraContext: null,
    };
  }
  if (opts.allSponsoredOrgAdmins) {
    if (!(await db.hasColumn("zerver_realm", "plan_type"))) {
      throw new CommandError("This database has no zerver_realm.plan_type column, so there are no sponsored organizations to select.");
    }
    return {
      where: `${activeHumans()} AND u.role IN (${ROLE_ADMINISTRATOR}, ${ROLE_OWNER}) AND r.plan_type = ${PLAN_TYPE_STANDARD_FREE}`,
      params: [],
      distinctEmail: true,
      marketing: false,
      extraContext: null,
    };
  }
  if (opts.jsonFile !== undefined) {
    const text = readOptionFile(opts.jsonFile, READ_LIMITS.json, "--json-file");
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (e: any) {
      throw new CommandError(`Cannot read --json-file ${opts.jsonFile}: ${e?.message ?? e}`);
    }
    if (data === null || typeof data !== "object" || Array.isArray(data)) {
      throw new CommandError(`--json-file ${opts.jsonFile} must hold a JSON object mapping user ids to context dicts.`);
    }
    const extra = new Map<number, Record<string, unknown>>();
    for (const [key, value] of Object.entries(data as Record<string, unknown>)) {
      const id = /^\s*[+-]?\d+\s*$/.test(key) ? Number(key) : Number.NaN;
      if (!Number.isSafeInteger(id)) throw new CommandError(`--json-file ${opts.jsonFile}: key '${key}' is not a user id.`);
      extra.set(id, value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : {});
    }
    return { where: "u.id = ANY($1::int[])", params: [[...extra.keys()]], distinctEmail: false, marketing: false, extraContext: extra };
  }
  const realm = await getRealm(db, opts.realm);
  const users = await getUsers(db, { users: opts.users, allUsers: opts.allUsers }, realm, { isBot: false });
  return { where: "u.id = ANY($1::int[])", params: [users.map((u) => Number(u.id))], distinctEmail: false, marketing: false, extraContext: null };
}

async function loadRecipients(db: Db, sel: Selection, opts: Record<string, any>, tosRequired: boolean): Promise<RecipientRow[]> {
  const conds = [`(${sel.where})`];
  if (opts.adminsOnly) conds.push(`u.role IN (${ROLE_ADMINISTRATOR}, ${ROLE_OWNER})`);
  if (tosRequired) conds.push(`u.tos_version IS NOT NULL AND u.tos_version <> '${TOS_VERSION_BEFORE_FIRST_LOGIN}'`);
  const cols = `u.id, u.email, u.delivery_email, u.full_name, u.realm_id, u.role, r.string_id, r.name AS realm_name`;
  const sql = sel.distinctEmail
    ? `SELECT DISTINCT ON (lower(u.delivery_email)) ${cols} FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id
        WHERE ${conds.join(" AND ")} ORDER BY lower(u.delivery_email), u.id`
    : `SELECT ${cols} FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id WHERE ${conds.join(" AND ")} ORDER BY u.id`;
  const { rows } = await db.query(sql, sel.params);
  return rows.map((r) => ({ ...r, id: Number(r.id), realm_id: Number(r.realm_id), role: Number(r.role) }));
}

/** The users (or, per address, the addresses) that already have an 810 row for this email. */
async function alreadyReceived(db: Queryable, emailId: string, byEmail: boolean): Promise<(r: RecipientRow) => boolean> {
  if (byEmail) {
    const { rows } = await db.query(
      `SELECT DISTINCT lower(u.delivery_email) AS e FROM zerver_realmauditlog a JOIN zerver_userprofile u ON u.id = a.modified_user_id
        WHERE a.event_type = $1 AND a.extra_data ->> 'email_id' = $2`,
      [AuditLogEventType.CUSTOM_EMAIL_SENT, emailId],
    );
    const emails = new Set(rows.map((r) => r.e as string));
    return (r) => emails.has(r.delivery_email.toLowerCase());
  }
  const { rows } = await db.query(
    `SELECT DISTINCT modified_user_id AS id FROM zerver_realmauditlog WHERE event_type = $1 AND extra_data ->> 'email_id' = $2`,
    [AuditLogEventType.CUSTOM_EMAIL_SENT, emailId],
  );
  const ids = new Set(rows.map((r) => Number(r.id)));
  return (r) => ids.has(r.id);
}

// =============================================================================================
// The email

interface PreparedEmail {
  emailId: string;
  templateName: string;
  subject: CompiledTemplate;
  subjectSource: string;
  text: CompiledTemplate;
  html: CompiledTemplate;
  htmlBefore: string;
  htmlAfter: string;
  fromNameSource: string | undefined;
  fromNameOption: string | undefined;
  fromAddress: string;
  replyTo: string | undefined;
}

const CONTENT_MARK = "\u0000CONTENT\u0000";

function prepareEmail(file: EmailTemplateFile, opts: Record<string, any>, es: EmailSettings | null, settings: ZulipSettings): PreparedEmail {
  const subjectSource = getHeader(opts.subject, file.headers.get("subject"), "subject");
  const where = opts.markdownTemplatePath as string;
  const html = compileTemplate(renderMarkdown(file.body), where);
  const text = compileTemplate(file.body, where);
  const subject = compileTemplate(subjectSource, `${where} (subject)`);
  const support = es ? supportAddress(es) : "";
  let fromAddress: string = opts.fromAddress ?? support;
  if (es) {
    if (fromAddress === "TOKENIZED_NO_REPLY") fromAddress = tokenizedNoreplyAddress(es);
    else if (fromAddress === "NO_REPLY") fromAddress = noreplyAddress(es);
    else if (fromAddress === "SUPPORT") fromAddress = support;
  }
  const imagesBase = es?.emailImagesBaseUrl ?? `${settings.get("ROOT_DOMAIN_URI")}/static/images/emails`;
  const page = emailBaseDefault({
    emailImagesBaseUrl: imagesBase,
    physicalAddress: es?.physicalAddress ?? "",
    illustration: "email_logo.png",
    content: CONTENT_MARK,
  });
  const [htmlBefore, htmlAfter] = page.split(CONTENT_MARK);
  return {
    emailId: file.hash,
    templateName: `custom_email_${file.hash}`,
    subject,
    subjectSource,
    text,
    html,
    htmlBefore,
    htmlAfter,
    fromNameSource: file.headers.get("from"),
    fromNameOption: opts.fromName,
    fromAddress,
    replyTo: opts.replyTo,
  };
}

interface Recipient {
  row: RecipientRow;
  realmUrl: string;
  realmHost: string;
  unsubscribeLink?: string;
}

function contextFor(r: Recipient, es: EmailSettings | null, extra: Record<string, unknown> | undefined): Record<string, unknown> {
  const realm = {
    id: r.row.realm_id,
    string_id: r.row.string_id,
    name: r.row.realm_name,
    url: r.realmUrl,
    uri: r.realmUrl,
    host: r.realmHost,
    toString: () => `${r.row.string_id} ${r.row.realm_id}`,
  };
  const ctx: Record<string, unknown> = {
    realm,
    realm_string_id: r.row.string_id,
    realm_url: r.realmUrl,
    realm_uri: r.realmUrl,
    realm_name: r.row.realm_name,
  };
  if (r.unsubscribeLink !== undefined) ctx.unsubscribe_link = r.unsubscribeLink;
  if (extra) Object.assign(ctx, extra);
  // build_email's additions
  ctx.support_email = es ? supportAddress(es) : "";
  ctx.email_images_base_url = es?.emailImagesBaseUrl ?? "";
  ctx.physical_address = es?.physicalAddress ?? "";
  return ctx;
}

function renderFor(p: PreparedEmail, r: Recipient, es: EmailSettings | null, extra: Record<string, unknown> | undefined) {
  const ctx = contextFor(r, es, extra);
  const subject = renderTemplate(p.subject, ctx, false).trim().replace(/\n/g, "");
  const text = renderTemplate(p.text, ctx, false);
  let content = renderTemplate(p.html, ctx, true);
  if (typeof ctx.unsubscribe_link === "string") {
    content +=
      `\n<p><a href="${escapeHtml(r.realmUrl)}/#settings/notifications">Manage email preferences</a> | ` +
      `<a href="${escapeHtml(ctx.unsubscribe_link)}">Unsubscribe from marketing emails</a></p>`;
  }
  return { subject, text, html: p.htmlBefore + content + p.htmlAfter, context: ctx };
}

function buildFor(p: PreparedEmail, r: Recipient, es: EmailSettings, fromName: string, extra: Record<string, unknown> | undefined): OutgoingEmail {
  const rendered = renderFor(p, r, es, extra);
  const mail = buildEmail(es, {
    template: p.templateName,
    rendered: { subject: rendered.subject, text: rendered.text, html: rendered.html },
    toUsers: [{ full_name: r.row.full_name, delivery_email: r.row.delivery_email }],
    fromName,
    fromAddress: p.fromAddress,
    ...(p.replyTo !== undefined ? { replyTo: p.replyTo } : {}),
    realm: { name: r.row.realm_name, host: r.realmHost, string_id: r.row.string_id },
  });
  if (r.unsubscribeLink !== undefined) {
    mail.headers["List-Unsubscribe"] = `<${r.unsubscribeLink}>`;
    mail.headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click";
  }
  return mail;
}

/** one_click_unsubscribe_link(user, "marketing") for many users at once (one INSERT). */
async function createUnsubscribeLinks(db: Db, recipients: Recipient[]): Promise<void> {
  if (recipients.length === 0) return;
  const ct = await contentTypeId(db, "zerver", "userprofile");
  const now = new Date();
  const expiry = new Date(now.getTime() + UNSUBSCRIBE_VALIDITY_DAYS * 86_400_000);
  for (let start = 0; start < recipients.length; start += 5000) {
    const chunk = recipients.slice(start, start + 5000);
    const keys = chunk.map(() => generateKey());
    await db.tx(async (q) => {
      await q.query(
        `INSERT INTO confirmation_confirmation (content_type_id, object_id, date_sent, confirmation_key, expiry_date, realm_id, type)
         SELECT $1, t.uid, $2, t.k, $3, t.rid, $4 FROM unnest($5::int[], $6::text[], $7::int[]) AS t(uid, k, rid)`,
        [ct, now, expiry, CONFIRMATION_TYPES.UNSUBSCRIBE, chunk.map((r) => r.row.id), keys, chunk.map((r) => r.row.realm_id)],
      );
    });
    chunk.forEach((r, k) => {
      r.unsubscribeLink = `${r.realmUrl}/accounts/unsubscribe/marketing/${keys[k]}`;
    });
  }
}

/** Writes the 810 rows of delivered emails in batches, as the sends complete. */
class AuditWriter {
  private pending: Recipient[] = [];
  private chain: Promise<void> = Promise.resolve();
  written = 0;
  /** The ids of the rows written. */
  readonly ids: number[] = [];
  error: Error | null = null;

  constructor(
    private readonly db: Db,
    private readonly emailId: string,
    private readonly subject: string,
    private readonly batch = 200,
  ) {}

  add(r: Recipient): void {
    this.pending.push(r);
    if (this.pending.length >= this.batch) this.flush();
  }

  flush(): Promise<void> {
    if (this.pending.length === 0) return this.chain;
    const rows = this.pending;
    this.pending = [];
    this.chain = this.chain.then(async () => {
      if (this.error) return;
      try {
        const now = new Date();
        const extraData = { email_id: this.emailId, email_subject: this.subject };
        const ids = await this.db.tx((q) =>
          insertAuditLog(
            q,
            rows.map((r) => ({
              realmId: r.row.realm_id,
              eventType: AuditLogEventType.CUSTOM_EMAIL_SENT,
              eventTime: now,
              actingUserId: null,
              modifiedUserId: r.row.id,
              extraData,
            })),
          ),
        );
        this.written += rows.length;
        this.ids.push(...ids);
      } catch (e) {
        this.error = e as Error;
      }
    });
    return this.chain;
  }
}

// =============================================================================================
// The command

export default defineUntypedCommand({
  name: "send_custom_email",
  description:
    "Send a custom email with Zulip branding to the specified users.\n\n" +
    "Useful to send a notice to all users of a realm or server.\n\n" +
    "The From and Subject headers can be provided in the body of the Markdown\n" +
    "document used to generate the email, or on the command line.",
  examples: [
    "zulip-manage send_custom_email --entire-server --path notice.md --dry-run",
    "zulip-manage send_custom_email -r zulip -a --admins-only --path notice.md --subject 'Planned downtime' --from-name 'Zulip admins'",
    "zulip-manage send_custom_email --marketing --path newsletter.md",
  ],
  configure(cmd) {
    cmd.usage(
      "(--entire-server | --marketing | --all-sponsored-org-admins | --json-file JSON_FILE | -u USERS | -a) " +
        "--markdown-template-path PATH [options]",
    );
    cmd.option("--entire-server", "Send to every user on the server.");
    cmd.option("--marketing", "Send to active users and realm owners with the enable_marketing_emails setting enabled.");
    cmd.option("--all-sponsored-org-admins", "Send to all organization administrators of sponsored organizations.");
    cmd.option(
      "--json-file <json_file>",
      "Load the JSON file, and send to the users whose ids are the keys in that dict; the context for each email will be extended by each value in the dict.",
    );
    cmd.option("-u, --users <emails>", "Email addresses of user(s) to send emails to.");
    cmd.option("-a, --all-users", "Send to every user on the realm.");
    cmd.addOption(new Option("--remote-servers").hideHelp());
    cmd.addOption(new Option("--announce-release <version>").hideHelp());
    addRealmOption(cmd);
    cmd.option("--admins-only", "Filter recipients selected via other options to to only organization administrators");
    cmd.option("--markdown-template-path <path>", "Path to a Markdown-format body for the email (also: --path).");
    cmd.addOption(new Option("--path <path>").hideHelp());
    cmd.option("--subject <subject>", "Subject for the email. It can be declared in Markdown file in headers");
    cmd.option("--from-name <from_name>", "From line for the email. It can be declared in Markdown file in headers");
    cmd.option("--from-address <from_address>", "From address for the email (default: the support address, ZULIP_ADMINISTRATOR).");
    cmd.option("--reply-to <reply_to>", "Optional reply-to line for the email");
    cmd.option("--dry-run", "Prints emails of the recipients and text of the email.");
  },
  async run(ctx, _args, opts) {
    const out = ctx.out;
    // argparse: the required mutually exclusive group, and the required template path.
    const given = TARGETS.filter(([key]) => opts[key] !== undefined && opts[key] !== false);
    if (given.length === 0) {
      throw new UsageError(`one of the arguments ${TARGETS.map(([, flag]) => flag).join(" ")} is required`);
    }
    if (given.length > 1) throw new UsageError(`argument ${given[1][1]}: not allowed with argument ${given[0][1]}`);
    if (opts.path !== undefined && opts.markdownTemplatePath === undefined) opts.markdownTemplatePath = opts.path;
    if (opts.markdownTemplatePath === undefined) throw new UsageError("the following arguments are required: --markdown-template-path/--path");
    if (opts.remoteServers || opts.announceRelease !== undefined) {
      throw new CommandError(
        `${given[0][1]} sends to the Zulip servers registered with Zulip Cloud's push notification service; ` +
          "it only works on Zulip Cloud's billing server, not on a self-hosted Zulip server.",
      );
    }
    const dryRun = Boolean(opts.dryRun);

    let raw: string;
    try {
      raw = readBounded(opts.markdownTemplatePath, READ_LIMITS.markdown, "The Markdown template");
    } catch (e: any) {
      if (e instanceof CommandError) throw e;
      throw new CommandError(
        e?.code === "ENOENT"
          ? `[Errno 2] No such file or directory: '${opts.markdownTemplatePath}'`
          : `Cannot read ${opts.markdownTemplatePath}: ${e?.message ?? e}`,
        "file_unreadable",
      );
    }
    const file = parseEmailTemplate(raw);

    const config = ctx.config();
    const settings = config.settings;
    let es: EmailSettings | null = null;
    try {
      es = emailSettings(config);
    } catch (e) {
      if (!dryRun) throw e;
    }
    // custom_email_sender(): the subject is required before anything else happens.
    const prepared = prepareEmail(file, opts, es, settings);

    const db = await ctx.db();
    const audited = seriesAtLeast(db.release, AUDITED_SINCE);
    const sel = await selectTargets(db, opts);
    const tosVersion = settings.fileValue("TERMS_OF_SERVICE_VERSION", null);
    let rows = await loadRecipients(db, sel, opts, tosVersion !== null);

    let excluded = 0;
    if (audited) {
      const received = await alreadyReceived(db, prepared.emailId, sel.distinctEmail);
      const kept = rows.filter((r) => !received(r));
      excluded = rows.length - kept.length;
      rows = kept;
      // send_custom_email's own line, word for word (no singular form in Zulip either).
      if (excluded > 0) out.line(`Excluded ${excluded} users who already received this email`);
    }

    const recipients: Recipient[] = rows.map((row) => ({
      row,
      realmUrl: realmUrl(settings, row.string_id),
      realmHost: realmHost(settings, row.string_id),
    }));
    const extraFor = (r: Recipient) => sel.extraContext?.get(r.row.id);
    const entry = (r: Recipient, status: StatusJson, error?: string): CustomEmailResult => ({
      user: userJson(r.row),
      realm: realmJson(settings, { id: r.row.realm_id, string_id: r.row.string_id, name: r.row.realm_name }),
      ...outcome(status, error ?? null),
    });
    // The delivery's statuses in the shared vocabulary.
    const delivered = (status: string): StatusJson => (status === "sent" ? "done" : status === "failed" ? "failed" : "not_attempted");
    const emailFailure = (n: number) => ({ error: `${n} of ${recipients.length} emails could not be sent.`, error_code: "email_failed" as const });
    // The sender's name is checked per email (so only when there is one to send).
    const fromName = recipients.length ? getHeader(prepared.fromNameOption, prepared.fromNameSource, "from_name") : (prepared.fromNameOption ?? prepared.fromNameSource ?? "");
    const docBase = {
      email_id: prepared.emailId,
      subject: prepared.subjectSource,
      from_name: fromName || null,
      from_address: prepared.fromAddress || null,
      reply_to: prepared.replyTo ?? null,
      records_audit_log: audited,
      excluded_already_received_count: excluded,
    };

    if (dryRun) {
      if (out.json) {
        out.jsonBody<SendCustomEmailBody>({
          dry_run: true,
          ...docBase,
          sent_count: 0,
          failed_count: 0,
          audit_log_ids: [],
          results: recipients.map((r) => entry(r, "would_do")),
        });
        return;
      }
      if (recipients.length) {
        const first = recipients[0];
        if (sel.marketing) first.unsubscribeLink = `${first.realmUrl}/accounts/unsubscribe/marketing/<key created when sending>`;
        const rendered = renderFor(prepared, first, es, extraFor(first));
        const fromAddr = prepared.fromAddress || "(the support address)";
        const ascii = /^[\x00-\x7f]*$/.test(rendered.text);
        out.line(`Subject: ${rendered.subject}`);
        out.line(`From: ${formatAddress(fromName, fromAddr)}`);
        out.line(`To: ${formatAddress(first.row.full_name, first.row.delivery_email)}`);
        if (prepared.replyTo !== undefined) out.line(`Reply-To: ${prepared.replyTo}`);
        out.line('Content-Type: text/plain; charset="utf-8"');
        out.line("MIME-Version: 1.0");
        out.line(`Content-Transfer-Encoding: ${ascii ? "7bit" : "8bit"}`);
        out.line();
        out.line(rendered.text.replace(/\n$/, ""));
      }
      out.line("Would send the above email to:");
      for (const r of recipients) out.line(`  ${r.row.delivery_email} (${r.row.string_id})`);
      return;
    }

    if (recipients.length === 0) {
      out.jsonBody<SendCustomEmailBody>({ dry_run: false, ...docBase, sent_count: 0, failed_count: 0, audit_log_ids: [], results: [] });
      return;
    }
    if (!es) es = emailSettings(config);
    requireOutgoingEmail(es);
    for (const w of emailConfigWarnings(es)) out.warn(w);
    // Render the first email before any write: template errors surface here, not mid-send.
    buildFor(prepared, recipients[0], es, fromName, extraFor(recipients[0]));

    if (sel.marketing) await createUnsubscribeLinks(db, recipients);

    const settingsForMail = es;
    const audit = audited ? new AuditWriter(db, prepared.emailId, prepared.subjectSource) : null;
    let d: Delivery<Recipient>;
    try {
      d = await deliverEmails(settingsForMail, recipients, (r) => buildFor(prepared, r, settingsForMail, fromName, extraFor(r)), {
        progress: Boolean(process.stderr.isTTY) && !out.json,
        onSent: (r) => audit?.add(r),
        failureLine: (r, error) => `Failed to send email to ${r.row.delivery_email} (${r.row.string_id}): ${error.message}`,
        err: (line) => out.err(line),
      });
    } finally {
      await audit?.flush();
    }
    const { results, sent, failed, notSent } = d;
    if (d.unreachable) {
      out.err(`Cannot send email: ${d.unreachable.message}`);
      out.err("No emails were sent.");
      out.jsonBody<SendCustomEmailBody>(
        {
          dry_run: false,
          ...docBase,
          sent_count: 0,
          failed_count: recipients.length,
          audit_log_ids: [],
          results: results.map((r) => entry(r.item, "not_attempted", r.error?.message)),
        },
        { error: `Cannot send email: ${d.unreachable.message}`, error_code: "email_failed" },
      );
      return 1;
    }
    if (audit?.error) {
      out.err(
        `Warning: the emails were sent, but recording them in the audit log failed: ${audit.error.message}\n` +
          `Running the command again would send them again to the users not recorded (${audit.written} of ${sent} recorded).`,
      );
    }
    if (out.json) {
      out.jsonBody<SendCustomEmailBody>(
        {
          dry_run: false,
          ...docBase,
          sent_count: sent,
          failed_count: failed + notSent,
          audit_log_ids: audit?.ids ?? [],
          results: results.map((r) => entry(r.item, delivered(r.status), r.error?.message)),
        },
        failed + notSent > 0
          ? emailFailure(failed + notSent)
          : { error: `The emails were sent, but recording them in the audit log failed: ${audit?.error?.message}`, error_code: "audit_log_failed" },
      );
    }
    // Like manage.py, a successful send prints nothing more (the counts are in --json).
    if (failed + notSent > 0) {
      out.err(`${failed + notSent} of ${recipients.length} emails could not be sent${audited ? "; run the same command again to retry them" : ""}.`);
      return 1;
    }
    return audit?.error ? 1 : 0;
  },
});
