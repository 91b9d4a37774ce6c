// createRealm / createUser / createSystemBots against the rows a real, freshly installed Zulip
// 12.2 server wrote (template zulip12_fresh), and seedServer's invariants. On the Zulip 11 / 10
// templates (and a copy with Zulip 10's own zerver_stream shape): realms, users, bots, channels,
// subscriptions, DMs and deactivation with that release's rows, all foreign keys checked before
// COMMIT.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createChannel } from "../src/zulip/actions/create-channel.js";
import { createRealm, type CreatedRealm } from "../src/zulip/actions/create-realm.js";
import { getOrCreateDirectMessageGroup, sendMessage } from "../src/zulip/actions/message-send.js";
import { createSystemBots } from "../src/zulip/actions/server-initialization.js";
import { createUser, deactivateUser, type CreatedUser } from "../src/zulip/actions/create-user.js";
import { creationSchemaProblem } from "../src/zulip/actions/creation-schema.js";
import { ROLES } from "../src/zulip/roles.js";
import { SeededRandom } from "../src/lib/random.js";
import { DEMO_SPEC, seedBulkMessages, seedBulkUsers, seedServer, type SeedResult, type SeedSpec } from "../src/dev/seed.js";
import { createDatabase, type CreateDatabaseOptions, type TestDatabase } from "./helpers/pg.js";

type Row = Record<string, any>;

const EXTERNAL_HOST = "localhost";

/** Run fn inside a transaction on the test database's client. */
async function inTx<T>(db: TestDatabase, fn: () => Promise<T>): Promise<T> {
  await db.client.query("BEGIN");
  try {
    const r = await fn();
    await db.client.query("SET CONSTRAINTS ALL IMMEDIATE");
    await db.client.query("COMMIT");
    return r;
  } catch (e) {
    await db.client.query("ROLLBACK");
    throw e;
  }
}

function omit(row: Row, keys: string[]): Row {
  const out: Row = {};
  for (const [k, v] of Object.entries(row)) if (!keys.includes(k)) out[k] = v;
  return out;
}

/** group id → name for named groups of a database. */
async function groupNames(db: TestDatabase): Promise<Map<string, string>> {
  const rows = await db.query(`SELECT usergroup_ptr_id::text AS id, name FROM zerver_namedusergroup`);
  return new Map(rows.map((r) => [r.id, r.name]));
}

const REALM_VOLATILE = ["id", "uuid", "uuid_owner_secret", "date_created", "name", "string_id"];

/** A realm row with group-setting ids replaced by group names. */
async function realmByNames(db: TestDatabase, realmId: number): Promise<Row> {
  const names = await groupNames(db);
  const [r] = await db.query(`SELECT * FROM zerver_realm WHERE id = $1`, [realmId]);
  const out = omit(r, REALM_VOLATILE);
  for (const k of Object.keys(out)) {
    if (/_group_id$|^can_create_groups_id$|^can_manage_all_groups_id$/.test(k)) out[k] = names.get(String(out[k])) ?? `anonymous`;
  }
  return out;
}

async function systemGroupsByNames(db: TestDatabase, realmId: number): Promise<Row[]> {
  const names = await groupNames(db);
  const rows = await db.query(`SELECT * FROM zerver_namedusergroup WHERE realm_id = $1 ORDER BY usergroup_ptr_id`, [realmId]);
  return rows.map((r) => {
    const out = omit(r, ["usergroup_ptr_id", "realm_id"]);
    for (const k of Object.keys(out)) if (k.endsWith("_group_id")) out[k] = names.get(String(out[k]));
    return out;
  });
}

async function subgroupEdges(db: TestDatabase, realmId: number): Promise<string[]> {
  const rows = await db.query(
    `SELECT sup.name AS sup, sub.name AS sub FROM zerver_groupgroupmembership m
       JOIN zerver_namedusergroup sup ON sup.usergroup_ptr_id = m.supergroup_id
       JOIN zerver_namedusergroup sub ON sub.usergroup_ptr_id = m.subgroup_id
      WHERE sup.realm_id = $1`,
    [realmId],
  );
  return rows.map((r) => `${r.sup} ⊃ ${r.sub}`).sort();
}

/** Audit rows of a realm as comparable strings (ids of groups/users/streams replaced by names). */
async function auditShape(db: TestDatabase, realmId: number, eventTypes?: number[]): Promise<string[]> {
  const names = await groupNames(db);
  const rows = await db.query(
    `SELECT a.event_type, a.extra_data, a.modified_user_group_id::text AS g,
            mu.delivery_email AS mu, au.delivery_email AS au, s.name AS stream,
            a.event_last_message_id IS NOT NULL AS has_last_msg, a.backfilled, a.scrubbed
       FROM zerver_realmauditlog a
       LEFT JOIN zerver_userprofile mu ON mu.id = a.modified_user_id
       LEFT JOIN zerver_userprofile au ON au.id = a.acting_user_id
       LEFT JOIN zerver_stream s ON s.id = a.modified_stream_id
      WHERE a.realm_id = $1`,
    [realmId],
  );
  const gname = (id: unknown) => names.get(String(id)) ?? String(id);
  return rows
    .filter((r) => !eventTypes || eventTypes.includes(r.event_type))
    .map((r) => {
      const extra = JSON.parse(JSON.stringify(r.extra_data), (k, v) => (k === "subgroup_ids" || k === "supergroup_ids" ? (v as number[]).map(gname) : v));
      return JSON.stringify([r.event_type, extra, r.g ? gname(r.g) : null, r.mu, r.au, r.stream, r.has_last_msg, r.backfilled, r.scrubbed]);
    })
    .sort();
}

const USER_VOLATILE = ["id", "password", "last_login", "date_joined", "api_key", "uuid", "realm_id", "bot_owner_id"];

describe("createRealm / createUser reproduce a real fresh Zulip 12.2 install", () => {
  let real: TestDatabase;
  let mine: TestDatabase;
  let realOrg: Row;
  let realOwner: Row;
  let system: CreatedRealm;
  let org: CreatedRealm;
  let owner: CreatedUser;

  beforeAll(async () => {
    real = await createDatabase({ template: "zulip12_fresh" });
    mine = await createDatabase({ template: "zulip12_empty" });
    [realOrg] = await real.query(`SELECT * FROM zerver_realm WHERE string_id <> 'zulipinternal'`);
    [realOwner] = await real.query(`SELECT * FROM zerver_userprofile WHERE realm_id = $1 AND role = 100`, [realOrg.id]);
    const [created] = await real.query(`SELECT extra_data FROM zerver_realmauditlog WHERE realm_id = $1 AND event_type = 215`, [realOrg.id]);
    const random = new SeededRandom(1);
    // Inputs are the values the real installer was given (org type, language, the creator's
    // signup answers); everything else must come out of our code.
    await inTx(mine, async () => {
      system = await createRealm(mine.client, { stringId: "zulipinternal", random });
      await createSystemBots(mine.client, system, { random });
      org = await createRealm(mine.client, {
        stringId: realOrg.string_id,
        name: realOrg.name,
        orgType: realOrg.org_type,
        defaultLanguage: realOrg.default_language,
        howRealmCreatorFoundZulip: created.extra_data.how_realm_creator_found_zulip,
        howRealmCreatorFoundZulipExtraContext: created.extra_data.how_realm_creator_found_zulip_extra_context,
        random,
      });
      owner = await createUser(mine.client, org, {
        email: realOwner.delivery_email,
        fullName: realOwner.full_name,
        role: ROLES.REALM_OWNER,
        realmCreation: true,
        emailAddressVisibility: realOwner.email_address_visibility,
        enableMarketingEmails: realOwner.enable_marketing_emails,
        timezone: realOwner.timezone,
        externalHost: EXTERNAL_HOST,
        passwordHash: "argon2$placeholder",
        random,
      });
    });
  });

  afterAll(async () => {
    await real?.drop();
    await mine?.drop();
  });

  it("writes the realm row with every setting as Zulip does", async () => {
    expect(await realmByNames(mine, org.id)).toEqual(await realmByNames(real, realOrg.id));
    const [[r1], [r2]] = [
      await mine.query(`SELECT uuid::text, uuid_owner_secret FROM zerver_realm WHERE id = $1`, [org.id]),
      await real.query(`SELECT uuid::text, uuid_owner_secret FROM zerver_realm WHERE id = $1`, [realOrg.id]),
    ];
    expect(r1.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(r1.uuid_owner_secret).toMatch(/^zuliprealm_[A-Za-z0-9]{32}$/);
    expect(r2.uuid_owner_secret).toMatch(/^zuliprealm_[A-Za-z0-9]{32}$/);
  });

  it("writes the system bot realm like create_internal_realm", async () => {
    const [realSys] = await real.query(`SELECT id FROM zerver_realm WHERE string_id = 'zulipinternal'`);
    expect(await realmByNames(mine, system.id)).toEqual(await realmByNames(real, realSys.id));
    expect(await systemGroupsByNames(mine, system.id)).toEqual(await systemGroupsByNames(real, realSys.id));
    const bots = async (db: TestDatabase, realmId: number) =>
      (await db.query(`SELECT * FROM zerver_userprofile WHERE realm_id = $1 ORDER BY id`, [realmId])).map((u) => ({
        ...omit(u, USER_VOLATILE),
        owns_itself: u.bot_owner_id === u.id,
        unusable_password: /^![A-Za-z0-9]{40}$/.test(u.password),
        last_login_is_date_joined: u.last_login?.getTime() === u.date_joined.getTime(),
      }));
    expect(await bots(mine, system.id)).toEqual(await bots(real, realSys.id));
    expect(await auditShape(mine, system.id)).toEqual(await auditShape(real, realSys.id));
    const memberships = async (db: TestDatabase, realmId: number) =>
      (
        await db.query(
          `SELECT u.email, n.name FROM zerver_usergroupmembership m JOIN zerver_userprofile u ON u.id = m.user_profile_id
             JOIN zerver_namedusergroup n ON n.usergroup_ptr_id = m.user_group_id WHERE u.realm_id = $1`,
          [realmId],
        )
      )
        .map((r) => `${r.email} ${r.name}`)
        .sort();
    expect(await memberships(mine, system.id)).toEqual(await memberships(real, realSys.id));
    const clients = async (db: TestDatabase) => (await db.query(`SELECT name FROM zerver_client ORDER BY id`)).map((r) => r.name);
    expect((await clients(real)).slice(0, 4)).toEqual(await clients(mine));
  });

  it("creates the same 8 system groups, subgroup chain and group-setting mapping", async () => {
    expect(await systemGroupsByNames(mine, org.id)).toEqual(await systemGroupsByNames(real, realOrg.id));
    expect(await subgroupEdges(mine, org.id)).toEqual(await subgroupEdges(real, realOrg.id));
    expect((await subgroupEdges(mine, org.id)).length).toBe(6);
  });

  it("writes the same RealmUserDefault, authentication methods and presence sequence", async () => {
    const rud = async (db: TestDatabase, realmId: number) =>
      omit((await db.query(`SELECT * FROM zerver_realmuserdefault WHERE realm_id = $1`, [realmId]))[0], ["id", "realm_id"]);
    expect(await rud(mine, org.id)).toEqual(await rud(real, realOrg.id));
    const auth = async (db: TestDatabase, realmId: number) =>
      (await db.query(`SELECT name FROM zerver_realmauthenticationmethod WHERE realm_id = $1 ORDER BY id`, [realmId])).map((r) => r.name);
    expect(await auth(mine, org.id)).toEqual(await auth(real, realOrg.id));
    const [seq] = await mine.query(`SELECT last_update_id FROM zerver_presencesequence WHERE realm_id = $1`, [org.id]);
    expect(Number(seq.last_update_id)).toBe(0);
  });

  it("creates the owner with the realm's default settings and Zulip's identity columns", async () => {
    const [mineOwner] = await mine.query(`SELECT * FROM zerver_userprofile WHERE id = $1`, [owner.id]);
    expect(omit(mineOwner, USER_VOLATILE)).toEqual(omit(realOwner, USER_VOLATILE));
    expect(mineOwner.api_key).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(mineOwner.last_login.getTime()).toBe(mineOwner.date_joined.getTime());
  });

  it("writes the same audit events (types, extra_data, groups, users, channels)", async () => {
    expect(await auditShape(mine, org.id)).toEqual(await auditShape(real, realOrg.id));
  });

  it("creates the default channels, subscriptions and colours like the real install", async () => {
    const channels = async (db: TestDatabase, realmId: number) => {
      const names = await groupNames(db);
      return (await db.query(`SELECT * FROM zerver_stream WHERE realm_id = $1 ORDER BY id`, [realmId])).map((s) => {
        const out = omit(s, ["id", "date_created", "recipient_id", "realm_id", "first_message_id"]);
        for (const k of Object.keys(out)) if (k.endsWith("_group_id")) out[k] = names.get(String(out[k]));
        return out;
      });
    };
    expect(await channels(mine, org.id)).toEqual(await channels(real, realOrg.id));
    const subs = async (db: TestDatabase, userId: number) =>
      (
        await db.query(
          `SELECT s.name, sub.active, sub.is_user_active, sub.is_muted, sub.color, sub.pin_to_top
             FROM zerver_subscription sub JOIN zerver_recipient r ON r.id = sub.recipient_id AND r.type = 2
             JOIN zerver_stream s ON s.id = r.type_id WHERE sub.user_profile_id = $1 ORDER BY r.id`,
          [userId],
        )
      ).map((r) => omit(r, []));
    expect(await subs(mine, owner.id)).toEqual(await subs(real, realOwner.id));
    const defaults = async (db: TestDatabase, realmId: number) =>
      (
        await db.query(`SELECT s.name FROM zerver_defaultstream d JOIN zerver_stream s ON s.id = d.stream_id WHERE d.realm_id = $1 ORDER BY d.id`, [realmId])
      ).map((r) => r.name);
    expect(await defaults(mine, org.id)).toEqual(await defaults(real, realOrg.id));
  });

  it("gives the owner the same direct group memberships", async () => {
    const direct = async (db: TestDatabase, userId: number) =>
      (
        await db.query(
          `SELECT n.name FROM zerver_usergroupmembership m JOIN zerver_namedusergroup n ON n.usergroup_ptr_id = m.user_group_id
            WHERE m.user_profile_id = $1 ORDER BY 1`,
          [userId],
        )
      ).map((r) => r.name);
    expect(await direct(mine, owner.id)).toEqual(await direct(real, realOwner.id));
    expect(owner.systemGroups).toEqual(["role:owners"]);
  });

  it("commits with all foreign keys satisfied", async () => {
    // inTx ran SET CONSTRAINTS ALL IMMEDIATE before COMMIT; also check the realm's FK targets.
    const [r] = await mine.query(`SELECT count(*)::int AS n FROM zerver_namedusergroup WHERE realm_id = $1 AND is_system_group`, [org.id]);
    expect(r.n).toBe(8);
  });
});

describe("seedServer (demo spec)", () => {
  let db: TestDatabase;
  let result: SeedResult;
  const now = new Date("2026-05-01T12:00:00Z");
  const spec: SeedSpec = { ...DEMO_SPEC, now };

  beforeAll(async () => {
    db = await createDatabase({ template: "zulip12_empty" });
    // inTx checks every deferred foreign key (SET CONSTRAINTS ALL IMMEDIATE) before COMMIT.
    result = await inTx(db, () => seedServer(db.client, spec));
  });

  afterAll(async () => {
    await db?.drop();
  });

  it("builds zulipinternal, the system bots and every realm of the spec", async () => {
    const realms = await db.query(`SELECT string_id FROM zerver_realm ORDER BY id`);
    expect(realms.map((r) => r.string_id)).toEqual(["zulipinternal", ...spec.realms.map((r) => r.stringId)]);
    expect(Object.keys(result.systemBots)).toContain("welcome-bot@zulip.com");
    const [bots] = await db.query(`SELECT count(*)::int AS n FROM zerver_userprofile WHERE realm_id = $1 AND is_bot AND bot_owner_id = id`, [
      result.systemRealm.id,
    ]);
    expect(bots.n).toBe(7);
  });

  it("has users in every role, provisional members, guests, bots and deactivated users", async () => {
    for (const r of result.realms) {
      const kinds = new Set(r.users.map((u) => u.kind));
      for (const k of ["owner", "admin", "moderator", "member", "guest", "bot"]) expect(kinds).toContain(k);
      expect(r.users.some((u) => !u.isActive)).toBe(true);
    }
    const root = result.realms.find((r) => r.realm.stringId === "")!;
    expect(root.users.filter((u) => u.kind === "newMember").length).toBeGreaterThan(0);
    expect(root.users.length).toBeGreaterThanOrEqual(30);
  });

  it("makes every user a direct member of exactly its role's system group (+ fullmembers when due)", async () => {
    const rows = await db.query(
      `SELECT u.id, u.role, u.date_joined, r.waiting_period_threshold AS wpt,
              array_agg(n.name ORDER BY n.name) FILTER (WHERE n.name IS NOT NULL) AS groups
         FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id
         LEFT JOIN zerver_usergroupmembership m ON m.user_profile_id = u.id
         LEFT JOIN zerver_namedusergroup n ON n.usergroup_ptr_id = m.user_group_id AND n.is_system_group
        GROUP BY u.id, u.role, u.date_joined, r.waiting_period_threshold`,
    );
    const roleGroup: Record<number, string> = {
      100: "role:owners",
      200: "role:administrators",
      300: "role:moderators",
      400: "role:members",
      600: "role:everyone",
    };
    let provisional = 0;
    for (const r of rows) {
      const expected = [roleGroup[r.role]];
      const days = Math.floor((now.getTime() - r.date_joined.getTime()) / 86400_000);
      if (r.role === 400 && days >= r.wpt) expected.push("role:fullmembers");
      if (r.role === 400 && days < r.wpt) provisional++;
      expect(r.groups.sort(), `user ${r.id}`).toEqual(expected.sort());
    }
    expect(provisional).toBeGreaterThan(0);
  });

  it("keeps subscriber counts equal to the active subscriptions", async () => {
    const rows = await db.query(
      `SELECT s.id, s.subscriber_count,
              (SELECT count(*) FROM zerver_subscription sub WHERE sub.recipient_id = s.recipient_id AND sub.active AND sub.is_user_active)::int AS actual
         FROM zerver_stream s`,
    );
    expect(rows.length).toBeGreaterThan(5);
    for (const r of rows) expect(r.subscriber_count, `stream ${r.id}`).toBe(r.actual);
    const [mismatch] = await db.query(
      `SELECT count(*)::int AS n FROM zerver_subscription sub JOIN zerver_userprofile u ON u.id = sub.user_profile_id
        WHERE sub.is_user_active <> u.is_active`,
    );
    expect(mismatch.n).toBe(0);
  });

  it("writes consistent messages: realm, recipients, flags, DM groups", async () => {
    const [counts] = await db.query(
      `SELECT count(*) FILTER (WHERE is_channel_message)::int AS channel, count(*) FILTER (WHERE NOT is_channel_message)::int AS dm FROM zerver_message`,
    );
    expect(counts.channel).toBeGreaterThan(20);
    expect(counts.dm).toBeGreaterThan(5);
    // is_channel_message ⇔ recipient type 2; realm = the channel's / participants' realm.
    const [bad] = await db.query(
      `SELECT count(*)::int AS n FROM zerver_message m JOIN zerver_recipient r ON r.id = m.recipient_id
         LEFT JOIN zerver_stream s ON r.type = 2 AND s.id = r.type_id
        WHERE m.is_channel_message <> (r.type = 2) OR (r.type = 2 AND s.realm_id <> m.realm_id) OR r.type = 1`,
    );
    expect(bad.n).toBe(0);
    // Every DM has one is_private row per DM-group participant and nobody else.
    const dmRows = await db.query(
      `SELECT m.id, h.group_size,
              (SELECT count(*) FROM zerver_usermessage um WHERE um.message_id = m.id)::int AS rows,
              (SELECT count(*) FROM zerver_usermessage um WHERE um.message_id = m.id AND um.flags & 2048 = 0)::int AS not_private,
              (SELECT count(*) FROM zerver_usermessage um JOIN zerver_subscription sub
                  ON sub.user_profile_id = um.user_profile_id AND sub.recipient_id = m.recipient_id
                WHERE um.message_id = m.id)::int AS participants
         FROM zerver_message m JOIN zerver_recipient r ON r.id = m.recipient_id AND r.type = 3
         JOIN zerver_huddle h ON h.id = r.type_id`,
    );
    for (const r of dmRows) {
      expect(r.rows).toBe(r.group_size);
      expect(r.participants).toBe(r.group_size);
      expect(r.not_private).toBe(0);
    }
    // The sender's own row of a human-client message is read; channel rows never have is_private.
    const [flags] = await db.query(
      `SELECT count(*) FILTER (WHERE um.user_profile_id = m.sender_id AND um.flags & 1 = 0)::int AS unread_own,
              count(*) FILTER (WHERE m.is_channel_message AND um.flags & 2048 <> 0)::int AS private_channel
         FROM zerver_usermessage um JOIN zerver_message m ON m.id = um.message_id`,
    );
    expect(flags).toEqual({ unread_own: 0, private_channel: 0 });
    // Huddle hashes are sha1 of the sorted participant ids.
    const huddles = await db.query(
      `SELECT h.huddle_hash,
              (SELECT string_agg(sub.user_profile_id::text, ',' ORDER BY sub.user_profile_id) FROM zerver_subscription sub WHERE sub.recipient_id = h.recipient_id) AS ids
         FROM zerver_huddle h`,
    );
    const { createHash } = await import("node:crypto");
    for (const h of huddles) expect(h.huddle_hash).toBe(createHash("sha1").update(h.ids).digest("hex"));
  });

  it("uses fake display emails where the realm hides addresses, real ones elsewhere", async () => {
    for (const r of result.realms) {
      const [rud] = await db.query(`SELECT email_address_visibility AS v FROM zerver_realmuserdefault WHERE realm_id = $1`, [r.realm.id]);
      for (const u of r.users) {
        if (u.isBot || rud.v === 1) expect(u.email).toBe(u.deliveryEmail);
        else expect(u.email).toBe(`user${u.id}@${r.host}`);
      }
    }
    expect(result.realms.some((r) => r.users.some((u) => u.email !== u.deliveryEmail))).toBe(true);
  });

  it("ends each realm's audit log with a ROLE_COUNT matching the current users", async () => {
    for (const r of result.realms) {
      const [last] = await db.query(`SELECT extra_data FROM zerver_realmauditlog WHERE realm_id = $1 AND event_type IN (101, 103) ORDER BY id DESC LIMIT 1`, [
        r.realm.id,
      ]);
      const rows = await db.query(`SELECT role, is_bot, count(*)::int AS n FROM zerver_userprofile WHERE realm_id = $1 AND is_active GROUP BY 1, 2`, [
        r.realm.id,
      ]);
      const humans: Record<string, number> = { "100": 0, "200": 0, "300": 0, "400": 0, "600": 0 };
      let bots = 0;
      for (const x of rows) {
        if (x.is_bot) bots += x.n;
        else humans[String(x.role)] = x.n;
      }
      const total = Object.values(humans).reduce((a, b) => a + b, 0);
      expect(last.extra_data).toEqual({ "10": { "11": { ...humans, workplace_users: total, non_workplace_users: 0 }, "12": bots } });
    }
  });

  it("is deterministic for a given seed and time", async () => {
    const other = await createDatabase({ template: "zulip12_empty" });
    try {
      await inTx(other, () => seedServer(other.client, spec));
      const snapshot = async (d: TestDatabase) =>
        d.query(`SELECT id, delivery_email, email, full_name, role, is_active, api_key, date_joined FROM zerver_userprofile ORDER BY id`);
      expect(await snapshot(other)).toEqual(await snapshot(db));
      const msgs = async (d: TestDatabase) => d.query(`SELECT id, sender_id, recipient_id, subject, content, date_sent FROM zerver_message ORDER BY id`);
      expect(await msgs(other)).toEqual(await msgs(db));
    } finally {
      await other.drop();
    }
  });

  it("bulk-creates users and messages with the same invariants", async () => {
    const root = result.realms.find((r) => r.realm.stringId === "")!;
    const before = await db.query(`SELECT count(*)::int AS n FROM zerver_userprofile WHERE realm_id = $1`, [root.realm.id]);
    const bulk = await inTx(db, () =>
      seedBulkUsers(db.client, root.realm.id, 500, { externalHost: result.externalHost, now, dateJoined: new Date(now.getTime() - 30 * 86400_000), seed: 7 }),
    );
    expect(bulk.count).toBe(500);
    const [after] = await db.query(`SELECT count(*)::int AS n FROM zerver_userprofile WHERE realm_id = $1`, [root.realm.id]);
    expect(after.n).toBe(before[0].n + 500);
    const [shape] = await db.query(
      `SELECT count(*) FILTER (WHERE email = 'user' || id || '@' || $2)::int AS fake,
              count(DISTINCT api_key)::int AS keys, count(DISTINCT uuid)::int AS uuids
         FROM zerver_userprofile WHERE id BETWEEN $1 AND $3`,
      [bulk.firstId, root.host, bulk.lastId],
    );
    expect(shape).toEqual({ fake: 500, keys: 500, uuids: 500 });
    const [memberships] = await db.query(
      `SELECT count(*)::int AS n FROM zerver_usergroupmembership m JOIN zerver_namedusergroup g ON g.usergroup_ptr_id = m.user_group_id
        WHERE m.user_profile_id BETWEEN $1 AND $2 AND g.name IN ('role:members', 'role:fullmembers')`,
      [bulk.firstId, bulk.lastId],
    );
    expect(memberships.n).toBe(1000);
    const [audits] = await db.query(
      `SELECT count(*) FILTER (WHERE event_type = 101)::int AS created, count(*) FILTER (WHERE event_type = 703)::int AS groups,
              count(*) FILTER (WHERE event_type = 301)::int AS subs
         FROM zerver_realmauditlog WHERE modified_user_id BETWEEN $1 AND $2`,
      [bulk.firstId, bulk.lastId],
    );
    expect(audits).toEqual({ created: 500, groups: 1000, subs: 500 * 3 });
    const [lastCreated] = await db.query(`SELECT extra_data FROM zerver_realmauditlog WHERE modified_user_id = $1 AND event_type = 101`, [bulk.lastId]);
    const [members] = await db.query(`SELECT count(*)::int AS n FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND NOT is_bot AND role = 400`, [
      root.realm.id,
    ]);
    expect(lastCreated.extra_data["10"]["11"]["400"]).toBe(members.n);
    const [humans] = await db.query(`SELECT count(*)::int AS n FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND NOT is_bot`, [root.realm.id]);
    expect(lastCreated.extra_data["10"]["11"].workplace_users).toBe(humans.n);
    expect(lastCreated.extra_data["10"]["11"].non_workplace_users).toBe(0);

    const general = root.channels.find((c) => c.name === "general")!;
    const msgs = await inTx(db, () => seedBulkMessages(db.client, { channelId: general.id, count: 50, start: new Date(now.getTime() - 3600_000) }));
    const [sub] = await db.query(`SELECT subscriber_count AS n FROM zerver_stream WHERE id = $1`, [general.id]);
    expect(msgs.userMessages).toBe(50 * sub.n);
    const rows = await db.query(
      `SELECT s.id, s.subscriber_count,
              (SELECT count(*) FROM zerver_subscription x WHERE x.recipient_id = s.recipient_id AND x.active AND x.is_user_active)::int AS actual
         FROM zerver_stream s`,
    );
    for (const r of rows) expect(r.subscriber_count).toBe(r.actual);
  });
});

/** Personal recipients and subscriptions as a user's own (type 1, type_id = the user). */
async function personalRecipient(db: TestDatabase, userId: number): Promise<Row> {
  const [u] = await db.query(`SELECT recipient_id FROM zerver_userprofile WHERE id = $1`, [userId]);
  const [r] = await db.query(`SELECT type, type_id FROM zerver_recipient WHERE id = $1`, [u.recipient_id]);
  const subs = await db.query(`SELECT user_profile_id, active, is_user_active, color, is_muted FROM zerver_subscription WHERE recipient_id = $1`, [
    u.recipient_id,
  ]);
  return {
    type: r.type,
    self: Number(r.type_id) === userId,
    subs: subs.map((x) => ({ ...x, user_profile_id: x.user_profile_id === userId ? "self" : x.user_profile_id })),
  };
}

// Zulip 10's zerver_stream (the templates keep 12.x's): is_in_zephyr_realm (dropped by 0752) and
// none of the columns 0704-0736 and 0764 added.
const ZULIP10_STREAM_SQL = `
  ALTER TABLE zerver_stream ADD COLUMN is_in_zephyr_realm boolean NOT NULL DEFAULT false;
  ALTER TABLE zerver_stream ALTER COLUMN is_in_zephyr_realm DROP DEFAULT;
  ALTER TABLE zerver_stream DROP COLUMN subscriber_count, DROP COLUMN folder_id, DROP COLUMN topics_policy,
    DROP COLUMN can_move_messages_within_channel_group_id, DROP COLUMN can_move_messages_out_of_channel_group_id,
    DROP COLUMN can_resolve_topics_group_id, DROP COLUMN can_delete_any_message_group_id,
    DROP COLUMN can_delete_own_message_group_id, DROP COLUMN can_create_topic_group_id;`;

describe.each<[string, CreateDatabaseOptions]>([
  ["Zulip 11", { template: "zulip11_fresh" }],
  ["Zulip 10", { template: "zulip10_fresh" }],
  ["Zulip 10 with its own zerver_stream", { template: "zulip10_fresh", sql: ZULIP10_STREAM_SQL }],
])("the creation actions on %s", (_name, dbOpts) => {
  let db: TestDatabase;
  let org: CreatedRealm;
  let owner: CreatedUser;
  let member: CreatedUser;
  let bot: CreatedUser;
  let leaver: CreatedUser;
  let bots: Record<string, number>;
  let channelId: number;
  /** message ids */
  const dms: Record<string, number> = {};

  beforeAll(async () => {
    db = await createDatabase(dbOpts);
    expect(await creationSchemaProblem(db.client)).toBeNull();
    const random = new SeededRandom(7);
    await inTx(db, async () => {
      org = await createRealm(db.client, { stringId: "older", name: "Older", random });
      owner = await createUser(db.client, org, {
        email: "owner@older.example",
        fullName: "Owner",
        role: ROLES.REALM_OWNER,
        realmCreation: true,
        externalHost: EXTERNAL_HOST,
        random,
      });
      member = await createUser(db.client, org, { email: "member@older.example", fullName: "Member", externalHost: EXTERNAL_HOST, random });
      bot = await createUser(db.client, org, { email: "bot-bot@older.example", fullName: "Bot", botType: 1, botOwnerId: owner.id, random });
      leaver = await createUser(db.client, org, { email: "leaver@older.example", fullName: "Leaver", isActive: false, externalHost: EXTERNAL_HOST, random });
      const internal = await createRealm(db.client, { stringId: "otherinternal", internal: true, random });
      bots = await createSystemBots(db.client, internal, { random });
      channelId = (await createChannel(db.client, org, { name: "team", creatorId: owner.id, subscribers: [owner.id, member.id] })).id;
      await sendMessage(db.client, { senderId: owner.id, to: { channelId, topic: "hello" }, content: "hello" });
      dms.oneToOne = (await sendMessage(db.client, { senderId: owner.id, to: { userIds: [member.id] }, content: "hi" })).id;
      dms.back = (await sendMessage(db.client, { senderId: member.id, to: { userIds: [owner.id] }, content: "hi back" })).id;
      dms.self = (await sendMessage(db.client, { senderId: member.id, to: { userIds: [member.id] }, content: "note" })).id;
      dms.group = (await sendMessage(db.client, { senderId: owner.id, to: { userIds: [member.id, bot.id] }, content: "all" })).id;
      await deactivateUser(db.client, member.id);
    });
  });
  afterAll(async () => {
    await db?.drop();
  });

  it("committed with every deferred foreign key checked before COMMIT", async () => {
    // inTx ran SET CONSTRAINTS ALL IMMEDIATE before COMMIT; the rows are there.
    const [{ n }] = await db.query(`SELECT count(*)::int AS n FROM zerver_userprofile WHERE realm_id = $1`, [org.id]);
    expect(n).toBe(4);
  });

  it("gives every user, bots included, a personal recipient with its subscription", async () => {
    for (const u of [owner, bot])
      expect(await personalRecipient(db, u.id)).toEqual({
        type: 1,
        self: true,
        subs: [{ user_profile_id: "self", active: true, is_user_active: true, color: "#c2c2c2", is_muted: false }],
      });
    for (const u of [member, leaver])
      expect(await personalRecipient(db, u.id)).toEqual({
        type: 1,
        self: true,
        subs: [{ user_profile_id: "self", active: true, is_user_active: false, color: "#c2c2c2", is_muted: false }],
      });
    for (const id of Object.values(bots)) expect((await personalRecipient(db, id)).subs).toHaveLength(1);
  });

  it("writes the release's realm columns", async () => {
    const [r] = await db.query(`SELECT * FROM zerver_realm WHERE id = $1`, [org.id]);
    const [general] = await db.query(`SELECT id FROM zerver_stream WHERE realm_id = $1 AND name = 'general'`, [org.id]);
    const is10 = dbOpts.template === "zulip10_fresh";
    expect(r).toMatchObject({
      giphy_rating: 2,
      zulip_update_announcements_level: is10 ? 15 : 21,
      new_stream_announcements_stream_id: general.id,
      zulip_update_announcements_stream_id: general.id,
    });
    expect(r.mandatory_topics).toBe(is10 ? false : undefined);
    expect(r.topics_policy).toBe(is10 ? undefined : 2);
  });

  it("sends 1:1 and self DMs to personal recipients, larger ones to a DM group", async () => {
    const rec = async (messageId: number) =>
      (await db.query(`SELECT r.type, r.type_id FROM zerver_message m JOIN zerver_recipient r ON r.id = m.recipient_id WHERE m.id = $1`, [messageId]))[0];
    expect(await rec(dms.oneToOne)).toEqual({ type: 1, type_id: member.id });
    expect(await rec(dms.back)).toEqual({ type: 1, type_id: owner.id });
    expect(await rec(dms.self)).toEqual({ type: 1, type_id: member.id });
    expect((await rec(dms.group)).type).toBe(3);
    const um = async (messageId: number) =>
      (await db.query(`SELECT user_profile_id, flags FROM zerver_usermessage WHERE message_id = $1 ORDER BY 1`, [messageId])).map((r) => [
        r.user_profile_id,
        Number(r.flags),
      ]);
    // is_private (2048) for every participant, read (1) for the sender (a human client)
    expect(await um(dms.oneToOne)).toEqual([
      [owner.id, 2049],
      [member.id, 2048],
    ]);
    expect(await um(dms.self)).toEqual([[member.id, 2049]]);
    expect(await um(dms.group)).toEqual([
      [owner.id, 2049],
      [member.id, 2048],
      [bot.id, 2048],
    ]);
    // A 1:1 conversation that already has a DM group: Zulip 11 uses the group, Zulip 10 still
    // the personal recipient (get_recipient_from_user_profiles of each release).
    await inTx(db, async () => {
      const group = await getOrCreateDirectMessageGroup(db.client, [owner.id, bot.id]);
      const sent = await sendMessage(db.client, { senderId: bot.id, to: { userIds: [owner.id] }, content: "via group", client: "website" });
      const [personal] = await db.query(`SELECT recipient_id FROM zerver_userprofile WHERE id = $1`, [owner.id]);
      expect(sent.recipientId).toBe(dbOpts.template === "zulip11_fresh" ? group.recipientId : Number(personal.recipient_id));
    });
  });

  it("creates channels in the release's shape, with subscriber counts only where they exist", async () => {
    const [s] = await db.query(`SELECT * FROM zerver_stream WHERE id = $1`, [channelId]);
    if ("is_in_zephyr_realm" in s) expect(s.is_in_zephyr_realm).toBe(false);
    if ("subscriber_count" in s) expect(s.subscriber_count).toBe(1); // owner (member deactivated)
    expect("subscriber_count" in s).toBe(dbOpts.sql === undefined);
    // The "channel creator" anonymous group of can_administer_channel_group holds the owner.
    const members = await db.query(`SELECT user_profile_id FROM zerver_usergroupmembership WHERE user_group_id = $1`, [s.can_administer_channel_group_id]);
    expect(members.map((m) => m.user_profile_id)).toEqual([owner.id]);
  });
});
