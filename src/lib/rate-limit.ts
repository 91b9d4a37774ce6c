// Zulip's Redis rate-limit keys (zerver/lib/rate_limiter.py RedisRateLimiterBackend and
// zproject/backends.py RateLimitedAuthenticationByUsername), for
// reset_authentication_attempt_count and change_password (do_change_password clears the
// authentication attempts of the user's delivery email).
//
// Every rate-limited entity has three keys, "ratelimit:<entity key>:list|zset|block" (the
// production KEY_PREFIX is empty); clear_history() deletes all three. The entity key of login
// attempts is "RateLimitedAuthenticationByUsername:<username>" with the username exactly as typed
// in the login form (case-sensitive, not normalized).
import type { RedisClient } from "./redis.js";

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
