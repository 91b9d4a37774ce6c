// Template interpolation for custom emails: {{ name }} / {{ name.attr }} and {# comments #}, the
// subset of the Jinja2 Zulip renders custom emails with (autoescaped in the HTML part, not in the
// plain-text part). Jinja statements ({% … %}) and other expressions are refused at compile time,
// before anything is sent.
import { CommandError } from "../../lib/errors.js";
import { escapeHtml } from "./html.js";

type Part = { literal: string } | { path: string[] };

export interface CompiledTemplate {
  parts: Part[];
}

/** A template expression, comment or statement: {{ … }}, {# … #}, {% … %} (global: use with matchAll/replace). */
export const TEMPLATE_EXPR = /\{\{-?\s*(.*?)\s*-?\}\}|\{#[\s\S]*?#\}|\{%-?\s*([\s\S]*?)\s*-?%\}/g;

export function compileTemplate(source: string, where: string): CompiledTemplate {
  const parts: Part[] = [];
  let last = 0;
  for (const m of source.matchAll(TEMPLATE_EXPR)) {
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
