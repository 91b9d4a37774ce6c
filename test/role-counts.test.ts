// The ROLE_COUNT of a role change computed beside the transaction (src/zulip/audit.ts
// readRoleCountBaseline / countsAfterChange, src/zulip/roles.ts changeUserRole), against a real
// Zulip 12 database: the baseline adjusted for the change equals a count taken inside the
// transaction after the change (what Zulip's realm_user_count_by_role finds) for humans, bots
// and deactivated users; a baseline that no longer matches the locked user is not used; and a
// baseline that arrives after the 105 row was written still ends up in the committed row.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  countsAfterChange,
  readRealmUserCounts,
  readRoleCountBaseline,
  type RealmUserCounts,
  type RoleCountBaseline,
  roleCounts,
  roleCountsAfterChange,
} from "../src/zulip/audit.js";
import { activeNonGuestUserIds, activeRoster, activeUserIds, parseRoster, rosterWith } from "../src/zulip/audiences.js";
import { primeRosterAfterChange } from "../src/zulip/audit.js";
import { createUser } from "../src/zulip/actions/create-user.js";
import { Db } from "../src/db/db.js";
import { doDeactivateUser } from "../src/zulip/actions/deactivate-user.js";
import { reactivateUserInTx } from "../src/zulip/actions/reactivate-user.js";
import type { Realm, UserProfile } from "../src/zulip/lookup.js";
import { changeUserRole, type Tracked, tracked } from "../src/zulip/actions/change-user-role.js";
import { createDatabase, type TestDatabase } from "./helpers/pg.js";
import { addUser, TEST_REALM, type TestUser } from "./helpers/users.js";

const BY_ID = { column: "id", param: TEST_REALM } as const;

/** A baseline without its read time, to compare two readings. */
const timeless = (b: RoleCountBaseline | null) => b && { ...b, readAt: 0 };

let db: TestDatabase;
let human: TestUser;
let bot: TestUser;
let gone: TestUser;

beforeAll(async () => {
  db = await createDatabase({ template: "zulip12_fresh" });
  human = await addUser(db, { role: 400 });
  bot = await addUser(db, { role: 400, bot: true, name: "bot" });
  gone = await addUser(db, { role: 300, active: false, name: "gone" });
  await addUser(db, { role: 600 });
  await addUser(db, { role: 200 });
});
afterAll(() => db?.drop());

async function user(id: number): Promise<UserProfile> {
  return (await db.query("SELECT * FROM zerver_userprofile WHERE id = $1", [id]))[0] as UserProfile;
}

async function realm(): Promise<Realm> {
  return (await db.query("SELECT * FROM zerver_realm WHERE id = $1", [TEST_REALM]))[0] as Realm;
}

/** A count taken independently, with plain SQL: active humans by role, active bots. */
async function sqlCounts(): Promise<RealmUserCounts> {
  const humans: Record<string, number> = {};
  for (const r of await db.query("SELECT role, count(*)::int AS n FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND NOT is_bot GROUP BY role", [
    TEST_REALM,
  ])) {
    humans[String(r.role)] = r.n;
  }
  const [b] = await db.query("SELECT count(*)::int AS n FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND is_bot", [TEST_REALM]);
  return { humans, bots: b.n };
}

/** Drop zero entries, so that {"300": 0} and {} compare equal. */
function nonZero(c: RealmUserCounts): RealmUserCounts {
  return { humans: Object.fromEntries(Object.entries(c.humans).filter(([, n]) => n !== 0)), bots: c.bots };
}

describe("readRoleCountBaseline", () => {
  it("reads the realm's counts and the user's state in one snapshot, by id or string_id, any email case", async () => {
    const b = await readRoleCountBaseline(db.client, BY_ID, human.email.toUpperCase());
    expect(b).not.toBeNull();
    expect(b!.user).toEqual({ id: human.id, realm_id: TEST_REALM, role: 400, is_active: true, is_bot: false });
    expect(nonZero(b!.counts)).toEqual(nonZero(await sqlCounts()));
    const stringId = (await realm()).string_id;
    const b2 = await readRoleCountBaseline(db.client, { column: "string_id", param: stringId }, ` ${human.email} `);
    expect(timeless(b2)).toEqual(timeless(b));
  });

  it("is null for a user the realm does not have, unless asked for the counts before creating one", async () => {
    expect(await readRoleCountBaseline(db.client, BY_ID, "nobody@test.example")).toBeNull();
    expect(await readRoleCountBaseline(db.client, { column: "id", param: 999 }, human.email)).toBeNull();
    const absent = await readRoleCountBaseline(db.client, BY_ID, "nobody@test.example", { absentUser: true });
    expect(absent?.user).toBeNull();
    expect(nonZero(absent!.counts)).toEqual(nonZero(await sqlCounts()));
    expect(timeless(await readRoleCountBaseline(db.client, BY_ID, human.email, { absentUser: true }))).toEqual(
      timeless(await readRoleCountBaseline(db.client, BY_ID, human.email)),
    );
  });

  it("without a realm: the one user with that address on the server", async () => {
    expect(timeless(await readRoleCountBaseline(db.client, null, human.email))).toEqual(timeless(await readRoleCountBaseline(db.client, BY_ID, human.email)));
    expect(await readRoleCountBaseline(db.client, null, "nobody@test.example")).toBeNull();
  });
});

describe("countsAfterChange", () => {
  // For each kind of user: take the baseline, change the role in a transaction, count inside it,
  // and compare with the adjusted baseline.
  for (const [label, pick, to] of [
    ["an active human", () => human, 300],
    ["an active bot", () => bot, 200],
    ["a deactivated user", () => gone, 100],
  ] as const) {
    it(`equals the count after the change for ${label}`, async () => {
      const u = pick();
      const baseline = await readRoleCountBaseline(db.client, BY_ID, u.email);
      const before = await user(u.id);
      await db.query("BEGIN");
      try {
        await db.query("UPDATE zerver_userprofile SET role = $2 WHERE id = $1", [u.id, to]);
        const inside = await readRealmUserCounts(db.client, TEST_REALM);
        const adjusted = countsAfterChange(baseline, before, { role: to, is_active: before.is_active, is_bot: before.is_bot });
        expect(adjusted).not.toBeNull();
        expect(nonZero(adjusted!)).toEqual(nonZero(inside));
      } finally {
        await db.query("ROLLBACK");
      }
    });
  }

  it("is null when the baseline saw the user differently from the locked row, or saw another user", async () => {
    const baseline = (await readRoleCountBaseline(db.client, BY_ID, human.email))!;
    const before = await user(human.id);
    const after = { role: 300, is_active: true, is_bot: false };
    expect(countsAfterChange(baseline, before, after)).not.toBeNull();
    expect(countsAfterChange(null, before, after)).toBeNull();
    expect(countsAfterChange(baseline, { ...before, role: 200 }, after)).toBeNull();
    expect(countsAfterChange(baseline, { ...before, is_active: false }, after)).toBeNull();
    expect(countsAfterChange(baseline, { ...before, is_bot: true }, after)).toBeNull();
    expect(countsAfterChange(baseline, { ...before, id: bot.id }, after)).toBeNull();
    expect(countsAfterChange(baseline, { ...before, realm_id: 1 }, after)).toBeNull();
  });
});

describe("countsAfterChange for a new user", () => {
  it("adds the new user when the baseline saw the address free, and refuses a mismatch either way", async () => {
    const free = (await readRoleCountBaseline(db.client, BY_ID, "new@test.example", { absentUser: true }))!;
    const taken = (await readRoleCountBaseline(db.client, BY_ID, human.email))!;
    const after = { role: 600, is_active: true, is_bot: false };
    const c = countsAfterChange(free, null, after)!;
    expect(c.humans["600"]).toBe((free.counts.humans["600"] ?? 0) + 1);
    expect(c.bots).toBe(free.counts.bots);
    expect(countsAfterChange(free, await user(human.id), after)).toBeNull();
    expect(countsAfterChange(taken, null, after)).toBeNull();
    expect(countsAfterChange(free, null, { role: 400, is_active: true, is_bot: true })!.bots).toBe(free.counts.bots + 1);
  });
});

describe("createUser with a baseline", () => {
  async function created(email: string, baseline: Promise<RoleCountBaseline | null> | undefined): Promise<any> {
    await db.query("BEGIN");
    let id: number;
    try {
      id = (
        await createUser(db.client, TEST_REALM, { email, fullName: "New Person", role: 400, roleCountBaseline: baseline, externalHost: "zulip.example.net" })
      ).id;
      await db.query("COMMIT");
    } catch (e) {
      await db.query("ROLLBACK");
      throw e;
    }
    const [r] = await db.query("SELECT extra_data FROM zerver_realmauditlog WHERE event_type = 101 AND modified_user_id = $1", [id]);
    return r.extra_data["10"];
  }

  it("the 101 row counts the new user, from a baseline read while the address was free", async () => {
    const rc = await created("fresh1@test.example", readRoleCountBaseline(db.client, BY_ID, "fresh1@test.example", { absentUser: true }));
    expect(rc).toEqual(await roleCounts(db.client, TEST_REALM));
  });

  it("a baseline that does not fit (it saw a user there) is not used", async () => {
    const taken = await readRoleCountBaseline(db.client, BY_ID, human.email);
    const bogus = { ...taken!, counts: { humans: { "400": 999 }, bots: 999 } };
    const rc = await created("fresh2@test.example", Promise.resolve(bogus));
    expect(rc).toEqual(await roleCounts(db.client, TEST_REALM));
  });
});

describe("deactivation and reactivation with a baseline", () => {
  const asDb = () => new Db(db.client as any, {} as any);

  /** The ROLE_COUNT of the newest audit row of this type for the user. */
  async function lastRoleCount(eventType: number, userId: number): Promise<any> {
    const [r] = await db.query("SELECT extra_data FROM zerver_realmauditlog WHERE event_type = $1 AND modified_user_id = $2 ORDER BY id DESC LIMIT 1", [
      eventType,
      userId,
    ]);
    return r.extra_data["10"];
  }

  it("deactivate then reactivate: the rows' counts are the counts after each change", async () => {
    const u = await addUser(db, { role: 300 });
    await doDeactivateUser(asDb(), u.id, { roleCountBaseline: readRoleCountBaseline(db.client, BY_ID, u.email) });
    expect(await lastRoleCount(103, u.id)).toEqual(await roleCounts(db.client, TEST_REALM));
    const baseline = readRoleCountBaseline(db.client, null, u.email);
    await db.query("BEGIN");
    await reactivateUserInTx(db.client, u.id, { roleCountBaseline: baseline });
    await db.query("COMMIT");
    expect(await lastRoleCount(104, u.id)).toEqual(await roleCounts(db.client, TEST_REALM));
  });

  it("a baseline read before the user's bots were deactivated is not used for the user", async () => {
    const owner = await addUser(db, { role: 400 });
    await addUser(db, { role: 400, bot: true, botOwnerId: owner.id, name: "ownedbot" });
    const baseline = await readRoleCountBaseline(db.client, BY_ID, owner.email);
    const out = await doDeactivateUser(asDb(), owner.id, { roleCountBaseline: Promise.resolve(baseline) });
    expect(out.bots.filter((b) => b.changed)).toHaveLength(1);
    const rc = await lastRoleCount(103, owner.id);
    expect(rc).toEqual(await roleCounts(db.client, TEST_REALM));
    // The baseline still counted the bot as active.
    expect(rc["12"]).toBe(baseline!.counts.bots - 1);
  });

  it("roleCountsAfterChange counts in the transaction when the baseline does not match", async () => {
    const u = await addUser(db, { role: 400 });
    const stale = await readRoleCountBaseline(db.client, BY_ID, u.email);
    await db.query("UPDATE zerver_userprofile SET role = 200 WHERE id = $1", [u.id]);
    const now = await user(u.id);
    await db.query("BEGIN");
    try {
      await db.query("UPDATE zerver_userprofile SET is_active = false WHERE id = $1", [u.id]);
      const rc = await roleCountsAfterChange(db.client, TEST_REALM, stale, now, { ...now, is_active: false });
      expect(rc).toEqual(await roleCounts(db.client, TEST_REALM));
    } finally {
      await db.query("ROLLBACK");
    }
  });
});

describe("changeUserRole: the 105 row's ROLE_COUNT", () => {
  let u: TestUser;
  beforeEach(async () => {
    u = await addUser(db, { role: 400 });
  });

  /** Run changeUserRole in a transaction with this baseline; return the 105 row's ROLE_COUNT. */
  async function change(to: number, baseline: Tracked<RoleCountBaseline | null>, whileRunning?: () => Promise<void>): Promise<any> {
    const r = await realm();
    await db.query("BEGIN");
    let ids: number[];
    try {
      const locked = (await db.query("SELECT * FROM zerver_userprofile WHERE id = $1 FOR NO KEY UPDATE", [u.id]))[0] as UserProfile;
      const running = changeUserRole(db.client, r, locked, to, baseline);
      if (whileRunning) await whileRunning();
      ids = (await running).auditIds;
      await db.query("COMMIT");
    } catch (e) {
      await db.query("ROLLBACK");
      throw e;
    }
    const [row] = await db.query("SELECT event_type, extra_data FROM zerver_realmauditlog WHERE id = $1", [ids[0]]);
    expect(Number(row.event_type)).toBe(105);
    return row.extra_data["10"];
  }

  /** What Zulip writes: counted inside the transaction, after the change. */
  async function expectedAfter(): Promise<any> {
    return roleCounts(db.client, TEST_REALM);
  }

  it("a baseline that is there before the row is written", async () => {
    const b = tracked(readRoleCountBaseline(db.client, BY_ID, u.email));
    await b.promise;
    expect(b.settled).toBe(true);
    const rc = await change(300, b);
    expect(rc).toEqual(await expectedAfter());
  });

  it("a baseline that arrives after the 105 row was written: filled in before COMMIT", async () => {
    const value = await readRoleCountBaseline(db.client, BY_ID, u.email);
    let release!: (v: RoleCountBaseline | null) => void;
    const late = tracked(new Promise<RoleCountBaseline | null>((resolve) => (release = resolve)));
    const rc = await change(300, late, async () => {
      // The row exists (with a provisional count) while the baseline is still out.
      await new Promise((r) => setTimeout(r, 50));
      expect(late.settled).toBe(false);
      release(value);
    });
    expect(rc).toEqual(await expectedAfter());
  });

  it("a baseline that no longer matches (the user changed since): counted inside the transaction", async () => {
    const stale = await readRoleCountBaseline(db.client, BY_ID, u.email);
    // Someone else deactivates the user after the baseline was read.
    await db.query("UPDATE zerver_userprofile SET is_active = false WHERE id = $1", [u.id]);
    const b = tracked(Promise.resolve(stale));
    await b.promise;
    const rc = await change(300, b);
    expect(rc).toEqual(await expectedAfter());
    // The stale baseline would have counted the (deactivated) user as an active moderator.
    const wrong = countsAfterChange(stale, { ...(await user(u.id)), role: 400, is_active: true }, { role: 300, is_active: true, is_bot: false })!;
    expect(wrong.humans["300"]).toBe(rc["11"]["300"] + 1);
  });

  it("no baseline (several users, dry runs, no second connection): counted inside the transaction", async () => {
    const rc = await change(200, tracked(Promise.resolve(null)));
    expect(rc).toEqual(await expectedAfter());
  });
});

// The realm's active users that the action's events go to (src/zulip/audiences.ts activeRoster):
// read in the baseline's snapshot, adjusted for the change, reused while no user row is written.
describe("the realm's active users (the events' audience)", () => {
  const asDb = () => new Db(db.client as any, {} as any);

  /** Plain SQL: the realm's active users by id, with role and is_bot. */
  async function sqlRoster() {
    const rows = await db.query("SELECT id, role, is_bot FROM zerver_userprofile WHERE realm_id = $1 AND is_active ORDER BY id", [TEST_REALM]);
    return { ids: rows.map((r) => Number(r.id)), roles: rows.map((r) => Number(r.role)), bots: rows.map((r) => Boolean(r.is_bot)) };
  }

  it("parseRoster reads ids, roles and bots; rosterWith adds, changes and removes a user in id order", () => {
    const r = parseRoster("[3,400,0,10,200,1,12,600,0]");
    expect(r).toEqual({ ids: [3, 10, 12], roles: [400, 200, 600], bots: [false, true, false] });
    expect(parseRoster(null)).toEqual({ ids: [], roles: [], bots: [] });
    expect(rosterWith(r, 11, { role: 100, is_active: true, is_bot: false }).ids).toEqual([3, 10, 11, 12]);
    expect(rosterWith(r, 10, { role: 300, is_active: true, is_bot: true }).roles).toEqual([400, 300, 600]);
    expect(rosterWith(r, 3, { role: 400, is_active: false, is_bot: false })).toEqual({ ids: [10, 12], roles: [200, 600], bots: [true, false] });
    expect(r.ids).toEqual([3, 10, 12]); // not changed in place
  });

  it("the baseline's roster is the realm's active users, and its counts are counted from it", async () => {
    const b = (await readRoleCountBaseline(db.client, BY_ID, human.email))!;
    expect(b.roster).toEqual(await sqlRoster());
    expect(nonZero(b.counts)).toEqual(nonZero(await sqlCounts()));
  });

  it("is read once while no user row is written, and again after a write through the Db", async () => {
    const d = asDb();
    const first = await activeUserIds(d, TEST_REALM);
    expect(first).toEqual((await sqlRoster()).ids);
    // Not read again: a change made on the side is not seen until this connection writes a user row.
    const u = await addUser(db, { role: 400 });
    expect(await activeUserIds(d, TEST_REALM)).toEqual(first);
    await d.query("UPDATE zerver_userprofile SET role = 600 WHERE id = $1", [u.id]);
    expect(await activeUserIds(d, TEST_REALM)).toContain(u.id);
    expect(await activeNonGuestUserIds(d, TEST_REALM)).not.toContain(u.id);
  });

  it("after a change, the baseline's roster adjusted for it is used; a stale or mismatched baseline is not", async () => {
    const u = await addUser(db, { role: 400 });
    const before = await user(u.id);
    const baseline = (await readRoleCountBaseline(db.client, BY_ID, u.email))!;
    // A marker user in the baseline's roster shows whether the baseline was used.
    const marked = { ...baseline, roster: rosterWith(baseline.roster, 99999999, { role: 400, is_active: true, is_bot: false }) };
    const after = { role: 200, is_active: true, is_bot: false };
    for (const [b, used] of [
      [marked, true],
      [{ ...marked, readAt: Date.now() - 60_000 }, false],
      [{ ...marked, user: { ...marked.user!, role: 100 } }, false],
    ] as const) {
      const d = asDb();
      await d.tx(async (q) => {
        await q.query("UPDATE zerver_userprofile SET role = $2 WHERE id = $1", [u.id, after.role]);
        primeRosterAfterChange(q, TEST_REALM, Promise.resolve(b), u.id, before, after);
        const r = await activeRoster(q, TEST_REALM);
        expect(r.ids.includes(99999999)).toBe(used);
        const i = r.ids.indexOf(u.id);
        expect(r.roles[i]).toBe(200);
        await q.query("UPDATE zerver_userprofile SET role = $2 WHERE id = $1", [u.id, before.role]);
      });
    }
  });

  it("deactivate_user's events go to the realm's active users after the change (read beside, adjusted)", async () => {
    const u = await addUser(db, { role: 400 });
    const d = asDb();
    await doDeactivateUser(d, u.id, { roleCountBaseline: readRoleCountBaseline(db.client, BY_ID, u.email) });
    const ids = await d.tx((q) => activeUserIds(q, TEST_REALM));
    expect(ids).toEqual((await sqlRoster()).ids);
    expect(ids).not.toContain(u.id);
  });
});
