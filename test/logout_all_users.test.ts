// logout_all_users through the built CLI against a real Zulip 12 database and a real memcached:
// which sessions each scope deletes (with their cached copies), and --rotate-api-keys writing
// what do_regenerate_api_key writes (new key, 127 row with the user as actor, push tokens
// cleared when the server sends notifications itself) with the caches under old and new keys.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, type CliResult } from "./helpers/cli.js";
import { makeConfDir, type ConfDir } from "./helpers/confdir.js";
import { type MemcachedInstance } from "./helpers/memcached.js";
import { type TestDatabase } from "./helpers/pg.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";
import { addSession as writeSession } from "./helpers/sessions.js";
import { changedTables, snapshot } from "./helpers/snapshot.js";
import { copyRow } from "./helpers/users.js";
import { QueueReader, rabbitSettings } from "./helpers/rabbitmq.js";
import { CLOSED_PORT } from "./helpers/services.js";

/** A login session of `userId` (null: an anonymous one), signed with the server's secret_key. */
const addSession = (db: TestDatabase, userId: number | null): Promise<string> => writeSession(db, userId, conf.secrets.secret_key);

/** A member of realm `realm` copied from the owner row. */
async function copyUser(db: TestDatabase, email: string, realm: number, active = true): Promise<number> {
  const override: Record<string, string> = {
    email: "$1",
    delivery_email: "$1",
    full_name: "'Someone'",
    role: "400",
    api_key: "substr(md5(random()::text), 1, 32)",
    uuid: "gen_random_uuid()",
    is_active: active ? "true" : "false",
    realm_id: String(realm),
    can_create_users: "false",
  };
  return copyRow(db, "zerver_userprofile", 8, override, [email]);
}

let db: TestDatabase;
let mc: MemcachedInstance;
let conf: ConfDir;
const cli = (args: string[]): Promise<CliResult> => runCli(args, { confDir: conf, db });
let ids: { owner: number; inactive: number; internalBot: number; orphan: number };
let sessions: { owner: string; ownerFresh: string; inactive: string; bot: string; anon: string; orphan: string };

const sessionKeys = async () => (await db.query("SELECT session_key FROM django_session ORDER BY session_key")).map((r: any) => r.session_key as string).sort();

let copy: ServerCopy;
beforeAll(async () => {
  copy = await startServerCopy({ template: "zulip12_fresh" });
  ({ db, mc, conf } = copy);
  const inactive = await copyUser(db, "gone@test.example", 2, false);
  const internalBot = Number((await db.query("SELECT id FROM zerver_userprofile WHERE realm_id = 1 ORDER BY id LIMIT 1"))[0].id);
  ids = { owner: 8, inactive, internalBot, orphan: 999999 };
  const [fresh] = await db.query("SELECT session_key FROM django_session");
  sessions = {
    ownerFresh: fresh.session_key,
    owner: await addSession(db, 8),
    inactive: await addSession(db, inactive),
    bot: await addSession(db, internalBot),
    anon: await addSession(db, null),
    orphan: await addSession(db, 999999),
  };
}, 120_000);
afterAll(() => copy?.stop());

describe("logout_all_users", () => {
  it("--dry-run counts and changes nothing", async () => {
    const snap = await snapshot(db);
    const r = await cli(["logout_all_users", "--dry-run", "--rotate-api-keys"]);
    expect(r.exitCode).toBe(0);
    const users = Number((await db.query("SELECT count(*) AS n FROM zerver_userprofile"))[0].n);
    expect(r.stdout).toBe(
      `Would delete 6 sessions of 4 users of this server (and 1 anonymous sessions).\nWould rotate the API keys of ${users} users of this server (bots included).\n(dry run: nothing was changed)`,
    );
    expect(changedTables(snap, await snapshot(db))).toEqual([]);
  });

  it("--deactivated-only: sessions of deactivated users (and of deactivated organizations) only; orphans skipped", async () => {
    const mcc = await mc.connect();
    for (const k of Object.values(sessions)) await mcc.set(`:1:django.contrib.sessions.cached_db${k}`, "cached");
    const snap = await snapshot(db);
    const r = await cli(["logout_all_users", "--deactivated-only", "--json"]);
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({
      ok: true,
      scope: "deactivated",
      sessions_deleted_count: 1,
      users_logged_out_count: 1,
      orphaned_sessions_skipped_count: 1,
      api_keys_rotated: [],
    });
    expect(changedTables(snap, await snapshot(db))).toEqual(["django_session"]);
    expect(await sessionKeys()).toEqual([sessions.owner, sessions.ownerFresh, sessions.bot, sessions.anon, sessions.orphan].sort());
    expect(await mcc.get(`:1:django.contrib.sessions.cached_db${sessions.inactive}`)).toBeNull();
    expect(await mcc.getString(`:1:django.contrib.sessions.cached_db${sessions.owner}`)).toBe("cached");

    // A deactivated organization's users count as deactivated.
    await db.query("UPDATE zerver_realm SET deactivated = true WHERE id = 1");
    const r2 = await cli(["logout_all_users", "--deactivated-only"]);
    expect(r2.exitCode).toBe(0);
    expect(r2.stdout).toBe("");
    await db.query("UPDATE zerver_realm SET deactivated = false WHERE id = 1");
    expect(await sessionKeys()).toEqual([sessions.owner, sessions.ownerFresh, sessions.anon, sessions.orphan].sort());
    expect(await mcc.get(`:1:django.contrib.sessions.cached_db${sessions.bot}`)).toBeNull();
    await mcc.close();
  });

  it("-r with --rotate-api-keys: the organization's sessions, new API keys with 127 rows, push-token jobs, caches", async () => {
    const mcc = await mc.connect();
    const reader = await QueueReader.open();
    await reader.purge("deferred_work", "notify_tornado");
    const realmUsers = await db.query("SELECT * FROM zerver_userprofile WHERE realm_id = 2 ORDER BY id");
    await db.query("INSERT INTO zerver_pushdevicetoken (kind, token, last_updated, ios_app_id, user_id) VALUES (2, 'tok-owner', now(), NULL, 8)");
    await db.query("INSERT INTO zerver_pushdevicetoken (kind, token, last_updated, ios_app_id, user_id) VALUES (2, 'tok-bot', now(), NULL, $1)", [
      ids.internalBot,
    ]);
    for (const u of realmUsers) {
      await mcc.set(`:1:${conf.cachePrefix}user_profile_by_api_key:${u.api_key}`, "old key");
      await mcc.set(`:1:${conf.cachePrefix}user_profile_by_id:${u.id}`, "stale");
    }
    const others0 = await db.query("SELECT * FROM zerver_userprofile WHERE realm_id <> 2 ORDER BY id");
    const snap = await snapshot(db);
    const maxAudit = Number((await db.query("SELECT max(id) AS m FROM zerver_realmauditlog"))[0].m);
    const r = await cli(["logout_all_users", "-r", "2", "--rotate-api-keys", "--json"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({
      ok: true,
      scope: "realm",
      realm: { id: 2 },
      sessions_deleted_count: 2,
      users_logged_out_count: 1,
      orphaned_sessions_skipped_count: 0,
    });
    expect(doc.api_keys_rotated.map((x: any) => x.user.id)).toEqual(realmUsers.map((u: any) => Number(u.id)));
    expect(changedTables(snap, await snapshot(db))).toEqual(["django_session", "zerver_realmauditlog", "zerver_userprofile"]);
    expect(await sessionKeys()).toEqual([sessions.anon, sessions.orphan].sort());
    // Users: only api_key changed, to a new 32-character [A-Za-z0-9] key.
    const after = await db.query("SELECT * FROM zerver_userprofile WHERE realm_id = 2 ORDER BY id");
    for (const [i, u] of realmUsers.entries()) {
      expect(after[i].api_key).toMatch(/^[A-Za-z0-9]{32}$/);
      expect(after[i].api_key).not.toBe(u.api_key);
      expect({ ...after[i], api_key: null }).toEqual({ ...u, api_key: null });
    }
    expect(await db.query("SELECT * FROM zerver_userprofile WHERE realm_id <> 2 ORDER BY id")).toEqual(others0);
    // One 127 row per user, acting and modified user = the user.
    const audit = await db.query("SELECT * FROM zerver_realmauditlog WHERE id > $1 ORDER BY id", [maxAudit]);
    expect(
      audit.map((a: any) => [a.event_type, a.acting_user_id, a.modified_user_id, a.realm_id, a.extra_data, a.modified_stream_id, a.modified_user_group_id]),
    ).toEqual(realmUsers.map((u: any) => [127, u.id, u.id, 2, {}, null, null]));
    // Push tokens: one clear_push_device_tokens job per user for Zulip's deferred_work worker
    // (do_regenerate_api_key), in user order; the rows stay for the worker to delete.
    expect(await reader.drain("deferred_work")).toEqual(realmUsers.map((u: any) => ({ type: "clear_push_device_tokens", user_profile_id: Number(u.id) })));
    expect(doc.events).toMatchObject({ transport: "rabbitmq", jobs: realmUsers.length, ok: true });
    // Bots get a realm_bot api_key update before Zulip 12 only: none on this 12.x database.
    expect(await reader.drain()).toEqual([]);
    expect((await db.query("SELECT token FROM zerver_pushdevicetoken ORDER BY token")).map((x: any) => x.token)).toEqual(["tok-bot", "tok-owner"]);
    await reader.close();
    for (const u of realmUsers) {
      expect(await mcc.get(`:1:${conf.cachePrefix}user_profile_by_api_key:${u.api_key}`)).toBeNull();
      expect(await mcc.get(`:1:${conf.cachePrefix}user_profile_by_id:${u.id}`)).toBeNull();
    }
    await mcc.close();
  });

  it("--rotate-api-keys without RabbitMQ, or with --events=none: the server's own push registrations are cleared here", async () => {
    await db.query("INSERT INTO zerver_pushdevicetoken (kind, token, last_updated, ios_app_id, user_id) VALUES (2, 'tok-owner-2', now(), NULL, 8)");
    const tokens = (
      await db.query("SELECT count(*)::int AS n FROM zerver_pushdevicetoken p JOIN zerver_userprofile u ON u.id = p.user_id WHERE u.realm_id = 2")
    )[0].n;
    const owners = (await db.query("SELECT count(*)::int AS n FROM zerver_pushdevicetoken WHERE user_id = 8"))[0].n;
    const down = makeConfDir({
      db: { name: db.name },
      memcached: { location: mc.location, password: mc.password },
      rabbitmq: { ...rabbitSettings(), port: CLOSED_PORT },
    });
    try {
      const r = await runCli(["logout_all_users", "-r", "2", "--rotate-api-keys", "--json", "--events=rabbitmq"], { confDir: down, db });
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toContain("queue-worker jobs could not be delivered");
      expect(r.stderr).toContain("clearing the push notification registrations of");
      expect(r.stderr).toContain(`were cleared here instead (${tokens} deleted).`);
      const doc = JSON.parse(r.stdout);
      expect(doc.api_keys_rotated.find((x: any) => x.user.id === 8).push_tokens_deleted_count).toBe(owners);
      expect(doc.events).toMatchObject({ ok: false, jobs: 0 });
    } finally {
      down.cleanup();
    }
    expect((await db.query("SELECT count(*)::int AS n FROM zerver_pushdevicetoken WHERE user_id = 8"))[0].n).toBe(0);
    await db.query("INSERT INTO zerver_pushdevicetoken (kind, token, last_updated, ios_app_id, user_id) VALUES (2, 'tok-owner-3', now(), NULL, 8)");
    const none = await cli(["logout_all_users", "-r", "2", "--rotate-api-keys", "--json", "--events=none"]);
    expect(none.exitCode).toBe(0);
    expect(none.stderr).toBe("");
    expect(JSON.parse(none.stdout).api_keys_rotated.find((x: any) => x.user.id === 8).push_tokens_deleted_count).toBe(1);
  });

  it("no options: every session goes, anonymous and orphaned ones included; prints nothing", async () => {
    const extra = await addSession(db, 8);
    const snap = await snapshot(db);
    const r = await cli(["logout_all_users"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("");
    expect(await sessionKeys()).toEqual([]);
    expect(changedTables(snap, await snapshot(db))).toEqual(["django_session"]);
    void extra;
  });
});
