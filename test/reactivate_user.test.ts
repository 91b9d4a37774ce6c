// reactivate_user through the built CLI against a real Zulip 12 database and a real memcached:
// after deactivate_user -f, reactivation writes back exactly what do_reactivate_user writes
// (is_active, is_user_active, subscriber counts, the 104 row with ROLE_COUNT) and nothing else;
// and every refusal (deactivated realm, placeholder account, already active, address taken,
// bot name taken) writes nothing.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { roleCounts } from "../src/zulip/audit.js";
import { runCli, type CliResult } from "./helpers/cli.js";
import { type ConfDir } from "./helpers/confdir.js";
import { type MemcachedInstance } from "./helpers/memcached.js";
import { type TestDatabase } from "./helpers/pg.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";
import { changedTables, snapshot } from "./helpers/snapshot.js";
import { copyMember } from "./helpers/users.js";

const OWNER = 8;
const OWNER_EMAIL = "test@test.com";

async function rowsById(db: TestDatabase, table: string): Promise<Map<string, any>> {
  const rows = await db.query(`SELECT * FROM ${table} ORDER BY id`);
  return new Map(rows.map((r: any) => [String(r.id), r]));
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

describe("reactivate_user", () => {
  it("undoes deactivate_user -f exactly as do_reactivate_user does; the cache entries go", async () => {
    const users0 = await rowsById(db, "zerver_userprofile");
    const subs0 = await rowsById(db, "zerver_subscription");
    const streams0 = await rowsById(db, "zerver_stream");
    const d = await cli(["deactivate_user", OWNER_EMAIL, "-f"]);
    expect(d.exitCode).toBe(0);
    expect((await db.query("SELECT is_active FROM zerver_userprofile WHERE id = 8"))[0].is_active).toBe(false);

    const mcc = await mc.connect();
    const [owner] = await db.query("SELECT api_key FROM zerver_userprofile WHERE id = 8");
    const keys = [
      `user_profile_by_id:${OWNER}`,
      `user_profile_by_api_key:${owner.api_key}`,
      "realm_user_dicts:2",
      "active_user_ids:2",
      "active_non_guest_user_ids:2",
    ];
    for (const k of keys) await mcc.set(`:1:${conf.cachePrefix}${k}`, "stale");

    const before = await snapshot(db);
    const maxAudit = Number((await db.query("SELECT max(id) AS m FROM zerver_realmauditlog"))[0].m);
    const t0 = Date.now();
    const r = await cli(["reactivate_user", "-r", "2", OWNER_EMAIL]);
    const t1 = Date.now();
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(`User ${OWNER_EMAIL} reactivated.`);
    expect(changedTables(before, await snapshot(db))).toEqual(["zerver_realmauditlog", "zerver_stream", "zerver_subscription", "zerver_userprofile"]);
    // Back to the rows before the deactivation (the other effects of deactivation stay undone, as in Zulip).
    expect(await rowsById(db, "zerver_userprofile")).toEqual(users0);
    expect(await rowsById(db, "zerver_subscription")).toEqual(subs0);
    expect(await rowsById(db, "zerver_stream")).toEqual(streams0);
    const audit = await db.query("SELECT * FROM zerver_realmauditlog WHERE id > $1 ORDER BY id", [maxAudit]);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({
      realm_id: 2,
      acting_user_id: null,
      modified_user_id: OWNER,
      modified_stream_id: null,
      modified_user_group_id: null,
      event_last_message_id: null,
      event_type: 104,
      backfilled: false,
      scrubbed: false,
    });
    expect(audit[0].extra_data).toEqual({ "10": await roleCounts(db.client, 2) });
    expect(audit[0].event_time.getTime()).toBeGreaterThanOrEqual(t0 - 1000);
    expect(audit[0].event_time.getTime()).toBeLessThanOrEqual(t1 + 1000);
    for (const k of keys) expect(await mcc.get(`:1:${conf.cachePrefix}${k}`), k).toBeNull();
    await mcc.close();
  });

  it("refuses an active user, a placeholder account, a deactivated organization, a taken address or bot name; writes nothing", async () => {
    const before = await snapshot(db);
    let r = await cli(["reactivate_user", OWNER_EMAIL]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe(`User ${OWNER_EMAIL} is already active.`);

    const dummy = await copyMember(db, { email: "deleteduser1@zulip.example.net", fullName: "Deleted User", active: false });
    await db.query("UPDATE zerver_userprofile SET is_mirror_dummy = true WHERE id = $1", [dummy]);
    r = await cli(["reactivate_user", "deleteduser1@zulip.example.net"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe("Cannot activate a placeholder account; ask the user to sign up, instead.");

    const bot = await copyMember(db, { email: "old-bot@test.example", fullName: "Notifier", botOwnerId: OWNER, active: false });
    await copyMember(db, { email: "new-bot@test.example", fullName: "Notifier", botOwnerId: OWNER });
    r = await cli(["reactivate_user", "old-bot@test.example", "--dry-run"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe(
      'There is already an active bot named "Notifier" in this organization. To reactivate this bot, you must rename or deactivate the other one first.',
    );

    await db.query("UPDATE zerver_realm SET deactivated = true WHERE id = 2");
    const mid = await snapshot(db);
    r = await cli(["reactivate_user", "old-bot@test.example"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^The organization '' \(testing\) is deactivated; reactivate the organization first/);
    expect(changedTables(mid, await snapshot(db))).toEqual([]);
    await db.query("UPDATE zerver_realm SET deactivated = false WHERE id = 2");
    expect(changedTables(before, await snapshot(db)).filter((t) => t !== "zerver_userprofile")).toEqual([]);
    void bot;
  });

  it("the address check: another active account using the address is refused", async () => {
    // Only a damaged database (unique indexes dropped) can hold the same address twice.
    await db.query("DROP INDEX zerver_userprofile_realm_id_email_uniq");
    const id = await copyMember(db, { email: "solo@test.example", fullName: "Solo", active: false });
    const other = await copyMember(db, { email: "other@test.example", fullName: "Other" });
    await db.query("UPDATE zerver_userprofile SET email = 'SOLO@test.example' WHERE id = $1", [other]);
    const before = await snapshot(db);
    const r = await cli(["reactivate_user", "solo@test.example"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe(
      `The email address solo@test.example is now used by another active account (user id ${other}, other@test.example); change one of the addresses first.`,
    );
    expect(changedTables(before, await snapshot(db))).toEqual([]);
    void id;
  });

  it("--json and --dry-run", async () => {
    const id = await copyMember(db, { email: "json@test.example", fullName: "Jason", active: false });
    const before = await snapshot(db);
    const dry = await cli(["reactivate_user", "json@test.example", "--dry-run", "--json"]);
    expect(dry.exitCode).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ ok: true, dry_run: true, changed: false, user: { id, delivery_email: "json@test.example" } });
    expect(changedTables(before, await snapshot(db))).toEqual([]);
    const r = await cli(["reactivate_user", "json@test.example", "--json"]);
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ ok: true, dry_run: false, changed: true, subscription_count: 0, channel_ids: [], inactive_bot_owner: null });
    const [row] = await db.query("SELECT id FROM zerver_realmauditlog WHERE modified_user_id = $1 AND event_type = 104", [id]);
    expect(doc.audit_log_ids).toEqual([Number(row.id)]);
    expect(doc.cache.ok).toBe(true);
  });
});
