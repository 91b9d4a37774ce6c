// Password reset links a Zulip server accepts: Django's PasswordResetTokenGenerator
// (django/contrib/auth/tokens.py, SHA-256, Django 3.1+) keyed on SECRET_KEY (the `secret_key`
// secret), and the /accounts/password/reset/<uidb64>/<token>/ URL Zulip builds around it
// (zerver/actions/users.py generate_password_reset_url).
import { crypto } from "../lib/builtins.js";

const KEY_SALT = "django.contrib.auth.tokens.PasswordResetTokenGenerator";
/** Django's default PASSWORD_RESET_TIMEOUT (3 days); Zulip does not override it. */
const DEFAULT_PASSWORD_RESET_TIMEOUT = 259_200;
/** datetime(2001, 1, 1), the origin of the token timestamp (UTC: Zulip's TIME_ZONE). */
const TOKEN_EPOCH_MS = Date.UTC(2001, 0, 1);

/** The user fields the token hashes. `email` is the `email` column (get_email_field_name()). */
export interface TokenUser {
  id: number;
  /** The stored password hash (argon2$…, or an unusable "!…" value). */
  password: string;
  /** last_login: a Date, PostgreSQL text, or null. */
  last_login: Date | string | null;
  /** UserProfile.email — Zulip defines no EMAIL_FIELD, so Django uses "email", not delivery_email. */
  email: string | null;
}

/** Django's _num_seconds(): whole seconds since 2001-01-01 (naive UTC). */
export function tokenTimestamp(now: Date = new Date()): number {
  return Math.floor((now.getTime() - TOKEN_EPOCH_MS) / 1000);
}

/** django.utils.http.int_to_base36 */
function intToBase36(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError("Negative base36 conversion input.");
  return n.toString(36);
}

/** django.utils.http.base36_to_int (at most 13 characters); null where Django raises ValueError. */
export function base36ToInt(s: string): number | null {
  if (s.length > 13 || !/^[0-9a-z]+$/i.test(s)) return null;
  const n = parseInt(s, 36);
  return Number.isSafeInteger(n) ? n : null;
}

/** django.utils.crypto.salted_hmac(key_salt, value, secret, algorithm="sha256"). */
export function saltedHmac(keySalt: string, value: string, secret: string, algorithm = "sha256") {
  const key = crypto()
    .createHash(algorithm)
    .update(Buffer.concat([Buffer.from(keySalt, "utf8"), Buffer.from(secret, "utf8")]))
    .digest();
  return crypto().createHmac(algorithm, key).update(value, "utf8");
}

/** str(last_login.replace(microsecond=0, tzinfo=None)) for a UTC timestamp, or "" when NULL. */
export function loginTimestamp(lastLogin: Date | string | null | undefined): string {
  if (lastLogin === null || lastLogin === undefined) return "";
  let d: Date;
  if (typeof lastLogin === "string") {
    // PostgreSQL text output, e.g. "2024-05-06 07:08:09.123456+00"
    const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:([+-])(\d{2})(?::?(\d{2}))?|Z)?$/.exec(lastLogin.trim());
    if (!m) throw new Error(`cannot read last_login value ${JSON.stringify(lastLogin)}`);
    const offsetMin = m[7] ? (m[7] === "-" ? -1 : 1) * (Number(m[8]) * 60 + Number(m[9] ?? 0)) : 0;
    d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) - offsetMin * 60_000);
  } else {
    d = lastLogin;
  }
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getUTCFullYear(), 4)}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}`;
}

/** PasswordResetTokenGenerator._make_hash_value */
function makeHashValue(user: TokenUser, timestamp: number): string {
  return `${user.id}${user.password ?? ""}${loginTimestamp(user.last_login)}${timestamp}${user.email ?? ""}`;
}

/** PasswordResetTokenGenerator._make_token_with_timestamp: "<ts base36>-<every other hex char of the HMAC>". */
export function makeTokenWithTimestamp(user: TokenUser, timestamp: number, secret: string): string {
  const hex = saltedHmac(KEY_SALT, makeHashValue(user, timestamp), secret).digest("hex");
  let hash = "";
  for (let i = 0; i < hex.length; i += 2) hash += hex[i];
  return `${intToBase36(timestamp)}-${hash}`;
}

/** default_token_generator.make_token(user) */
export function makeToken(user: TokenUser, secret: string, now: Date = new Date()): string {
  return makeTokenWithTimestamp(user, tokenTimestamp(now), secret);
}

/** default_token_generator.check_token(user, token) with SECRET_KEY and its fallbacks. */
export function checkToken(user: TokenUser, token: string, secrets: string[], opts: { timeoutSeconds?: number; now?: Date } = {}): boolean {
  if (!user || !token) return false;
  const parts = token.split("-");
  if (parts.length !== 2) return false;
  const ts = base36ToInt(parts[0]);
  if (ts === null) return false;
  const matches = secrets.some((secret) => {
    const expected = Buffer.from(makeTokenWithTimestamp(user, ts, secret));
    const given = Buffer.from(token);
    return expected.length === given.length && crypto().timingSafeEqual(expected, given);
  });
  if (!matches) return false;
  return tokenTimestamp(opts.now) - ts <= (opts.timeoutSeconds ?? DEFAULT_PASSWORD_RESET_TIMEOUT);
}

/** urlsafe_base64_encode(str(user.id).encode()): URL-safe base64 without '=' padding. */
export function uidb64(userId: number | string): string {
  return Buffer.from(String(userId), "utf8").toString("base64url");
}

/** urlsafe_base64_decode, as the reset view reads the uid back; null on malformed input. */
export function decodeUidb64(uid: string): string | null {
  if (!/^[A-Za-z0-9_-]*$/.test(uid)) return null;
  return Buffer.from(uid, "base64url").toString("utf8");
}

/** f"{realm.url}/accounts/password/reset/{uidb64}/{token}/" */
export function passwordResetUrl(realmUrl: string, userId: number, token: string): string {
  return `${realmUrl}/accounts/password/reset/${uidb64(userId)}/${token}/`;
}
