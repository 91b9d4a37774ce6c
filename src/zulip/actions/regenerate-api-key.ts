// do_regenerate_api_key(user, acting_user) and bulk_regenerate_api_keys(user_ids)
// (zerver/actions/user_settings.py), as logout_all_users --rotate-api-keys runs them: each user
// in its own transaction, the row locked, api_key replaced by a new 32-character key
// (generate_api_key), a 127 (USER_API_KEY_CHANGED) audit row with the user as acting and
// modified user; the cached user objects under the old and the new key deleted.
//
// Events, as Zulip sends them: before 12.0 (FL 474) a realm_bot update with the new key for
// bots, and always the deferred_work job {"type": "clear_push_device_tokens", "user_profile_id"}
// whose queue worker clears the user's push notification registrations (also at the Mobile Push
// Notification Service). Without events (--events=none) a server that sends notifications itself
// gets its zerver_pushdevicetoken rows deleted here instead; when the jobs were staged but could
// not be delivered, clearUndeliveredPushTokens does the same after the fact. Registrations at the
// push notification service cannot be removed from here (the caller warns).
import { AuditLogEventType, insertAuditLog } from "../audit.js";
import type { CacheInvalidation, CacheUser } from "../cache.js";
import type { Db } from "../../db/db.js";
import { CommandError } from "../../lib/errors.js";
import { getRandomString } from "../../lib/random.js";
import { lockUserRow, realmRef, type UserProfile } from "../lookup.js";
import { type EventDelivery, type EventReport, FL } from "../../services/events.js";
import { botOwnerUserIds } from "../events/user-events.js";

/**
 * zerver.lib.utils.generate_api_key(): 32 characters from [A-Za-z0-9] (get_random_string);
 * `alnum` draws them (a seeded source in tests and seeds).
 */
export function generateApiKey(alnum: (n: number) => string = getRandomString): string {
  return alnum(32);
}

export interface ApiKeyRotation {
  id: number;
  email: string;
  audit_log_ids: number[];
  push_tokens_deleted: number;
}

export interface RegenerateApiKeyOptions {
  cache: CacheInvalidation;
  events: EventDelivery;
  featureLevel: number;
  /**
   * The server sends push notifications itself (not through the push notification service):
   * without events, its push registrations of the user are deleted here.
   */
  clearPushTokens: boolean;
}

/** do_regenerate_api_key(user, user) for one user; null when the user was deleted meanwhile. */
async function doRegenerateApiKey(db: Db, userId: number, opts: RegenerateApiKeyOptions): Promise<ApiKeyRotation | null> {
  const { events } = opts;
  const r = await events.tx(db, async (q) => {
    let before: UserProfile;
    try {
      before = await lockUserRow(q, userId);
    } catch (e) {
      if (e instanceof CommandError) return null; // deleted meanwhile
      throw e;
    }
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
      const realm = await realmRef(q, Number(before.realm_id));
      if (before.is_bot && opts.featureLevel < FL.NO_REALM_BOT_UPDATES) {
        events.send(
          realm,
          { type: "realm_bot", op: "update", bot: { user_id: userId, api_key: apiKey } },
          await botOwnerUserIds(q, before),
          `the new API key of bot ${before.delivery_email}`,
        );
      }
      events.enqueue(
        "deferred_work",
        { type: "clear_push_device_tokens", user_profile_id: userId },
        `clearing the push notification registrations of ${before.delivery_email}`,
      );
    } else if (opts.clearPushTokens) {
      tokens = (await q.query("DELETE FROM zerver_pushdevicetoken WHERE user_id = $1", [userId])).rowCount ?? 0;
    }
    await opts.cache.userChanged(q, { ...before, api_key: apiKey } as UserProfile & CacheUser, ["api_key"], {
      before: before as UserProfile & CacheUser,
    });
    return { id: userId, email: before.delivery_email as string, audit_log_ids: auditIds, push_tokens_deleted: tokens };
  });
  if (r) opts.cache.changeCommitted();
  return r;
}

/** bulk_regenerate_api_keys(user_ids): do_regenerate_api_key for each user still there, in order. */
export async function bulkRegenerateApiKeys(db: Db, userIds: number[], opts: RegenerateApiKeyOptions): Promise<ApiKeyRotation[]> {
  const rotated: ApiKeyRotation[] = [];
  for (const id of userIds) {
    const r = await doRegenerateApiKey(db, id, opts);
    if (r) rotated.push(r);
  }
  return rotated;
}

/**
 * After delivery: when the clear_push_device_tokens jobs were staged but the queue workers never
 * got them, do their local part here (delete the registrations a server that sends notifications
 * itself keeps), so old devices stop getting notifications; `rotations` get their counts. The
 * number of rows deleted, or null when there was nothing to do.
 */
export async function clearUndeliveredPushTokens(
  db: Db,
  rotations: ApiKeyRotation[],
  delivery: EventReport,
  opts: { eventsEnabled: boolean; viaPushService: boolean },
): Promise<number | null> {
  const ids = rotations.map((r) => r.id);
  if (!opts.eventsEnabled || delivery.ok || !delivery.undelivered.some((u) => u.endsWith("clear_push_device_tokens")) || opts.viaPushService || !ids.length) {
    return null;
  }
  const { rows } = await db.query("DELETE FROM zerver_pushdevicetoken WHERE user_id = ANY ($1::int[]) RETURNING user_id", [ids]);
  for (const r of rotations) r.push_tokens_deleted = rows.filter((x) => Number(x.user_id) === r.id).length;
  return rows.length;
}
