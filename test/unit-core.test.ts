// Unit tests for the CLI core pieces that need no database.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parsePythonInt } from "../src/zulip/lookup.js";
import { asctime, logInvocation } from "../src/lib/managelog.js";
import { padPy } from "../src/cli/output.js";
import { pyDatetimeFromPg, pyRepr, pyStrFromPg, pyStrRepr } from "../src/lib/pyformat.js";
import { decideRunAs, shellQuote } from "../src/cli/runas.js";
import { authenticationMethodsDict } from "../src/zulip/auth-backends.js";
import { withTimeout } from "../src/lib/timeout.js";
import { escapeMarkdownText } from "../src/zulip/templates/html.js";
import { runPython } from "./helpers/tools.js";

describe("parsePythonInt (manage.py's int() realm id test)", () => {
  it("accepts what Python's int() accepts", () => {
    expect(parsePythonInt("2")).toBe(2);
    expect(parsePythonInt(" 2 ")).toBe(2);
    expect(parsePythonInt("+7")).toBe(7);
    expect(parsePythonInt("-1")).toBe(-1);
    expect(parsePythonInt("1_000")).toBe(1000);
    expect(parsePythonInt("007")).toBe(7);
  });
  it("rejects what Python's int() rejects, so it is used as a string_id", () => {
    for (const v of ["", "zulip", "1__0", "_1", "1_", "1.0", "0x10", "2a"]) expect(parsePythonInt(v)).toBeNull();
  });
});

describe("Python formatting", () => {
  it("pads by code points and never truncates", () => {
    expect(padPy("ab", 5)).toBe("ab   ");
    expect(padPy("héllo wörld", 5)).toBe("héllo wörld");
    expect(padPy("😀", 3)).toBe("😀  ");
  });
  it("prints reprs like Python", () => {
    expect(pyRepr({ Email: true, GitHub: false })).toBe("{'Email': True, 'GitHub': False}");
    expect(pyRepr(["a", null, 1, 1.5])).toBe("['a', None, 1, 1.5]");
    expect(pyStrRepr("it's")).toBe(`"it's"`);
    expect(pyStrRepr(`a'b"c`)).toBe(`'a\\'b"c'`);
    expect(pyStrRepr("line\nbreak")).toBe("'line\\nbreak'");
  });
  it("prints datetimes like str(datetime) in UTC", () => {
    expect(pyDatetimeFromPg("2024-01-02 03:04:05.12+00")).toBe("2024-01-02 03:04:05.120000+00:00");
    expect(pyDatetimeFromPg("2024-01-02 03:04:05+00")).toBe("2024-01-02 03:04:05+00:00");
    expect(pyStrFromPg("t", 16)).toBe("True");
    expect(pyStrFromPg(null, 25)).toBe("None");
    expect(pyStrFromPg('{"a": [1, "x"]}', 3802)).toBe("{'a': [1, 'x']}");
  });
  it("lists the server's backends in Zulip's order with the realm's state", () => {
    expect(authenticationMethodsDict(["zproject.backends.GitHubAuthBackend", "zproject.backends.EmailAuthBackend"], new Set(["Email"]))).toEqual({
      Email: true,
      GitHub: false,
    });
    expect(Object.keys(authenticationMethodsDict(["zproject.backends.GitHubAuthBackend", "zproject.backends.EmailAuthBackend"], new Set()))).toEqual([
      "Email",
      "GitHub",
    ]);
  });
});

describe("manage.log", () => {
  it("appends '<asctime>: Ran <argv>' and stays silent when it cannot write", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "zm-log-"));
    try {
      logInvocation(dir, ["change_user_role", "-r", "", "iago@zulip.com", "admin"]);
      const text = fs.readFileSync(path.join(dir, "manage.log"), "utf8");
      expect(text).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3}: Ran zulip-manage change_user_role -r '' iago@zulip.com admin\n$/);
      expect(() => logInvocation(path.join(dir, "missing", "deeper"), ["x"])).not.toThrow();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  it("formats asctime like Python logging", () => {
    expect(asctime(new Date(2026, 0, 2, 3, 4, 5, 6))).toBe("2026-01-02 03:04:05,006");
  });
  it("quotes like shlex.quote", () => {
    expect(shellQuote("")).toBe("''");
    expect(shellQuote("a b")).toBe("'a b'");
    expect(shellQuote("it's")).toBe(`'it'"'"'s'`);
    expect(shellQuote("user@example.com")).toBe("user@example.com");
  });
});

describe("running as root", () => {
  it("does nothing for non-root users or with --allow-root", () => {
    expect(decideRunAs("/nonexistent", false, 1000)).toEqual({ action: "none" });
    expect(decideRunAs("/nonexistent", true, 0)).toEqual({ action: "none" });
  });
  it("switches to the owner of the deployment directory", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "zm-deploy-"));
    try {
      const nobody = 65534;
      if (process.getuid?.() === 0) {
        fs.chownSync(dir, nobody, nobody);
        const d = decideRunAs(dir, false, 0);
        expect(d.action).toBe("switch");
        expect(d.user?.uid).toBe(nobody);
        expect(d.reason).toContain(dir);
      } else {
        // Not root: the decision never switches.
        expect(decideRunAs(dir, false, process.getuid!()).action).toBe("none");
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("withTimeout (src/lib/timeout.ts)", () => {
  it("settles as the promise does, or rejects with ETIMEDOUT and the message after the deadline", async () => {
    await expect(withTimeout(Promise.resolve(7), 1000)).resolves.toBe(7);
    await expect(withTimeout(Promise.reject(new Error("boom")), 1000)).rejects.toThrow("boom");
    const never = new Promise<never>(() => undefined);
    await expect(withTimeout(never, 10)).rejects.toMatchObject({ message: "timed out", code: "ETIMEDOUT" });
    await expect(withTimeout(never, 10, "SMTP server h:25: no answer within 0.01 s")).rejects.toThrow("SMTP server h:25: no answer within 0.01 s");
  });
});

describe("escapeMarkdownText (Python-Markdown's _escape_cdata)", () => {
  it("escapes & < > but keeps character references, as RE_AMP does", () => {
    const samples = ["a & b", "&amp;", "&#39;", "&#x1F;", "&#X1f;", "&#abc;", "&#xyz;", "&nbsp;", "&NBSP;", "<b>", "&;", "&a_b;", "R&D; & co"];
    const python: string[] = JSON.parse(
      runPython(
        "import json, re, sys\nRE_AMP = re.compile(r'&(?!(?:\\#[0-9]+|\\#x[0-9a-f]+|[0-9a-z]+);)', re.I)\n" +
          "print(json.dumps([RE_AMP.sub('&amp;', s).replace('<', '&lt;').replace('>', '&gt;') for s in json.loads(sys.argv[1])]))",
        [JSON.stringify(samples)],
      ),
    );
    expect(samples.map(escapeMarkdownText)).toEqual(python);
    expect(escapeMarkdownText("&#abc; &#x1F;")).toBe("&amp;#abc; &#x1F;");
  });
});
