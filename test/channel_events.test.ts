// The real-time events of unarchive_channel through the built CLI, on the Zulip 12, 11 and 10
// fixtures, read back from this file's vhost of the run's real RabbitMQ: do_unarchive_stream's
// `stream` `update` is_archived=false and `stream` `create` (for_unarchiving from FL 378) with
// every field of the channel object (group settings, weekly traffic from analytics), to
// can_access_stream_metadata_user_ids of a public and of a private channel; nothing for a dry
// run or a refusal.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createChannel } from "../src/zulip/actions/create-channel.js";
import { runCli } from "./helpers/cli.js";
import type { TemplateName, TestDatabase } from "./helpers/pg.js";
import { QueueReader, sortedUsers } from "./helpers/rabbitmq.js";
import { startServerCopy, type ServerCopy } from "./helpers/server-copy.js";
import { expectedChannelObject } from "./helpers/stream-dict.js";
import { addUser, TEST_REALM } from "./helpers/users.js";

const HOST = "zulip.example.net";
const FIXTURES: TemplateName[] = ["zulip12_fresh", "zulip11_fresh", "zulip10_fresh"];
const LEVEL: Record<string, number> = { zulip12_fresh: 474, zulip11_fresh: 421, zulip10_fresh: 371 };
const DAY = 86400_000;

let reader: QueueReader;
beforeAll(async () => {
  reader = await QueueReader.open();
});
afterAll(async () => {
  await reader?.close();
});

async function newChannel(db: TestDatabase, name: string, opts: { inviteOnly?: boolean; subscribers: number[]; creatorId?: number; daysOld: number }) {
  await db.client.query("BEGIN");
  const c = await createChannel(db.client, TEST_REALM, {
    name,
    inviteOnly: opts.inviteOnly,
    subscribers: opts.subscribers,
    ...(opts.creatorId ? { creatorId: opts.creatorId } : {}),
    dateCreated: new Date(Date.now() - opts.daysOld * DAY),
  });
  await db.client.query("COMMIT");
  return c;
}

/** Archive a channel as do_deactivate_stream does (test data). */
async function archive(db: TestDatabase, channelId: number): Promise<void> {
  await db.query("UPDATE zerver_stream SET deactivated = true, is_recently_active = false WHERE id = $1", [channelId]);
  await db.query("DELETE FROM zerver_defaultstream WHERE stream_id = $1", [channelId]);
}

describe.each(FIXTURES)("unarchive_channel events on %s", (template) => {
  let server: ServerCopy;
  const run = (args: string[]) => runCli(args, { confDir: server.conf, db: server.db });
  let member: number;
  let moderator: number;
  let guestIn: number;
  let guestOut: number;
  let bot: number;
  let gone: number;

  beforeAll(async () => {
    server = await startServerCopy({ template, externalHost: HOST });
    member = (await addUser(server.db, { role: 400 })).id;
    moderator = (await addUser(server.db, { role: 300 })).id;
    guestIn = (await addUser(server.db, { role: 600 })).id;
    guestOut = (await addUser(server.db, { role: 600 })).id;
    bot = (await addUser(server.db, { role: 400, bot: true })).id;
    gone = (await addUser(server.db, { role: 400, active: false })).id;
  });
  afterAll(async () => {
    await server?.stop();
  });
  beforeEach(async () => {
    await reader.purge("notify_tornado", "deferred_work");
  });

  const activeNonGuests = async () =>
    (await server.db.query("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND role <> 600 ORDER BY id", [TEST_REALM])).map((r: any) =>
      Number(r.id),
    );

  it("public channel: is_archived update and the create (with its weekly traffic) to the non-guests and its guest subscribers", async () => {
    const c = await newChannel(server.db, "design", { subscribers: [8, guestIn, gone], creatorId: 8, daysOld: 40 });
    // 1234 messages in the last 28 days (and older ones that do not count): 1234 // 4 = 308 -> 310.
    for (const [days, value] of [
      [3, 1000],
      [20, 234],
      [35, 5000],
    ]) {
      await server.db.query(
        "INSERT INTO analytics_streamcount (realm_id, stream_id, property, end_time, value, subgroup) VALUES ($1, $2, 'messages_in_stream:is_bot:day', $3, $4, 'false')",
        [TEST_REALM, c.id, new Date(Date.now() - days * DAY), value],
      );
    }
    await archive(server.db, c.id);

    const dry = await run(["unarchive_channel", "-r", String(TEST_REALM), "-c", "design", "--dry-run", "--json"]);
    expect(JSON.parse(dry.stdout).events).toBeNull();
    const refused = await run(["unarchive_channel", "-r", String(TEST_REALM), "-c", "no-such-channel"]);
    expect(refused.exitCode).toBe(1);
    expect(await reader.drain()).toEqual([]);

    const r = await run(["unarchive_channel", "-r", String(TEST_REALM), "-c", "design", "-n", "design2", "--json"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const users = [...(await activeNonGuests()), guestIn].sort((a, b) => a - b);
    expect(users).toContain(bot);
    expect(users).not.toContain(guestOut);
    expect(users).not.toContain(gone);
    const obj = await expectedChannelObject(server.db, c.id, 310);
    // The channel creator's anonymous group, the new name, no longer archived.
    expect(obj).toMatchObject({
      name: "design2",
      is_archived: false,
      can_administer_channel_group: { direct_members: [8], direct_subgroups: [] },
      creator_id: 8,
    });
    const create: Record<string, unknown> = { type: "stream", op: "create", streams: [obj] };
    const expected = [];
    if (LEVEL[template] >= 378) {
      create.for_unarchiving = true;
      expected.push({ event: { type: "stream", op: "update", stream_id: c.id, name: "design2", property: "is_archived", value: false }, users });
    }
    expected.push({ event: create, users });
    expect(sortedUsers(await reader.drain())).toEqual(expected);
    expect(await reader.drain("deferred_work")).toEqual([]);
    expect(JSON.parse(r.stdout).events).toMatchObject({ transport: "rabbitmq", published: expected.length, jobs: 0, ok: true });
  });

  it("private channel: to its subscribers, the admins and bots, and the groups that may subscribe to it; young channel: no traffic", async () => {
    const c = await newChannel(server.db, "secret", { inviteOnly: true, subscribers: [member, guestIn], daysOld: 2 });
    const [mods] = await server.db.query("SELECT usergroup_ptr_id AS id FROM zerver_namedusergroup WHERE realm_id = $1 AND name = 'role:moderators'", [
      TEST_REALM,
    ]);
    await server.db.query("UPDATE zerver_stream SET can_subscribe_group_id = $2 WHERE id = $1", [c.id, mods.id]);
    await archive(server.db, c.id);
    const r = await run(["unarchive_channel", "-r", String(TEST_REALM), "-c", "secret", "--json"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const admins = (
      await server.db.query("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND role IN (100, 200) ORDER BY id", [TEST_REALM])
    ).map((x: any) => Number(x.id));
    // role:moderators holds role:administrators (which holds role:owners) as a subgroup.
    const users = [...new Set([member, guestIn, moderator, ...admins])].sort((a, b) => a - b);
    expect(users).not.toContain(bot);
    const obj = await expectedChannelObject(server.db, c.id, null);
    expect(obj).toMatchObject({
      invite_only: true,
      can_subscribe_group: Number(mods.id),
      stream_weekly_traffic: null,
      can_administer_channel_group: expect.any(Number),
    });
    const create: Record<string, unknown> = { type: "stream", op: "create", streams: [obj] };
    const expected = [];
    if (LEVEL[template] >= 378) {
      create.for_unarchiving = true;
      expected.push({ event: { type: "stream", op: "update", stream_id: c.id, name: "secret", property: "is_archived", value: false }, users });
    }
    expected.push({ event: create, users });
    expect(sortedUsers(await reader.drain())).toEqual(expected);
  });

  it("create_stream: the new public channel's create (no traffic; for_unarchiving false from FL 378) to the active non-guests; nothing when it exists or in a dry run", async () => {
    const dry = await run(["create_stream", "-r", String(TEST_REALM), "brand-new", "--dry-run", "--json"]);
    expect(dry.exitCode).toBe(0);
    const r = await run(["create_stream", "-r", String(TEST_REALM), "brand-new", "--json"]);
    expect({ exit: r.exitCode, stderr: r.stderr }).toEqual({ exit: 0, stderr: "" });
    const id = JSON.parse(r.stdout).channel.id as number;
    const create: Record<string, unknown> = { type: "stream", op: "create", streams: [await expectedChannelObject(server.db, id, null)] };
    if (LEVEL[template] >= 378) create.for_unarchiving = false;
    const users = await activeNonGuests();
    expect(users).toContain(member);
    expect(users).not.toContain(guestIn);
    expect(sortedUsers(await reader.drain())).toEqual([{ event: create, users }]);
    expect(JSON.parse(r.stdout).events).toMatchObject({ ok: true, published: 1 });
    const again = await run(["create_stream", "-r", String(TEST_REALM), "brand-new", "--json"]);
    expect(again.exitCode).toBe(0);
    expect(await reader.drain()).toEqual([]);
  });
});

describe("get_average_weekly_stream_traffic", () => {
  it("rounds to 2 significant digits as Python's round(n, 2 - len(str(n))) does, halves to even", async () => {
    const { averageWeeklyTraffic } = await import("../src/zulip/events/channel-events.js");
    const now = new Date("2026-06-30T12:00:00Z");
    const old = new Date("2026-05-01T12:00:00Z"); // >= 28 days: traffic // 4
    expect([0, 28, 396, 1232, 100, 140, 600, 1000, 4936, 5000, 5400].map((t) => averageWeeklyTraffic(t, old, now))).toEqual([
      0, 7, 99, 310, 25, 35, 150, 250, 1200, 1200, 1400,
    ]);
    expect([500, 540, 3980, 1].map((t) => averageWeeklyTraffic(t, old, now))).toEqual([120, 140, 1000, 1]);
    expect(averageWeeklyTraffic(70, new Date("2026-06-16T12:00:00Z"), now)).toBe(35); // 14 days: 70 * 7 // 14
    expect(averageWeeklyTraffic(70, new Date("2026-06-25T12:00:00Z"), now)).toBeNull(); // younger than 7 days
  });
});
