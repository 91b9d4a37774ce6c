// Django sessions of Zulip users (zerver/lib/sessions.py).
//
// Zulip's session engine (zerver.lib.safe_session_cached_db, Django's cached_db) keeps each
// session in `django_session` and a copy in memcached under the plain Django cache key
// ":1:django.contrib.sessions.cached_db<session_key>". Zulip finds a user's sessions by decoding
// every row's session_data and comparing its `_auth_user_id`; it deletes each one from the
// cache and the database. This module does the same, for the user lifecycle commands
// (deactivate_user, delete_user, ...).
//
// session_data (Django >= 3.1, django.core.signing with compress=True):
//   "<payload>:<timestamp>:<signature>", payload = urlsafe base64 (no padding) of the JSON
//   session dict, or of its zlib compression prefixed by "." when that is shorter; timestamp =
//   base62 seconds; signature = urlsafe base64 HMAC-SHA256 keyed with
//   sha256("django.contrib.sessions.SessionStore" + "signer" + SECRET_KEY).
// Reading the user id does not need the signature; verifySessionData() checks it when the
// secret key is at hand (Django itself ignores sessions whose signature does not verify).
import { sessionCacheKey } from "./cache.js";
import type { Queryable } from "../db/db.js";
import { crypto, zlib } from "../lib/builtins.js";

/** Django's SESSION_KEY: the session dict entry holding the user id. */
export const SESSION_USER_KEY = "_auth_user_id";
/** key salt of Django's session stores ("django.contrib.sessions." + class __qualname__). */
export const SESSION_KEY_SALT = "django.contrib.sessions.SessionStore";

function b64urlDecode(s: string): Buffer {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) throw new Error("not urlsafe base64");
  return Buffer.from(s.replace(/-/g, "+").replace(/_/g, "/"), "base64");
}

export function b64urlEncode(buf: Buffer): string {
  return buf.toString("base64").replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The session dict stored in `session_data`, or null when it is not a readable Django session. */
export function decodeSessionData(sessionData: string): Record<string, unknown> | null {
  // TimestampSigner: value:timestamp:signature, split from the right.
  const parts = sessionData.split(":");
  if (parts.length < 3) return null;
  let payload = parts.slice(0, parts.length - 2).join(":");
  let compressed = false;
  if (payload.startsWith(".")) {
    compressed = true;
    payload = payload.slice(1);
  }
  try {
    let data = b64urlDecode(payload);
    if (compressed) data = zlib().inflateSync(data);
    const obj = JSON.parse(data.toString("utf8"));
    return obj !== null && typeof obj === "object" && !Array.isArray(obj) ? obj : null;
  } catch {
    return null;
  }
}

/** django.contrib.auth's user id of a decoded session (the pk as an int), or null. */
export function sessionUserId(session: Record<string, unknown> | null): number | null {
  if (!session) return null;
  const v = session[SESSION_USER_KEY];
  if (typeof v === "number" && Number.isInteger(v)) return v;
  if (typeof v === "string" && /^\s*[+-]?\d+\s*$/.test(v)) return Number(v.trim());
  return null;
}

/** Django's salted_hmac(salt + "signer", value, secret, sha256), base64url without padding. */
export function sessionSignature(value: string, secretKey: string, salt = SESSION_KEY_SALT): string {
  const key = crypto().createHash("sha256").update(`${salt}signer${secretKey}`, "utf8").digest();
  return b64urlEncode(crypto().createHmac("sha256", key).update(value, "utf8").digest());
}

/** Whether session_data carries a valid signature for this SECRET_KEY. */
export function verifySessionData(sessionData: string, secretKey: string, salt = SESSION_KEY_SALT): boolean {
  const i = sessionData.lastIndexOf(":");
  if (i < 0) return false;
  const expected = Buffer.from(sessionSignature(sessionData.slice(0, i), secretKey, salt));
  const actual = Buffer.from(sessionData.slice(i + 1));
  return expected.length === actual.length && crypto().timingSafeEqual(expected, actual);
}

/** SECRET_KEY when readable (to skip sessions Django would not honour), else undefined. */
export function secretKeyOrUndefined(settings: { get(name: "SECRET_KEY"): string }): string | undefined {
  try {
    return settings.get("SECRET_KEY");
  } catch {
    return undefined;
  }
}

export interface UserSession {
  sessionKey: string;
  userId: number;
  expireDate: Date;
}

export interface FindSessionsOptions {
  /** Only sessions that have not expired (delete_realm_user_sessions does this). */
  unexpiredOnly?: boolean;
  /** Only sessions whose signature verifies with this SECRET_KEY (what Django would honour). */
  secretKey?: string;
}

/** The django_session rows belonging to any of `userIds` (Zulip: user_sessions()). */
export async function findUserSessions(q: Queryable, userIds: Iterable<number>, opts: FindSessionsOptions = {}): Promise<UserSession[]> {
  const wanted = new Set(userIds);
  if (wanted.size === 0) return [];
  const { rows } = await q.query(
    `SELECT session_key, session_data, expire_date FROM django_session${opts.unexpiredOnly ? " WHERE expire_date >= now()" : ""} ORDER BY session_key`,
  );
  const found: UserSession[] = [];
  for (const r of rows) {
    if (opts.secretKey !== undefined && !verifySessionData(r.session_data, opts.secretKey)) continue;
    const uid = sessionUserId(decodeSessionData(r.session_data));
    if (uid !== null && wanted.has(uid)) found.push({ sessionKey: r.session_key, userId: uid, expireDate: r.expire_date });
  }
  return found;
}

/** Something that takes Django cache keys to delete after COMMIT (a CacheInvalidation). */
export interface DjangoKeySink {
  addDjangoKeys(keys: Iterable<string>, what?: string): void;
}

/**
 * delete_user_sessions() for several users: deletes their django_session rows (inside the
 * caller's transaction) and queues the cached copies for deletion in `cache` (applied when the
 * caller commits the CacheInvalidation). Returns the deleted sessions.
 */
export async function deleteUserSessions(
  q: Queryable,
  userIds: Iterable<number>,
  cache?: DjangoKeySink,
  opts: FindSessionsOptions = {},
): Promise<UserSession[]> {
  const sessions = await findUserSessions(q, userIds, opts);
  if (sessions.length === 0) return [];
  const keys = sessions.map((s) => s.sessionKey);
  await q.query("DELETE FROM django_session WHERE session_key = ANY ($1::text[])", [keys]);
  cache?.addDjangoKeys(keys.map(sessionCacheKey), `${sessions.length} login session(s)`);
  return sessions;
}
