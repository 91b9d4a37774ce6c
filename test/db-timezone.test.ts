// Our database sessions run in UTC, as Django's do (USE_TZ=True: the PostgreSQL backend switches
// the session's TimeZone to 'UTC'), whatever the server's default time zone: src/db/db.ts sends
// TimeZone=UTC in the start-up packet. The database here defaults to America/New_York, whose
// daylight saving time makes `now() - make_interval(weeks => n)` an hour off from n×168 hours
// when a change of offset lies in between: delete_old_unclaimed_attachments must count in UTC
// (Zulip: timezone_now() - timedelta(weeks=weeks_ago)).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/config.js";
import { resolvePaths } from "../src/config/paths.js";
import { connect, withSideConnection } from "../src/db/db.js";
import { runCli } from "./helpers/cli.js";
import { makeConfDir, type ConfDir } from "./helpers/confdir.js";
import { createDatabase, type TestDatabase } from "./helpers/pg.js";

const ZONE = "America/New_York";

let db: TestDatabase;
let conf: ConfDir;
let lockDir: string;

beforeAll(async () => {
  db = await createDatabase({ template: "zulip12_fresh" });
  await db.query(`ALTER DATABASE "${db.name}" SET timezone = '${ZONE}'`);
  conf = makeConfDir({ rabbitmq: false });
  lockDir = fs.mkdtempSync(path.join(os.tmpdir(), "zm-tz-locks-"));
}, 120_000);
afterAll(async () => {
  await db?.drop();
  conf?.cleanup();
  if (lockDir) fs.rmSync(lockDir, { recursive: true, force: true });
});

describe("database sessions in UTC", () => {
  const config = () => loadConfig(resolvePaths(conf.dir, {}));

  it("the test database's sessions default to another time zone (else this file tests nothing)", async () => {
    const c = await db.connect();
    try {
      expect((await c.query("SHOW TimeZone")).rows[0].TimeZone).toBe(ZONE);
    } finally {
      await c.end();
    }
  });

  it.each([
    ["TCP", () => db.env],
    ["the Unix socket", () => db.socketEnv],
  ])("connect() over %s: SHOW TimeZone is UTC, the search_path still Zulip's", async (_how, envOf) => {
    const c = await connect(config(), { ...process.env, ...envOf() });
    try {
      const { rows } = await c.query(
        "SELECT current_setting('TimeZone') AS tz, current_setting('search_path') AS sp, now()::date::text = (now() AT TIME ZONE 'UTC')::date::text AS utc_date",
      );
      expect(rows[0]).toEqual({ tz: "UTC", sp: "zulip,public", utc_date: true });
    } finally {
      await c.close();
    }
  });

  it("the side connection too", async () => {
    const tz = await withSideConnection(config(), { ...process.env, ...db.env }, async (q) => (await q.query("SHOW TimeZone")).rows[0].TimeZone);
    expect(tz).toBe("UTC");
  });

  it("delete_old_unclaimed_attachments counts --weeks in UTC, not across the server zone's daylight saving change", async () => {
    // In the database's zone: the first n (weeks) for which n calendar weeks ago is not n×168
    // hours ago, and by how much (±3600 s). Within 52 weeks there is always one.
    const c = await db.connect();
    let weeks: number;
    let shift: number;
    try {
      const { rows } = await c.query(
        `SELECT n, extract(epoch FROM (now() - make_interval(weeks => n)) - (now() - make_interval(hours => 168 * n)))::int AS shift
           FROM generate_series(1, 52) AS n
          WHERE now() - make_interval(weeks => n) <> now() - make_interval(hours => 168 * n)
          ORDER BY n LIMIT 1`,
      );
      expect(rows).toHaveLength(1);
      weeks = rows[0].n;
      shift = rows[0].shift;
      expect(Math.abs(shift)).toBe(3600);
      // Created halfway between the UTC cutoff (n×168 hours ago) and the zone's (shift later).
      await c.query(
        `INSERT INTO zerver_attachment (file_name, path_id, create_time, size, content_type, is_realm_public, is_web_public, owner_id, realm_id)
         SELECT 'between.png', realm_id || '/ab/between-token/between.png', now() - make_interval(hours => 168 * $1::int) + make_interval(secs => $2::int / 2),
                20, 'image/png', true, false, id, realm_id
           FROM zerver_userprofile ORDER BY id LIMIT 1`,
        [weeks, shift],
      );
    } finally {
      await c.end();
    }
    const r = await runCli(["delete_old_unclaimed_attachments", "--weeks", String(weeks), "--json"], {
      db,
      confDir: conf,
      env: { ZULIP_LOCK_DIR: lockDir },
    });
    expect(r.exitCode).toBe(1); // the dry run
    const listed = JSON.parse(r.stdout).attachments.map((a: { file_name: string }) => a.file_name);
    // UTC: created at cutoff + shift/2, older than the cutoff exactly when the shift is negative.
    // (In the zone the cutoff is cutoff + shift: the other way round.)
    expect(listed).toEqual(shift < 0 ? ["between.png"] : []);
  });
});

describe("list_realms --all on a database whose default time zone is not UTC", () => {
  it("prints date_created in UTC, as str() of Django's aware datetime does", async () => {
    const [row] = await db.query("SELECT id, to_char(date_created AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS utc FROM zerver_realm ORDER BY id LIMIT 1");
    const r = await runCli(["list_realms", "--all"], { db, confDir: conf });
    expect(r.exitCode).toBe(0);
    // The UTC wall time with "+00:00", not New York's with "-04:00" / "-05:00".
    const line = r.stdout.split("\n").find((l) => l.startsWith("date_created"));
    expect(line).toMatch(new RegExp(`^date_created\\s+${row.utc}(\\.\\d+)?\\+00:00$`));
  });
});
