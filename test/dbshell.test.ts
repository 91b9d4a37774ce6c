// dbshell: the built CLI runs the real psql against a real Zulip database with the connection
// zulip-manage uses; a recording stand-in psql proves what is (and is not) on its command line.
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.js";
import { makeConfDir, type ConfDir } from "./helpers/confdir.js";
import { type TestDatabase } from "./helpers/pg.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";
import { makeTempDir, removeDirSync } from "./helpers/services.js";
import { requireTool } from "./helpers/tools.js";

let db: TestDatabase;
let conf: ConfDir;

let copy: ServerCopy;

beforeAll(async () => {
  copy = await startServerCopy({ template: "zulip12_fresh", memcached: false });
  ({ db, conf } = copy);
});

afterAll(() => copy?.stop());

describe("with the real psql", () => {
  // psql is required (it comes with PostgreSQL, which the tests need anyway): no skipping.
  const pathWithPsql = () => `${path.dirname(requireTool("psql"))}:/usr/bin:/bin`;

  it("connects to the Zulip database with search_path zulip, public and passes the arguments after --", async () => {
    const r = await runCli(
      [
        "dbshell",
        "--",
        "-X",
        "-A",
        "-t",
        "-c",
        "SELECT current_schemas(false), current_database(), current_setting('application_name'), count(*) FROM zerver_realm",
      ],
      { confDir: conf, db, env: { PATH: pathWithPsql() } },
    );
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const realms = (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM zulip.zerver_realm"))[0].n;
    // Unqualified zerver_realm resolved through the search path to the Zulip schema.
    expect(r.stdout).toBe(`{zulip,public}|${db.name}|zulip-manage dbshell|${realms}`);
  });

  it("uses the Unix socket when that is the configured host", async () => {
    const r = await runCli(["dbshell", "--", "-X", "-A", "-t", "-c", "SELECT inet_server_addr() IS NULL"], {
      confDir: conf,
      db,
      socket: true,
      env: { PATH: pathWithPsql() },
    });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("t");
  });

  it("exits with psql's exit status", async () => {
    const r = await runCli(["dbshell", "--", "-X", "-v", "ON_ERROR_STOP=1", "-c", "SELECT 1/0"], {
      confDir: conf,
      db,
      env: { PATH: pathWithPsql() },
    });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("division by zero");
    const three = await runCli(["dbshell", "--", "-X", "-f", "/nonexistent/file.sql"], { confDir: conf, db, env: { PATH: pathWithPsql() } });
    expect(three.exitCode).toBe(1);
    expect(three.stderr).toMatch(/No such file/);
  });

  it("reads SQL from stdin when it is not a terminal", async () => {
    const r = await runCli(["dbshell", "--", "-X", "-A", "-t"], {
      confDir: conf,
      db,
      input: "SELECT string_id FROM zerver_realm WHERE id = 1;\n",
      env: { PATH: pathWithPsql() },
    });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("zulipinternal");
  });
});

describe("connection settings and the password", () => {
  let fakeDir: string;
  let recordFile: string;
  const record = () => {
    const argv: string[] = [];
    const env: Record<string, string> = {};
    for (const line of fs.readFileSync(recordFile, "utf8").split("\n").filter(Boolean)) {
      if (line.startsWith("ARG=")) argv.push(line.slice(4));
      else env[line.slice(0, line.indexOf("="))] = line.slice(line.indexOf("=") + 1);
    }
    return { argv, env };
  };
  let remote: ConfDir;

  beforeAll(() => {
    fakeDir = makeTempDir("dbshell-fake");
    recordFile = path.join(fakeDir, "record.txt");
    // A stand-in psql that records its arguments and libpq environment, then exits 7.
    fs.writeFileSync(
      path.join(fakeDir, "psql"),
      `#!/bin/sh\n{ for a in "$@"; do printf 'ARG=%s\\n' "$a"; done; env | grep '^PG'; } > '${recordFile}'\nexit 7\n`,
      { mode: 0o755 },
    );
    remote = makeConfDir({
      extraSettings: 'REMOTE_POSTGRES_HOST = "db1.example.net,db2.example.net"\nREMOTE_POSTGRES_PORT = 6432\nREMOTE_POSTGRES_SSLMODE = "require"\n',
      zulipConf: "[machine]\ndeploy_type = production\n\n[postgresql]\ndatabase_name = zulipdb\ndatabase_user = zulipuser\n",
      secrets: { postgres_password: "s3cret-pass'word" },
    });
  });

  afterAll(() => {
    remote?.cleanup();
    if (fakeDir) removeDirSync(fakeDir);
  });

  it("gives psql the remote database settings through PG* variables, the password only as PGPASSWORD", async () => {
    const r = await runCli(["dbshell", "--", "-c", "SELECT 1"], { confDir: remote, env: { PATH: `${fakeDir}:/usr/bin:/bin` } });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(7); // psql's status
    const rec = record();
    expect(rec.argv).toEqual(["-c", "SELECT 1"]);
    expect(rec.argv.join(" ")).not.toContain("s3cret");
    expect(rec.env).toMatchObject({
      PGHOST: "db1.example.net,db2.example.net",
      PGPORT: "6432",
      PGDATABASE: "zulipdb",
      PGUSER: "zulipuser",
      PGPASSWORD: "s3cret-pass'word",
      PGSSLMODE: "require",
      PGOPTIONS: "-c search_path=zulip,public",
      PGTARGETSESSIONATTRS: "read-write",
      PGAPPNAME: "zulip-manage dbshell",
    });
  });

  it("--json shows the command and environment without the password", async () => {
    const r = await runCli(["dbshell", "--json", "--", "-c", "SELECT 1"], { confDir: remote, env: { PATH: "/nonexistent" } });
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.command).toEqual(["psql", "-c", "SELECT 1"]);
    expect(doc.env.PGPASSWORD).toBe("(secret, not shown)");
    expect(doc.env.PGHOST).toBe("db1.example.net,db2.example.net");
    expect(r.stdout).not.toContain("s3cret");
  });

  it("PG* variables of the caller override the configuration, as for every command", async () => {
    await runCli(["dbshell"], {
      confDir: remote,
      env: { PATH: `${fakeDir}:/usr/bin:/bin`, PGHOST: "/run/pg", PGDATABASE: "other", PGPASSWORD: "from-env" },
    });
    const rec = record();
    expect(rec.argv).toEqual([]);
    expect(rec.env).toMatchObject({ PGHOST: "/run/pg", PGDATABASE: "other", PGUSER: "zulipuser", PGPASSWORD: "from-env" });
    expect(rec.env.PGTARGETSESSIONATTRS).toBeUndefined();
  });

  it("says how to install psql when it is missing (exit 3)", async () => {
    const r = await runCli(["dbshell"], { confDir: conf, db, env: { PATH: "/nonexistent" } });
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toContain("psql (the PostgreSQL command-line client) is not installed or not on PATH.");
    expect(r.stderr).toContain("apt-get install postgresql-client");
  });
});
