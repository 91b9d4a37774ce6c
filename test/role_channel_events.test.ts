// change_user_role's channel events when the role:fullmembers membership changes, on the Zulip
// 12, 11 and 10 fixtures through the built CLI (read back from this file's RabbitMQ vhost):
// update_users_in_full_members_system_group's bulk_add_members_to_user_groups follows its
// user_group event with, per channel whose metadata-granting settings name role:fullmembers (or
// a group containing it), a stream create + peer_add to the users who gain metadata access
// (zerver/actions/user_groups.py); then send_stream_events_for_role_update compares the
// channels visible before the role change with those visible after (zerver/actions/users.py) —
// so a guest made member hears of such a channel twice, as from Zulip. Where nobody gains or
// loses access, Zulip still publishes those events with no recipients (`users: []` on a
// single-port server; nothing on a sharded one).
import fs from "node:fs";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createChannel } from "../src/zulip/actions/create-channel.js";
import { runCli } from "./helpers/cli.js";
import { makeConfDir } from "./helpers/confdir.js";
import type { TemplateName, TestDatabase } from "./helpers/pg.js";
import { QueueReader, sortedUsers } from "./helpers/rabbitmq.js";
import { startServerCopy, type ServerCopy } from "./helpers/server-copy.js";
import { expectedChannelObject } from "./helpers/stream-dict.js";
import { addUser, groupIds, TEST_REALM, type TestUser } from "./helpers/users.js";

const FIXTURES: TemplateName[] = ["zulip12_fresh", "zulip11_fresh", "zulip10_fresh"];
const LEVEL: Record<string, number> = { zulip12_fresh: 474, zulip11_fresh: 421, zulip10_fresh: 371 };
const R = String(TEST_REALM);

let reader: QueueReader;
beforeAll(async () => {
  reader = await QueueReader.open();
});
afterAll(async () => {
  await reader?.close();
});

describe.each(FIXTURES)("change_user_role channel events on %s", (template) => {
  let server: ServerCopy;
  let groups: Record<string, number>;
  let subscriber: TestUser;
  let plans: { id: number; recipient_id: number };
  const level = LEVEL[template];
  const q = (sql: string, params: unknown[] = []) => server.db.query(sql, params);
  const ids = async (sql: string, params: unknown[] = []) => (await q(sql, params)).map((r: any) => Number(r.id));
  const active = () => ids("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active ORDER BY id", [TEST_REALM]);
  const subscribers = (channelId: number) =>
    ids(
      "SELECT s.user_profile_id AS id FROM zerver_subscription s JOIN zerver_stream st ON st.recipient_id = s.recipient_id WHERE st.id = $1 AND s.active AND s.is_user_active ORDER BY 1",
      [channelId],
    );
  /** The channel object with its weekly traffic (analytics of the last 28 days; null under 7 days old). */
  const channelObject = async (db: TestDatabase, id: number) => {
    const [st] = await db.query("SELECT date_created FROM zerver_stream WHERE id = $1", [id]);
    const days = Math.floor((Date.now() - new Date(st.date_created).getTime()) / 86400_000);
    const [t] = await db.query(
      "SELECT coalesce(sum(value), 0)::int AS v FROM analytics_streamcount WHERE stream_id = $1 AND property = 'messages_in_stream:is_bot:day' AND end_time > now() - interval '28 days'",
      [id],
    );
    // The fixtures' channels are older than 28 days with few messages: a quarter, no rounding needed.
    expect(t.v).toBeLessThan(400);
    return expectedChannelObject(db, id, days < 7 ? null : Math.floor(t.v / 4) || (t.v > 0 ? 1 : 0));
  };
  const run = async (args: string[]) => {
    const r = await runCli(args, { confDir: server.conf, db: server.db });
    expect({ exit: r.exitCode, stderr: r.stderr }).toEqual({ exit: 0, stderr: "" });
  };

  beforeAll(async () => {
    server = await startServerCopy({ template, externalHost: "zulip.example.net" });
    groups = await groupIds(server.db);
    subscriber = await addUser(server.db, { role: 400 });
    await server.db.client.query("BEGIN");
    const c = await createChannel(server.db.client, TEST_REALM, {
      name: "full members only",
      inviteOnly: true,
      subscribers: [subscriber.id],
      dateCreated: new Date(Date.now() - 86400_000),
    });
    await server.db.client.query("COMMIT");
    await q("UPDATE zerver_stream SET can_subscribe_group_id = $2 WHERE id = $1", [c.id, groups["role:fullmembers"]]);
    const [row] = await q("SELECT id, recipient_id FROM zerver_stream WHERE id = $1", [c.id]);
    plans = { id: Number(row.id), recipient_id: Number(row.recipient_id) };
  });
  afterAll(async () => {
    await server?.stop();
  });
  beforeEach(async () => {
    await reader.purge("notify_tornado", "deferred_work");
  });

  const groupEvent = async (op: string, group: string, user: number) => ({
    event: { type: "user_group", op, group_id: groups[group], user_ids: [user] },
    users: await active(),
  });
  const fullMembersCreate = async () => {
    const e: Record<string, unknown> = { type: "stream", op: "create", streams: [await channelObject(server.db, plans.id)] };
    if (level >= 378) e.for_unarchiving = false;
    return e;
  };

  it("moderator -> member: the channel granted to role:fullmembers (which the moderator saw through role:moderators) is announced by the full-members change; nothing by the role change", async () => {
    const u = await addUser(server.db, { role: 300 });
    await run(["change_user_role", "-r", R, u.email, "member"]);
    expect(sortedUsers(await reader.drain())).toEqual([
      { event: { type: "realm_user", op: "update", person: { user_id: u.id, role: 400 } }, users: await active() },
      await groupEvent("remove_members", "role:moderators", u.id),
      await groupEvent("add_members", "role:members", u.id),
      await groupEvent("add_members", "role:fullmembers", u.id),
      { event: await fullMembersCreate(), users: [u.id] },
      { event: { type: "subscription", op: "peer_add", stream_ids: [plans.id], user_ids: await subscribers(plans.id) }, users: [u.id] },
    ]);
  });

  it("guest -> member: the full-members create and peer_add, then the role change's create of every channel now visible and their peer_adds (private first)", async () => {
    const u = await addUser(server.db, { role: 600 });
    await run(["change_user_role", "-r", R, u.email, "member"]);
    const visible = await ids("SELECT id FROM zerver_stream WHERE realm_id = $1 AND NOT deactivated AND (NOT invite_only OR id = $2) ORDER BY id", [
      TEST_REALM,
      plans.id,
    ]);
    expect(visible).toContain(plans.id);
    const publicIds = visible.filter((id) => id !== plans.id);
    const peerAdd = async (id: number) => ({
      event: { type: "subscription", op: "peer_add", stream_ids: [id], user_ids: await subscribers(id) },
      users: [u.id],
    });
    const objects = [];
    for (const id of visible) objects.push(await channelObject(server.db, id));
    expect(sortedUsers(await reader.drain())).toEqual([
      { event: { type: "realm_user", op: "update", person: { user_id: u.id, role: 400 } }, users: await active() },
      await groupEvent("remove_members", "role:everyone", u.id),
      await groupEvent("add_members", "role:members", u.id),
      await groupEvent("add_members", "role:fullmembers", u.id),
      { event: await fullMembersCreate(), users: [u.id] },
      await peerAdd(plans.id),
      { event: { type: "stream", op: "create", streams: objects }, users: [u.id] },
      await peerAdd(plans.id),
      ...(await Promise.all(publicIds.map(peerAdd))),
    ]);
  });

  it("guest subscribed to the channel -> member: the full-members create and peer_add go out with no recipients (the guest already saw it), then the role change's create of the public channels", async () => {
    const u = await addUser(server.db, { role: 600 });
    await run(["add_users_to_streams", "-r", R, "-u", u.email, "-s", "full members only"]);
    await reader.purge("notify_tornado", "deferred_work");
    await run(["change_user_role", "-r", R, u.email, "member"]);
    const publicIds = await ids("SELECT id FROM zerver_stream WHERE realm_id = $1 AND NOT deactivated AND NOT invite_only ORDER BY id", [TEST_REALM]);
    const peerAdd = async (id: number, users: number[]) => ({
      event: { type: "subscription", op: "peer_add", stream_ids: [id], user_ids: await subscribers(id) },
      users,
    });
    const objects = [];
    for (const id of publicIds) objects.push(await channelObject(server.db, id));
    expect(sortedUsers(await reader.drain())).toEqual([
      { event: { type: "realm_user", op: "update", person: { user_id: u.id, role: 400 } }, users: await active() },
      await groupEvent("remove_members", "role:everyone", u.id),
      await groupEvent("add_members", "role:members", u.id),
      await groupEvent("add_members", "role:fullmembers", u.id),
      { event: await fullMembersCreate(), users: [] },
      await peerAdd(plans.id, []),
      { event: { type: "stream", op: "create", streams: objects }, users: [u.id] },
      ...(await Promise.all(publicIds.map((id) => peerAdd(id, [u.id])))),
    ]);
  });

  const deletion = (channelIds: number[]) => {
    const del: Record<string, unknown> = { type: "stream", op: "delete", streams: channelIds.map((id) => ({ stream_id: id })), stream_ids: channelIds };
    if (level >= 378) del.for_archiving = false;
    return del;
  };
  /** member -> guest for a new member: Zulip's events, in order, with their recipients. */
  const memberToGuest = async (u: TestUser) => {
    const lost = await ids("SELECT id FROM zerver_stream WHERE realm_id = $1 AND NOT deactivated AND (NOT invite_only OR id = $2) ORDER BY id", [
      TEST_REALM,
      plans.id,
    ]);
    return [
      { event: { type: "realm_user", op: "update", person: { user_id: u.id, role: 600 } }, users: await active() },
      await groupEvent("remove_members", "role:members", u.id),
      await groupEvent("add_members", "role:everyone", u.id),
      await groupEvent("remove_members", "role:fullmembers", u.id),
      // bulk_remove_members_from_user_groups: send_stream_deletion_event for every channel granted
      // through role:fullmembers, to the users losing metadata access — none here (a guest never
      // had it through a group): published with an empty list on a single-port server.
      { event: deletion([plans.id]), users: [] },
      { event: deletion(lost), users: [u.id] },
    ];
  };

  it("member -> guest: the full-members removal's delete with no recipients, then the role change's delete", async () => {
    const u = await addUser(server.db, { role: 400 });
    await run(["change_user_role", "-r", R, u.email, "guest"]);
    expect(sortedUsers(await reader.drain())).toEqual(await memberToGuest(u));
  });

  it("member -> guest on a sharded Tornado: the event without recipients goes to no port, and no warning", async () => {
    const HOST = "zulip.example.net";
    const c = makeConfDir({
      db: { name: server.db.name },
      memcached: { location: server.mc.location, password: server.mc.password },
      externalHost: HOST,
      zulipConf: `[machine]\ndeploy_type = production\n\n[tornado_sharding]\n9801_9802 = zulip\n`,
    });
    fs.writeFileSync(`${c.dir}/sharding.json`, JSON.stringify({ shard_map: { [HOST]: [9801, 9802] }, shard_regexes: [] }));
    try {
      await reader.purge("notify_tornado_port_9801", "notify_tornado_port_9802");
      const u = await addUser(server.db, { role: 400 });
      const r = await runCli(["change_user_role", "-r", R, u.email, "guest", "--json"], { confDir: c, db: server.db });
      expect({ exit: r.exitCode, stderr: r.stderr }).toEqual({ exit: 0, stderr: "" });
      const expected = await memberToGuest(u);
      expect(JSON.parse(r.stdout).events).toMatchObject({ ok: true, published: expected.length - 1, undelivered: [], warning: null });
      for (const [port, rest] of [
        [9801, 0],
        [9802, 1],
      ] as const) {
        const mine = expected.map((e) => ({ event: e.event, users: e.users.filter((id) => id % 2 === rest) })).filter((e) => e.users.length > 0);
        expect(sortedUsers(await reader.drain(`notify_tornado_port_${port}`))).toEqual(mine);
      }
      expect(await reader.drain()).toEqual([]);
    } finally {
      c.cleanup();
    }
  });
});
