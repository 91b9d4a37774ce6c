// deactivate_user through the built CLI against real Zulip 12 / 10 databases, a real memcached
// and (for the printed sessions) the real Python repr when python3 is installed.
//
// The fresh install's owner (test@test.com, id 8) has a login session, two onboarding scheduled
// emails and three channel subscriptions; we add a bot they own (subscribed to a channel), a
// second user sharing one scheduled email, and invitations they sent (valid, used, expired,
// multi-use). Every row do_deactivate_user writes is checked, and every other table is
// checksummed before and after.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { roleCounts } from "../src/zulip/audit.js";
import { runCli, type CliResult } from "./helpers/cli.js";
import { type ConfDir } from "./helpers/confdir.js";
import { type MemcachedInstance } from "./helpers/memcached.js";
import { type TestDatabase } from "./helpers/pg.js";
import { startServerCopy } from "./helpers/server-copy.js";
import { runPython } from "./helpers/tools.js";
import { changedTables, snapshot } from "./helpers/snapshot.js";
import { copyMember } from "./helpers/users.js";

const OWNER = 8;
const OWNER_EMAIL = "test@test.com";

async function rowsById(db: TestDatabase, table: string): Promise<Map<string, any>> {
  const rows = await db.query(`SELECT * FROM ${table} ORDER BY id`);
  return new Map(rows.map((r: any) => [String(r.id), r]));
}

/** Python's print(expire_date, session.get_decoded()) for a django_session row (python3 is required). */
function pythonSessionLine(sessionData: string, expire: string): string | null {
  const script = `
import base64, json, sys, zlib, datetime
data, expire = sys.argv[1], sys.argv[2]
payload = data.rsplit(":", 2)[0]
compressed = payload.startswith(".")
if compressed: payload = payload[1:]
raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
if compressed: raw = zlib.decompress(raw)
print(datetime.datetime.fromisoformat(expire), json.loads(raw))
`;
  return runPython(script, [sessionData, expire]);
}

/** An active subscription to a channel, with the channel's subscriber_count raised. */
async function subscribe(db: TestDatabase, userId: number, channelId: number): Promise<void> {
  await db.query(
    `INSERT INTO zerver_subscription (active, is_user_active, is_muted, color, pin_to_top, recipient_id, user_profile_id)
     SELECT true, true, false, '#c2c2c2', false, recipient_id, $1 FROM zerver_stream WHERE id = $2`,
    [userId, channelId],
  );
  await db.query("UPDATE zerver_stream SET subscriber_count = subscriber_count + 1 WHERE id = $1", [channelId]);
}

interface Env {
  db: TestDatabase;
  conf: ConfDir;
  mc: MemcachedInstance;
  botId: number;
  hamletId: number;
  channelOfBot: number;
  invites: { valid: number; used: number; expired: number; multiuse: number; multiuseExpired: number };
  cli(args: string[]): Promise<CliResult>;
  /** Stop the server copy. */
  stop(): Promise<void>;
}

async function setup(template: "zulip12_fresh" | "zulip10_fresh"): Promise<Env> {
  const copy = await startServerCopy({ template });
  const { db, mc, conf } = copy;
  const c = db.client;
  await c.query("BEGIN");
  const bot = { id: await copyMember(db, { email: "helper-bot@test.example", fullName: "Helper", botOwnerId: OWNER }) };
  const hamlet = { id: await copyMember(db, { email: "hamlet@test.example", fullName: "Hamlet" }) };
  const channel = Number((await c.query("SELECT id FROM zerver_stream WHERE realm_id = 2 ORDER BY id LIMIT 1")).rows[0].id);
  await subscribe(db, bot.id, channel);
  // Hamlet shares the second onboarding email.
  await c.query("INSERT INTO zerver_scheduledemail_users (scheduledemail_id, userprofile_id) VALUES (2, $1)", [hamlet.id]);
  // Invitations sent by the owner.
  const ct = Number((await c.query("SELECT id FROM django_content_type WHERE app_label = 'zerver' AND model = 'preregistrationuser'")).rows[0].id);
  const ctm = Number((await c.query("SELECT id FROM django_content_type WHERE app_label = 'zerver' AND model = 'multiuseinvite'")).rows[0].id);
  const prereg = async (email: string, status: number) =>
    Number(
      (
        await c.query(
          `INSERT INTO zerver_preregistrationuser (email, full_name, full_name_validated, notify_referrer_on_join, invited_at, realm_creation,
             password_required, status, invited_as, include_realm_default_subscriptions, referred_by_id, realm_id, is_realm_importer)
           VALUES ($1, NULL, false, true, now(), false, true, $2, 400, true, $3, 2, false) RETURNING id`,
          [email, status, OWNER],
        )
      ).rows[0].id,
    );
  const confirmation = async (objectId: number, contentType: number, type: number, expiry: string | null, key: string) =>
    Number(
      (
        await c.query(
          `INSERT INTO confirmation_confirmation (object_id, date_sent, confirmation_key, content_type_id, type, realm_id, expiry_date)
           VALUES ($1, now(), $2, $3, $4, 2, $5::timestamptz) RETURNING id`,
          [objectId, key, contentType, type, expiry],
        )
      ).rows[0].id,
    );
  const valid = await confirmation(await prereg("a@x.example", 0), ct, 2, "2099-01-01T00:00:00Z", "aaaaaaaaaaaaaaaaaaaaaaa1");
  const used = await confirmation(await prereg("b@x.example", 1), ct, 2, "2099-01-01T00:00:00Z", "aaaaaaaaaaaaaaaaaaaaaaa2");
  const expired = await confirmation(await prereg("c@x.example", 0), ct, 2, "2001-01-01T00:00:00Z", "aaaaaaaaaaaaaaaaaaaaaaa3");
  const mui = async () =>
    Number(
      (
        await c.query(
          "INSERT INTO zerver_multiuseinvite (invited_as, include_realm_default_subscriptions, status, referred_by_id, realm_id) VALUES (400, true, 0, $1, 2) RETURNING id",
          [OWNER],
        )
      ).rows[0].id,
    );
  const multiuse = await confirmation(await mui(), ctm, 6, null, "aaaaaaaaaaaaaaaaaaaaaaa4");
  const multiuseExpired = await confirmation(await mui(), ctm, 6, "2001-01-01T00:00:00Z", "aaaaaaaaaaaaaaaaaaaaaaa5");
  await c.query("COMMIT");
  return {
    db,
    conf,
    mc,
    botId: bot.id,
    hamletId: hamlet.id,
    channelOfBot: channel,
    invites: { valid, used, expired, multiuse, multiuseExpired },
    cli: (args) => runCli(args, { confDir: conf, db }),
    stop: copy.stop,
  };
}

async function teardown(env: Env | undefined): Promise<void> {
  await env?.stop();
}

async function expectedHeader(env: Env, botCount: number): Promise<string> {
  const [u] = await env.db.query("SELECT u.full_name, r.string_id FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id WHERE u.id = $1", [OWNER]);
  const sessions = await env.db.query("SELECT session_data, expire_date::text AS e FROM django_session");
  const lines = [`Deactivating ${u.full_name} (${OWNER_EMAIL}) - ${u.string_id}`, `${OWNER_EMAIL} has the following active sessions:`];
  for (const s of sessions) {
    const py = pythonSessionLine(s.session_data, s.e.replace(/\+00$/, "+00:00"));
    if (py === null) throw new Error("python3 is needed to compute manage.py's session lines");
    lines.push(py);
  }
  lines.push("", `${OWNER_EMAIL} has ${botCount} active bots that will also be deactivated.`);
  return lines.join("\n");
}

describe("deactivate_user (Zulip 12)", () => {
  let env: Env;
  beforeAll(async () => {
    env = await setup("zulip12_fresh");
  }, 120_000);
  afterAll(async () => teardown(env));

  it("dry run by default: prints the user, sessions and bots like manage.py, exits 1, writes nothing", async () => {
    const before = await snapshot(env.db);
    const r = await env.cli(["deactivate_user", "-r", "2", OWNER_EMAIL]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe("This was a dry run. Pass -f to actually deactivate.");
    const header = await expectedHeader(env, 1);
    expect(r.stdout).toBe(header);
    expect(r.stdout).toContain("'_auth_user_id': '8'");
    expect(changedTables(before, await snapshot(env.db))).toEqual([]);

    const j = await env.cli(["deactivate_user", OWNER_EMAIL, "--json"]);
    expect(j.exitCode).toBe(1);
    const doc = JSON.parse(j.stdout);
    expect(doc).toMatchObject({
      ok: false,
      exit_code: 1,
      dry_run: true,
      error: "This was a dry run. Pass -f to actually deactivate.",
      user: { id: OWNER, delivery_email: OWNER_EMAIL, was_active: true },
      deactivated: [],
    });
    expect(doc.bots).toMatchObject([{ id: env.botId, delivery_email: "helper-bot@test.example", full_name: "Helper" }]);
    expect(doc.sessions).toHaveLength(1);
    expect(doc.sessions[0].expires_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    const explicit = await env.cli(["deactivate_user", OWNER_EMAIL, "--dry-run", "--json"]);
    expect(explicit.exitCode).toBe(0);
    expect(JSON.parse(explicit.stdout)).toMatchObject({ ok: true, exit_code: 0, dry_run: true, error: null, deactivated: [] });
    expect(changedTables(before, await snapshot(env.db))).toEqual([]);
    expect(doc.sessions[0].data._auth_user_id).toBe("8");
  });

  it("refuses unknown users with manage.py's message", async () => {
    const r = await env.cli(["deactivate_user", "-r", "2", "nobody@test.com", "-f"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe("The realm ' 2' does not contain a user with email 'nobody@test.com'");
  });

  it("-f: bots first, then the user, exactly the rows do_deactivate_user writes; sessions and caches gone", async () => {
    const db = env.db;
    const prefix = env.conf.cachePrefix;
    const mcc = await env.mc.connect();
    const [owner] = await db.query("SELECT * FROM zerver_userprofile WHERE id = $1", [OWNER]);
    const [bot] = await db.query("SELECT * FROM zerver_userprofile WHERE id = $1", [env.botId]);
    const [session] = await db.query("SELECT session_key FROM django_session");
    const cached = [
      `user_profile_by_id:${OWNER}`,
      `user_profile_by_api_key:${owner.api_key}`,
      `user_profile_by_id:${env.botId}`,
      `user_profile_by_api_key:${bot.api_key}`,
      "realm_user_dicts:2",
      "active_user_ids:2",
      "active_non_guest_user_ids:2",
      "bot_dicts_in_realm:2",
    ];
    for (const k of cached) await mcc.set(`:1:${prefix}${k}`, "stale");
    await mcc.set(`:1:django.contrib.sessions.cached_db${session.session_key}`, "cached session");
    await mcc.set(`:1:${prefix}user_profile_by_id:${env.hamletId}`, "unrelated");

    const before = await snapshot(db);
    const users0 = await rowsById(db, "zerver_userprofile");
    const subs0 = await rowsById(db, "zerver_subscription");
    const streams0 = await rowsById(db, "zerver_stream");
    const conf0 = await rowsById(db, "confirmation_confirmation");
    const maxAudit = Number((await db.query("SELECT max(id) AS m FROM zerver_realmauditlog"))[0].m);
    const header = await expectedHeader(env, 1);
    const t0 = Date.now();
    const r = await env.cli(["deactivate_user", "-r", "2", OWNER_EMAIL, "-f"]);
    const t1 = Date.now();
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(`${header}\nSessions deleted, user deactivated.`);

    expect(changedTables(before, await snapshot(db))).toEqual([
      "confirmation_confirmation",
      "django_session",
      "zerver_realmauditlog",
      "zerver_scheduledemail",
      "zerver_scheduledemail_users",
      "zerver_stream",
      "zerver_subscription",
      "zerver_userprofile",
    ]);

    // zerver_userprofile: only is_active of the owner and the bot.
    const users1 = await rowsById(db, "zerver_userprofile");
    for (const [id, row] of users0) {
      const expected = id === String(OWNER) || id === String(env.botId) ? { ...row, is_active: false } : row;
      expect(users1.get(id)).toEqual(expected);
    }
    // zerver_subscription: is_user_active of all their subscriptions.
    const subs1 = await rowsById(db, "zerver_subscription");
    for (const [id, row] of subs0) {
      const mine = [OWNER, env.botId].includes(Number(row.user_profile_id));
      expect(subs1.get(id)).toEqual(mine ? { ...row, is_user_active: false } : row);
    }
    // zerver_stream: one subscriber fewer per active channel subscription of either account.
    const streams1 = await rowsById(db, "zerver_stream");
    for (const [id, row] of streams0) {
      const n = (
        await db.query(
          `SELECT count(*)::int AS n FROM zerver_subscription s JOIN zerver_recipient rc ON rc.id = s.recipient_id
            WHERE rc.type = 2 AND rc.type_id = $1 AND s.active AND s.user_profile_id = ANY($2::int[])`,
          [id, [OWNER, env.botId]],
        )
      )[0].n;
      expect(streams1.get(id)).toEqual({ ...row, subscriber_count: row.subscriber_count - n });
    }
    expect(streams1.get(String(env.channelOfBot))!.subscriber_count).toBe(streams0.get(String(env.channelOfBot))!.subscriber_count - 2);
    // Scheduled emails: the owner-only one is deleted, the shared one keeps Hamlet.
    expect(await db.query("SELECT id FROM zerver_scheduledemail ORDER BY id")).toEqual([{ id: "2" }]);
    expect(
      (await db.query("SELECT scheduledemail_id, userprofile_id FROM zerver_scheduledemail_users")).map((x: any) => [
        Number(x.scheduledemail_id),
        x.userprofile_id,
      ]),
    ).toEqual([[2, env.hamletId]]);
    // Invitations: the valid one and the open multi-use one expire now; the others stay.
    const conf1 = await rowsById(db, "confirmation_confirmation");
    for (const [id, row] of conf0) {
      const revoked = [env.invites.valid, env.invites.multiuse].includes(Number(id));
      if (!revoked) {
        expect(conf1.get(id)).toEqual(row);
        continue;
      }
      const after = conf1.get(id)!;
      expect({ ...after, expiry_date: null }).toEqual({ ...row, expiry_date: null });
      expect(after.expiry_date.getTime()).toBeGreaterThanOrEqual(t0 - 1000);
      expect(after.expiry_date.getTime()).toBeLessThanOrEqual(t1 + 1000);
    }
    // Audit: the bot's 103 row, then the owner's; every column.
    const audit = await db.query("SELECT * FROM zerver_realmauditlog WHERE id > $1 ORDER BY id", [maxAudit]);
    expect(audit).toHaveLength(2);
    const finalCounts = await roleCounts(db.client, 2);
    for (const [i, row] of audit.entries()) {
      expect(row).toMatchObject({
        realm_id: 2,
        acting_user_id: null,
        modified_user_id: i === 0 ? env.botId : OWNER,
        modified_stream_id: null,
        modified_user_group_id: null,
        modified_channel_folder_id: null,
        event_last_message_id: null,
        event_type: 103,
        backfilled: false,
        scrubbed: false,
      });
      expect(Object.keys(row.extra_data)).toEqual(["10"]);
      expect(row.event_time.getTime()).toBeGreaterThanOrEqual(t0 - 1000);
      expect(row.event_time.getTime()).toBeLessThanOrEqual(t1 + 1000);
    }
    expect(audit[1].extra_data["10"]).toEqual(finalCounts);
    const humansAtBot = { ...finalCounts["11"], "100": finalCounts["11"]["100"] + 1 };
    expect(audit[0].extra_data["10"]["12"]).toBe(finalCounts["12"]);
    expect(audit[0].extra_data["10"]["11"]["100"]).toBe(humansAtBot["100"]);
    expect(audit[0].extra_data["10"]["11"]["workplace_users"] + audit[0].extra_data["10"]["11"]["non_workplace_users"]).toBe(
      finalCounts["11"]["workplace_users"] + finalCounts["11"]["non_workplace_users"] + 1,
    );
    // Sessions: gone from the database and from memcached; the caches Zulip deletes are gone.
    expect(await db.query("SELECT * FROM django_session")).toEqual([]);
    expect(await mcc.get(`:1:django.contrib.sessions.cached_db${session.session_key}`)).toBeNull();
    for (const k of cached) expect(await mcc.get(`:1:${prefix}${k}`), k).toBeNull();
    expect(await mcc.getString(`:1:${prefix}user_profile_by_id:${env.hamletId}`)).toBe("unrelated");
    await mcc.close();
  });

  it("an already deactivated user: manage.py's messages, nothing written", async () => {
    const before = await snapshot(env.db);
    const r = await env.cli(["deactivate_user", OWNER_EMAIL, "--for-real"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(
      [
        `Deactivating ${(await env.db.query("SELECT full_name FROM zerver_userprofile WHERE id = 8"))[0].full_name} (${OWNER_EMAIL}) - `,
        `${OWNER_EMAIL} has the following active sessions:`,
        "",
        `${OWNER_EMAIL} has 0 active bots that will also be deactivated.`,
        "Sessions deleted, user deactivated.",
      ].join("\n"),
    );
    expect(changedTables(before, await snapshot(env.db))).toEqual([]);
  });

  it("usage errors exit 2", async () => {
    const r = await env.cli(["deactivate_user"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("the following arguments are required: <email>");
  });
});

describe("deactivate_user (Zulip 10 schema)", () => {
  let env: Env;
  beforeAll(async () => {
    env = await setup("zulip10_fresh");
  }, 120_000);
  afterAll(async () => teardown(env));

  it("--json -f reports what was done and writes the 103 rows in the Zulip 10 shape", async () => {
    const maxAudit = Number((await env.db.query("SELECT max(id) AS m FROM zerver_realmauditlog"))[0].m);
    const r = await env.cli(["deactivate_user", OWNER_EMAIL, "-f", "--json"]);
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ ok: true, dry_run: false, user: { id: OWNER, was_active: true } });
    expect(doc.deactivated.map((d: any) => [d.user.id, d.user.is_bot])).toEqual([
      [env.botId, true],
      [OWNER, false],
    ]);
    expect(doc.deactivated[1]).toMatchObject({
      scheduled_emails_left_count: 2,
      scheduled_emails_deleted_count: 1,
      invitations_revoked_count: 2,
      sessions_deleted_count: 1,
    });
    expect(doc.cache).toMatchObject({ ok: true, mode: "keys" });
    const audit = await env.db.query("SELECT * FROM zerver_realmauditlog WHERE id > $1 ORDER BY id", [maxAudit]);
    expect(audit.map((a: any) => [a.event_type, a.modified_user_id])).toEqual([
      [103, env.botId],
      [103, OWNER],
    ]);
    expect(doc.deactivated.flatMap((d: any) => d.audit_log_ids)).toEqual(audit.map((a: any) => Number(a.id)));
    expect(audit[1].extra_data["10"]).toEqual(await roleCounts(env.db.client, 2));
    expect("scrubbed" in audit[1]).toBe(false);
    expect("workplace_users" in audit[1].extra_data["10"]["11"]).toBe(false);
  });
});
