// The `message` events of the Notification Bot notices zulip-manage writes, through the built
// CLI, read back from this file's RabbitMQ vhost, as do_send_messages sends them
// (zerver/actions/message_send.py): unarchive_channel's "has been unarchived" notice and
// create_user's signup announcement on Zulip 12 (the releases before write neither message —
// see src/zulip/actions/channels.ts — so no message event goes out there). Every field is
// computed here from the database with plain SQL: the wide message dict, the per-user
// notification sets, presence_idle_user_ids (OFFLINE_THRESHOLD_SECS = 140), the users with
// their flags, and the is_recently_active update that comes first when the channel was idle.
// With linkifiers: the topic_links Zulip computes (topic_links in zerver/lib/markdown), and the
// notices zulip-manage does not write when a linkifier matches their text or is not translated.
import crypto from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createChannel } from "../src/zulip/actions/create-channel.js";
import { runCli } from "./helpers/cli.js";
import type { TemplateName, TestDatabase } from "./helpers/pg.js";
import { QueueReader, sortedUsers } from "./helpers/rabbitmq.js";
import { startServerCopy, type ServerCopy } from "./helpers/server-copy.js";
import { addUser, TEST_REALM, type TestUser } from "./helpers/users.js";

const HOST = "zulip.example.net";
const FLAGS = [
  "read",
  "starred",
  "collapsed",
  "mentioned",
  "stream_wildcard_mentioned",
  "topic_wildcard_mentioned",
  "group_mentioned",
  "force_expand",
  "force_collapse",
  "has_alert_word",
  "historical",
];

let reader: QueueReader;
beforeAll(async () => {
  reader = await QueueReader.open();
});
afterAll(async () => {
  await reader?.close();
});

/** Archive a channel as do_deactivate_stream does (test data); an archived channel is not recently active. */
async function archive(db: TestDatabase, channelId: number): Promise<void> {
  await db.query("UPDATE zerver_stream SET deactivated = true, is_recently_active = false WHERE id = $1", [channelId]);
  await db.query("DELETE FROM zerver_defaultstream WHERE stream_id = $1", [channelId]);
}

async function expectedMessageEvent(db: TestDatabase, messageId: number, opts: { invite_only: boolean; realmId: number }) {
  const [m] = await db.query("SELECT m.*, c.name AS client FROM zerver_message m JOIN zerver_client c ON c.id = m.sending_client_id WHERE m.id = $1", [
    messageId,
  ]);
  const [st] = await db.query("SELECT * FROM zerver_stream WHERE recipient_id = $1", [m.recipient_id]);
  const [bot] = await db.query("SELECT u.*, r.string_id FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id WHERE u.id = $1", [m.sender_id]);
  const subs = await db.query(
    `SELECT u.*, s.push_notifications AS sub_push, s.email_notifications AS sub_email, s.is_muted FROM zerver_subscription s JOIN zerver_userprofile u ON u.id = s.user_profile_id
      WHERE s.recipient_id = $1 AND s.active AND s.is_user_active AND u.is_active ORDER BY u.id`,
    [st.recipient_id],
  );
  // long-term-idle users with no notification settings that could apply are not considered.
  const considered = subs.filter(
    (u: any) =>
      !u.long_term_idle ||
      u.sub_push === true ||
      (u.sub_push === null && u.enable_stream_push_notifications) ||
      u.sub_email === true ||
      (u.sub_email === null && u.enable_stream_email_notifications),
  );
  const ids = (f: (u: any) => boolean) => considered.filter(f).map((u: any) => Number(u.id));
  const push = ids((u) => !u.is_muted && (u.sub_push ?? u.enable_stream_push_notifications));
  const email = ids((u) => !u.is_muted && (u.sub_email ?? u.enable_stream_email_notifications));
  const devices = new Set(
    (await db.query("SELECT user_id FROM zerver_pushdevicetoken UNION SELECT user_id FROM zerver_device WHERE push_token_id IS NOT NULL")).map((r: any) =>
      Number(r.user_id),
    ),
  );
  const muting = (await db.query("SELECT user_profile_id AS id FROM zerver_muteduser WHERE muted_user_id = $1 ORDER BY 1", [m.sender_id])).map((r: any) =>
    Number(r.id),
  );
  const bots = ids((u) => u.is_bot);
  const present = new Set(
    (await db.query("SELECT user_profile_id AS id FROM zerver_userpresence WHERE last_active_time >= now() - interval '140 seconds'")).map((r: any) =>
      Number(r.id),
    ),
  );
  const idle = ids(
    (u) => !u.is_bot && !muting.includes(Number(u.id)) && (email.includes(Number(u.id)) || (devices.has(Number(u.id)) && push.includes(Number(u.id)))),
  ).filter((id) => !present.has(id));
  const ums = await db.query("SELECT user_profile_id AS id, flags FROM zerver_usermessage WHERE message_id = $1 ORDER BY 1", [messageId]);
  const flags = new Map(ums.map((r: any) => [Number(r.id), FLAGS.filter((_, i) => (Number(r.flags) & (1 << i)) !== 0)]));
  const users = [...new Set([...considered.map((u: any) => Number(u.id)), ...flags.keys()])]
    .sort((a, b) => a - b)
    .map((id) => ({ id, flags: flags.get(id) ?? [], mentioned_user_group_id: null }));
  const event: Record<string, unknown> = {
    type: "message",
    message: messageId,
    message_dict: {
      id: messageId,
      sender_id: Number(bot.id),
      content: m.content,
      recipient_type_id: Number(st.id),
      recipient_type: 2,
      recipient_id: Number(st.recipient_id),
      timestamp: Math.floor(new Date(m.date_sent).getTime() / 1000),
      client: "Internal",
      subject: m.subject,
      sender_realm_id: Number(bot.realm_id),
      topic_links: [],
      rendered_content: m.rendered_content,
      is_me_message: false,
      reactions: [],
      submessages: [],
      sender_full_name: "Notification Bot",
      sender_email: "notification-bot@zulip.com",
      sender_delivery_email: "notification-bot@zulip.com",
      sender_realm_str: "zulipinternal",
      sender_avatar_source: bot.avatar_source,
      sender_avatar_version: Number(bot.avatar_version),
      sender_is_mirror_dummy: false,
      sender_email_address_visibility: Number(bot.email_address_visibility),
      display_recipient: st.name,
      type: "stream",
      stream_id: Number(st.id),
    },
    presence_idle_user_ids: idle,
    online_push_user_ids: ids((u) => u.enable_online_push_notifications),
    dm_mention_push_disabled_user_ids: ids((u) => !u.enable_offline_push_notifications),
    dm_mention_email_disabled_user_ids: ids((u) => !u.enable_offline_email_notifications),
    stream_push_user_ids: push,
    stream_email_user_ids: email,
    topic_wildcard_mention_user_ids: [],
    stream_wildcard_mention_user_ids: [],
    followed_topic_push_user_ids: [],
    followed_topic_email_user_ids: [],
    topic_wildcard_mention_in_followed_topic_user_ids: [],
    stream_wildcard_mention_in_followed_topic_user_ids: [],
    muted_sender_user_ids: muting,
    all_bot_user_ids: bots,
    push_device_registered_user_ids: ids((u) => devices.has(Number(u.id))),
    disable_external_notifications: false,
    realm_host: HOST,
  };
  if (opts.invite_only) event.invite_only = true;
  else Object.assign(event, { realm_id: opts.realmId, stream_name: st.name });
  return { event, users };
}

describe("Zulip 12: the message events of the Notification Bot notices", () => {
  let server: ServerCopy;
  let plain: TestUser, pushy: TestUser, emaily: TestUser, idle: TestUser, muter: TestUser, bot: TestUser;
  const run = (args: string[]) => runCli(args, { confDir: server.conf, db: server.db });
  const q = (sql: string, params: unknown[] = []) => server.db.query(sql, params);

  beforeAll(async () => {
    server = await startServerCopy({ template: "zulip12_fresh", externalHost: HOST });
    await q("UPDATE zerver_realm SET send_channel_events_messages = true, default_language = 'en' WHERE id = $1", [TEST_REALM]);
    plain = await addUser(server.db, { role: 400, name: "plain" });
    pushy = await addUser(server.db, { role: 400, name: "pushy" });
    emaily = await addUser(server.db, { role: 400, name: "emaily" });
    idle = await addUser(server.db, { role: 400, name: "idle" });
    muter = await addUser(server.db, { role: 400, name: "muter" });
    bot = await addUser(server.db, { role: 400, bot: true, name: "bot" });
    await q(
      "UPDATE zerver_userprofile SET long_term_idle = true, enable_stream_push_notifications = false, enable_stream_email_notifications = false WHERE id = $1",
      [idle.id],
    );
    await q("UPDATE zerver_userprofile SET enable_offline_push_notifications = false, enable_online_push_notifications = false WHERE id = $1", [plain.id]);
    // A phone with a push token; present right now (so not presence-idle) for the email user.
    await q("INSERT INTO zerver_pushdevicetoken (kind, token, last_updated, ios_app_id, user_id) VALUES (1, 'tok', now(), 'org.zulip.Zulip', $1)", [pushy.id]);
    await q(
      "INSERT INTO zerver_userpresence (last_update_id, last_connected_time, last_active_time, realm_id, user_profile_id) VALUES (1, now(), now(), $1, $2)",
      [TEST_REALM, emaily.id],
    );
    const [nb] = await q("SELECT id FROM zerver_userprofile WHERE delivery_email = 'notification-bot@zulip.com'");
    await q("INSERT INTO zerver_muteduser (date_muted, muted_user_id, user_profile_id) VALUES (now(), $1, $2)", [nb.id, muter.id]);
  });
  afterAll(async () => {
    await server?.stop();
  });
  beforeEach(async () => {
    await reader.purge("notify_tornado", "deferred_work", "embed_links");
  });

  async function channel(name: string, inviteOnly = false) {
    await server.db.client.query("BEGIN");
    const c = await createChannel(server.db.client, TEST_REALM, {
      name,
      inviteOnly,
      subscribers: [plain.id, pushy.id, emaily.id, idle.id, muter.id, bot.id],
      dateCreated: new Date(Date.now() - 86400_000),
    });
    await server.db.client.query("COMMIT");
    const [row] = await q("SELECT * FROM zerver_subscription s JOIN zerver_stream st ON st.recipient_id = s.recipient_id WHERE st.id = $1 LIMIT 1", [c.id]);
    expect(row).toBeDefined();
    await q(
      "UPDATE zerver_subscription SET push_notifications = true WHERE user_profile_id = $1 AND recipient_id = (SELECT recipient_id FROM zerver_stream WHERE id = $2)",
      [pushy.id, c.id],
    );
    await q(
      "UPDATE zerver_subscription SET email_notifications = true WHERE user_profile_id = $1 AND recipient_id = (SELECT recipient_id FROM zerver_stream WHERE id = $2)",
      [emaily.id, c.id],
    );
    return c.id;
  }

  it("unarchive_channel: is_archived update, create, is_recently_active update, then the notice's message event to its subscribers", async () => {
    const id = await channel("town hall");
    await archive(server.db, id);
    const r = await run(["unarchive_channel", "-r", String(TEST_REALM), "-c", "town hall", "--json"]);
    expect({ exit: r.exitCode, stderr: r.stderr }).toEqual({ exit: 0, stderr: "" });
    const doc = JSON.parse(r.stdout);
    expect(doc.notes).toEqual([]);
    const got = sortedUsers(await reader.drain());
    expect(got.map((n) => [n.event.type, n.event.op ?? null, n.event.property ?? null])).toEqual([
      ["stream", "update", "is_archived"],
      ["stream", "create", null],
      ["stream", "update", "is_recently_active"],
      ["message", null, null],
    ]);
    const metadataUsers = got[0].users;
    expect(got[2]).toEqual({
      event: { type: "stream", op: "update", property: "is_recently_active", value: true, stream_id: id, name: "town hall" },
      users: metadataUsers,
    });
    const expected = await expectedMessageEvent(server.db, doc.notice.message_id, { invite_only: false, realmId: TEST_REALM });
    expect(got[3]).toEqual(expected);
    // The idle user without anything to be notified of is not among the recipients; the muter
    // got the message read; the phone owner is presence-idle, the present email user is not.
    expect(got[3].users.map((u: any) => u.id)).not.toContain(idle.id);
    expect(got[3].users.find((u: any) => u.id === muter.id)).toEqual({ id: muter.id, flags: ["read"], mentioned_user_group_id: null });
    expect(expected.event.presence_idle_user_ids).toEqual([pushy.id]);
    expect(expected.event.stream_email_user_ids).toEqual([emaily.id]);
    expect(expected.event.all_bot_user_ids).toEqual([bot.id]);
    expect(await reader.drain("deferred_work")).toEqual([]);
    expect(await reader.drain("embed_links")).toEqual([]);
    expect(doc.events).toMatchObject({ ok: true, published: 4, jobs: 0 });
  });

  it("create_user: the signup announcement's message event after the new user's events (a recently active channel: no is_recently_active update)", async () => {
    const id = await channel("signups here");
    await q("UPDATE zerver_stream SET is_recently_active = true WHERE id = $1", [id]);
    await q("UPDATE zerver_realm SET signup_announcements_stream_id = $2 WHERE id = $1", [TEST_REALM, id]);
    const email = `newbie${crypto.randomInt(1e6)}@test.example`;
    const r = await run(["create_user", "-r", String(TEST_REALM), email, "New Person", "--json"]);
    expect({ exit: r.exitCode, stderr: r.stderr }).toEqual({ exit: 0, stderr: "" });
    const doc = JSON.parse(r.stdout);
    const got = sortedUsers(await reader.drain());
    expect(got.filter((n) => n.event.type === "stream")).toEqual([]);
    const last = got[got.length - 1];
    expect(last.event.type).toBe("message");
    expect(got.filter((n) => n.event.type === "message")).toHaveLength(1);
    expect(last).toEqual(await expectedMessageEvent(server.db, doc.signup_announcement.message_id, { invite_only: false, realmId: TEST_REALM }));
    expect(last.event.message_dict.content).toBe(`@_**New Person|${doc.user.id}** joined this organization.`);
    expect(last.event.message_dict.subject).toBe("signups");
  });

  it("a private channel: invite_only instead of realm_id and stream_name; nothing for a dry run", async () => {
    const id = await channel("back room", true);
    await q("UPDATE zerver_stream SET is_recently_active = true WHERE id = $1", [id]);
    await q("UPDATE zerver_realm SET signup_announcements_stream_id = $2 WHERE id = $1", [TEST_REALM, id]);
    const dry = await run(["create_user", "-r", String(TEST_REALM), `dry${crypto.randomInt(1e6)}@test.example`, "Dry Run", "--dry-run"]);
    expect(dry.exitCode).toBe(0);
    expect(await reader.drain()).toEqual([]);
    const r = await run(["create_user", "-r", String(TEST_REALM), `hidden${crypto.randomInt(1e6)}@test.example`, "Hidden Person", "--json"]);
    expect({ exit: r.exitCode, stderr: r.stderr }).toEqual({ exit: 0, stderr: "" });
    const doc = JSON.parse(r.stdout);
    const got = sortedUsers(await reader.drain());
    const last = got[got.length - 1];
    const expected = await expectedMessageEvent(server.db, doc.signup_announcement.message_id, { invite_only: true, realmId: TEST_REALM });
    expect(last).toEqual(expected);
    expect(last.event.invite_only).toBe(true);
    expect("stream_name" in last.event).toBe(false);
  });

  /** Run `fn` with these linkifiers (pattern, url_template) in the test organization, in this order. */
  async function withLinkifiers(ls: [string, string][], fn: () => Promise<void>): Promise<void> {
    for (const [i, [pattern, template]] of ls.entries())
      await q("INSERT INTO zerver_realmfilter (pattern, url_template, \"order\", realm_id, alternative_url_templates) VALUES ($1, $2, $3, $4, '[]')", [
        pattern,
        template,
        i + 1,
        TEST_REALM,
      ]);
    try {
      await fn();
    } finally {
      await q("DELETE FROM zerver_realmfilter WHERE realm_id = $1", [TEST_REALM]);
    }
  }

  async function unarchive(name: string) {
    const id = await channel(name);
    await archive(server.db, id);
    const r = await run(["unarchive_channel", "-r", String(TEST_REALM), "-c", name, "--json"]);
    expect({ exit: r.exitCode, stderr: r.stderr }).toEqual({ exit: 0, stderr: "" });
    return { id, doc: JSON.parse(r.stdout) };
  }

  async function signup(channelId: number, name: string) {
    await q("UPDATE zerver_realm SET signup_announcements_stream_id = $2 WHERE id = $1", [TEST_REALM, channelId]);
    const r = await run([
      "create_user",
      "-r",
      String(TEST_REALM),
      `${name.replace(/ /g, "").toLowerCase()}${crypto.randomInt(1e6)}@test.example`,
      name,
      "--json",
    ]);
    expect({ exit: r.exitCode, stderr: r.stderr }).toEqual({ exit: 0, stderr: "" });
    return JSON.parse(r.stdout);
  }

  it("linkifiers matching the topic: the message event carries topic_links as Zulip computes them", async () => {
    await withLinkifiers(
      [
        ["#(?P<id>[0-9]+)", "https://tracker.example.com/{id}"],
        ["(?P<word>channel)", "https://example.com/words/{word}{?word}"],
        ["sign(?P<rest>up)s", "https://example.com/{+rest}/é"],
      ],
      async () => {
        const { id, doc } = await unarchive("linky");
        expect(doc.notes).toEqual([]);
        const got = sortedUsers(await reader.drain());
        const message = got.find((n) => n.event.type === "message")!;
        const expected = await expectedMessageEvent(server.db, doc.notice.message_id, { invite_only: false, realmId: TEST_REALM });
        (expected.event.message_dict as any).topic_links = [{ url: "https://example.com/words/channel?word=channel", text: "channel" }];
        expect(message).toEqual(expected);

        const ud = await signup(id, "Link Ed");
        expect(ud.not_done.filter((d: string) => /announcement|message event/.test(d))).toEqual([]);
        const last = (await reader.drain()).filter((n) => n.event.type === "message");
        expect(last).toHaveLength(1);
        expect(last[0]!.event.message_dict.subject).toBe("signups");
        expect(last[0]!.event.message_dict.topic_links).toEqual([{ url: "https://example.com/up/%C3%A9", text: "signups" }]);
      },
    );
  });

  it("linkifiers matching nothing (one case-insensitive): the event is sent with no topic links", async () => {
    const ls: [string, string][] = [
      ["#(?P<id>[0-9]+)", "https://tracker.example.com/{id}"],
      ["(?i)jira-(?P<id>[0-9]+)", "https://jira.example.com/{id}"],
    ];
    await withLinkifiers(ls, async () => {
      const { doc } = await unarchive("unlinked");
      expect(doc.notes).toEqual([]);
      const message = (await reader.drain()).find((n) => n.event.type === "message")!;
      expect(message.event.message_dict.topic_links).toEqual([]);
      expect(sortedUsers([message])[0]).toEqual(await expectedMessageEvent(server.db, doc.notice.message_id, { invite_only: false, realmId: TEST_REALM }));
    });
  });

  it("a matching linkifier whose URL template zulip-manage does not expand: the message is written, its event is not, and the command says so", async () => {
    await withLinkifiers([["(?P<word>channel)", "https://example.com/{word=x}"]], async () => {
      const { doc } = await unarchive("templated");
      expect(doc.notice.message_id).toEqual(expect.any(Number));
      expect(doc.notes).toEqual([
        `not sent: the message event of message ${doc.notice.message_id} (open apps show it after a reload): its topic links are not computed: ` +
          `the linkifier URL template "https://example.com/{word=x}" has the expression {word=x}, which zulip-manage does not expand`,
      ]);
      expect((await reader.drain()).map((n) => n.event.type)).toEqual(["stream", "stream", "stream"]);
    });
  });

  it("a linkifier matching the notice's text: the notice is not written (its link is not rendered), and the command says why", async () => {
    await withLinkifiers([["un(?P<w>archived)", "https://example.com/{w}"]], async () => {
      const { doc } = await unarchive("archived talk");
      expect(doc.notice).toBeNull();
      expect(doc.notes).toEqual([
        `Notification Bot's "Channel #**archived talk** has been unarchived." message was not written: the organization's linkifier "un(?P<w>archived)" matches its text, whose link zulip-manage does not render`,
      ]);
      expect((await reader.drain()).map((n) => n.event.type)).toEqual(["stream", "stream"]);
      const [n] = await q("SELECT count(*)::int AS n FROM zerver_message WHERE content LIKE '%archived talk%'");
      expect(n.n).toBe(0);
    });
    await withLinkifiers([["(?P<w>joined)", "https://example.com/{w}"]], async () => {
      const id = await channel("joiners");
      const ud = await signup(id, "Jo Iner");
      expect(ud.signup_announcement).toBeNull();
      expect(ud.not_done).toContain(
        `Notification Bot's "Jo Iner joined this organization." announcement in #joiners was not written: the organization's linkifier "(?P<w>joined)" matches its text, whose link zulip-manage does not render`,
      );
      expect((await reader.drain()).map((n) => n.event.type)).not.toContain("message");
    });
  });

  it('a case-insensitive linkifier: (?i) matching the notice\'s text ("Channel") keeps it from being written; matching the topic gives topic_links as Zulip computes them', async () => {
    await withLinkifiers([["(?i)(?P<word>CHANNEL)", "https://example.com/{word}"]], async () => {
      const { doc } = await unarchive("caseless");
      expect(doc.notice).toBeNull();
      expect(doc.notes).toEqual([
        `Notification Bot's "Channel #**caseless** has been unarchived." message was not written: the organization's linkifier "(?i)(?P<word>CHANNEL)" matches its text, whose link zulip-manage does not render`,
      ]);
      expect((await reader.drain()).map((n) => n.event.type)).not.toContain("message");
    });
    await withLinkifiers([["(?i)(?P<w>SIGN)UPS", "https://example.com/{w}"]], async () => {
      const id = await channel("caseless signups");
      const ud = await signup(id, "Case Less");
      expect(ud.not_done.filter((d: string) => /announcement|message event/.test(d))).toEqual([]);
      const last = (await reader.drain()).filter((n) => n.event.type === "message");
      expect(last).toHaveLength(1);
      expect(last[0]!.event.message_dict.subject).toBe("signups");
      expect(last[0]!.event.message_dict.topic_links).toEqual([{ url: "https://example.com/sign", text: "signups" }]);
    });
  });

  it("a linkifier whose re2 pattern zulip-manage does not translate: the notice is not written, naming the pattern", async () => {
    await withLinkifiers([["(?x)(?P<w>been)", "https://example.com/{w}"]], async () => {
      const { doc } = await unarchive("unknown flag");
      expect(doc.notice).toBeNull();
      expect(doc.notes).toEqual([
        `Notification Bot's "Channel #**unknown flag** has been unarchived." message was not written: the organization's linkifier "(?x)(?P<w>been)" has an unknown (? construct, which zulip-manage does not translate from re2, so whether it links part of the text is not known`,
      ]);
      expect((await reader.drain()).map((n) => n.event.type)).not.toContain("message");
    });
  });
});

describe.each(["zulip11_fresh", "zulip10_fresh"] as TemplateName[])("%s: no notice, no message event", (template) => {
  let server: ServerCopy;
  beforeAll(async () => {
    server = await startServerCopy({ template, externalHost: HOST });
  });
  afterAll(async () => {
    await server?.stop();
  });
  it("unarchive_channel sends the channel events only", async () => {
    await reader.purge("notify_tornado");
    const u = await addUser(server.db, { role: 400 });
    await server.db.client.query("BEGIN");
    const c = await createChannel(server.db.client, TEST_REALM, { name: "old times", subscribers: [u.id] });
    await server.db.client.query("COMMIT");
    await archive(server.db, c.id);
    const r = await runCli(["unarchive_channel", "-r", String(TEST_REALM), "-c", "old times", "--json"], { confDir: server.conf, db: server.db });
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout).notice).toBeNull();
    expect((await reader.drain()).map((n) => n.event.type)).not.toContain("message");
  });
});
