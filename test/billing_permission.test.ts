// change_user_role ... is_billing_admin [--revoke] on Zulip 10/11/12, where the permission is the
// realm setting can_manage_billing_group: checked row by row against what Zulip's update_realm
// writes when an administrator adds a user pill to the setting (zerver/views/realm.py,
// zerver/lib/user_groups.py update_or_create_user_group_for_setting,
// zerver/actions/realm_settings.py do_change_realm_permission_group_setting): the anonymous
// zerver_usergroup with its direct members and subgroup, the realm column, the 207 audit row
// with the API values, the collapse back to the named group (and deletion of the anonymous
// one), the refusals; nothing else changes, and the realm's cached user profiles are deleted.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runCli, type CliResult } from "./helpers/cli.js";
import type { MemcachedClient } from "./helpers/memcached.js";
import { QueueReader, sortedUsers } from "./helpers/rabbitmq.js";
import { startServerCopy, type ServerCopy } from "./helpers/server-copy.js";
import { changedTables, foreignKeyViolations, snapshot } from "./helpers/snapshot.js";
import { addUser, groupIds, TEST_REALM, type TestUser } from "./helpers/users.js";

const SETTING = "can_manage_billing_group";
const LABEL = '"Who can manage plans and billing"';

describe.each(["zulip12_fresh", "zulip11_fresh", "zulip10_fresh"] as const)("is_billing_admin on %s", (template) => {
  let copy: ServerCopy;
  let mcc: MemcachedClient;
  let groups: Record<string, number>;
  let admin: TestUser, guest: TestUser, m1: TestUser, m2: TestUser, m3: TestUser, m4: TestUser;
  let auditCols: Set<string>;
  let reader: QueueReader;
  const cli = (args: string[]): Promise<CliResult> => runCli(["change_user_role", "-r", String(TEST_REALM), ...args], { confDir: copy.conf, db: copy.db });

  beforeAll(async () => {
    copy = await startServerCopy({ template, externalHost: "zulip.example.net", client: true });
    mcc = copy.client!;
    groups = await groupIds(copy.db);
    admin = await addUser(copy.db, { role: 200, name: "admin" });
    guest = await addUser(copy.db, { role: 600, name: "guest" });
    m1 = await addUser(copy.db, { role: 400, name: "m1" });
    m2 = await addUser(copy.db, { role: 400, name: "m2" });
    m3 = await addUser(copy.db, { role: 400, name: "m3" });
    m4 = await addUser(copy.db, { role: 400, name: "m4" });
    reader = await QueueReader.open();
    auditCols = new Set(
      (await copy.db.query("SELECT column_name FROM information_schema.columns WHERE table_schema = 'zulip' AND table_name = 'zerver_realmauditlog'")).map(
        (r: any) => r.column_name,
      ),
    );
  });
  afterAll(async () => {
    await reader?.close();
    await copy?.stop();
  });
  beforeEach(async () => {
    await reader.purge("notify_tornado", "deferred_work");
  });

  const activeIds = async () =>
    (await copy.db.query("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active ORDER BY id", [TEST_REALM])).map((r: any) => Number(r.id));
  /** The realm update_dict event Zulip sends on commit, to every active user of the realm. */
  const settingEvent = async (value: unknown) => [
    { event: { type: "realm", op: "update_dict", property: "default", data: { [SETTING]: value } }, users: await activeIds() },
  ];

  const settingId = async () => Number((await copy.db.query(`SELECT ${SETTING}_id AS g FROM zerver_realm WHERE id = $1`, [TEST_REALM]))[0].g);
  const maxAudit = async () => Number((await copy.db.query("SELECT coalesce(max(id), 0) AS m FROM zerver_realmauditlog"))[0].m);
  const members = async (g: number) =>
    (await copy.db.query("SELECT user_profile_id AS u FROM zerver_usergroupmembership WHERE user_group_id = $1 ORDER BY id", [g])).map((r: any) => Number(r.u));
  const subgroups = async (g: number) =>
    (await copy.db.query("SELECT subgroup_id AS s FROM zerver_groupgroupmembership WHERE supergroup_id = $1 ORDER BY id", [g])).map((r: any) => Number(r.s));
  const isNamed = async (g: number) => (await copy.db.query("SELECT 1 FROM zerver_namedusergroup WHERE usergroup_ptr_id = $1", [g])).length > 0;

  /** The one 207 row written since `after`, every column. */
  async function expectAudit(after: number, oldValue: unknown, newValue: unknown): Promise<void> {
    const rows = await copy.db.query("SELECT * FROM zerver_realmauditlog WHERE id > $1 ORDER BY id", [after]);
    expect(rows).toHaveLength(1);
    const { id: _id, event_time, ...rest } = rows[0];
    const expected: Record<string, unknown> = {
      realm_id: TEST_REALM,
      acting_user_id: null,
      modified_user_id: null,
      modified_stream_id: null,
      modified_user_group_id: null,
      event_last_message_id: null,
      event_type: 207,
      backfilled: false,
      extra_data: { "1": oldValue, "2": newValue, property: SETTING },
    };
    if (auditCols.has("modified_channel_folder_id")) expected.modified_channel_folder_id = null;
    if (auditCols.has("scrubbed")) expected.scrubbed = false;
    expect({ ...rest, event_type: Number(rest.event_type) }).toEqual(expected);
    expect(Math.abs(new Date(event_time).getTime() - Date.now())).toBeLessThan(60_000);
  }

  async function expectRefused(args: string[], message: string): Promise<void> {
    const before = await snapshot(copy.db, true);
    const r = await cli(args);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(message);
    expect(r.exitCode).toBe(1);
    expect(changedTables(before, await snapshot(copy.db, true))).toEqual([]);
    expect(await reader.drain()).toEqual([]);
  }

  it("grant on the default (Administrators): a new anonymous group with the user and role:administrators", async () => {
    const admins = groups["role:administrators"];
    expect(await settingId()).toBe(admins);
    const key = `:1:${copy.conf.cachePrefix}user_profile_by_id:${admin.id}`;
    await mcc.set(key, "cached");
    const before = await snapshot(copy.db);
    const audit = await maxAudit();
    const r = await cli([m1.email, "is_billing_admin"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(`${m1.email} changed to have is_billing_admin permission (${LABEL} was: Administrators; now: Administrators, ${m1.email}).`);
    expect(changedTables(before, await snapshot(copy.db))).toEqual([
      "zerver_groupgroupmembership",
      "zerver_realm",
      "zerver_realmauditlog",
      "zerver_usergroup",
      "zerver_usergroupmembership",
    ]);
    const g = await settingId();
    expect(g).not.toBe(admins);
    expect(await isNamed(g)).toBe(false);
    expect((await copy.db.query("SELECT realm_id FROM zerver_usergroup WHERE id = $1", [g]))[0].realm_id).toBe(TEST_REALM);
    expect(await members(g)).toEqual([m1.id]);
    expect(await subgroups(g)).toEqual([admins]);
    await expectAudit(audit, admins, { direct_members: [m1.id], direct_subgroups: [admins] });
    expect(sortedUsers(await reader.drain())).toEqual(await settingEvent({ direct_members: [m1.id], direct_subgroups: [admins] }));
    expect(await reader.drain("deferred_work")).toEqual([]);
    // flush_realm: every active user's cached profile.
    expect(await mcc.getString(key)).toBeNull();
    expect(await foreignKeyViolations(copy.db)).toEqual({});
  });

  it("a second grant updates the same anonymous group in place", async () => {
    const g = await settingId();
    const admins = groups["role:administrators"];
    const before = await snapshot(copy.db);
    const audit = await maxAudit();
    const r = await cli([m2.email, "is_billing_admin"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(
      `${m2.email} changed to have is_billing_admin permission (${LABEL} was: Administrators, ${m1.email}; now: Administrators, ${m1.email}, ${m2.email}).`,
    );
    expect(changedTables(before, await snapshot(copy.db))).toEqual(["zerver_realmauditlog", "zerver_usergroupmembership"]);
    expect(await settingId()).toBe(g);
    expect(await members(g)).toEqual([m1.id, m2.id]);
    await expectAudit(audit, { direct_members: [m1.id], direct_subgroups: [admins] }, { direct_members: [m1.id, m2.id], direct_subgroups: [admins] });
  });

  it("refusals: already named, already through a group, guests, revoking a group's member, revoking a non-holder", async () => {
    await expectRefused([m1.email, "is_billing_admin"], `User can already manage plans and billing for this realm (named in ${LABEL}).`);
    await expectRefused(
      [admin.email, "is_billing_admin"],
      `User can already manage plans and billing for this realm, through the group 'Administrators' (${LABEL}).`,
    );
    await expectRefused([guest.email, "is_billing_admin"], `Guests cannot manage plans and billing: Zulip ignores guests in the ${LABEL} setting.`);
    await expectRefused(
      [admin.email, "is_billing_admin", "--revoke"],
      `User can manage plans and billing only through the group 'Administrators', not as a member of ${LABEL} in their own right; change their role or group membership, or the setting, instead.`,
    );
    await expectRefused([m3.email, "is_billing_admin", "--revoke"], "User cannot manage plans and billing for this realm.");
  });

  it("--dry-run says what the setting is and would be, and writes nothing", async () => {
    const before = await snapshot(copy.db, true);
    const r = await cli([m3.email, "is_billing_admin", "--dry-run"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout.split("\n")).toEqual([
      `Would change ${m3.email} to have is_billing_admin permission (${LABEL} is: Administrators, ${m1.email}, ${m2.email}; would be: Administrators, ${m1.email}, ${m2.email}, ${m3.email}).`,
      "(dry run: nothing was changed)",
    ]);
    expect(changedTables(before, await snapshot(copy.db, true))).toEqual([]);
    expect(await reader.drain()).toEqual([]);
  });

  it("a deactivated direct member is dropped from the group on the next change (Django's .set())", async () => {
    const g = await settingId();
    const admins = groups["role:administrators"];
    // m3 named, then deactivated.
    expect((await cli([m3.email, "is_billing_admin"])).exitCode).toBe(0);
    await copy.db.query("UPDATE zerver_userprofile SET is_active = false WHERE id = $1", [m3.id]);
    const audit = await maxAudit();
    const r = await cli([m4.email, "is_billing_admin", "--json"]);
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.results[0]).toMatchObject({
      user: { id: m4.id, delivery_email: m4.email },
      ok: true,
      status: "done",
      flag: { name: "is_billing_admin", old: false, new: true },
      setting: {
        name: SETTING,
        value: {
          old: { direct_members: [m1.id, m2.id], direct_subgroups: [admins] },
          new: { direct_members: [m1.id, m2.id, m4.id], direct_subgroups: [admins] },
        },
      },
    });
    expect(doc.results[0].audit_log_ids).toHaveLength(1);
    expect(doc.events).toMatchObject({ ok: true, published: 1 });
    expect(await members(g)).toEqual([m1.id, m2.id, m4.id]);
    await expectAudit(
      audit,
      { direct_members: [m1.id, m2.id], direct_subgroups: [admins] },
      { direct_members: [m1.id, m2.id, m4.id], direct_subgroups: [admins] },
    );
    await copy.db.query("UPDATE zerver_userprofile SET is_active = true WHERE id = $1", [m3.id]);
  });

  it("revoke removes the user; the last one out collapses the setting back to the named group and deletes the anonymous group", async () => {
    const g = await settingId();
    const admins = groups["role:administrators"];
    for (const [u, rest] of [
      [m1, [m2.id, m4.id]],
      [m4, [m2.id]],
    ] as const) {
      const audit = await maxAudit();
      const r = await cli([u.email, "is_billing_admin", "--revoke"]);
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toContain(`${u.email} changed to not have is_billing_admin permission`);
      expect(await members(g)).toEqual(rest);
      expect(await settingId()).toBe(g);
      expect((await copy.db.query("SELECT extra_data FROM zerver_realmauditlog WHERE id > $1", [audit]))[0].extra_data["2"]).toEqual({
        direct_members: rest,
        direct_subgroups: [admins],
      });
    }
    expect(await reader.drain()).toHaveLength(2);
    const before = await snapshot(copy.db);
    const audit = await maxAudit();
    const r = await cli([m2.email, "is_billing_admin", "--revoke"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(`${m2.email} changed to not have is_billing_admin permission (${LABEL} was: Administrators, ${m2.email}; now: Administrators).`);
    expect(changedTables(before, await snapshot(copy.db))).toEqual([
      "zerver_groupgroupmembership",
      "zerver_realm",
      "zerver_realmauditlog",
      "zerver_usergroup",
      "zerver_usergroupmembership",
    ]);
    expect(await settingId()).toBe(admins);
    expect(await copy.db.query("SELECT id FROM zerver_usergroup WHERE id = $1", [g])).toEqual([]);
    expect(await members(g)).toEqual([]);
    expect(await subgroups(g)).toEqual([]);
    await expectAudit(audit, { direct_members: [m2.id], direct_subgroups: [admins] }, admins);
    expect(sortedUsers(await reader.drain())).toEqual(await settingEvent(admins));
    expect(await foreignKeyViolations(copy.db)).toEqual({});
  });

  it("the only user of a setting without groups cannot be removed (role:nobody is not allowed)", async () => {
    const [{ id: g }] = await copy.db.query("INSERT INTO zerver_usergroup (realm_id) VALUES ($1) RETURNING id", [TEST_REALM]);
    await copy.db.query("INSERT INTO zerver_usergroupmembership (user_group_id, user_profile_id) VALUES ($1, $2)", [g, m1.id]);
    await copy.db.query(`UPDATE zerver_realm SET ${SETTING}_id = $1 WHERE id = $2`, [g, TEST_REALM]);
    await expectRefused(
      [m1.email, "is_billing_admin", "--revoke"],
      `'${SETTING}' setting cannot be set to 'role:nobody' group. ${m1.email} is the only one in ${LABEL}; give someone else the permission first.`,
    );
    const r = await cli([m2.email, "is_billing_admin"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(`${m2.email} changed to have is_billing_admin permission (${LABEL} was: ${m1.email}; now: ${m1.email}, ${m2.email}).`);
    expect(await members(Number(g))).toEqual([m1.id, m2.id]);
  });
});
