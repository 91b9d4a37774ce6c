// src/lib/pyformat.ts pyRepr against CPython's own repr() (python3 is a test dependency): the
// quote choice and escapes of str, floats in fixed and scientific notation, nested lists and
// dicts — everything the project prints "as Python prints it" goes through this one function.
import { describe, expect, it } from "vitest";
import { pyInt, pyRepr, pyRstrip, pyStrip, pyStrRepr } from "../src/lib/pyformat.js";
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

describe("pyStrip / pyRstrip are CPython's str.strip() / str.rstrip()", () => {
  it("whitespace is exactly str.isspace()'s set, over every code point", () => {
    const python: number[] = JSON.parse(runPython("import json\nprint(json.dumps([c for c in range(0x110000) if chr(c).isspace()]))"));
    const ours: number[] = [];
    for (let c = 0; c < 0x110000; c++) if (c < 0xd800 || c > 0xdfff) if (pyStrip(String.fromCodePoint(c)) === "") ours.push(c);
    expect(ours).toEqual(python);
  });

  it("strips what Python strips and keeps what it keeps (not JavaScript's trim)", () => {
    const samples = [
      "  plain  ",
      "\ufeffbom\ufeff",
      "\x1cinfo separators\x1f",
      "\x85next line\x85",
      "\u3000ideographic\u2028",
      "\u00a0nbsp\u200b",
      "\t\n\v\f\r",
      "",
    ];
    const py: [string, string][] = JSON.parse(
      runPython("import json, sys\nprint(json.dumps([[s.strip(), s.rstrip()] for s in json.loads(sys.argv[1])]))", [JSON.stringify(samples)]),
    );
    expect(samples.map((s) => [pyStrip(s), pyRstrip(s)])).toEqual(py);
    expect(pyStrip("\ufeffbom\ufeff")).toBe("\ufeffbom\ufeff");
  });
});

describe("pyInt is str(int(x)) for a whole float", () => {
  it("keeps every digit of large values, exactly as CPython prints them", () => {
    const values = [0, 7, -42, 1e21, 2 ** 80 + 2 ** 30, 1.5e300];
    const python: string[] = JSON.parse(
      runPython("import json, sys\nprint(json.dumps([str(int(v)) for v in json.loads(sys.argv[1])]))", [JSON.stringify(values)]),
    );
    expect(values.map(pyInt)).toEqual(python);
  });
});
