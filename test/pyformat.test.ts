// src/lib/pyformat.ts pyRepr against CPython's own repr() (python3 is a test dependency): the
// quote choice and escapes of str, floats in fixed and scientific notation, nested lists and
// dicts — everything the project prints "as Python prints it" goes through this one function.
import { describe, expect, it } from "vitest";
import { pyRepr, pyStrRepr } from "../src/lib/pyformat.js";
import { runPython } from "./helpers/tools.js";

/** repr() of each JSON-decoded value, by CPython (floats stay floats: only non-integral ones here). */
function pythonReprs(values: unknown[]): string[] {
  return JSON.parse(runPython("import json, sys\nprint(json.dumps([repr(v) for v in json.loads(sys.argv[1])]))", [JSON.stringify(values)]));
}

describe("pyRepr is CPython's repr()", () => {
  it("str: quotes and escapes", () => {
    const strings = [
      "",
      "plain",
      "it's",
      'say "hi"',
      `both ' and "`,
      "back\\slash",
      "line\nbreak\r\ttab",
      "bell\u0007 del\u007f esc\u001b",
      "c1\u0085 nbsp\u00a0 soft\u00ad hyphen",
      "é ü 漢字 😀",
      "zero\u200bwidth line\u2028sep bom\ufeff",
      "private\ue000 unassigned\u0378",
      "astral format \u{e0001}",
    ];
    expect(strings.map(pyStrRepr)).toEqual(pythonReprs(strings));
  });

  it("numbers, None, booleans, lists and dicts", () => {
    const values = [
      null,
      true,
      false,
      0,
      -7,
      123456789012,
      1.5,
      -0.25,
      0.1,
      1e-4,
      1.5e-5,
      0.00001,
      123456789.123456,
      1714315261.67,
      1.5e16,
      2.5e-300,
      [],
      ["a", null, 1, 1.5, [true]],
      {},
      { Email: true, GitHub: false, "it's": ["x", { nested: null }] },
    ];
    expect(values.map(pyRepr)).toEqual(pythonReprs(values));
  });
});
