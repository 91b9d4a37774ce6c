// Unit tests for the literal-only settings.py reader (no database).
import { describe, expect, it } from "vitest";
import { parsePySettings, PySettingsParseError, untrustedReason, type PyAssignment } from "../src/config/pysettings.js";

/** Shorthand: the literal value assigned to NAME (fails the test if not a literal). */
function valueOf(text: string, name: string): unknown {
  const a = parsePySettings(text).assignments[name];
  expect(a, `${name} should be assigned`).toBeDefined();
  expect(a!.ok, `${name} should be a literal: ${JSON.stringify(a)}`).toBe(true);
  return (a as Extract<PyAssignment, { ok: true }>).value;
}

function notLiteral(text: string, name: string): Extract<PyAssignment, { ok: false }> {
  const a = parsePySettings(text).assignments[name];
  expect(a, `${name} should be assigned`).toBeDefined();
  expect(a!.ok, `${name} should NOT be a literal`).toBe(false);
  return a as Extract<PyAssignment, { ok: false }>;
}

// A settings file shaped like a real /etc/zulip/settings.py: the installer's
// single-quoted edits, the typing/config/LDAP imports, a multi-line LDAPSearch,
// annotations, multi-line dicts with comments, disabled settings as comments.
const PROD_LIKE = `from typing import Any

from .config import get_secret

################################################################
## Zulip Server settings.
##
## Remember to restart the server after making changes here!

################################
## Mandatory settings.

EXTERNAL_HOST = 'chat.example.org'
ZULIP_ADMINISTRATOR = 'admin@example.org'

## Mobile push notifications (installer writes a bare boolean).
ZULIP_SERVICE_PUSH_NOTIFICATIONS = True
# ZULIP_SERVICE_SUBMIT_USAGE_STATISTICS = False

################
## Outgoing email (SMTP) settings.

# EMAIL_HOST = "smtp.example.com"
EMAIL_HOST = "smtp.example.org"  # our relay
EMAIL_HOST_USER = "zulip@example.org"
EMAIL_PORT = 587
EMAIL_USE_TLS = True

## Where to store uploaded files.
LOCAL_UPLOADS_DIR = "/home/zulip/uploads"
MAX_FILE_UPLOAD_SIZE = 25

AUTHENTICATION_BACKENDS: tuple[str, ...] = (
    "zproject.backends.EmailAuthBackend",  # Email and password; just requires SMTP setup
    # "zproject.backends.GoogleAuthBackend",  # Google auth, setup below
    "zproject.backends.ZulipLDAPAuthBackend",  # LDAP, setup below
)

## LDAP integration.
import ldap
from django_auth_ldap.config import (
    GroupOfUniqueNamesType,
    LDAPGroupQuery,
    LDAPSearch,
    LDAPSearchUnion,
)

AUTH_LDAP_SERVER_URI = "ldaps://ldap.example.org"
AUTH_LDAP_BIND_DN = ""
AUTH_LDAP_USER_SEARCH = LDAPSearch(
    "ou=users,dc=example,dc=org", ldap.SCOPE_SUBTREE, "(uid=%(user)s)"
)
LDAP_APPEND_DOMAIN = None
AUTH_LDAP_USER_ATTR_MAP = {
    ## full_name or both first_name and last_name are required
    "full_name": "cn",
    # "avatar": "thumbnailPhoto",
}

SOCIAL_AUTH_SAML_ORG_INFO = {
    "en-US": {
        "displayname": "Example Zulip",
        "name": "zulip",
        "url": "{}{}".format("https://", EXTERNAL_HOST),
    },
}
SOCIAL_AUTH_SAML_ENABLED_IDPS: dict[str, Any] = {
    "idp_name": {
        "entity_id": "https://idp.example.org",
        "url": "https://idp.example.org/saml2",
        "attr_user_permanent_id": "email",
        "display_name": 'SAML',
        "limit_to_subdomains": ["zulip"],
    },
}

REALM_HOSTS = {
    "sales": "sales.example.net",
}
CAMO_URI = ""
RATE_LIMITING_RULES = {
    "api_by_user": [
        (60, 200),  # 200 per minute
    ],
}
`;

describe("parsePySettings: a production-style settings.py", () => {
  const parsed = parsePySettings(PROD_LIKE);
  const lines = PROD_LIKE.split("\n");
  const lineOf = (needle: string) => lines.findIndex((l) => l.startsWith(needle)) + 1;

  it("reads the installer's single-quoted edits and bare booleans", () => {
    expect(parsed.assignments.EXTERNAL_HOST).toEqual({
      ok: true,
      value: "chat.example.org",
      line: lineOf("EXTERNAL_HOST"),
      source: "'chat.example.org'",
      kind: "assign",
    });
    expect(parsed.assignments.ZULIP_ADMINISTRATOR).toMatchObject({ ok: true, value: "admin@example.org" });
    expect(parsed.assignments.ZULIP_SERVICE_PUSH_NOTIFICATIONS).toMatchObject({ ok: true, value: true });
  });

  it("ignores commented-out settings and trailing comments", () => {
    expect(parsed.assignments.ZULIP_SERVICE_SUBMIT_USAGE_STATISTICS).toBeUndefined();
    expect(parsed.assignments.EMAIL_HOST).toMatchObject({ ok: true, value: "smtp.example.org", line: lineOf("EMAIL_HOST =") });
    expect(parsed.assignments.EMAIL_PORT).toMatchObject({ ok: true, value: 587 });
    expect(parsed.assignments.EMAIL_USE_TLS).toMatchObject({ ok: true, value: true });
  });

  it("reads a type-annotated multi-line tuple with comments inside", () => {
    expect(parsed.assignments.AUTHENTICATION_BACKENDS).toMatchObject({
      ok: true,
      kind: "annotated",
      line: lineOf("AUTHENTICATION_BACKENDS"),
      value: ["zproject.backends.EmailAuthBackend", "zproject.backends.ZulipLDAPAuthBackend"],
    });
  });

  it("records the multi-line LDAPSearch(...) call as not a literal, and keeps going", () => {
    const a = parsed.assignments.AUTH_LDAP_USER_SEARCH!;
    expect(a.ok).toBe(false);
    expect(a.line).toBe(lineOf("AUTH_LDAP_USER_SEARCH"));
    expect(a.source).toBe('LDAPSearch(\n    "ou=users,dc=example,dc=org", ldap.SCOPE_SUBTREE, "(uid=%(user)s)"\n)');
    expect((a as { reason: string }).reason).toBe("a function call");
    // The statement after the call is parsed normally.
    expect(parsed.assignments.LDAP_APPEND_DOMAIN).toMatchObject({ ok: true, value: null, line: lineOf("LDAP_APPEND_DOMAIN") });
  });

  it("reads multi-line dicts with comments and nested structures", () => {
    expect(parsed.assignments.AUTH_LDAP_USER_ATTR_MAP).toMatchObject({ ok: true, value: { full_name: "cn" } });
    expect(parsed.assignments.SOCIAL_AUTH_SAML_ENABLED_IDPS).toMatchObject({
      ok: true,
      kind: "annotated",
      value: {
        idp_name: {
          entity_id: "https://idp.example.org",
          url: "https://idp.example.org/saml2",
          attr_user_permanent_id: "email",
          display_name: "SAML",
          limit_to_subdomains: ["zulip"],
        },
      },
    });
    expect(parsed.assignments.REALM_HOSTS).toMatchObject({ ok: true, value: { sales: "sales.example.net" } });
    expect(parsed.assignments.RATE_LIMITING_RULES).toMatchObject({ ok: true, value: { api_by_user: [[60, 200]] } });
  });

  it("a dict containing a .format() call is not a literal", () => {
    const a = parsed.assignments.SOCIAL_AUTH_SAML_ORG_INFO!;
    expect(a.ok).toBe(false);
    expect(a.source).toContain('"url": "{}{}".format("https://", EXTERNAL_HOST)');
  });

  it("records imports (single and multi-line) and nothing else as top-level statements", () => {
    expect(parsed.imports.map((i) => [i.line, i.module, i.names, i.star])).toEqual([
      [1, "typing", ["Any"], false],
      [3, ".config", ["get_secret"], false],
      [lineOf("import ldap"), "ldap", ["ldap"], false],
      [lineOf("from django_auth_ldap"), "django_auth_ldap.config", ["GroupOfUniqueNamesType", "LDAPGroupQuery", "LDAPSearch", "LDAPSearchUnion"], false],
    ]);
    // Importing upper-case names binds them: LDAPSearch etc. are not [A-Z0-9_] names, so no entry.
    expect(Object.keys(parsed.assignments)).not.toContain("LDAPSearch");
    expect(parsed.otherStatements).toEqual([]);
    expect(parsed.conditionalNames).toEqual([]);
    expect(parsed.dynamic).toEqual([]);
    expect(parsed.mutations).toEqual([]);
  });
});

describe("literal types", () => {
  it("strings in every quote style", () => {
    expect(valueOf(`X = 'a"b'`, "X")).toBe('a"b');
    expect(valueOf(`X = "a'b"`, "X")).toBe("a'b");
    expect(valueOf(`X = """multi\nline 'q' "q" """`, "X")).toBe("multi\nline 'q' \"q\" ");
    expect(valueOf(`X = '''a\n#not a comment\nb'''`, "X")).toBe("a\n#not a comment\nb");
    expect(valueOf(`X = "" # empty`, "X")).toBe("");
    expect(valueOf(`X = u"unicode prefix"`, "X")).toBe("unicode prefix");
    expect(valueOf(`X = "héllo ✓"`, "X")).toBe("héllo ✓");
  });

  it("escape sequences", () => {
    expect(valueOf(String.raw`X = "tab\tnl\nq\"s\'bs\\"`, "X")).toBe("tab\tnl\nq\"s'bs\\");
    expect(valueOf(String.raw`X = "\x41\u00e9\U0001F600\101\0"`, "X")).toBe("Aé😀A\0");
    expect(valueOf(String.raw`X = "\a\b\f\v\r"`, "X")).toBe("\x07\b\f\v\r");
    // Unknown escapes keep their backslash (Python warns but keeps it).
    expect(valueOf(String.raw`X = "\d+\."`, "X")).toBe("\\d+\\.");
    // Backslash-newline inside a string continues it.
    expect(valueOf(`X = "ab\\\ncd"`, "X")).toBe("abcd");
  });

  it("raw strings keep backslashes, and an escaped quote does not end them", () => {
    expect(valueOf(String.raw`X = r"C:\new\table"`, "X")).toBe(String.raw`C:\new\table`);
    expect(valueOf(String.raw`X = R'\d+\''`, "X")).toBe(String.raw`\d+\'`);
    expect(
      valueOf(
        String.raw`X = r"""raw\n
triple"""`,
        "X",
      ),
    ).toBe("raw\\n\ntriple");
  });

  it("adjacent string literals are concatenated, across lines inside parentheses", () => {
    expect(valueOf(`X = "a" 'b' "c"`, "X")).toBe("abc");
    expect(valueOf(`X = (\n    "https://"\n    # a comment between parts\n    "example.com"\n)`, "X")).toBe("https://example.com");
    expect(valueOf(`X = "a" r"\\n"`, "X")).toBe("a\\n");
  });

  it("numbers", () => {
    expect(valueOf("X = 42", "X")).toBe(42);
    expect(valueOf("X = -7", "X")).toBe(-7);
    expect(valueOf("X = +3", "X")).toBe(3);
    expect(valueOf("X = - - 2", "X")).toBe(2);
    expect(valueOf("X = 1_000_000", "X")).toBe(1000000);
    expect(valueOf("X = 0x1F", "X")).toBe(31);
    expect(valueOf("X = 0o755", "X")).toBe(493);
    expect(valueOf("X = 0b101", "X")).toBe(5);
    expect(valueOf("X = 1.5", "X")).toBe(1.5);
    expect(valueOf("X = .5", "X")).toBe(0.5);
    expect(valueOf("X = 5.", "X")).toBe(5);
    expect(valueOf("X = 1e3", "X")).toBe(1000);
    expect(valueOf("X = -2.5E-1", "X")).toBe(-0.25);
    expect(valueOf("X = 0", "X")).toBe(0);
    expect(valueOf("X = 00", "X")).toBe(0);
    expect(valueOf("X = 12345678901234567890", "X")).toBe(Number("12345678901234567890")); // a float, as JavaScript has no bigger integer
  });

  it("True, False, None", () => {
    expect(valueOf("X = True", "X")).toBe(true);
    expect(valueOf("X = False", "X")).toBe(false);
    expect(valueOf("X = None", "X")).toBe(null);
  });

  it("lists, tuples, dicts; trailing commas; parenthesized values", () => {
    expect(valueOf("X = []", "X")).toEqual([]);
    expect(valueOf("X = ()", "X")).toEqual([]);
    expect(valueOf("X = {}", "X")).toEqual({});
    expect(valueOf("X = [1, 'two', None,]", "X")).toEqual([1, "two", null]);
    expect(valueOf("X = ('only',)", "X")).toEqual(["only"]);
    expect(valueOf("X = ('not a tuple')", "X")).toBe("not a tuple");
    expect(valueOf("X = ((1))", "X")).toBe(1);
    expect(valueOf("X = 1, 2", "X")).toEqual([1, 2]);
    expect(valueOf("X = 'a',", "X")).toEqual(["a"]);
    expect(valueOf("X = {'a': 1, \"b\": [True, (2, 3)], 5: 'five',}", "X")).toEqual({ a: 1, b: [true, [2, 3]], 5: "five" });
    expect(valueOf("X = {'k': 1, 'k': 2}", "X")).toEqual({ k: 2 });
    expect(valueOf("X = [\n  [1, 2],  # first\n  [3, 4],\n]", "X")).toEqual([
      [1, 2],
      [3, 4],
    ]);
  });

  it("a __proto__ dict key is stored as data, never as a prototype", () => {
    const v = valueOf(`X = {"__proto__": {"polluted": True}}`, "X") as Record<string, unknown>;
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype);
    expect(Object.keys(v)).toEqual(["__proto__"]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe("non-literal expressions are recorded, never evaluated", () => {
  const cases: [string, string, string][] = [
    ['X = get_secret("x")', 'get_secret("x")', "a function call"],
    ["X = OTHER", "OTHER", "a reference to another name (OTHER)"],
    ['X = "https://" + EXTERNAL_HOST', '"https://" + EXTERNAL_HOST', "an expression with operators"],
    ['X = "a" + "b"', '"a" + "b"', "an expression with operators"],
    ['X = f"https://{EXTERNAL_HOST}"', 'f"https://{EXTERNAL_HOST}"', "an f-string"],
    ['X = "%s@example.com" % name', '"%s@example.com" % name', "%-formatting"],
    ["X = [h for h in HOSTS]", "[h for h in HOSTS]", "a comprehension"],
    ["X = {k: v for k, v in Y}", "{k: v for k, v in Y}", "a comprehension"],
    ["X = 1 if DEBUG else 2", "1 if DEBUG else 2", "a conditional expression"],
    ["X = {'zulip'}", "{'zulip'}", "a set"],
    ["X = b'bytes'", "b'bytes'", "a bytes literal"],
    ["X = 60 * 60", "60 * 60", "an expression with operators"],
    ["X = os.environ['X']", "os.environ['X']", "an attribute or subscript expression"],
    ["X = lambda a=1: a", "lambda a=1: a", "a lambda"],
    ["X = [*A, 'b']", "[*A, 'b']", "unpacking"],
    ["X = {**A}", "{**A}", "dict unpacking"],
    ["X = 2j", "2j", "a complex number"],
    ["X = 007", "007", "an invalid number (leading zeros)"],
    ["X = not True", "not True", "an expression with operators"],
    ["X = -'a'", "-'a'", "an expression with operators"],
    ["X = ", "", "a syntax error (no value)"],
    [String.raw`X = "\N{BULLET}"`, String.raw`"\N{BULLET}"`, "a \\N{...} escape"],
  ];
  for (const [text, source, reason] of cases) {
    it(`${text} → not a literal (${reason})`, () => {
      const a = notLiteral(text, "X");
      expect(a).toMatchObject({ line: 1, source, reason });
    });
  }

  it("f-strings with nested quotes, braces and format specs are skipped as one token", () => {
    const text = [`A = f"{x['k']}{{literal}}{y:>{width}}"`, `B = f'{"nested" + f"{z}"}'`, `C = F"""multi {a}\n{b!r:^10}"""`, `D = rf"\\d{n}"`, `E = 1`].join(
      "\n",
    );
    const p = parsePySettings(text);
    for (const n of ["A", "B", "C", "D"]) expect(p.assignments[n]).toMatchObject({ ok: false, reason: "an f-string" });
    expect(p.assignments.E).toMatchObject({ ok: true, value: 1, line: 6 });
  });

  it("a non-literal spanning many lines is skipped correctly", () => {
    const text = `A = dict(\n    x=1,\n    y="}",  # tricky\n    z=[1, (2,\n 3)],\n)\nB = 'after'`;
    const p = parsePySettings(text);
    expect(p.assignments.A).toMatchObject({ ok: false, line: 1, reason: "a function call" });
    expect(p.assignments.B).toMatchObject({ ok: true, value: "after", line: 7 });
  });

  it("backslash continuation joins lines", () => {
    const p = parsePySettings('A = "x" \\\n    "y"\nB = 1 + \\\n  2\nC = 3');
    expect(p.assignments.A).toMatchObject({ ok: true, value: "xy", line: 1 });
    expect(p.assignments.B).toMatchObject({ ok: false, line: 3 });
    expect(p.assignments.C).toMatchObject({ ok: true, value: 3, line: 5 });
  });
});

describe("which assignment counts", () => {
  it("the last top-level assignment wins, literal or not", () => {
    const p = parsePySettings('X = 1\nX = "two"\nY = "a"\nY = get_secret("y")\nZ = get_secret("z")\nZ = 3');
    expect(p.assignments.X).toMatchObject({ ok: true, value: "two", line: 2 });
    expect(p.assignments.Y).toMatchObject({ ok: false, line: 4, source: 'get_secret("y")' });
    expect(p.assignments.Z).toMatchObject({ ok: true, value: 3, line: 6 });
  });

  it("only upper-case names are recorded", () => {
    const p = parsePySettings("lower = 1\nMixed = 2\n_PRIVATE = 3\nOK_2 = 4\nA = 5");
    expect(Object.keys(p.assignments).sort()).toEqual(["A", "OK_2"]);
  });

  it("chained, annotated-only, augmented and unpacking assignments", () => {
    const p = parsePySettings(["A = B = 'same'", "C: int", "D: list[str] = []", "E = (1,)", "E += (2,)", "F, G = 1, 2", "(H, [I, *J]) = K"].join("\n"));
    expect(p.assignments.A).toMatchObject({ ok: true, value: "same" });
    expect(p.assignments.B).toMatchObject({ ok: true, value: "same" });
    expect(p.assignments.C).toBeUndefined();
    expect(p.otherStatements).toEqual([]);
    expect(p.assignments.D).toMatchObject({ ok: true, value: [], kind: "annotated" });
    expect(p.assignments.E).toMatchObject({ ok: false, kind: "augmented", line: 5, source: "E += (2,)" });
    for (const n of ["F", "G", "H", "I", "J"]) expect(p.assignments[n]).toMatchObject({ ok: false, kind: "unpack" });
  });

  it("semicolon-separated statements", () => {
    const p = parsePySettings("A = 1; B = 'x' ; C = get_secret('c')");
    expect(p.assignments.A).toMatchObject({ ok: true, value: 1 });
    expect(p.assignments.B).toMatchObject({ ok: true, value: "x" });
    expect(p.assignments.C).toMatchObject({ ok: false });
  });

  it("keyword arguments and comparisons are not assignments", () => {
    const p = parsePySettings("configure(A=1)\nB == 2\nprint(C := 3)");
    expect(p.assignments.A).toBeUndefined();
    expect(p.assignments.B).toBeUndefined();
    expect(p.assignments.C).toMatchObject({ ok: false, kind: "walrus" });
    expect(p.otherStatements.map((s) => s.line)).toEqual([1, 2, 3]);
  });

  it("imports of upper-case names and del count as non-literal bindings", () => {
    const p = parsePySettings("A = 1\nfrom .other import A, B as C\nimport D\nimport x.y as E\nF = 2\ndel F");
    expect(p.assignments.A).toMatchObject({ ok: false, kind: "import", line: 2 });
    expect(p.assignments.C).toMatchObject({ ok: false, kind: "import" });
    expect(p.assignments.B).toBeUndefined();
    expect(p.assignments.D).toMatchObject({ ok: false, kind: "import", line: 3 });
    expect(p.assignments.E).toMatchObject({ ok: false, kind: "import" });
    expect(p.assignments.F).toMatchObject({ ok: false, kind: "del", line: 6 });
    expect(p.imports.map((i) => i.module)).toEqual([".other", "D", "x.y"]);
  });

  it("soft keywords used as names are ordinary statements", () => {
    const p = parsePySettings("match = 1\nMATCH = 2\ntype X = int\nY = 3");
    expect(p.assignments.MATCH).toMatchObject({ ok: true, value: 2 });
    expect(p.assignments.X).toMatchObject({ ok: false, kind: "typealias" });
    expect(p.assignments.Y).toMatchObject({ ok: true, value: 3, line: 4 });
  });
});

describe("indented blocks, mutations and dynamic code", () => {
  it("assignments inside if/try/for/with blocks are conditional, not assignments", () => {
    const text = [
      "EMAIL_HOST = 'a'",
      "if os.path.exists('/etc/x'):",
      "    EMAIL_HOST = 'b'",
      "    if nested:",
      "        DEEP = 1",
      "else:",
      "    OTHER = 2",
      "try:",
      "    from .local import EXTRA",
      "except ImportError as ERR:",
      "    pass",
      "for LOOP_VAR in range(3): INLINE = LOOP_VAR",
      "with open('f') as HANDLE:",
      "    READ = HANDLE.read()",
      "AFTER = 'top'",
    ].join("\n");
    const p = parsePySettings(text);
    expect(p.assignments.EMAIL_HOST).toMatchObject({ ok: true, value: "a", line: 1 });
    expect(p.conditionalNames).toEqual(["EMAIL_HOST", "DEEP", "OTHER", "EXTRA", "ERR", "LOOP_VAR", "INLINE", "HANDLE", "READ"]);
    expect(p.conditional.find((c) => c.name === "EMAIL_HOST")).toEqual({ name: "EMAIL_HOST", line: 3 });
    expect(p.assignments.DEEP).toBeUndefined();
    expect(p.assignments.AFTER).toMatchObject({ ok: true, value: "top", line: 15 });
    expect(p.imports.find((i) => i.module === ".local")).toMatchObject({ conditional: true, names: ["EXTRA"] });
  });

  it("function and class bodies do not assign module names, except through global", () => {
    const text = [
      "def helper(x):",
      "    LOCAL = 1",
      "    global GLOB",
      "    GLOB = x",
      "    return LOCAL",
      "class Conf:",
      "    ATTR = 1",
      "    def method(self):",
      "        M = 2",
      "@decorator",
      "def f(): INLINE_LOCAL = 1",
      "TOP = 1",
    ].join("\n");
    const p = parsePySettings(text);
    expect(p.conditionalNames).toEqual(["GLOB"]);
    expect(p.conditional).toEqual([{ name: "GLOB", line: 3, always: true }]);
    expect(Object.keys(p.assignments)).toEqual(["TOP"]);
  });

  it("records in-place modifications of upper-case names", () => {
    const p = parsePySettings("REALM_HOSTS = {}\nREALM_HOSTS['x'] = 'y'\nALLOWED_HOSTS = []\nALLOWED_HOSTS.append('z')\nA = {}\nA.b.c = 1\nlower.attr = 2");
    expect(p.mutations.map((m) => [m.name, m.line])).toEqual([
      ["REALM_HOSTS", 2],
      ["ALLOWED_HOSTS", 4],
      ["A", 6],
    ]);
    expect(p.assignments.REALM_HOSTS).toMatchObject({ ok: true, value: {}, line: 1 });
  });

  it("records exec/globals/setattr and star imports", () => {
    const p = parsePySettings("exec(open('x').read())\nglobals()['A'] = 1\nfrom .extra import *\nsetattr(mod, 'B', 2)");
    expect(p.dynamic.map((d) => d.line)).toEqual([1, 2, 4]);
    expect(p.imports).toEqual([{ line: 3, source: "from .extra import *", module: ".extra", names: [], star: true, conditional: false }]);
  });
});

describe("untrustedReason", () => {
  it("is null for literal and for untouched names", () => {
    const p = parsePySettings("A = 1");
    expect(untrustedReason(p, "A")).toBeNull();
    expect(untrustedReason(p, "NOT_THERE")).toBeNull();
  });

  it("explains non-literal, conditional, mutated, star-import and dynamic cases", () => {
    const text = [
      "A = get_secret('a')", // 1
      "B = 1", // 2
      "if X:", // 3
      "    B = 2", // 4
      "if Y:", // 5
      "    C = 3", // 6
      "C = 4", // 7  (top-level after the conditional: wins)
      "D = {}", // 8
      "D['k'] = 'v'", // 9
      "E = 5", // 10
      "from .more import *", // 11
      "F = 6", // 12 (after the star import: wins)
      "exec('G = 1')", // 13
    ].join("\n");
    const p = parsePySettings(text);
    expect(untrustedReason(p, "A")).toEqual({ kind: "not-literal", line: 1, source: "get_secret('a')", detail: "a function call" });
    expect(untrustedReason(p, "B")).toEqual({ kind: "conditional", line: 4, source: "B" });
    expect(untrustedReason(p, "C")).toEqual({ kind: "star-import", line: 11, source: "from .more import *" });
    expect(untrustedReason(p, "D")).toEqual({ kind: "mutated", line: 9, source: "D['k'] = 'v'" });
    expect(untrustedReason(p, "E")).toEqual({ kind: "star-import", line: 11, source: "from .more import *" });
    expect(untrustedReason(p, "F")).toEqual({ kind: "dynamic", line: 13, source: "exec('G = 1')" });
    expect(untrustedReason(p, "UNSET")).toEqual({ kind: "star-import", line: 11, source: "from .more import *" });
  });

  it("a global assignment inside a function is never overridden", () => {
    const p = parsePySettings("def f():\n    global A\n    A = 1\nA = 2");
    expect(untrustedReason(p, "A")).toEqual({ kind: "conditional", line: 2, source: "A" });
  });
});

describe("errors and robustness", () => {
  const errorCases: [string, number, RegExp][] = [
    ['A = 1\nB = "unterminated\nC = 3', 2, /unterminated string literal/],
    ["A = 1\nB = '''never closed\n\nC = 3", 2, /unterminated triple-quoted string literal/],
    ["A = 1\n\nB = [1, 2,\nC = 3\n", 3, /'\[' was never closed/],
    ["A = {'a': (1, 2}\n", 1, /does not match/],
    ["A = 1)\n", 1, /unmatched '\)'/],
    ['A = f"{x\n', 1, /unterminated string literal/],
    ["A = r'\\'\n", 1, /unterminated string literal/],
  ];
  for (const [text, line, re] of errorCases) {
    it(`${JSON.stringify(text)} → parse error at line ${line}`, () => {
      let err: unknown;
      try {
        parsePySettings(text);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(PySettingsParseError);
      const pe = err as PySettingsParseError;
      expect(pe.line).toBe(line);
      expect(pe.message).toMatch(re);
      expect(pe.message).toMatch(new RegExp(`^line ${line}: `));
      expect(pe.exitCode).toBe(3);
    });
  }

  it("names the file when given a path", () => {
    expect(() => parsePySettings('X = "a', { path: "/etc/zulip/settings.py" })).toThrow(
      /^Cannot read \/etc\/zulip\/settings\.py: Python syntax error at line 1: unterminated string literal/,
    );
  });

  it("too deep nesting is an error, not a stack overflow", () => {
    expect(() => parsePySettings("X = " + "[".repeat(5000) + "]".repeat(5000))).toThrow(PySettingsParseError);
    expect(valueOf("X = " + "[".repeat(150) + "]".repeat(150), "X")).toBeDefined();
  });

  it("handles CRLF and CR line endings and a BOM", () => {
    const p = parsePySettings('\uFEFFA = "x"\r\nB = """1\r\n2"""\rC = 3\r\n');
    expect(p.assignments.A).toMatchObject({ ok: true, value: "x", line: 1 });
    expect(p.assignments.B).toMatchObject({ ok: true, value: "1\n2", line: 2 });
    expect(p.assignments.C).toMatchObject({ ok: true, value: 3, line: 4 });
  });

  it("odd characters and stray syntax become non-literals, not crashes", () => {
    const p = parsePySettings("A = $foo\nB = 1 ?\nC = `x`\nD = 'ok'\n\\\nE = 2");
    expect(p.assignments.A).toMatchObject({ ok: false });
    expect(p.assignments.B).toMatchObject({ ok: false });
    expect(p.assignments.D).toMatchObject({ ok: true, value: "ok" });
    expect(p.assignments.E).toMatchObject({ ok: true, value: 2 });
  });

  it("random inputs either parse or raise PySettingsParseError, quickly", () => {
    // Deterministic pseudo-random generator so failures are reproducible.
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const alphabet = [
      "A",
      "B",
      " ",
      "=",
      "'",
      '"',
      "(",
      ")",
      "[",
      "]",
      "{",
      "}",
      ",",
      ":",
      "#",
      "\n",
      "\\",
      "1",
      ".",
      "f",
      "r",
      "+",
      "    ",
      '"""',
      "if x:",
      "{x}",
      "-",
      "*",
    ];
    const start = Date.now();
    for (let n = 0; n < 3000; n++) {
      let s = "";
      const len = Math.floor(rand() * 60);
      for (let k = 0; k < len; k++) s += alphabet[Math.floor(rand() * alphabet.length)];
      try {
        parsePySettings(s);
      } catch (e) {
        if (!(e instanceof PySettingsParseError)) throw new Error(`crash on ${JSON.stringify(s)}: ${e}`);
      }
    }
    expect(Date.now() - start).toBeLessThan(10_000);
  });
});
