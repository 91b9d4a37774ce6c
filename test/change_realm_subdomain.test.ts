// change_realm_subdomain through the built CLI against a real Zulip 12.2 fresh install (whose
// organization lives on the root domain) and a Zulip 11 database: Zulip's validation messages,
// the rename and its REALM_SUBDOMAIN_CHANGED row, the redirect placeholder (a complete
// do_create_realm organization, deactivated with reason "subdomain_change", compared with the
// real organization's structure; on Zulip 11 built with that release's rows), redirect chains
// over several renames, session logout and memcached keys.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.js";
import type { ConfDir } from "./helpers/confdir.js";
import type { MemcachedClient } from "./helpers/memcached.js";
import type { TestDatabase } from "./helpers/pg.js";
import { snapshot, changedTables as changed } from "./helpers/snapshot.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";
import { addSession } from "./helpers/sessions.js";

const HOST = "zulip.example.net";

/** The structure of an organization, with ids replaced by names (independent SQL). */
async function structure(db: TestDatabase, realmId: number) {
  const groups = await db.query(
    `SELECT usergroup_ptr_id::text AS id, name, description, is_system_group FROM zerver_namedusergroup WHERE realm_id = $1 ORDER BY usergroup_ptr_id`,
    [realmId],
  );
  const gname = new Map(groups.map((g: any) => [g.id, g.name]));
  const [realm] = await db.query("SELECT * FROM zerver_realm WHERE id = $1", [realmId]);
  const settings = Object.fromEntries(
    Object.entries(realm)
      .filter(([k]) => /_group_id$|^can_create_groups_id$|^can_manage_all_groups_id$/.test(k))
      .map(([k, v]) => [k, gname.get(String(v)) ?? "?"]),
  );
  const edges = (
    await db.query(
      `SELECT sup.name || ' > ' || sub.name AS e FROM zerver_groupgroupmembership m
         JOIN zerver_namedusergroup sup ON sup.usergroup_ptr_id = m.supergroup_id JOIN zerver_namedusergroup sub ON sub.usergroup_ptr_id = m.subgroup_id
        WHERE sup.realm_id = $1 ORDER BY 1`,
      [realmId],
    )
  ).map((r: any) => r.e);
  const channels = (
    await db.query("SELECT name, description, rendered_description, invite_only FROM zerver_stream WHERE realm_id = $1 ORDER BY id", [realmId])
  ).map((r: any) => ({ ...r }));
  const defaults = (
    await db.query("SELECT s.name FROM zerver_defaultstream d JOIN zerver_stream s ON s.id = d.stream_id WHERE d.realm_id = $1 ORDER BY s.name", [realmId])
  ).map((r: any) => r.name);
  const auth = (await db.query("SELECT name FROM zerver_realmauthenticationmethod WHERE realm_id = $1 ORDER BY id", [realmId])).map((r: any) => r.name);
  const [rud] = await db.query("SELECT count(*)::int AS n FROM zerver_realmuserdefault WHERE realm_id = $1", [realmId]);
  const [seq] = await db.query("SELECT last_update_id FROM zerver_presencesequence WHERE realm_id = $1", [realmId]);
  return {
    groups: groups.map((g: any) => [g.name, g.description, g.is_system_group]),
    settings,
    edges,
    channels,
    defaults,
    auth,
    userDefaults: rud.n,
    presenceSequence: seq ? Number(seq.last_update_id) : null,
  };
}

describe("change_realm_subdomain on the real Zulip 12.2 data", () => {
  let db: TestDatabase;
  let client: MemcachedClient;
  let conf: ConfDir;
  let copy: ServerCopy;

  beforeAll(async () => {
    copy = await startServerCopy({ template: "zulip12_fresh", externalHost: HOST, client: true });
    ({ db, conf } = copy);
    client = copy.client!;
  });
  afterAll(() => copy?.stop());
  const run = (args: string[]) => runCli(args, { db, confDir: conf });
  const k = (key: string) => `:1:${conf.cachePrefix}${key}`;

  it("refuses unusable subdomains with Zulip's messages and changes nothing", async () => {
    const before = await snapshot(db);
    const cases: [string, string][] = [
      ["", "Subdomain already in use. Please choose a different one."],
      ["zulipinternal", "Subdomain already in use. Please choose a different one."],
      ["-abc", "Subdomain cannot start or end with a '-'."],
      ["New", "Subdomain can only have lowercase letters, numbers, and '-'s."],
      ["ab", "Subdomain needs to have length 3 or greater."],
      ["api", "Subdomain reserved. Please choose a different one."],
      ["x".repeat(41), "Ensure this value has at most 40 characters (it has 41)."],
    ];
    for (const [sub, message] of cases) {
      // "--" as with argparse, which would take "-abc" for an option too.
      const r = await run(["change_realm_subdomain", "-r", "2", "--", sub]);
      expect(r.exitCode, sub).toBe(1);
      expect(r.stderr, sub).toBe(message);
    }
    const missing = await run(["change_realm_subdomain", "-r", "2"]);
    expect(missing.exitCode).toBe(2);
    expect(changed(before, await snapshot(db))).toEqual([]);
  });

  it("--dry-run reports and writes nothing", async () => {
    const before = await snapshot(db);
    const r = await run(["change_realm_subdomain", "-r", "2", "testing-org", "--dry-run", "--json"]);
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      dry_run: true,
      subdomain: { old: "", new: "testing-org" },
      url: { old: `https://${HOST}`, new: `https://testing-org.${HOST}` },
      audit_log_ids: [],
      placeholder: null,
    });
    expect(changed(before, await snapshot(db))).toEqual([]);
  });

  it("renames, audits, logs everyone out and leaves a deactivated placeholder redirecting to the new URL", async () => {
    const session = await addSession(db, 8, conf.secrets.secret_key);
    await client.set(`:1:django.contrib.sessions.cached_db${session}`, "s");
    const keys = [
      "user_profile_by_id:8",
      "realm_user_dicts:2",
      "active_user_ids:2",
      "realm_rendered_description:",
      "realm_rendered_description:testing-org",
      "realm_text_description:",
    ];
    for (const key of keys) await client.set(k(key), "x");
    await db.query("UPDATE zerver_realm SET demo_organization_scheduled_deletion_date = now() + interval '20 days' WHERE id = 2");
    const [{ m: maxRealm }] = await db.query("SELECT max(id) AS m FROM zerver_realm");
    const [{ m: maxAudit }] = await db.query("SELECT max(id) AS m FROM zerver_realmauditlog");
    const realOrg = await structure(db, 2);
    const before = await snapshot(db);

    const r = await run(["change_realm_subdomain", "-r", "2", "testing-org", "--json"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ subdomain: { old: "", new: "testing-org" }, sessions_deleted_count: 1, redirects_updated: [] });
    expect(doc.realm).toMatchObject({ id: 2, string_id: "testing-org", url: `https://testing-org.${HOST}` });

    const [realm] = await db.query("SELECT string_id, demo_organization_scheduled_deletion_date, deactivated FROM zerver_realm WHERE id = 2");
    expect(realm).toEqual({ string_id: "testing-org", demo_organization_scheduled_deletion_date: null, deactivated: false });
    const audits = await db.query("SELECT * FROM zerver_realmauditlog WHERE id > $1 AND realm_id = 2", [maxAudit]);
    expect(audits.map((a: any) => [a.event_type, a.acting_user_id, a.modified_user_id, a.extra_data])).toEqual([
      [214, null, null, { "1": "", "2": "testing-org", was_demo_organization: true }],
    ]);

    // The placeholder: a complete organization at the old subdomain, like the real one's structure.
    const [p] = await db.query("SELECT * FROM zerver_realm WHERE id > $1", [maxRealm]);
    expect(p).toMatchObject({
      string_id: "",
      name: "testing",
      deactivated: true,
      deactivated_redirect: `https://testing-org.${HOST}`,
      org_type: 0,
      default_language: "en",
    });
    expect(doc.placeholder).toEqual({
      id: Number(p.id),
      string_id: "",
      name: "testing",
      url: `https://${HOST}`,
      deactivated_redirect: `https://testing-org.${HOST}`,
    });
    // The rename's audit row, then every row of the placeholder (its creation and deactivation).
    const placeholderRows = (await db.query("SELECT id FROM zerver_realmauditlog WHERE realm_id = $1 ORDER BY id", [p.id])).map((x: any) => Number(x.id));
    expect(placeholderRows.length).toBeGreaterThan(2);
    expect(doc.audit_log_ids.slice(1)).toEqual(placeholderRows);
    const [rename] = await db.query("SELECT realm_id, event_type FROM zerver_realmauditlog WHERE id = $1", [doc.audit_log_ids[0]]);
    expect(rename).toEqual({ realm_id: 2, event_type: 214 });
    const placeholder = await structure(db, Number(p.id));
    // (the real organization's presence sequence has moved on since its creation)
    expect(placeholder).toEqual({ ...realOrg, channels: placeholder.channels, presenceSequence: 0 });
    expect(placeholder.channels.map((c: any) => [c.name, c.description])).toEqual(realOrg.channels.map((c: any) => [c.name, c.description]));
    const pAudit = await db.query("SELECT event_type, acting_user_id, extra_data FROM zerver_realmauditlog WHERE realm_id = $1 ORDER BY id", [p.id]);
    const counts = (rows: any[]) => rows.reduce((m: Record<number, number>, a: any) => ({ ...m, [a.event_type]: (m[a.event_type] ?? 0) + 1 }), {});
    expect(counts(pAudit)).toEqual({ 215: 1, 701: 8, 705: 6, 707: 6, 601: 3, 201: 1 });
    expect(pAudit[0]).toEqual({
      event_type: 215,
      acting_user_id: null,
      extra_data: { how_realm_creator_found_zulip: null, how_realm_creator_found_zulip_extra_context: null },
    });
    expect(pAudit[pAudit.length - 1]).toEqual({
      event_type: 201,
      acting_user_id: null,
      extra_data: {
        "10": { "11": { "100": 0, "200": 0, "300": 0, "400": 0, "600": 0, workplace_users: 0, non_workplace_users: 0 }, "12": 0 },
        deactivation_reason: "subdomain_change",
      },
    });
    const [rud] = await db.query("SELECT email_address_visibility FROM zerver_realmuserdefault WHERE realm_id = $1", [p.id]);
    expect(rud.email_address_visibility).toBe(3);

    expect(await db.query("SELECT 1 FROM django_session WHERE session_key = $1", [session])).toEqual([]);
    expect(await client.get(`:1:django.contrib.sessions.cached_db${session}`)).toBeNull();
    for (const key of keys) expect(await client.get(k(key)), key).toBeNull();
    expect(changed(before, await snapshot(db))).toEqual([
      "django_session",
      "zerver_defaultstream",
      "zerver_groupgroupmembership",
      "zerver_namedusergroup",
      "zerver_presencesequence",
      "zerver_realm",
      "zerver_realmauditlog",
      "zerver_realmauthenticationmethod",
      "zerver_realmuserdefault",
      "zerver_recipient",
      "zerver_stream",
      "zerver_usergroup",
    ]);
  });

  it("follows the organization with every earlier placeholder on a second rename", async () => {
    const r = await run(["change_realm_subdomain", "-r", "testing-org", "team-chat"]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("Done!");
    const realms = await db.query("SELECT string_id, deactivated, deactivated_redirect FROM zerver_realm ORDER BY id");
    expect(realms).toEqual([
      { string_id: "zulipinternal", deactivated: false, deactivated_redirect: null },
      { string_id: "team-chat", deactivated: false, deactivated_redirect: null },
      { string_id: "", deactivated: true, deactivated_redirect: `https://team-chat.${HOST}` },
      { string_id: "testing-org", deactivated: true, deactivated_redirect: `https://team-chat.${HOST}` },
    ]);
    // No longer a demo organization (the first rename cleared its deletion date).
    const [a] = await db.query("SELECT extra_data FROM zerver_realmauditlog WHERE event_type = 214 ORDER BY id DESC LIMIT 1");
    expect(a.extra_data).toEqual({ "1": "testing-org", "2": "team-chat", was_demo_organization: false });
    // The old subdomain is now taken by its placeholder.
    const back = await run(["change_realm_subdomain", "-r", "team-chat", "testing-org"]);
    expect(back.stderr).toBe("Subdomain already in use. Please choose a different one.");
  });

  it("--skip-redirect renames only; --allow-reserved-subdomain allows reserved names", async () => {
    const [{ n: before }] = await db.query("SELECT count(*)::int AS n FROM zerver_realm");
    const r = await run(["change_realm_subdomain", "-r", "team-chat", "help", "--skip-redirect", "--allow-reserved-subdomain", "--json"]);
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ placeholder: null, subdomain: { new: "help" } });
    const [{ n: after }] = await db.query("SELECT count(*)::int AS n FROM zerver_realm");
    expect(after).toBe(before);
    // Placeholders pointing at the old URL follow even without a new placeholder.
    const redirects = await db.query("SELECT DISTINCT deactivated_redirect FROM zerver_realm WHERE deactivated");
    expect(redirects).toEqual([{ deactivated_redirect: `https://help.${HOST}` }]);
  });
});

describe("change_realm_subdomain on a Zulip 11 database", () => {
  let db: TestDatabase;
  let conf: ConfDir;
  let copy: ServerCopy;
  beforeAll(async () => {
    copy = await startServerCopy({ template: "zulip11_fresh", externalHost: HOST });
    ({ db, conf } = copy);
  });
  afterAll(() => copy?.stop());

  it("renames with --skip-redirect", async () => {
    const r = await runCli(["change_realm_subdomain", "-r", "2", "neworg", "--skip-redirect"], { db, confDir: conf });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const [row] = await db.query("SELECT string_id FROM zerver_realm WHERE id = 2");
    expect(row.string_id).toBe("neworg");
    const [a] = await db.query("SELECT event_type, extra_data FROM zerver_realmauditlog ORDER BY id DESC LIMIT 1");
    // Zulip 10.x/11.x wrote the old keys (12.x: OLD_VALUE/NEW_VALUE and was_demo_organization).
    expect(a).toEqual({ event_type: 214, extra_data: { old_subdomain: "", new_subdomain: "neworg" } });
  });

  it("leaves a placeholder organization built as Zulip 11's do_create_realm builds one", async () => {
    const [{ m: maxRealm }] = await db.query("SELECT max(id) AS m FROM zerver_realm");
    const realOrg = await structure(db, 2);
    const r = await runCli(["change_realm_subdomain", "-r", "2", "neworg2", "--json"], { db, confDir: conf });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const [p] = await db.query("SELECT * FROM zerver_realm WHERE id > $1", [maxRealm]);
    expect(p).toMatchObject({
      string_id: "neworg",
      deactivated: true,
      deactivated_redirect: `https://neworg2.${HOST}`,
      giphy_rating: 2,
      zulip_update_announcements_level: 21,
    });
    expect("gif_rating_policy" in p || "workplace_users_group_id" in p).toBe(false);
    // Before 12.0 new organizations announce new channels and Zulip updates in #general.
    const [general] = await db.query("SELECT id FROM zerver_stream WHERE realm_id = $1 AND name = 'general'", [p.id]);
    expect([p.new_stream_announcements_stream_id, p.zulip_update_announcements_stream_id]).toEqual([general.id, general.id]);
    const placeholder = await structure(db, Number(p.id));
    expect(placeholder).toEqual({ ...realOrg, channels: placeholder.channels, presenceSequence: 0 });
    const [deactivation] = await db.query("SELECT extra_data FROM zerver_realmauditlog WHERE realm_id = $1 AND event_type = 201", [p.id]);
    expect(deactivation.extra_data).toEqual({
      "10": { "11": { "100": 0, "200": 0, "300": 0, "400": 0, "600": 0 }, "12": 0 },
      deactivation_reason: "subdomain_change",
    });
  });
});
