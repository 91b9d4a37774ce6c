// The real-time events of add_users_to_streams and remove_users_from_stream through the built
// CLI on the Zulip 12, 11 and 10 fixtures, read back from this file's RabbitMQ vhost, as
// bulk_add_subscriptions / bulk_remove_subscriptions send them (zerver/actions/streams.py):
// private channels (stream create to a new subscriber who could not see the channel, peer events
// to the private peers: subscribers, administrators and bots, non-guest members of the groups
// that may subscribe to it), guests on public channels, the stream delete to a user who can no
// longer see the channel, and an organization that limits whom users see (realm_user add /
// remove). Expectations are built with plain SQL, independent of the code under test.
import crypto from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createChannel } from "../src/zulip/actions/create-channel.js";
import { runCli } from "./helpers/cli.js";
import type { TemplateName, TestDatabase } from "./helpers/pg.js";
import { QueueReader, sortedUsers } from "./helpers/rabbitmq.js";
import { startServerCopy, type ServerCopy } from "./helpers/server-copy.js";
import { expectedChannelObject, expectedSubscriptionObject } from "./helpers/stream-dict.js";
import { addUser, groupIds, TEST_REALM, type TestUser } from "./helpers/users.js";

const FIXTURES: TemplateName[] = ["zulip12_fresh", "zulip11_fresh", "zulip10_fresh"];
const LEVEL: Record<string, number> = { zulip12_fresh: 474, zulip11_fresh: 421, zulip10_fresh: 371 };
/** UserProfile.ROLE_TO_ACCESSIBLE_EMAIL_ADDRESS_VISIBILITY_IDS */
const VISIBLE: Record<number, number[]> = { 100: [1, 2, 3, 5], 200: [1, 2, 3, 5], 300: [1, 2, 5], 400: [1, 2], 600: [1] };

let reader: QueueReader;
beforeAll(async () => {
  reader = await QueueReader.open();
});
afterAll(async () => {
  await reader?.close();
});

async function newChannel(db: TestDatabase, name: string, opts: { inviteOnly?: boolean; webPublic?: boolean; subscribers: number[] }) {
  await db.client.query("BEGIN");
  const c = await createChannel(db.client, TEST_REALM, {
    name,
    inviteOnly: opts.inviteOnly,
    subscribers: opts.subscribers,
    dateCreated: new Date(Date.now() - 86400_000),
  });
  await db.client.query("COMMIT");
  if (opts.webPublic) await db.query("UPDATE zerver_stream SET is_web_public = true WHERE id = $1", [c.id]);
  const [row] = await db.query("SELECT * FROM zerver_stream WHERE id = $1", [c.id]);
  return { id: Number(row.id), recipient_id: Number(row.recipient_id), name: row.name as string };
}

describe.each(FIXTURES)("channel subscription events on %s", (template) => {
  let server: ServerCopy;
  let member: TestUser, member2: TestUser, moderator: TestUser, admin: TestUser, guest: TestUser, guest2: TestUser, bot: TestUser;
  let groups: Record<string, number>;
  const level = LEVEL[template];
  const run = (args: string[]) => runCli(args, { confDir: server.conf, db: server.db });
  const ids = async (sql: string) => (await server.db.query(sql, [TEST_REALM])).map((r: any) => Number(r.id));
  const nonGuests = () => ids("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND role <> 600 ORDER BY id");
  const adminsAndBots = () => ids("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND role IN (100, 200) ORDER BY id");
  const sorted = (xs: Iterable<number>) => [...new Set(xs)].sort((a, b) => a - b);
  const subscribers = async (recipientId: number) =>
    (
      await server.db.query("SELECT user_profile_id AS id FROM zerver_subscription WHERE recipient_id = $1 AND active AND is_user_active ORDER BY 1", [
        recipientId,
      ])
    ).map((r: any) => Number(r.id));
  const createEvent = async (channelId: number, subscriberCount: number) => {
    const obj = await expectedChannelObject(server.db, channelId, null);
    if ("subscriber_count" in obj) obj.subscriber_count = subscriberCount;
    const e: Record<string, unknown> = { type: "stream", op: "create", streams: [obj] };
    if (level >= 378) e.for_unarchiving = false;
    return e;
  };
  const deleteEvent = (channelId: number) => {
    const e: Record<string, unknown> = { type: "stream", op: "delete", streams: [{ stream_id: channelId }], stream_ids: [channelId] };
    if (level >= 378) e.for_archiving = false;
    return e;
  };

  beforeAll(async () => {
    server = await startServerCopy({ template, externalHost: "zulip.example.net" });
    groups = await groupIds(server.db);
    member = await addUser(server.db, { role: 400, name: "member" });
    member2 = await addUser(server.db, { role: 400, name: "membertwo" });
    moderator = await addUser(server.db, { role: 300, name: "moderator" });
    admin = await addUser(server.db, { role: 200, name: "admin" });
    guest = await addUser(server.db, { role: 600, name: "guest" });
    guest2 = await addUser(server.db, { role: 600, name: "guesttwo" });
    bot = await addUser(server.db, { role: 400, bot: true, name: "bot" });
    // Gravatar avatars, so that the realm_user add events' avatar URLs are plain to compute.
    await server.db.query("UPDATE zerver_userprofile SET avatar_source = 'G' WHERE realm_id = $1", [TEST_REALM]);
  });
  afterAll(async () => {
    await server?.stop();
  });
  beforeEach(async () => {
    await reader.purge("notify_tornado", "deferred_work");
  });

  it("private channel: the new subscriber gets the channel's create (not an administrator), then its subscription; the private peers get peer_add", async () => {
    const c = await newChannel(server.db, "private plans", { inviteOnly: true, subscribers: [member2.id, guest2.id] });
    // Moderators may subscribe themselves: they (and the administrators, who are in the group
    // through its subgroups) can see the channel without subscribing. Guests never get that.
    await server.db.query("UPDATE zerver_stream SET can_subscribe_group_id = $2 WHERE id = $1", [c.id, groups["role:moderators"]]);
    const dry = await run(["add_users_to_streams", "-r", String(TEST_REALM), "-u", member.email, "-s", "private plans", "--dry-run", "--json"]);
    expect(JSON.parse(dry.stdout).events).toBeNull();
    expect(await reader.drain()).toEqual([]);

    const r = await run(["add_users_to_streams", "-r", String(TEST_REALM), "-u", `${member.email},${admin.email}`, "-s", "private plans", "--json"]);
    expect({ exit: r.exitCode, stderr: r.stderr }).toEqual({ exit: 0, stderr: "" });
    const before = [member2.id, guest2.id];
    const afterMember = sorted([...before, member.id]);
    const afterAdmin = sorted([...afterMember, admin.id]);
    // Private peers: the subscribers, the administrators (and bots with that role), and the
    // non-guest members of role:moderators (through subgroups: administrators and owners too).
    const privatePeers = async (subs: number[]) => sorted([...subs, ...(await adminsAndBots()), moderator.id]);
    const peerAdd = (u: number) => ({ type: "subscription", op: "peer_add", stream_ids: [c.id], user_ids: [u] });
    const expected = [
      { event: await createEvent(c.id, 2), users: [member.id] },
      {
        event: {
          type: "subscription",
          op: "add",
          subscriptions: [await expectedSubscriptionObject(server.db, c.id, member.id, { countBefore: 2, subscribers: afterMember })],
        },
        users: [member.id],
      },
      { event: peerAdd(member.id), users: (await privatePeers(afterMember)).filter((u) => u !== member.id) },
      // The administrator could see the channel already: no create.
      {
        event: {
          type: "subscription",
          op: "add",
          subscriptions: [await expectedSubscriptionObject(server.db, c.id, admin.id, { countBefore: 3, subscribers: afterAdmin })],
        },
        users: [admin.id],
      },
      { event: peerAdd(admin.id), users: (await privatePeers(afterAdmin)).filter((u) => u !== admin.id) },
    ];
    expect(expected[2].users).toContain(admin.id);
    expect(expected[2].users).not.toContain(guest.id);
    expect(expected[2].users).not.toContain(bot.id);
    expect(sortedUsers(await reader.drain())).toEqual(expected);
    expect(await reader.drain("deferred_work")).toEqual([]);
    expect(JSON.parse(r.stdout).events).toMatchObject({ ok: true, published: expected.length });

    // Removing the member: the subscription remove, the mark-as-read job, the channel's delete
    // (the member cannot see it any more), and peer_remove to the remaining private peers.
    const rm = await run(["remove_users_from_stream", "-r", String(TEST_REALM), "-s", "private plans", "-u", `${member.email},${admin.email}`]);
    expect({ exit: rm.exitCode, stderr: rm.stderr }).toEqual({ exit: 0, stderr: "" });
    const remaining = sorted([...(await subscribers(c.recipient_id)), moderator.id, ...(await adminsAndBots())]).filter(
      (u) => u !== member.id && u !== admin.id,
    );
    expect(sortedUsers(await reader.drain())).toEqual([
      { event: { type: "subscription", op: "remove", subscriptions: [{ name: "private plans", stream_id: c.id }] }, users: [member.id] },
      { event: deleteEvent(c.id), users: [member.id] },
      { event: { type: "subscription", op: "remove", subscriptions: [{ name: "private plans", stream_id: c.id }] }, users: [admin.id] },
      { event: { type: "subscription", op: "peer_remove", stream_ids: [c.id], user_ids: [member.id, admin.id] }, users: remaining },
    ]);
    expect(await reader.drain("deferred_work")).toEqual([
      { type: "mark_stream_messages_as_read", user_profile_id: member.id, stream_recipient_ids: [c.recipient_id] },
      { type: "mark_stream_messages_as_read", user_profile_id: admin.id, stream_recipient_ids: [c.recipient_id] },
    ]);
  });

  it("public channel: a guest gets the channel's create and its subscription; peers are the non-guests and the subscribers; removing the guest deletes the channel for them", async () => {
    const c = await newChannel(server.db, "public square", { subscribers: [member2.id] });
    const r = await run(["add_users_to_streams", "-r", String(TEST_REALM), "-u", guest.email, "-s", "public square"]);
    expect({ exit: r.exitCode, stderr: r.stderr }).toEqual({ exit: 0, stderr: "" });
    const after = sorted([member2.id, guest.id]);
    expect(sortedUsers(await reader.drain())).toEqual([
      { event: await createEvent(c.id, 1), users: [guest.id] },
      {
        event: {
          type: "subscription",
          op: "add",
          subscriptions: [await expectedSubscriptionObject(server.db, c.id, guest.id, { countBefore: 1, subscribers: after })],
        },
        users: [guest.id],
      },
      // A guest subscriber: this channel's own peer_add, to the non-guests and its subscribers.
      { event: { type: "subscription", op: "peer_add", stream_ids: [c.id], user_ids: [guest.id] }, users: await nonGuests() },
    ]);

    const rm = await run(["remove_users_from_stream", "-r", String(TEST_REALM), "-s", "public square", "-u", `${guest.email},${member2.email}`]);
    expect(rm.exitCode).toBe(0);
    // The users in the order the lookup returns them (manage.py's is a set's: no fixed order).
    expect(member2.id).toBeLessThan(guest.id);
    expect(sortedUsers(await reader.drain())).toEqual([
      // A member can still see a public channel: no delete.
      { event: { type: "subscription", op: "remove", subscriptions: [{ name: "public square", stream_id: c.id }] }, users: [member2.id] },
      { event: { type: "subscription", op: "remove", subscriptions: [{ name: "public square", stream_id: c.id }] }, users: [guest.id] },
      { event: deleteEvent(c.id), users: [guest.id] },
      {
        event: { type: "subscription", op: "peer_remove", stream_ids: [c.id], user_ids: [member2.id, guest.id] },
        users: (await nonGuests()).filter((u) => u !== member2.id),
      },
    ]);
  });

  it("web-public channel: a guest gets no create (guests see web-public channels); peers are every active user", async () => {
    const c = await newChannel(server.db, "open air", { webPublic: true, subscribers: [] });
    const r = await run(["add_users_to_streams", "-r", String(TEST_REALM), "-u", guest.email, "-s", "open air"]);
    expect(r.exitCode).toBe(0);
    const everyone = await ids("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active ORDER BY id");
    expect(sortedUsers(await reader.drain())).toEqual([
      {
        event: {
          type: "subscription",
          op: "add",
          subscriptions: [await expectedSubscriptionObject(server.db, c.id, guest.id, { countBefore: 0, subscribers: [guest.id] })],
        },
        users: [guest.id],
      },
      { event: { type: "subscription", op: "peer_add", stream_ids: [c.id], user_ids: [guest.id] }, users: everyone.filter((u) => u !== guest.id) },
    ]);
  });

  it("an organization that limits whom guests see: realm_user add when a subscription makes users visible, realm_user remove when it stops", async () => {
    await server.db.query("UPDATE zerver_realm SET can_access_all_users_group_id = $2 WHERE id = $1", [TEST_REALM, groups["role:members"]]);
    try {
      const c = await newChannel(server.db, "mixed company", { subscribers: [member2.id, guest2.id] });
      const r = await run(["add_users_to_streams", "-r", String(TEST_REALM), "-u", guest.email, "-s", "mixed company", "--json"]);
      expect({ exit: r.exitCode, stderr: r.stderr }).toEqual({ exit: 0, stderr: "" });
      const person = async (id: number, withEmail: boolean) => {
        const [u] = await server.db.query("SELECT * FROM zerver_userprofile WHERE id = $1", [id]);
        return {
          email: u.email,
          user_id: id,
          avatar_version: Number(u.avatar_version),
          is_admin: [100, 200].includes(Number(u.role)),
          is_owner: Number(u.role) === 100,
          is_guest: Number(u.role) === 600,
          role: Number(u.role),
          is_bot: false,
          full_name: u.full_name,
          timezone: u.timezone,
          is_active: true,
          date_joined: `${new Date(u.date_joined).toISOString().slice(0, 16)}+00:00`,
          delivery_email: withEmail ? u.delivery_email : null,
          avatar_url: `https://secure.gravatar.com/avatar/${crypto.createHash("md5").update(u.delivery_email.toLowerCase()).digest("hex")}?d=identicon&version=${u.avatar_version}`,
          profile_data: {},
          ...(level >= 433 ? { is_imported_stub: false } : {}),
        };
      };
      const sees = async (viewer: number, target: number) => {
        const [v] = await server.db.query("SELECT role FROM zerver_userprofile WHERE id = $1", [viewer]);
        const [t] = await server.db.query("SELECT email_address_visibility AS e FROM zerver_userprofile WHERE id = $1", [target]);
        return viewer === target || VISIBLE[Number(v.role)].includes(Number(t.e));
      };
      const add = async (target: number, to: number) => ({
        event: { type: "realm_user", op: "add", person: await person(target, await sees(to, target)) },
        users: [to],
      });
      const after = sorted([member2.id, guest2.id, guest.id]);
      expect(sortedUsers(await reader.drain())).toEqual([
        { event: await createEvent(c.id, 2), users: [guest.id] },
        {
          event: {
            type: "subscription",
            op: "add",
            subscriptions: [await expectedSubscriptionObject(server.db, c.id, guest.id, { countBefore: 2, subscribers: after })],
          },
          users: [guest.id],
        },
        // The other guest subscriber now sees the new subscriber; the new (guest) subscriber sees
        // the channel's subscribers, members included.
        await add(guest.id, guest2.id),
        await add(member2.id, guest.id),
        await add(guest2.id, guest.id),
        { event: { type: "subscription", op: "peer_add", stream_ids: [c.id], user_ids: [guest.id] }, users: sorted([...(await nonGuests()), guest2.id]) },
      ]);

      const rm = await run(["remove_users_from_stream", "-r", String(TEST_REALM), "-s", "mixed company", "-u", guest.email]);
      expect(rm.exitCode).toBe(0);
      const unknown = (id: number) => ({ type: "realm_user", op: "remove", person: { user_id: id, full_name: "Unknown user" } });
      expect(sortedUsers(await reader.drain())).toEqual([
        { event: { type: "subscription", op: "remove", subscriptions: [{ name: "mixed company", stream_id: c.id }] }, users: [guest.id] },
        { event: deleteEvent(c.id), users: [guest.id] },
        { event: { type: "subscription", op: "peer_remove", stream_ids: [c.id], user_ids: [guest.id] }, users: sorted([...(await nonGuests()), guest2.id]) },
        { event: unknown(guest.id), users: [guest2.id] },
        { event: unknown(member2.id), users: [guest.id] },
        { event: unknown(guest2.id), users: [guest.id] },
      ]);
    } finally {
      await server.db.query("UPDATE zerver_realm SET can_access_all_users_group_id = $2 WHERE id = $1", [TEST_REALM, groups["role:everyone"]]);
    }
  });

  it("an organization that limits whom guests see: a bot subscribed to a channel with a guest who could not see it — the guest gets the bot's realm_user add (format_user_row's bot fields)", async () => {
    await server.db.query("UPDATE zerver_realm SET can_access_all_users_group_id = $2 WHERE id = $1", [TEST_REALM, groups["role:members"]]);
    try {
      const c = await newChannel(server.db, "bot company", { subscribers: [member2.id, guest2.id] });
      const r = await run(["add_users_to_streams", "-r", String(TEST_REALM), "-u", bot.email, "-s", "bot company", "--json"]);
      expect({ exit: r.exitCode, stderr: r.stderr }).toEqual({ exit: 0, stderr: "" });
      const [u] = await server.db.query("SELECT * FROM zerver_userprofile WHERE id = $1", [bot.id]);
      expect({ is_bot: u.is_bot, bot_type: Number(u.bot_type), avatar_source: u.avatar_source }).toEqual({ is_bot: true, bot_type: 1, avatar_source: "G" });
      // A guest sees a delivery address only under EMAIL_ADDRESS_VISIBILITY_EVERYONE (1).
      const guestSeesEmail = VISIBLE[600].includes(Number(u.email_address_visibility));
      const person = {
        email: u.email,
        user_id: bot.id,
        avatar_version: Number(u.avatar_version),
        is_admin: false,
        is_owner: false,
        is_guest: false,
        role: 400,
        is_bot: true,
        full_name: u.full_name,
        timezone: u.timezone,
        is_active: true,
        date_joined: `${new Date(u.date_joined).toISOString().slice(0, 16)}+00:00`,
        delivery_email: guestSeesEmail ? u.delivery_email : null,
        avatar_url: `https://secure.gravatar.com/avatar/${crypto.createHash("md5").update(u.delivery_email.toLowerCase()).digest("hex")}?d=identicon&version=${u.avatar_version}`,
        ...(level >= 433 ? { is_imported_stub: false } : {}),
        // No profile_data for a bot; bot_type and bot_owner_id instead (no is_system_bot: not a
        // cross-realm bot).
        bot_type: 1,
        bot_owner_id: Number(u.bot_owner_id),
      };
      const after = sorted([member2.id, guest2.id, bot.id]);
      expect(sortedUsers(await reader.drain())).toEqual([
        {
          event: {
            type: "subscription",
            op: "add",
            subscriptions: [await expectedSubscriptionObject(server.db, c.id, bot.id, { countBefore: 2, subscribers: after })],
          },
          users: [bot.id],
        },
        { event: { type: "realm_user", op: "add", person }, users: [guest2.id] },
        {
          event: { type: "subscription", op: "peer_add", stream_ids: [c.id], user_ids: [bot.id] },
          users: sorted([...(await nonGuests()), guest2.id]).filter((id) => id !== bot.id),
        },
      ]);
      expect(JSON.parse(r.stdout).events).toMatchObject({ ok: true, warning: null });
    } finally {
      await server.db.query("UPDATE zerver_realm SET can_access_all_users_group_id = $2 WHERE id = $1", [TEST_REALM, groups["role:everyone"]]);
    }
  });
});
