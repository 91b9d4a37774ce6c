// End-to-end tests of the foundation: help and version, exit codes, configuration discovery and
// errors, the database checks, running as root, manage.log, list_realms and show_admins — all
// through the built CLI against real PostgreSQL databases.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import { execa } from "execa";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getRealm, getUser, getUsers } from "../src/zulip/lookup.js";
import { connect, planConnection, queryTableShapes, type Queryable, tableShape, withSideConnection } from "../src/db/db.js";
import { loadConfig } from "../src/config/config.js";
import { resolvePaths } from "../src/config/paths.js";
import { runCli, CLI_BIN, cliEnv } from "./helpers/cli.js";
import { makeConfDir, defaultSettings, type ConfDir } from "./helpers/confdir.js";
import pg from "pg";
import { createDatabase, startPostgres, type TestDatabase } from "./helpers/pg.js";
import { requireTool } from "./helpers/tools.js";

const ESC = "\u001b[";
const isRoot = process.getuid?.() === 0;

let db: TestDatabase;
let conf: ConfDir;

beforeAll(async () => {
  db = await createDatabase({ template: "zulip12_fresh" });
  conf = makeConfDir();
});
afterAll(async () => {
  await db?.drop();
  conf?.cleanup();
});

const cli = (args: string[], extra: Parameters<typeof runCli>[1] = {}) => runCli(args, { db, confDir: conf, ...extra });

describe("help and version", () => {
  it("prints the version", async () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "package.json"), "utf8"));
    for (const flag of ["--version", "-V"]) {
      const r = await runCli([flag]);
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toBe(pkg.version);
    }
  });

  it("lists commands grouped by purpose with no arguments, 'help' and '--help'", async () => {
    for (const args of [[], ["help"], ["--help"]]) {
      const r = await runCli(args);
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toMatch(/^Organizations:$/m);
      expect(r.stdout).toMatch(/^Users:$/m);
      expect(r.stdout).toMatch(/^ {2}list_realms +\S.*$/m);
      expect(r.stdout).toMatch(/^ {2}show_admins +\S.*$/m);
      expect(r.stdout.indexOf("Organizations:")).toBeLessThan(r.stdout.indexOf("list_realms"));
      expect(r.stdout).toContain("--json");
    }
  });

  it("shows a command's options and an example with 'help <command>' and '<command> --help'", async () => {
    for (const args of [
      ["help", "show_admins"],
      ["show_admins", "--help"],
    ]) {
      const r = await runCli(args);
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toContain("Usage: zulip-manage show_admins [options]");
      expect(r.stdout).toContain("-r, --realm <realm>");
      expect(r.stdout).toContain("Examples:");
      expect(r.stdout).toContain("zulip-manage show_admins -r ''");
    }
  });

  it("runs with the build's V8 code cache, and without it or with a stale one", async () => {
    const bundle = path.join(__dirname, "..", "dist", "bundle");
    expect(fs.statSync(path.join(bundle, "cli.cjs.cache")).size).toBeGreaterThan(0);
    const expected = (await runCli(["help"])).stdout;
    // A copy of the install: the bin script, package.json and the bundle, with node_modules.
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "zm-bin-"));
    try {
      fs.cpSync(path.join(__dirname, "..", "bin"), path.join(root, "bin"), { recursive: true });
      fs.copyFileSync(path.join(__dirname, "..", "package.json"), path.join(root, "package.json"));
      fs.cpSync(bundle, path.join(root, "dist", "bundle"), { recursive: true });
      fs.symlinkSync(path.join(__dirname, "..", "node_modules"), path.join(root, "node_modules"));
      const run = () =>
        execa(process.execPath, [path.join(root, "bin", "zulip-manage"), "help"], {
          reject: false,
          env: { ...process.env, ZULIP_MANAGE_ALLOW_ROOT: "1", XDG_CACHE_HOME: path.join(root, "cache") },
        });
      fs.writeFileSync(path.join(root, "dist", "bundle", "cli.cjs.cache"), Buffer.from("not a code cache"));
      let r = await run();
      expect([r.exitCode, r.stdout]).toEqual([0, expected]);
      fs.rmSync(path.join(root, "dist", "bundle", "cli.cjs.cache"));
      r = await run();
      expect([r.exitCode, r.stdout]).toEqual([0, expected]);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it("exits 2 on an unknown command, suggesting the close one", async () => {
    const r = await runCli(["list_realm"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("Unknown command: 'list_realm'");
    expect(r.stderr).toContain("'list_realms'");
  });

  it("exits 2 on usage errors, argparse style", async () => {
    const r = await cli(["show_admins"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("usage: zulip-manage show_admins");
    expect(r.stderr).toContain("zulip-manage show_admins: error: required option '-r, --realm <realm>' not specified");
    const r2 = await cli(["list_realms", "--bogus"]);
    expect(r2.exitCode).toBe(2);
    expect(r2.stderr).toContain("unknown option '--bogus'");
  });
});

function expectedListing(rows: { id: number; sid: string; name: string; url: string }[]): string {
  const pad = (s: string, n: number) => s + " ".repeat(Math.max(0, n - [...s].length));
  const line = (a: string, b: string, c: string, d: string) => `${pad(a, 5)} ${pad(b, 20)} ${pad(c, 30)} ${pad(d, 50)}`;
  return [
    line("id", "string_id", "name", "domain"),
    line("--", "---------", "----", "------"),
    ...rows.map((r) => line(String(r.id), r.sid, r.name, r.url)),
  ].join("\n");
}

describe("list_realms", () => {
  it("prints manage.py's table, root realm as '', URLs from EXTERNAL_HOST", async () => {
    const r = await cli(["list_realms"]);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(
      expectedListing([
        { id: 1, sid: "zulipinternal", name: "System bot realm", url: "https://zulipinternal.zulip.example.net" },
        { id: 2, sid: "''", name: "testing", url: "https://zulip.example.net" },
      ]),
    );
  });

  it("uses REALM_HOSTS and EXTERNAL_URI_SCHEME, orders by id, marks deactivated realms only on a terminal", async () => {
    const d = await createDatabase({ template: "zulip12_fresh" });
    const c = makeConfDir({
      extraSettings: "REALM_HOSTS = {\n    'zulipinternal': 'bots.example.org',  # comment\n}\nEXTERNAL_URI_SCHEME = 'http://'\n",
    });
    try {
      // An UPDATE moves the row to the end of the heap: the output must still be ordered by id.
      await d.query("UPDATE zerver_realm SET deactivated = true WHERE id = 1");
      const r = await runCli(["list_realms"], { db: d, confDir: c });
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toBe(
        expectedListing([
          { id: 1, sid: "zulipinternal", name: "System bot realm", url: "http://bots.example.org" },
          { id: 2, sid: "''", name: "testing", url: "http://zulip.example.net" },
        ]) + "\n\nRed rows represent deactivated realms.",
      );
      expect(r.stdout).not.toContain(ESC);

      // Under a pseudo-terminal the deactivated row is red and the notice yellow …
      const env = cliEnv({ db: d, confDir: c });
      const tty = execFileSync(requireTool("script"), ["-qec", `${process.execPath} ${CLI_BIN} list_realms`, "/dev/null"], { env, encoding: "utf8" });
      expect(tty).toMatch(/\u001b\[31m\u001b\[1m1 +zulipinternal/); // Django's ERROR: bold red
      expect(tty).toMatch(/\u001b\[33m\u001b\[1mRed rows/); // WARNING: bold yellow
      expect(tty).toMatch(/\n2 +'' +testing/); // active rows plain
      expect(tty).toContain("Red rows represent deactivated realms.");
      // … but never with NO_COLOR or --no-color.
      const noColor = execFileSync(requireTool("script"), ["-qec", `${process.execPath} ${CLI_BIN} list_realms`, "/dev/null"], {
        env: { ...env, NO_COLOR: "1" },
        encoding: "utf8",
      });
      expect(noColor).not.toContain(ESC);
      const noColorFlag = execFileSync(requireTool("script"), ["-qec", `${process.execPath} ${CLI_BIN} list_realms --no-color`, "/dev/null"], {
        env,
        encoding: "utf8",
      });
      expect(noColorFlag).not.toContain(ESC);
      expect(noColorFlag).toContain("Red rows represent deactivated realms.");
    } finally {
      await d.drop();
      c.cleanup();
    }
  });

  it("--all prints every attribute the way Python does", async () => {
    const r = await cli(["list_realms", "--all"]);
    expect(r.exitCode).toBe(0);
    const blocks = r.stdout.split(/^-{80}$/m).filter((b) => b.trim());
    expect(blocks).toHaveLength(2);
    const lines = blocks[1].replace(/^\n/, "").trimEnd().split("\n");
    const pad = (k: string) => k.padEnd(40) + " ";
    expect(lines.slice(0, 3)).toEqual([pad("id") + "2", pad("name") + "testing", pad("string_id") + ""]);
    const keys = lines.slice(3).map((l) => l.slice(0, 40).trimEnd());
    expect(keys).toEqual([...keys].sort());
    expect(keys[0]).toBe("_max_invites"); // Django attname for the max_invites column
    expect(keys).toContain("authentication_methods");
    expect(lines).toContain(pad("authentication_methods") + "{'Email': True}");
    expect(lines).toContain(pad("_max_invites") + "None");
    expect(lines).toContain(pad("deactivated") + "False");
    expect(lines).toContain(pad("invite_required") + "True");
    const created = lines.find((l) => l.startsWith(pad("date_created")))!;
    expect(created.slice(41)).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?\+00:00$/);
    const cols = await db.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'zerver_realm' AND table_schema = 'zulip'");
    expect(keys.length + 3).toBe(cols.length + 1); // every column plus authentication_methods
  });

  it("--json gives a stable document", async () => {
    const r = await cli(["list_realms", "--json"]);
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      ok: true,
      exit_code: 0,
      error: null,
      error_code: null,
      schema_version: 1,
      realms: [
        { id: 1, string_id: "zulipinternal", name: "System bot realm", url: "https://zulipinternal.zulip.example.net", deactivated: false },
        { id: 2, string_id: "", name: "testing", url: "https://zulip.example.net", deactivated: false },
      ],
    });
    const all = JSON.parse((await cli(["list_realms", "--all", "--json"])).stdout);
    expect(all.realms[1]).toMatchObject({ id: 2, string_id: "", invite_required: true, _max_invites: null, authentication_methods: { Email: true } });
  });
});

describe("show_admins", () => {
  it("lists administrators with [owner] for human owners", async () => {
    const d = await createDatabase({ template: "zulip12_fresh" });
    try {
      // An administrator bot and a human administrator besides the owner.
      await d.query("UPDATE zerver_userprofile SET role = 200 WHERE email = 'welcome-bot@zulip.com'");
      const r = await runCli(["show_admins", "-r", ""], { db: d, confDir: conf });
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toBe('Administrators:\n\n  test@test.com (tester) [owner]\n\nYou can use the "change_user_role" management command to adjust roles.');
      const bots = await runCli(["show_admins", "-r", "zulipinternal"], { db: d, confDir: conf });
      expect(bots.stdout).toContain("  welcome-bot@zulip.com (Welcome Bot)\n");
      expect(bots.stdout).not.toContain("[owner]");
      const json = JSON.parse((await runCli(["show_admins", "-r", "2", "--json"], { db: d, confDir: conf })).stdout);
      expect(json).toEqual({
        ok: true,
        exit_code: 0,
        error: null,
        error_code: null,
        schema_version: 1,
        realm: { id: 2, string_id: "", name: "testing", url: "https://zulip.example.net" },
        administrators: [
          {
            id: expect.any(Number),
            email: "test@test.com",
            delivery_email: "test@test.com",
            full_name: "tester",
            realm_id: 2,
            role: "owner",
            role_id: 100,
            is_bot: false,
          },
        ],
      });
    } finally {
      await d.drop();
    }
  });

  it("refuses an organization without admins and an unknown realm (exit 1)", async () => {
    const none = await cli(["show_admins", "-r", "zulipinternal"]);
    expect(none.exitCode).toBe(1);
    expect(none.stderr).toBe("There are no admins for this realm!");
    const missing = await cli(["show_admins", "-r", "nosuch"]);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toBe("There is no realm with id 'nosuch'. Aborting.");
    const json = await cli(["show_admins", "-r", "nosuch", "--json"]);
    expect(JSON.parse(json.stdout)).toEqual({
      ok: false,
      exit_code: 1,
      error: "There is no realm with id 'nosuch'. Aborting.",
      error_code: "realm_not_found",
      schema_version: 1,
    });
  });
});

describe("lookups (manage.py semantics)", () => {
  const q = (): Queryable => db.client;
  it("finds realms by numeric id (Python int rules) or string_id", async () => {
    expect((await getRealm(q(), "2"))!.string_id).toBe("");
    expect((await getRealm(q(), " +2 "))!.string_id).toBe("");
    expect((await getRealm(q(), ""))!.id).toBe(2);
    expect((await getRealm(q(), "zulipinternal"))!.id).toBe(1);
    expect(await getRealm(q(), undefined)).toBeNull();
    await expect(getRealm(q(), "99")).rejects.toThrow("There is no realm with id '99'. Aborting.");
    await expect(getRealm(q(), "ZULIPINTERNAL")).rejects.toThrow("There is no realm with id 'ZULIPINTERNAL'. Aborting.");
  });

  it("finds users by delivery email, case-insensitively, with manage.py's messages", async () => {
    const realm = (await getRealm(q(), ""))!;
    expect((await getUser(q(), " TEST@test.com ", realm)).full_name).toBe("tester");
    expect((await getUser(q(), "test@TEST.com", null)).realm_id).toBe(2);
    await expect(getUser(q(), "nobody@test.com", realm)).rejects.toThrow("The realm ' 2' does not contain a user with email 'nobody@test.com'");
    await expect(getUser(q(), "nobody@test.com", null)).rejects.toThrow("This Zulip server does not contain a user with email 'nobody@test.com'");
    const d = await createDatabase({ template: "zulip12_fresh" });
    try {
      // The same address in two realms.
      await d.query("UPDATE zerver_userprofile SET delivery_email = 'Test@Test.com' WHERE email = 'welcome-bot@zulip.com'");
      await expect(getUser(d.client, "test@test.com", null)).rejects.toThrow(
        "This Zulip server contains multiple users with that email (in different realms); please pass `--realm` to specify which one to modify.",
      );
    } finally {
      await d.drop();
    }
  });

  it("validates -u/--users and -a/--all-users like manage.py", async () => {
    const realm = (await getRealm(q(), "zulipinternal"))!;
    await expect(getUsers(q(), {}, realm)).rejects.toThrow("You have to pass either -u/--users or -a/--all-users.");
    await expect(getUsers(q(), { users: "a@b", allUsers: true }, realm)).rejects.toThrow("You can't use both -u/--users and -a/--all-users.");
    await expect(getUsers(q(), { allUsers: true }, null)).rejects.toThrow("The --all-users option requires a realm; please pass --realm.");
    await expect(getUsers(q(), { users: "welcome-bot@zulip.com," }, realm)).rejects.toThrow(
      "The realm 'zulipinternal 1' does not contain a user with email ''",
    );
    const two = await getUsers(q(), { users: "notification-bot@zulip.com, WELCOME-BOT@zulip.com,welcome-bot@zulip.com" }, realm);
    expect(two.map((u) => u.email)).toEqual(
      ["notification-bot@zulip.com", "welcome-bot@zulip.com"].sort((a, b) => {
        return two.find((u) => u.email === a)!.id - two.find((u) => u.email === b)!.id;
      }),
    );
    expect(two).toHaveLength(2);
    const all = await getUsers(q(), { allUsers: true }, realm);
    expect(all.length).toBe(7);
    expect(all.map((u) => u.id)).toEqual([...all.map((u) => u.id)].sort((a, b) => a - b));
  });
});

describe("configuration and environment errors (exit 3)", () => {
  it("reports a missing settings.py with the remedy", async () => {
    const r = await runCli(["list_realms"], { db, confDir: "/nonexistent/zulip" });
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toContain("Cannot read the Zulip settings file /nonexistent/zulip/settings.py: the file does not exist.");
    expect(r.stderr).toContain("--conf-dir");
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    const tb = await runCli(["list_realms", "--traceback"], { db, confDir: "/nonexistent/zulip" });
    expect(tb.stderr).toMatch(/\n\s+at /);
  });

  it("reports a settings.py Python cannot parse with the parser's own exit code and error_code (not a CliError)", async () => {
    const c = makeConfDir({ settings: defaultSettings() + "\nEXTERNAL_HOST = (\n" });
    try {
      for (const json of [false, true]) {
        const r = await runCli(["list_realms", ...(json ? ["--json"] : [])], { db, confDir: c });
        expect(r.exitCode).toBe(3);
        expect(r.stderr).toContain(`Cannot read ${c.settingsPath}: Python syntax error`);
        expect(r.stderr).not.toContain("unexpected error");
        if (json) expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, exit_code: 3, error_code: "config_invalid" });
      }
      const tb = await runCli(["list_realms", "--traceback"], { db, confDir: c });
      expect(tb.stderr).toMatch(/^PySettingsParseError: Cannot read .*\n\s+at /m);
    } finally {
      c.cleanup();
    }
  });

  it("refuses to guess a non-literal setting, names it and its line, and honours --setting", async () => {
    const c = makeConfDir({ settings: defaultSettings().replace(/^EXTERNAL_HOST = .*$/m, 'EXTERNAL_HOST = "zulip." + "example.net".upper()') });
    try {
      const r = await runCli(["list_realms"], { db, confDir: c });
      expect(r.exitCode).toBe(3);
      const line =
        fs
          .readFileSync(c.settingsPath, "utf8")
          .split("\n")
          .findIndex((l) => l.startsWith("EXTERNAL_HOST")) + 1;
      expect(r.stderr).toContain(`EXTERNAL_HOST from ${c.settingsPath} line ${line}`);
      const ok = await runCli(["list_realms", "--setting", "EXTERNAL_HOST=chat.example.org"], { db, confDir: c });
      expect(ok.exitCode).toBe(0);
      expect(ok.stdout).toContain("https://chat.example.org ");
      // show_admins needs no URL: the unreadable setting does not break it.
      expect((await runCli(["show_admins", "-r", ""], { db, confDir: c })).exitCode).toBe(0);
    } finally {
      c.cleanup();
    }
  });

  it("reports an unreachable database", async () => {
    const r = await cli(["list_realms"], { env: { PGHOST: "127.0.0.1", PGPORT: "1" } });
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toContain("Cannot connect to the Zulip database");
  });

  it("reports a database without the Zulip schema with manage.py's message", async () => {
    const empty = await createDatabase({ template: "empty" });
    try {
      const r = await runCli(["list_realms"], { db: empty, confDir: conf });
      expect(r.exitCode).toBe(3);
      expect(r.stderr).toContain("The Zulip database does not appear to exist. Have you run initialize-database?");
    } finally {
      await empty.drop();
    }
  });

  it("accepts Zulip 10 and 11 databases and refuses older ones", async () => {
    for (const template of ["zulip10_fresh", "zulip11_fresh"] as const) {
      const d = await createDatabase({ template });
      try {
        const r = await runCli(["list_realms", "--json"], { db: d, confDir: conf });
        expect(r.exitCode).toBe(0);
        expect(JSON.parse(r.stdout).realms).toHaveLength(2);
        if (template === "zulip10_fresh") {
          // Make it a Zulip 9 database: drop the 10.x migrations from the history.
          await d.query("DELETE FROM django_migrations WHERE app = 'zerver' AND name >= '0570'");
          const old = await runCli(["list_realms"], { db: d, confDir: conf });
          expect(old.exitCode).toBe(3);
          expect(old.stderr).toContain("This Zulip database is too old");
          expect(old.stderr).toContain("Zulip 10.0 and newer");
        }
      } finally {
        await d.drop();
      }
    }
  });
});

describe("the database connection: version probe, catalog, closing, side connection", () => {
  const config = () => loadConfig(resolvePaths(conf.dir, {}));
  const envFor = (d: TestDatabase, extra: NodeJS.ProcessEnv = {}) => ({ ...process.env, ...d.env, ...extra });

  async function sessions(d: TestDatabase): Promise<number> {
    const [r] = await d.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'zulip-manage'", [d.name]);
    return r.n;
  }

  async function untilNoSessions(d: TestDatabase): Promise<void> {
    for (let i = 0; i < 200 && (await sessions(d)) > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await sessions(d)).toBe(0);
  }

  it("knows the preloaded tables' shapes exactly as a per-table catalog read finds them (Zulip 10, 11, 12)", async () => {
    for (const template of ["zulip10_fresh", "zulip11_fresh", "zulip12_fresh"] as const) {
      const d = await createDatabase({ template });
      try {
        const c = await connect(config(), envFor(d));
        try {
          for (const table of ["zerver_realm", "zerver_userprofile", "zerver_realmauditlog", "zerver_namedusergroup", "zerver_stream", "no_such_table"]) {
            const expected = (await queryTableShapes(d.client, [table])).get(table)!;
            // In table order, as the catalog numbers the columns.
            const { rows } = await d.client.query(
              "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
              [table],
            );
            expect([...expected.columns]).toEqual(rows.map((r) => r.attname));
            expect([...(await c.columns(table))]).toEqual([...expected.columns]);
            expect([...(await tableShape(c, table)).required]).toEqual([...expected.required]);
            expect(await c.hasTable(table)).toBe(table !== "no_such_table");
          }
          // NOT NULL without a default: Django's Python defaults fill these.
          const realm = await tableShape(c, "zerver_realm");
          expect(realm.required.has("string_id")).toBe(true);
          expect(realm.required.has("id")).toBe(false);
          expect(c.release).toBe({ zulip10_fresh: "10.x", zulip11_fresh: "11.x", zulip12_fresh: "12.x" }[template]);
        } finally {
          await c.close();
        }
      } finally {
        await d.drop();
      }
    }
  });

  it("a zerver_realm table without Zulip's migration history is not taken for a Zulip database", async () => {
    const d = await createDatabase({ template: "empty" });
    try {
      await d.query("CREATE TABLE zerver_realm (id int)");
      const noTable = await runCli(["list_realms"], { db: d, confDir: conf });
      expect(noTable.exitCode).toBe(3);
      expect(noTable.stderr).toContain("has a zerver_realm table but no Zulip migration history");
      await d.query("CREATE TABLE django_migrations (id serial, app text, name text, applied timestamptz)");
      await d.query("INSERT INTO django_migrations (app, name, applied) VALUES ('auth', '0001_initial', now())");
      const noRows = await runCli(["list_realms"], { db: d, confDir: conf });
      expect(noRows.exitCode).toBe(3);
      expect(noRows.stderr).toContain("has a zerver_realm table but no Zulip migration history");
    } finally {
      await d.drop();
    }
  });

  it("close() ends the server session (no connection left behind), also when the CLI ends", async () => {
    const c = await connect(config(), envFor(db));
    expect(await sessions(db)).toBe(1);
    await c.close();
    await untilNoSessions(db);
    const r = await cli(["change_user_role", "-r", "2", "test@test.com", "can_create_users", "--revoke", "--flush-cache=none"]);
    expect(r.exitCode, r.stderr).toBe(0);
    await untilNoSessions(db);
    await cli(["change_user_role", "-r", "2", "test@test.com", "can_create_users", "--flush-cache=none"]);
  });

  it("password authentication (SCRAM, md5) works through the bundled pg, whose crypto loads on first use", async () => {
    const cluster = await startPostgres();
    try {
      const admin = new pg.Client({ host: cluster.host, port: cluster.port, user: cluster.user, database: "postgres" });
      await admin.connect();
      try {
        await admin.query("SET password_encryption = 'scram-sha-256'");
        await admin.query("CREATE ROLE zm_scram LOGIN PASSWORD 'pw-scram'");
        await admin.query("SET password_encryption = 'md5'");
        await admin.query("CREATE ROLE zm_md5 LOGIN PASSWORD 'pw-md5'");
        const hba = path.join(cluster.dataDir, "pg_hba.conf");
        fs.writeFileSync(hba, "host all zm_scram 127.0.0.1/32 scram-sha-256\nhost all zm_md5 127.0.0.1/32 md5\n" + fs.readFileSync(hba, "utf8"));
        await admin.query("SELECT pg_reload_conf()");
      } finally {
        await admin.end();
      }
      const as = (user: string, password: string) =>
        runCli(["list_realms"], {
          confDir: conf,
          env: { PGHOST: "127.0.0.1", PGPORT: String(cluster.port), PGDATABASE: "postgres", PGUSER: user, PGPASSWORD: password },
        });
      for (const [user, password] of [
        ["zm_scram", "pw-scram"],
        ["zm_md5", "pw-md5"],
      ]) {
        // Past authentication: the (empty) database is then found not to be Zulip's.
        const ok = await as(user, password);
        expect(ok.stderr).toContain("The Zulip database does not appear to exist");
        expect(ok.exitCode).toBe(3);
        const wrong = await as(user, "wrong");
        expect(wrong.stderr).toContain(`password authentication failed for user "${user}"`);
        expect(wrong.exitCode).toBe(3);
      }
    } finally {
      await cluster.stop();
    }
  });

  it("start-up loads no crypto, zlib or child_process (they load when a path needs them)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "zm-modules-"));
    try {
      const report = path.join(dir, "modules.json");
      const preload = path.join(dir, "preload.cjs");
      fs.writeFileSync(preload, `process.on("exit", () => require("fs").writeFileSync(${JSON.stringify(report)}, JSON.stringify(process.moduleLoadList)));`);
      const r = await cli(["list_realms"], { env: { NODE_OPTIONS: `--require ${preload}` } });
      expect(r.exitCode, r.stderr).toBe(0);
      const loaded: string[] = JSON.parse(fs.readFileSync(report, "utf8"));
      expect(loaded).toContain("NativeModule net"); // the report works
      for (const m of ["crypto", "zlib", "child_process", "dns", "tls"]) expect(loaded).not.toContain(`NativeModule ${m}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("withSideConnection: runs on a connection of its own and closes it; null when it cannot connect or there are several hosts", async () => {
    const pid = await withSideConnection(config(), envFor(db), async (q) => (await q.query("SELECT pg_backend_pid() AS p")).rows[0].p);
    expect(typeof pid).toBe("number");
    expect(pid).not.toBe((await db.query("SELECT pg_backend_pid() AS p"))[0].p);
    await untilNoSessions(db);
    let ran = false;
    const touch = async () => {
      ran = true;
      return 1;
    };
    expect(await withSideConnection(config(), envFor(db, { PGHOST: "127.0.0.1", PGPORT: "1" }), touch)).toBeNull();
    expect(await withSideConnection(config(), envFor(db, { PGHOST: `${db.env.PGHOST},${db.env.PGHOST}` }), touch)).toBeNull();
    expect(ran).toBe(false);
    expect(await withSideConnection(config(), envFor(db), async () => Promise.reject(new Error("boom")))).toBeNull();
    await untilNoSessions(db);
  });
});

describe("database connection derived like Zulip's computed_settings", () => {
  const plan = (settings: string, zulipConf: string, secrets: Record<string, string>, env: NodeJS.ProcessEnv = {}) => {
    const c = makeConfDir({ settings: defaultSettings() + settings, zulipConf, secrets });
    try {
      return planConnection(loadConfig(resolvePaths(c.dir, {})), env);
    } finally {
      c.cleanup();
    }
  };
  it("uses peer auth over the Unix socket by default, with zulip.conf's database name and user", () => {
    const p = plan("", "[machine]\ndeploy_type = production\n[postgresql]\ndatabase_name = zdb\ndatabase_user = zulip\n", {});
    expect(p).toMatchObject({ hosts: ["/var/run/postgresql"], port: 5432, database: "zdb", user: "zulip", password: undefined });
  });
  it("uses REMOTE_POSTGRES_* with postgres_password and verify-full by default", () => {
    const p = plan("REMOTE_POSTGRES_HOST = 'db1.example.net'\nREMOTE_POSTGRES_PORT = '6432'\n", "", { postgres_password: "pw" });
    expect(p).toMatchObject({
      hosts: ["db1.example.net"],
      port: 6432,
      database: "zulip",
      user: "zulip",
      password: "pw",
      sslmode: "verify-full",
      readWrite: false,
    });
    const multi = plan("REMOTE_POSTGRES_HOST = 'db1,db2'\nREMOTE_POSTGRES_SSLMODE = 'require'\n", "", {});
    expect(multi).toMatchObject({ hosts: ["db1", "db2"], sslmode: "require", readWrite: true });
  });
  it("uses TCP to localhost with a password for a non-default database user", () => {
    const p = plan("", "[postgresql]\ndatabase_user = zulipdb\n", { postgres_password: "pw" });
    expect(p).toMatchObject({ hosts: ["localhost"], user: "zulipdb", password: "pw" });
  });
  it("lets PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD and PGSSLMODE override each piece", () => {
    const p = plan(
      "REMOTE_POSTGRES_HOST = 'db1'\n",
      "",
      { postgres_password: "pw" },
      { PGHOST: "h", PGPORT: "7", PGDATABASE: "d", PGUSER: "u", PGPASSWORD: "x", PGSSLMODE: "disable" },
    );
    expect(p).toMatchObject({ hosts: ["h"], port: 7, database: "d", user: "u", password: "x", sslmode: "disable" });
  });
  it("connects with zulip.conf's database name when only PGHOST/PGPORT point at the server", async () => {
    const c = makeConfDir({ db: { name: db.name, user: db.env.PGUSER } });
    try {
      const r = await runCli(["list_realms", "--json"], { confDir: c, env: { PGHOST: db.env.PGHOST, PGPORT: db.env.PGPORT } });
      expect(r.exitCode).toBe(0);
      expect(JSON.parse(r.stdout).realms).toHaveLength(2);
    } finally {
      c.cleanup();
    }
  });
  it("connects over the Unix socket", async () => {
    const r = await runCli(["list_realms", "--json"], { db, confDir: conf, socket: true });
    expect(r.exitCode).toBe(0);
  });
});

describe("manage.log and running as root", () => {
  it("appends each invocation to manage.log in the log directory", async () => {
    await cli(["list_realms", "--json"]);
    const log = fs.readFileSync(path.join(conf.logDir, "manage.log"), "utf8");
    expect(log).toMatch(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}: Ran zulip-manage list_realms --json\n/);
  });

  it.runIf(isRoot)("switches from root to the owner of the deployment directory and says so", async () => {
    const c = makeConfDir();
    try {
      const nobody = 65534;
      const real = fs.realpathSync(c.deployDir);
      fs.chownSync(real, nobody, nobody);
      // Make the config readable after dropping privileges.
      for (const p of [c.root, path.dirname(c.dir), c.dir, c.logDir]) fs.chmodSync(p, 0o755);
      fs.chmodSync(c.secretsPath, 0o644);
      const r = await runCli(["list_realms", "--json"], { db, confDir: c, env: { ZULIP_MANAGE_ALLOW_ROOT: undefined } });
      expect(r.stderr).toMatch(/running as 'nobody' \(the owner of .*\) instead of root/);
      expect(r.exitCode).toBe(0);
      expect(JSON.parse(r.stdout).realms).toHaveLength(2);
      // With the secrets file private to root, the error names the file, owner, mode and our user.
      fs.chmodSync(c.secretsPath, 0o600);
      fs.chownSync(c.secretsPath, 0, 0);
      const denied = await runCli(["list_realms"], { db, confDir: c, env: { ZULIP_MANAGE_ALLOW_ROOT: undefined } });
      expect(denied.exitCode).toBe(3);
      expect(denied.stderr).toContain(
        `Cannot read the Zulip secrets file ${c.secretsPath} (owner root:root, mode 0600) as user 'nobody' (uid 65534): permission denied.`,
      );
      expect(denied.stderr).toContain("su zulip -c");
      const deniedJson = await runCli(["list_realms", "--json"], { db, confDir: c, env: { ZULIP_MANAGE_ALLOW_ROOT: undefined } });
      expect(deniedJson.exitCode).toBe(3);
      expect(JSON.parse(deniedJson.stdout)).toMatchObject({ ok: false, exit_code: 3, error_code: "config_unreadable" });
      // --allow-root skips the switch.
      const asRoot = await runCli(["list_realms", "--json", "--allow-root"], { db, confDir: c, env: { ZULIP_MANAGE_ALLOW_ROOT: undefined } });
      expect(asRoot.exitCode).toBe(0);
      expect(asRoot.stderr).toBe("");
    } finally {
      c.cleanup();
    }
  });

  it.runIf(isRoot && !fs.readFileSync("/etc/passwd", "utf8").match(/^zulip:/m))(
    "without a user to switch to, refuses with the su and docker exec lines",
    async () => {
      const c = makeConfDir({ deployDir: false });
      try {
        const r = await runCli(["show_admins", "-r", ""], { db, confDir: c, env: { ZULIP_MANAGE_ALLOW_ROOT: undefined } });
        expect(r.exitCode).toBe(1);
        expect(r.stderr).toContain("su zulip -c 'zulip-manage show_admins -r '\\'''\\'''");
        expect(r.stderr).toContain("docker exec -u zulip <container> zulip-manage show_admins -r ''");
        expect(r.stderr).toContain("--allow-root");
        // With --json, the error document too.
        const j = await runCli(["show_admins", "-r", "", "--json"], { db, confDir: c, env: { ZULIP_MANAGE_ALLOW_ROOT: undefined } });
        expect(j.exitCode).toBe(1);
        expect(JSON.parse(j.stdout)).toEqual({
          ok: false,
          exit_code: 1,
          error: expect.stringContaining("--allow-root"),
          error_code: "root_refused",
          schema_version: 1,
        });
        // Shell completion is a helper, not an administrative action: it runs as root anyway
        // and is not logged to manage.log.
        const comp = await runCli(["completion", "bash"], { confDir: c, env: { ZULIP_MANAGE_ALLOW_ROOT: undefined } });
        expect(comp.exitCode).toBe(0);
        expect(comp.stdout).toContain("complete ");
        const log = path.join(c.logDir, "manage.log");
        expect(fs.existsSync(log) ? fs.readFileSync(log, "utf8") : "").not.toContain("completion");
      } finally {
        c.cleanup();
      }
    },
  );
});
