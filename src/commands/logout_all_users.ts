// logout_all_users: log users out of their browser sessions, optionally rotating their API keys
// (which logs out the mobile and terminal apps too), as manage.py's logout_all_users does
// (zerver/lib/sessions.py delete_*_sessions, zerver/actions/user_settings.py
// bulk_regenerate_api_keys / do_regenerate_api_key).
//
// Which sessions: with -r, the sessions of every user of that organization (active or not, bots
// included); with --deactivated-only, those of users who are deactivated or whose organization
// is deactivated; with neither, every row of django_session (anonymous sessions included).
// Sessions are found by decoding each row's session_data; they are deleted from django_session
// and their cached copies from memcached, in one transaction. Sessions of users that no longer
// exist are left alone with --deactivated-only (manage.py would crash on them) and reported.
//
// --rotate-api-keys: the same set of users (with -r every user of the organization, with
// --deactivated-only every deactivated user or user of a deactivated organization, otherwise
// every user of the server — bots included, whose integrations then need the new key) gets a
// new 32-character API key, each user in its own transaction: the row is locked, api_key
// replaced, and a 127 (USER_API_KEY_CHANGED) audit row written with the user as acting and
// modified user, as do_regenerate_api_key does for bulk_regenerate_api_keys. The cached user
// objects under the old and the new key are deleted. As Zulip does, a deferred_work job
// {"type": "clear_push_device_tokens", "user_profile_id": …} is queued per user after its
// commit, and Zulip's queue worker clears the user's push notification registrations (also at
// the Mobile Push Notification Service). If the jobs cannot be queued (RabbitMQ unreachable),
// or with --events=none, a server that sends notifications itself gets its
// zerver_pushdevicetoken rows deleted here instead; registrations at the push notification
// service are then not touched (a warning says so; the apps register again on login).
//
// Difference from manage.py: -r together with --deactivated-only means both conditions
// (deactivated users of that organization); manage.py silently ignores --deactivated-only when
// -r is given and logs out everyone in the organization. Like manage.py it prints nothing
// on success; --dry-run prints what would be done and changes nothing.
//
// --json: src/schemas/logout_all_users.ts (README: --json output): the session counts (what
// would be deleted in a dry run), api_keys_rotated with the user objects (status would_do in a
// dry run), cache and events (the clear_push_device_tokens jobs and, before Zulip 12, bots'
// realm_bot api_key updates).
import { addEventsOption, addFlushCacheOption, addRealmOption } from "../cli/options.js";
import { AuditLogEventType, insertAuditLog } from "../zulip/audit.js";
import { CacheInvalidation, type CacheUser, sessionCacheKey } from "../zulip/cache.js";
import { defineUntypedCommand } from "../cli/command.js";
import { EventDelivery, eventsReportJson, featureLevel, FL } from "../services/events.js";
import { botOwnerUserIds } from "../zulip/events/user-events.js";
import { cryptoRandom } from "../lib/random.js";
import type { Db, Queryable } from "../db/db.js";
import { getRealm, type Realm, type UserProfile } from "../zulip/lookup.js";
import { decodeSessionData, sessionUserId } from "../zulip/sessions.js";
import { cacheReportJson } from "../zulip/actions/users-lifecycle.js";
import { outcome } from "../cli/json-contract.js";
import { realmJson, usersJsonByIds } from "../cli/json-objects.js";
import type { LogoutAllUsersBody } from "../schemas/logout_all_users.js";

type Scope = "realm" | "deactivated" | "realm-deactivated" | "all";

/** zerver.lib.utils.generate_api_key(): 32 characters from [A-Za-z0-9]. */
export function generateApiKey(): string {
  return cryptoRandom.alnum(32);
}

/** The users a scope covers, as SQL over zerver_userprofile u joined to zerver_realm r. */
function scopeCondition(scope: Scope): string {
  switch (scope) {
    case "realm":
      return "u.realm_id = $1";
    case "deactivated":
      return "(NOT u.is_active OR r.deactivated)";
    case "realm-deactivated":
      return "u.realm_id = $1 AND (NOT u.is_active OR r.deactivated)";
    case "all":
      return "true";
  }
}

async function scopeUserIds(q: Queryable, scope: Scope, realm: Realm | null): Promise<number[]> {
  const { rows } = await q.query(
    `SELECT u.id FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id WHERE ${scopeCondition(scope)} ORDER BY u.id`,
    scope === "realm" || scope === "realm-deactivated" ? [realm!.id] : [],
  );
  return rows.map((r) => Number(r.id));
}

interface SessionPlan {
  keys: string[];
  users: Set<number>;
  anonymous: number;
  orphaned: number;
}

async function planSessions(q: Queryable, scope: Scope, realm: Realm | null): Promise<SessionPlan> {
  const plan: SessionPlan = { keys: [], users: new Set(), anonymous: 0, orphaned: 0 };
  const { rows } = await q.query("SELECT session_key, session_data FROM django_session ORDER BY session_key");
  const wanted = scope === "all" ? null : new Set(await scopeUserIds(q, scope, realm));
  const existing = scope === "deactivated" ? new Set((await q.query("SELECT id FROM zerver_userprofile")).rows.map((r) => Number(r.id))) : null;
  for (const r of rows) {
    const uid = sessionUserId(decodeSessionData(r.session_data));
    if (wanted === null) {
      plan.keys.push(r.session_key);
      if (uid === null) plan.anonymous++;
      else plan.users.add(uid);
      continue;
    }
    if (uid === null) continue;
    if (existing && !existing.has(uid)) {
      plan.orphaned++;
      continue;
    }
    if (wanted.has(uid)) {
      plan.keys.push(r.session_key);
      plan.users.add(uid);
    }
  }
  return plan;
}

interface Rotation {
  id: number;
  email: string;
  audit_log_ids: number[];
  push_tokens_deleted: number;
}

/**
 * do_regenerate_api_key(user, user) for one user. With events, what Zulip sends: before 12.0
 * (FL 474) a realm_bot update with the new key for bots, and always the deferred_work job
 * {"type": "clear_push_device_tokens", "user_profile_id"} whose worker clears the user's push
 * registrations. Without events (--events=none) the local registrations are cleared here when
 * the server sends notifications itself (clearPushTokens).
 */
async function rotateApiKey(
  db: Db,
  userId: number,
  inval: CacheInvalidation,
  clearPushTokens: boolean,
  events: EventDelivery,
  level: number,
): Promise<Rotation | null> {
  const r = await events.tx(db, async (q) => {
    const { rows } = await q.query("SELECT * FROM zerver_userprofile WHERE id = $1 FOR NO KEY UPDATE", [userId]);
    if (rows.length === 0) return null; // deleted meanwhile
    const before: UserProfile = rows[0];
    const apiKey = generateApiKey();
    await q.query("UPDATE zerver_userprofile SET api_key = $2 WHERE id = $1", [userId, apiKey]);
    const auditIds = await insertAuditLog(q, [
      {
        realmId: Number(before.realm_id),
        eventType: AuditLogEventType.USER_API_KEY_CHANGED,
        eventTime: new Date(),
        actingUserId: userId,
        modifiedUserId: userId,
      },
    ]);
    let tokens = 0;
    if (events.enabled) {
      const { rows: realmRows } = await q.query("SELECT string_id FROM zerver_realm WHERE id = $1", [before.realm_id]);
      const realm = { id: Number(before.realm_id), string_id: realmRows[0].string_id as string };
      if (before.is_bot && level < FL.NO_REALM_BOT_UPDATES) {
        events.send(realm, { type: "realm_bot", op: "update", bot: { user_id: userId, api_key: apiKey } }, await botOwnerUserIds(q, before), `the new API key of bot ${before.delivery_email}`);
      }
      events.enqueue("deferred_work", { type: "clear_push_device_tokens", user_profile_id: userId }, `clearing the push notification registrations of ${before.delivery_email}`);
    } else if (clearPushTokens) {
      tokens = (await q.query("DELETE FROM zerver_pushdevicetoken WHERE user_id = $1", [userId])).rowCount ?? 0;
    }
    await inval.userChanged(q, { ...before, api_key: apiKey } as UserProfile & CacheUser, ["api_key"], {
      before: before as UserProfile & CacheUser,
    });
    return { id: userId, email: before.delivery_email as string, audit_log_ids: auditIds, push_tokens_deleted: tokens };
  });
  if (r) inval.changeCommitted();
  return r;
}

export default defineUntypedCommand({
  name: "logout_all_users",
  description:
    "Log out all users from active browser sessions.\n\n" +
    "Does not disable API keys, and thus will not log users out of the mobile apps, unless --rotate-api-keys is given.",
  examples: [
    "zulip-manage logout_all_users -r zulip",
    "zulip-manage logout_all_users --deactivated-only",
    "zulip-manage logout_all_users -r zulip --rotate-api-keys --dry-run",
  ],
  configure(cmd) {
    cmd.usage("[options] [-r REALM] [--deactivated-only] [--rotate-api-keys]");
    cmd.option("--deactivated-only", "Only log out all users who are deactivated");
    cmd.option("--rotate-api-keys", "Also rotate API keys of the affected users");
    addRealmOption(cmd, "Only log out all users in a particular realm");
    cmd.option("--dry-run", "show how many sessions and API keys would be affected, and change nothing");
    addFlushCacheOption(cmd);
    addEventsOption(cmd);
  },
  async run(ctx, _args, opts) {
    const out = ctx.out;
    const dryRun = Boolean(opts.dryRun);
    const db = await ctx.db();
    const realm = await getRealm(db, opts.realm);
    const scope: Scope = realm ? (opts.deactivatedOnly ? "realm-deactivated" : "realm") : opts.deactivatedOnly ? "deactivated" : "all";
    const where = realm ? ` of the organization '${realm.string_id}'` : " of this server";
    const who = scope === "realm-deactivated" || scope === "deactivated" ? `deactivated users${where}` : `users${where}`;

    const doc: LogoutAllUsersBody = {
      dry_run: dryRun,
      scope,
      realm: realm ? realmJson(ctx.config().settings, realm) : null,
      sessions_deleted_count: 0,
      users_logged_out_count: 0,
      anonymous_sessions_deleted_count: 0,
      orphaned_sessions_skipped_count: 0,
      api_keys_rotated: [],
      cache: null,
      events: null,
    };
    const counts = (plan: { keys: string[]; users: Set<unknown>; anonymous: number; orphaned: number }) =>
      Object.assign(doc, {
        sessions_deleted_count: plan.keys.length,
        users_logged_out_count: plan.users.size,
        anonymous_sessions_deleted_count: plan.anonymous,
        orphaned_sessions_skipped_count: plan.orphaned,
      });
    const rotationsJson = async (rotations: { id: number; audit_log_ids: number[]; push_tokens_deleted: number }[], status: "done" | "would_do") => {
      if (!out.json) return [];
      const objs = await usersJsonByIds(db, rotations.map((r) => r.id));
      return rotations
        .filter((r) => objs.has(r.id))
        .map((r) => ({ user: objs.get(r.id)!, audit_log_ids: r.audit_log_ids, push_tokens_deleted_count: r.push_tokens_deleted, ...outcome(status) }));
    };

    if (dryRun) {
      const plan = await planSessions(db, scope, realm);
      counts(plan);
      out.line(`Would delete ${plan.keys.length} sessions of ${plan.users.size} ${who}${plan.anonymous ? ` (and ${plan.anonymous} anonymous sessions)` : ""}.`);
      if (opts.rotateApiKeys) {
        const ids = await scopeUserIds(db, scope, realm);
        doc.api_keys_rotated = await rotationsJson(ids.map((id) => ({ id, audit_log_ids: [], push_tokens_deleted: 0 })), "would_do");
        out.line(`Would rotate the API keys of ${ids.length} ${who} (bots included).`);
      }
      out.line("(dry run: nothing was changed)");
      out.jsonBody<LogoutAllUsersBody>(doc);
      return;
    }

    const inval = new CacheInvalidation(ctx, opts.flushCache);
    const events = new EventDelivery(ctx, opts.events);
    let rotatedIds: number[] = [];
    let rotations: Rotation[] = [];
    let viaBouncer = false;
    try {
      const deleted = await db.tx(async (q) => {
        const plan = await planSessions(q, scope, realm);
        if (plan.keys.length === 0) return plan;
        const res = await q.query("DELETE FROM django_session WHERE session_key = ANY ($1::text[]) RETURNING session_key", [plan.keys]);
        inval.addDjangoKeys(
          res.rows.map((r) => sessionCacheKey(r.session_key)),
          `${res.rows.length} login session(s)`,
        );
        return plan;
      });
      if (deleted.keys.length) inval.changeCommitted();
      counts(deleted);

      if (opts.rotateApiKeys) {
        viaBouncer = Boolean(ctx.config().settings.get("ZULIP_SERVICE_PUSH_NOTIFICATIONS"));
        const rotated: Rotation[] = [];
        const level = featureLevel(ctx.paths, db);
        for (const id of await scopeUserIds(db, scope, realm)) {
          const r = await rotateApiKey(db, id, inval, !viaBouncer, events, level);
          if (r) rotated.push(r);
        }
        rotations = rotated;
        rotatedIds = rotated.map((r) => r.id);
        if (viaBouncer && rotated.length && !events.enabled) {
          out.warn(
            `Note: this server uses the Mobile Push Notification Service; the push notification registrations of the ${rotated.length} ` +
              "users whose API keys were rotated were not removed there (Zulip's queue worker would unregister them), " +
              "so devices they were logged in on may keep receiving push notifications until they log in again.",
          );
        }
      }
    } finally {
      doc.cache = cacheReportJson(await inval.commit());
      const delivery = await events.commit();
      doc.events = eventsReportJson(delivery);
      // The queue workers never got the clear_push_device_tokens jobs: do their local part here
      // (delete the registrations this server sends to itself), so old devices stop getting
      // notifications. Registrations at the push notification service cannot be removed from here.
      if (events.enabled && !delivery.ok && delivery.undelivered.some((u) => u.endsWith("clear_push_device_tokens")) && !viaBouncer && rotatedIds.length) {
        const { rows } = await db.query("DELETE FROM zerver_pushdevicetoken WHERE user_id = ANY ($1::int[]) RETURNING user_id", [rotatedIds]);
        for (const r of rotations) r.push_tokens_deleted = rows.filter((x) => Number(x.user_id) === r.id).length;
        out.warn(`The push notification registrations of the ${rotatedIds.length} users were cleared here instead (${rows.length} deleted).`);
      }
    }
    doc.api_keys_rotated = await rotationsJson(rotations, "done");
    out.jsonBody<LogoutAllUsersBody>(doc);
  },
});
