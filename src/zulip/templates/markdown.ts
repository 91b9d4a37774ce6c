// Markdown → HTML for custom emails: a small, safe renderer for the Markdown they use (headings,
// paragraphs, emphasis, inline code, links, images, lists, block quotes, fenced code, tables,
// rules), standing in for Zulip's Python-Markdown with its help-center extensions. Raw HTML is
// escaped; link targets other than http(s)/mailto/ftp/relative ones are dropped. Template
// expressions ({{ … }}, {# … #}, {% … %}) are protected so they survive rendering untouched
// (jinja.ts interpolates them per recipient afterwards).
import { escapeMarkdownAttr as escapeAttr, escapeMarkdownText as escapeText } from "./html.js";
import { TEMPLATE_EXPR } from "./jinja.js";

const TOKEN = (n: number) => `\u0000T${n}\u0000`;
const TOKEN_RE = /\u0000T(\d+)\u0000/g;

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
    // Autolinks (Markdown syntax: <http://…>, <user@host>; not address validation).
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
    const aligns = cells(lines[start + 1]).map((c) =>
      c.startsWith(":") && c.endsWith(":") ? "center" : c.endsWith(":") ? "right" : c.startsWith(":") ? "left" : null,
    );
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
  src = src.replace(TEMPLATE_EXPR, (m) => {
    templateTokens.push(m);
    return `\u0000J${templateTokens.length - 1}\u0000`;
  });
  // Reference definitions: [id]: url "title"
  const refs = new Map<string, { url: string; title?: string }>();
  src = src.replace(
    /^ {0,3}\[([^\]]+)\]:\s*(\S+)(?:\s+(?:"([^"]*)"|'([^']*)'|\(([^)]*)\)))?\s*$/gm,
    (_m, id: string, url: string, t1?: string, t2?: string, t3?: string) => {
      refs.set(id.trim().toLowerCase().replace(/\s+/g, " "), { url: url.replace(/^<(.*)>$/, "$1"), title: t1 ?? t2 ?? t3 });
      return "";
    },
  );
  const inline = new InlineRenderer(refs, protectedParts);
  let html = new BlockRenderer(inline).render(src.split("\n"));
  // Restore stashed HTML (repeatedly: stashes can contain stashes), then the template expressions.
  for (let n = 0; n < 10 && TOKEN_RE.test(html); n++) {
    TOKEN_RE.lastIndex = 0;
    html = html.replace(TOKEN_RE, (_m, k: string) => protectedParts[Number(k)]);
  }
  return html.replace(/\u0000J(\d+)\u0000/g, (_m, k: string) => templateTokens[Number(k)]);
}
