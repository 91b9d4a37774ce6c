import { authenticationMethodsDict } from "../zulip/auth-backends.js";
import { defineCommand } from "../cli/command.js";
import { padPy } from "../cli/output.js";
import { pyRepr, pyStrFromPg } from "../lib/pyformat.js";
import { utcTimestampFromPg } from "../cli/json-contract.js";
import { realmJson } from "../cli/json-objects.js";
import { realmUrl } from "../config/settings.js";
import { listRealms, realmsAsText } from "../zulip/realms.js";
import type { ListedRealmAll, ListRealmsAllBody, ListRealmsBody } from "../schemas/list_realms.js";

const outer = (id: string, sid: string, name: string, url: string) => `${padPy(id, 5)} ${padPy(sid, 20)} ${padPy(name, 30)} ${padPy(url, 50)}`;
const inner = (key: string, value: string) => `${padPy(key, 40)} ${value}`;

// Django attribute names that differ from the column name.
const ATTNAME: Record<string, string> = { max_invites: "_max_invites" };

export default defineCommand({
  name: "list_realms",
  description: "List realms in the server and it's configuration settings(optional).",
  examples: ["zulip-manage list_realms", "zulip-manage list_realms --all", "zulip-manage list_realms --json"],
  configure: (cmd) => cmd.option("--all", "Print all the configuration settings of the realms."),
  async run(ctx, _args, opts) {
    const settings = ctx.config().settings;
    const db = await ctx.db();
    const out = ctx.out;

    if (!opts.all) {
      const rows = await listRealms(db);
      const realms = rows.map((r) => ({ ...r, url: realmUrl(settings, r.string_id) }));
      if (out.json) {
        out.jsonBody<ListRealmsBody>({ realms: rows.map((r) => ({ ...realmJson(settings, r), deactivated: Boolean(r.deactivated) })) });
        return;
      }
      out.line(outer("id", "string_id", "name", "domain"));
      out.line(outer("--", "---------", "----", "------"));
      let deactivated = false;
      for (const r of realms) {
        const line = outer(String(r.id), r.string_id === "" ? "''" : r.string_id, r.name, r.url);
        if (r.deactivated) {
          deactivated = true;
          out.line(out.style.error(line));
        } else out.line(line);
      }
      if (deactivated) out.line(out.style.warning("\nRed rows represent deactivated realms."));
      return;
    }

    // --all: every model attribute, printed the way Python prints it. Ask PostgreSQL for text so
    // nothing is lost (microseconds, big numbers) and format by type.
    const res = await realmsAsText(db);
    const byRealm = res.authenticationMethods;
    const backends = settings.get("AUTHENTICATION_BACKENDS") as string[];
    const jsonRealms: ListedRealmAll[] = [];
    let deactivated = false;
    for (const row of res.rows) {
      const id = Number(row.id);
      const isDeactivated = row.deactivated === "t";
      const auth = authenticationMethodsDict(backends, byRealm.get(id) ?? new Set());
      const printed = new Map<string, string>();
      const values: Record<string, unknown> = {};
      for (const f of res.fields) {
        const key = ATTNAME[f.name] ?? f.name;
        printed.set(key, pyStrFromPg(row[f.name], f.dataTypeID));
        values[key] = jsonValue(row[f.name], f.dataTypeID);
      }
      printed.set("authentication_methods", pyRepr(auth));
      if (out.json) {
        // The columns are the database's (read at run time); id, string_id, name and deactivated are among them.
        jsonRealms.push({ ...values, url: realmUrl(settings, row.string_id ?? ""), authentication_methods: auth } as ListedRealmAll);
        continue;
      }
      const emit = (line: string) => out.line(isDeactivated ? out.style.error(line) : line);
      const ids = ["id", "name", "string_id"];
      for (const key of ids) emit(inner(key, printed.get(key)!));
      for (const key of [...printed.keys()].sort(pyCompare)) if (!ids.includes(key)) emit(inner(key, printed.get(key)!));
      out.line("-".repeat(80));
      if (isDeactivated) deactivated = true;
    }
    if (out.json) {
      out.jsonBody<ListRealmsAllBody>({ realms: jsonRealms });
      return;
    }
    if (deactivated) out.line(out.style.warning("\nRed is used to highlight deactivated realms."));
  },
});

/** Python sorts str by code point. */
function pyCompare(a: string, b: string): number {
  const x = [...a].map((c) => c.codePointAt(0)!);
  const y = [...b].map((c) => c.codePointAt(0)!);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/** The PostgreSQL type OIDs (pg_type.oid) jsonValue converts. */
const PG_TYPE = { BOOL: 16, INT8: 20, INT2: 21, INT4: 23, JSON: 114, JSONB: 3802, TIMESTAMPTZ: 1184 } as const;

function jsonValue(text: string | null, oid: number): unknown {
  if (text === null) return null;
  switch (oid) {
    case PG_TYPE.BOOL:
      return text === "t";
    case PG_TYPE.INT8:
    case PG_TYPE.INT2:
    case PG_TYPE.INT4:
      return Number(text);
    case PG_TYPE.JSON:
    case PG_TYPE.JSONB:
      return JSON.parse(text);
    case PG_TYPE.TIMESTAMPTZ:
      return utcTimestampFromPg(text);
    default:
      return text;
  }
}
