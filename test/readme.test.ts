// The README's command tables describe every registered command (and nothing else): a row
// with what it does, its key options and its status — not figures pasted from the benchmarks.
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { COMMANDS } from "../src/commands/index.js";
import { REPO_ROOT } from "./helpers/pg.js";

const readme = fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");

/** The rows of the tables between "## Commands" and the next "## " heading, by command name. */
function commandRows(): Map<string, string[]> {
  const start = readme.indexOf("\n## Commands\n");
  const end = readme.indexOf("\n## ", start + 1);
  const rows = new Map<string, string[]>();
  for (const line of readme.slice(start, end).split("\n")) {
    const m = /^\| `([a-z_]+)` \|(.*)\|$/.exec(line);
    if (!m) continue;
    const cells = m[2]!.split(" | ").map((c) => c.trim());
    expect(rows.has(m[1]!), `${m[1]} has two rows`).toBe(false);
    rows.set(m[1]!, cells);
  }
  return rows;
}

describe("README command tables", () => {
  const rows = commandRows();

  it.each(COMMANDS.map((c) => c.name))("%s has a row with a description, options and a status", (name) => {
    const cells = rows.get(name);
    expect(cells, `no row for ${name}`).toBeDefined();
    const [what, options, status] = cells!;
    expect(cells!.length).toBe(3);
    // A description in words, not a benchmark figure ("64 ms (57–69)").
    expect(what).toMatch(/^[A-Z][a-z-]+ .{10,}/);
    expect(what).not.toMatch(/\d+ ms\b/);
    expect(options!.length).toBeGreaterThan(0);
    expect(status).toMatch(/^(implemented|not in manage\.py)/);
  });

  it("names no command that is not registered", () => {
    const registered = new Set(COMMANDS.map((c) => c.name));
    expect([...rows.keys()].filter((n) => !registered.has(n))).toEqual([]);
  });

  it("has a section for every registered command", () => {
    for (const c of COMMANDS) expect(readme, c.name).toContain(`\n#### ${c.name}\n`);
  });
});

describe("README Development section", () => {
  const dev = readme.slice(readme.indexOf("\n## Development\n"));
  const folders = (dir: string): string[] =>
    fs
      .readdirSync(path.join(REPO_ROOT, dir), { withFileTypes: true })
      .flatMap((e) => (e.isDirectory() ? [`${dir}/${e.name}`, ...folders(`${dir}/${e.name}`)] : []));
  const described = folders("src").filter((d) => !d.startsWith("src/commands") && !d.startsWith("src/schemas") && !d.endsWith("/templates"));

  it("has one line per source folder", () => {
    expect(described.filter((d) => !dev.includes(`\n- \`${d}/\``))).toEqual([]);
  });

  it("names every module of every folder on that folder's line", () => {
    const missing: string[] = [];
    for (const d of described) {
      const start = dev.indexOf(`\n- \`${d}/\``);
      const line = dev.slice(start + 1, dev.indexOf("\n", start + 1));
      for (const f of fs.readdirSync(path.join(REPO_ROOT, d)).filter((n) => n.endsWith(".ts"))) {
        if (!line.includes(`\`${f.slice(0, -3)}\``)) missing.push(`${d}/${f}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
