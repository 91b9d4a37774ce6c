// Files, devices and streams given to options: every read is bounded (a clear error, exit 1,
// never an out-of-memory abort or a command that never returns), pipes and process
// substitutions keep working, and an --output directory that cannot be created is an error,
// not a busy loop. Also: the export, which holds a user's private messages, is written 0600/0700.
import { execa } from "execa";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI_BIN, cliEnv, runCli } from "./helpers/cli.js";
import { type ConfDir, makeConfDir } from "./helpers/confdir.js";
import { type TestDatabase } from "./helpers/pg.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";
import { mkdirPrivate, readBounded } from "../src/lib/files.js";

let db: TestDatabase;
let conf: ConfDir;
let dir: string;
// A command that hangs is killed by runCli after this long; every case here must end well before.
const SHORT = { timeoutMs: 20_000 };

let copy: ServerCopy;

beforeAll(async () => {
  copy = await startServerCopy({ template: "zulip12_fresh", memcached: false });
  ({ db, conf } = copy);
  dir = fs.mkdtempSync(path.join(conf.root, "input-"));
}, 120_000);
afterAll(() => copy?.stop());

const cli = (args: string[], input?: string) => runCli(args, { confDir: conf, db, input, ...SHORT });

describe("password files", () => {
  it("change_password --password-file /dev/zero: refused past 64 KiB, exit 1", async () => {
    const r = await cli(["change_password", "-r", "2", "test@test.com", "--password-file", "/dev/zero"]);
    expect(r.timedOut).toBe(false);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("the password file /dev/zero is larger than 64 KiB; refusing to read it.");
  });

  it("create_user --password-file /dev/urandom returns with an error", async () => {
    const r = await cli(["create_user", "-r", "2", "new@test.com", "New User", "--password-file", "/dev/urandom", "--dry-run"]);
    expect(r.timedOut).toBe(false);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("the password file /dev/urandom is larger than 64 KiB");
  });

  it("a password on a pipe (process substitution) still works", async () => {
    const line = `${CLI_BIN} create_user -r 2 piped@test.com 'Piped User' --password-file <(printf 'horse-staple-battery-7') --dry-run --json`;
    const r = await execa("bash", ["-c", line], { env: cliEnv({ confDir: conf, db }), reject: false, timeout: 20_000, extendEnv: false });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ dry_run: true });
  });

  it("standard input ('-') is bounded too", async () => {
    const r = await cli(["change_password", "-r", "2", "test@test.com", "--password-file", "-"], "x".repeat(70 * 1024));
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("the password file standard input is larger than 64 KiB");
  });

  it("a directory is refused with a clear message", async () => {
    const r = await cli(["change_password", "-r", "2", "test@test.com", "--password-file", dir]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`Cannot read the password file ${dir}: it is a directory`);
  });

  it("create_user's prompts stop at an endless line on standard input", async () => {
    const r = await execa(CLI_BIN, ["create_user", "-r", "2"], {
      env: cliEnv({ confDir: conf, db }),
      inputFile: "/dev/zero",
      reject: false,
      timeout: 20_000,
      extendEnv: false,
    });
    expect(r.timedOut).toBe(false);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('The answer to "Email:" on standard input is longer than 64 KiB');
  });
});

describe("send_custom_email files", () => {
  it("--path /dev/zero: refused past 8 MiB, exit 1, no abort", async () => {
    const r = await cli(["send_custom_email", "-r", "zulip", "-a", "--path", "/dev/zero", "--dry-run"]);
    expect(r.timedOut).toBe(false);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("The Markdown template /dev/zero is larger than 8 MiB; refusing to read it.");
  });

  it("--json-file /dev/urandom: refused past 32 MiB, exit 1", async () => {
    const md = path.join(dir, "body.md");
    fs.writeFileSync(md, "Subject: Hi\n\nHello.\n");
    const r = await cli(["send_custom_email", "--path", md, "--json-file", "/dev/urandom", "--dry-run"]);
    expect(r.timedOut).toBe(false);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("--json-file /dev/urandom is larger than 32 MiB");
  });
});

describe("configuration files", () => {
  it("a settings.py that never ends is refused, not read into memory", async () => {
    const c = makeConfDir({ db: { name: db.name } });
    try {
      const settings = path.join(c.dir, "settings.py");
      fs.rmSync(settings);
      fs.symlinkSync("/dev/zero", settings);
      const r = await runCli(["list_realms"], { confDir: c, db, ...SHORT });
      expect(r.timedOut).toBe(false);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(`${settings} is larger than 16 MiB`);
    } finally {
      c.cleanup();
    }
  });
});

describe("--conf-dir", () => {
  it.each(["/dev/zero", "/proc", "/proc/self/fd"])("--conf-dir %s: the settings file is missing, exit 3 at once", async (d) => {
    const r = await runCli(["list_realms", "--conf-dir", d], { db, ...SHORT });
    expect(r.timedOut).toBe(false);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toContain(`Cannot read the Zulip settings file ${d}/settings.py: the file does not exist.`);
  });
});

describe("export_single_user output", () => {
  it("--output under /proc fails at once instead of spinning", async () => {
    const r = await cli(["export_single_user", "-r", "2", "test@test.com", "--output", "/proc/x"]);
    expect(r.timedOut).toBe(false);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/Cannot create \/proc\/x: \/proc\/x: E[A-Z]+/);
  });

  it("writes the export and its tarball for the owner only (0700 directories, 0600 files)", async () => {
    const out = path.join(dir, "exports", "deep", "test-user");
    const old = process.umask(0o022);
    let r;
    try {
      r = await cli(["export_single_user", "-r", "2", "test@test.com", "--output", out]);
    } finally {
      process.umask(old);
    }
    expect(r.exitCode, r.stderr).toBe(0);
    for (const d of [path.join(dir, "exports"), path.join(dir, "exports", "deep"), out]) {
      expect((fs.statSync(d).mode & 0o777).toString(8), d).toBe("700");
    }
    const walk = (p: string): string[] => (fs.statSync(p).isDirectory() ? [p, ...fs.readdirSync(p).flatMap((e) => walk(path.join(p, e)))] : [p]);
    const entries = walk(out);
    expect(entries.some((p) => p.endsWith("messages-000001.json"))).toBe(true);
    for (const p of entries) {
      const st = fs.statSync(p);
      expect((st.mode & 0o777).toString(8), p).toBe(st.isDirectory() ? "700" : "600");
    }
    expect((fs.statSync(`${out}.tar.gz`).mode & 0o777).toString(8)).toBe("600");
  });
});

describe("files.ts", () => {
  it("readBounded reads exactly up to the limit and refuses one byte more", () => {
    const f = path.join(dir, "limit.txt");
    fs.writeFileSync(f, "a".repeat(100));
    expect(readBounded(f, 100, "The file")).toBe("a".repeat(100));
    expect(() => readBounded(f, 99, "The file")).toThrow(`The file ${f} is larger than`);
  });

  it("mkdirPrivate creates missing levels 0700, accepts an existing directory, and refuses a file in the way", () => {
    const base = path.join(dir, "mk");
    mkdirPrivate(path.join(base, "a", "b"));
    expect(fs.statSync(path.join(base, "a", "b")).isDirectory()).toBe(true);
    expect(fs.statSync(path.join(base, "a")).mode & 0o777).toBe(0o700);
    mkdirPrivate(path.join(base, "a", "b"));
    fs.writeFileSync(path.join(base, "file"), "");
    expect(() => mkdirPrivate(path.join(base, "file", "c"))).toThrow("is not a directory");
  });
});

describe("one email validator (Django's validate_email) for create_user and change_user_email", () => {
  // create_user once had its own copy of the rules, which accepted "LOCALHOST" in any case.
  const cases: [string, boolean][] = [
    ["someone@example.org", true],
    ["someone@localhost", true],
    ["someone@LOCALHOST", false],
    ["someone@[127.0.0.1]", true],
    ["someone@[999.0.0.1]", false],
    ["someone@bücher.example", true],
    ["some one@example.org", false],
    ['"some one"@example.org', false], // Django's quoted-string rule has no plain space
    ['"some,one"@example.org', true],
    ["someone@example", false],
    ["someone@-example.org", false],
  ];
  it.each(cases)("%s: valid = %s for both", async (address, valid) => {
    const create = await cli(["create_user", "-r", "2", address, "Some One", "--dry-run"]);
    const change = await cli(["change_user_email", "-r", "2", "test@test.com", address, "--dry-run"]);
    expect(create.stderr.includes("Invalid email address"), create.stderr).toBe(!valid);
    expect(change.stderr.includes("Invalid email address"), change.stderr).toBe(!valid);
    if (valid) {
      expect(create.exitCode, create.stderr).toBe(0);
      expect(change.exitCode, change.stderr).toBe(0);
    } else {
      expect(create.exitCode).toBe(1);
      expect(change.exitCode).toBe(1);
    }
  });
});
