// Keeping a running Zulip server coherent after zulip-manage writes to its database.
//
// Zulip caches user profiles (with their realm), realm user lists and more in memcached for up
// to a week. Django signal handlers delete the affected keys whenever Zulip saves a model; a
// tool that writes PostgreSQL directly must do the same, or the server keeps acting on the old
// state (an old role, a deactivated user still logged in, ...). This module:
//
//  * computes the keys Zulip's own handlers would delete (zerver/lib/cache.py:
//    delete_user_profile_caches, flush_user_profile, flush_realm, delete_display_recipient_cache),
//  * finds every deployment's cache key prefix (<deployments>/<dir>/var/remote_cache_prefix for
//    each deployment, plus the list Zulip keeps in memcached under `cache_key_prefixes`) and
//    wraps keys the way Django's cache framework does (":1:" + prefix + key),
//  * connects to MEMCACHED_LOCATION with SASL PLAIN as MEMCACHED_USERNAME ("zulip@localhost")
//    and the `memcached_password` secret (no authentication when the secret is absent),
//  * deletes the keys after the database transaction committed (or flushes everything with
//    --flush-cache=all), and never fails the command over it: if memcached cannot be reached the
//    database change stands and a warning says what may be stale and how to fix it.
//
// Usage in a write command:
//
//   addFlushCacheOption(cmd)   (src/cli/options.ts)     // in configure()
//   const inval = new CacheInvalidation(ctx, opts.flushCache);
//   await db.tx(async (q) => { ...; await inval.userChanged(q, userAfter, ["role"], { before }); });
//   await inval.commit();                             // after COMMIT; prints a warning on failure
import fs from "node:fs";
import path from "node:path";
import type { Config } from "../config/config.js";
import type { Queryable } from "../db/db.js";
import { describeAddress, MAX_KEY_BYTES, type MemcachedAddress, MemcachedClient, parseMemcachedLocations } from "../services/memcached.js";
import type { Paths } from "../config/paths.js";
import { crypto, zlib } from "../lib/builtins.js";
import { READ_LIMITS, readBounded } from "../lib/files.js";
import { pyStrip } from "../lib/pyformat.js";
import { CROSS_REALM_BOT_EMAILS } from "./models.js";

// ---------------------------------------------------------------------------------------------
// Key functions (zerver/lib/cache.py)

function sha1Hex(text: string): string {
  return crypto().createHash("sha1").update(text, "utf8").digest("hex");
}

export const cacheKeys = {
  userProfileById: (id: number) => `user_profile_by_id:${id}`,
  userProfileNarrowById: (id: number) => `user_profile_narrow_by_id:${id}`,
  userProfileByApiKey: (apiKey: string) => `user_profile_by_api_key:${apiKey}`,
  userProfileByEmail: (email: string, realmId: number) => `user_profile:${sha1Hex(pyStrip(email))}:${realmId}`,
  userProfileByDeliveryEmail: (deliveryEmail: string, realmId: number) => `user_profile_by_delivery_email:${sha1Hex(pyStrip(deliveryEmail))}:${realmId}`,
  botProfile: (email: string) => `bot_profile:${sha1Hex(pyStrip(email))}`,
  /** get_stream_cache_key(stream_name, realm_id): the name stripped and lower-cased. */
  streamByRealmAndName: (name: string, realmId: number) => `stream_by_realm_and_name:${realmId}:${sha1Hex(pyStrip(name).toLowerCase())}`,
  crossRealmDicts: (crossRealmBotEmails: Iterable<string>) => `get_cross_realm_dicts:${sha1Hex([...crossRealmBotEmails].sort().join(","))}`,
  realmUserDicts: (realmId: number) => `realm_user_dicts:${realmId}`,
  activeUserIds: (realmId: number) => `active_user_ids:${realmId}`,
  activeNonGuestUserIds: (realmId: number) => `active_non_guest_user_ids:${realmId}`,
  botDictsInRealm: (realmId: number) => `bot_dicts_in_realm:${realmId}`,
  realmSystemGroups: (realmId: number) => `realm_system_groups:${realmId}`,
  realmAlertWords: (realmId: number) => `realm_alert_words:${realmId}`,
  realmAlertWordsAutomaton: (realmId: number) => `realm_alert_words_automaton:${realmId}`,
  realmRenderedDescription: (stringId: string) => `realm_rendered_description:${stringId}`,
  realmTextDescription: (stringId: string) => `realm_text_description:${stringId}`,
  realmUsedUploadSpace: (realmId: number) => `realm_used_upload_space:${realmId}`,
  displayRecipient: (recipientId: number) => `display_recipient_dict:${recipientId}`,
  singleUserDisplayRecipient: (userId: number) => `single_user_display_recipient:${userId}`,
  mutingUsers: (mutedUserId: number) => `muting_users_list:${mutedUserId}`,
  /** get_all_custom_emoji_for_realm_cache_key (zerver/models/realm_emoji.py). */
  realmEmoji: (realmId: number) => `realm_emoji:${realmId}`,
  messageDict: (messageId: number) => `message_dict:${messageId}`,
};

/** Django's cached_db session engine key (a plain Django cache key: no Zulip prefix). */
export function sessionCacheKey(sessionKey: string): string {
  return `django.contrib.sessions.cached_db${sessionKey}`;
}

/** The UserProfile fields whose change invalidates `realm_user_dicts:<realm>`. */
const REALM_USER_DICT_FIELDS = [
  "id",
  "full_name",
  "email",
  "avatar_source",
  "avatar_version",
  "is_active",
  "role",
  "is_billing_admin", // in the list for as long as the column existed (before Zulip 10.0)
  "is_bot",
  "timezone",
  "date_joined",
  "bot_owner_id",
  "delivery_email",
  "bot_type",
  "long_term_idle",
  "email_address_visibility",
];

/**
 * The UserProfile fields whose change invalidates `bot_dicts_in_realm:<realm>` (for bots).
 * Zulip compares save()'s update_fields with this list verbatim, so the `__name` entries never
 * match a field name; kept as is to delete exactly what Zulip deletes.
 */
const BOT_DICT_FIELDS = [
  "api_key",
  "avatar_source",
  "avatar_version",
  "bot_owner_id",
  "bot_type",
  "default_all_public_streams",
  "default_events_register_stream__name",
  "default_sending_stream__name",
  "email",
  "full_name",
  "id",
  "is_active",
  "realm_id",
];

/** What the key functions need to know about a user (a zerver_userprofile row satisfies it). */
export interface CacheUser {
  id: number;
  realm_id: number;
  email: string;
  delivery_email: string;
  api_key: string;
  is_bot: boolean;
}

/** delete_user_profile_caches() for one user. */
export function userProfileCacheKeys(user: CacheUser, crossRealmBotEmails: Iterable<string> = CROSS_REALM_BOT_EMAILS): string[] {
  const emails = [...crossRealmBotEmails];
  const keys = [
    cacheKeys.userProfileById(user.id),
    cacheKeys.userProfileNarrowById(user.id),
    cacheKeys.userProfileByApiKey(user.api_key),
    cacheKeys.userProfileByEmail(user.email, user.realm_id),
    cacheKeys.userProfileByDeliveryEmail(user.delivery_email, user.realm_id),
  ];
  if (user.is_bot && emails.map((e) => e.toLowerCase()).includes(user.email.toLowerCase())) {
    keys.push(cacheKeys.botProfile(user.email), cacheKeys.crossRealmDicts(emails));
  }
  return keys;
}

function changed(updateFields: readonly string[] | null, fields: readonly string[]): boolean {
  return updateFields === null || fields.some((f) => updateFields.includes(f));
}

/**
 * flush_user_profile(): every key Zulip deletes when it saves `user` with `update_fields`
 * (null = a full save / creation / deletion: everything). Reads the user's subscriptions when
 * display-recipient caches are affected, so call it inside the transaction, after the change.
 * Pass `before` (the row before the change) when email, delivery_email or api_key changed: the
 * old variants of those keys are deleted too.
 */
export async function flushUserProfileKeys(
  q: Queryable,
  user: CacheUser & Record<string, any>,
  updateFields: readonly string[] | null,
  opts: { before?: CacheUser; crossRealmBotEmails?: Iterable<string> } = {},
): Promise<string[]> {
  const keys = userProfileCacheKeys(user, opts.crossRealmBotEmails);
  if (opts.before) keys.push(...userProfileCacheKeys(opts.before, opts.crossRealmBotEmails));
  if (changed(updateFields, REALM_USER_DICT_FIELDS)) keys.push(cacheKeys.realmUserDicts(user.realm_id));
  if (changed(updateFields, ["is_active"])) {
    keys.push(cacheKeys.activeUserIds(user.realm_id), cacheKeys.activeNonGuestUserIds(user.realm_id));
  }
  if (changed(updateFields, ["role"])) keys.push(cacheKeys.activeNonGuestUserIds(user.realm_id));
  if (changed(updateFields, ["email", "full_name", "id", "is_mirror_dummy"])) {
    const { rows } = await q.query("SELECT DISTINCT recipient_id FROM zerver_subscription WHERE user_profile_id = $1 ORDER BY recipient_id", [user.id]);
    for (const r of rows) keys.push(cacheKeys.displayRecipient(Number(r.recipient_id)));
    keys.push(cacheKeys.singleUserDisplayRecipient(user.id));
  }
  if (user.is_bot && changed(updateFields, BOT_DICT_FIELDS)) keys.push(cacheKeys.botDictsInRealm(user.realm_id));
  return unique(keys);
}

/**
 * flush_realm(): the keys Zulip deletes when it saves a Realm. Reads the realm's active users,
 * so call it inside the transaction. `realm` is the row after the change; pass the old
 * string_id when it changed (the description keys are keyed by it).
 */
export async function flushRealmKeys(
  q: Queryable,
  realm: { id: number; string_id: string; deactivated: boolean },
  updateFields: readonly string[] | null,
  opts: { fromDeletion?: boolean; oldStringId?: string; crossRealmBotEmails?: Iterable<string> } = {},
): Promise<string[]> {
  const { rows } = await q.query(
    "SELECT id, realm_id, email, delivery_email, api_key, is_bot FROM zerver_userprofile WHERE realm_id = $1 AND is_active ORDER BY id",
    [realm.id],
  );
  const keys: string[] = [];
  for (const u of rows) keys.push(...userProfileCacheKeys(u as CacheUser, opts.crossRealmBotEmails));
  const stringIds = unique([realm.string_id, ...(opts.oldStringId !== undefined ? [opts.oldStringId] : [])]);
  if (opts.fromDeletion || realm.deactivated || (updateFields !== null && updateFields.includes("string_id"))) {
    keys.push(
      cacheKeys.realmUserDicts(realm.id),
      cacheKeys.activeUserIds(realm.id),
      cacheKeys.botDictsInRealm(realm.id),
      cacheKeys.realmAlertWords(realm.id),
      cacheKeys.realmAlertWordsAutomaton(realm.id),
      cacheKeys.activeNonGuestUserIds(realm.id),
    );
    for (const s of stringIds) keys.push(cacheKeys.realmRenderedDescription(s), cacheKeys.realmTextDescription(s));
  } else if (changed(updateFields, ["description"])) {
    for (const s of stringIds) keys.push(cacheKeys.realmRenderedDescription(s), cacheKeys.realmTextDescription(s));
  }
  return unique(keys);
}

function unique<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}

// ---------------------------------------------------------------------------------------------
// Final keys and deployment prefixes

/** Django's default key function with VERSION 1 and no KEY_PREFIX. */
function djangoKey(key: string): string {
  return `:1:${key}`;
}

/** The key memcached actually stores for Zulip cache key `key` under deployment prefix `prefix`. */
function finalKey(prefix: string, key: string): string {
  return djangoKey(prefix + key);
}

/**
 * zerver.lib.cache.validate_cache_key: printable ASCII only, at most MEMCACHED_MAX_KEY_LENGTH
 * (250, memcached's own limit: MAX_KEY_BYTES) characters.
 */
export function validCacheKey(key: string): boolean {
  return /^[!-~]+$/.test(key) && key.length <= MAX_KEY_BYTES;
}

export interface PrefixDiscovery {
  prefixes: string[];
  /** Where each prefix came from (files read), for messages. */
  sources: string[];
  /** Problems worth mentioning (unreadable files). */
  problems: string[];
}

function readPrefixFile(file: string): string | null {
  const text = readBounded(file, READ_LIMITS.config, "The cache prefix file");
  const first = text.split("\n")[0];
  return first.length === 33 ? first : null;
}

/**
 * The cache key prefixes of the current deployment and of every other deployment next to it
 * (Zulip's get_recent_deployments(None): each directory under the deployments dir that looks
 * like a deployment, and the targets of symlinks like `current`).
 */
export function deploymentCachePrefixes(deployDir: string, deploymentsDir?: string): PrefixDiscovery {
  const found = new Map<string, string>();
  const problems: string[] = [];
  const candidates: string[] = [];
  const addCandidate = (d: string) => {
    if (!candidates.includes(d)) candidates.push(d);
  };
  let current: string;
  try {
    current = fs.realpathSync(deployDir);
  } catch {
    current = deployDir;
  }
  addCandidate(current);
  const parent = deploymentsDir ?? path.dirname(path.resolve(deployDir));
  try {
    for (const name of fs.readdirSync(parent).sort()) {
      const dir = path.join(parent, name);
      let real: string;
      try {
        real = fs.realpathSync(dir);
        if (!fs.statSync(real).isDirectory()) continue;
      } catch {
        continue;
      }
      // Zulip skips directories without `zerver` (e.g. "lock"); one holding a cache prefix
      // file is a deployment too (harmless if not: its keys just do not exist).
      if (!fs.existsSync(path.join(real, "zerver")) && !fs.existsSync(path.join(real, "var", "remote_cache_prefix"))) continue;
      addCandidate(real);
    }
  } catch {
    /* no deployments directory (docker, development checkout): the deploy dir alone */
  }
  for (const dir of candidates) {
    const file = path.join(dir, "var", "remote_cache_prefix");
    try {
      const prefix = readPrefixFile(file);
      if (prefix === null) problems.push(`${file} does not hold a cache key prefix`);
      else if (!found.has(prefix)) found.set(prefix, file);
    } catch (e: any) {
      if (e?.code !== "ENOENT") problems.push(`cannot read ${file}: ${e?.code ?? e?.message ?? e}`);
    }
  }
  return { prefixes: [...found.keys()], sources: [...found.values()], problems };
}

// ---------------------------------------------------------------------------------------------
// Decoding the `cache_key_prefixes` value Zulip stores (a pickled list of str)

const BMEMCACHED_FLAG_PICKLE = 1 << 0;
const BMEMCACHED_FLAG_COMPRESSED = 1 << 3;

/** Decompress a value stored by python-binary-memcached (zstd in Zulip 10+, zlib before). */
function decompressBmemcachedValue(value: Buffer): Buffer | null {
  const z = zlib as any;
  if (value.length >= 4 && value.readUInt32LE(0) === 0xfd2fb528) {
    if (typeof z.zstdDecompressSync === "function") {
      try {
        return z.zstdDecompressSync(value);
      } catch {
        return null;
      }
    }
    return null; // this Node has no zstd
  }
  try {
    return zlib().inflateSync(value);
  } catch {
    return null;
  }
}

/**
 * Decode a Python pickle of a list (or tuple) of str, protocols 0-5. Anything else throws.
 * Enough to read the list of cache key prefixes Zulip keeps in memcached.
 */
export function decodePickledStringList(buf: Buffer): string[] {
  const stack: any[] = [];
  const marks: number[] = [];
  const memo = new Map<number, any>();
  let i = 0;
  const need = (n: number) => {
    if (i + n > buf.length) throw new Error("truncated pickle");
  };
  const readLine = () => {
    const end = buf.indexOf(0x0a, i);
    if (end < 0) throw new Error("truncated pickle");
    const s = buf.subarray(i, end).toString("latin1");
    i = end + 1;
    return s;
  };
  const popMark = () => {
    const m = marks.pop();
    if (m === undefined) throw new Error("pickle: no mark");
    return stack.splice(m);
  };
  const top = () => {
    if (!stack.length) throw new Error("pickle: empty stack");
    return stack[stack.length - 1];
  };
  for (;;) {
    need(1);
    const op = buf[i++];
    switch (op) {
      case 0x80: // PROTO
        need(1);
        i += 1;
        break;
      case 0x95: // FRAME
        need(8);
        i += 8;
        break;
      case 0x5d: // EMPTY_LIST ]
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE )
        stack.push([]);
        break;
      case 0x28: // MARK (
        marks.push(stack.length);
        break;
      case 0x6c: // LIST l
      case 0x74: // TUPLE t
        stack.push(popMark());
        break;
      case 0x85: // TUPLE1
        stack.push(stack.splice(-1));
        break;
      case 0x86: // TUPLE2
        stack.push(stack.splice(-2));
        break;
      case 0x87: // TUPLE3
        stack.push(stack.splice(-3));
        break;
      case 0x61: {
        // APPEND a
        const v = stack.pop();
        const list = top();
        if (!Array.isArray(list)) throw new Error("pickle: APPEND to a non-list");
        list.push(v);
        break;
      }
      case 0x65: {
        // APPENDS e
        const items = popMark();
        const list = top();
        if (!Array.isArray(list)) throw new Error("pickle: APPENDS to a non-list");
        list.push(...items);
        break;
      }
      case 0x8c: {
        // SHORT_BINUNICODE
        need(1);
        const n = buf[i++];
        need(n);
        stack.push(buf.subarray(i, i + n).toString("utf8"));
        i += n;
        break;
      }
      case 0x58: {
        // BINUNICODE X
        need(4);
        const n = buf.readUInt32LE(i);
        i += 4;
        need(n);
        stack.push(buf.subarray(i, i + n).toString("utf8"));
        i += n;
        break;
      }
      case 0x8d: {
        // BINUNICODE8
        need(8);
        const n = Number(buf.readBigUInt64LE(i));
        i += 8;
        need(n);
        stack.push(buf.subarray(i, i + n).toString("utf8"));
        i += n;
        break;
      }
      case 0x56: {
        // UNICODE V (protocol 0, raw-unicode-escape)
        const raw = readLine();
        stack.push(raw.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, a, b) => String.fromCodePoint(parseInt(a ?? b, 16))));
        break;
      }
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x71: // BINPUT q
        need(1);
        memo.set(buf[i++], top());
        break;
      case 0x72: // LONG_BINPUT r
        need(4);
        memo.set(buf.readUInt32LE(i), top());
        i += 4;
        break;
      case 0x70: // PUT p
        memo.set(Number(readLine()), top());
        break;
      case 0x68: // BINGET h
        need(1);
        stack.push(memo.get(buf[i++]));
        break;
      case 0x6a: // LONG_BINGET j
        need(4);
        stack.push(memo.get(buf.readUInt32LE(i)));
        i += 4;
        break;
      case 0x67: // GET g
        stack.push(memo.get(Number(readLine())));
        break;
      case 0x2e: {
        // STOP .
        const v = stack.pop();
        if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) throw new Error("pickle is not a list of str");
        return v;
      }
      default:
        throw new Error(`unsupported pickle opcode 0x${op.toString(16)}`);
    }
  }
}

/** Decode the value stored under Django key `cache_key_prefixes`; null when it cannot be read. */
export function decodeCacheKeyPrefixesValue(flags: number, value: Buffer): string[] | null {
  let data: Buffer | null = value;
  if (flags & BMEMCACHED_FLAG_COMPRESSED) data = decompressBmemcachedValue(value);
  if (data === null || !(flags & BMEMCACHED_FLAG_PICKLE)) return null;
  try {
    return decodePickledStringList(data).filter((p) => p.length > 0);
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Where memcached is

export interface MemcachedTarget {
  addresses: MemcachedAddress[];
  username?: string;
  password?: string;
  /** "127.0.0.1:11211 (SASL as zulip@localhost)" */
  label: string;
}

/**
 * MEMCACHED_LOCATION / MEMCACHED_USERNAME / memcached_password as Zulip computes them.
 * Authenticates only when both a user name and a password are set (like python-binary-memcached).
 * ZULIP_MANAGE_MEMCACHED_LOCATION overrides the location (tests, unusual setups).
 */
export function memcachedTarget(config: Config, env: NodeJS.ProcessEnv = process.env): MemcachedTarget {
  const settings = config.settings;
  const loc = env.ZULIP_MANAGE_MEMCACHED_LOCATION || settings.get("MEMCACHED_LOCATION") || "127.0.0.1:11211";
  const username = settings.get("MEMCACHED_USERNAME");
  const password = settings.get("MEMCACHED_PASSWORD");
  const addresses = parseMemcachedLocations(loc as string | string[]);
  const auth = Boolean(username) && Boolean(password);
  return {
    addresses,
    username: auth ? username! : undefined,
    password: auth ? password! : undefined,
    label: `${addresses.map(describeAddress).join(", ")}${auth ? ` (SASL as ${username})` : ""}`,
  };
}

// ---------------------------------------------------------------------------------------------
// The coherence layer commands use

export type FlushMode = "keys" | "all" | "none";
export const FLUSH_MODES: FlushMode[] = ["keys", "all", "none"];

export interface CacheReport {
  mode: FlushMode;
  /** Whether the cache was updated as asked (false: warning printed). */
  ok: boolean;
  /** Nothing needed doing (no change committed, or mode none). */
  skipped: boolean;
  server: string;
  prefixes: number;
  /** Final (wrapped) keys sent for deletion and how many of them were present. */
  keysSent: number;
  keysDeleted: number;
  flushedAll: boolean;
  warning: string | null;
}

/** A CacheReport as the "cache" member of the commands' --json documents (snake_case). */
export function cacheReportJson(cache: CacheReport | null) {
  return (
    cache && {
      mode: cache.mode,
      ok: cache.ok,
      skipped: cache.skipped,
      server: cache.server,
      prefixes: cache.prefixes,
      keys_sent: cache.keysSent,
      keys_deleted: cache.keysDeleted,
      flushed_all: cache.flushedAll,
      warning: cache.warning,
    }
  );
}

/** A memcached connection opened by CacheInvalidation.prepare(). */
interface EarlyConnection {
  client: MemcachedClient;
  /** Zulip's stored list of deployment prefixes, as read then. */
  stored: { flags: number; value: Buffer } | null;
}

interface Target {
  key: string;
  /** Zulip cache key (gets every deployment prefix) or a plain Django key. */
  prefixed: boolean;
}

export interface CacheInvalidationOptions {
  /** Tests and tools: connect timeouts (default 2000 / 3000 ms). */
  connectTimeoutMs?: number;
  timeoutMs?: number;
  /** Where to print the warning; default ctx.out.warn. */
  warn?: (text: string) => void;
}

/** What CacheInvalidation needs from the command's Context. */
export interface CacheContext {
  config(): Config;
  readonly paths: Paths;
  readonly env?: NodeJS.ProcessEnv;
  readonly out: { warn(text: string): void };
}

/**
 * Collects the cache entries a command's changes invalidate, and deletes them (or flushes the
 * whole cache) once the changes are committed. commit() never throws.
 */
export class CacheInvalidation {
  private targets = new Map<string, Target>();
  private stale: string[] = [];
  /** Connections opened ahead of commit() by prepare(), one per address, in address order. */
  private early: Promise<EarlyConnection>[] | null = null;
  private committedChanges = 0;
  /** A change was committed since commit() last ran. */
  private unapplied = false;
  readonly mode: FlushMode;

  constructor(
    private readonly ctx: CacheContext,
    mode: FlushMode | string | undefined = "keys",
    private readonly opts: CacheInvalidationOptions = {},
  ) {
    if (mode !== undefined && !FLUSH_MODES.includes(mode as FlushMode)) throw new Error(`unknown --flush-cache mode '${mode}'`);
    this.mode = (mode ?? "keys") as FlushMode;
  }

  /**
   * Start connecting to memcached (TCP, SASL, and reading Zulip's list of deployment prefixes)
   * while the database work goes on, so that commit() only has to send the deletes. Call it
   * when a change is about to be written; harmless to call more than once, or not at all.
   * Nothing is reported here: a failure to connect is what commit() reports.
   */
  prepare(): void {
    if (this.early || this.mode !== "keys") return;
    let target: MemcachedTarget;
    try {
      target = memcachedTarget(this.ctx.config(), this.ctx.env ?? process.env);
    } catch {
      return;
    }
    this.early = target.addresses.map((address) => {
      const p = (async (): Promise<EarlyConnection> => {
        // In the background: a command that ends without committing (refused, failed) is not
        // kept waiting by this connection.
        const client = await MemcachedClient.connect(address, { ...this.connectOptions(target), background: true });
        let stored: EarlyConnection["stored"] = null;
        try {
          stored = await client.get(djangoKey("cache_key_prefixes"));
        } catch {
          /* unreadable: commit() goes on with the prefixes on disk */
        }
        return { client, stored };
      })();
      p.catch(() => undefined);
      return p;
    });
  }

  private connectOptions(target: MemcachedTarget) {
    return {
      username: target.username,
      password: target.password,
      connectTimeoutMs: this.opts.connectTimeoutMs,
      timeoutMs: this.opts.timeoutMs,
    };
  }

  /** Close the connections prepare() opened and commit() did not use. */
  private async closeEarly(): Promise<void> {
    const early = this.early ?? [];
    this.early = null;
    await Promise.all(early.map((p) => p.then((c) => c.client.close()).catch(() => undefined)));
  }

  /** Zulip cache keys (without prefix) that a committed change invalidates; `what` is for the warning. */
  addKeys(keys: Iterable<string>, what?: string): void {
    for (const k of keys) this.targets.set(`p:${k}`, { key: k, prefixed: true });
    if (what && !this.stale.includes(what)) this.stale.push(what);
  }

  /** Plain Django cache keys (no Zulip prefix), e.g. cached sessions. */
  addDjangoKeys(keys: Iterable<string>, what?: string): void {
    for (const k of keys) this.targets.set(`d:${k}`, { key: k, prefixed: false });
    if (what && !this.stale.includes(what)) this.stale.push(what);
  }

  /** flush_user_profile() for a user saved with `updateFields` (inside the transaction). */
  async userChanged(
    q: Queryable,
    user: CacheUser & Record<string, any>,
    updateFields: readonly string[] | null,
    opts: { before?: CacheUser; what?: string } = {},
  ): Promise<void> {
    this.prepare();
    const keys = await flushUserProfileKeys(q, user, updateFields, { before: opts.before, crossRealmBotEmails: CROSS_REALM_BOT_EMAILS });
    this.addKeys(keys, opts.what ?? `user ${user.delivery_email} (id ${user.id})`);
  }

  /** flush_realm() for a realm saved with `updateFields` (inside the transaction). */
  async realmChanged(
    q: Queryable,
    realm: { id: number; string_id: string; deactivated: boolean },
    updateFields: readonly string[] | null,
    opts: { fromDeletion?: boolean; oldStringId?: string; what?: string } = {},
  ): Promise<void> {
    this.prepare();
    const keys = await flushRealmKeys(q, realm, updateFields, { ...opts, crossRealmBotEmails: CROSS_REALM_BOT_EMAILS });
    this.addKeys(keys, opts.what ?? `realm ${realm.string_id === "" ? "''" : realm.string_id} (id ${realm.id}) and its users`);
  }

  /** Call after each COMMIT of a change whose keys were added. */
  changeCommitted(): void {
    this.committedChanges++;
    this.unapplied = true;
  }

  /**
   * Run a command's writes; if they fail after some of them were committed, still apply the
   * invalidation for those (commit()) before the error goes on, so that a failure never leaves
   * the running server with stale cached data of a committed change.
   */
  async guard<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (e) {
      if (this.unapplied) await this.commit();
      throw e;
    }
  }

  /** Keys collected so far (unwrapped), for dry runs and JSON output. */
  get keys(): string[] {
    return [...this.targets.values()].map((t) => t.key);
  }

  /** Forget collected keys of a change that was rolled back. */
  discard(): void {
    this.targets.clear();
    this.stale = [];
  }

  private report(partial: Partial<CacheReport>): CacheReport {
    return {
      mode: this.mode,
      ok: true,
      skipped: false,
      server: "",
      prefixes: 0,
      keysSent: 0,
      keysDeleted: 0,
      flushedAll: false,
      warning: null,
      ...partial,
    };
  }

  private warn(text: string): void {
    (this.opts.warn ?? ((t: string) => this.ctx.out.warn(t)))(text);
  }

  private staleDescription(): string {
    if (this.stale.length === 0) return "cached data";
    const list = this.stale.length <= 3 ? this.stale.join("; ") : `${this.stale.slice(0, 3).join("; ")}; and ${this.stale.length - 3} more`;
    return `cached data of ${list}`;
  }

  private remedy(): string {
    const deploy = this.ctx.paths.deployDir;
    return (
      `To clear it: run any zulip-manage write command again with --flush-cache=all once memcached is reachable, ` +
      `or run ${path.join(deploy, "scripts", "setup", "flush-memcached")}, ` +
      `or restart the Zulip server (${path.join(deploy, "scripts", "restart-server")}).`
    );
  }

  /**
   * Apply the invalidation (after COMMIT). Prints a warning and returns ok=false when memcached
   * could not be updated; never throws.
   */
  async commit(): Promise<CacheReport> {
    this.unapplied = false;
    // --flush-cache=all flushes whenever a write command gets this far (never in a dry run), even
    // when it had nothing to change: that is how an admin clears a cache a failed follow-up left stale.
    const flushAll = this.mode === "all";
    if (this.mode === "none" || (!flushAll && (this.committedChanges === 0 || this.targets.size === 0))) {
      await this.closeEarly();
      return this.report({ skipped: true });
    }
    const early = this.early;
    this.early = null;

    let target: MemcachedTarget;
    try {
      target = memcachedTarget(this.ctx.config(), this.ctx.env ?? process.env);
    } catch (e: any) {
      const warning =
        `${this.committedChanges ? "Warning: the database change is committed, but the" : "Warning: the"} Zulip server's cache could not be ` +
        `${flushAll ? "flushed" : "updated"}: ${e?.message ?? e}.\nThe server may keep using stale ${this.staleDescription()} for up to a week. ${this.remedy()}`;
      this.warn(warning);
      return this.report({ ok: false, warning });
    }

    let prefixes: PrefixDiscovery = { prefixes: [], sources: [], problems: [] };
    if (!flushAll) prefixes = deploymentCachePrefixes(this.ctx.paths.deployDir, this.ctx.env?.ZULIP_DEPLOYMENTS_DIR ?? process.env.ZULIP_DEPLOYMENTS_DIR);

    let keysSent = 0;
    let keysDeleted = 0;
    const errors: string[] = [];
    let reached = 0;
    let prefixCount = prefixes.prefixes.length;
    // Connections prepare() opened do not keep the process alive by themselves; while commit()
    // waits for them, this does.
    const hold = setInterval(() => undefined, 60_000);
    try {
      for (const [i, address] of target.addresses.entries()) {
        let client: MemcachedClient | undefined;
        try {
          // The connection prepare() opened, or a new one. When the early one failed by timing
          // out, that failure is the one reported (connecting again would only wait out the same
          // timeout twice); when it was dropped while the database work went on (memcached
          // restarted, the handshake cut), once more on a fresh connection.
          let pre: EarlyConnection | null = null;
          if (early?.[i]) {
            try {
              pre = await early[i]!;
            } catch (e: any) {
              if (/timed out/.test(String(e?.message ?? e))) throw e;
            }
          }
          pre?.client.ref();
          client = pre?.client ?? (await MemcachedClient.connect(address, this.connectOptions(target)));
          if (flushAll) {
            await client.flushAll();
          } else {
            // Zulip's own list of deployment prefixes (newest cache.py), in addition to the files.
            const all = new Set(prefixes.prefixes);
            try {
              const stored = pre ? pre.stored : await client.get(djangoKey("cache_key_prefixes"));
              if (stored) for (const p of decodeCacheKeyPrefixesValue(stored.flags, stored.value) ?? []) all.add(p);
            } catch {
              /* unreadable: the prefixes on disk are what Zulip would compute anyway */
            }
            prefixCount = Math.max(prefixCount, all.size);
            const finalKeys: string[] = [];
            for (const t of this.targets.values()) {
              if (!t.prefixed) finalKeys.push(djangoKey(t.key));
              else for (const p of all) finalKeys.push(finalKey(p, t.key));
            }
            const good = finalKeys.filter(validCacheKey);
            if (all.size === 0 && [...this.targets.values()].some((t) => t.prefixed)) {
              errors.push(
                `no cache key prefix found (looked for var/remote_cache_prefix in ${this.ctx.paths.deployDir} and the deployments next to it` +
                  `${prefixes.problems.length ? `; ${prefixes.problems.join("; ")}` : ""})`,
              );
            }
            let r: Awaited<ReturnType<MemcachedClient["deleteMany"]>>;
            try {
              r = await client.deleteMany(good);
            } catch (e) {
              // A connection opened early may have been dropped while the database work went on
              // (deletes are idempotent): once more on a fresh one.
              if (!pre) throw e;
              await client.close();
              client = await MemcachedClient.connect(address, this.connectOptions(target));
              r = await client.deleteMany(good);
            }
            keysSent += good.length;
            keysDeleted += r.deleted.length;
          }
          reached++;
        } catch (e: any) {
          errors.push(e?.message ?? String(e));
        } finally {
          await client?.close();
        }
      }
    } finally {
      clearInterval(hold);
    }
    const server = target.label;
    if (errors.length === 0) {
      return this.report({ server, prefixes: prefixCount, keysSent, keysDeleted, flushedAll: flushAll });
    }
    const what = flushAll && this.stale.length === 0 ? "cached data" : this.staleDescription();
    const warning =
      `${this.committedChanges ? "Warning: the database change is committed, but" : "Warning:"} memcached at ${server} could not be ` +
      `${flushAll ? "flushed" : "updated"}: ${errors.join("; ")}.\nThe Zulip server may keep using stale ${what} for up to a week. ${this.remedy()}`;
    this.warn(warning);
    return this.report({ ok: false, server, prefixes: prefixCount, keysSent, keysDeleted, flushedAll: flushAll && reached > 0, warning });
  }
}
