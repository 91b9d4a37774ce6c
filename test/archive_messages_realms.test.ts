// archive_messages' scrub_realms step through the built CLI on the Zulip 12, 11 and 10 fixtures,
// with this file's RabbitMQ vhost, memcached and an SMTP sink:
//
// - delete_expired_demo_organizations (zerver/actions/realm_settings.py): an active realm past its
//   demo_organization_scheduled_deletion_date is deactivated by do_deactivate_realm(acting_user=
//   None, deactivation_reason="demo_expired", deletion_delay_days=0, email_owners=
//   demo_organization_owner_email_exists(realm)): the realm row, the REALM_DEACTIVATED audit row,
//   its scheduled emails gone, its users' sessions ended, the realm/deactivated event to its active
//   users, the deferred_work scrub_deactivated_realm job, and the owners' email saying the data
//   has been deleted — none when the owners have no email address
//   (demo_organization_owner_email_exists);
// - clean_deactivated_realm_data (do_scrub_realm) on the next run: done on 10/11 (see
//   archive_messages_scrub.test.ts), refused on 12 (the realm is named, exit 1, nothing changes).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parseAddress, startSmtpSink, type SmtpSink } from "./email-support.js";
import { runCli } from "./helpers/cli.js";
import type { TemplateName } from "./helpers/pg.js";
import { QueueReader, sortedUsers } from "./helpers/rabbitmq.js";
import { startServerCopy, type ServerCopy } from "./helpers/server-copy.js";
import { addSession } from "./helpers/sessions.js";
import { changedTables, snapshot } from "./helpers/snapshot.js";
import { TEST_REALM } from "./helpers/users.js";

const HOST = "zulip.example.net";
const FIXTURES: TemplateName[] = ["zulip12_fresh", "zulip11_fresh", "zulip10_fresh"];

let reader: QueueReader;
beforeAll(async () => {
  reader = await QueueReader.open();
});
afterAll(async () => {
  await reader?.close();
});

describe.each(FIXTURES)("archive_messages scrub_realms on %s", (template) => {
  let server: ServerCopy;
  let sink: SmtpSink;
  let lockDir: string;
  let uploads: string;
  const run = (args: string[] = []) => runCli(["archive_messages", ...args], { db: server.db, confDir: server.conf, env: { ZULIP_LOCK_DIR: lockDir } });
  const db = () => server.db;
  const maxAudit = async () => Number((await db().query("SELECT coalesce(max(id), 0) AS m FROM zerver_realmauditlog"))[0].m);
  const activeIds = async () =>
    (await db().query("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active ORDER BY id", [TEST_REALM])).map((r: any) => Number(r.id));
  const owners = async () =>
    db().query("SELECT id, delivery_email FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND NOT is_bot AND role = 100 ORDER BY id", [TEST_REALM]);
  const makeDemo = async () =>
    db().query(
      "UPDATE zerver_realm SET deactivated = false, scheduled_deletion_date = NULL, demo_organization_scheduled_deletion_date = now() - interval '1 day' WHERE id = $1",
      [TEST_REALM],
    );

  beforeAll(async () => {
    sink = await startSmtpSink();
    lockDir = fs.mkdtempSync(path.join(os.tmpdir(), "zm-scrub-locks-"));
    uploads = fs.mkdtempSync(path.join(os.tmpdir(), "zm-scrub-uploads-"));
    server = await startServerCopy({
      template,
      externalHost: HOST,
      client: true,
      extraSettings: `EMAIL_HOST = '127.0.0.1'\nEMAIL_PORT = ${sink.port}\nLOCAL_UPLOADS_DIR = '${uploads}'\n`,
    });
  }, 120_000);
  afterAll(async () => {
    for (const d of [lockDir, uploads]) if (d) fs.rmSync(d, { recursive: true, force: true });
    await server?.stop();
    await sink?.close();
  });
  beforeEach(async () => {
    await reader.purge("notify_tornado", "deferred_work");
    sink.messages.length = 0;
  });

  it("deactivates an expired demo organization as do_deactivate_realm(demo_expired, deletion_delay_days=0) does", async () => {
    await makeDemo();
    const [realmBefore] = await db().query("SELECT * FROM zerver_realm WHERE id = $1", [TEST_REALM]);
    const userIds = (await db().query("SELECT id FROM zerver_userprofile WHERE realm_id = $1 ORDER BY id", [TEST_REALM])).map((r: any) => Number(r.id));
    // A live login session of one of the realm's users (its signature is not checked for
    // deletion when it cannot be read: use an unexpired row and count the rows of the realm).
    const sessionKey = await addSession(db(), userIds[0], server.conf.secrets.secret_key, { expires: 1 });
    const active = await activeIds();
    const ownerRows = await owners();
    expect(ownerRows.length).toBeGreaterThan(0);
    const before = await snapshot(db());
    const audit = await maxAudit();

    const r = await run(["--json"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.ok).toBe(true);
    expect(doc.realms_due_for_scrubbing).toEqual([]);
    expect(doc.demo_organizations_deactivated).toHaveLength(1);
    const d = doc.demo_organizations_deactivated[0];
    expect(d).toMatchObject({ realm: { id: TEST_REALM, string_id: realmBefore.string_id }, sessions_deleted_count: 1 });
    expect(d.results.map((e: any) => [e.to, e.status])).toEqual(ownerRows.map((o: any) => [o.delivery_email, "done"]));

    // The realm row: deactivated, scheduled for deletion now (deletion_delay_days=0).
    const [realm] = await db().query("SELECT * FROM zerver_realm WHERE id = $1", [TEST_REALM]);
    expect(realm.deactivated).toBe(true);
    expect(Math.abs(realm.scheduled_deletion_date.getTime() - Date.now())).toBeLessThan(60_000);
    expect(realm.demo_organization_scheduled_deletion_date).toEqual(realmBefore.demo_organization_scheduled_deletion_date);
    // The audit row.
    const rows = await db().query("SELECT * FROM zerver_realmauditlog WHERE id > $1 ORDER BY id", [audit]);
    expect(rows).toHaveLength(1);
    expect([Number(rows[0].id)]).toEqual(d.audit_log_ids);
    expect(rows[0]).toMatchObject({ realm_id: TEST_REALM, event_type: 201, acting_user_id: null, modified_user_id: null });
    expect(rows[0].extra_data.deactivation_reason).toBe("demo_expired");
    expect(rows[0].extra_data["10"]["11"]["100"]).toBe(ownerRows.length);
    expect(realm.scheduled_deletion_date.getTime()).toBe(rows[0].event_time.getTime());
    // Scheduled emails and the session are gone; users stay active; nothing else changed.
    expect(await db().query("SELECT id FROM zerver_scheduledemail WHERE realm_id = $1", [TEST_REALM])).toEqual([]);
    expect(await db().query("SELECT 1 FROM django_session WHERE session_key = $1", [sessionKey])).toEqual([]);
    expect(await activeIds()).toEqual(active);
    const changed = changedTables(before, await snapshot(db()));
    for (const t of changed)
      expect(["django_session", "zerver_realm", "zerver_realmauditlog", "zerver_scheduledemail", "zerver_scheduledemail_users"]).toContain(t);
    expect(changed).toEqual(expect.arrayContaining(["django_session", "zerver_realm", "zerver_realmauditlog"]));

    // The event, then the scrub job for Zulip's deferred_work worker.
    expect(sortedUsers(await reader.drain())).toEqual([{ event: { type: "realm", op: "deactivated", realm_id: TEST_REALM }, users: active }]);
    expect(await reader.drain("deferred_work")).toEqual([{ type: "scrub_deactivated_realm", realm_id: TEST_REALM }]);
    expect(doc.events).toMatchObject({ ok: true, published: 1, jobs: 1 });

    // The owners' email: the data is already deleted.
    expect(sink.messages.map((m) => m.envelopeTo)).toEqual(ownerRows.map((o: any) => [o.delivery_email]));
    const m = sink.messages[0];
    expect(parseAddress(m.parsed.header("from")!).name).toBe(`${HOST} account security`);
    expect(m.parsed.header("subject")).toBe(`Your Zulip organization ${realmBefore.name} has been deactivated`);
    expect(m.parsed.text).toContain("All data associated with this organization has been permanently deleted.");
  });

  it("the demo organization deactivated above is due for scrubbing on the next run: scrubbed on 10/11 (once the deferred_work job has not), refused on 12", async () => {
    // The demo organization deactivated above is now due (scheduled_deletion_date = then).
    const before = await snapshot(db());
    if (template === "zulip12_fresh") {
      const r = await run();
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(`1 organization is due to be scrubbed and was not scrubbed: `);
      expect(r.stderr).toContain(`(id ${TEST_REALM})`);
      expect(r.stderr).toContain("this database is Zulip 12.x");
      expect(changedTables(before, await snapshot(db()))).toEqual([]);
      expect(await reader.drain()).toEqual([]);
      expect(await reader.drain("deferred_work")).toEqual([]);
      const json = await run(["--json", "--quiet"]);
      expect(json.exitCode).toBe(1);
      const doc = JSON.parse(json.stdout);
      expect(doc.ok).toBe(false);
      expect(doc.realms_due_for_scrubbing).toEqual([
        {
          realm: expect.objectContaining({ id: TEST_REALM, string_id: expect.any(String) }),
          reason: expect.stringContaining("Zulip 12.x"),
          zulip_fails: false,
        },
      ]);
      expect(doc.demo_organizations_deactivated).toEqual([]);
      expect(doc.events).toBeNull();
      return;
    }
    // 10.x/11.x: the fixture's organization has messages from system bots (its welcome
    // messages), so do_scrub_realm goes through (test/archive_messages_scrub.test.ts checks the rows).
    const r = await run(["--json"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.realms_scrubbed).toEqual([expect.objectContaining({ realm: expect.objectContaining({ id: TEST_REALM }) })]);
    expect(doc.realms_due_for_scrubbing).toEqual([]);
    const [realm] = await db().query("SELECT deactivated, scheduled_deletion_date FROM zerver_realm WHERE id = $1", [TEST_REALM]);
    expect(realm).toEqual({ deactivated: true, scheduled_deletion_date: null });
    expect(changedTables(before, await snapshot(db()))).toEqual(expect.arrayContaining(["zerver_realm", "zerver_realmauditlog", "zerver_userprofile"]));
    expect(await reader.drain("deferred_work")).toEqual([]);
  });

  it("sends no email when the demo organization's owners have no email address (demo_organization_owner_email_exists)", async () => {
    await makeDemo();
    await db().query("UPDATE zerver_userprofile SET delivery_email = '' WHERE realm_id = $1 AND is_active AND NOT is_bot AND role = 100", [TEST_REALM]);
    const r = await run(["--json"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.demo_organizations_deactivated).toMatchObject([{ realm: { id: TEST_REALM }, results: [] }]);
    expect(sink.messages).toEqual([]);
    expect((await db().query("SELECT deactivated FROM zerver_realm WHERE id = $1", [TEST_REALM]))[0].deactivated).toBe(true);
    expect(await reader.drain("deferred_work")).toEqual([{ type: "scrub_deactivated_realm", realm_id: TEST_REALM }]);
  });

  it("a demo organization whose date has not come is left alone", async () => {
    await db().query(
      "UPDATE zerver_realm SET deactivated = false, scheduled_deletion_date = NULL, demo_organization_scheduled_deletion_date = now() + interval '1 day' WHERE id = $1",
      [TEST_REALM],
    );
    const before = await snapshot(db());
    const r = await run(["--json"]);
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout).demo_organizations_deactivated).toEqual([]);
    expect(changedTables(before, await snapshot(db()))).toEqual([]);
    expect(await reader.drain()).toEqual([]);
    expect(await reader.drain("deferred_work")).toEqual([]);
  });
});
