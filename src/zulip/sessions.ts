// Django sessions of Zulip users (zerver/lib/sessions.py).
//
// Zulip's session engine (zerver.lib.safe_session_cached_db, Django's cached_db) keeps each
// session in `django_session` and a copy in memcached under the plain Django cache key
// ":1:django.contrib.sessions.cached_db<session_key>". Zulip finds a user's sessions by decoding
// every row's session_data and comparing its `_auth_user_id`; it deletes each one from the
// cache and the database. This module does the same, for the user lifecycle actions
// (deactivate_user, delete_user, ...) and logout_all_users (delete_realm_user_sessions,
// delete_all_deactivated_user_sessions, delete_all_user_sessions: scopeSessions /
// deleteScopeSessions).
//
// session_data (Django >= 3.1, django.core.signing with compress=True):
//   "<payload>:<timestamp>:<signature>", payload = urlsafe base64 (no padding) of the JSON
//   session dict, or of its zlib compression prefixed by "." when that is shorter; timestamp =
//   base62 seconds; signature = urlsafe base64 HMAC-SHA256 keyed with
//   sha256("django.contrib.sessions.SessionStore" + "signer" + SECRET_KEY).
// Reading the user id does not need the signature; verifySessionData() checks it when the
// secret key is at hand (Django itself ignores sessions whose signature does not verify).
import { sessionCacheKey } from "./cache.js";
import type { Db, Queryable } from "../db/db.js";
import { crypto, zlib } from "../lib/builtins.js";
import { pyRepr } from "../lib/pyformat.js";
import { saltedHmac } from "./password-reset.js";

/** Django's SESSION_KEY: the session dict entry holding the user id. */
const SESSION_USER_KEY = "_auth_user_id";
/** key salt of Django's session stores ("django.contrib.sessions." + class __qualname__). */
const SESSION_KEY_SALT = "django.contrib.sessions.SessionStore";

function b64urlDecode(s: string): Buffer {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) throw new Error("not urlsafe base64");
  return Buffer.from(s.replace(/-/g, "+").replace(/_/g, "/"), "base64");
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

/** Django's Signer.signature: salted_hmac(salt + "signer", value, secret, sha256), base64url without padding. */
function sessionSignature(value: string, secretKey: string, salt = SESSION_KEY_SALT): string {
  return saltedHmac(`${salt}signer`, value, secretKey).digest("base64url");
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

export interface SessionListing {
  sessionKey: string;
  userId: number;
  /** Python's str() of the aware datetime Django returns, e.g. "2025-01-02 03:04:05.123456+00:00". */
  expireDate: string;
  /** The decoded session dict. */
  data: Record<string, unknown>;
  /** `print(session.expire_date, session.get_decoded())` */
  line: string;
}

/** user_sessions() for several users, formatted as manage.py deactivate_user prints them. */
export async function describeSessions(q: Queryable, userIds: Iterable<number>): Promise<SessionListing[]> {
  const sessions = await findUserSessions(q, userIds);
  if (sessions.length === 0) return [];
  const { rows } = await q.query(
    `SELECT session_key, session_data,
            to_char(expire_date AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS secs,
            to_char(expire_date AT TIME ZONE 'UTC', 'US') AS us
       FROM django_session WHERE session_key = ANY ($1::text[])`,
    [sessions.map((s) => s.sessionKey)],
  );
  const byKey = new Map(rows.map((r) => [r.session_key as string, r]));
  const out: SessionListing[] = [];
  for (const s of sessions) {
    const r = byKey.get(s.sessionKey);
    if (!r) continue; // deleted meanwhile
    const us = Number(r.us);
    const expireDate = `${r.secs}${us ? `.${String(us).padStart(6, "0")}` : ""}+00:00`;
    const data = decodeSessionData(r.session_data) ?? {};
    out.push({ sessionKey: s.sessionKey, userId: s.userId, expireDate, data, line: `${expireDate} ${pyRepr(data)}` });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// logout_all_users: the sessions of a realm's users, of deactivated users, or all of them.

/**
 * Whose sessions: "realm", every user of one organization (active or not, bots included:
 * delete_realm_user_sessions, though that also skips expired sessions and we delete them too);
 * "deactivated", users who are deactivated or whose organization is
 * (delete_all_deactivated_user_sessions); "realm-deactivated", both conditions; "all", every
 * row of django_session, anonymous sessions included (delete_all_user_sessions).
 */
export type SessionScope = "realm" | "deactivated" | "realm-deactivated" | "all";

/** The users a scope covers, as SQL over zerver_userprofile u joined to zerver_realm r. */
function scopeCondition(scope: SessionScope): string {
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

/** The ids of the users a scope covers (id order); `realmId` for the realm scopes. */
export async function scopeUserIds(q: Queryable, scope: SessionScope, realmId: number | null): Promise<number[]> {
  const { rows } = await q.query(
    `SELECT u.id FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id WHERE ${scopeCondition(scope)} ORDER BY u.id`,
    scope === "realm" || scope === "realm-deactivated" ? [realmId] : [],
  );
  return rows.map((r) => Number(r.id));
}

export interface ScopeSessions {
  /** The session keys to delete. */
  keys: string[];
  /** The users they belong to. */
  users: Set<number>;
  /** Sessions of no user ("all" only). */
  anonymous: number;
  /** Sessions of users that no longer exist, left alone ("deactivated" only; manage.py crashes on them). */
  orphaned: number;
}

/** The sessions a scope covers, found by decoding each row's session_data. */
export async function scopeSessions(q: Queryable, scope: SessionScope, realmId: number | null): Promise<ScopeSessions> {
  const plan: ScopeSessions = { keys: [], users: new Set(), anonymous: 0, orphaned: 0 };
  const { rows } = await q.query("SELECT session_key, session_data FROM django_session ORDER BY session_key");
  const wanted = scope === "all" ? null : new Set(await scopeUserIds(q, scope, realmId));
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

/**
 * Delete the sessions a scope covers, in one transaction, and queue their cached copies in
 * `cache` (a CacheInvalidation: the caller marks the change committed when keys are non-empty).
 */
export async function deleteScopeSessions(db: Db, scope: SessionScope, realmId: number | null, cache: DjangoKeySink): Promise<ScopeSessions> {
  return db.tx(async (q) => {
    const plan = await scopeSessions(q, scope, realmId);
    if (plan.keys.length === 0) return plan;
    const res = await q.query("DELETE FROM django_session WHERE session_key = ANY ($1::text[]) RETURNING session_key", [plan.keys]);
    cache.addDjangoKeys(
      res.rows.map((r) => sessionCacheKey(r.session_key)),
      `${res.rows.length} login session(s)`,
    );
    return plan;
  });
}
