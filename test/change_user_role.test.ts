// change_user_role through the built CLI against real Zulip 12 / 11 / 10 databases.
//
// Every role transition and permission flag is checked row by row against what Zulip's
// do_change_user_role / do_change_can_* write (zerver/actions/users.py, user_groups.py): the
// userprofile column, the membership rows, and each new RealmAuditLog row with every column;
// and every other table is checksummed before and after to prove nothing else changed.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, type CliResult } from "./helpers/cli.js";
import { type ConfDir } from "./helpers/confdir.js";
import { type MemcachedInstance } from "./helpers/memcached.js";
import { type TestDatabase } from "./helpers/pg.js";
import { type ServerCopyOptions, startServerCopy } from "./helpers/server-copy.js";
import { execa } from "execa";
import { CLI_BIN, cliEnv } from "./helpers/cli.js";
import { changedTables, snapshot } from "./helpers/snapshot.js";
import { addUser, groupIds, ROLE_GROUP, TEST_REALM, type TestUser } from "./helpers/users.js";

const REALM = TEST_REALM;
const ROLES = { owner: 100, admin: 200, moderator: 300, member: 400, guest: 600 } as const;
type RoleArg = keyof typeof ROLES;
const ROLE_ARGS = Object.keys(ROLES) as RoleArg[];
/** ROLE_ID_TO_NAME_MAP */
const PRINTED: Record<number, string> = {
  100: "Organization owner",
  200: "Organization administrator",
  300: "Moderator",
  400: "Member",
  600: "Guest",
};
// ---------------------------------------------------------------------------------------------
// Database inspection helpers (plain SQL, independent of the code under test)

async function memberships(db: TestDatabase): Promise<Map<number, string>> {
  const rows = await db.query("SELECT id, user_group_id, user_profile_id FROM zerver_usergroupmembership ORDER BY id");
  return new Map(rows.map((r: any) => [Number(r.id), `${r.user_group_id}/${r.user_profile_id}`]));
}

async function userRows(db: TestDatabase): Promise<Map<number, any>> {
  const rows = await db.query("SELECT * FROM zerver_userprofile ORDER BY id");
  return new Map(rows.map((r: any) => [Number(r.id), r]));
}

async function maxAuditId(db: TestDatabase): Promise<number> {
  return Number((await db.query("SELECT coalesce(max(id), 0) AS m FROM zerver_realmauditlog"))[0].m);
}

async function newAuditRows(db: TestDatabase, after: number): Promise<any[]> {
  return db.query("SELECT * FROM zerver_realmauditlog WHERE id > $1 ORDER BY id", [after]);
}

async function humanCounts(db: TestDatabase): Promise<Record<string, number>> {
  const out: Record<string, number> = { "100": 0, "200": 0, "300": 0, "400": 0, "600": 0 };
  for (const r of await db.query("SELECT role, count(*)::int AS n FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND NOT is_bot GROUP BY role", [
    REALM,
  ])) {
    out[String(r.role)] = r.n;
  }
  return out;
}

async function botCount(db: TestDatabase): Promise<number> {
  return (await db.query("SELECT count(*)::int AS n FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND is_bot", [REALM]))[0].n;
}

// ---------------------------------------------------------------------------------------------

interface Env {
  db: TestDatabase;
  conf: ConfDir;
  mc: MemcachedInstance;
  /** Whether the schema has the Zulip 12 workplace users setting. */
  workplace: boolean;
  auditCols: Set<string>;
  groups: Record<string, number>;
  cli(args: string[]): Promise<CliResult>;
  /** Stop the server copy. */
  stop(): Promise<void>;
}

async function setupEnv(template: ServerCopyOptions["template"]): Promise<Env> {
  const copy = await startServerCopy({ template });
  const { db, mc, conf } = copy;
  const workplace =
    (await db.query("SELECT 1 FROM information_schema.columns WHERE table_name = 'zerver_realm' AND column_name = 'workplace_users_group_id'")).length > 0;
  const auditCols = new Set(
    (await db.query("SELECT column_name FROM information_schema.columns WHERE table_schema = 'zulip' AND table_name = 'zerver_realmauditlog'")).map(
      (r: any) => r.column_name as string,
    ),
  );
  return {
    db,
    conf,
    mc,
    workplace,
    auditCols,
    groups: await groupIds(db),
    cli: (args) => runCli(args, { confDir: conf, db }),
    stop: copy.stop,
  };
}

async function teardown(env: Env | undefined): Promise<void> {
  await env?.stop();
}

/** The audit row Zulip writes, every column. */
function expectedAudit(
  env: Env,
  r: { event_type: number; modified_user_id: number; modified_user_group_id?: number | null; extra_data?: unknown },
): Record<string, unknown> {
  const row: Record<string, unknown> = {
    backfilled: false,
    extra_data: r.extra_data ?? {},
    event_type: r.event_type,
    event_last_message_id: null,
    acting_user_id: null,
    modified_user_id: r.modified_user_id,
    realm_id: REALM,
    modified_stream_id: null,
    modified_user_group_id: r.modified_user_group_id ?? null,
  };
  if (env.auditCols.has("modified_channel_folder_id")) row.modified_channel_folder_id = null;
  if (env.auditCols.has("scrubbed")) row.scrubbed = false;
  return row;
}

/** Audit rows without id and time; bigint columns (strings from pg) as numbers. */
function stripIdTime(rows: any[]): any[] {
  return rows.map(({ id: _id, event_time: _t, ...rest }) => {
    const out: Record<string, unknown> = { ...rest, event_type: Number(rest.event_type) };
    for (const [k, v] of Object.entries(out)) if (k.endsWith("_id") && typeof v === "string") out[k] = Number(v);
    return out;
  });
}

/**
 * Run a role change and check every write. Returns the new audit rows.
 * `fullMembers`: "remove" / "add" / null — the role:fullmembers change Zulip makes.
 */
async function checkRoleChange(env: Env, user: TestUser, from: number, to: number, fullMembers: "remove" | "add" | null): Promise<void> {
  const { db, groups } = env;
  const before = await snapshot(db);
  const usersBefore = await userRows(db);
  const membersBefore = await memberships(db);
  const auditBefore = await maxAuditId(db);
  const counts = await humanCounts(db);
  const bots = await botCount(db);
  const t0 = Date.now();

  const r = await env.cli(["change_user_role", "-r", String(REALM), user.email, Object.entries(ROLES).find(([, v]) => v === to)![0]]);
  const t1 = Date.now();
  expect(r.stderr).toBe("");
  expect(r.stdout).toBe(`Role for ${user.email} changed from ${PRINTED[from]} to ${PRINTED[to]}.`);
  expect(r.exitCode).toBe(0);

  // Only these three tables changed.
  expect(changedTables(before, await snapshot(db))).toEqual(["zerver_realmauditlog", "zerver_usergroupmembership", "zerver_userprofile"]);

  // zerver_userprofile: exactly one column of one row.
  const usersAfter = await userRows(db);
  expect([...usersAfter.keys()]).toEqual([...usersBefore.keys()]);
  for (const [id, row] of usersAfter) {
    if (id === user.id) expect(row).toEqual({ ...usersBefore.get(id), role: to });
    else expect(row).toEqual(usersBefore.get(id));
  }

  // zerver_usergroupmembership: the old role group (and maybe fullmembers) row removed, the new one(s) added.
  const membersAfter = await memberships(db);
  const removed = [...membersBefore].filter(([id]) => !membersAfter.has(id)).map(([, v]) => v);
  const added = [...membersAfter].filter(([id]) => !membersBefore.has(id)).map(([, v]) => v);
  for (const [id, v] of membersAfter) if (membersBefore.has(id)) expect(v).toBe(membersBefore.get(id));
  const pair = (g: string) => `${groups[g]}/${user.id}`;
  expect(removed.sort()).toEqual([pair(ROLE_GROUP[from]), ...(fullMembers === "remove" ? [pair("role:fullmembers")] : [])].sort());
  expect(added.sort()).toEqual([pair(ROLE_GROUP[to]), ...(fullMembers === "add" ? [pair("role:fullmembers")] : [])].sort());

  // zerver_realmauditlog: 105 with the counts after the change, then 704 + 703 sharing one time,
  // then the role:fullmembers row.
  counts[String(from)] -= 1;
  counts[String(to)] += 1;
  const humans: Record<string, number> = { ...counts };
  if (env.workplace) {
    // Fresh-install default: workplace users = role:everyone = every active human.
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    humans.workplace_users = total;
    humans.non_workplace_users = 0;
  }
  const rows = await newAuditRows(db, auditBefore);
  const expected = [
    expectedAudit(env, { event_type: 105, modified_user_id: user.id, extra_data: { "1": from, "2": to, "10": { "11": humans, "12": bots } } }),
    expectedAudit(env, { event_type: 704, modified_user_id: user.id, modified_user_group_id: groups[ROLE_GROUP[from]] }),
    expectedAudit(env, { event_type: 703, modified_user_id: user.id, modified_user_group_id: groups[ROLE_GROUP[to]] }),
  ];
  if (fullMembers) {
    expected.push(
      expectedAudit(env, { event_type: fullMembers === "add" ? 703 : 704, modified_user_id: user.id, modified_user_group_id: groups["role:fullmembers"] }),
    );
  }
  expect(stripIdTime(rows)).toEqual(expected);
  const times = rows.map((x) => new Date(x.event_time).getTime());
  expect(times[1]).toBe(times[2]);
  for (let i = 1; i < times.length; i++) expect(times[i]).toBeGreaterThanOrEqual(times[i - 1]);
  expect(times[0]).toBeGreaterThanOrEqual(t0 - 1000);
  expect(times[times.length - 1]).toBeLessThanOrEqual(t1 + 1000);
}

async function checkFlagChange(env: Env, user: TestUser, flag: string, grant: boolean): Promise<void> {
  const { db } = env;
  const before = await snapshot(db);
  const usersBefore = await userRows(db);
  const auditBefore = await maxAuditId(db);
  const r = await env.cli(["change_user_role", "-r", String(REALM), user.email, flag, ...(grant ? [] : ["--revoke"])]);
  expect(r.stderr).toBe("");
  expect(r.exitCode).toBe(0);
  // manage.py prints a line for can_forge_sender only.
  expect(r.stdout).toBe(flag === "can_forge_sender" ? `${user.email} changed to ${grant ? "have" : "not have"} can_forge_sender permission.` : "");
  expect(changedTables(before, await snapshot(db))).toEqual(["zerver_realmauditlog", "zerver_userprofile"]);
  const usersAfter = await userRows(db);
  for (const [id, row] of usersAfter) {
    if (id === user.id) expect(row).toEqual({ ...usersBefore.get(id), [flag]: grant });
    else expect(row).toEqual(usersBefore.get(id));
  }
  const rows = await newAuditRows(db, auditBefore);
  expect(stripIdTime(rows)).toEqual([
    expectedAudit(env, { event_type: 108, modified_user_id: user.id, extra_data: { "1": !grant, "2": grant, property: flag } }),
  ]);
}

async function expectRefused(env: Env, args: string[], message: string): Promise<void> {
  const before = await snapshot(env.db, true);
  const r = await env.cli(["change_user_role", "-r", String(REALM), ...args]);
  expect(r.stdout).toBe("");
  expect(r.stderr).toBe(message);
  expect(r.exitCode).toBe(1);
  expect(changedTables(before, await snapshot(env.db, true))).toEqual([]);
}

// ---------------------------------------------------------------------------------------------

const TRANSITIONS: [RoleArg, RoleArg][] = ROLE_ARGS.flatMap((a) => ROLE_ARGS.filter((b) => b !== a).map((b) => [a, b] as [RoleArg, RoleArg]));

describe.each(["zulip12_fresh", "zulip11_fresh", "zulip10_fresh"] as const)("change_user_role on %s", (template) => {
  let env: Env;
  const users = new Map<string, TestUser>();

  beforeAll(async () => {
    env = await setupEnv(template);
    // Something to count besides humans: an active bot, a deactivated human (neither in the human counts).
    await addUser(env.db, { role: 400, bot: true, name: "bot" });
    await addUser(env.db, { role: 300, active: false, name: "gone" });
    for (const [from, to] of TRANSITIONS) users.set(`${from}->${to}`, await addUser(env.db, { role: ROLES[from], name: from }));
    for (const role of ROLE_ARGS) users.set(`same:${role}`, await addUser(env.db, { role: ROLES[role], name: role }));
    users.set("flags", await addUser(env.db, { role: 400, name: "flags" }));
  });
  afterAll(() => teardown(env));

  it.each(TRANSITIONS)("%s -> %s writes exactly what Zulip writes", async (from, to) => {
    const fullMembers = from === "member" ? "remove" : to === "member" ? "add" : null;
    await checkRoleChange(env, users.get(`${from}->${to}`)!, ROLES[from], ROLES[to], fullMembers);
  });

  it.each(ROLE_ARGS)("%s -> the same role: User already has this role.", async (role) => {
    await expectRefused(env, [users.get(`same:${role}`)!.email, role], "User already has this role.");
  });

  it.each(["can_forge_sender", "can_create_users", "can_change_user_emails"])("%s: grant, refuse again, revoke, refuse again", async (flag) => {
    const u = users.get("flags")!;
    const texts: Record<string, [string, string]> = {
      can_forge_sender: ["User can already forge messages for this realm.", "User can't forge messages for this realm."],
      can_create_users: ["User can already create users for this realm.", "User can't create users for this realm."],
      can_change_user_emails: ["User can already change user emails for this realm.", "User can't change user emails for this realm."],
    };
    await expectRefused(env, [u.email, flag, "--revoke"], texts[flag][1]);
    await checkFlagChange(env, u, flag, true);
    await expectRefused(env, [u.email, flag], texts[flag][0]);
    await checkFlagChange(env, u, flag, false);
  });

  it("--revoke with a role is refused", async () => {
    await expectRefused(env, [users.get("same:member")!.email, "moderator", "--revoke"], "Revoke not supported with this permission; please specify new role.");
  });
});

describe("change_user_role: role:fullmembers and the waiting period", () => {
  let env: Env;
  beforeAll(async () => {
    env = await setupEnv("zulip12_fresh");
    await env.db.query("UPDATE zerver_realm SET waiting_period_threshold = 10 WHERE id = $1", [REALM]);
  });
  afterAll(() => teardown(env));

  it("a new member (not yet a full member) made moderator: no role:fullmembers row", async () => {
    const u = await addUser(env.db, { role: 400, daysAgo: 2, fullMember: false });
    await checkRoleChange(env, u, 400, 300, null);
  });

  it("a new moderator made member stays out of role:fullmembers", async () => {
    const u = await addUser(env.db, { role: 300, daysAgo: 9 });
    await checkRoleChange(env, u, 300, 400, null);
  });

  it("an old moderator made member joins role:fullmembers (exactly at the threshold counts)", async () => {
    const u = await addUser(env.db, { role: 300, daysAgo: 10.001 });
    await checkRoleChange(env, u, 300, 400, "add");
  });

  it("a provisional member wrongly in role:fullmembers is removed when the role changes (guest -> member)", async () => {
    const u = await addUser(env.db, { role: 600, daysAgo: 1, fullMember: true });
    // Zulip: the new member is a direct full member but provisional, so the row goes.
    await checkRoleChange(env, u, 600, 400, "remove");
  });

  it("other transitions leave an unexpected role:fullmembers row alone (no member involved)", async () => {
    const u = await addUser(env.db, { role: 200, daysAgo: 100, fullMember: true });
    await checkRoleChange(env, u, 200, 100, null);
    const g = await groupIds(env.db);
    expect(
      await env.db.query("SELECT 1 FROM zerver_usergroupmembership WHERE user_group_id = $1 AND user_profile_id = $2", [g["role:fullmembers"], u.id]),
    ).toHaveLength(1);
  });
});

describe("change_user_role: ROLE_COUNT workplace users (Zulip 12)", () => {
  let env: Env;
  beforeAll(async () => {
    env = await setupEnv("zulip12_fresh");
  });
  afterAll(() => teardown(env));

  async function lastRoleCount(): Promise<any> {
    return (await env.db.query("SELECT extra_data FROM zerver_realmauditlog WHERE event_type = 105 ORDER BY id DESC LIMIT 1"))[0].extra_data["10"];
  }

  it("workplace users = members when the setting is role:members", async () => {
    await env.db.query("UPDATE zerver_realm SET workplace_users_group_id = $2 WHERE id = $1", [REALM, env.groups["role:members"]]);
    await addUser(env.db, { role: 600 });
    await addUser(env.db, { role: 600 });
    const u = await addUser(env.db, { role: 400 });
    const r = await env.cli(["change_user_role", "-r", "2", u.email, "guest"]);
    expect(r.exitCode).toBe(0);
    const rc = await lastRoleCount();
    // owner (1) is the only non-guest human left; three guests.
    expect(rc["11"]).toEqual({ "100": 1, "200": 0, "300": 0, "400": 0, "600": 3, workplace_users: 1, non_workplace_users: 3 });
  });

  it("role:fullmembers and custom groups count recursive members (as Django's join does)", async () => {
    await env.db.query("UPDATE zerver_realm SET workplace_users_group_id = $2 WHERE id = $1", [REALM, env.groups["role:fullmembers"]]);
    const m = await addUser(env.db, { role: 400 }); // full member
    await addUser(env.db, { role: 400, daysAgo: 0, fullMember: false }); // not a full member
    const r = await env.cli(["change_user_role", "-r", "2", m.email, "moderator"]);
    expect(r.exitCode).toBe(0);
    let rc = await lastRoleCount();
    // fullmembers ⊃ moderators ⊃ administrators ⊃ owners: owner + the new moderator.
    expect(rc["11"]).toMatchObject({ workplace_users: 2, non_workplace_users: rc["11"]["600"] + 1 });

    // An anonymous group with a direct member and role:owners as subgroup.
    const [g] = await env.db.query("INSERT INTO zerver_usergroup (realm_id) VALUES ($1) RETURNING id", [REALM]);
    await env.db.query("INSERT INTO zerver_groupgroupmembership (supergroup_id, subgroup_id) VALUES ($1, $2)", [g.id, env.groups["role:owners"]]);
    await env.db.query("INSERT INTO zerver_usergroupmembership (user_group_id, user_profile_id) VALUES ($1, $2)", [g.id, m.id]);
    await env.db.query("UPDATE zerver_realm SET workplace_users_group_id = $2 WHERE id = $1", [REALM, g.id]);
    const r2 = await env.cli(["change_user_role", "-r", "2", m.email, "member"]);
    expect(r2.exitCode).toBe(0);
    rc = await lastRoleCount();
    expect(rc["11"].workplace_users).toBe(2);
  });
});

describe("change_user_role: is_billing_admin where the column exists (pre-10.0 development schemas)", () => {
  let env: Env;
  let u: TestUser;
  beforeAll(async () => {
    env = await setupEnv({
      name: "zulip10_billing_admin",
      base: "zulip10_fresh",
      sql: "ALTER TABLE zerver_userprofile ADD COLUMN is_billing_admin boolean NOT NULL DEFAULT false;",
    });
    u = await addUser(env.db, { role: 200 });
  });
  afterAll(() => teardown(env));

  it("grants and revokes like do_change_is_billing_admin (no audit row), flushing realm_user_dicts", async () => {
    const p = env.conf.cachePrefix!;
    const c = await env.mc.connect();
    await c.set(`:1:${p}realm_user_dicts:2`, "x");
    await c.set(`:1:${p}user_profile_by_id:${u.id}`, "x");
    for (const grant of [true, false]) {
      const before = await snapshot(env.db);
      const usersBefore = await userRows(env.db);
      const auditBefore = await maxAuditId(env.db);
      const r = await env.cli(["change_user_role", "-r", "2", u.email, "is_billing_admin", ...(grant ? [] : ["--revoke"])]);
      expect(r.stderr).toBe("");
      expect(r.stdout).toBe(`${u.email} changed to ${grant ? "have" : "not have"} is_billing_admin permission.`);
      expect(r.exitCode).toBe(0);
      expect(changedTables(before, await snapshot(env.db))).toEqual(["zerver_userprofile"]);
      expect((await userRows(env.db)).get(u.id)).toEqual({ ...usersBefore.get(u.id), is_billing_admin: grant });
      expect(await newAuditRows(env.db, auditBefore)).toEqual([]);
      expect(await c.has(`:1:${p}realm_user_dicts:2`)).toBe(false);
      expect(await c.has(`:1:${p}user_profile_by_id:${u.id}`)).toBe(false);
      await c.set(`:1:${p}realm_user_dicts:2`, "x");
    }
    await c.close();
    await expectRefused(env, [u.email, "is_billing_admin", "--revoke"], "User is not a billing administrator for this realm.");
  });
});

describe("change_user_role: CLI behaviour", () => {
  let env: Env;
  beforeAll(async () => {
    env = await setupEnv("zulip12_fresh");
  });
  afterAll(() => teardown(env));

  it("--help lists the valid roles and exits 0", async () => {
    const r = await env.cli(["change_user_role", "--help"]);
    expect(r.exitCode).toBe(0);
    for (const role of ["owner", "admin", "moderator", "member", "guest", "can_forge_sender", "can_create_users", "can_change_user_emails"]) {
      expect(r.stdout).toContain(role);
    }
    expect(r.stdout.replace(/\s+/g, " ")).toContain(
      "choose from owner, admin, moderator, member, guest, can_forge_sender, can_create_users, can_change_user_emails",
    );
    expect(r.stdout).toContain("Change role of an existing user in their (own) Realm.");
    expect(r.stdout).toContain("--revoke");
  });

  it("usage errors exit 2 in argparse's words", async () => {
    const u = await addUser(env.db, { role: 400 });
    const bad = await env.cli(["change_user_role", "-r", "2", u.email, "king"]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain(
      "argument <new_role>: invalid choice: 'king' (choose from 'owner', 'admin', 'moderator', 'member', 'guest', 'can_forge_sender', 'can_create_users', 'can_change_user_emails')",
    );
    const noRealm = await env.cli(["change_user_role", u.email, "admin"]);
    expect(noRealm.exitCode).toBe(2);
    expect(noRealm.stderr).toMatch(/-r, --realm/);
    const missing = await env.cli(["change_user_role", "-r", "2", u.email]);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr).toContain("the following arguments are required: <new_role>");
    const both = await env.cli(["change_user_role", "-r", "2", "-u", u.email, u.email, "admin"]);
    expect(both.exitCode).toBe(2);
    expect(both.stderr).toContain("argument -u/--users: not allowed with argument <email>");
  });

  it("lookup errors use manage.py's messages (exit 1)", async () => {
    await expectRefused(env, ["nobody@test.example", "admin"], "The realm ' 2' does not contain a user with email 'nobody@test.example'");
    const r = await env.cli(["change_user_role", "-r", "nope", "x@y", "admin"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe("There is no realm with id 'nope'. Aborting.");
  });

  it("finds users case-insensitively by delivery email, with surrounding spaces", async () => {
    const u = await addUser(env.db, { role: 600 });
    const r = await env.cli(["change_user_role", "-r", "", `  ${u.email.toUpperCase()} `, "member"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(`Role for ${u.email} changed from Guest to Member.`);
  });

  it("--dry-run prints the change and writes nothing (sequences included)", async () => {
    const a = await addUser(env.db, { role: 400 });
    const b = await addUser(env.db, { role: 600 });
    const before = await snapshot(env.db, true);
    const r = await env.cli(["change_user_role", "-r", "2", "-u", `${a.email},${b.email}`, "moderator", "--dry-run"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout.split("\n")).toEqual([
      `Would change role for ${a.email} from Member to Moderator (direct group membership: remove role:members, role:fullmembers; add role:moderators).`,
      `Would change role for ${b.email} from Guest to Moderator (direct group membership: remove role:everyone; add role:moderators).`,
      "(dry run: nothing was changed)",
    ]);
    const flag = await env.cli(["change_user_role", "-r", "2", a.email, "can_create_users", "--dry-run"]);
    expect(flag.stdout.split("\n")[0]).toBe(`Would change ${a.email} to have can_create_users permission.`);
    const refused = await env.cli(["change_user_role", "-r", "2", a.email, "member", "--dry-run"]);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toBe("User already has this role.");
    expect(changedTables(before, await snapshot(env.db, true))).toEqual([]);
  });

  it("-u changes several users, each in its own transaction, and exits 1 if any failed", async () => {
    const a = await addUser(env.db, { role: 400 });
    const b = await addUser(env.db, { role: 300 });
    const c = await addUser(env.db, { role: 600 });
    const auditBefore = await maxAuditId(env.db);
    const r = await env.cli(["change_user_role", "-r", "2", "-u", `${c.email}, ${b.email},${a.email}`, "moderator"]);
    expect(r.exitCode).toBe(1);
    // In user id order, like manage.py's get_users.
    expect(r.stdout.split("\n")).toEqual([`Role for ${a.email} changed from Member to Moderator.`, `Role for ${c.email} changed from Guest to Moderator.`]);
    expect(r.stderr.split("\n")).toEqual([`${b.email}: User already has this role.`, "1 of 3 users could not be changed."]);
    const roles = await env.db.query("SELECT id, role FROM zerver_userprofile WHERE id = ANY ($1) ORDER BY id", [[a.id, b.id, c.id]]);
    expect(roles.map((x: any) => x.role)).toEqual([300, 300, 300]);
    const rows = await newAuditRows(env.db, auditBefore);
    expect(rows.filter((x) => x.event_type === 105).map((x) => x.modified_user_id)).toEqual([a.id, c.id]);
    // Each user's rows are contiguous (one transaction after the other).
    expect(rows.map((x) => x.modified_user_id)).toEqual([a.id, a.id, a.id, a.id, c.id, c.id, c.id]);
  });

  it("-u with an unknown user changes nobody", async () => {
    const a = await addUser(env.db, { role: 400 });
    await expectRefused(env, ["-u", `${a.email},ghost@test.example`, "admin"], "The realm ' 2' does not contain a user with email 'ghost@test.example'");
  });

  it("--json: one document with the user, old and new role, whether anything changed", async () => {
    const a = await addUser(env.db, { role: 400 });
    const b = await addUser(env.db, { role: 200 });
    const auditBefore = await maxAuditId(env.db);
    const r = await env.cli(["change_user_role", "-r", "2", "-u", `${a.email},${b.email}`, "admin", "--json"]);
    expect(r.exitCode).toBe(1);
    const doc = JSON.parse(r.stdout);
    const ids = (await newAuditRows(env.db, auditBefore)).map((x) => Number(x.id));
    const userObj = (u: { id: number; email: string }, role: string, roleId: number) => ({
      id: u.id,
      email: expect.any(String),
      delivery_email: u.email,
      full_name: expect.any(String),
      realm_id: 2,
      role,
      role_id: roleId,
    });
    expect(doc).toEqual({
      ok: false,
      exit_code: 1,
      error: "1 of 2 users could not be changed.",
      error_code: "refused",
      schema_version: 1,
      dry_run: false,
      realm: { id: 2, string_id: "", name: expect.any(String), url: expect.any(String) },
      target: "administrator",
      grant: true,
      results: [
        {
          user: userObj(a, "member", 400),
          ok: true,
          status: "done",
          error: null,
          message: `Role for ${a.email} changed from Member to Organization administrator.`,
          role: { old: "member", new: "administrator" },
          role_id: { old: 400, new: 200 },
          groups_removed: ["role:members", "role:fullmembers"],
          groups_added: ["role:administrators"],
          flag: null,
          setting: null,
          audit_log_ids: ids,
        },
        {
          user: userObj(b, "administrator", 200),
          ok: false,
          status: "refused",
          error: "User already has this role.",
          message: null,
          role: { old: "administrator", new: "administrator" },
          role_id: { old: 200, new: 200 },
          groups_removed: [],
          groups_added: [],
          flag: null,
          setting: null,
          audit_log_ids: [],
        },
      ],
      cache: {
        mode: "keys",
        ok: true,
        skipped: false,
        server: `${env.mc.location} (SASL as zulip@localhost)`,
        prefixes: 1,
        keys_sent: 7,
        keys_deleted: 0,
        flushed_all: false,
        warning: null,
      },
      // Role, group memberships (members, administrators, fullmembers); test/events.test.ts
      // and the per-release event tests check the events themselves.
      events: { mode: "auto", transport: "rabbitmq", published: 4, jobs: 0, ok: true, skipped: false, undelivered: [], warning: null },
    });
    expect(r.stderr).toContain(`${b.email}: User already has this role.`);

    const single = await env.cli(["change_user_role", "-r", "2", a.email, "can_forge_sender", "--json"]);
    expect(single.exitCode).toBe(0);
    expect(JSON.parse(single.stdout).results[0]).toMatchObject({ flag: { name: "can_forge_sender", old: false, new: true }, role: null, status: "done" });
    const refused = await env.cli(["change_user_role", "-r", "2", a.email, "can_forge_sender", "--json"]);
    expect(refused.exitCode).toBe(1);
    expect(JSON.parse(refused.stdout)).toMatchObject({
      ok: false,
      exit_code: 1,
      error: "User can already forge messages for this realm.",
      error_code: "refused",
      results: [{ ok: false, status: "refused", error: "User can already forge messages for this realm." }],
    });
    expect(refused.stderr).toBe("User can already forge messages for this realm.");
  });
});

describe("change_user_role: concurrency", () => {
  let env: Env;
  beforeAll(async () => {
    env = await setupEnv("zulip12_fresh");
  });
  afterAll(() => teardown(env));

  /** Start several CLI processes at once (execa directly, so they really overlap). */
  function parallel(argLists: string[][]) {
    return Promise.all(
      argLists.map((args) =>
        execa(process.execPath, [CLI_BIN, ...args], { env: cliEnv({ confDir: env.conf, db: env.db }), extendEnv: false, reject: false, stdin: "ignore" }),
      ),
    );
  }

  async function consistent(userId: number): Promise<number> {
    const [u] = await env.db.query("SELECT role FROM zerver_userprofile WHERE id = $1", [userId]);
    const g = env.groups;
    const direct = (await env.db.query("SELECT user_group_id FROM zerver_usergroupmembership WHERE user_profile_id = $1", [userId])).map((r: any) =>
      Number(r.user_group_id),
    );
    const roleGroups = Object.values(ROLE_GROUP).map((n) => g[n]);
    // Exactly one role group, the right one; role:fullmembers exactly for (non-provisional) members.
    expect(direct.filter((x) => roleGroups.includes(x))).toEqual([g[ROLE_GROUP[u.role]]]);
    expect(direct.includes(g["role:fullmembers"])).toBe(u.role === 400);
    return u.role;
  }

  it("the same change from several processes at once: applied once, one audit row", async () => {
    for (let round = 0; round < 3; round++) {
      const u = await addUser(env.db, { role: 400 });
      const results = await parallel(Array.from({ length: 4 }, () => ["change_user_role", "-r", "2", u.email, "moderator"]));
      const ok = results.filter((r) => r.exitCode === 0);
      expect(ok).toHaveLength(1);
      expect(ok[0].stdout).toBe(`Role for ${u.email} changed from Member to Moderator.`);
      for (const r of results.filter((x) => x.exitCode !== 0)) {
        expect(r.exitCode).toBe(1);
        expect(r.stderr).toBe("User already has this role.");
      }
      expect(await consistent(u.id)).toBe(300);
      const rows = await env.db.query("SELECT event_type FROM zerver_realmauditlog WHERE modified_user_id = $1 ORDER BY id", [u.id]);
      expect(rows.map((r: any) => r.event_type)).toEqual([105, 704, 703, 704]);
    }
  });

  it("different changes at once: both applied in some order, audit rows chain old -> new", async () => {
    const u = await addUser(env.db, { role: 400 });
    const results = await parallel([
      ["change_user_role", "-r", "2", u.email, "moderator"],
      ["change_user_role", "-r", "2", u.email, "admin"],
      ["change_user_role", "-r", "2", u.email, "can_forge_sender"],
      ["change_user_role", "-r", "2", u.email, "can_forge_sender"],
    ]);
    const codes = results.map((r) => r.exitCode);
    expect(codes.slice(0, 2)).toEqual([0, 0]);
    expect(codes.slice(2).sort()).toEqual([0, 1]);
    const finalRole = await consistent(u.id);
    const changes = (
      await env.db.query("SELECT extra_data FROM zerver_realmauditlog WHERE modified_user_id = $1 AND event_type = 105 ORDER BY id", [u.id])
    ).map((r: any) => [r.extra_data["1"], r.extra_data["2"]]);
    expect(changes).toHaveLength(2);
    expect(changes[0][0]).toBe(400);
    expect(changes[1][0]).toBe(changes[0][1]);
    expect(changes[1][1]).toBe(finalRole);
    const forge = await env.db.query("SELECT extra_data FROM zerver_realmauditlog WHERE modified_user_id = $1 AND event_type = 108", [u.id]);
    expect(forge.map((r: any) => r.extra_data)).toEqual([{ "1": false, "2": true, property: "can_forge_sender" }]);
    const [row] = await env.db.query("SELECT can_forge_sender FROM zerver_userprofile WHERE id = $1", [u.id]);
    expect(row.can_forge_sender).toBe(true);
  });
});
