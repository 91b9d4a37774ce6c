// create_stream, add_users_to_streams and remove_users_from_stream through the built CLI on
// Zulip 12 / 11 / 10 databases: the channel Zulip's create_stream_if_needed makes (defaults,
// recipient, CHANNEL_CREATED), the Subscription rows and SUBSCRIPTION_CREATED / ACTIVATED /
// DEACTIVATED audit rows of bulk_add_subscriptions / bulk_remove_subscriptions (Zulip's
// test_subs.py checks the same rows), subscriber_count (11+), manage.py's output lines, the
// subscription add / remove and peer events and the mark-as-read job (private channels, guests
// and restricted user access: subscription_events.test.ts).
import crypto from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runCli, type CliResult } from "./helpers/cli.js";
import { QueueReader, sortedUsers } from "./helpers/rabbitmq.js";
import { startServerCopy, type ServerCopy } from "./helpers/server-copy.js";
import { changedTables, foreignKeyViolations, snapshot } from "./helpers/snapshot.js";
import { expectedChannelObject, expectedSubscriptionObject } from "./helpers/stream-dict.js";
import { addUser, groupIds, TEST_REALM, type TestUser } from "./helpers/users.js";

describe.each(["zulip12_fresh", "zulip11_fresh", "zulip10_fresh"] as const)("channel membership on %s", (template) => {
  let copy: ServerCopy;
  let reader: QueueReader;
  let u1: TestUser, u2: TestUser, guest: TestUser;
  let groups: Record<string, number>;
  let hasCount: boolean;
  const cli = (cmd: string, args: string[]): Promise<CliResult> => runCli([cmd, "-r", String(TEST_REALM), ...args], { confDir: copy.conf, db: copy.db });
  const maxAudit = async () => Number((await copy.db.query("SELECT coalesce(max(id), 0) AS m FROM zerver_realmauditlog"))[0].m);
  const newAudit = async (after: number) =>
    (
      await copy.db.query(
        "SELECT event_type, acting_user_id, modified_user_id, modified_stream_id, event_last_message_id, extra_data FROM zerver_realmauditlog WHERE id > $1 ORDER BY id",
        [after],
      )
    ).map((r: any) => ({
      ...r,
      event_type: Number(r.event_type),
      modified_user_id: r.modified_user_id && Number(r.modified_user_id),
      modified_stream_id: r.modified_stream_id && Number(r.modified_stream_id),
      event_last_message_id: r.event_last_message_id && Number(r.event_last_message_id),
    }));
  const lastMessage = async () => Number((await copy.db.query("SELECT coalesce(max(id), -1) AS m FROM zerver_message"))[0].m);
  const channel = async (name: string) => (await copy.db.query("SELECT * FROM zerver_stream WHERE realm_id = $1 AND name = $2", [TEST_REALM, name]))[0];
  const subs = async (recipientId: number) =>
    (
      await copy.db.query("SELECT user_profile_id, active, is_user_active, color FROM zerver_subscription WHERE recipient_id = $1 ORDER BY user_profile_id", [
        recipientId,
      ])
    ).map((r: any) => ({ ...r, user_profile_id: Number(r.user_profile_id) }));
  const nonGuests = async () =>
    (await copy.db.query("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND role <> 600 ORDER BY id", [TEST_REALM])).map((r: any) =>
      Number(r.id),
    );

  beforeAll(async () => {
    copy = await startServerCopy({ template, externalHost: "zulip.example.net", client: true });
    reader = await QueueReader.open();
    groups = await groupIds(copy.db);
    u1 = await addUser(copy.db, { role: 400, name: "one" });
    u2 = await addUser(copy.db, { role: 200, name: "two" });
    guest = await addUser(copy.db, { role: 600, name: "guest" });
    hasCount =
      (await copy.db.query("SELECT 1 FROM information_schema.columns WHERE table_name = 'zerver_stream' AND column_name = 'subscriber_count'")).length > 0;
  });
  afterAll(async () => {
    await reader?.close();
    await copy?.stop();
  });
  beforeEach(async () => {
    await reader.purge("notify_tornado", "deferred_work");
  });

  it("create_stream: a public channel with Zulip's defaults, its recipient and CHANNEL_CREATED; nobody subscribed", async () => {
    const before = await snapshot(copy.db);
    const a = await maxAudit();
    // get_stream_cache_key(name, realm_id): deleted by Stream's post_save.
    const key = `:1:${copy.conf.cachePrefix}stream_by_realm_and_name:${TEST_REALM}:${crypto.createHash("sha1").update("release notes").digest("hex")}`;
    await copy.client!.set(key, "cached");
    const r = await cli("create_stream", ["  Release Notes  "]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("Created channel 'Release Notes'.");
    expect(changedTables(before, await snapshot(copy.db))).toEqual(["zerver_realmauditlog", "zerver_recipient", "zerver_stream"]);
    const c = await channel("Release Notes");
    expect(c).toMatchObject({
      invite_only: false,
      history_public_to_subscribers: true,
      is_web_public: false,
      deactivated: false,
      creator_id: null,
      description: "",
      rendered_description: "",
      message_retention_days: null,
    });
    expect(Number(c.can_remove_subscribers_group_id)).toBe(groups["role:administrators"]);
    if ("can_administer_channel_group_id" in c) expect(Number(c.can_administer_channel_group_id)).toBe(groups["role:nobody"]);
    if (hasCount) expect(c.subscriber_count).toBe(0);
    const [rec] = await copy.db.query("SELECT type, type_id FROM zerver_recipient WHERE id = $1", [c.recipient_id]);
    expect({ type: rec.type, type_id: Number(rec.type_id) }).toEqual({ type: 2, type_id: Number(c.id) });
    expect(await newAudit(a)).toEqual([
      { event_type: 601, acting_user_id: null, modified_user_id: null, modified_stream_id: Number(c.id), event_last_message_id: null, extra_data: {} },
    ]);
    expect(await copy.client!.getString(key)).toBeNull();
    // Again (any case): nothing to do.
    const before2 = await snapshot(copy.db, true);
    const again = await cli("create_stream", ["release notes"]);
    expect(again.exitCode).toBe(0);
    expect(again.stdout).toBe("Channel 'Release Notes' already exists; nothing to do.");
    expect(changedTables(before2, await snapshot(copy.db, true))).toEqual([]);
    for (const bad of ["   ", "x".repeat(61)]) {
      const b = await cli("create_stream", [bad]);
      expect(b.exitCode).toBe(1);
    }
    expect(changedTables(before2, await snapshot(copy.db, true))).toEqual([]);
  });

  it("add_users_to_streams: creates a missing channel (shown in the dry run), subscribes, says who was already subscribed", async () => {
    const dryBefore = await snapshot(copy.db, true);
    const dry = await cli("add_users_to_streams", ["-u", `${u1.email},${u2.email}`, "-s", "Design Team, release notes", "--dry-run"]);
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout.split("\n")).toEqual([
      "Would create channel 'Design Team' (public, Zulip's default settings).",
      `Would subscribe ${u1.email} to Design Team`,
      `Would subscribe ${u2.email} to Design Team`,
      `Would subscribe ${u1.email} to release notes`,
      `Would subscribe ${u2.email} to release notes`,
      "(dry run: nothing was changed)",
    ]);
    expect(changedTables(dryBefore, await snapshot(copy.db, true))).toEqual([]);

    const before = await snapshot(copy.db);
    const a = await maxAudit();
    const last = await lastMessage();
    const r = await cli("add_users_to_streams", ["-u", `${u1.email},${u2.email}`, "-s", "Design Team, release notes"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout.split("\n")).toEqual([
      "Created channel 'Design Team' (public, Zulip's default settings).",
      `Subscribed ${u1.email} to Design Team`,
      `Subscribed ${u2.email} to Design Team`,
      `Subscribed ${u1.email} to release notes`,
      `Subscribed ${u2.email} to release notes`,
    ]);
    expect(changedTables(before, await snapshot(copy.db))).toEqual(["zerver_realmauditlog", "zerver_recipient", "zerver_stream", "zerver_subscription"]);
    const design = await channel("Design Team");
    const notes = await channel("Release Notes");
    for (const c of [design, notes]) {
      const s = await subs(c.recipient_id);
      expect(s.map((x: any) => [x.user_profile_id, x.active, x.is_user_active])).toEqual([
        [u1.id, true, true],
        [u2.id, true, true],
      ]);
      for (const x of s) expect(x.color).toMatch(/^#[0-9a-f]{6}$/);
      if (hasCount) expect((await channel(c.name)).subscriber_count).toBe(2);
    }
    const sub = (u: number, c: any) => ({
      event_type: 301,
      acting_user_id: null,
      modified_user_id: u,
      modified_stream_id: Number(c.id),
      event_last_message_id: last,
      extra_data: {},
    });
    expect(await newAudit(a)).toEqual([
      { event_type: 601, acting_user_id: null, modified_user_id: null, modified_stream_id: Number(design.id), event_last_message_id: null, extra_data: {} },
      sub(u1.id, design),
      sub(u2.id, design),
      sub(u1.id, notes),
      sub(u2.id, notes),
    ]);
    // peer_add for each newly subscribed user, to the non-guests and subscribers but them.
    const peers = await nonGuests();
    const peerAdd = (c: any, u: number) => ({
      event: { type: "subscription", op: "peer_add", stream_ids: [Number(c.id)], user_ids: [u] },
      users: peers.filter((p) => p !== u),
    });
    // create_stream_if_needed's stream create for the channel it made, first (to the active
    // non-guests; the channel as created: no subscribers, no traffic; for_unarchiving from FL 378).
    const created = await expectedChannelObject(copy.db, Number(design.id), null);
    if ("subscriber_count" in created) created.subscriber_count = 0;
    const create: Record<string, unknown> = { type: "stream", op: "create", streams: [created] };
    if (template !== "zulip10_fresh") create.for_unarchiving = false;
    // send_subscription_add_events: to each new subscriber, before the peers hear of it (the
    // channel object as read before the call: manage.py's ensure_stream re-reads it per user).
    const add = async (c: any, u: number, countBefore: number, subscribers: number[]) => ({
      event: { type: "subscription", op: "add", subscriptions: [await expectedSubscriptionObject(copy.db, Number(c.id), u, { countBefore, subscribers })] },
      users: [u],
    });
    expect(sortedUsers(await reader.drain())).toEqual([
      { event: create, users: peers },
      await add(design, u1.id, 0, [u1.id]),
      peerAdd(design, u1.id),
      await add(design, u2.id, 1, [u1.id, u2.id]),
      peerAdd(design, u2.id),
      await add(notes, u1.id, 0, [u1.id]),
      peerAdd(notes, u1.id),
      await add(notes, u2.id, 1, [u1.id, u2.id]),
      peerAdd(notes, u2.id),
    ]);
    expect(await foreignKeyViolations(copy.db)).toEqual({});

    const again = await cli("add_users_to_streams", ["-u", u1.email, "-s", "design team", "--json"]);
    expect(again.exitCode).toBe(0);
    const doc = JSON.parse(again.stdout);
    expect(doc.channels).toMatchObject([
      { name: "design team", id: Number(design.id), created: false, archived: false, subscribed_count: 0, already_subscribed_count: 1 },
    ]);
    expect(doc.channels[0].results).toEqual([
      { user: expect.objectContaining({ id: u1.id, delivery_email: u1.email, role: "member", role_id: 400 }), ok: true, status: "unchanged", error: null },
    ]);
    expect(doc.audit_log_ids).toEqual([]);
    const plain = await cli("add_users_to_streams", ["-u", u1.email, "-s", "design team"]);
    expect(plain.stdout).toBe(`Already subscribed ${u1.email} to design team`);
  });

  it("remove_users_from_stream: deactivates, counts, audits, notifies; re-adding reactivates", async () => {
    const design = await channel("Design Team");
    const before = await snapshot(copy.db);
    const a = await maxAudit();
    const last = await lastMessage();
    const r = await cli("remove_users_from_stream", ["-s", " design team ", "-u", `${u1.email},${guest.email}`]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout.split("\n")).toEqual([`Removed ${u1.email} from design team`, `${guest.email} was not subscribed`]);
    expect(changedTables(before, await snapshot(copy.db))).toEqual(
      hasCount ? ["zerver_realmauditlog", "zerver_stream", "zerver_subscription"] : ["zerver_realmauditlog", "zerver_subscription"],
    );
    expect((await subs(design.recipient_id)).map((x: any) => [x.user_profile_id, x.active])).toEqual([
      [u1.id, false],
      [u2.id, true],
    ]);
    if (hasCount) expect((await channel("Design Team")).subscriber_count).toBe(1);
    expect(await newAudit(a)).toEqual([
      { event_type: 303, acting_user_id: null, modified_user_id: u1.id, modified_stream_id: Number(design.id), event_last_message_id: last, extra_data: {} },
    ]);
    expect(sortedUsers(await reader.drain())).toEqual([
      { event: { type: "subscription", op: "remove", subscriptions: [{ name: "Design Team", stream_id: Number(design.id) }] }, users: [u1.id] },
      {
        event: { type: "subscription", op: "peer_remove", stream_ids: [Number(design.id)], user_ids: [u1.id] },
        users: (await nonGuests()).filter((p) => p !== u1.id),
      },
    ]);
    expect(await reader.drain("deferred_work")).toEqual([
      { type: "mark_stream_messages_as_read", user_profile_id: u1.id, stream_recipient_ids: [Number(design.recipient_id)] },
    ]);

    const missing = await cli("remove_users_from_stream", ["-s", "no such channel", "-u", u1.email]);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toBe("Invalid channel name 'no such channel'");

    const a2 = await maxAudit();
    const back = await cli("add_users_to_streams", ["-u", u1.email, "-s", "Design Team"]);
    expect(back.exitCode).toBe(0);
    expect((await newAudit(a2)).map((x: any) => x.event_type)).toEqual([302]);
    expect((await subs(design.recipient_id)).map((x: any) => [x.user_profile_id, x.active])).toEqual([
      [u1.id, true],
      [u2.id, true],
    ]);
    if (hasCount) expect((await channel("Design Team")).subscriber_count).toBe(2);
  });

  it("refuses a name Zulip cannot store before writing anything", async () => {
    const before = await snapshot(copy.db, true);
    const r = await cli("add_users_to_streams", ["-u", u1.email, "-s", `Design Team,${"y".repeat(61)}`]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("Channel name too long");
    expect(changedTables(before, await snapshot(copy.db, true))).toEqual([]);
  });
});
