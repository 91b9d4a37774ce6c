// Django login sessions in test databases: session_data built the way Django's signing.dumps
// builds it (django.contrib.sessions' SessionStore.encode: salt "django.contrib.sessions.SessionStore",
// JSONSerializer, compress=True), independently of src/zulip/sessions.ts (which reads them), and
// the one way the suites write django_session rows.
import crypto from "node:crypto";
import zlib from "node:zlib";

const B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** django.core.signing.b62_encode (non-negative integers). */
function b62(n: number): string {
  let s = "";
  do {
    s = B62[n % 62] + s;
    n = Math.floor(n / 62);
  } while (n > 0);
  return s;
}

/** json.dumps(obj, separators=(",", ":")): compact, non-ASCII escaped (ensure_ascii). */
function pyJsonCompact(obj: unknown): string {
  return JSON.stringify(obj).replace(/[\u0080-\uffff]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

/**
 * signing.dumps(session, key=secret, salt="django.contrib.sessions.SessionStore", compress=True):
 * "[.]<base64url payload>:<b62 timestamp>:<base64url HMAC-SHA256>", the payload zlib-compressed
 * (and marked with ".") when that makes it shorter.
 */
export function signSessionData(session: Record<string, unknown>, secret: string, when: number = Math.floor(Date.now() / 1000)): string {
  let data = Buffer.from(pyJsonCompact(session), "latin1");
  let compressed = false;
  const z = zlib.deflateSync(data);
  if (z.length < data.length - 1) {
    data = z;
    compressed = true;
  }
  const value = `${compressed ? "." : ""}${data.toString("base64url")}:${b62(when)}`;
  // Signer(algorithm="sha256"): HMAC key = sha256(salt + "signer" + secret).
  const key = crypto.createHash("sha256").update(`django.contrib.sessions.SessionStoresigner${secret}`).digest();
  return `${value}:${crypto.createHmac("sha256", key).update(value).digest("base64url")}`;
}

/** The session django.contrib.auth.login() leaves for a user (the hash is not checked by what we test). */
function loginSession(userId: number | string, backend = "zproject.backends.EmailAuthBackend"): Record<string, string> {
  return { _auth_user_id: String(userId), _auth_user_backend: backend, _auth_user_hash: "ab" };
}

export interface AddSessionOptions {
  /** session_key (default: 32 random hex characters, as Django's are 32 characters long). */
  key?: string;
  /** The whole session dict instead of loginSession(userId) (userId is then ignored). */
  data?: Record<string, unknown>;
  /** expire_date: a Date, or days from now (negative: already expired). Default 14 days (SESSION_COOKIE_AGE). */
  expires?: Date | number;
  /** Already expired (14 days ago); wins over `expires`. */
  expired?: boolean;
  /** The signing time (seconds since the epoch; default now). */
  signedAt?: number;
  /** session_data exactly as given (e.g. one signed elsewhere, or not a session at all). */
  sessionData?: string;
}

/**
 * Insert a django_session row for `userId` (null: an anonymous session, { django_language: "en" })
 * signed with `secret` (the server's secret_key, e.g. conf.secrets.secret_key); returns its key.
 */
export async function addSession(
  db: { query(sql: string, params?: unknown[]): Promise<unknown> },
  userId: number | null,
  secret: string,
  opts: AddSessionOptions = {},
): Promise<string> {
  const key = opts.key ?? crypto.randomBytes(16).toString("hex");
  const data = opts.data ?? (userId === null ? { django_language: "en" } : loginSession(userId));
  const expires = opts.expired
    ? new Date(Date.now() - 14 * 86400_000)
    : opts.expires instanceof Date
      ? opts.expires
      : new Date(Date.now() + (opts.expires ?? 14) * 86400_000);
  await db.query("INSERT INTO django_session (session_key, session_data, expire_date) VALUES ($1, $2, $3)", [
    key,
    opts.sessionData ?? signSessionData(data, secret, opts.signedAt),
    expires,
  ]);
  return key;
}
