// The ROLE_COUNT of a role change computed beside the transaction (src/lib/audit.ts
// readRoleCountBaseline / countsAfterChange, src/lib/roles.ts changeUserRole), against a real
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
} from "../src/lib/audit.js";
import type { Realm, UserProfile } from "../src/lib/lookup.js";
import { changeUserRole, type Tracked, tracked } from "../src/lib/roles.js";
import { createDatabase, type TestDatabase } from "./helpers/pg.js";
import { addUser, TEST_REALM, type TestUser } from "./helpers/users.js";

const BY_ID = { column: "id", param: TEST_REALM } as const;

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
  for (const r of await db.query(
    "SELECT role, count(*)::int AS n FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND NOT is_bot GROUP BY role",
    [TEST_REALM],
  )) {
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
    expect(b2).toEqual(b);
  });

  it("is null for a user the realm does not have", async () => {
    expect(await readRoleCountBaseline(db.client, BY_ID, "nobody@test.example")).toBeNull();
    expect(await readRoleCountBaseline(db.client, { column: "id", param: 999 }, human.email)).toBeNull();
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
