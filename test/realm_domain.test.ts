// realm_domain through the built CLI on Zulip 12 / 11 / 10 databases: the zerver_realmdomain
// rows, the REALM_DOMAIN_ADDED / _REMOVED audit rows with Zulip's extra_data, the
// emails_restricted_to_domains side effect of removing the last domain (207 row, cache flush),
// the realm_domains / realm events (zerver/actions/realm_domains.py; Zulip's
// test_realm_domains.py checks the same rows and events), validate_domain's messages.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runCli, type CliResult } from "./helpers/cli.js";
import { QueueReader, sortedUsers } from "./helpers/rabbitmq.js";
import { startServerCopy, type ServerCopy } from "./helpers/server-copy.js";
import { changedTables, snapshot } from "./helpers/snapshot.js";
import { TEST_REALM } from "./helpers/users.js";
import { CommandError } from "../src/lib/errors.js";
import { lockRealm } from "../src/zulip/realms.js";

describe.each(["zulip12_fresh", "zulip11_fresh", "zulip10_fresh"] as const)("realm_domain on %s", (template) => {
  let copy: ServerCopy;
  let reader: QueueReader;
  let stringId: string;
  let auditCols: Set<string>;
  const cli = (args: string[]): Promise<CliResult> => runCli(["realm_domain", "-r", String(TEST_REALM), ...args], { confDir: copy.conf, db: copy.db });

  beforeAll(async () => {
    copy = await startServerCopy({ template, externalHost: "zulip.example.net", client: true });
    reader = await QueueReader.open();
    stringId = (await copy.db.query("SELECT string_id FROM zerver_realm WHERE id = $1", [TEST_REALM]))[0].string_id;
    auditCols = new Set(
      (await copy.db.query("SELECT column_name FROM information_schema.columns WHERE table_schema = 'zulip' AND table_name = 'zerver_realmauditlog'")).map(
        (r: any) => r.column_name,
      ),
    );
  });
  afterAll(async () => {
    await reader?.close();
    await copy?.stop();
  });
  beforeEach(async () => {
    await reader.purge("notify_tornado", "deferred_work");
  });

  const maxAudit = async () => Number((await copy.db.query("SELECT coalesce(max(id), 0) AS m FROM zerver_realmauditlog"))[0].m);
  const domainRows = async () =>
    (await copy.db.query("SELECT realm_id, domain, allow_subdomains FROM zerver_realmdomain ORDER BY id")).map((r: any) => ({
      ...r,
      realm_id: Number(r.realm_id),
    }));
  const activeIds = async () =>
    (await copy.db.query("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active ORDER BY id", [TEST_REALM])).map((r: any) => Number(r.id));
  async function auditRows(after: number): Promise<any[]> {
    return (await copy.db.query("SELECT * FROM zerver_realmauditlog WHERE id > $1 ORDER BY id", [after])).map(({ id: _i, event_time: _t, ...r }: any) => ({
      ...r,
      event_type: Number(r.event_type),
    }));
  }
  function audit(eventType: number, extraData: unknown): Record<string, unknown> {
    const row: Record<string, unknown> = {
      realm_id: TEST_REALM,
      acting_user_id: null,
      modified_user_id: null,
      modified_stream_id: null,
      modified_user_group_id: null,
      event_last_message_id: null,
      event_type: eventType,
      backfilled: false,
      extra_data: extraData,
    };
    if (auditCols.has("modified_channel_folder_id")) row.modified_channel_folder_id = null;
    if (auditCols.has("scrubbed")) row.scrubbed = false;
    return row;
  }
  async function expectRefused(args: string[], message: string, code = 1): Promise<void> {
    const before = await snapshot(copy.db, true);
    const r = await cli(args);
    expect(r.stderr).toContain(message);
    expect(r.exitCode).toBe(code);
    expect(changedTables(before, await snapshot(copy.db, true))).toEqual([]);
    expect(await reader.drain()).toEqual([]);
  }

  it("an organization deleted while a command runs: the realm lock (realms.ts lockRealm, every action's) refuses with a CommandError", async () => {
    const missing = lockRealm(copy.db.client, 2_000_000_000, { columns: "id" });
    await expect(missing).rejects.toBeInstanceOf(CommandError);
    await expect(missing).rejects.toThrow("The organization was deleted while this command ran; nothing was changed.");
    expect(Number((await lockRealm(copy.db.client, TEST_REALM, { columns: "id" })).id)).toBe(TEST_REALM);
  });

  it("show (the default) on an organization without domains", async () => {
    const r = await cli([]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(`Domains for ${stringId}:`);
    expect(JSON.parse((await cli(["--json"])).stdout)).toMatchObject({ ok: true, op: "show", realm: { id: TEST_REALM, string_id: stringId }, domains: [] });
  });

  it("add: the row, REALM_DOMAIN_ADDED with every domain, the realm_domains add event", async () => {
    const before = await snapshot(copy.db);
    const a = await maxAudit();
    const r = await cli(["--op", "add", " Example.COM "]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(`Added example.com (subdomains not allowed) to ${stringId}.`);
    expect(changedTables(before, await snapshot(copy.db))).toEqual(["zerver_realmauditlog", "zerver_realmdomain"]);
    expect(await domainRows()).toEqual([{ realm_id: TEST_REALM, domain: "example.com", allow_subdomains: false }]);
    const added = { domain: "example.com", allow_subdomains: false };
    expect(await auditRows(a)).toEqual([audit(218, { realm_domains: [added], added_domain: added })]);
    expect(sortedUsers(await reader.drain())).toEqual([{ event: { type: "realm_domains", op: "add", realm_domain: added }, users: await activeIds() }]);

    const a2 = await maxAudit();
    const r2 = await cli(["--op", "add", "--allow-subdomains", "other.org", "--json"]);
    expect(r2.exitCode).toBe(0);
    const doc = JSON.parse(r2.stdout);
    const other = { domain: "other.org", allow_subdomains: true };
    expect(doc).toMatchObject({
      ok: true,
      dry_run: false,
      op: "add",
      domain: "other.org",
      allow_subdomains: true,
      domains: [added, other],
      emails_restricted_to_domains: { old: false, new: false },
    });
    expect(doc.events).toMatchObject({ ok: true, published: 1 });
    expect(await auditRows(a2)).toEqual([audit(218, { realm_domains: [added, other], added_domain: other })]);
    expect(doc.audit_log_ids).toEqual([a2 + 1]);
  });

  it("show lists them as manage.py does", async () => {
    const r = await cli(["--op", "show"]);
    expect(r.stdout.split("\n")).toEqual([`Domains for ${stringId}:`, "example.com (subdomains not allowed)", "other.org (subdomains allowed)"]);
  });

  it("refusals: an existing domain, validate_domain's rules, no such domain, unknown --op, a missing <domain>", async () => {
    await expectRefused(["--op", "add", "EXAMPLE.com"], "The domain example.com is already a part of your organization.");
    await expectRefused(["--op", "add", "nodot"], "Domain must have at least one dot (.)");
    await expectRefused(["--op", "add", "  "], "Domain can't be empty.");
    await expectRefused(["--op", "add", ".a.com"], "Domain cannot start or end with a dot (.)");
    await expectRefused(["--op", "add", "a..com"], "Consecutive '.' are not allowed.");
    await expectRefused(["--op", "add", "a.-b.com"], "Subdomains cannot start or end with a '-'.");
    await expectRefused(["--op", "add", "a_b.com"], "Domain can only have letters, numbers, '.' and '-'s.");
    await expectRefused(["--op", "add", `${"a".repeat(252)}.com`], "Domain is too long");
    await expectRefused(["--op", "remove", "nothere.com"], "No such entry found!");
    await expectRefused(["--op", "delete", "example.com"], "Unknown operation 'delete'");
    await expectRefused(["--op", "add"], "the following arguments are required: <domain>", 2);
  });

  it("--dry-run writes nothing and says what would happen", async () => {
    const before = await snapshot(copy.db, true);
    const r = await cli(["--op", "remove", "other.org", "--dry-run"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout.split("\n")).toEqual([`Would remove other.org (subdomains allowed) from ${stringId}.`, "(dry run: nothing was changed)"]);
    const a = await cli(["--op", "add", "new.example", "--dry-run", "--json"]);
    expect(JSON.parse(a.stdout)).toMatchObject({ dry_run: true, domain: "new.example", cache: null, events: null });
    expect(changedTables(before, await snapshot(copy.db, true))).toEqual([]);
    expect(await reader.drain()).toEqual([]);
  });

  it("remove: REALM_DOMAIN_REMOVED with the rest; the restriction stays while a domain is left", async () => {
    await copy.db.query("UPDATE zerver_realm SET emails_restricted_to_domains = true WHERE id = $1", [TEST_REALM]);
    const before = await snapshot(copy.db);
    const a = await maxAudit();
    const r = await cli(["--op", "remove", "example.com"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(`Removed example.com from ${stringId}.`);
    expect(changedTables(before, await snapshot(copy.db))).toEqual(["zerver_realmauditlog", "zerver_realmdomain"]);
    expect(await auditRows(a)).toEqual([
      audit(220, { realm_domains: [{ domain: "other.org", allow_subdomains: true }], removed_domain: { domain: "example.com", allow_subdomains: false } }),
    ]);
    expect(sortedUsers(await reader.drain())).toEqual([{ event: { type: "realm_domains", op: "remove", domain: "example.com" }, users: await activeIds() }]);
  });

  it("removing the last domain turns emails_restricted_to_domains off as do_set_realm_property does", async () => {
    const key = `:1:${copy.conf.cachePrefix}user_profile_by_id:${(await activeIds())[0]}`;
    await copy.client!.set(key, "cached");
    const before = await snapshot(copy.db);
    const a = await maxAudit();
    const r = await cli(["--op", "remove", "other.org"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout.split("\n")).toEqual([
      `Removed other.org from ${stringId}.`,
      "It was the last domain: new users' email addresses are no longer restricted to the organization's domains.",
    ]);
    expect(changedTables(before, await snapshot(copy.db))).toEqual(["zerver_realm", "zerver_realmauditlog", "zerver_realmdomain"]);
    expect((await copy.db.query("SELECT emails_restricted_to_domains FROM zerver_realm WHERE id = $1", [TEST_REALM]))[0].emails_restricted_to_domains).toBe(
      false,
    );
    expect(await auditRows(a)).toEqual([
      audit(220, { realm_domains: [], removed_domain: { domain: "other.org", allow_subdomains: true } }),
      audit(207, { "1": true, "2": false, property: "emails_restricted_to_domains" }),
    ]);
    const users = await activeIds();
    expect(sortedUsers(await reader.drain())).toEqual([
      { event: { type: "realm", op: "update", property: "emails_restricted_to_domains", value: false }, users },
      { event: { type: "realm_domains", op: "remove", domain: "other.org" }, users },
    ]);
    expect(await copy.client!.getString(key)).toBeNull();
    expect(await domainRows()).toEqual([]);
  });
});
