// The real-time events of the organization commands (zulip/zulip zerver/actions/realm_settings.py
// do_deactivate_realm / do_reactivate_realm) on Zulip 12 and 10 databases, read from the test's
// RabbitMQ vhost.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.js";
import { makeConfDir } from "./helpers/confdir.js";
import type { TemplateName } from "./helpers/pg.js";
import { QueueReader, sortedUsers } from "./helpers/rabbitmq.js";
import { startServerCopy, type ServerCopy } from "./helpers/server-copy.js";
import { TEST_REALM } from "./helpers/users.js";

for (const template of ["zulip12_fresh", "zulip10_fresh"] as TemplateName[]) {
  describe(template, () => {
    let server: ServerCopy;
    let reader: QueueReader;
    beforeAll(async () => {
      server = await startServerCopy({ template, externalHost: "zulip.example.net" });
      reader = await QueueReader.open();
    });
    afterAll(async () => {
      await reader?.close();
      await server?.stop();
    });
    beforeEach(async () => {
      await reader.purge("notify_tornado", "deferred_work");
    });

    it("unarchive_channel: is_archived update, then the create for clients without archived_channels (11.0+), to all who see the channel", async () => {
      await server.db.query("UPDATE zerver_stream SET deactivated = true WHERE id = 2");
      const r = await runCli(["unarchive_channel", "-r", String(TEST_REALM), "--channel-id", "2", "-n", "sandbox-again", "--json"], {
        confDir: server.conf,
        db: server.db,
      });
      expect({ exit: r.exitCode, stderr: r.stderr }).toEqual({ exit: 0, stderr: "" });
      // A public channel: every active non-guest, and its active subscribers.
      const notify = (
        await server.db.query(
          `SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND (role <> 600 OR id IN (
             SELECT s.user_profile_id FROM zerver_subscription s JOIN zerver_stream st ON st.recipient_id = s.recipient_id WHERE st.id = 2 AND s.active))
           ORDER BY id`,
          [TEST_REALM],
        )
      ).map((x: any) => Number(x.id));
      const [st] = await server.db.query("SELECT name FROM zerver_stream WHERE id = 2");
      const got = sortedUsers(await reader.drain());
      if (template === "zulip12_fresh") {
        expect(
          got.map((n) => ({
            ...n,
            event: { ...n.event, streams: n.event.streams?.map((x: any) => ({ stream_id: x.stream_id, is_archived: x.is_archived })) },
          })),
        ).toEqual([
          { event: { type: "stream", op: "update", stream_id: 2, name: st.name, property: "is_archived", value: false, streams: undefined }, users: notify },
          { event: { type: "stream", op: "create", for_unarchiving: true, streams: [{ stream_id: 2, is_archived: false }] }, users: notify },
        ]);
      } else {
        // 10.x (FL < 378): a plain create; its Tornado would pass an unknown flag on to clients.
        expect(got.map((n) => [n.event.type, n.event.op, n.event.for_unarchiving, n.users])).toEqual([["stream", "create", undefined, notify]]);
      }
      expect(JSON.parse(r.stdout).events).toMatchObject({ ok: true, published: got.length });
    });

    it("deactivate_realm: realm deactivated to its active users; reactivate_realm: no event, the audit-log upload job", async () => {
      const active = (await server.db.query("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active ORDER BY id", [TEST_REALM])).map((r: any) =>
        Number(r.id),
      );
      const conf = makeConfDir({
        db: { name: server.db.name },
        memcached: { location: server.mc.location, password: server.mc.password },
        externalHost: "zulip.example.net",
        extraSettings: "ZULIP_SERVICE_PUSH_NOTIFICATIONS = True",
      });
      try {
        const dry = await runCli(["deactivate_realm", "-r", String(TEST_REALM), "--deactivation_reason", "owner_request", "--dry-run"], {
          confDir: conf,
          db: server.db,
        });
        expect(dry.exitCode).toBe(0);
        expect(await reader.drain()).toEqual([]);
        const r = await runCli(["deactivate_realm", "-r", String(TEST_REALM), "--deactivation_reason", "owner_request", "--json"], {
          confDir: conf,
          db: server.db,
        });
        expect({ exit: r.exitCode, stderr: r.stderr }).toEqual({ exit: 0, stderr: "" });
        expect(sortedUsers(await reader.drain())).toEqual([{ event: { type: "realm", op: "deactivated", realm_id: TEST_REALM }, users: active }]);
        expect(JSON.parse(r.stdout).events).toMatchObject({ published: 1, ok: true });
        // do_deactivate_realm also calls maybe_enqueue_audit_log_upload after its audit row.
        expect(await reader.drain("deferred_work")).toEqual([{ type: "push_bouncer_update_for_realm", realm_id: TEST_REALM }]);
        // Already deactivated: refused-like no-op, nothing sent.
        expect(
          (await runCli(["deactivate_realm", "-r", String(TEST_REALM), "--deactivation_reason", "owner_request"], { confDir: conf, db: server.db })).exitCode,
        ).toBe(0);
        expect(await reader.drain()).toEqual([]);

        const back = await runCli(["reactivate_realm", "-r", String(TEST_REALM), "--json"], { confDir: conf, db: server.db });
        expect({ exit: back.exitCode, stderr: back.stderr }).toEqual({ exit: 0, stderr: "" });
        expect(await reader.drain()).toEqual([]);
        expect(await reader.drain("deferred_work")).toEqual([{ type: "push_bouncer_update_for_realm", realm_id: TEST_REALM }]);
        expect(JSON.parse(back.stdout).events).toMatchObject({ published: 0, jobs: 1, ok: true });
      } finally {
        conf.cleanup();
      }
    });
  });
}
