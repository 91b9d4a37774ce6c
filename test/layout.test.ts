// The source layout's import rules (README, Development): each folder may import only the
// folders below it, commands reach the CLI only through the pieces meant for them, nothing in
// product code imports src/dev, and no SQL is written in src/commands.
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT } from "./helpers/pg.js";

const SRC = path.join(REPO_ROOT, "src");

function walk(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith(".ts") ? [path.join(dir, e.name)] : []));
}

/** The folder a module belongs to, for the rules: "zulip/actions", "zulip/events", "cli", … */
function folderOf(rel: string): string {
  const parts = rel.split("/");
  return parts.length > 2 && parts[0] === "zulip" ? `zulip/${parts[1]}` : parts[0]!.replace(/\.ts$/, "");
}

/** Which folders each folder may import (besides itself). */
const MAY_IMPORT: Record<string, string[]> = {
  lib: [],
  config: ["lib"],
  db: ["lib", "config"],
  services: ["lib", "config", "db"],
  zulip: ["lib", "config", "db", "services", "zulip/events", "zulip/templates"],
  "zulip/events": ["lib", "config", "db", "services", "zulip"],
  "zulip/templates": ["lib", "zulip"],
  "zulip/actions": ["lib", "config", "db", "services", "zulip", "zulip/events", "zulip/templates"],
  ops: ["lib", "config", "db", "services", "zulip", "zulip/actions"],
  schemas: ["cli", "zulip"], // zulip: roles.ts alone (SCHEMAS_MAY_IMPORT)
  commands: ["lib", "config", "db", "services", "zulip", "zulip/events", "zulip/templates", "zulip/actions", "ops", "schemas", "cli"],
  cli: ["lib", "config", "db", "services", "zulip", "zulip/events", "zulip/actions", "ops", "schemas", "commands"],
  dev: ["lib", "config", "db", "services", "zulip", "zulip/events", "zulip/templates", "zulip/actions", "ops", "cli", "commands"],
};

/** The one src/zulip module src/schemas may import (it imports nothing itself). */
const SCHEMAS_MAY_IMPORT = "zulip/roles.ts";

/** The CLI modules a command may use: its declaration, context, output and prompts. */
const CLI_FOR_COMMANDS = new Set([
  "cli/command.ts",
  "cli/context.ts",
  "cli/output.ts",
  "cli/prompt.ts",
  "cli/json-contract.ts",
  "cli/json-objects.ts",
  "cli/options.ts",
  "cli/completion.ts",
]);

interface Edge {
  from: string;
  to: string;
}

function edges(): Edge[] {
  const out: Edge[] = [];
  for (const file of walk(SRC)) {
    const text = fs.readFileSync(file, "utf8");
    for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*)["'](\.[^"']+)["']/g)) {
      const target = path.normalize(path.join(path.dirname(file), m[1]!)).replace(/\.js$/, ".ts");
      out.push({ from: path.relative(SRC, file), to: path.relative(SRC, target) });
    }
  }
  return out;
}

describe("source layout", () => {
  const all = edges();

  it("every folder is one the rules know", () => {
    const folders = new Set(walk(SRC).map((f) => folderOf(path.relative(SRC, f))));
    expect([...folders].filter((f) => !(f in MAY_IMPORT))).toEqual([]);
  });

  it("each folder imports only the folders below it", () => {
    const bad = all.filter((e) => {
      const a = folderOf(e.from);
      const b = folderOf(e.to);
      return a !== b && !MAY_IMPORT[a]?.includes(b);
    });
    expect(bad.map((e) => `${e.from} → ${e.to}`)).toEqual([]);
  });

  it("src/schemas reaches src/zulip only for the role constants, which import nothing", () => {
    // The --json role fields are built from src/zulip/roles.ts (one definition of the roles);
    // that module must stay free of imports so that the schemas (and scripts/json-schemas.mjs,
    // which loads them) pull in nothing else.
    const bad = all.filter((e) => folderOf(e.from) === "schemas" && folderOf(e.to) === "zulip" && e.to !== SCHEMAS_MAY_IMPORT);
    expect(bad.map((e) => `${e.from} → ${e.to}`)).toEqual([]);
    expect(all.filter((e) => e.from === SCHEMAS_MAY_IMPORT).map((e) => e.to)).toEqual([]);
  });

  it("nothing outside src/dev imports src/dev", () => {
    const bad = all.filter((e) => folderOf(e.to) === "dev" && folderOf(e.from) !== "dev");
    expect(bad.map((e) => `${e.from} → ${e.to}`)).toEqual([]);
  });

  it("commands use only the CLI pieces meant for them, and not each other", () => {
    const bad = all.filter((e) => {
      if (folderOf(e.from) !== "commands") return false;
      if (folderOf(e.to) === "cli") return !CLI_FOR_COMMANDS.has(e.to);
      // The registry lists every command; the completion command reads the registry.
      if (folderOf(e.to) === "commands") return e.from !== "commands/index.ts" && !(e.from === "commands/completion.ts" && e.to === "commands/index.ts");
      return false;
    });
    expect(bad.map((e) => `${e.from} → ${e.to}`)).toEqual([]);
  });

  it("commands hold no SQL", () => {
    // SQL is written upper-case here; comments (which may show an example) are not code.
    const sql = /\bSELECT\b[^;`]{0,400}?\bFROM\b|\bINSERT INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE FROM\b|\.query\(/;
    const code = (f: string) => fs.readFileSync(f, "utf8").replace(/^\s*(\/\/|\*|\/\*).*$/gm, "");
    // dbshell's help shows a psql example, which is SQL the user runs, not ours.
    const bad = walk(path.join(SRC, "commands")).filter((f) => !f.endsWith("/dbshell.ts") && sql.test(code(f)));
    expect(bad.map((f) => path.relative(SRC, f))).toEqual([]);
  });

  it("every command's options are typed (configure returns its chain)", () => {
    const bad = walk(path.join(SRC, "commands")).filter((f) => /Record<string, any>/.test(fs.readFileSync(f, "utf8")));
    expect(bad.map((f) => path.relative(SRC, f))).toEqual([]);
  });
});
