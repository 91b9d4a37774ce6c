// change_password through the built CLI against a real Zulip 12 database, a real memcached and a
// real Redis: the Django Argon2id hash (checked with argon2-cffi, Django's own library, when the
// system python3 has it), the 122 row do_change_password writes, the caches, the cleared login
// rate limit, the strength rule (zxcvbn, checked against Python's zxcvbn when available) and the
// terminal prompts (through a real pseudo-terminal made by util-linux `script`).
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkPasswordStrength, DEFAULT_PASSWORD_RULES, djangoArgon2Hash, passwordGuesses, verifyDjangoArgon2Hash } from "../src/zulip/password.js";
import { CLI_BIN, cliEnv, runCli, type CliResult } from "./helpers/cli.js";
import { makeConfDir, type ConfDir } from "./helpers/confdir.js";
import { type MemcachedInstance } from "./helpers/memcached.js";
import { type TestDatabase } from "./helpers/pg.js";
import { type RedisClient, type RedisInstance } from "./helpers/redis.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";
import { requireTool, runPython } from "./helpers/tools.js";
import { changedTables, snapshot } from "./helpers/snapshot.js";

/** Run a snippet with a python3 that has the given modules (the test fails, saying what to install, without them). */
function python(modules: string[], script: string, args: string[] = []): string {
  return runPython(script, args, modules).trim();
}

const HASH_RE = /^argon2\$argon2id\$v=19\$m=102400,t=2,p=8\$([A-Za-z0-9+/]{30})\$([A-Za-z0-9+/]{22})$/;
const GOOD = "correct horse battery staple";
const LABEL = "test@test.com <Realm:  2>";
const RL_KEYS = ["list", "zset", "block"].map((t) => `ratelimit:RateLimitedAuthenticationByUsername:test@test.com:${t}`);

let db: TestDatabase;
let mc: MemcachedInstance;
let redis: RedisInstance;
let rc: RedisClient;
let conf: ConfDir;
let dir: string;
const cli = (args: string[], input?: string): Promise<CliResult> => runCli(args, { confDir: conf, db, input });

let copy: ServerCopy;

beforeAll(async () => {
  copy = await startServerCopy({ template: "zulip12_fresh", redis: true });
  ({ db, mc, conf } = copy);
  redis = copy.redis!;
  rc = await redis.connect();
  dir = fs.mkdtempSync(path.join(conf.root, "pw-"));
}, 120_000);
afterAll(async () => {
  await rc?.close();
  await copy?.stop();
});

function passwordFile(content: string): string {
  const f = path.join(dir, `pw-${Math.random().toString(36).slice(2)}`);
  fs.writeFileSync(f, content, { mode: 0o600 });
  return f;
}

describe("change_password", () => {
  it("--password-file: Django's Argon2id hash, the 122 row, caches and the login rate limit cleared", async () => {
    const [before] = await db.query("SELECT * FROM zerver_userprofile WHERE id = 8");
    const mcc = await mc.connect();
    const keys = ["user_profile_by_id:8", `user_profile_by_api_key:${before.api_key}`, "user_profile_narrow_by_id:8"];
    for (const k of keys) await mcc.set(`:1:${conf.cachePrefix}${k}`, "stale");
    for (const k of RL_KEYS) await rc.set(k, "1");
    await rc.set("ratelimit:RateLimitedAuthenticationByUsername:other@test.com:block", "1");

    const snap = await snapshot(db);
    const maxAudit = Number((await db.query("SELECT max(id) AS m FROM zerver_realmauditlog"))[0].m);
    const r = await cli(["change_password", "-r", "2", "test@test.com", "--password-file", passwordFile(`  ${GOOD}\n`)]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(`Changing password for user '${LABEL}'\nPassword changed successfully for user '${LABEL}'`);
    expect(changedTables(snap, await snapshot(db))).toEqual(["zerver_realmauditlog", "zerver_userprofile"]);
    const [after] = await db.query("SELECT * FROM zerver_userprofile WHERE id = 8");
    expect({ ...after, password: null }).toEqual({ ...before, password: null });
    expect(after.password).toMatch(HASH_RE);
    expect(Buffer.from(HASH_RE.exec(after.password)![1], "base64").toString("latin1")).toMatch(/^[A-Za-z0-9]{22}$/);
    expect(await verifyDjangoArgon2Hash(GOOD, after.password)).toBe(true);
    expect(await verifyDjangoArgon2Hash(GOOD + "x", after.password)).toBe(false);
    // Django's Argon2PasswordHasher.verify / must_update, with argon2-cffi.
    const py = python(
      ["argon2"],
      `import sys, argon2
enc, pw = sys.argv[1], sys.argv[2]
algorithm, rest = enc.split("$", 1)
assert algorithm == "argon2"
ok = argon2.PasswordHasher().verify("$" + rest, pw)
p = argon2.extract_parameters("$" + rest)
print(ok, p.type == argon2.Type.ID, p.time_cost, p.memory_cost, p.parallelism, p.hash_len, p.version == argon2.low_level.ARGON2_VERSION)`,
      [after.password, GOOD],
    );
    expect(py).toBe("True True 2 102400 8 16 True");

    const audit = await db.query("SELECT * FROM zerver_realmauditlog WHERE id > $1", [maxAudit]);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({
      realm_id: 2,
      acting_user_id: 8,
      modified_user_id: 8,
      modified_stream_id: null,
      modified_user_group_id: null,
      event_last_message_id: null,
      event_type: 122,
      backfilled: false,
      extra_data: {},
      scrubbed: false,
    });
    for (const k of keys) expect(await mcc.get(`:1:${conf.cachePrefix}${k}`), k).toBeNull();
    await mcc.close();
    for (const k of RL_KEYS) expect(await rc.get(k)).toBeNull();
    expect(await rc.get("ratelimit:RateLimitedAuthenticationByUsername:other@test.com:block")).toBe("1");
  });

  it("a hash made here is the one argon2-cffi makes for the same salt", async () => {
    const salt = "abcdefghijklmnopqrstuv";
    const ours = await djangoArgon2Hash("hello", { salt });
    const theirs = python(
      ["argon2"],
      `import sys, argon2
from argon2 import low_level
print("argon2" + low_level.hash_secret(sys.argv[1].encode(), sys.argv[2].encode(), time_cost=2, memory_cost=102400, parallelism=8, hash_len=argon2.DEFAULT_HASH_LENGTH, type=low_level.Type.ID).decode())`,
      ["hello", salt],
    );
    expect(theirs).toBe(ours);
    expect(ours).toBe("argon2$argon2id$v=19$m=102400,t=2,p=8$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dg$H5CIWF3u66cGk1CH+24m+Q");
  });

  it("refuses weak passwords, a password on the command line, and no terminal without --password-file; writes nothing", async () => {
    const snap = await snapshot(db);
    let r = await cli(["change_password", "-r", "2", "test@test.com", "--password-file", passwordFile("password1\n")]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(
      /^The password is too weak\. It could be guessed in about \d+ tries; this server requires at least 10000 \(PASSWORD_MIN_GUESSES\)/,
    );
    r = await cli(["change_password", "-r", "2", "test@test.com", "--password-file", passwordFile("Ab3$x")]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe("The password is too weak. It must be at least 6 characters long (PASSWORD_MIN_LENGTH).");
    r = await cli(["change_password", "-r", "2", "test@test.com", "--password-file", passwordFile("\n")]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^The password file .* is empty\.$/);
    r = await cli(["change_password", "-r", "2", "test@test.com", "--password", GOOD]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("passwords are not accepted on the command line");
    r = await cli(["change_password", "-r", "2", "test@test.com"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("Cannot ask for the new password: standard input is not a terminal.");
    r = await cli(["change_password", "test@test.com", "--password-file", passwordFile(GOOD)]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("-r, --realm");
    expect(changedTables(snap, await snapshot(db))).toEqual([]);
  });

  it("--password-file - reads standard input; PASSWORD_MIN_GUESSES from settings.py; --json", async () => {
    const strict = makeConfDir({
      db: { name: db.name },
      memcached: { location: mc.location, password: mc.password },
      redis: { host: redis.host, port: redis.port, password: redis.password },
      extraSettings: "PASSWORD_MIN_GUESSES = 10 ** 30\n",
    });
    try {
      const r = await runCli(["change_password", "-r", "2", "test@test.com", "--password-file", "-"], { confDir: strict, db, input: GOOD });
      // 10 ** 30 is not a literal: zulip-manage refuses to guess it.
      expect(r.exitCode).toBe(3);
      expect(r.stderr).toContain("PASSWORD_MIN_GUESSES");
    } finally {
      strict.cleanup();
    }
    const strict2 = makeConfDir({
      db: { name: db.name },
      memcached: { location: mc.location, password: mc.password },
      redis: { host: redis.host, port: redis.port, password: redis.password },
      extraSettings: "PASSWORD_MIN_GUESSES = 1000000000000000000000\n",
    });
    try {
      const r = await runCli(["change_password", "-r", "2", "test@test.com", "--password-file", "-"], { confDir: strict2, db, input: GOOD });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain("this server requires at least 1000000000000000000000 (PASSWORD_MIN_GUESSES)");
    } finally {
      strict2.cleanup();
    }
    const r = await cli(["change_password", "-r", "2", "test@test.com", "--password-file", "-", "--json"], "another fine passphrase\n");
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ ok: true, hasher: "argon2", user: { id: 8 }, rate_limit: { ok: true } });
    expect(r.stderr).toBe(`Changing password for user '${LABEL}'`);
    const [row] = await db.query("SELECT password FROM zerver_userprofile WHERE id = 8");
    expect(await verifyDjangoArgon2Hash("another fine passphrase", row.password)).toBe(true);
  });

  it("a development server gets a PBKDF2 hash; Redis unreachable is only a warning", async () => {
    const dev = makeConfDir({
      db: { name: db.name },
      memcached: { location: mc.location, password: mc.password },
      redis: { host: "127.0.0.1", port: 1, password: null },
      zulipConf: `[postgresql]\ndatabase_name = ${db.name}\n`,
    });
    try {
      const r = await runCli(["change_password", "-r", "2", "test@test.com", "--password-file", "-"], { confDir: dev, db, input: GOOD });
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toContain("the failed login attempts of test@test.com could not be reset in Redis");
      const [row] = await db.query("SELECT password FROM zerver_userprofile WHERE id = 8");
      expect(row.password).toMatch(/^pbkdf2_sha256\$1000000\$[A-Za-z0-9]{22}\$[A-Za-z0-9+/]{43}=$/);
    } finally {
      dev.cleanup();
    }
  });

  it("asks twice on a terminal without echo, retries on a mismatch, aborts on an empty answer", async () => {
    // util-linux `script` gives the CLI a real pseudo-terminal; keystrokes are fed with pauses.
    const run = (keys: string[]) =>
      new Promise<{ code: number | null; output: string }>((resolve) => {
        const cmd = [process.execPath, CLI_BIN, "change_password", "-r", "2", "test@test.com", "--no-color"].map((a) => `'${a}'`).join(" ");
        const child = spawn(requireTool("script"), ["-qefc", cmd, "/dev/null"], { env: { ...cliEnv({ confDir: conf, db }), TERM: "dumb" } });
        let output = "";
        child.stdout.on("data", (d) => (output += d.toString()));
        child.stderr.on("data", (d) => (output += d.toString()));
        let i = 0;
        const feed = () => {
          if (i < keys.length) child.stdin.write(keys[i++]);
          if (i < keys.length) setTimeout(feed, 700);
        };
        setTimeout(feed, 1500);
        child.on("close", (code) => resolve({ code, output }));
      });
    const snap = await snapshot(db);
    const aborted = await run(["\r"]);
    expect(aborted.output).toContain("aborted");
    expect(aborted.code).toBe(1);
    expect(changedTables(snap, await snapshot(db))).toEqual([]);

    const ok = await run(["first secret phrase\r", "second secret phrase\r", "a terminal passphrase\r", "a terminal passphrase\r"]);
    expect(ok.output).toContain("Password:");
    expect(ok.output).toContain("Password (again):");
    expect(ok.output).toContain("Passwords do not match. Please try again.");
    expect(ok.output).toContain(`Password changed successfully for user '${LABEL}'`);
    expect(ok.output).not.toContain("terminal passphrase"); // no echo
    expect(ok.code).toBe(0);
    const [row] = await db.query("SELECT password FROM zerver_userprofile WHERE id = 8");
    expect(await verifyDjangoArgon2Hash("a terminal passphrase", row.password)).toBe(true);
  }, 60_000);
});

describe("password strength (Zulip's check_password_strength with zxcvbn)", () => {
  const samples = ["password", "hunter2", "correct horse", "Tr0ub4dour&3", "qwertyuiop1", "zulip-is-great", "abcdef", "aaaaaaaaaa", "iago1234", "Zulip2025!"];

  it("guesses match Python's zxcvbn (the server's) when it is installed", async () => {
    const py = python(["zxcvbn"], "import sys, json\nfrom zxcvbn import zxcvbn\nprint(json.dumps([int(zxcvbn(p)['guesses']) for p in sys.argv[1:]]))", samples);
    expect(py, "python3 with the zxcvbn module (Debian: python3-zxcvbn)").not.toBeNull();
    expect(samples.map((p) => Math.trunc(passwordGuesses(p)))).toEqual(JSON.parse(py!));
  });

  it("applies PASSWORD_MIN_LENGTH, PASSWORD_MIN_GUESSES and PASSWORD_MAX_LENGTH", async () => {
    expect(checkPasswordStrength("").ok).toBe(false);
    expect(checkPasswordStrength("Xy7#q").reason).toContain("at least 6 characters");
    expect(checkPasswordStrength("password").ok).toBe(false);
    expect(checkPasswordStrength(GOOD).ok).toBe(true);
    expect(checkPasswordStrength(GOOD, { ...DEFAULT_PASSWORD_RULES, minGuesses: 1e30 }).ok).toBe(false);
    expect(checkPasswordStrength("abcdef", { minLength: 0, minGuesses: 0, maxLength: 100 }).ok).toBe(true);
    expect(checkPasswordStrength("x".repeat(101)).reason).toContain("at most 100 characters");
  });
});
