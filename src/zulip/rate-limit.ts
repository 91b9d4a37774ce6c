// Zulip's Redis rate-limit keys (zerver/lib/rate_limiter.py RedisRateLimiterBackend and
// zproject/backends.py RateLimitedAuthenticationByUsername), for
// reset_authentication_attempt_count and change_password (do_change_password clears the
// authentication attempts of the user's delivery email).
//
// Every rate-limited entity has three keys, "ratelimit:<entity key>:list|zset|block" (the
// production KEY_PREFIX is empty); clear_history() deletes all three. The entity key of login
// attempts is "RateLimitedAuthenticationByUsername:<username>" with the username exactly as typed
// in the login form (case-sensitive, not normalized).
import type { CacheInvalidation, CacheUser } from "./cache.js";
import type { Db } from "../db/db.js";
import { lockUserRow, type UserProfile } from "./lookup.js";
import type { RedisClient } from "../services/redis.js";

/** RedisRateLimiterBackend.get_keys(entity_key) */
export function rateLimitKeys(entityKey: string): string[] {
  return ["list", "zset", "block"].map((t) => `ratelimit:${entityKey}:${t}`);
}

/** RateLimitedAuthenticationByUsername(username).key() */
export function authenticationAttemptEntity(username: string): string {
  return `RateLimitedAuthenticationByUsername:${username}`;
}

export interface ClearedHistory {
  keys: string[];
  /** How many of the keys existed. */
  deleted: number;
}

/** RateLimitedAuthenticationByUsername(username).clear_history() */
export async function clearAuthenticationAttempts(redis: RedisClient, username: string): Promise<ClearedHistory> {
  const keys = rateLimitKeys(authenticationAttemptEntity(username));
  const deleted = await redis.del(...keys);
  return { keys, deleted };
}

// ---------------------------------------------------------------------------------------------
// API rate limits of users (RateLimitedUser) and their manual blocks: manage.py rate_limit.

/** RateLimitedUser(user, domain).key() */
function userRateLimitEntity(userId: number, domain: string): string {
  return `RateLimitedUser:${userId}:${domain}`;
}

/** The manual-block key of RedisRateLimiterBackend (get_keys()[2]). */
function userBlockKey(userId: number, domain: string): string {
  return rateLimitKeys(userRateLimitEntity(userId, domain))[2];
}

/** RedisRateLimiterBackend.block_access: SET <block key> 1, then EXPIRE it (a pipeline, as Zulip sends it). */
export async function blockAccess(redis: RedisClient, userId: number, domain: string, seconds: number): Promise<string> {
  const key = userBlockKey(userId, domain);
  await redis.command(["SET", key, "1"]);
  await redis.command(["EXPIRE", key, String(seconds)]);
  return key;
}

/** RedisRateLimiterBackend.unblock_access: DEL <block key>. Returns whether a block existed. */
export async function unblockAccess(redis: RedisClient, userId: number, domain: string): Promise<{ key: string; existed: boolean }> {
  const key = userBlockKey(userId, domain);
  return { key, existed: (await redis.del(key)) > 0 };
}

/** Whether the user is blocked in that domain, and for how many more seconds (-1: no expiry). */
export async function blockState(redis: RedisClient, userId: number, domain: string): Promise<{ key: string; blocked: boolean; ttl: number | null }> {
  const key = userBlockKey(userId, domain);
  const ttl = await redis.ttl(key);
  return { key, blocked: ttl !== -2, ttl: ttl === -2 ? null : ttl };
}

/**
 * Check a UserProfile.rate_limits value the way RateLimitedUser.rules() reads it:
 * "<seconds>:<requests>" rules separated by commas ("" = the server's defaults). Zulip's parser
 * crashes on anything else (or misbehaves on non-positive numbers), so those are refused.
 * Returns the rules, or throws with the reason.
 */
export function parseRateLimits(value: string): [number, number][] {
  if (value === "") return [];
  if ([...value].length > 100) throw new Error("the value is longer than the column's 100 characters");
  return value.split(",").map((part) => {
    const m = /^\s*\+?(\d+)\s*:\s*\+?(\d+)\s*$/.exec(part);
    if (!m) throw new Error(`'${part}' is not <seconds>:<requests>`);
    const seconds = Number(m[1]);
    const requests = Number(m[2]);
    if (!(seconds > 0 && requests > 0) || !Number.isSafeInteger(seconds) || !Number.isSafeInteger(requests)) {
      throw new Error(`'${part}': both numbers must be positive integers`);
    }
    return [seconds, requests] as [number, number];
  });
}

/**
 * Store a user's rate_limits override (what `user.rate_limits = ...; user.save(update_fields=
 * ["rate_limits"])` in manage.py shell does: no audit row or event exists for it in Zulip), in
 * its own transaction, the row locked. flush_user_profile deletes the user's cached profile,
 * which carries the value to the API workers (the cache change is marked committed here).
 */
export async function setRateLimits(
  db: Db,
  userId: number,
  value: string,
  opts: { cache?: CacheInvalidation } = {},
): Promise<{ old: string; changed: boolean }> {
  const result = await db.tx(async (q) => {
    const user = (await lockUserRow(q, userId, { missing: "The user was deleted while this command ran; nothing was changed." })) as UserProfile & CacheUser;
    const old = String(user.rate_limits ?? "");
    if (old === value) return { old, changed: false };
    await q.query("UPDATE zerver_userprofile SET rate_limits = $2 WHERE id = $1", [userId, value]);
    await opts.cache?.userChanged(q, { ...user, rate_limits: value }, ["rate_limits"]);
    return { old, changed: true };
  });
  if (result.changed) opts.cache?.changeCommitted();
  return result;
}
