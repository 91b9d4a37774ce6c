// The real-time events and queue-worker jobs of the realm lifecycle commands (deactivate_realm,
// reactivate_realm, change_realm_subdomain) through the built CLI, on the Zulip 12, 11 and 10
// fixtures, read back from this file's vhost of the run's real RabbitMQ: every field, the
// recipient lists, nothing for dry runs and refusals, and the push_bouncer_update_for_realm
// job when the server uses the push notification service.
//
// Expectations from Zulip's do_deactivate_realm / do_reactivate_realm (zerver/actions/
// realm_settings.py) and do_change_realm_subdomain (zerver/actions/create_realm.py).
import crypto from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.js";
import { makeConfDir, type ConfDir } from "./helpers/confdir.js";
import type { TemplateName } from "./helpers/pg.js";
import { QueueReader, sortedUsers } from "./helpers/rabbitmq.js";
import { startServerCopy, type ServerCopy } from "./helpers/server-copy.js";
import { expectedChannelObject } from "./helpers/stream-dict.js";
import { addUser, TEST_REALM } from "./helpers/users.js";

const HOST = "zulip.example.net";
const FIXTURES: TemplateName[] = ["zulip12_fresh", "zulip11_fresh", "zulip10_fresh"];
/** The fixtures' API feature levels (no version.py: the migrations' bound). */
const LEVEL: Record<string, number> = { zulip12_fresh: 474, zulip11_fresh: 421, zulip10_fresh: 371 };

let reader: QueueReader;

beforeAll(async () => {
  reader = await QueueReader.open();
});

afterAll(async () => {
  await reader?.close();
});

describe.each(FIXTURES)("realm lifecycle events on %s", (template) => {
  let server: ServerCopy;
  /** The same server, using the push notification service. */
  let pushConf: ConfDir;

  const run = (args: string[], conf: ConfDir = server.conf) => runCli(args, { confDir: conf, db: server.db });
  const realmIds = async (realmId: number, where = "is_active") =>
    (await server.db.query(`SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND ${where} ORDER BY id`, [realmId])).map((r: any) => Number(r.id));

  beforeAll(async () => {
    server = await startServerCopy({ template, externalHost: HOST });
    pushConf = makeConfDir({
      db: { name: server.db.name },
      memcached: { location: server.mc.location, password: server.mc.password },
      externalHost: HOST,
      extraSettings: "ZULIP_SERVICE_PUSH_NOTIFICATIONS = True",
    });
    // Recipients must be the active users only, bots included.
    await addUser(server.db, { role: 400 });
    await addUser(server.db, { role: 600 });
    await addUser(server.db, { role: 400, active: false });
    await addUser(server.db, { role: 400, bot: true });
  });

  afterAll(async () => {
    pushConf?.cleanup();
    await server?.stop();
  });

  beforeEach(async () => {
    await reader.purge("notify_tornado", "deferred_work");
  });

  it("deactivate_realm: nothing for a dry run; then realm/deactivated to every active user, after the commit", async () => {
    const dry = await run(["deactivate_realm", "-r", String(TEST_REALM), "--deactivation_reason", "owner_request", "--dry-run", "--json"]);
    expect(dry.exitCode).toBe(0);
    expect(JSON.parse(dry.stdout).events).toBeNull();
    expect(await reader.drain()).toEqual([]);

    const active = await realmIds(TEST_REALM);
    expect(active.length).toBeGreaterThan(3);
    expect(active).not.toEqual(await realmIds(TEST_REALM, "true"));
    const r = await run(["deactivate_realm", "-r", String(TEST_REALM), "--deactivation_reason", "owner_request", "--json"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(sortedUsers(await reader.drain())).toEqual([{ event: { type: "realm", op: "deactivated", realm_id: TEST_REALM }, users: active }]);
    // No push notification service: no job.
    expect(await reader.drain("deferred_work")).toEqual([]);
    expect(JSON.parse(r.stdout).events).toEqual({
      mode: "auto",
      transport: "rabbitmq",
      published: 1,
      jobs: 0,
      ok: true,
      skipped: false,
      undelivered: [],
      warning: null,
    });
    // The users stay active.
    expect(await realmIds(TEST_REALM)).toEqual(active);
  });

  it("deactivate_realm on a deactivated realm (even with a redirect URL) sends nothing", async () => {
    const r = await run([
      "deactivate_realm",
      "-r",
      String(TEST_REALM),
      "--deactivation_reason",
      "owner_request",
      "--redirect_url",
      "https://new.example.com",
      "--json",
    ]);
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ already_deactivated: true, redirect_set: true, events: null });
    expect(await reader.drain()).toEqual([]);
    expect(await reader.drain("deferred_work")).toEqual([]);
  });

  it("reactivate_realm: no client event; the audit-log upload job only with the push notification service", async () => {
    const dry = await run(["reactivate_realm", "-r", String(TEST_REALM), "--dry-run", "--json"]);
    expect(JSON.parse(dry.stdout).events).toBeNull();
    const r = await run(["reactivate_realm", "-r", String(TEST_REALM), "--json"], pushConf);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(await reader.drain()).toEqual([]);
    expect(await reader.drain("deferred_work")).toEqual([{ type: "push_bouncer_update_for_realm", realm_id: TEST_REALM }]);
    expect(JSON.parse(r.stdout).events).toMatchObject({ transport: "rabbitmq", published: 0, jobs: 1, ok: true });
    // Already active: refused as a no-op, nothing sent.
    const again = await run(["reactivate_realm", "-r", String(TEST_REALM), "--json"], pushConf);
    expect(JSON.parse(again.stdout)).toMatchObject({ already_active: true, events: null });
    expect(await reader.drain("deferred_work")).toEqual([]);
  });

  it("deactivate_realm with the push notification service: the job, then the event", async () => {
    const active = await realmIds(TEST_REALM);
    const r = await run(["deactivate_realm", "-r", String(TEST_REALM), "--deactivation_reason", "tos_violation", "--json"], pushConf);
    expect(r.exitCode).toBe(0);
    expect(await reader.drain("deferred_work")).toEqual([{ type: "push_bouncer_update_for_realm", realm_id: TEST_REALM }]);
    expect(sortedUsers(await reader.drain())).toEqual([{ event: { type: "realm", op: "deactivated", realm_id: TEST_REALM }, users: active }]);
    expect(JSON.parse(r.stdout).events).toMatchObject({ published: 1, jobs: 1, ok: true });
    expect((await run(["reactivate_realm", "-r", String(TEST_REALM)])).exitCode).toBe(0);
    await reader.purge("notify_tornado", "deferred_work");
  });

  it("--events=none sends nothing and says so", async () => {
    const r = await run(["deactivate_realm", "-r", String(TEST_REALM), "--deactivation_reason", "owner_request", "--events=none", "--json"], pushConf);
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout).events).toMatchObject({ mode: "none", published: 0, jobs: 0, skipped: true });
    expect(await reader.drain()).toEqual([]);
    expect(await reader.drain("deferred_work")).toEqual([]);
    expect((await run(["reactivate_realm", "-r", String(TEST_REALM), "--events=none"])).exitCode).toBe(0);
    expect((await server.db.query("SELECT deactivated FROM zerver_realm WHERE id = $1", [TEST_REALM]))[0].deactivated).toBe(false);
    expect(await reader.drain("deferred_work")).toEqual([]);
  });

  it("change_realm_subdomain: nothing to the renamed realm's users; the placeholder's stream creates and realm/deactivated to its nobody, and its jobs", async () => {
    const dry = await run(["change_realm_subdomain", "-r", String(TEST_REALM), "moved", "--dry-run", "--json"], pushConf);
    expect(JSON.parse(dry.stdout).events).toBeNull();
    expect(await reader.drain()).toEqual([]);

    const r = await run(["change_realm_subdomain", "-r", String(TEST_REALM), "moved", "--json"], pushConf);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    const placeholder = doc.placeholder.id as number;
    expect(placeholder).not.toBe(TEST_REALM);
    const channels = (await server.db.query("SELECT id, name FROM zerver_stream WHERE realm_id = $1 ORDER BY id", [placeholder])).map((c: any) => ({
      id: Number(c.id),
      name: c.name,
    }));
    expect(channels.map((c) => c.name)).toEqual(["Zulip", "sandbox", "general"]);
    const groups = Object.fromEntries(
      (await server.db.query("SELECT usergroup_ptr_id AS id, name FROM zerver_namedusergroup WHERE realm_id = $1", [placeholder])).map((g: any) => [
        g.name,
        Number(g.id),
      ]),
    );
    const expected = [];
    for (const c of channels) {
      const obj = await expectedChannelObject(server.db, c.id, null);
      // A channel made by do_create_realm: no creator, default group settings, no traffic yet.
      expect(obj).toMatchObject({
        is_archived: false,
        creator_id: null,
        invite_only: false,
        can_send_message_group: groups["role:everyone"],
        can_administer_channel_group: groups["role:nobody"],
        can_remove_subscribers_group: groups["role:administrators"],
        stream_post_policy: 1,
        subscriber_count: 0,
        topics_policy: "inherit",
      });
      const event: Record<string, unknown> = { type: "stream", op: "create", streams: [obj] };
      if (LEVEL[template] >= 378) event.for_unarchiving = false;
      expected.push({ event, users: [] });
    }
    expected.push({ event: { type: "realm", op: "deactivated", realm_id: placeholder }, users: [] });
    expect(await reader.drain()).toEqual(expected);
    expect(await reader.drain("deferred_work")).toEqual([
      { type: "push_bouncer_update_for_realm", realm_id: placeholder },
      { type: "push_bouncer_update_for_realm", realm_id: placeholder },
    ]);
    expect(doc.events).toMatchObject({ transport: "rabbitmq", published: 4, jobs: 2, ok: true, undelivered: [] });

    // --skip-redirect: no placeholder, nothing at all.
    const back = await run(["change_realm_subdomain", "-r", String(TEST_REALM), "moved-again", "--skip-redirect", "--json"], pushConf);
    expect(back.exitCode).toBe(0);
    expect(JSON.parse(back.stdout).events).toMatchObject({ published: 0, jobs: 0, skipped: true });
    expect(await reader.drain()).toEqual([]);
    expect(await reader.drain("deferred_work")).toEqual([]);
  });

  it("create_realm: do_create_realm's stream creates to its nobody, then the owner's group event to the owner; the two jobs", async () => {
    const dry = await run(["create_realm", "Globex", "--string-id", "globex", "boss@globex.example", "Boss", "--dry-run", "--json"], pushConf);
    expect(JSON.parse(dry.stdout).events).toBeNull();
    // A reserved subdomain: refused before anything is written.
    const refused = await run(["create_realm", "Acme", "--string-id", "acme", "boss@acme.example", "Boss"], pushConf);
    expect(refused.exitCode).toBe(1);
    expect(await reader.drain()).toEqual([]);
    expect(await reader.drain("deferred_work")).toEqual([]);

    const r = await run(["create_realm", "Globex", "--string-id", "globex", "boss@globex.example", "Boss", "--json"], pushConf);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    const realmId = doc.realm.id as number;
    const owner = doc.owner.id as number;
    const channels = (await server.db.query("SELECT id FROM zerver_stream WHERE realm_id = $1 ORDER BY id", [realmId])).map((c: any) => Number(c.id));
    expect(channels).toHaveLength(3);
    const [ownersGroup] = await server.db.query("SELECT usergroup_ptr_id AS id FROM zerver_namedusergroup WHERE realm_id = $1 AND name = 'role:owners'", [
      realmId,
    ]);
    const expected = [];
    for (const id of channels) {
      // The channel as it was when created, before the owner was subscribed.
      const event: Record<string, unknown> = {
        type: "stream",
        op: "create",
        streams: [{ ...(await expectedChannelObject(server.db, id, null)), subscriber_count: 0 }],
      };
      if (LEVEL[template] >= 378) event.for_unarchiving = false;
      expected.push({ event, users: [] });
    }
    // do_create_user (create_user.py notify_created_user, format_user_row): the owner's realm_user
    // add to the owner; on 12.x the realm's default avatar source is Jdenticon, whose URL with
    // this configuration's S3 backend (no LOCAL_UPLOADS_DIR) is not reproduced: not sent, said so.
    const [u] = await server.db.query("SELECT * FROM zerver_userprofile WHERE id = $1", [owner]);
    if (u.avatar_source === "G") {
      const md5 = crypto.createHash("md5").update("boss@globex.example").digest("hex");
      const person: Record<string, unknown> = {
        email: u.email,
        user_id: owner,
        avatar_version: 1,
        is_admin: true,
        is_owner: true,
        is_guest: false,
        role: 100,
        is_bot: false,
        full_name: "Boss",
        timezone: "",
        is_active: true,
        date_joined: `${new Date(u.date_joined).toISOString().slice(0, 16)}+00:00`,
        delivery_email: "boss@globex.example",
        avatar_url: `https://secure.gravatar.com/avatar/${md5}?d=identicon&version=1`,
        profile_data: {},
      };
      if (LEVEL[template] >= 433) person.is_imported_stub = false;
      expected.push({ event: { type: "realm_user", op: "add", person }, users: [owner] });
    } else {
      expect(u.avatar_source).toBe("J");
      expect(doc.not_done).toContainEqual(expect.stringMatching(/^not sent: realm_user add events for boss@globex.example .*S3/));
    }
    expected.push({ event: { type: "user_group", op: "add_members", group_id: Number(ownersGroup.id), user_ids: [owner] }, users: [owner] });
    // process_new_human_user's peer_add for the default channels, to the other non-guests: none (published with an empty list, as Zulip does).
    const defaults = (await server.db.query("SELECT stream_id FROM zerver_defaultstream WHERE realm_id = $1 ORDER BY stream_id", [realmId])).map((c: any) =>
      Number(c.stream_id),
    );
    expect(defaults.length).toBeGreaterThan(0);
    expected.push({ event: { type: "subscription", op: "peer_add", stream_ids: defaults, user_ids: [owner] }, users: [] });
    expect(await reader.drain()).toEqual(expected);
    expect(await reader.drain("deferred_work")).toEqual([
      { type: "push_bouncer_update_for_realm", realm_id: realmId },
      { type: "push_bouncer_update_for_realm", realm_id: realmId },
    ]);
    expect(doc.events).toMatchObject({ transport: "rabbitmq", published: expected.length, jobs: 2, ok: true });
  });
});
