// bulk_change_user_name through the built CLI on Zulip 12 / 11 / 10 databases: manage.py's
// output lines, check_full_name's refusals (zerver/lib/users.py; Zulip's test_users.py /
// test_settings.py name tests expect the same messages), do_change_full_name's rows
// (USER_FULL_NAME_CHANGED with {"1": old, "2": new}), events (realm_user update; realm_bot
// update for bots before 12.0) and cache deletions; nothing else changes.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runCli, type CliResult } from "./helpers/cli.js";
import { QueueReader, sortedUsers } from "./helpers/rabbitmq.js";
import { startServerCopy, type ServerCopy } from "./helpers/server-copy.js";
import { changedTables, snapshot } from "./helpers/snapshot.js";
import { addUser, TEST_REALM, type TestUser } from "./helpers/users.js";

describe.each(["zulip12_fresh", "zulip11_fresh", "zulip10_fresh"] as const)("bulk_change_user_name on %s", (template) => {
  let copy: ServerCopy;
  let reader: QueueReader;
  let dir: string;
  let u1: TestUser, u2: TestUser, u3: TestUser, bot: TestUser;
  let stringId: string;
  let auditCols: Set<string>;
  const cli = (args: string[], input?: string): Promise<CliResult> =>
    runCli(["bulk_change_user_name", "-r", String(TEST_REALM), ...args], { confDir: copy.conf, db: copy.db, ...(input !== undefined ? { input } : {}) });
  const file = (name: string, text: string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };
  const nameOf = async (id: number) => (await copy.db.query("SELECT full_name FROM zerver_userprofile WHERE id = $1", [id]))[0].full_name;
  const maxAudit = async () => Number((await copy.db.query("SELECT coalesce(max(id), 0) AS m FROM zerver_realmauditlog"))[0].m);
  const activeIds = async () =>
    (await copy.db.query("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active ORDER BY id", [TEST_REALM])).map((r: any) => Number(r.id));

  beforeAll(async () => {
    copy = await startServerCopy({ template, externalHost: "zulip.example.net", client: true });
    reader = await QueueReader.open();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "zm-names-"));
    fs.chmodSync(dir, 0o755);
    await addUser(copy.db, { role: 200, name: "admin" });
    u1 = await addUser(copy.db, { role: 400, name: "one" });
    u2 = await addUser(copy.db, { role: 400, name: "two" });
    u3 = await addUser(copy.db, { role: 600, name: "three" });
    bot = await addUser(copy.db, { role: 400, bot: true, botOwnerId: u2.id, name: "bot" });
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
    fs.rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    await reader.purge("notify_tornado", "deferred_work");
  });

  function audit(userId: number, oldName: string, newName: string): Record<string, unknown> {
    const row: Record<string, unknown> = {
      realm_id: TEST_REALM,
      acting_user_id: null,
      modified_user_id: userId,
      modified_stream_id: null,
      modified_user_group_id: null,
      event_last_message_id: null,
      event_type: 124,
      backfilled: false,
      extra_data: { "1": oldName, "2": newName },
    };
    if (auditCols.has("modified_channel_folder_id")) row.modified_channel_folder_id = null;
    if (auditCols.has("scrubbed")) row.scrubbed = false;
    return row;
  }

  it("renames, skips what manage.py skips and what check_full_name refuses, one audit row per change", async () => {
    const old1 = await nameOf(u1.id);
    const oldBot = await nameOf(bot.id);
    const old3 = await nameOf(u3.id);
    const key = (id: number) => `:1:${copy.conf.cachePrefix}user_profile_by_id:${id}`;
    await copy.client!.set(key(u1.id), "cached");
    await copy.client!.set(`:1:${copy.conf.cachePrefix}realm_user_dicts:${TEST_REALM}`, "cached");
    const data = file(
      "names.csv",
      [
        `${u1.email.toUpperCase()},  Ada Lovelace  `,
        "nobody@test.example,Nobody",
        "",
        "no comma here",
        `${u2.email},Bad*Name`,
        `${u2.email},${"x".repeat(101)}`,
        `${u2.email},Name|15`,
        `${u2.email},   `,
        `${bot.email},Robot, the second`,
        `${u3.email},${old3}`,
      ].join("\r\n") + "\r\n",
    );
    const before = await snapshot(copy.db);
    const a = await maxAudit();
    const r = await cli([data]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout.split("\n")).toEqual([
      `${u1.email.toUpperCase()}: ${old1} -> ${"  Ada Lovelace"}`,
      `e-mail nobody@test.example doesn't exist in the realm ${stringId} ${TEST_REALM}, skipping`,
      `${u2.email}: ${await nameOf(u2.id)} -> Bad*Name`,
      `${u2.email}: ${await nameOf(u2.id)} -> ${"x".repeat(101)}`,
      `${u2.email}: ${await nameOf(u2.id)} -> Name|15`,
      `${u2.email}: ${await nameOf(u2.id)} -> `,
      `${bot.email}: ${oldBot} -> Robot, the second`,
      `${u3.email}: ${old3} -> ${old3}`,
      "  (the name is unchanged: nothing was written)",
    ]);
    expect(r.stderr.split("\n")).toEqual([
      "line 4: expected <email>,<new name>; skipping",
      `line 5 (${u2.email}): Invalid characters in name! Skipping.`,
      `line 6 (${u2.email}): Name too long! Skipping.`,
      `line 7 (${u2.email}): Invalid format! Skipping.`,
      `line 8 (${u2.email}): Name must not be empty! Skipping.`,
      "6 of 9 lines were skipped.",
    ]);
    expect(await nameOf(u1.id)).toBe("Ada Lovelace");
    expect(await nameOf(bot.id)).toBe("Robot, the second");
    expect(changedTables(before, await snapshot(copy.db))).toEqual(["zerver_realmauditlog", "zerver_userprofile"]);
    const rows = (await copy.db.query("SELECT * FROM zerver_realmauditlog WHERE id > $1 ORDER BY id", [a])).map(({ id: _i, event_time: _t, ...x }: any) => ({
      ...x,
      event_type: Number(x.event_type),
      modified_user_id: Number(x.modified_user_id),
    }));
    expect(rows).toEqual([audit(u1.id, old1, "Ada Lovelace"), audit(bot.id, oldBot, "Robot, the second")]);
    // Events: realm_user update to everyone who can see the user (all active users: access is
    // not restricted in a fresh organization); for the bot also realm_bot update to its owner
    // and the human admins, before Zulip 12.0.
    const everyone = await activeIds();
    const humanAdmins = (
      await copy.db.query("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND NOT is_bot AND role IN (100, 200) ORDER BY id", [TEST_REALM])
    ).map((x: any) => Number(x.id));
    const expected = [
      { event: { type: "realm_user", op: "update", person: { user_id: u1.id, full_name: "Ada Lovelace" } }, users: everyone },
      { event: { type: "realm_user", op: "update", person: { user_id: bot.id, full_name: "Robot, the second" } }, users: everyone },
    ];
    if (template !== "zulip12_fresh") {
      expected.push({
        event: { type: "realm_bot", op: "update", bot: { user_id: bot.id, full_name: "Robot, the second" } } as any,
        users: [...new Set([...humanAdmins, u2.id])].sort((x, y) => x - y),
      });
    }
    expect(sortedUsers(await reader.drain())).toEqual(expected);
    expect(await copy.client!.getString(key(u1.id))).toBeNull();
    expect(await copy.client!.getString(`:1:${copy.conf.cachePrefix}realm_user_dicts:${TEST_REALM}`)).toBeNull();
  });

  it("organizations requiring unique names refuse a name another user has (NFKC, case-insensitive)", async () => {
    await copy.db.query("UPDATE zerver_realm SET require_unique_names = true WHERE id = $1", [TEST_REALM]);
    try {
      const before = await snapshot(copy.db, true);
      const r = await cli(["-"], `${u2.email},ADA LOVELACE\n`);
      expect(r.exitCode).toBe(1);
      expect(r.stderr.split("\n")[0]).toBe(`line 1 (${u2.email}): Unique names required in this organization. Skipping.`);
      expect(changedTables(before, await snapshot(copy.db, true))).toEqual([]);
      // The user's own current name is not a clash.
      const own = await cli(["-"], `${u1.email},ada lovelace\n`);
      expect(own.exitCode).toBe(0);
      expect(await nameOf(u1.id)).toBe("ada lovelace");
    } finally {
      await copy.db.query("UPDATE zerver_realm SET require_unique_names = false WHERE id = $1", [TEST_REALM]);
    }
  });

  it("--dry-run checks every name and writes nothing; --json reports each line", async () => {
    const before = await snapshot(copy.db, true);
    const r = await cli([file("dry.csv", `${u2.email},Grace Hopper\n${u3.email},Bad\`Name\n`), "--dry-run", "--json"]);
    expect(r.exitCode).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ ok: false, exit_code: 1, dry_run: true, realm: { id: TEST_REALM, string_id: stringId }, cache: null, events: null });
    expect(doc.results).toMatchObject([
      {
        line: 1,
        email: u2.email,
        user: { id: u2.id },
        full_name: { old: await nameOf(u2.id), new: "Grace Hopper" },
        audit_log_ids: [],
        ok: true,
        status: "would_do",
        error: null,
      },
      { line: 2, email: u3.email, user: { id: u3.id }, full_name: null, audit_log_ids: [], ok: false, status: "refused", error: "Invalid characters in name!" },
    ]);
    expect(changedTables(before, await snapshot(copy.db, true))).toEqual([]);
    expect(await reader.drain()).toEqual([]);
  });

  it("a missing file and a missing argument", async () => {
    const r = await cli([path.join(dir, "nope.csv")]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("Cannot read the data file");
    expect((await cli([])).exitCode).toBe(2);
  });
});
