// Validate a --json document against the schema the build published for its command
// (dist/json-schema/<name>.schema.json, what `help <name> --json-schema` prints), for the
// command tests that parse documents themselves. test/json-contract.test.ts checks the same
// schemas through the CLI.
import fs from "node:fs";
import path from "node:path";
import Ajv, { type ValidateFunction } from "ajv";
import { REPO_ROOT } from "./pg.js";

const ajv = new Ajv({ allErrors: true, strict: true });
const cache = new Map<string, ValidateFunction>();

/** null when `doc` validates against `name`'s schema, else ajv's errors. */
export function schemaErrors(name: string, doc: unknown): string | null {
  let v = cache.get(name);
  if (!v) {
    v = ajv.compile(JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "dist", "json-schema", `${name}.schema.json`), "utf8")));
    cache.set(name, v);
  }
  return v(doc) ? null : ajv.errorsText(v.errors);
}
