// Validate a --json document against the schema the build published for its command
// (dist/json-schema/<name>.schema.json, what `help <name> --json-schema` prints), for the
// command tests that parse documents themselves. test/json-contract.test.ts checks the same
// schemas through the CLI.
import fs from "node:fs";
import path from "node:path";
import { Ajv, type ValidateFunction } from "ajv";
import { expect } from "vitest";
import { ERROR_CODES } from "../../src/lib/errors.js";
import { type CliResult, runCli } from "./cli.js";
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

const viaCli = new Map<string, ValidateFunction>();

/** The validator of `name`'s schema as `help <name> --json-schema` prints it ("error": the error document's). */
async function validatorFor(name: string): Promise<ValidateFunction> {
  let v = viaCli.get(name);
  if (!v) {
    const r = await runCli(["help", ...(name === "error" ? [] : [name]), "--json-schema"]);
    expect(r.exitCode, r.stderr).toBe(0);
    v = ajv.compile(JSON.parse(r.stdout));
    viaCli.set(name, v);
  }
  return v;
}

/** Parse a --json run's stdout, check the envelope against the exit status, and validate it. */
export async function checkDocument(name: string, r: CliResult, expectedExit: number): Promise<any> {
  expect(r.exitCode, `${name}: ${r.stderr}\n${r.stdout}`).toBe(expectedExit);
  const doc = JSON.parse(r.stdout);
  const validate = await validatorFor(name);
  expect(validate(doc) ? null : ajv.errorsText(validate.errors), JSON.stringify(doc).slice(0, 2000)).toBeNull();
  expect(doc.exit_code).toBe(r.exitCode);
  expect(doc.ok).toBe(r.exitCode === 0);
  expect(doc.schema_version).toBe(1);
  if (doc.ok) {
    expect(doc.error).toBeNull();
    expect(doc.error_code).toBeNull();
  } else {
    expect(typeof doc.error).toBe("string");
    expect(Object.keys(ERROR_CODES)).toContain(doc.error_code);
    expect(ERROR_CODES[doc.error_code as keyof typeof ERROR_CODES][0]).toBe(doc.exit_code);
  }
  return doc;
}

/** Every ```json example in the README's `#### <name>` section of the --json chapter validates against its schema. */
export async function checkReadmeExamples(names: readonly string[]): Promise<void> {
  const readme = fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");
  for (const name of names) {
    const start = readme.indexOf(`\n#### ${name}\n`, readme.indexOf("## `--json` output"));
    expect(start, name).toBeGreaterThan(0);
    const section = readme.slice(start + 1, readme.indexOf("\n###", start + 1));
    const blocks = [...section.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!);
    expect(blocks.length, name).toBeGreaterThan(0);
    const validate = await validatorFor(name);
    for (const b of blocks) expect(validate(JSON.parse(b)) ? null : `${name}: ${ajv.errorsText(validate.errors)}`).toBeNull();
  }
}
