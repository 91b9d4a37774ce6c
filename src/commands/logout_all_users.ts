// logout_all_users: log users out of their browser sessions, optionally rotating their API keys
// (which logs out the mobile and terminal apps too), as manage.py's logout_all_users does
// (zerver/lib/sessions.py delete_*_sessions: src/zulip/sessions.ts; zerver/actions/user_settings.py
// bulk_regenerate_api_keys / do_regenerate_api_key: src/zulip/actions/regenerate-api-key.ts).
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
import { CacheInvalidation, cacheReportJson } from "../zulip/cache.js";
import { defineCommand } from "../cli/command.js";
import { EventDelivery, eventsReportJson, featureLevel } from "../services/events.js";
import { getRealm } from "../zulip/lookup.js";
import { deleteScopeSessions, type ScopeSessions, type SessionScope, scopeSessions, scopeUserIds } from "../zulip/sessions.js";
import { type ApiKeyRotation, bulkRegenerateApiKeys, clearUndeliveredPushTokens } from "../zulip/actions/regenerate-api-key.js";
import { outcome } from "../cli/json-contract.js";
import { realmJson, usersJsonByIds } from "../cli/json-objects.js";
import type { LogoutAllUsersBody } from "../schemas/logout_all_users.js";

export default defineCommand({
  name: "logout_all_users",
  description:
    "Log out all users from active browser sessions.\n\n" +
    "Does not disable API keys, and thus will not log users out of the mobile apps, unless --rotate-api-keys is given.",
  examples: [
    "zulip-manage logout_all_users -r zulip",
    "zulip-manage logout_all_users --deactivated-only",
    "zulip-manage logout_all_users -r zulip --rotate-api-keys --dry-run",
  ],
  configure: (cmd) =>
    addEventsOption(
      addFlushCacheOption(
        addRealmOption(
          cmd
            .usage("[options] [-r REALM] [--deactivated-only] [--rotate-api-keys]")
            .option("--deactivated-only", "Only log out all users who are deactivated")
            .option("--rotate-api-keys", "Also rotate API keys of the affected users"),
          "Only log out all users in a particular realm",
        ).option("--dry-run", "show how many sessions and API keys would be affected, and change nothing"),
      ),
    ),
  async run(ctx, _args, opts) {
    const out = ctx.out;
    const dryRun = Boolean(opts.dryRun);
    const db = await ctx.db();
    const realm = await getRealm(db, opts.realm);
    const realmId = realm ? Number(realm.id) : null;
    const scope: SessionScope = realm ? (opts.deactivatedOnly ? "realm-deactivated" : "realm") : opts.deactivatedOnly ? "deactivated" : "all";
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
    const counts = (plan: ScopeSessions) =>
      Object.assign(doc, {
        sessions_deleted_count: plan.keys.length,
        users_logged_out_count: plan.users.size,
        anonymous_sessions_deleted_count: plan.anonymous,
        orphaned_sessions_skipped_count: plan.orphaned,
      });
    const rotationsJson = async (rotations: Pick<ApiKeyRotation, "id" | "audit_log_ids" | "push_tokens_deleted">[], status: "done" | "would_do") => {
      if (!out.json) return [];
      const objs = await usersJsonByIds(
        db,
        rotations.map((r) => r.id),
      );
      return rotations
        .filter((r) => objs.has(r.id))
        .map((r) => ({ user: objs.get(r.id)!, audit_log_ids: r.audit_log_ids, push_tokens_deleted_count: r.push_tokens_deleted, ...outcome(status) }));
    };

    if (dryRun) {
      const plan = await scopeSessions(db, scope, realmId);
      counts(plan);
      out.line(`Would delete ${plan.keys.length} sessions of ${plan.users.size} ${who}${plan.anonymous ? ` (and ${plan.anonymous} anonymous sessions)` : ""}.`);
      if (opts.rotateApiKeys) {
        const ids = await scopeUserIds(db, scope, realmId);
        doc.api_keys_rotated = await rotationsJson(
          ids.map((id) => ({ id, audit_log_ids: [], push_tokens_deleted: 0 })),
          "would_do",
        );
        out.line(`Would rotate the API keys of ${ids.length} ${who} (bots included).`);
      }
      out.line("(dry run: nothing was changed)");
      out.jsonBody<LogoutAllUsersBody>(doc);
      return;
    }

    const inval = new CacheInvalidation(ctx, opts.flushCache);
    const events = new EventDelivery(ctx, opts.events);
    let rotations: ApiKeyRotation[] = [];
    let viaPushService = false;
    try {
      const deleted = await deleteScopeSessions(db, scope, realmId, inval);
      if (deleted.keys.length) inval.changeCommitted();
      counts(deleted);

      if (opts.rotateApiKeys) {
        viaPushService = Boolean(ctx.config().settings.get("ZULIP_SERVICE_PUSH_NOTIFICATIONS"));
        rotations = await bulkRegenerateApiKeys(db, await scopeUserIds(db, scope, realmId), {
          cache: inval,
          events,
          featureLevel: featureLevel(ctx.paths, db),
          clearPushTokens: !viaPushService,
        });
        if (viaPushService && rotations.length && !events.enabled) {
          out.warn(
            `Note: this server uses the Mobile Push Notification Service; the push notification registrations of the ${rotations.length} ` +
              "users whose API keys were rotated were not removed there (Zulip's queue worker would unregister them), " +
              "so devices they were logged in on may keep receiving push notifications until they log in again.",
          );
        }
      }
    } finally {
      doc.cache = cacheReportJson(await inval.commit());
      const delivery = await events.commit();
      doc.events = eventsReportJson(delivery);
      const cleared = await clearUndeliveredPushTokens(db, rotations, delivery, { eventsEnabled: events.enabled, viaPushService });
      if (cleared !== null) out.warn(`The push notification registrations of the ${rotations.length} users were cleared here instead (${cleared} deleted).`);
    }
    doc.api_keys_rotated = await rotationsJson(rotations, "done");
    out.jsonBody<LogoutAllUsersBody>(doc);
  },
});
