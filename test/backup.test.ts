// backup through the built CLI against a real Zulip 12 database and the harness's PostgreSQL:
// the tarball's members are the ones Zulip's backup.py writes and restore-backup reads; unpacked
// the way restore-backup unpacks it (settings first with --strip-components=2, then the reverse
// --transform), its pg_dump directory restores with pg_restore into a fresh, empty cluster and
// equals the original table by table; uploads and /etc/zulip come back byte for byte. Failures
// (pg_dump refused by the server, a full disk, an unreadable upload, a missing directory, no
// usable pg_dump) exit non-zero with a clear message and leave nothing under the final name.
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_NAME_RE, findPgDump, keepPattern, pgDumpMajor, transformArg } from "../src/ops/backup.js";
import { createChannel } from "../src/zulip/actions/create-channel.js";
import { createUser } from "../src/zulip/actions/create-user.js";
import { sendMessage } from "../src/zulip/actions/message-send.js";
import { CLI_BIN, cliEnv, runCli, type CliResult } from "./helpers/cli.js";
import { type ConfDir } from "./helpers/confdir.js";
import { sharedCluster, startPostgres, type PgCluster, type PgServerInfo, type TestDatabase } from "./helpers/pg.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";
import { requirePgClientTool, requireTool } from "./helpers/tools.js";

const REALM = 2;
const HOST = "zulip.example.net";

let db: TestDatabase;
let conf: ConfDir;
let tmp: string;
let uploads: string;
let server: PgServerInfo;
/** PATH with the harness's PostgreSQL binaries first (pg_dump as new as the server). */
let pathEnv: string;
const cli = (args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> =>
  runCli(args, { db, confDir: conf, env: { PATH: pathEnv, ...env }, timeoutMs: 120_000 });

function listTarball(file: string): string[] {
  return execFileSync("tar", ["-tzf", file], { encoding: "utf8", maxBuffer: 1 << 26 })
    .split("\n")
    .filter(Boolean);
}

function treeFiles(dir: string, rel = ""): Map<string, string> {
  const out = new Map<string, string>();
  for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
    const r = path.join(rel, name);
    const st = fs.statSync(path.join(dir, r));
    if (st.isDirectory()) for (const [k, v] of treeFiles(dir, r)) out.set(k, v);
    else
      out.set(
        r,
        crypto
          .createHash("sha256")
          .update(fs.readFileSync(path.join(dir, r)))
          .digest("hex"),
      );
  }
  return out;
}

/** Every table of the zulip schema: row count and a digest of its rows in a fixed order. */
async function tableDigests(client: pg.Client): Promise<Map<string, string>> {
  const { rows } = await client.query(
    `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
      ORDER BY 1, 2`,
  );
  const out = new Map<string, string>();
  for (const r of rows) {
    const t = `"${r.nspname}"."${r.relname}"`;
    const d = await client.query(`SELECT count(*)::int AS n, md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) AS h FROM ${t} x`);
    out.set(`${r.nspname}.${r.relname}`, `${d.rows[0].n}:${d.rows[0].h}`);
  }
  return out;
}

async function sequenceValues(client: pg.Client): Promise<Map<string, string>> {
  const { rows } = await client.query("SELECT schemaname || '.' || sequencename AS s, coalesce(last_value, 0)::text AS v FROM pg_sequences ORDER BY 1");
  return new Map(rows.map((r: any) => [r.s, r.v]));
}

let copy: ServerCopy;

beforeAll(async () => {
  server = await sharedCluster();
  // pg_dump as new as the server (the cluster's own when it has one, else Debian's).
  const pgDump = requirePgClientTool("pg_dump", parseInt(server.version, 10), server.bindir);
  pathEnv = `${path.dirname(pgDump)}:${process.env.PATH ?? "/usr/bin:/bin"}`;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "zm-backup-test-"));
  uploads = path.join(tmp, "uploads");
  copy = await startServerCopy({ template: "zulip12_fresh", memcached: false, externalHost: HOST, extraSettings: `LOCAL_UPLOADS_DIR = '${uploads}'\n` });
  ({ db, conf } = copy);
  fs.writeFileSync(path.join(conf.deployDir, "version.py"), 'ZULIP_VERSION = "12.1"\nAPI_FEATURE_LEVEL = 400\n');
  // Some data beyond the fresh install, and files in LOCAL_UPLOADS_DIR.
  const c = db.client;
  await c.query("BEGIN");
  const iago = (await createUser(c, REALM, { email: "iago@zulip.example.net", fullName: "Iago", externalHost: HOST })).id;
  const hamlet = (await createUser(c, REALM, { email: "hamlet@zulip.example.net", fullName: "Hamlet", externalHost: HOST })).id;
  const channel = (await createChannel(c, REALM, { name: "backups", creatorId: iago, subscribers: [iago, hamlet] })).id;
  for (let i = 0; i < 30; i++)
    await sendMessage(c, { senderId: i % 2 ? iago : hamlet, to: { channelId: channel, topic: `t${i % 3}` }, content: `message ${i} ünïcödé` });
  await c.query("COMMIT");
  for (const [rel, bytes] of [
    [`files/${REALM}/ab/cdef/notes.txt`, crypto.randomBytes(3000)],
    [`files/${REALM}/12/3456/a name with spaces.pdf`, crypto.randomBytes(70_000)],
    [`avatars/${REALM}/emoji/images/1.png`, Buffer.from("png!")],
  ] as const) {
    fs.mkdirSync(path.dirname(path.join(uploads, rel)), { recursive: true });
    fs.writeFileSync(path.join(uploads, rel), bytes);
  }
}, 120_000);

afterAll(async () => {
  await copy?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe("backup", () => {
  let outDir: string;
  let result: CliResult;
  let doc: any;
  let tarball: string;

  beforeAll(async () => {
    outDir = path.join(tmp, "out");
    fs.mkdirSync(outDir);
    result = await cli(["backup", "--output", outDir + "/", "--json"]);
    doc = JSON.parse(result.stdout);
    tarball = doc.path;
  }, 120_000);

  it("writes one 0600 tarball with Zulip's default name in the directory, and nothing else", () => {
    expect(result.exitCode, result.stderr).toBe(0);
    expect(path.dirname(tarball)).toBe(outDir);
    expect(path.basename(tarball)).toMatch(DEFAULT_NAME_RE);
    expect(fs.readdirSync(outDir)).toEqual([path.basename(tarball)]);
    expect(fs.statSync(tarball).mode & 0o777).toBe(0o600);
    expect(doc.size_bytes).toBe(fs.statSync(tarball).size);
    expect(doc.duration_ms).toBeGreaterThan(0);
    expect(doc.database).toMatchObject({ included: true, jobs: 1 });
    expect(doc.uploads).toMatchObject({ included: true, dir: uploads, reason: null });
    expect(doc.zulip_version).toBe("12.1");
    // Progress bars only on a terminal; no warnings.
    expect(result.stderr).toBe("");
  });

  it("has the members backup.py writes, under the names restore-backup reads", () => {
    const names = listTarball(tarball);
    for (const m of [
      "zulip-backup/zulip-version",
      "zulip-backup/os-version",
      "zulip-backup/postgres-version",
      "zulip-backup/settings/",
      "zulip-backup/settings/settings.py",
      "zulip-backup/settings/zulip.conf",
      "zulip-backup/settings/zulip-secrets.conf",
      "zulip-backup/database/",
      "zulip-backup/database/toc.dat",
      "zulip-backup/uploads/",
      `zulip-backup/uploads/files/${REALM}/ab/cdef/notes.txt`,
      `zulip-backup/uploads/files/${REALM}/12/3456/a name with spaces.pdf`,
      `zulip-backup/uploads/avatars/${REALM}/emoji/images/1.png`,
    ]) {
      expect(names).toContain(m);
    }
    // Nothing outside zulip-backup/ (no absolute paths, no staging files).
    expect(names.filter((n) => !n.startsWith("zulip-backup/"))).toEqual([]);
    const read = (m: string) => execFileSync("tar", ["-xzOf", tarball, m], { encoding: "utf8" });
    expect(read("zulip-backup/zulip-version")).toBe("12.1\n");
    expect(read("zulip-backup/os-version")).toMatch(/^\S* \S*\n$/);
  });

  it("postgres-version is the server's server_version_num, as psycopg2 reports it", async () => {
    const v = (await db.query<{ v: string }>("SELECT current_setting('server_version_num') AS v"))[0]!.v;
    expect(execFileSync("tar", ["-xzOf", tarball, "zulip-backup/postgres-version"], { encoding: "utf8" })).toBe(`${v}\n`);
    expect(doc.postgres_version).toBe(Number(v));
  });

  describe("restored the way scripts/setup/restore-backup restores it", () => {
    let restoreRoot: string;
    let etc: string;
    let uploadsBack: string;
    let cluster: PgCluster;
    let restored: pg.Client;

    beforeAll(async () => {
      restoreRoot = fs.mkdtempSync(path.join(tmp, "restore-"));
      etc = path.join(restoreRoot, "etc-zulip");
      uploadsBack = path.join(restoreRoot, "uploads");
      const work = path.join(restoreRoot, "work");
      for (const d of [etc, uploadsBack, work]) fs.mkdirSync(d);
      // 1. tar -C /etc/zulip --strip-components=2 -xz zulip-backup/settings
      execFileSync("tar", ["-C", etc, "--strip-components=2", "-xz", "zulip-backup/settings"], { input: fs.readFileSync(tarball) });
      // 2. the reverse transforms, -xP into the work dir
      const back = (name: string, to: string) => `--transform=s|^zulip-backup/${name}(/.*)?$|${to}\\1|x`;
      fs.mkdirSync(path.join(work, "zulip-backup"));
      execFileSync("tar", ["-C", work, back("settings", etc), back("uploads", uploadsBack), "-xPz"], { input: fs.readFileSync(tarball) });
      // 3. createdb in an empty cluster, then pg_restore --dbname=zulip -- <work>/zulip-backup/database
      cluster = await startPostgres();
      const admin = new pg.Client({ host: cluster.socketDir, port: cluster.port, user: cluster.user, database: "postgres" });
      await admin.connect();
      await admin.query("CREATE DATABASE zulip OWNER zulip TEMPLATE template0");
      await admin.end();
      await execa(
        requirePgClientTool("pg_restore", parseInt(cluster.version, 10), cluster.bindir),
        [`--dbname=zulip`, "--", path.join(work, "zulip-backup", "database")],
        {
          env: { PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGUSER: cluster.user },
        },
      );
      restored = new pg.Client({ host: cluster.socketDir, port: cluster.port, user: cluster.user, database: "zulip" });
      await restored.connect();
    }, 120_000);

    afterAll(async () => {
      await restored?.end();
      await cluster?.stop();
    });

    it("the database equals the original, table by table, sequences included", async () => {
      const original = await tableDigests(db.client);
      const copy = await tableDigests(restored);
      expect(original.size).toBeGreaterThan(50);
      expect([...copy.keys()]).toEqual([...original.keys()]);
      for (const [table, digest] of original) expect(`${table} ${copy.get(table)}`).toBe(`${table} ${digest}`);
      expect(Number(original.get("zulip.zerver_message")!.split(":")[0])).toBeGreaterThanOrEqual(30);
      expect(await sequenceValues(restored)).toEqual(await sequenceValues(db.client));
    });

    it("/etc/zulip and the uploads come back byte for byte", () => {
      expect(treeFiles(etc)).toEqual(treeFiles(conf.dir));
      expect(treeFiles(uploadsBack)).toEqual(treeFiles(uploads));
    });
  });
});

describe("backup options", () => {
  it("--skip-db and --skip-uploads leave those members out; --quiet prints nothing", async () => {
    const out = path.join(tmp, "skip.tar.gz");
    const r = await cli(["backup", "--output", out, "--skip-db", "--skip-uploads", "--quiet"]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe("");
    const names = listTarball(out);
    expect(names).toContain("zulip-backup/settings/settings.py");
    expect(names).toContain("zulip-backup/postgres-version");
    expect(names.some((n) => n.startsWith("zulip-backup/database"))).toBe(false);
    expect(names.some((n) => n.startsWith("zulip-backup/uploads"))).toBe(false);
    fs.rmSync(out);
  });

  it("prints one summary line for cron mail, and --threads runs pg_dump with parallel jobs", async () => {
    const out = path.join(tmp, "threads.tar.gz");
    const r = await cli(["backup", "--output", out, "--threads", "2", "--skip-uploads"]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout.split("\n")).toHaveLength(1);
    expect(r.stdout).toMatch(
      new RegExp(
        `^Backup tarball written to ${out.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} \\([\\d.]+ (KiB|MiB|bytes) in [\\d.]+ s: database, settings, no uploads\\)$`,
      ),
    );
    expect(listTarball(out)).toContain("zulip-backup/database/toc.dat");
    fs.rmSync(out);
  });

  it("draws progress bars on a terminal only (script(1) gives it one)", async () => {
    const out = path.join(tmp, "tty.tar.gz");
    const q = (a: string) => `'${a.replace(/'/g, "'\\''")}'`;
    const command = [process.execPath, CLI_BIN, "backup", "--output", out].map(q).join(" ");
    const r = await execa(requireTool("script"), ["-qec", command, "/dev/null"], {
      env: cliEnv({ db, confDir: conf, env: { PATH: pathEnv } }),
      extendEnv: false,
      reject: false,
      timeout: 120_000,
    });
    expect(r.exitCode, r.stdout).toBe(0);
    expect(r.stdout).toContain("Dumping the database (tables) [");
    expect(r.stdout).toMatch(/Writing the tarball \((KiB|MiB)\) \[/);
    expect(r.stdout).toContain("Backup tarball written to " + out);
    expect(listTarball(out)).toContain("zulip-backup/database/toc.dat");
    fs.rmSync(out);
  });

  it("--keep N removes the older backups of the same name shape beyond the newest N", async () => {
    const dir = path.join(tmp, "keep");
    fs.mkdirSync(dir);
    const old = ["zulip-2026-11-01.tar.gz", "zulip-2026-11-02.tar.gz", "zulip-2026-11-03.tar.gz"];
    old.forEach((name, i) => {
      fs.writeFileSync(path.join(dir, name), "old");
      const t = new Date(Date.UTC(2026, 10, 1 + i));
      fs.utimesSync(path.join(dir, name), t, t);
    });
    fs.writeFileSync(path.join(dir, "notes.txt"), "unrelated");
    fs.writeFileSync(path.join(dir, "zulip-latest.tar.gz"), "another shape");
    const r = await cli(["backup", "--output", path.join(dir, "zulip-2026-12-07.tar.gz"), "--keep", "2", "--skip-uploads", "--json"]);
    expect(r.exitCode, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout);
    expect(d.older_backups.map((x: any) => [x.path, x.status]).sort()).toEqual([
      [path.join(dir, old[0]!), "done"],
      [path.join(dir, old[1]!), "done"],
    ]);
    expect(fs.readdirSync(dir).sort()).toEqual(["notes.txt", old[2], "zulip-2026-12-07.tar.gz", "zulip-latest.tar.gz"].sort());
  });

  it("refuses bad option values as usage errors", async () => {
    for (const args of [
      ["--threads", "0"],
      ["--keep", "0"],
      ["--keep", "x"],
    ]) {
      const r = await cli(["backup", ...args]);
      expect(r.exitCode).toBe(2);
    }
  });
});

describe("backup failures", () => {
  function assertNothingWritten(dir: string, finalName: string) {
    expect(fs.existsSync(path.join(dir, finalName))).toBe(false);
    expect(fs.readdirSync(dir).filter((n) => n.startsWith(".zulip-backup-"))).toEqual([]);
  }

  it("pg_dump refused by the server (no privilege on a table): exit 1 with pg_dump's error, no file", async () => {
    const role = `backup_limited_${crypto.randomBytes(4).toString("hex")}`;
    await db.client.query(`CREATE ROLE ${role} LOGIN`);
    await db.client.query(
      `GRANT USAGE ON SCHEMA zulip TO ${role}; GRANT SELECT ON ALL TABLES IN SCHEMA zulip TO ${role}; GRANT SELECT ON ALL SEQUENCES IN SCHEMA zulip TO ${role}`,
    );
    await db.client.query(`REVOKE SELECT ON zerver_message FROM ${role}`);
    try {
      const dir = fs.mkdtempSync(path.join(tmp, "denied-"));
      const r = await cli(["backup", "--output", path.join(dir, "b.tar.gz"), "--skip-uploads"], { PGUSER: role });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/^pg_dump exited with status 1; no backup was written\./);
      expect(r.stderr).toMatch(/permission denied for table zerver_message/);
      assertNothingWritten(dir, "b.tar.gz");
    } finally {
      await db.client.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
    }
  });

  it("an upload tar cannot read (a dangling symlink, followed as backup.py's tar -h does): exit 1, no file", async () => {
    const link = path.join(uploads, "files", "dangling");
    fs.symlinkSync(path.join(tmp, "no-such-file"), link);
    try {
      const dir = fs.mkdtempSync(path.join(tmp, "unreadable-"));
      const r = await cli(["backup", "--output", path.join(dir, "b.tar.gz"), "--skip-db"]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/^tar exited with status [12] while archiving .*; no backup was written\./);
      expect(r.stderr).toContain("dangling");
      assertNothingWritten(dir, "b.tar.gz");
    } finally {
      fs.unlinkSync(link);
    }
  });

  // A small tmpfs in a private mount namespace (unshare -rm: no privileges needed): the command
  // runs inside it, then the listing of the mount point is printed before the namespace goes away.
  async function inTinyFilesystem(sizeKb: number, args: string[]): Promise<{ code: number; stderr: string; listing: string[] }> {
    const mnt = fs.mkdtempSync(path.join(tmp, "tiny-"));
    const script = `mount -t tmpfs -o size=${sizeKb}k tmpfs "$1" || exit 99; shift; "$@"; rc=$?; echo "rc=$rc"; ls -A "$MNT"`;
    const env = cliEnv({ db, confDir: conf, env: { PATH: pathEnv, MNT: mnt } });
    const r = await execa(
      requireTool("unshare"),
      ["-rm", "sh", "-c", script, "sh", mnt, process.execPath, CLI_BIN, ...args.map((a) => a.replace("$MNT", mnt))],
      {
        env,
        extendEnv: false,
        reject: false,
        timeout: 120_000,
      },
    );
    const lines = r.stdout.split("\n");
    const at = lines.findIndex((l) => l.startsWith("rc="));
    expect(at, `${r.stdout}\n${r.stderr}`).toBeGreaterThanOrEqual(0);
    return { code: Number(lines[at]!.slice(3)), stderr: r.stderr, listing: lines.slice(at + 1).filter(Boolean) };
  }

  it("a full disk while pg_dump writes: exit 1 saying so, the staging directory removed", async () => {
    const r = await inTinyFilesystem(64, ["backup", "--output", "$MNT/b.tar.gz", "--skip-uploads"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^pg_dump exited with status 1; no backup was written\. The output's filesystem is full\./);
    expect(r.listing).toEqual([]);
  });

  it("a full disk while the tarball is written: exit 1 saying so, nothing under the final name", async () => {
    // Room for the staged version files, not for a tarball holding 600 KiB of random uploads.
    const big = path.join(uploads, "files", "big.bin");
    fs.writeFileSync(big, crypto.randomBytes(600 * 1024));
    try {
      const r = await inTinyFilesystem(256, ["backup", "--output", "$MNT/b.tar.gz", "--skip-db"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^Writing the backup tarball failed: no space left on the device/);
      expect(r.listing).toEqual([]);
    } finally {
      fs.unlinkSync(big);
    }
  });

  it("a missing output directory, or one inside /etc/zulip, is refused before anything runs", async () => {
    const r1 = await cli(["backup", "--output", path.join(tmp, "no", "such", "dir", "b.tar.gz")]);
    expect(r1.exitCode).toBe(1);
    expect(r1.stderr).toMatch(/the directory .*no\/such\/dir does not exist/);
    const r2 = await cli(["backup", "--output", path.join(conf.dir, "b.tar.gz")]);
    expect(r2.exitCode).toBe(1);
    expect(r2.stderr).toMatch(/inside the configuration directory .* it would archive itself/);
    expect(fs.existsSync(path.join(conf.dir, "b.tar.gz"))).toBe(false);
  });
});

describe("choosing pg_dump", () => {
  let root: string;
  let bin: string;
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(tmp, "pgroot-"));
    bin = fs.mkdtempSync(path.join(tmp, "bin-"));
  });

  const fakeVersion = (file: string, line: string) => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, `#!/bin/sh\necho '${line}'\n`, { mode: 0o755 });
  };

  it("reads the major version of pg_dump --version", () => {
    expect(pgDumpMajor("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)")).toBe(15);
    expect(pgDumpMajor("pg_dump (PostgreSQL) 17beta1")).toBe(17);
    expect(pgDumpMajor("something else")).toBeNull();
  });

  it("takes the server's major under /usr/lib/postgresql first (as backup.py), then a newer one, never an older one", async () => {
    fakeVersion(path.join(root, "14", "bin", "pg_dump"), "pg_dump (PostgreSQL) 14.3");
    fakeVersion(path.join(root, "16", "bin", "pg_dump"), "pg_dump (PostgreSQL) 16.1");
    fakeVersion(path.join(root, "17", "bin", "pg_dump"), "pg_dump (PostgreSQL) 17.2");
    expect((await findPgDump(16, { PATH: "" }, root)).path).toBe(path.join(root, "16", "bin", "pg_dump"));
    expect((await findPgDump(15, { PATH: "" }, root)).path).toBe(path.join(root, "16", "bin", "pg_dump"));
    await expect(findPgDump(18, { PATH: "" }, root)).rejects.toThrow(/pg_dump \(PostgreSQL 18 or newer\) was not found/);
  });

  it("falls back to PATH, and says so clearly when the only pg_dump there is too old (exit 3)", async () => {
    fakeVersion(path.join(bin, "pg_dump"), "pg_dump (PostgreSQL) 13.9");
    const empty = fs.mkdtempSync(path.join(tmp, "none-"));
    await expect(findPgDump(13, { PATH: bin }, empty)).resolves.toMatchObject({ path: path.join(bin, "pg_dump"), major: 13 });
    const err = await findPgDump(15, { PATH: bin }, empty).catch((e) => e);
    expect(err.exitCode).toBe(3);
    expect(err.message).toMatch(
      /runs PostgreSQL 15, but the only pg_dump found is older: .*13\.9.*\nInstall the PostgreSQL 15 client tools \(Debian\/Ubuntu: apt-get install postgresql-client-15\)/,
    );
  });

  it("the tar --transform of backup.py (an ERE of the literal path), refusing '|'", () => {
    expect(transformArg("settings", "/etc/zulip")).toBe("--transform=s|^/etc/zulip(/.*)?$|zulip-backup/settings\\1|x");
    expect(transformArg("uploads", "/srv/a.b+c")).toBe("--transform=s|^/srv/a\\.b\\+c(/.*)?$|zulip-backup/uploads\\1|x");
    expect(() => transformArg("uploads", "/srv/a|b")).toThrow(/contains '\|'/);
  });

  it("--keep's name shapes", () => {
    expect(keepPattern("zulip-backup-2026-12-07-03-00-00-ab12cd_z.tar.gz")).toBe(DEFAULT_NAME_RE);
    const p = keepPattern("zulip-2026-12-07.tar.gz");
    expect(p.test("zulip-2025-01-31.tar.gz")).toBe(true);
    expect(p.test("zulip-latest.tar.gz")).toBe(false);
    expect(p.test("zulip-2025-01-31.tar.gz.bak")).toBe(false);
    expect(keepPattern("zulip.tar.gz").test("zulip.tar.gz")).toBe(true);
  });
});
