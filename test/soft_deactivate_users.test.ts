// soft_deactivate_users through the built CLI against real Zulip databases with memcached, checking
// what zerver/tests/test_soft_deactivation.py checks: soft deactivation sets long_term_idle and
// last_active_message_id (the user's newest UserMessage) with a 121 audit row; messages sent while
// idle get no UserMessage rows; soft reactivation adds exactly the rows for the messages of the
// channels the user was subscribed to at the time (the audit history of unsubscribing and
// resubscribing is replayed), flags 0, raises last_active_message_id, clears long_term_idle, writes
// a 120 row; the automatic mode picks users by UserActivity.last_visit and catches up every idle
// user without reactivating them; -r limits to a realm; the errors manage.py raises.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLogEventType } from "../src/zulip/audit.js";
import { createChannel } from "../src/zulip/actions/create-channel.js";
import { createUser } from "../src/zulip/actions/create-user.js";
import { sendMessage } from "../src/zulip/actions/message-send.js";
import { subscribedIntervals } from "../src/zulip/actions/soft-deactivation.js";
import { runCli, type CliResult } from "./helpers/cli.js";
import type { TemplateName, TestDatabase } from "./helpers/pg.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";

const REALM = 2;
const HOST = "zulip.example.net";

describe("subscribedIntervals (filter_by_subscription_history as id intervals)", () => {
  const C = AuditLogEventType.SUBSCRIPTION_CREATED;
  const A = AuditLogEventType.SUBSCRIPTION_ACTIVATED;
  const D = AuditLogEventType.SUBSCRIPTION_DEACTIVATED;
  const L = (event_type: number, e: number) => ({ event_type, event_last_message_id: e });
  it("subscribed since creation: everything after it", () => {
    expect(subscribedIntervals([L(C, 10)])).toEqual([{ lo: 10, hi: null }]);
  });
  it("unsubscribed and resubscribed: the two stretches", () => {
    expect(subscribedIntervals([L(C, 10), L(D, 20), L(A, 30)])).toEqual([
      { lo: 10, hi: 20 },
      { lo: 30, hi: null },
    ]);
  });
  it("ends unsubscribed: nothing after the last deactivation", () => {
    expect(subscribedIntervals([L(C, 10), L(D, 20), L(A, 30), L(D, 40)])).toEqual([
      { lo: 10, hi: 20 },
      { lo: 30, hi: 40 },
    ]);
  });
  it("a deactivation with no activation before it counts from the start", () => {
    expect(subscribedIntervals([L(D, 20)])).toEqual([{ lo: null, hi: 20 }]);
  });
});

interface World {
  hamlet: number;
  iago: number;
  othello: number;
  cordelia: number;
  denmark: number;
  verona: number;
  veronaRecipient: number;
}

async function buildWorld(db: TestDatabase): Promise<World> {
  const c = db.client;
  await c.query("BEGIN");
  const mk = async (email: string, name: string) => (await createUser(c, REALM, { email, fullName: name, externalHost: HOST })).id;
  const hamlet = await mk("hamlet@zulip.example.net", "King Hamlet");
  const iago = await mk("iago@zulip.example.net", "Iago");
  const othello = await mk("othello@zulip.example.net", "Othello");
  const cordelia = await mk("cordelia@zulip.example.net", "Cordelia");
  const all = [hamlet, iago, othello, cordelia];
  const denmark = (await createChannel(c, REALM, { name: "Denmark", creatorId: iago, subscribers: all })).id;
  const verona = (await createChannel(c, REALM, { name: "Verona", creatorId: iago, subscribers: all })).id;
  for (let i = 0; i < 3; i++) await sendMessage(c, { senderId: iago, to: { channelId: denmark, topic: "before" }, content: `before ${i}` });
  const r = await c.query("SELECT recipient_id FROM zerver_stream WHERE id = $1", [verona]);
  await c.query("COMMIT");
  return { hamlet, iago, othello, cordelia, denmark, verona, veronaRecipient: Number(r.rows[0].recipient_id) };
}

describe.each(["zulip12_fresh", "zulip10_fresh"] as TemplateName[])("soft_deactivate_users on %s", (template) => {
  let copy: ServerCopy;
  let db: TestDatabase;
  let w: World;
  const cli = (args: string[]): Promise<CliResult> => runCli(["soft_deactivate_users", ...args], { db, confDir: copy.conf });
  const user = async (id: number) => (await db.query<any>("SELECT long_term_idle, last_active_message_id FROM zerver_userprofile WHERE id = $1", [id]))[0];
  const umIds = async (id: number) =>
    (await db.query<any>("SELECT message_id FROM zerver_usermessage WHERE user_profile_id = $1 ORDER BY message_id", [id])).map((r) => Number(r.message_id));
  const audits = async (id: number, type: number) =>
    await db.query<any>(
      "SELECT id, realm_id, acting_user_id, event_time FROM zerver_realmauditlog WHERE modified_user_id = $1 AND event_type = $2 ORDER BY id",
      [id, type],
    );
  const send = async (channelId: number, content: string) =>
    (await sendMessage(db.client, { senderId: w.iago, to: { channelId, topic: "while away" }, content })).id;
  const setSubscribed = async (userId: number, active: boolean) => {
    // What bulk_remove_subscriptions / bulk_add_subscriptions record: the flag and a 303/302 row at the newest message.
    await db.query("UPDATE zerver_subscription SET active = $3 WHERE user_profile_id = $1 AND recipient_id = $2", [userId, w.veronaRecipient, active]);
    await db.query(
      `INSERT INTO zerver_realmauditlog (realm_id, modified_user_id, modified_stream_id, event_type, event_time, event_last_message_id, backfilled, extra_data${
        template === "zulip12_fresh" ? ", scrubbed" : ""
      })
       VALUES ($1, $2, $3, $4, now(), (SELECT max(id) FROM zerver_message), false, '{}'${template === "zulip12_fresh" ? ", false" : ""})`,
      [REALM, userId, w.verona, active ? AuditLogEventType.SUBSCRIPTION_ACTIVATED : AuditLogEventType.SUBSCRIPTION_DEACTIVATED],
    );
  };

  beforeAll(async () => {
    copy = await startServerCopy({ template, externalHost: HOST });
    db = copy.db;
    w = await buildWorld(db);
  }, 120_000);
  afterAll(() => copy?.stop());

  it("refuses what manage.py refuses", async () => {
    const neither = await cli([]);
    expect(neither.exitCode).toBe(1);
    const noUsers = await cli(["-a"]);
    expect(noUsers.exitCode).toBe(1);
    expect(noUsers.stderr).toBe("You need to specify at least one user to use the activate option.");
    const missing = await cli(["-d", "hamlet@zulip.example.net", "nobody@zulip.example.net"]);
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toBe("Users with the following emails were not found:\n\nnobody@zulip.example.net\n\nCheck if they are correct.");
    // get_users_from_emails is case-sensitive (Zulip's noted bug).
    const cased = await cli(["-d", "Hamlet@zulip.example.net"]);
    expect(cased.exitCode).toBe(1);
    expect((await user(w.hamlet)).long_term_idle).toBe(false);
  });

  it("-d EMAIL soft-deactivates: long_term_idle, last_active_message_id = newest UserMessage, a 121 row", async () => {
    const newest = (await umIds(w.hamlet)).at(-1);
    const r = await cli(["-d", "hamlet@zulip.example.net", "cordelia@zulip.example.net"]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toBe("Soft deactivating forcefully...\nSoft deactivated 2 user(s)");
    expect(r.stderr).toBe(""); // the user caches were flushed without a warning
    expect(await user(w.hamlet)).toEqual({ long_term_idle: true, last_active_message_id: newest });
    const rows = await audits(w.hamlet, AuditLogEventType.USER_SOFT_DEACTIVATED);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ realm_id: REALM, acting_user_id: null });
    expect((await user(w.cordelia)).long_term_idle).toBe(true);
  });

  it("-a EMAIL soft-reactivates, adding exactly the UserMessage rows of the channels hamlet was in at the time", async () => {
    const before = await umIds(w.hamlet);
    const d1 = await send(w.denmark, "while idle 1");
    const v1 = await send(w.verona, "verona, still subscribed");
    await setSubscribed(w.hamlet, false);
    const v2 = await send(w.verona, "verona, unsubscribed");
    await setSubscribed(w.hamlet, true);
    const v3 = await send(w.verona, "verona, subscribed again");
    const d2 = await send(w.denmark, "while idle 2");
    // The idle user got no rows for these (do_send_messages skips long_term_idle users).
    expect(await umIds(w.hamlet)).toEqual(before);
    const r = await cli(["-a", "hamlet@zulip.example.net", "iago@zulip.example.net", "--json"]);
    expect(r.exitCode, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.soft_reactivated).toHaveLength(1);
    expect(doc.soft_reactivated[0]).toMatchObject({ user: { id: w.hamlet }, messages_added_count: 4, last_active_message_id: d2 });
    expect(doc.soft_reactivated[0].audit_log_ids).toHaveLength(1);
    expect(doc.already_active).toMatchObject([{ id: w.iago, delivery_email: "iago@zulip.example.net" }]);
    expect(await umIds(w.hamlet)).toEqual([...before, d1, v1, v3, d2].sort((a, b) => a - b));
    expect(await umIds(w.hamlet)).not.toContain(v2);
    const flags = await db.query<any>("SELECT DISTINCT flags FROM zerver_usermessage WHERE user_profile_id = $1 AND message_id = ANY($2::int[])", [
      w.hamlet,
      [d1, v1, v3, d2],
    ]);
    expect(flags.map((f) => Number(f.flags))).toEqual([0]);
    expect(await user(w.hamlet)).toEqual({ long_term_idle: false, last_active_message_id: d2 });
    expect(await audits(w.hamlet, AuditLogEventType.USER_SOFT_ACTIVATED)).toHaveLength(1);
    // Soft-reactivating again changes nothing.
    const again = await cli(["-a", "hamlet@zulip.example.net"]);
    expect(again.stdout).toBe("Soft reactivated 0 user(s)");
    expect(await audits(w.hamlet, AuditLogEventType.USER_SOFT_ACTIVATED)).toHaveLength(1);
  });

  it("-d alone picks users whose last visit is over --inactive-for days ago, then catches up every idle user", async () => {
    const client = Number((await db.query<any>("SELECT id FROM zerver_client ORDER BY id LIMIT 1"))[0].id);
    const visit = (userId: number, daysAgo: number, query: string) =>
      db.query(
        "INSERT INTO zerver_useractivity (query, count, last_visit, client_id, user_profile_id) VALUES ($4, 1, now() - make_interval(days => $1::int) - interval '1 hour', $2, $3)",
        [daysAgo, client, userId, query],
      );
    await db.query("DELETE FROM zerver_useractivity"); // only the visits below count
    await visit(w.othello, 40, "get_events"); // idle: goes
    await visit(w.othello, 30, "send_message");
    await visit(w.iago, 40, "get_events");
    await visit(w.iago, 2, "send_message"); // the newest visit counts: stays
    await visit(w.hamlet, 28, "get_events"); // 28 whole days is not more than 28: stays
    const cordeliaBefore = await umIds(w.cordelia);
    const missed = await send(w.denmark, "cordelia is idle");
    expect(await umIds(w.cordelia)).toEqual(cordeliaBefore);
    const othelloNewest = (await umIds(w.othello)).at(-1);

    const other = await cli(["-d", "-r", "zulipinternal", "--json"]);
    expect(other.exitCode, other.stderr).toBe(0);
    expect(JSON.parse(other.stdout)).toMatchObject({ soft_deactivated: [], caught_up: [] });

    const r = await cli(["-d"]);
    expect(r.exitCode, r.stderr).toBe(0);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toBe("Soft deactivated 1 user(s)");
    expect(lines[1]).toMatch(/^Caught up 2 soft-deactivated users \(\d+ messages? added\)$/);
    expect(await user(w.othello)).toEqual({ long_term_idle: true, last_active_message_id: othelloNewest });
    expect((await user(w.iago)).long_term_idle).toBe(false);
    expect((await user(w.hamlet)).long_term_idle).toBe(false);
    // Caught up, still idle.
    expect(await umIds(w.cordelia)).toContain(missed);
    expect((await user(w.cordelia)).long_term_idle).toBe(true);
    expect((await user(w.cordelia)).last_active_message_id).toBe(missed);
  });

  it("--quiet prints nothing, and AUTO_CATCH_UP_SOFT_DEACTIVATED_USERS = False skips the catch-up", async () => {
    const missed = await send(w.denmark, "nobody catches cordelia up");
    const r = await runCli(["soft_deactivate_users", "-d", "--quiet", "--setting", "AUTO_CATCH_UP_SOFT_DEACTIVATED_USERS=False"], { db, confDir: copy.conf });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toBe("");
    expect(await umIds(w.cordelia)).not.toContain(missed);
  });
});
