// change_user_email through the built CLI against a real Zulip 12 database and a real
// memcached: the rows do_change_user_delivery_email writes (delivery_email, email only when the
// address is public, the 125 row), the cache entries under the old and new addresses, and the
// checks done before writing (format, duplicates, no-op).
import crypto from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateEmailAddress } from "../src/zulip/email-address.js";
import { runCli, type CliResult } from "./helpers/cli.js";
import { type ConfDir } from "./helpers/confdir.js";
import { type MemcachedInstance } from "./helpers/memcached.js";
import { type TestDatabase } from "./helpers/pg.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";
import { changedTables, snapshot } from "./helpers/snapshot.js";
import { copyRow } from "./helpers/users.js";

const sha1 = (s: string) => crypto.createHash("sha1").update(s, "utf8").digest("hex");

/** A copy of the owner's row as a new member whose address only admins can see. */
async function hiddenUser(db: TestDatabase, email: string): Promise<number> {
  const override: Record<string, string> = {
    email: "'pending@zulip.example.net'",
    delivery_email: "$1",
    full_name: "'Hidden'",
    role: "400",
    api_key: "substr(md5(random()::text), 1, 32)",
    uuid: "gen_random_uuid()",
    email_address_visibility: "3",
    can_create_users: "false",
  };
  const id = await copyRow(db, "zerver_userprofile", 8, override, [email]);
  await db.query("UPDATE zerver_userprofile SET email = $2 WHERE id = $1", [id, `user${id}@zulip.example.net`]);
  return id;
}

let db: TestDatabase;
let mc: MemcachedInstance;
let conf: ConfDir;
const cli = (args: string[]): Promise<CliResult> => runCli(args, { confDir: conf, db });

let copy: ServerCopy;
beforeAll(async () => {
  copy = await startServerCopy({ template: "zulip12_fresh" });
  ({ db, mc, conf } = copy);
}, 120_000);
afterAll(() => copy?.stop());

describe("change_user_email", () => {
  it("public address: delivery_email and email change, a 125 row, the caches under both addresses go; prints nothing", async () => {
    const [before] = await db.query("SELECT * FROM zerver_userprofile WHERE id = 8");
    expect(before.email_address_visibility).toBe(1);
    const recipients = (await db.query("SELECT recipient_id FROM zerver_subscription WHERE user_profile_id = 8")).map((r: any) => r.recipient_id);
    expect(recipients.length).toBeGreaterThan(0);
    const NEW = "Owner@Example.org";
    const keys = [
      "user_profile_by_id:8",
      `user_profile_by_api_key:${before.api_key}`,
      `user_profile:${sha1("test@test.com")}:2`,
      `user_profile_by_delivery_email:${sha1("test@test.com")}:2`,
      `user_profile:${sha1(NEW)}:2`,
      `user_profile_by_delivery_email:${sha1(NEW)}:2`,
      "realm_user_dicts:2",
      "single_user_display_recipient:8",
      ...recipients.map((r: string) => `display_recipient_dict:${r}`),
    ];
    const mcc = await mc.connect();
    for (const k of keys) await mcc.set(`:1:${conf.cachePrefix}${k}`, "stale");
    await mcc.set(`:1:${conf.cachePrefix}active_user_ids:2`, "still valid");

    const snap = await snapshot(db);
    const maxAudit = Number((await db.query("SELECT max(id) AS m FROM zerver_realmauditlog"))[0].m);
    const t0 = Date.now();
    const r = await cli(["change_user_email", "-r", "2", "TEST@test.com", NEW]);
    const t1 = Date.now();
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("");
    expect(changedTables(snap, await snapshot(db))).toEqual(["zerver_realmauditlog", "zerver_userprofile"]);
    const [after] = await db.query("SELECT * FROM zerver_userprofile WHERE id = 8");
    expect(after).toEqual({ ...before, email: NEW, delivery_email: NEW });
    const audit = await db.query("SELECT * FROM zerver_realmauditlog WHERE id > $1", [maxAudit]);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({
      realm_id: 2,
      acting_user_id: null,
      modified_user_id: 8,
      modified_stream_id: null,
      modified_user_group_id: null,
      event_last_message_id: null,
      event_type: 125,
      backfilled: false,
      extra_data: { "1": before.delivery_email, "2": NEW },
      scrubbed: false,
    });
    expect(audit[0].event_time.getTime()).toBeGreaterThanOrEqual(t0 - 1000);
    expect(audit[0].event_time.getTime()).toBeLessThanOrEqual(t1 + 1000);
    for (const k of keys) expect(await mcc.get(`:1:${conf.cachePrefix}${k}`), k).toBeNull();
    expect(await mcc.getString(`:1:${conf.cachePrefix}active_user_ids:2`)).toBe("still valid");
    await mcc.close();
  });

  it("hidden address: only delivery_email changes (email keeps the generated address); --json", async () => {
    const id = await hiddenUser(db, "hidden@test.example");
    const [before] = await db.query("SELECT * FROM zerver_userprofile WHERE id = $1", [id]);
    const r = await cli(["change_user_email", "hidden@test.example", "hidden2@test.example", "--json"]);
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({
      ok: true,
      dry_run: false,
      delivery_email: { old: "hidden@test.example", new: "hidden2@test.example" },
      email: { old: `user${id}@zulip.example.net`, new: `user${id}@zulip.example.net` },
    });
    const [after] = await db.query("SELECT * FROM zerver_userprofile WHERE id = $1", [id]);
    expect(after).toEqual({ ...before, delivery_email: "hidden2@test.example" });
    const [row] = await db.query("SELECT id, acting_user_id FROM zerver_realmauditlog WHERE modified_user_id = $1 AND event_type = 125", [id]);
    expect(doc.audit_log_ids).toEqual([Number(row.id)]);
    expect(row.acting_user_id).toBeNull();
  });

  it("refuses invalid, duplicate and unchanged addresses, and writes nothing; --dry-run writes nothing", async () => {
    const snap = await snapshot(db);
    let r = await cli(["change_user_email", "Owner@Example.org", "not an address"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe("Invalid email address 'not an address': it has no '@'.");
    r = await cli(["change_user_email", "Owner@Example.org", "a..b@example.org"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe("Invalid email address 'a..b@example.org': 'a..b' is not a valid local part.");
    r = await cli(["change_user_email", "Owner@Example.org", "HIDDEN2@test.example"]);
    expect(r.exitCode).toBe(1);
    const [h] = await db.query("SELECT id FROM zerver_userprofile WHERE delivery_email = 'hidden2@test.example'");
    expect(r.stderr).toBe(`The email address HIDDEN2@test.example is already used by another account in the organization '': user Hidden (id ${h.id}).`);
    r = await cli(["change_user_email", "owner@example.org", "Owner@Example.org"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe("Owner@Example.org already has this email address.");
    r = await cli(["change_user_email", "owner@example.org"]);
    expect(r.exitCode).toBe(2);
    r = await cli(["change_user_email", "owner@example.org", "owner2@example.org", "--dry-run"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(
      "Would change the email address of tester from Owner@Example.org to owner2@example.org (also the address other users see).\n(dry run: nothing was changed)",
    );
    expect(changedTables(snap, await snapshot(db))).toEqual([]);
  });
});

// The 125 row per release: acting user NULL everywhere (manage.py passes acting_user=None since
// 10.x); extra_data {"1": old, "2": new} from 11.0 (zulip/zulip PR #34132), {} on 10.x.
describe.each([
  ["zulip10_fresh", {}],
  ["zulip11_fresh", { "1": "Desdemona@Test.example", "2": "desdemona2@test.example" }],
] as const)("change_user_email on %s", (template, extra) => {
  let odb: TestDatabase;
  let oconf: ConfDir;
  beforeAll(async () => {
    ({ db: odb, conf: oconf } = await startServerCopy({ template, memcached: mc }));
  }, 120_000);
  afterAll(async () => {
    oconf?.cleanup();
    await odb?.drop();
  });
  it("writes that release's 125 row", async () => {
    await odb.query("UPDATE zerver_userprofile SET delivery_email = 'Desdemona@Test.example' WHERE id = 8");
    const r = await runCli(["change_user_email", "-r", "2", "desdemona@test.example", "desdemona2@test.example"], { confDir: oconf, db: odb });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const rows = await odb.query("SELECT acting_user_id, modified_user_id, extra_data FROM zerver_realmauditlog WHERE event_type = 125");
    expect(rows).toEqual([{ acting_user_id: null, modified_user_id: 8, extra_data: extra }]);
  });
});

describe("validateEmailAddress (Django's EmailValidator)", () => {
  it("accepts what Django accepts and refuses what it refuses", () => {
    for (const ok of [
      "a@b.co",
      "first.last+tag@sub.example.org",
      '"quoted@name"@example.com',
      "x@localhost",
      "x@[127.0.0.1]",
      "x@[::1]",
      "ü@müller.de".replace("ü@", "u@"),
    ]) {
      expect(validateEmailAddress(ok), ok).toBeNull();
    }
    for (const bad of [
      '"quoted name"@example.com',
      "",
      "plain",
      "a@b",
      "a@-b.com",
      "a@b-.com",
      ".a@b.com",
      "a.@b.com",
      "a b@c.com",
      "a@b.c",
      "a@[1.2.3]",
      `${"x".repeat(310)}@example.com`,
    ]) {
      expect(validateEmailAddress(bad), bad).not.toBeNull();
    }
  });
});
