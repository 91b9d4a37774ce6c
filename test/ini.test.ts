// Unit tests for the RawConfigParser-compatible INI reader and the in-place updater (no database).
import { describe, expect, it } from "vitest";
import { IniParseError, iniGet, parseIni, parseIniDetailed, updateIniValues } from "../src/config/ini.js";
import { runPython } from "./helpers/tools.js";

const obj = (m: Map<string, Map<string, string>>) => Object.fromEntries([...m].map(([s, kv]) => [s, Object.fromEntries(kv)]));

describe("parseIni", () => {
  it("reads a zulip-secrets.conf", () => {
    const text = [
      "[secrets]",
      "avatar_salt = 0123abcd",
      "rabbitmq_password = p%(x)s$HOME",
      "shared_secret=s3cret",
      "secret_key = a#b;c!@#$%^&*(-_=+)",
      "camo_key: xyz",
      "",
    ].join("\n");
    expect(obj(parseIni(text))).toEqual({
      secrets: {
        avatar_salt: "0123abcd",
        rabbitmq_password: "p%(x)s$HOME", // no interpolation
        shared_secret: "s3cret",
        secret_key: "a#b;c!@#$%^&*(-_=+)", // no inline comments
        camo_key: "xyz",
      },
    });
  });

  it("lower-cases keys, keeps section names as written, trims whitespace", () => {
    const m = parseIni("[Machine]\n  Deploy_Type   =   production  \nPUPPET_CLASSES=zulip::profile::standalone\n");
    expect(obj(m)).toEqual({ Machine: { deploy_type: "production", puppet_classes: "zulip::profile::standalone" } });
    expect(iniGet(m, "Machine", "DEPLOY_TYPE")).toBe("production");
    expect(iniGet(m, "machine", "deploy_type")).toBeUndefined();
  });

  it("whitespace is Python's (str.strip() and re's \\s), as configparser reads it: not JavaScript's trim", () => {
    const text = ["[s]", "key\u3000=\x85value\x1c", "\x1fcontinued\u2028", "bom = \ufeffkept\ufeff", "nel\x85: x ", "plain=  y\u00a0", ""].join("\n");
    const python = JSON.parse(
      runPython(
        "import configparser, json, sys\ncp = configparser.RawConfigParser()\ncp.read_string(sys.argv[1])\nprint(json.dumps({k: v for k, v in cp['s'].items()}))",
        [text],
      ),
    );
    expect(obj(parseIni(text)).s).toEqual(python);
    expect(python).toEqual({ key: "value\ncontinued", bom: "\ufeffkept\ufeff", nel: "x", plain: "y" });
  });

  it("splits at the first '=' or ':'", () => {
    expect(obj(parseIni("[s]\nurl = https://x:1/a=b\nk: v = w\nempty =\n"))).toEqual({
      s: { url: "https://x:1/a=b", k: "v = w", empty: "" },
    });
  });

  it("skips full-line # and ; comments (also indented) and blank lines", () => {
    const text = "# top comment\n; another\n\n[machine]\n  # indented comment\ndeploy_type = production\n\n;x = 1\n";
    expect(obj(parseIni(text))).toEqual({ machine: { deploy_type: "production" } });
  });

  it("joins indented continuation lines with newlines", () => {
    const text = ["[s]", "multi = first", "    second", "", "    # a comment inside the value is skipped", "\tthird", "", "", "after = x", ""].join("\n");
    expect(obj(parseIni(text))).toEqual({ s: { multi: "first\nsecond\n\nthird", after: "x" } });
  });

  it("continuation needs more indentation than the option line", () => {
    const text = "[s]\n  a = 1\n  b = 2\n    c\n";
    expect(obj(parseIni(text))).toEqual({ s: { a: "1", b: "2\nc" } });
  });

  it("duplicate sections merge and duplicate keys: last wins (and are reported)", () => {
    const text = "[s]\na = 1\nb = 1\n[t]\nx = 0\n[s]\na = 2\nA = 3\n";
    const r = parseIniDetailed(text);
    expect(obj(r.sections)).toEqual({ s: { a: "3", b: "1" }, t: { x: "0" } });
    expect(r.duplicates).toEqual([
      { section: "s", line: 6 },
      { section: "s", key: "a", line: 7 },
      { section: "s", key: "a", line: 8 },
    ]);
  });

  it("DEFAULT keys are visible in every section; a section's own keys win", () => {
    const m = parseIni("[DEFAULT]\nshared = d\nk = default\n[a]\nk = own\n[b]\n");
    expect(obj(m)).toEqual({ DEFAULT: { shared: "d", k: "default" }, a: { k: "own", shared: "d" }, b: { shared: "d", k: "default" } });
  });

  it("accepts CRLF and CR line endings", () => {
    expect(obj(parseIni("[s]\r\na = 1\r\nb = 2\rc = 3"))).toEqual({ s: { a: "1", b: "2", c: "3" } });
  });

  it("section header rules: greedy ']' and trailing text ignored", () => {
    expect([...parseIni("[a]b] trailing\nk = v\n").keys()]).toEqual(["a]b"]);
  });

  it("an empty file has no sections", () => {
    expect(parseIni("").size).toBe(0);
    expect(parseIni("\n# only comments\n").size).toBe(0);
  });

  it("rejects what Python rejects, with the line number", () => {
    const cases: [string, number, RegExp][] = [
      ["key = value\n[s]\n", 1, /no section headers/],
      ["[s]\na = 1\njust some words\n", 3, /expected "key = value"/],
      ["[s]\n= value\n", 2, /expected "key = value"/],
      ["[]\n", 1, /no section headers/],
    ];
    for (const [text, line, re] of cases) {
      let err: unknown;
      try {
        parseIni(text, { path: "/etc/zulip/zulip.conf" });
      } catch (e) {
        err = e;
      }
      expect(err, text).toBeInstanceOf(IniParseError);
      expect((err as IniParseError).line).toBe(line);
      expect((err as IniParseError).exitCode).toBe(3);
      expect((err as Error).message).toMatch(re);
      expect((err as Error).message).toMatch(new RegExp(`^Cannot parse /etc/zulip/zulip\\.conf line ${line}: `));
    }
  });
});

describe("updateIniValues", () => {
  const SECRETS = [
    "# Secrets for this Zulip server; keep private.",
    "[secrets]",
    "avatar_salt = aaaa",
    "; rabbitmq is local",
    "rabbitmq_password  =  old-rabbit",
    "shared_secret=old-shared",
    "",
    "# push notification service registration",
    "[other]",
    "zulip_org_id = not-this-one",
    "",
  ].join("\n");

  it("changes only the line of a changed key, keeping its spacing and everything else", () => {
    const out = updateIniValues(SECRETS, "secrets", { rabbitmq_password: "new-rabbit", shared_secret: "new-shared" });
    expect(out).toBe(
      SECRETS.replace("rabbitmq_password  =  old-rabbit", "rabbitmq_password  =  new-rabbit").replace("shared_secret=old-shared", "shared_secret=new-shared"),
    );
    expect(parseIni(out).get("secrets")!.get("rabbitmq_password")).toBe("new-rabbit");
  });

  it("returns the text unchanged (same string) when no value changes", () => {
    expect(updateIniValues(SECRETS, "secrets", { avatar_salt: "aaaa", AVATAR_SALT: "aaaa" })).toBe(SECRETS);
    expect(updateIniValues(SECRETS, "secrets", {})).toBe(SECRETS);
  });

  it("appends new keys after the last option of the section, before blank lines and the next section's comment", () => {
    const out = updateIniValues(SECRETS, "secrets", { zulip_org_id: "uuid-1", zulip_org_key: "key-1" });
    const lines = out.split("\n");
    expect(lines.slice(0, 8)).toEqual([
      "# Secrets for this Zulip server; keep private.",
      "[secrets]",
      "avatar_salt = aaaa",
      "; rabbitmq is local",
      "rabbitmq_password  =  old-rabbit",
      "shared_secret=old-shared",
      "zulip_org_id = uuid-1",
      "zulip_org_key = key-1",
    ]);
    expect(lines.slice(8).join("\n")).toBe(SECRETS.split("\n").slice(6).join("\n"));
    const parsed = parseIni(out);
    expect(parsed.get("secrets")!.get("zulip_org_id")).toBe("uuid-1");
    expect(parsed.get("other")!.get("zulip_org_id")).toBe("not-this-one");
  });

  it("matches keys case-insensitively and keeps the file's spelling of the key", () => {
    const out = updateIniValues("[secrets]\nCamo_Key = old\n", "secrets", { camo_key: "new" });
    expect(out).toBe("[secrets]\nCamo_Key = new\n");
  });

  it("creates a missing section at the end, after a blank line", () => {
    expect(updateIniValues("[machine]\ndeploy_type = production\n", "secrets", { a: "1", b: "2" })).toBe(
      "[machine]\ndeploy_type = production\n\n[secrets]\na = 1\nb = 2\n",
    );
    expect(updateIniValues("[machine]\nx = 1", "secrets", { a: "1" })).toBe("[machine]\nx = 1\n\n[secrets]\na = 1\n");
    expect(updateIniValues("[machine]\nx = 1\n\n", "secrets", { a: "1" })).toBe("[machine]\nx = 1\n\n[secrets]\na = 1\n");
    expect(updateIniValues("", "secrets", { a: "1" })).toBe("[secrets]\na = 1\n");
  });

  it("appends right after the header of an empty section", () => {
    expect(updateIniValues("[secrets]\n\n[x]\ny = 1\n", "secrets", { a: "1" })).toBe("[secrets]\na = 1\n\n[x]\ny = 1\n");
  });

  it("keeps CRLF line endings and a missing final newline", () => {
    expect(updateIniValues("[s]\r\na = 1\r\nb = 2", "s", { b: "3", c: "4" })).toBe("[s]\r\na = 1\r\nb = 3\r\nc = 4");
    expect(updateIniValues("[s]\r\na = 1\r\n", "s", { c: "4" })).toBe("[s]\r\na = 1\r\nc = 4\r\n");
  });

  it("replaces a multi-line value, dropping its continuation lines only", () => {
    const text = "[s]\nmulti = one\n  two\n  # comment stays\n  three\n\nnext = x\n";
    const out = updateIniValues(text, "s", { multi: "single" });
    expect(out).toBe("[s]\nmulti = single\n  # comment stays\n\nnext = x\n");
    expect(obj(parseIni(out))).toEqual({ s: { multi: "single", next: "x" } });
  });

  it("rewrites every definition of a repeated key, and appends to the last copy of a repeated section", () => {
    const text = "[s]\na = 1\n[t]\n[s]\na = 2\n";
    expect(updateIniValues(text, "s", { a: "9", b: "8" })).toBe("[s]\na = 9\n[t]\n[s]\na = 9\nb = 8\n");
  });

  it("values that equal the inherited DEFAULT are left alone; different ones are added", () => {
    const text = "[DEFAULT]\nk = d\n[s]\n";
    expect(updateIniValues(text, "s", { k: "d" })).toBe(text);
    expect(updateIniValues(text, "s", { k: "own" })).toBe("[DEFAULT]\nk = d\n[s]\nk = own\n");
  });

  it("values with % and special characters round-trip", () => {
    const value = "a%(b)s#;=:!@$^&*(-_=+)";
    const out = updateIniValues("[secrets]\n", "secrets", { secret_key: value });
    expect(parseIni(out).get("secrets")!.get("secret_key")).toBe(value);
  });

  it("refuses keys and values that could not be read back identically", () => {
    const bad: Record<string, string>[] = [
      { "a\nb": "x" },
      { "a=b": "x" },
      { "a:b": "x" },
      { " a": "x" },
      { "": "x" },
      { "#a": "x" },
      { "[a": "x" },
      { a: "x\ny" },
      { a: " leading" },
      { a: "trailing " },
    ];
    for (const u of bad) expect(() => updateIniValues("[s]\n", "s", u), JSON.stringify(u)).toThrow(/Invalid/);
  });

  it("the same key given twice with different case: the last one wins", () => {
    expect(updateIniValues("[s]\n", "s", { Key: "1", KEY: "2" })).toBe("[s]\nKEY = 2\n");
  });
});
