// Build step (after tsc): write every published --json schema (src/schemas/) as
// dist/json-schema/<name>.schema.json, which `zulip-manage help <command> --json-schema` prints
// without loading TypeBox (a development dependency: only this step and the tests use it).
import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { allSchemas } = await import(path.join(root, "dist", "schemas", "index.js"));
const finalDir = path.join(root, "dist", "json-schema");
const tmp = `${finalDir}.tmp-${process.pid}`;
rmSync(tmp, { recursive: true, force: true });
mkdirSync(tmp, { recursive: true });
for (const [name, schema] of Object.entries(allSchemas())) {
  writeFileSync(path.join(tmp, `${name}.schema.json`), JSON.stringify(schema, null, 2) + "\n");
}
const old = `${finalDir}.old-${process.pid}`;
try {
  renameSync(finalDir, old);
} catch {
  /* first build */
}
renameSync(tmp, finalDir);
rmSync(old, { recursive: true, force: true });
