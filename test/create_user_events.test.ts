// create_user's real-time events on Zulip 12, 11 and 10 databases, read from this file's
// RabbitMQ vhost, with every field and recipient list computed here with plain SQL and node's
// crypto (independent of src/). zulip/zulip create_user.py do_create_user/notify_created_user:
// realm_user add (delivery_email only for those who may see it), the system-group add_members,
// then process_new_human_user's peer_add for the default channels.
import crypto from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.js";
import { QueueReader, sortedUsers } from "./helpers/rabbitmq.js";
import { startServerCopy, type ServerCopy } from "./helpers/server-copy.js";
import type { TemplateName } from "./helpers/pg.js";
import { addUser, copyRow, groupIds, TEST_REALM } from "./helpers/users.js";

const R = String(TEST_REALM);
const VISIBLE: Record<number, number[]> = { 100: [1, 2, 3, 5], 200: [1, 2, 3, 5], 300: [1, 2, 5], 400: [1, 2], 600: [1] };

for (const [template, release] of [
  ["zulip12_fresh", 12],
  ["zulip11_fresh", 11],
  ["zulip10_fresh", 10],
] as [TemplateName, number][]) {
  describe(`Zulip ${release}`, () => {
    let server: ServerCopy;
    let reader: QueueReader;
    let n = 0;
    const q = (sql: string, params: unknown[] = []) => server.db.query(sql, params);

    beforeAll(async () => {
      server = await startServerCopy({ template, externalHost: "zulip.example.net", extraSettings: 'LOCAL_UPLOADS_DIR = "/home/zulip/uploads"\n' });
      reader = await QueueReader.open();
      await addUser(server.db, { role: 400 }); // a member, who may not see the new user's address (visibility "admins")
    });
    afterAll(async () => {
      await reader?.close();
      await server?.stop();
    });
    beforeEach(async () => {
      await reader.purge("notify_tornado", "deferred_work");
    });

    async function expectedFor(email: string, avatarUrl: (u: any) => string) {
      const [u] = await q("SELECT * FROM zerver_userprofile WHERE realm_id = $1 AND delivery_email = $2", [TEST_REALM, email]);
      const viewers = await q("SELECT id, role FROM zerver_userprofile WHERE realm_id = $1 AND is_active ORDER BY id", [TEST_REALM]);
      const vis = Number(u.email_address_visibility);
      const see = viewers.filter((v: any) => Number(v.id) === u.id || VISIBLE[v.role].includes(vis)).map((v: any) => Number(v.id));
      const notSee = viewers.map((v: any) => Number(v.id)).filter((id: number) => !see.includes(id));
      const d = new Date(u.date_joined);
      const person = (delivery: string | null) => ({
        email: u.email,
        user_id: u.id,
        avatar_version: 1,
        is_admin: false,
        is_owner: false,
        is_guest: false,
        role: 400,
        is_bot: false,
        full_name: "Ada Events",
        timezone: "",
        is_active: true,
        date_joined: `${d.toISOString().slice(0, 16)}+00:00`,
        delivery_email: delivery,
        avatar_url: avatarUrl(u),
        profile_data: {},
        ...(release === 12 ? { is_imported_stub: false } : {}),
      });
      const all = viewers.map((v: any) => Number(v.id));
      const groups = await q(
        "SELECT m.user_group_id AS id, g.name FROM zerver_usergroupmembership m JOIN zerver_namedusergroup g ON g.usergroup_ptr_id = m.user_group_id WHERE m.user_profile_id = $1 ORDER BY m.id",
        [u.id],
      );
      const defaults = await q(
        "SELECT s.id, s.invite_only FROM zerver_defaultstream d JOIN zerver_stream s ON s.id = d.stream_id WHERE d.realm_id = $1 ORDER BY s.id",
        [TEST_REALM],
      );
      const nonGuests = (await q("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND role <> 600 ORDER BY id", [TEST_REALM]))
        .map((r: any) => Number(r.id))
        .filter((id: number) => id !== u.id);
      return { u, see, notSee, person, all, groups, defaults, nonGuests };
    }

    it("realm_user add (with and without the real address), group add_members, peer_add for the default channels", async () => {
      const email = `ada${++n}@example.org`;
      const r = await runCli(["create_user", "-r", R, email, "Ada Events", "--json"], { confDir: server.conf, db: server.db });
      expect({ exit: r.exitCode, stderr: r.stderr }).toEqual({ exit: 0, stderr: "" });
      const salt = server.conf.secrets.avatar_salt;
      const e = await expectedFor(email, (u) =>
        u.avatar_source === "G"
          ? `https://secure.gravatar.com/avatar/${crypto.createHash("md5").update(email).digest("hex")}?d=identicon&version=1`
          : `/user_avatars/${TEST_REALM}/${crypto.createHash("sha256").update(`${u.id}:1:${salt}`).digest("hex").slice(0, 40)}.png`,
      );
      expect(e.u.avatar_source).toBe(release === 12 ? "J" : "G");
      expect(e.groups.map((g: any) => g.name)).toEqual(["role:members", "role:fullmembers"]);
      expect(e.defaults.length).toBeGreaterThan(0);
      expect(e.notSee.length).toBeGreaterThan(0);
      const expected: any[] = [
        { event: { type: "realm_user", op: "add", person: e.person(email) }, users: e.see },
        { event: { type: "realm_user", op: "add", person: e.person(null) }, users: e.notSee },
        ...e.groups.map((g: any) => ({ event: { type: "user_group", op: "add_members", group_id: Number(g.id), user_ids: [e.u.id] }, users: e.all })),
      ];
      // All default channels of the fixtures are public without guest subscribers: one event to the non-guests.
      expect(e.defaults.every((c: any) => !c.invite_only)).toBe(true);
      expected.push({
        event: { type: "subscription", op: "peer_add", stream_ids: e.defaults.map((c: any) => Number(c.id)), user_ids: [e.u.id] },
        users: e.nonGuests,
      });
      expect(sortedUsers(await reader.drain())).toEqual(expected);
      expect(await reader.drain("deferred_work")).toEqual([]);
      const out = JSON.parse(r.stdout);
      expect(out.events).toMatchObject({ transport: "rabbitmq", published: expected.length, ok: true });
      expect(out.not_done.filter((s: string) => s.startsWith("not sent:"))).toEqual([]);
    });

    it("restricted user access: no realm_user add to guests except those sharing a default channel; their own peer_add", async () => {
      const groups = await groupIds(server.db);
      const guest = await addUser(server.db, { role: 600 });
      const lonely = await addUser(server.db, { role: 600 });
      const [first] = await q("SELECT stream_id AS id FROM zerver_defaultstream WHERE realm_id = $1 ORDER BY stream_id LIMIT 1", [TEST_REALM]);
      const [src] = await q(
        "SELECT s.id FROM zerver_subscription s JOIN zerver_stream st ON st.recipient_id = s.recipient_id WHERE st.id = $1 ORDER BY s.id LIMIT 1",
        [first.id],
      );
      await copyRow(server.db, "zerver_subscription", Number(src.id), { user_profile_id: "$1", active: "true", is_user_active: "true" }, [guest.id]);
      await q("UPDATE zerver_realm SET can_access_all_users_group_id = $1 WHERE id = $2", [groups["role:members"], TEST_REALM]);
      try {
        const email = `ada${++n}@example.org`;
        const r = await runCli(["create_user", "-r", R, email, "Ada Events", "--json"], { confDir: server.conf, db: server.db });
        expect({ exit: r.exitCode, stderr: r.stderr }).toEqual({ exit: 0, stderr: "" });
        const salt = server.conf.secrets.avatar_salt;
        const e = await expectedFor(email, (u) =>
          u.avatar_source === "G"
            ? `https://secure.gravatar.com/avatar/${crypto.createHash("md5").update(email).digest("hex")}?d=identicon&version=1`
            : `/user_avatars/${TEST_REALM}/${crypto.createHash("sha256").update(`${u.id}:1:${salt}`).digest("hex").slice(0, 40)}.png`,
        );
        const guests = [guest.id, lonely.id];
        const subscribers = (
          await q(
            "SELECT s.user_profile_id AS id FROM zerver_subscription s JOIN zerver_stream st ON st.recipient_id = s.recipient_id JOIN zerver_userprofile p ON p.id = s.user_profile_id WHERE st.id = $1 AND s.active AND p.is_active ORDER BY 1",
            [first.id],
          )
        ).map((x: any) => Number(x.id));
        const others = e.defaults.map((c: any) => Number(c.id)).filter((id: number) => id !== Number(first.id));
        const expected: any[] = [
          { event: { type: "realm_user", op: "add", person: e.person(email) }, users: e.see },
          { event: { type: "realm_user", op: "add", person: e.person(null) }, users: e.notSee.filter((id: number) => !guests.includes(id)) },
          ...e.groups.map((g: any) => ({ event: { type: "user_group", op: "add_members", group_id: Number(g.id), user_ids: [e.u.id] }, users: e.all })),
          { event: { type: "realm_user", op: "add", person: e.person(null) }, users: [guest.id] },
          {
            event: { type: "subscription", op: "peer_add", stream_ids: [Number(first.id)], user_ids: [e.u.id] },
            users: [...new Set([...e.nonGuests, ...subscribers])].filter((id) => id !== e.u.id).sort((a, b) => a - b),
          },
        ];
        if (others.length) expected.push({ event: { type: "subscription", op: "peer_add", stream_ids: others, user_ids: [e.u.id] }, users: e.nonGuests });
        expect(sortedUsers(await reader.drain())).toEqual(expected);
        expect(JSON.parse(r.stdout).not_done).toContainEqual(
          'not sent: the "Unknown user" realm_user add for 2 guest(s) (its static avatar URL is content-hashed on a production server)',
        );
      } finally {
        await q("UPDATE zerver_realm SET can_access_all_users_group_id = $1 WHERE id = $2", [groups["role:everyone"], TEST_REALM]);
        await q("UPDATE zerver_userprofile SET is_active = false WHERE id = ANY ($1::int[])", [[guest.id, lonely.id]]);
      }
    });

    it("a dry run and a refused creation send nothing", async () => {
      const email = `ada${++n}@example.org`;
      const dry = await runCli(["create_user", "-r", R, email, "Ada Events", "--dry-run", "--json"], { confDir: server.conf, db: server.db });
      expect(dry.exitCode).toBe(0);
      expect(JSON.parse(dry.stdout).events).toBeNull();
      await runCli(["create_user", "-r", R, email, "Ada Events", "--events=none"], { confDir: server.conf, db: server.db });
      await reader.purge("notify_tornado");
      const again = await runCli(["create_user", "-r", R, email, "Ada Events", "--json"], { confDir: server.conf, db: server.db });
      expect(again.exitCode).toBe(1);
      expect(await reader.drain()).toEqual([]);
    });
  });
}

describe("Zulip 12: avatar URLs that cannot be reproduced are not guessed", () => {
  let server: ServerCopy;
  let reader: QueueReader;
  beforeAll(async () => {
    // No LOCAL_UPLOADS_DIR: the S3 backend, whose URLs are not reproduced.
    server = await startServerCopy({ template: "zulip12_fresh", externalHost: "zulip.example.net" });
    reader = await QueueReader.open();
    await reader.purge("notify_tornado", "deferred_work");
  });
  afterAll(async () => {
    await reader?.close();
    await server?.stop();
  });

  it("S3 uploads with the Jdenticon default: no realm_user add, the rest sent, the omission reported", async () => {
    const r = await runCli(["create_user", "-r", R, "s3@example.org", "Ada Events", "--json"], { confDir: server.conf, db: server.db });
    expect(r.exitCode).toBe(0);
    const out = JSON.parse(r.stdout);
    const got = await reader.drain();
    expect(got.map((m: any) => `${m.event.type}/${m.event.op}`)).toEqual(["user_group/add_members", "user_group/add_members", "subscription/peer_add"]);
    expect(out.not_done).toContainEqual(expect.stringMatching(/^not sent: realm_user add events for s3@example.org .*S3/));
  });
});
