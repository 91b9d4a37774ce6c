// do_change_password(user, password) (zerver/actions/user_settings.py), as manage.py
// change_password reaches it (UserProfile.set_password + save; manage.py's own command skips the
// audit row, the web and API paths write it — we write what the action writes).
//
// The hash is Django's (src/zulip/password.ts): on a production server Argon2id in
// Argon2PasswordHasher's exact format and parameters, so the server accepts it and never needs
// to rehash it; on a development server PBKDF2. In one transaction the user row is locked, its
// password column set, and a 122 (USER_PASSWORD_CHANGED) audit row written with the user as
// acting and modified user. After COMMIT the cached user objects are deleted (by the caller's
// CacheInvalidation), which also ends the user's other login sessions (Django checks each
// session's password-derived hash), and, as do_change_password does,
// RateLimitedAuthenticationByUsername(user.delivery_email).clear_history() forgets the failed
// login attempts counted in Redis (best effort: reported, not thrown, when Redis cannot be
// reached; the password stays changed).
import { AuditLogEventType, insertAuditLog } from "../audit.js";
import type { CacheInvalidation, CacheUser } from "../cache.js";
import type { Config } from "../../config/config.js";
import type { Db } from "../../db/db.js";
import { lockUserRow, type UserProfile } from "../lookup.js";
import { djangoPasswordHash } from "../password.js";
import { clearAuthenticationAttempts } from "../rate-limit.js";
import { RedisClient, zulipRedisOptions } from "../../services/redis.js";

export interface PasswordChange {
  /** The hash's algorithm, e.g. "argon2" or "pbkdf2_sha256". */
  hasher: string;
  auditLogIds: number[];
  /** The Redis follow-up: the failed-login keys deleted, or why they could not be. */
  rateLimit: { ok: true; keysDeleted: number } | { ok: false; error: string };
}

/** do_change_password(user, password): `password` already checked against the strength rule. */
export async function doChangePassword(
  db: Db,
  user: UserProfile,
  password: string,
  opts: { config: Config; cache: CacheInvalidation },
): Promise<PasswordChange> {
  const hash = await djangoPasswordHash(password, Boolean(opts.config.settings.get("PRODUCTION")));
  const auditLogIds = await db.tx(async (q) => {
    const locked = await lockUserRow(q, user.id, { missing: "The user was deleted while this command ran; nothing was changed." });
    await q.query("UPDATE zerver_userprofile SET password = $2 WHERE id = $1", [user.id, hash]);
    const ids = await insertAuditLog(q, [
      {
        realmId: Number(locked.realm_id),
        eventType: AuditLogEventType.USER_PASSWORD_CHANGED,
        eventTime: new Date(),
        actingUserId: user.id,
        modifiedUserId: user.id,
      },
    ]);
    await opts.cache.userChanged(q, { ...locked, password: hash } as unknown as UserProfile & CacheUser, ["password"]);
    return ids;
  });
  opts.cache.changeCommitted();
  return { hasher: hash.split("$")[0], auditLogIds, rateLimit: await forgetFailedLogins(opts.config, user.delivery_email) };
}

/** RateLimitedAuthenticationByUsername(email).clear_history(), never throwing. */
async function forgetFailedLogins(config: Config, email: string): Promise<PasswordChange["rateLimit"]> {
  let redis: RedisClient | undefined;
  try {
    redis = await RedisClient.connect({ ...zulipRedisOptions(config.settings, (n) => config.secret(n)), timeoutMs: 3000 });
    return { ok: true, keysDeleted: (await clearAuthenticationAttempts(redis, email)).deleted };
  } catch (e: any) {
    return { ok: false, error: String(e?.message ?? e) };
  } finally {
    redis?.close();
  }
}
