// The real-time events of change_user_role, deactivate_user and reactivate_user on Zulip 12, 11
// and 10 databases, read from the test's RabbitMQ vhost: every event, in order, with its
// recipients computed here with plain SQL (independent of src/). What differs by release
// (zulip/zulip: send_events_for_user_deactivation, do_reactivate_user, do_deactivate_user):
// peer_remove on deactivation from feature level 377 (11.0), archived channels in it from 428,
// realm_bot updates until 474 (12.0 drops them); delete_user's own events from 12.0.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.js";
import { QueueReader, sortedUsers } from "./helpers/rabbitmq.js";
import { startServerCopy, type ServerCopy } from "./helpers/server-copy.js";
import type { TemplateName } from "./helpers/pg.js";
import { addUser, copyRow, groupIds, TEST_REALM } from "./helpers/users.js";

const R = String(TEST_REALM);

for (const [template, release] of [
  ["zulip12_fresh", 12],
  ["zulip11_fresh", 11],
  ["zulip10_fresh", 10],
] as [TemplateName, number][]) {
  describe(`Zulip ${release}`, () => {
    let server: ServerCopy;
    let reader: QueueReader;
    let groups: Record<string, number>;

    const q = (sql: string, params: unknown[] = []) => server.db.query(sql, params);
    const ids = async (sql: string, params: unknown[] = []) => (await q(sql, params)).map((r: any) => Number(r.id));
    const active = () => ids("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active ORDER BY id", [TEST_REALM]);
    const nonGuests = () => ids("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND role <> 600 ORDER BY id", [TEST_REALM]);
    const humanAdmins = () =>
      ids("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND NOT is_bot AND role IN (100, 200) ORDER BY id", [TEST_REALM]);
    const cli = (args: string[]) => runCli(args, { confDir: server.conf, db: server.db });
    /** Run the CLI and expect success (showing its stderr when not). */
    const ok = async (args: string[]) => {
      const r = await cli(args);
      expect({ exit: r.exitCode, stderr: r.stderr }).toEqual({ exit: 0, stderr: "" });
      return r;
    };

    /** An active subscription of the user to a channel (copied from an existing one). */
    async function subscribe(userId: number, channelId: number, userActive = true): Promise<void> {
      const [src] = await q(
        "SELECT s.id FROM zerver_subscription s JOIN zerver_stream st ON st.recipient_id = s.recipient_id WHERE st.id = $1 ORDER BY s.id LIMIT 1",
        [channelId],
      );
      await copyRow(
        server.db,
        "zerver_subscription",
        Number(src.id),
        { user_profile_id: "$1", active: "true", is_user_active: userActive ? "true" : "false" },
        [userId],
      );
      const hasCount = (await q("SELECT 1 FROM information_schema.columns WHERE table_name = 'zerver_stream' AND column_name = 'subscriber_count'")).length > 0;
      if (hasCount && userActive) await q("UPDATE zerver_stream SET subscriber_count = subscriber_count + 1 WHERE id = $1", [channelId]);
    }

    beforeAll(async () => {
      server = await startServerCopy({ template, externalHost: "zulip.example.net" });
      reader = await QueueReader.open();
      groups = await groupIds(server.db);
    });
    afterAll(async () => {
      await reader?.close();
      await server?.stop();
    });
    beforeEach(async () => {
      await reader.purge("notify_tornado", "deferred_work");
    });

    it("deactivate_user: peer_remove (11+), the is_active update to everyone", async () => {
      const u = await addUser(server.db, { role: 400 });
      await subscribe(u.id, 1);
      await subscribe(u.id, 3);
      const r = await cli(["deactivate_user", "-r", R, u.email, "-f", "--json"]);
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toBe("");
      const expected = [];
      if (release >= 11) {
        expected.push({ event: { type: "subscription", op: "peer_remove", stream_ids: [1, 3], user_ids: [u.id] }, users: await nonGuests() });
      }
      expected.push({ event: { type: "realm_user", op: "update", person: { user_id: u.id, is_active: false } }, users: await active() });
      expect(sortedUsers(await reader.drain())).toEqual(expected);
      expect(JSON.parse(r.stdout).events).toMatchObject({ transport: "rabbitmq", published: expected.length, ok: true });
    });

    it("delete_user -f: the events of the deactivation it starts with; from 12.0 the unsubscription's peer_remove", async () => {
      const u = await addUser(server.db, { role: 400 });
      await subscribe(u.id, 3);
      const r = await ok(["delete_user", "-r", R, "-u", u.email, "-f", "--json"]);
      const expected = [];
      const peerRemove = { event: { type: "subscription", op: "peer_remove", stream_ids: [3], user_ids: [u.id] }, users: await nonGuests() };
      if (release >= 11) expected.push(peerRemove);
      expected.push({ event: { type: "realm_user", op: "update", person: { user_id: u.id, is_active: false } }, users: await active() });
      // do_delete_user_core's bulk_remove_subscriptions(skip_events_for_removed_user=True) (test/delete_user.test.ts has more).
      if (release >= 12) expected.push(peerRemove);
      expect(sortedUsers(await reader.drain())).toEqual(expected);
      expect(JSON.parse(r.stdout).events).toMatchObject({ ok: true, published: expected.length });
    });

    it("change_user_email: delivery_email to those who may see it; new_email to everyone when visible to everyone", async () => {
      const allowed: Record<number, number[]> = { 1: [100, 200, 300, 400, 600], 3: [100, 200] };
      for (const visibility of [3, 1]) {
        const u = await addUser(server.db, { role: 400 });
        await q("UPDATE zerver_userprofile SET email_address_visibility = $2, avatar_source = 'U' WHERE id = $1", [u.id, visibility]);
        const newEmail = `changed-${u.id}@test.example`;
        const r = await ok(["change_user_email", "-r", R, u.email, newEmail, "--json"]);
        const viewers = await ids("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND (id = $2 OR role = ANY ($3::int[])) ORDER BY id", [
          TEST_REALM,
          u.id,
          allowed[visibility],
        ]);
        const expected: any[] = [{ event: { type: "realm_user", op: "update", person: { user_id: u.id, delivery_email: newEmail } }, users: viewers }];
        if (visibility === 1)
          expected.push({ event: { type: "realm_user", op: "update", person: { user_id: u.id, new_email: newEmail } }, users: await active() });
        expect(sortedUsers(await reader.drain())).toEqual(expected);
        expect(JSON.parse(r.stdout).events).toMatchObject({ ok: true, published: expected.length });
      }
    });

    it("change_user_email of a Gravatar user: the avatar update (notify_avatar_url_change) between delivery_email and new_email", async () => {
      const u = await addUser(server.db, { role: 400 });
      await q("UPDATE zerver_userprofile SET email_address_visibility = 1, avatar_source = 'G', avatar_version = 3 WHERE id = $1", [u.id]);
      const newEmail = `Gravatar-${u.id}@Test.example`;
      const r = await ok(["change_user_email", "-r", R, u.email, newEmail, "--json"]);
      const md5 = crypto.createHash("md5").update(newEmail.toLowerCase()).digest("hex");
      const avatar = {
        avatar_source: "G",
        avatar_url: `https://secure.gravatar.com/avatar/${md5}?d=identicon&version=3`,
        avatar_url_medium: `https://secure.gravatar.com/avatar/${md5}?d=identicon&s=500&version=3`,
        avatar_version: 3,
        user_id: u.id,
      };
      const [row] = await q("SELECT delivery_email FROM zerver_userprofile WHERE id = $1", [u.id]);
      expect(sortedUsers(await reader.drain())).toEqual([
        { event: { type: "realm_user", op: "update", person: { user_id: u.id, delivery_email: row.delivery_email } }, users: await active() },
        { event: { type: "realm_user", op: "update", person: avatar }, users: await active() },
        { event: { type: "realm_user", op: "update", person: { user_id: u.id, new_email: row.delivery_email } }, users: await active() },
      ]);
      expect(JSON.parse(r.stdout).events).toMatchObject({ ok: true, published: 3 });
    });

    it("deactivate_user: an archived channel is in the peer_remove from 12.0 (FL 428)", async () => {
      const u = await addUser(server.db, { role: 400 });
      await subscribe(u.id, 1);
      await subscribe(u.id, 2);
      await q("UPDATE zerver_stream SET deactivated = true WHERE id = 2");
      try {
        await ok(["deactivate_user", "-r", R, u.email, "-f"]);
      } finally {
        await q("UPDATE zerver_stream SET deactivated = false WHERE id = 2");
      }
      const got = sortedUsers(await reader.drain());
      if (release === 12) expect(got[0].event).toEqual({ type: "subscription", op: "peer_remove", stream_ids: [1, 2], user_ids: [u.id] });
      if (release === 11) expect(got[0].event).toEqual({ type: "subscription", op: "peer_remove", stream_ids: [1], user_ids: [u.id] });
      if (release === 10) expect(got.map((n) => n.event.type)).toEqual(["realm_user"]);
    });

    it("deactivate_user: the user's bots first, with realm_bot updates before 12.0 (FL 474)", async () => {
      const u = await addUser(server.db, { role: 400 });
      const bot = await addUser(server.db, { role: 400, bot: true, botOwnerId: u.id });
      const r = await cli(["deactivate_user", "-r", R, u.email, "-f"]);
      expect(r.exitCode).toBe(0);
      const after = await active();
      const expected: any[] = [
        { event: { type: "realm_user", op: "update", person: { user_id: bot.id, is_active: false } }, users: [...after, u.id].sort((a, b) => a - b) },
      ];
      if (release < 12) {
        expected.push({
          event: { type: "realm_bot", op: "update", bot: { user_id: bot.id, is_active: false } },
          users: [...(await humanAdmins()), u.id].sort((a, b) => a - b),
        });
      }
      expected.push({ event: { type: "realm_user", op: "update", person: { user_id: u.id, is_active: false } }, users: after });
      expect(sortedUsers(await reader.drain())).toEqual(expected);
    });

    it("reactivate_user: is_active, export consent, peer_add, group memberships", async () => {
      const u = await addUser(server.db, { role: 400, active: false });
      await subscribe(u.id, 3, false);
      const r = await cli(["reactivate_user", "-r", R, u.email, "--json"]);
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toBe("");
      const everyone = await active();
      const [{ consent }] = await q("SELECT allow_private_data_export AS consent FROM zerver_userprofile WHERE id = $1", [u.id]);
      const direct = await ids(
        "SELECT m.user_group_id AS id FROM zerver_usergroupmembership m JOIN zerver_namedusergroup n ON n.usergroup_ptr_id = m.user_group_id WHERE m.user_profile_id = $1 ORDER BY m.user_group_id",
        [u.id],
      );
      expect(direct).toEqual([groups["role:members"], groups["role:fullmembers"]].sort((a, b) => a - b));
      expect(sortedUsers(await reader.drain())).toEqual([
        { event: { type: "realm_user", op: "update", person: { user_id: u.id, is_active: true } }, users: everyone },
        { event: { type: "realm_export_consent", user_id: u.id, consented: consent }, users: await humanAdmins() },
        { event: { type: "subscription", op: "peer_add", stream_ids: [3], user_ids: [u.id] }, users: (await nonGuests()).filter((x) => x !== u.id) },
        ...direct.map((g) => ({ event: { type: "user_group", op: "add_members", group_id: g, user_ids: [u.id] }, users: everyone })),
      ]);
      expect(JSON.parse(r.stdout).events).toMatchObject({ ok: true, published: 3 + direct.length });
    });

    it("change_user_role member -> guest: role, groups, then the channels the guest no longer sees", async () => {
      const u = await addUser(server.db, { role: 400 });
      await subscribe(u.id, 2);
      await ok(["change_user_role", "-r", R, u.email, "guest"]);
      const everyone = await active();
      const lost = [1, 3];
      const del: Record<string, unknown> = { type: "stream", op: "delete", streams: lost.map((id) => ({ stream_id: id })), stream_ids: lost };
      if (release >= 11) del.for_archiving = false; // internal flag, FL 378
      expect(sortedUsers(await reader.drain())).toEqual([
        { event: { type: "realm_user", op: "update", person: { user_id: u.id, role: 600 } }, users: everyone },
        { event: { type: "user_group", op: "remove_members", group_id: groups["role:members"], user_ids: [u.id] }, users: everyone },
        { event: { type: "user_group", op: "add_members", group_id: groups["role:everyone"], user_ids: [u.id] }, users: everyone },
        { event: { type: "user_group", op: "remove_members", group_id: groups["role:fullmembers"], user_ids: [u.id] }, users: everyone },
        { event: del, users: [u.id] },
      ]);
    });

    it("change_user_role guest -> member: the channels now visible (full channel objects) and their subscribers", async () => {
      const u = await addUser(server.db, { role: 600 });
      await subscribe(u.id, 2);
      await ok(["change_user_role", "-r", R, u.email, "member"]);
      const got = sortedUsers(await reader.drain());
      expect(got.map((n) => [n.event.type, n.event.op])).toEqual([
        ["realm_user", "update"],
        ["user_group", "remove_members"],
        ["user_group", "add_members"],
        ["user_group", "add_members"], // role:fullmembers (joined 30 days ago, past the waiting period)
        ["stream", "create"],
        ["subscription", "peer_add"],
        ["subscription", "peer_add"],
      ]);
      expect(got[3].event.group_id).toBe(groups["role:fullmembers"]);
      const create = got[4];
      expect(create.users).toEqual([u.id]);
      expect(create.event.for_unarchiving).toBeUndefined();
      const cols = new Set((await q("SELECT column_name FROM information_schema.columns WHERE table_name = 'zerver_stream'")).map((r: any) => r.column_name));
      const rows = await q("SELECT * FROM zerver_stream WHERE id IN (1, 3) ORDER BY id");
      const traffic = await q(
        "SELECT stream_id, sum(value)::int AS v FROM analytics_streamcount WHERE property = 'messages_in_stream:is_bot:day' AND end_time > now() - interval '28 days' GROUP BY stream_id",
      );
      expect(create.event.streams).toEqual(
        rows.map((st: any) => {
          const d: Record<string, unknown> = {
            stream_id: Number(st.id),
            name: st.name,
            description: st.description,
            rendered_description: st.rendered_description,
            date_created: Math.floor(new Date(st.date_created).getTime() / 1000),
            creator_id: st.creator_id,
            invite_only: false,
            is_web_public: false,
            is_archived: false,
            history_public_to_subscribers: true,
            first_message_id: Number(st.first_message_id),
            message_retention_days: null,
            // created over 28 days ago: a quarter of the last 28 days' messages
            stream_weekly_traffic: Math.floor((traffic.find((t: any) => Number(t.stream_id) === Number(st.id))?.v ?? 0) / 4),
            stream_post_policy: 1,
            is_announcement_only: false,
          };
          if (cols.has("subscriber_count")) d.subscriber_count = Number(st.subscriber_count);
          if (cols.has("folder_id")) d.folder_id = null;
          if (cols.has("is_recently_active")) d.is_recently_active = st.is_recently_active;
          if (cols.has("topics_policy")) d.topics_policy = "inherit";
          for (const c of cols) {
            const m = /^(can_\w+_group)_id$/.exec(c as string);
            if (m) d[m[1]] = expect.anything();
          }
          return d;
        }),
      );
      // Group settings: a named group's id, or an anonymous group's members and subgroups.
      for (const st of create.event.streams) {
        for (const [k, v] of Object.entries(st)) {
          if (k.startsWith("can_"))
            expect(typeof v === "number" || (Array.isArray((v as any).direct_members) && Array.isArray((v as any).direct_subgroups))).toBe(true);
        }
      }
      for (const [i, id] of [1, 3].entries()) {
        const subs = await ids(
          "SELECT s.user_profile_id AS id FROM zerver_subscription s JOIN zerver_stream st ON st.recipient_id = s.recipient_id WHERE st.id = $1 AND s.active AND s.is_user_active ORDER BY 1",
          [id],
        );
        expect(got[5 + i]).toEqual({ event: { type: "subscription", op: "peer_add", stream_ids: [id], user_ids: subs }, users: [u.id] });
      }
    });

    it("logout_all_users --rotate-api-keys: a clear_push_device_tokens job per user; bots' new keys to their owners before 12.0", async () => {
      const owner = await addUser(server.db, { role: 400 });
      const bot = await addUser(server.db, { role: 400, bot: true, botOwnerId: owner.id });
      const users = await ids("SELECT id FROM zerver_userprofile WHERE realm_id = $1 ORDER BY id", [TEST_REALM]);
      await ok(["logout_all_users", "-r", R, "--rotate-api-keys"]);
      expect(await reader.drain("deferred_work")).toEqual(users.map((id) => ({ type: "clear_push_device_tokens", user_profile_id: id })));
      const notices = sortedUsers(await reader.drain());
      if (release === 12) {
        expect(notices).toEqual([]);
      } else {
        const bots = await q("SELECT id, api_key, bot_owner_id FROM zerver_userprofile WHERE realm_id = $1 AND is_bot ORDER BY id", [TEST_REALM]);
        const admins = await humanAdmins();
        expect(notices).toEqual(
          bots.map((b: any) => ({
            event: { type: "realm_bot", op: "update", bot: { user_id: Number(b.id), api_key: b.api_key } },
            users: [...new Set([...admins, ...(b.bot_owner_id === null ? [] : [Number(b.bot_owner_id)])])].sort((x, y) => x - y),
          })),
        );
        expect(notices.map((n) => n.event.bot.user_id)).toContain(bot.id);
      }
    });

    describe("a realm where guests cannot see everyone (can_access_all_users_group = role:members)", () => {
      beforeAll(async () => {
        await q("UPDATE zerver_realm SET can_access_all_users_group_id = $1 WHERE id = $2", [groups["role:members"], TEST_REALM]);
      });
      afterAll(async () => {
        await q("UPDATE zerver_realm SET can_access_all_users_group_id = $1 WHERE id = $2", [groups["role:everyone"], TEST_REALM]);
      });

      it("deactivate_user: the update to those with access; group removals to the others; realm_user remove to guest co-subscribers", async () => {
        const guest = await addUser(server.db, { role: 600 });
        const lonely = await addUser(server.db, { role: 600 });
        const u = await addUser(server.db, { role: 400 });
        await subscribe(u.id, 2);
        await subscribe(guest.id, 2);
        await ok(["deactivate_user", "-r", R, u.email, "-f"]);
        const withAccess = await nonGuests();
        const without = (await active()).filter((x) => !withAccess.includes(x));
        expect(without).toEqual(expect.arrayContaining([guest.id, lonely.id]));
        const expected: any[] = [];
        if (release >= 11) {
          // channel 2 now has a guest subscriber: its own event, to non-guests and its subscribers
          const guestSubs = await ids(
            "SELECT s.user_profile_id AS id FROM zerver_subscription s JOIN zerver_stream st ON st.recipient_id = s.recipient_id JOIN zerver_userprofile p ON p.id = s.user_profile_id WHERE st.id = 2 AND s.active AND s.is_user_active AND p.role = 600",
          );
          expected.push({
            event: { type: "subscription", op: "peer_remove", stream_ids: [2], user_ids: [u.id] },
            users: [...withAccess, ...guestSubs].sort((a, b) => a - b),
          });
        }
        expected.push({ event: { type: "realm_user", op: "update", person: { user_id: u.id, is_active: false } }, users: withAccess });
        for (const g of [groups["role:members"], groups["role:fullmembers"]].sort((a, b) => a - b)) {
          expected.push({ event: { type: "user_group", op: "remove_members", group_id: g, user_ids: [u.id] }, users: without });
        }
        // Guests subscribed to channel 2 (this one, and any an earlier test left there) lose sight of the user.
        const guestPeers = await ids(
          "SELECT s.user_profile_id AS id FROM zerver_subscription s JOIN zerver_stream st ON st.recipient_id = s.recipient_id JOIN zerver_userprofile p ON p.id = s.user_profile_id WHERE st.id = 2 AND s.active AND s.is_user_active AND p.role = 600 ORDER BY 1",
        );
        expect(guestPeers).toContain(guest.id);
        expected.push({ event: { type: "realm_user", op: "remove", person: { user_id: u.id, full_name: "Unknown user" } }, users: guestPeers });
        expect(sortedUsers(await reader.drain())).toEqual(expected);
      });
    });

    it("version.py's API_FEATURE_LEVEL decides over the migrations", async () => {
      // A deployment that says 10.x (FL 376): no peer_remove, realm_bot updates, whatever the schema.
      fs.writeFileSync(path.join(server.conf.deployDir, "version.py"), 'ZULIP_VERSION = "10.4"\nAPI_FEATURE_LEVEL = 376\n');
      try {
        const u = await addUser(server.db, { role: 400 });
        await subscribe(u.id, 1);
        await ok(["deactivate_user", "-r", R, u.email, "-f"]);
        expect((await reader.drain()).map((n) => n.event.type)).toEqual(["realm_user"]);
      } finally {
        fs.rmSync(path.join(server.conf.deployDir, "version.py"));
      }
    });
  });
}
