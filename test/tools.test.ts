// test/helpers/tools.ts: a test that needs a missing program or python3 module fails, naming the
// Debian package and the command that installs it (nothing is skipped).
import { describe, expect, it } from "vitest";
import { requirePython, requireTool, runPython } from "./helpers/tools.js";

describe("requireTool / requirePython", () => {
  it("finds what the suite needs", () => {
    expect(requireTool("python3")).toMatch(/\/python3$/);
    expect(runPython("print(1 + 1)")).toBe("2");
    expect(runPython("import argon2, zxcvbn; print('ok')", [], ["argon2", "zxcvbn"])).toBe("ok");
  });

  it("fails with the package to install when something is missing", () => {
    expect(() => requirePython(["zm_no_such_module"])).toThrow(
      /^The python3 module zm_no_such_module is not installed; the tests need it for .+\. Install it \(Debian\/Ubuntu\): apt-get install python3-zm_no_such_module\n\(`npm test` run as root installs every test dependency itself: scripts\/test-deps\.sh\)$/,
    );
  });
});
