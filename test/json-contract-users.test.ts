// The --json contract (issue 15, second slice): the user write commands' documents in their
// success, refusal, dry-run and failure cases (environment error, usage error) validate against
// the schema `help <command> --json-schema` prints; the envelope's invariants hold; the README's
// examples validate; the commands print through the contract (jsonBody).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRealm } from "../src/zulip/actions/create-realm.js";
import { createUser } from "../src/zulip/actions/create-user.js";
import { runCli } from "./helpers/cli.js";
import { type ConfDir, makeConfDir } from "./helpers/confdir.js";
import { type MemcachedInstance } from "./helpers/memcached.js";
import { REPO_ROOT, type TestDatabase } from "./helpers/pg.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";
import { checkDocument, checkReadmeExamples } from "./helpers/json-schema.js";

const USER_COMMANDS = [
  "deactivate_user",
  "reactivate_user",
  "change_user_email",
  "change_password",
  "rate_limit",
  "soft_deactivate_users",
  "bulk_change_user_name",
  "logout_all_users",
  "create_user",
  "change_user_role",
  "delete_user",
];

const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

describe("the user write commands", () => {
  it("print through the contract (jsonBody) and publish a schema", () => {
    for (const name of USER_COMMANDS) {
      const src = fs.readFileSync(path.join(REPO_ROOT, "src", "commands", `${name}.ts`), "utf8");
      expect(src, name).not.toContain("jsonResult(");
      expect(src, name).toMatch(/jsonBody</);
      expect(src, name).not.toMatch(/^import (?!type)[^;]*schemas\//m);
      expect(fs.existsSync(path.join(REPO_ROOT, "dist", "json-schema", `${name}.schema.json`)), name).toBe(true);
    }
  });

  it("an unknown option is a usage error document; an unreachable database an environment one", async () => {
    for (const name of USER_COMMANDS) {
      const doc = await checkDocument(name, await runCli([name, "--no-such-option", "--json"]), 2);
      expect(doc.error_code).toBe("usage");
    }
  });
});

describe("the user write commands' documents", () => {
  let db: TestDatabase;
  let mc: MemcachedInstance;
  let conf: ConfDir;
  let downConf: ConfDir;
  const run = (args: string[], c: ConfDir = conf, input?: string) => runCli([...args, "--json"], { confDir: c, db, input });
  const down = (args: string[]) => runCli([...args, "--json"], { confDir: conf, db, env: { PGPORT: "1", PGHOST: "127.0.0.1" } });
  const users: Record<string, number> = {};

  let copy: ServerCopy;

  beforeAll(async () => {
    copy = await startServerCopy({ template: "zulip12_fresh", redis: true, externalHost: "zulip.example.net" });
    ({ db, mc, conf } = copy);
    downConf = makeConfDir({ memcached: mc, redis: { host: "127.0.0.1", port: 1, password: "x" }, externalHost: "zulip.example.net" });
    const q = db.client;
    await q.query("BEGIN");
    const realm = await createRealm(q, { stringId: "lab", name: "The Lab" });
    for (const [email, role] of [
      ["owner@lab.example", 100],
      ["tara@lab.example", 400],
      ["max@lab.example", 400],
      ["jade@lab.example", 400],
      ["chloe@lab.example", 400],
      ["gone@lab.example", 400],
    ] as const) {
      const u = await createUser(q, realm.id, { email, fullName: email.split("@")[0], role, externalHost: "zulip.example.net" });
      users[email] = Number(u.id);
    }
    await q.query("SET CONSTRAINTS ALL IMMEDIATE");
    await q.query("COMMIT");
  }, 180_000);
  afterAll(async () => {
    downConf?.cleanup();
    await copy?.stop();
  });

  it("deactivate_user: plan without -f (exit 1), --dry-run (exit 0), -f, unknown user, database down", async () => {
    const plan = await checkDocument("deactivate_user", await run(["deactivate_user", "-r", "lab", "tara@lab.example"]), 1);
    expect(plan).toMatchObject({ dry_run: true, error: "This was a dry run. Pass -f to actually deactivate.", error_code: "refused", deactivated: [] });
    expect(plan.user).toMatchObject({ id: users["tara@lab.example"], role: "member", role_id: 400, was_active: true });
    expect(plan.realm).toMatchObject({ string_id: "lab", name: "The Lab" });
    const dry = await checkDocument("deactivate_user", await run(["deactivate_user", "-r", "lab", "tara@lab.example", "--dry-run"]), 0);
    expect(dry).toMatchObject({ dry_run: true, deactivated: [], cache: null, events: null });
    const done = await checkDocument("deactivate_user", await run(["deactivate_user", "-r", "lab", "tara@lab.example", "-f", "--events", "none"]), 0);
    expect(done.dry_run).toBe(false);
    expect(done.deactivated).toHaveLength(1);
    expect(done.deactivated[0].user.id).toBe(users["tara@lab.example"]);
    expect(done.deactivated[0].audit_log_ids).toHaveLength(1);
    expect(done.cache.ok).toBe(true);
    expect(done.events.skipped).toBe(true);
    for (const s of done.sessions) expect(s.expires_at).toMatch(TIMESTAMP);
    expect((await checkDocument("deactivate_user", await run(["deactivate_user", "-r", "lab", "nobody@lab.example", "-f"]), 1)).error_code).toBe(
      "user_not_found",
    );
    expect((await checkDocument("deactivate_user", await down(["deactivate_user", "tara@lab.example", "-f"]), 3)).error_code).toBe("database_unreachable");
    expect((await checkDocument("deactivate_user", await run(["deactivate_user", "-f"]), 2)).error_code).toBe("usage");
  });

  it("reactivate_user: dry run, success, already active (refused)", async () => {
    await run(["deactivate_user", "-r", "lab", "gone@lab.example", "-f", "--events", "none"]);
    const dry = await checkDocument("reactivate_user", await run(["reactivate_user", "-r", "lab", "gone@lab.example", "--dry-run"]), 0);
    expect(dry).toMatchObject({ dry_run: true, changed: false, audit_log_ids: [], cache: null, events: null });
    const done = await checkDocument("reactivate_user", await run(["reactivate_user", "-r", "lab", "gone@lab.example", "--events", "none"]), 0);
    expect(done).toMatchObject({ dry_run: false, changed: true, inactive_bot_owner: null, user: { id: users["gone@lab.example"], role: "member" } });
    expect(done.audit_log_ids).toHaveLength(1);
    const again = await checkDocument("reactivate_user", await run(["reactivate_user", "-r", "lab", "gone@lab.example"]), 1);
    expect(again.error_code).toBe("refused");
  });

  it("change_user_email: dry run, success with {old, new}, invalid address refused", async () => {
    const dry = await checkDocument("change_user_email", await run(["change_user_email", "-r", "lab", "max@lab.example", "max2@lab.example", "--dry-run"]), 0);
    expect(dry).toMatchObject({ dry_run: true, delivery_email: { old: "max@lab.example", new: "max2@lab.example" }, audit_log_ids: [] });
    const done = await checkDocument(
      "change_user_email",
      await run(["change_user_email", "-r", "lab", "max@lab.example", "max2@lab.example", "--events", "none"]),
      0,
    );
    expect(done.delivery_email).toEqual({ old: "max@lab.example", new: "max2@lab.example" });
    expect(done.audit_log_ids).toHaveLength(1);
    expect(done.cache.ok).toBe(true);
    const bad = await checkDocument("change_user_email", await run(["change_user_email", "-r", "lab", "max2@lab.example", "not-an-address"]), 1);
    expect(bad.error_code).toBe("refused");
  });

  it("change_password: success, Redis down (a failed service report, exit 0), weak password refused", async () => {
    const pw = "a long and fine passphrase 42\n";
    const ok = await checkDocument("change_password", await run(["change_password", "-r", "lab", "jade@lab.example", "--password-file", "-"], conf, pw), 0);
    expect(ok).toMatchObject({ dry_run: false, user: { id: users["jade@lab.example"] }, rate_limit: { ok: true, warning: null, keys_deleted_count: 0 } });
    expect(ok.audit_log_ids).toHaveLength(1);
    const redisDown = await checkDocument(
      "change_password",
      await run(["change_password", "-r", "lab", "jade@lab.example", "--password-file", "-"], downConf, pw),
      0,
    );
    expect(redisDown.rate_limit.ok).toBe(false);
    expect(redisDown.rate_limit.warning).toContain("Redis");
    const weak = await checkDocument(
      "change_password",
      await run(["change_password", "-r", "lab", "jade@lab.example", "--password-file", "-"], conf, "x\n"),
      1,
    );
    expect(weak.error_code).toBe("refused");
  });

  it("rate_limit: block, show, set-limits dry run and unchanged, Redis down, neither -e nor -a", async () => {
    const block = await checkDocument("rate_limit", await run(["rate_limit", "-e", "chloe@lab.example", "-s", "600", "block"]), 0);
    expect(block).toMatchObject({ operation: "block", block_duration_ms: 600_000, redis_server: expect.any(String), cache: null });
    expect(block.results[0]).toMatchObject({ user: { id: users["chloe@lab.example"], is_bot: false }, blocked: true, status: "done" });
    expect(block.results[0].block_remaining_ms).toBeGreaterThan(0);
    const show = await checkDocument("rate_limit", await run(["rate_limit", "-e", "chloe@lab.example", "show"]), 0);
    expect(show.results[0].blocked).toBe(true);
    const dry = await checkDocument("rate_limit", await run(["rate_limit", "-e", "chloe@lab.example", "--limits", "60:200", "set-limits", "--dry-run"]), 0);
    expect(dry).toMatchObject({ dry_run: true, cache: null, results: [{ rate_limits: { old: "", new: "60:200" }, status: "would_do" }] });
    const same = await checkDocument("rate_limit", await run(["rate_limit", "-e", "chloe@lab.example", "--limits", "", "set-limits"]), 0);
    expect(same.results[0]).toMatchObject({ rate_limits: { old: "", new: "" }, status: "unchanged" });
    expect(same.cache).not.toBeNull();
    expect((await checkDocument("rate_limit", await run(["rate_limit", "-e", "chloe@lab.example", "unblock"], downConf), 3)).exit_code).toBe(3);
    expect((await checkDocument("rate_limit", await run(["rate_limit", "block"]), 1)).error_code).toBe("refused");
  });

  it("soft_deactivate_users: -d EMAIL, -a EMAIL (and already active), unknown user", async () => {
    const d = await checkDocument("soft_deactivate_users", await run(["soft_deactivate_users", "-d", "chloe@lab.example"]), 0);
    expect(d).toMatchObject({ action: "deactivate", mode: "users", inactive_for_days: null, caught_up: null, catch_up_failures: [] });
    expect(d.soft_deactivated[0].user.id).toBe(users["chloe@lab.example"]);
    expect(d.soft_deactivated[0].audit_log_ids).toHaveLength(1);
    const a = await checkDocument("soft_deactivate_users", await run(["soft_deactivate_users", "-a", "chloe@lab.example", "owner@lab.example"]), 0);
    expect(a.soft_reactivated.map((x: any) => x.user.id)).toEqual([users["chloe@lab.example"]]);
    expect(a.already_active.map((x: any) => x.id)).toEqual([users["owner@lab.example"]]);
    expect((await checkDocument("soft_deactivate_users", await run(["soft_deactivate_users", "-a", "nobody@lab.example"]), 1)).ok).toBe(false);
  });

  it("bulk_change_user_name: a changed, an unchanged and a refused line (exit 1), dry run", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "json15b-"));
    try {
      const csv = path.join(dir, "names.csv");
      fs.writeFileSync(csv, "owner@lab.example,Owner Person\nchloe@lab.example,chloe\nmax2@lab.example,Bad*Name\n");
      const dry = await checkDocument("bulk_change_user_name", await run(["bulk_change_user_name", "-r", "lab", csv, "--dry-run"]), 1);
      expect(dry.results.map((r: any) => r.status)).toEqual(["would_do", "unchanged", "refused"]);
      expect(dry.cache).toBeNull();
      const done = await checkDocument("bulk_change_user_name", await run(["bulk_change_user_name", "-r", "lab", csv, "--events", "none"]), 1);
      expect(done.error_code).toBe("refused");
      expect(done.results[0]).toMatchObject({ full_name: { old: "owner", new: "Owner Person" }, status: "done", ok: true });
      expect(done.results[0].audit_log_ids).toHaveLength(1);
      expect(done.results[2]).toMatchObject({ ok: false, status: "refused", error: "Invalid characters in name!" });
      fs.writeFileSync(csv, "owner@lab.example,Owner Person\n");
      const again = await checkDocument("bulk_change_user_name", await run(["bulk_change_user_name", "-r", "lab", csv, "--events", "none"]), 0);
      expect(again.results[0]).toMatchObject({ status: "unchanged", audit_log_ids: [] });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("logout_all_users: dry run with --rotate-api-keys, success, realm not found", async () => {
    const dry = await checkDocument("logout_all_users", await run(["logout_all_users", "-r", "lab", "--rotate-api-keys", "--dry-run"]), 0);
    expect(dry).toMatchObject({ dry_run: true, scope: "realm", realm: { string_id: "lab" }, cache: null, events: null });
    expect(dry.api_keys_rotated.length).toBeGreaterThan(3);
    expect(dry.api_keys_rotated[0]).toMatchObject({ status: "would_do", audit_log_ids: [] });
    const done = await checkDocument("logout_all_users", await run(["logout_all_users", "-r", "lab", "--rotate-api-keys", "--events", "none"]), 0);
    expect(done.api_keys_rotated.map((x: any) => x.user.id)).toEqual(dry.api_keys_rotated.map((x: any) => x.user.id));
    expect(done.api_keys_rotated[0].audit_log_ids).toHaveLength(1);
    expect(done.api_keys_rotated[0].status).toBe("done");
    expect(typeof done.sessions_deleted_count).toBe("number");
    expect((await checkDocument("logout_all_users", await run(["logout_all_users", "-r", "nowhere"]), 1)).error_code).toBe("realm_not_found");
  });

  it("create_user: dry run, success (user object, scheduled_at, audit_log_ids), already exists", async () => {
    const pw = "a long and fine passphrase 42\n";
    const dry = await checkDocument(
      "create_user",
      await run(["create_user", "-r", "lab", "new@lab.example", "New Person", "--password-file", "-", "--dry-run"], conf, pw),
      0,
    );
    expect(dry).toMatchObject({ dry_run: true, user: null, audit_log_ids: [], cache: null });
    const done = await checkDocument(
      "create_user",
      await run(["create_user", "-r", "lab", "new@lab.example", "New Person", "--password-file", "-"], conf, pw),
      0,
    );
    expect(done.user).toMatchObject({ delivery_email: "new@lab.example", role: "member", role_id: 400, password: "set", realm_id: done.realm.id });
    expect(done.audit_log_ids.length).toBeGreaterThan(0);
    for (const e of done.scheduled_emails) expect(e.scheduled_at).toMatch(TIMESTAMP);
    const again = await checkDocument(
      "create_user",
      await run(["create_user", "-r", "lab", "new@lab.example", "New Person", "--password-file", "-"], conf, pw),
      1,
    );
    expect(again.error).toBe("User already exists.");
  });

  it("change_user_role: dry run, a role change, -u with a refused user, a permission flag, is_billing_admin", async () => {
    const dry = await checkDocument("change_user_role", await run(["change_user_role", "-r", "lab", "chloe@lab.example", "admin", "--dry-run"]), 0);
    expect(dry).toMatchObject({ dry_run: true, target: "administrator", grant: true, cache: null, events: null });
    expect(dry.results[0]).toMatchObject({
      status: "would_do",
      role: { old: "member", new: "administrator" },
      role_id: { old: 400, new: 200 },
      audit_log_ids: [],
    });
    expect(dry).not.toHaveProperty("permission");
    const one = await checkDocument("change_user_role", await run(["change_user_role", "-r", "lab", "chloe@lab.example", "moderator", "--events", "none"]), 0);
    expect(one.results[0]).toMatchObject({
      status: "done",
      role: { old: "member", new: "moderator" },
      role_id: { old: 400, new: 300 },
      groups_added: ["role:moderators"],
    });
    expect(one.results[0].audit_log_ids.length).toBeGreaterThan(0);
    const multi = await checkDocument(
      "change_user_role",
      await run(["change_user_role", "-r", "lab", "-u", "chloe@lab.example,owner@lab.example", "moderator", "--events", "none"]),
      1,
    );
    expect(multi).toMatchObject({ error: "1 of 2 users could not be changed.", error_code: "refused" });
    const byId = Object.fromEntries(multi.results.map((r: any) => [r.user.delivery_email, r]));
    expect(byId["chloe@lab.example"]).toMatchObject({ ok: false, status: "refused", error: "User already has this role." });
    expect(byId["owner@lab.example"]).toMatchObject({ ok: true, status: "done", role: { old: "owner", new: "moderator" } });
    const single = await checkDocument("change_user_role", await run(["change_user_role", "-r", "lab", "chloe@lab.example", "moderator"]), 1);
    expect(single).toMatchObject({ error: "User already has this role.", error_code: "refused", results: [{ status: "refused" }] });
    const flag = await checkDocument("change_user_role", await run(["change_user_role", "-r", "lab", "chloe@lab.example", "can_forge_sender"]), 0);
    expect(flag.results[0]).toMatchObject({ flag: { name: "can_forge_sender", old: false, new: true }, role: null, status: "done" });
    const billing = await checkDocument(
      "change_user_role",
      await run(["change_user_role", "-r", "lab", "chloe@lab.example", "is_billing_admin", "--events", "none"]),
      0,
    );
    expect(billing.results[0]).toMatchObject({ flag: { name: "is_billing_admin", old: false, new: true }, setting: { name: "can_manage_billing_group" } });
    expect(billing.results[0].setting.value.new).toMatchObject({ direct_members: [users["chloe@lab.example"]] });
    expect((await checkDocument("change_user_role", await run(["change_user_role", "-r", "lab", "chloe@lab.example", "king"]), 2)).error_code).toBe("usage");
  });

  it("delete_user: plan without -f (exit 1), --dry-run (exit 0), -f, -f with --dry-run, unknown user", async () => {
    const plan = await checkDocument("delete_user", await run(["delete_user", "-r", "lab", "-u", "gone@lab.example"]), 1);
    expect(plan).toMatchObject({ dry_run: true, error: "This was a dry run. Pass -f to actually delete.", error_code: "refused", cache: null, events: null });
    expect(plan.results[0]).toMatchObject({ user: { id: users["gone@lab.example"] }, status: "would_do", deactivated: null, audit_log_ids: [] });
    const dry = await checkDocument("delete_user", await run(["delete_user", "-r", "lab", "-u", "gone@lab.example", "--dry-run"]), 0);
    expect(dry.results[0].status).toBe("would_do");
    const done = await checkDocument("delete_user", await run(["delete_user", "-r", "lab", "-u", "gone@lab.example", "-f", "--events", "none"]), 0);
    expect(done.results[0]).toMatchObject({ status: "done", user: { id: users["gone@lab.example"], delivery_email: "gone@lab.example" } });
    expect(done.results[0].placeholder.full_name).toBe(`Deleted User ${users["gone@lab.example"]}`);
    expect(done.cache.ok).toBe(true);
    expect((await checkDocument("delete_user", await run(["delete_user", "-r", "lab", "-u", "gone@lab.example", "-f", "--dry-run"]), 2)).error_code).toBe(
      "usage",
    );
    expect((await checkDocument("delete_user", await run(["delete_user", "-r", "lab", "-u", "nobody@lab.example", "-f"]), 1)).error_code).toBe(
      "user_not_found",
    );
  });
});

describe("README", () => {
  it("every user write command's --json example validates against its schema", async () => {
    await checkReadmeExamples(USER_COMMANDS);
  });
});
