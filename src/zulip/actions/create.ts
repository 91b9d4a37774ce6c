// Realm, user, channel and message creation, writing the rows Zulip itself writes:
// do_create_realm / create_internal_realm, do_create_user / bulk_create_users,
// create_stream_if_needed + bulk_add_subscriptions, and a minimal do_send_messages.
//
// RELEASES: the rows are those of the Zulip release the database belongs to (10.x, 11.x, 12.x).
// What differs in shape is decided from the catalog (tableColumns / requiredColumns): columns a
// release lacks are left out, columns only older releases have get that release's Python default
// (zerver_realm.giphy_rating = "g" (2) before 0773 renamed it and 0763 renumbered the ratings;
// mandatory_topics = false before 0713; zerver_stream.is_in_zephyr_realm = false before 0752), and
// where zerver_userprofile.recipient_id exists (before 0798) every new user gets the personal
// Recipient (type 1) and the Subscription to it that lib/create_user.py and bulk_create_users
// wrote then, and 1:1 / self DMs go to those recipients. Two behaviours leave no trace in the
// schema and follow the release (django_migrations, see databaseSeries): before 12.0
// do_create_realm pointed new_stream_announcements_stream and zulip_update_announcements_stream
// at #general, and get_latest_zulip_update_announcements_level() is the release's own (15 in 10.x,
// 21 in 11.x, 27 in 12.2). Every INSERT first checks that each NOT NULL column without a database
// default gets a value; a column this code does not know makes it refuse (CreationSchemaError)
// instead of writing a row Zulip would not have written.
//
// TRANSACTIONS: none of these functions BEGIN or COMMIT. The caller runs them inside one
// transaction it controls (e.g. `db.tx(q => createRealm(q, …))`). That is required, not
// optional: a realm and its system groups reference each other, so the realm row is written
// with placeholder group ids that are only fixed up later in the same transaction (all of
// Zulip's foreign keys are DEFERRABLE INITIALLY DEFERRED, so this is checked at COMMIT).
//
// Everything Zulip computes in Python is computed here: group-setting defaults per org type,
// RealmUserDefault values, ROLE_COUNT snapshots in audit rows, fake display emails, subscription
// colours, subscriber counts, huddle hashes, UserMessage flags. process_new_human_user's rows
// (welcome ScheduledEmails, OnboardingStep, invitation clean-up) are processNewHumanUserRows;
// the "user joined" announcement is channels.ts. What is deliberately NOT reproduced (it is
// onboarding content, not state other code depends on): Welcome Bot's onboarding messages and
// DM, and UserPresence rows (Zulip creates those on the first presence update, not at signup).
import { ROLE_COUNT, type RoleCountBaseline, roleCounts, roleCountsAfterChange, workplaceGroupOf } from "../audit.js";
import type { Queryable } from "../../db/db.js";
import { CommandError } from "../../lib/errors.js";
import { releaseForMigration, releaseForMigrations } from "../../db/zulip-versions.js";
import { crypto } from "../../lib/builtins.js";
import { quoteIdent } from "../../db/sql.js";
import { getRandomString, RANDOM_STRING_CHARS } from "../../lib/random.js";
import { realmHostFor } from "../../config/settings.js";
import { escapeMessageHtml } from "../templates/html.js";
import { deactivateUserInTx } from "./deactivate-user.js";

export type { Queryable };

// ---------------------------------------------------------------------------------------------
// Constants (Zulip 12 unless a release is named)

export const Role = {
  OWNER: 100,
  ADMINISTRATOR: 200,
  MODERATOR: 300,
  MEMBER: 400,
  GUEST: 600,
} as const;
export const ROLES = [Role.OWNER, Role.ADMINISTRATOR, Role.MODERATOR, Role.MEMBER, Role.GUEST] as const;

export const BotType = { DEFAULT: 1, INCOMING_WEBHOOK: 2, OUTGOING_WEBHOOK: 3, EMBEDDED: 4 } as const;

export const RecipientType = { PERSONAL: 1, STREAM: 2, DIRECT_MESSAGE_GROUP: 3 } as const;

export const AuditEvent = {
  USER_CREATED: 101,
  USER_DEACTIVATED: 103,
  USER_SPECIAL_PERMISSION_CHANGED: 108,
  REALM_CREATED: 215,
  SUBSCRIPTION_CREATED: 301,
  SUBSCRIPTION_ACTIVATED: 302,
  CHANNEL_CREATED: 601,
  USER_GROUP_CREATED: 701,
  USER_GROUP_DIRECT_USER_MEMBERSHIP_ADDED: 703,
  USER_GROUP_DIRECT_SUBGROUP_MEMBERSHIP_ADDED: 705,
  USER_GROUP_DIRECT_SUPERGROUP_MEMBERSHIP_ADDED: 707,
} as const;

export const UserMessageFlag = {
  READ: 1,
  STARRED: 2,
  MENTIONED: 8,
  HAS_ALERT_WORD: 512,
  HISTORICAL: 1024,
  IS_PRIVATE: 2048,
} as const;

export const OrgType = {
  UNSPECIFIED: 0,
  BUSINESS: 10,
  OPENSOURCE: 20,
  EDUCATION_NONPROFIT: 30,
  EDUCATION: 35,
  RESEARCH: 40,
  EVENT: 50,
  NONPROFIT: 60,
  GOVERNMENT: 70,
  POLITICAL_GROUP: 80,
  COMMUNITY: 90,
  PERSONAL: 100,
  OTHER: 1000,
} as const;

export const EmailAddressVisibility = { EVERYONE: 1, MEMBERS: 2, ADMINS: 3, NOBODY: 4, MODERATORS: 5 } as const;

export const SYSTEM_BOT_REALM = "zulipinternal";
export const SYSTEM_BOT_REALM_NAME = "System bot realm";
/** get_latest_zulip_update_announcements_level() of Zulip 12.2 (new realms start there). */
export const ZULIP_UPDATE_ANNOUNCEMENTS_LEVEL = 27;

/**
 * get_latest_zulip_update_announcements_level() per release series: the level of the release's
 * own "Zulip Server X.0" announcement (zerver/lib/zulip_update_announcements.py: level 15
 * announces 10.0, level 21 announces 11.0; 12.2 ships 27). New realms start at their server's level.
 */
export const ZULIP_UPDATE_ANNOUNCEMENTS_LEVELS: Readonly<Record<string, number>> = {
  "10.x": 15,
  "11.x": 21,
  "12.x": ZULIP_UPDATE_ANNOUNCEMENTS_LEVEL,
};

/** Realm.GIPHY_RATING_OPTIONS["g"]["id"] before 0763/0773 (the default of zerver_realm.giphy_rating). */
export const LEGACY_GIPHY_RATING_G = 2;

/** System groups in creation order (name, description). */
export const SYSTEM_GROUPS = [
  ["role:nobody", "Nobody"],
  ["role:owners", "Owners of this organization"],
  ["role:administrators", "Administrators of this organization, including owners"],
  ["role:moderators", "Moderators of this organization, including administrators"],
  ["role:fullmembers", "Members of this organization, not including new accounts and guests"],
  ["role:members", "Members of this organization, not including guests"],
  ["role:everyone", "Everyone in this organization, including guests"],
  ["role:internet", "Everyone on the Internet"],
] as const;
export type SystemGroupName = (typeof SYSTEM_GROUPS)[number][0];

/** NamedUserGroup's six group-setting columns; system groups point all of them at role:nobody. */
export const NAMED_GROUP_SETTING_COLUMNS = [
  "can_add_members_group_id",
  "can_join_group_id",
  "can_leave_group_id",
  "can_manage_group_id",
  "can_mention_group_id",
  "can_remove_members_group_id",
] as const;

/** Realm.REALM_PERMISSION_GROUP_SETTINGS defaults (column → system group). */
export const REALM_GROUP_SETTING_DEFAULTS: Record<string, SystemGroupName> = {
  can_access_all_users_group_id: "role:everyone",
  can_add_custom_emoji_group_id: "role:members",
  can_add_subscribers_group_id: "role:members",
  can_create_bots_group_id: "role:members",
  can_create_groups_id: "role:members",
  can_create_private_channel_group_id: "role:members",
  can_create_public_channel_group_id: "role:members",
  can_create_web_public_channel_group_id: "role:owners",
  can_create_write_only_bots_group_id: "role:members",
  can_delete_any_message_group_id: "role:administrators",
  can_delete_own_message_group_id: "role:everyone",
  can_invite_users_group_id: "role:members",
  can_manage_all_groups_id: "role:owners",
  can_manage_billing_group_id: "role:administrators",
  can_mention_many_users_group_id: "role:administrators",
  can_move_messages_between_channels_group_id: "role:members",
  can_move_messages_between_topics_group_id: "role:everyone",
  can_resolve_topics_group_id: "role:everyone",
  can_set_delete_message_policy_group_id: "role:moderators",
  can_set_topics_policy_group_id: "role:members",
  can_summarize_topics_group_id: "role:everyone",
  create_multiuse_invite_group_id: "role:administrators",
  direct_message_initiator_group_id: "role:everyone",
  direct_message_permission_group_id: "role:everyone",
  workplace_users_group_id: "role:everyone",
};

/** do_create_realm's group_settings_defaults_for_org_types (education orgs are stricter). */
const EDUCATION_GROUP_SETTING_OVERRIDES: Record<string, SystemGroupName> = {
  can_add_subscribers_group_id: "role:moderators",
  can_create_public_channel_group_id: "role:administrators",
  can_create_groups_id: "role:moderators",
  can_invite_users_group_id: "role:administrators",
  can_move_messages_between_channels_group_id: "role:moderators",
};

/** Stream.stream_permission_group_settings defaults; null = "channel creator" (anonymous group). */
export const STREAM_GROUP_SETTING_DEFAULTS: Record<string, SystemGroupName | null> = {
  can_add_subscribers_group_id: "role:nobody",
  can_administer_channel_group_id: null,
  can_create_topic_group_id: "role:everyone",
  can_delete_any_message_group_id: "role:nobody",
  can_delete_own_message_group_id: "role:nobody",
  can_move_messages_out_of_channel_group_id: "role:nobody",
  can_move_messages_within_channel_group_id: "role:nobody",
  can_remove_subscribers_group_id: "role:administrators",
  can_resolve_topics_group_id: "role:nobody",
  can_send_message_group_id: "role:everyone",
  can_subscribe_group_id: "role:nobody",
};

/** all_default_backend_names(): one RealmAuthenticationMethod row per backend, as a fresh server writes. */
export const DEFAULT_AUTH_BACKEND_NAMES = [
  "Dev",
  "Email",
  "LDAP",
  "RemoteUser",
  "GitHub",
  "AzureAD",
  "Discord",
  "GitLab",
  "Google",
  "Apple",
  "SAML",
  "OpenID Connect",
];

/** UserBaseSettings model defaults = a fresh RealmUserDefault row (email_address_visibility varies). */
export const USER_SETTING_DEFAULTS: Record<string, unknown> = {
  enter_sends: false,
  left_side_userlist: false,
  default_language: "en",
  web_home_view: "inbox",
  web_escape_navigates_to_home_view: true,
  fluid_layout_width: false,
  high_contrast_mode: false,
  translate_emoticons: false,
  display_emoji_reaction_users: true,
  twenty_four_hour_time: false,
  starred_message_counts: true,
  color_scheme: 1,
  web_font_size_px: 16,
  web_line_height_percent: 140,
  web_animate_image_previews: "on_hover",
  demote_inactive_streams: 1,
  web_mark_read_on_scroll_policy: 1,
  web_channel_default_view: 1,
  emojiset: "google",
  user_list_style: 3,
  web_stream_unreads_count_display_policy: 2,
  web_navigate_to_sent_message: true,
  email_notifications_batching_period_seconds: 120,
  enable_stream_desktop_notifications: false,
  enable_stream_email_notifications: false,
  enable_stream_push_notifications: false,
  enable_stream_audible_notifications: false,
  notification_sound: "zulip",
  wildcard_mentions_notify: true,
  enable_followed_topic_desktop_notifications: true,
  enable_followed_topic_email_notifications: true,
  enable_followed_topic_push_notifications: true,
  enable_followed_topic_audible_notifications: true,
  enable_followed_topic_wildcard_mentions_notify: true,
  enable_desktop_notifications: true,
  pm_content_in_desktop_notifications: true,
  enable_sounds: true,
  enable_offline_email_notifications: true,
  message_content_in_email_notifications: true,
  enable_offline_push_notifications: true,
  enable_online_push_notifications: true,
  desktop_icon_count_display: 1,
  enable_digest_emails: true,
  enable_login_emails: true,
  enable_marketing_emails: true,
  presence_enabled: true,
  realm_name_in_email_notifications_policy: 1,
  automatically_follow_topics_policy: 3,
  automatically_unmute_topics_in_muted_streams_policy: 2,
  automatically_follow_topics_where_mentioned: true,
  enable_drafts_synchronization: true,
  send_stream_typing_notifications: true,
  send_private_typing_notifications: true,
  send_read_receipts: true,
  receives_typing_notifications: true,
  email_address_visibility: 1,
  allow_private_data_export: false,
  web_suggest_update_timezone: true,
  hide_ai_features: false,
  resolved_topic_notice_auto_read_policy: 2,
  web_left_sidebar_unreads_count_summary: true,
  web_left_sidebar_show_channel_folders: true,
  web_inbox_show_channel_folders: true,
};

/**
 * RealmUserDefault differs from the UserProfile model defaults in one column: a fresh Zulip 12.2
 * server writes allow_private_data_export = true on every RealmUserDefault row (both realms of
 * the reference install), while every user (bots and the signed-up owner alike) has false.
 */
export const REALM_USER_DEFAULT_OVERRIDES: Record<string, unknown> = { allow_private_data_export: true };

/**
 * Settings new users do not take from RealmUserDefault: copy_default_settings() skips
 * default_language and enable_login_emails; allow_private_data_export (export consent) is not
 * inherited either (observed on the reference install: realm default true, new owner false).
 */
export const NOT_COPIED_FROM_REALM_DEFAULTS = new Set([
  "id",
  "realm_id",
  "default_language",
  "enable_login_emails",
  "allow_private_data_export",
]);

/** zerver/lib/stream_color.py STREAM_ASSIGNMENT_COLORS. */
export const STREAM_ASSIGNMENT_COLORS = [
  "#76ce90", "#fae589", "#a6c7e5", "#e79ab5", "#bfd56f", "#f4ae55", "#b0a5fd", "#addfe5",
  "#f5ce6e", "#c2726a", "#94c849", "#bd86e5", "#ee7e4a", "#a6dcbf", "#95a5fd", "#53a063",
  "#9987e1", "#e4523d", "#c2c2c2", "#4f8de4", "#c6a8ad", "#e7cc4d", "#c8bebf", "#a47462",
];
export const DEFAULT_SUBSCRIPTION_COLOR = "#c2c2c2";

/** settings.INTERNAL_BOTS (INTERNAL_BOT_DOMAIN = zulip.com); created sorted by email. */
export const SYSTEM_BOTS = [
  { email: "emailgateway@zulip.com", fullName: "Email Gateway", canForgeSender: true },
  { email: "nagios-receive-bot@zulip.com", fullName: "Nagios Receive Bot", canForgeSender: false },
  { email: "nagios-send-bot@zulip.com", fullName: "Nagios Send Bot", canForgeSender: false },
  { email: "nagios-staging-receive-bot@zulip.com", fullName: "Nagios Staging Receive Bot", canForgeSender: false },
  { email: "nagios-staging-send-bot@zulip.com", fullName: "Nagios Staging Send Bot", canForgeSender: false },
  { email: "notification-bot@zulip.com", fullName: "Notification Bot", canForgeSender: false },
  { email: "welcome-bot@zulip.com", fullName: "Welcome Bot", canForgeSender: false },
] as const;

/** Clients create_internal_realm() makes so they get low ids. */
const INTERNAL_REALM_CLIENTS = ["Internal", "website", "ZulipMobile", "ZulipElectron"];

/** Message.sent_by_human(): the sender's own UserMessage row is marked read only for these clients. */
const HUMAN_CLIENTS = new Set([
  "zulipandroid", "zulipios", "zulipdesktop", "zulipmobile", "zulipelectron", "zulipterminal",
  "snipe", "website", "ios", "android",
]);

// The three channels do_create_realm creates, with their rendered descriptions.
const DEFAULT_REALM_CHANNELS = [
  {
    name: "Zulip",
    description: "Questions and discussion about using Zulip.",
    rendered: "<p>Questions and discussion about using Zulip.</p>",
  },
  {
    name: "sandbox",
    description: "Experiment with Zulip here. :test_tube:",
    rendered:
      '<p>Experiment with Zulip here. <span aria-label="test tube" class="emoji emoji-1f9ea" role="img" title="test tube">:test_tube:</span></p>',
  },
  {
    name: "general",
    description: "For team-wide conversations",
    rendered: "<p>For team-wide conversations</p>",
  },
];

// ---------------------------------------------------------------------------------------------
// Randomness (injectable so seeds are reproducible)

export interface RandomSource {
  /** n random characters from [A-Za-z0-9] (Django's get_random_string alphabet). */
  alnum(n: number): string;
  /** A random version-4 UUID string. */
  uuid(): string;
}

export const cryptoRandom: RandomSource = {
  alnum: getRandomString,
  uuid: () => crypto().randomUUID(),
};

/** A deterministic RandomSource (mulberry32) with a few extra helpers for seeding. */
export class SeededRandom implements RandomSource {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }
  /** Uniform float in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  shuffle<T>(items: readonly T[]): T[] {
    const a = [...items];
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [a[i], a[j]] = [a[j], a[i]];
    }
    return a;
  }
  alnum(n: number): string {
    let s = "";
    for (let i = 0; i < n; i++) s += RANDOM_STRING_CHARS[this.int(RANDOM_STRING_CHARS.length)];
    return s;
  }
  uuid(): string {
    const hex = Array.from({ length: 32 }, () => this.int(16).toString(16));
    hex[12] = "4";
    hex[16] = (8 + this.int(4)).toString(16);
    const h = hex.join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
}

/** Django's unusable password: "!" + 40 random characters. */
export function unusablePassword(random: RandomSource = cryptoRandom): string {
  return "!" + random.alnum(40);
}

/**
 * A Django PBKDF2-SHA256 password hash ("pbkdf2_sha256$<iterations>$<salt>$<b64>"). Zulip lists
 * PBKDF2PasswordHasher after Argon2 in PASSWORD_HASHERS, so it verifies (and upgrades) these.
 */
export function djangoPbkdf2Hash(
  password: string,
  opts: { salt?: string; iterations?: number; random?: RandomSource } = {},
): string {
  const iterations = opts.iterations ?? 1_000_000; // Django 5.2 default
  const salt = opts.salt ?? (opts.random ?? cryptoRandom).alnum(22);
  const hash = crypto().pbkdf2Sync(password, salt, iterations, 32, "sha256").toString("base64");
  return `pbkdf2_sha256$${iterations}$${salt}$${hash}`;
}

// ---------------------------------------------------------------------------------------------
// Small helpers

type Row = Record<string, unknown>;

interface TableShape {
  columns: Set<string>;
  /** NOT NULL columns without a database default (Django's Python defaults must fill these). */
  required: Set<string>;
}

const shapeCache = new WeakMap<object, Map<string, TableShape>>();

async function tableShape(db: Queryable, table: string): Promise<TableShape> {
  let perDb = shapeCache.get(db);
  if (!perDb) shapeCache.set(db, (perDb = new Map()));
  let shape = perDb.get(table);
  if (!shape) {
    const { rows } = await db.query(
      `SELECT a.attname, a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AS required
         FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`,
      [table],
    );
    if (rows.length === 0) throw new Error(`table ${table} not found in the search path`);
    shape = {
      columns: new Set(rows.map((r) => r.attname as string)),
      required: new Set(rows.filter((r) => r.required).map((r) => r.attname as string)),
    };
    perDb.set(table, shape);
  }
  return shape;
}

/** Read the shapes of several tables in one query (into the cache tableShape uses). */
async function prefetchTableShapes(db: Queryable, tables: string[]): Promise<void> {
  let perDb = shapeCache.get(db);
  if (!perDb) shapeCache.set(db, (perDb = new Map()));
  const missing = tables.filter((t) => !perDb!.has(t));
  if (missing.length === 0) return;
  const { rows } = await db.query(
    `SELECT t.name, a.attname, a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AS required
       FROM unnest($1::text[]) AS t(name)
       JOIN pg_catalog.pg_attribute a ON a.attrelid = to_regclass(t.name) AND a.attnum > 0 AND NOT a.attisdropped`,
    [missing],
  );
  for (const table of missing) {
    const mine = rows.filter((r) => r.name === table);
    if (mine.length === 0) continue; // tableShape says so when asked
    perDb.set(table, {
      columns: new Set(mine.map((r) => r.attname as string)),
      required: new Set(mine.filter((r) => r.required).map((r) => r.attname as string)),
    });
  }
}

/** Column names of a table in the search path (cached per connection object). */
export async function tableColumns(db: Queryable, table: string): Promise<Set<string>> {
  return (await tableShape(db, table)).columns;
}

/** NOT NULL columns of a table that have no database default (cached per connection object). */
export async function requiredColumns(db: Queryable, table: string): Promise<Set<string>> {
  return (await tableShape(db, table)).required;
}

/** A table has a NOT NULL column this code has no value for (a schema it does not know). */
export class CreationSchemaError extends Error {}

function missingRequired(table: string, required: Set<string>, supplied: Iterable<string>): string[] {
  const have = new Set(supplied);
  return [...required].filter((c) => !have.has(c)).sort().map((c) => `${table}.${c}`);
}

function requireColumns(table: string, required: Set<string>, supplied: Iterable<string>): void {
  const missing = missingRequired(table, required, supplied);
  if (missing.length) {
    throw new CreationSchemaError(
      `This database has required column(s) zulip-manage does not know how to fill as this Zulip release would: ${missing.join(", ")}`,
    );
  }
}

/**
 * INSERT one row built from `values`, keeping only columns the table has (a release without
 * some column simply does not get it); every NOT NULL column without a database default must be
 * among them, else CreationSchemaError (before anything is sent).
 */
async function insertRow(db: Queryable, table: string, values: Row, returning = "id"): Promise<Row> {
  const shape = await tableShape(db, table);
  const names = Object.keys(values).filter((k) => shape.columns.has(k));
  requireColumns(table, shape.required, names);
  const params = names.map((n) => values[n]);
  const sql =
    `INSERT INTO ${table} (${names.map(quoteIdent).join(", ")}) VALUES (${names.map((_, i) => `$${i + 1}`).join(", ")})` +
    (returning ? ` RETURNING ${returning}` : "");
  const { rows } = await db.query(sql, params);
  return rows[0] ?? {};
}

/** Multi-row INSERT of rows with identical keys; returns ids in input order. Chunked. */
export async function insertRows(db: Queryable, table: string, rows: Row[], returning: string | null = "id"): Promise<Row[]> {
  if (rows.length === 0) return [];
  const shape = await tableShape(db, table);
  const names = Object.keys(rows[0]).filter((k) => shape.columns.has(k));
  requireColumns(table, shape.required, names);
  const out: Row[] = [];
  const chunk = Math.max(1, Math.floor(30000 / Math.max(1, names.length)));
  for (let start = 0; start < rows.length; start += chunk) {
    const part = rows.slice(start, start + chunk);
    const params: unknown[] = [];
    const tuples = part.map((r) => {
      const ph = names.map((n) => {
        params.push(r[n]);
        return `$${params.length}`;
      });
      return `(${ph.join(", ")})`;
    });
    const res = await db.query(
      `INSERT INTO ${table} (${names.map(quoteIdent).join(", ")}) VALUES ${tuples.join(", ")}` +
        (returning ? ` RETURNING ${returning}` : ""),
      params,
    );
    // INSERT … VALUES … RETURNING returns rows in VALUES order in PostgreSQL.
    out.push(...res.rows);
  }
  return out;
}

const seriesCache = new WeakMap<object, string>();

/**
 * The Zulip release series the database belongs to ("10.x", "11.x", "12.x", or one of
 * zulip-versions' "older than 10.0" / "newer than 12"), from its zerver migrations (a Db knows
 * its newest mainline migration already). Only for behaviour the schema does not show; a
 * database without django_migrations counts as the newest release this code knows.
 */
export async function databaseSeries(db: Queryable): Promise<string> {
  const cached = seriesCache.get(db);
  if (cached) return cached;
  let series: string;
  const known = (db as { zerverMigration?: unknown }).zerverMigration;
  if (typeof known === "number" && Number.isFinite(known)) {
    series = releaseForMigration(known);
  } else {
    const { rows: t } = await db.query(`SELECT to_regclass('django_migrations') IS NOT NULL AS ok`);
    if (t[0]?.ok) {
      const { rows } = await db.query(`SELECT name FROM django_migrations WHERE app = 'zerver'`);
      series = rows.length ? releaseForMigrations(rows.map((r) => r.name as string)) : "12.x";
    } else {
      series = "12.x";
    }
  }
  seriesCache.set(db, series);
  return series;
}

/** Whether users have personal recipients (zerver_userprofile.recipient_id, before 0798). */
async function hasPersonalRecipients(db: Queryable): Promise<boolean> {
  return (await tableColumns(db, "zerver_userprofile")).has("recipient_id");
}

async function nextId(db: Queryable, table: string): Promise<number> {
  const { rows } = await db.query(`SELECT nextval(pg_get_serial_sequence($1, 'id')) AS id`, [table]);
  return Number(rows[0].id);
}

/** A RealmAuditLog row as the writers below take it. */
interface AuditRowInput {
  realmId: number;
  eventType: number;
  eventTime: Date;
  extraData?: unknown;
  actingUserId?: number | null;
  modifiedUserId?: number | null;
  modifiedStreamId?: number | null;
  modifiedUserGroupId?: number | null;
  eventLastMessageId?: number | null;
}

async function audit(db: Queryable, row: AuditRowInput): Promise<number> {
  const r = await insertRow(db, "zerver_realmauditlog", auditValues(row));
  return Number(r.id);
}

function auditValues(row: AuditRowInput): Row {
  return {
    event_time: row.eventTime,
    backfilled: false,
    extra_data: JSON.stringify(row.extraData ?? {}),
    event_type: row.eventType,
    event_last_message_id: row.eventLastMessageId ?? null,
    acting_user_id: row.actingUserId ?? null,
    modified_user_id: row.modifiedUserId ?? null,
    realm_id: row.realmId,
    modified_stream_id: row.modifiedStreamId ?? null,
    modified_user_group_id: row.modifiedUserGroupId ?? null,
    scrubbed: false,
  };
}

/** A minimal stand-in for Zulip's Markdown: paragraphs of escaped text. */
export function renderPlainMarkdown(text: string): string {
  if (text.trim() === "") return "";
  return text
    .split(/\n{2,}/)
    .map((p) => `<p>${escapeMessageHtml(p).replace(/\n/g, "<br>\n")}</p>`)
    .join("\n");
}


/** Whether `bot@<domain>` passes Django's validate_email (domain part only). */
function isValidEmailDomain(domain: string): boolean {
  if (domain.toLowerCase() === "localhost") return true;
  return /^(?:[a-z0-9\u00a1-\uffff](?:[a-z0-9\u00a1-\uffff-]{0,61}[a-z0-9\u00a1-\uffff])?\.)+(?:[a-z\u00a1-\uffff-]{2,63}|xn--[a-z0-9]{1,59})\.?$/i.test(
    domain,
  );
}

/**
 * get_fake_email_domain() (zerver/models/realms.py, same in 10.x–12.x): the realm host if
 * `bot@<host>` is a valid address, else settings.FAKE_EMAIL_DOMAIN (default: EXTERNAL_HOST
 * without its port) if that one is, else InvalidFakeEmailDomainError with Zulip's message —
 * e.g. a server addressed by an IP address and no FAKE_EMAIL_DOMAIN set.
 */
export function fakeEmailDomain(host: string, fallback?: string): string {
  if (isValidEmailDomain(host)) return host;
  const fake = fallback ?? host.split(":")[0];
  if (!isValidEmailDomain(fake)) throw new InvalidFakeEmailDomainError(fake);
  return fake;
}

/** Zulip's InvalidFakeEmailDomainError, raised by get_fake_email_domain. */
export class InvalidFakeEmailDomainError extends CommandError {
  constructor(domain: string) {
    super(`${domain} is not a valid domain. Consider setting the FAKE_EMAIL_DOMAIN setting.`);
  }
}

// ---------------------------------------------------------------------------------------------
// Clients

/** get_client(name): get-or-create a zerver_client row. */
export async function getOrCreateClient(db: Queryable, name: string): Promise<number> {
  const found = await db.query(`SELECT id FROM zerver_client WHERE name = $1`, [name]);
  if (found.rows.length) return Number(found.rows[0].id);
  const r = await db.query(`INSERT INTO zerver_client (name) VALUES ($1) RETURNING id`, [name]);
  return Number(r.rows[0].id);
}

// ---------------------------------------------------------------------------------------------
// Realms

export interface CreateRealmOptions {
  stringId: string;
  /** Default: "System bot realm" for zulipinternal; required otherwise. */
  name?: string;
  description?: string;
  orgType?: number;
  planType?: number;
  dateCreated?: Date;
  /** RealmUserDefault.email_address_visibility; default per org type as do_create_realm picks it. */
  emailAddressVisibility?: number;
  waitingPeriodThreshold?: number;
  inviteRequired?: boolean;
  emailsRestrictedToDomains?: boolean;
  defaultLanguage?: string;
  enableReadReceipts?: boolean;
  enableSpectatorAccess?: boolean;
  isDemoOrganization?: boolean;
  /** DEMO_ORG_DEADLINE_DAYS (30) by default. */
  demoOrganizationDeadlineDays?: number;
  pushNotificationsEnabled?: boolean;
  howRealmCreatorFoundZulip?: string | null;
  howRealmCreatorFoundZulipExtraContext?: string | null;
  /** Backends to write RealmAuthenticationMethod rows for; default: all of Zulip's (what a fresh server writes). */
  authenticationMethods?: string[];
  /** Create Zulip's three default channels ("Zulip", "sandbox", "general"); default true except for zulipinternal. */
  defaultChannels?: boolean;
  /** Treat as the system bot realm (create_internal_realm semantics); default: stringId === "zulipinternal". */
  internal?: boolean;
  /** Raw zerver_realm column overrides applied to the inserted row (e.g. { message_retention_days: 30 }). */
  columns?: Record<string, unknown>;
  random?: RandomSource;
}

export type SystemGroupIds = Record<SystemGroupName, number>;

export interface CreatedChannel {
  id: number;
  name: string;
  recipientId: number;
  realmId: number;
}

export interface CreatedRealm {
  id: number;
  stringId: string;
  name: string;
  dateCreated: Date;
  internal: boolean;
  /** System group ids by name (role:nobody … role:internet). */
  groups: SystemGroupIds;
  /** The default channels (empty when not created). */
  channels: CreatedChannel[];
}

/** A zerver_realm column holding a group setting (a FK to zerver_usergroup). */
function isRealmGroupSettingColumn(col: string): boolean {
  return col.endsWith("_group_id") || col === "can_create_groups_id" || col === "can_manage_all_groups_id";
}

function defaultEmailVisibility(orgType: number): number {
  if (orgType === OrgType.BUSINESS) return EmailAddressVisibility.EVERYONE;
  if (orgType === OrgType.EDUCATION || orgType === OrgType.EDUCATION_NONPROFIT) return EmailAddressVisibility.MODERATORS;
  return EmailAddressVisibility.ADMINS;
}

/**
 * The zerver_realm values do_create_realm / create_internal_realm start from: the Realm model's
 * Python defaults of every release (columns the database lacks are dropped at INSERT) and the
 * arguments. Group settings are added by createRealm.
 */
function realmRowValues(
  opts: CreateRealmOptions,
  c: { name: string; internal: boolean; dateCreated: Date; random: RandomSource },
): Row {
  const { name, internal, dateCreated, random } = c;
  const orgType = opts.orgType ?? OrgType.UNSPECIFIED;
  const description = opts.description ?? "";
  const enableReadReceipts = internal
    ? (opts.enableReadReceipts ?? false)
    : (opts.enableReadReceipts ??
      (opts.inviteRequired === undefined || opts.inviteRequired === true || opts.emailsRestrictedToDomains === true));
  return {
    name,
    description,
    string_id: opts.stringId,
    uuid: random.uuid(),
    uuid_owner_secret: "zuliprealm_" + random.alnum(32),
    push_notifications_enabled: opts.pushNotificationsEnabled ?? false,
    push_notifications_enabled_end_timestamp: null,
    date_created: dateCreated,
    demo_organization_scheduled_deletion_date: opts.isDemoOrganization
      ? new Date(dateCreated.getTime() + (opts.demoOrganizationDeadlineDays ?? 30) * 86400_000)
      : null,
    deactivated: false,
    deactivated_redirect: null,
    emails_restricted_to_domains: opts.emailsRestrictedToDomains ?? false,
    invite_required: opts.inviteRequired ?? true,
    max_invites: null,
    disallow_disposable_email_addresses: true,
    enable_spectator_access: opts.enableSpectatorAccess ?? false,
    want_advertise_in_communities_directory: false,
    inline_image_preview: true,
    inline_url_embed_preview: false,
    digest_emails_enabled: false,
    digest_weekday: 1,
    send_welcome_emails: true,
    message_content_allowed_in_email_notifications: true,
    require_unique_names: false,
    name_changes_disabled: false,
    email_changes_disabled: false,
    avatar_changes_disabled: false,
    move_messages_within_stream_limit_seconds: 604800,
    move_messages_between_streams_limit_seconds: 604800,
    waiting_period_threshold: opts.waitingPeriodThreshold ?? 0,
    message_content_delete_limit_seconds: 600,
    allow_message_editing: true,
    message_content_edit_limit_seconds: 600,
    default_language: opts.defaultLanguage ?? "en",
    zulip_update_announcements_level: null,
    message_retention_days: -1,
    message_visibility_limit: null,
    first_visible_message_id: 0,
    org_type: orgType,
    plan_type: opts.planType ?? 1,
    custom_upload_quota_gb: null,
    video_chat_provider: 1,
    jitsi_server_url: null,
    gif_rating_policy: 1,
    giphy_rating: LEGACY_GIPHY_RATING_G, // before 0773 (and 0763's renumbering)
    default_code_block_language: "",
    enable_read_receipts: enableReadReceipts,
    enable_guest_user_indicator: true,
    icon_source: "G",
    icon_version: 1,
    logo_source: "D",
    logo_version: 1,
    night_logo_source: "D",
    night_logo_version: 1,
    new_stream_announcements_stream_id: null,
    signup_announcements_stream_id: null,
    zulip_update_announcements_stream_id: null,
    moderation_request_channel_id: null,
    scheduled_deletion_date: null,
    enable_guest_user_dm_warning: true,
    message_edit_history_visibility_policy: 1,
    topics_policy: 2,
    mandatory_topics: false, // before 0713 (Zulip 10)
    require_e2ee_push_notifications: false,
    welcome_message_custom_text: "",
    send_channel_events_messages: false,
    owner_full_content_access: false,
    default_avatar_source: "J",
    rendered_description: internal ? null : renderPlainMarkdown(description),
    rendered_description_version: internal ? null : 1,
    media_preview_size: 100,
  };
}

/**
 * do_create_realm (or create_internal_realm for zulipinternal). Must run inside the caller's
 * transaction. The Realm's group-setting columns (as many as the release has) end up pointing at
 * its own system groups.
 */
export async function createRealm(db: Queryable, opts: CreateRealmOptions): Promise<CreatedRealm> {
  const random = opts.random ?? cryptoRandom;
  const internal = opts.internal ?? opts.stringId === SYSTEM_BOT_REALM;
  const name = opts.name ?? (internal ? SYSTEM_BOT_REALM_NAME : undefined);
  if (name === undefined) throw new Error("createRealm: name is required");
  const existing = await db.query(`SELECT id FROM zerver_realm WHERE string_id = $1`, [opts.stringId]);
  if (existing.rows.length) throw new Error(`Realm ${opts.stringId} already exists!`);

  const dateCreated = opts.dateCreated ?? new Date();
  const orgType = opts.orgType ?? OrgType.UNSPECIFIED;
  const series = await databaseSeries(db);
  const realmValues = realmRowValues(opts, { name, internal, dateCreated, random });
  // Placeholder group ids (-1), fixed below once the system groups exist: FKs are deferred.
  const realmCols = await tableColumns(db, "zerver_realm");
  const groupCols = [...realmCols].filter(isRealmGroupSettingColumn);
  const unknown = groupCols.filter((c) => !REALM_GROUP_SETTING_DEFAULTS[c] && !(opts.columns && c in opts.columns));
  if (unknown.length) throw new CreationSchemaError(`No default is known for the realm group setting(s) ${unknown.join(", ")}`);
  for (const col of groupCols) realmValues[col] = -1;
  Object.assign(realmValues, opts.columns ?? {});
  const realmId = Number((await insertRow(db, "zerver_realm", realmValues)).id);

  // REALM_CREATED; acting_user is filled in when the first owner is created (realmCreation).
  await audit(db, {
    realmId,
    eventType: AuditEvent.REALM_CREATED,
    eventTime: dateCreated,
    extraData: internal
      ? {}
      : {
          how_realm_creator_found_zulip: opts.howRealmCreatorFoundZulip ?? null,
          how_realm_creator_found_zulip_extra_context: opts.howRealmCreatorFoundZulipExtraContext ?? null,
        },
  });

  await insertRow(db, "zerver_realmuserdefault", {
    ...USER_SETTING_DEFAULTS,
    ...REALM_USER_DEFAULT_OVERRIDES,
    email_address_visibility:
      opts.emailAddressVisibility ?? (internal ? EmailAddressVisibility.EVERYONE : defaultEmailVisibility(orgType)),
    realm_id: realmId,
  });

  const groups = await createSystemGroups(db, realmId, dateCreated);

  // set_default_for_realm_permission_group_settings
  const assignments: string[] = [];
  const params: unknown[] = [realmId];
  const education = !internal && (orgType === OrgType.EDUCATION || orgType === OrgType.EDUCATION_NONPROFIT);
  for (const col of groupCols) {
    let groupName = REALM_GROUP_SETTING_DEFAULTS[col];
    if (!groupName) continue;
    if (education && EDUCATION_GROUP_SETTING_OVERRIDES[col]) groupName = EDUCATION_GROUP_SETTING_OVERRIDES[col];
    if (opts.columns && col in opts.columns) continue;
    params.push(groups[groupName]);
    assignments.push(`${quoteIdent(col)} = $${params.length}`);
  }
  await db.query(`UPDATE zerver_realm SET ${assignments.join(", ")} WHERE id = $1`, params);

  await insertRows(
    db,
    "zerver_realmauthenticationmethod",
    (opts.authenticationMethods ?? DEFAULT_AUTH_BACKEND_NAMES).map((n) => ({ name: n, realm_id: realmId })),
    null,
  );
  await insertRow(db, "zerver_presencesequence", { last_update_id: 0, realm_id: realmId }, "");

  const created: CreatedRealm = { id: realmId, stringId: opts.stringId, name, dateCreated, internal, groups, channels: [] };

  if (internal) {
    for (const c of INTERNAL_REALM_CLIENTS) await getOrCreateClient(db, c);
    return created;
  }

  if (opts.defaultChannels ?? true) {
    for (const ch of DEFAULT_REALM_CHANNELS) {
      created.channels.push(
        await createChannel(db, created, {
          name: ch.name,
          description: ch.description,
          renderedDescription: ch.rendered,
          dateCreated,
        }),
      );
    }
    await insertRows(
      db,
      "zerver_defaultstream",
      created.channels.map((c) => ({ realm_id: realmId, stream_id: c.id })),
      null,
    );
  }
  // Before 12.0, do_create_realm sent new-channel and Zulip-update announcements to #general
  // (the third default channel); 12.0 leaves both unset.
  const general = created.channels.find((c) => c.name === DEFAULT_REALM_CHANNELS[2].name);
  const announceInGeneral = (series === "10.x" || series === "11.x") && general !== undefined;
  await db.query(
    `UPDATE zerver_realm SET zulip_update_announcements_level = $2${
      announceInGeneral ? ", new_stream_announcements_stream_id = $3, zulip_update_announcements_stream_id = $3" : ""
    } WHERE id = $1`,
    [realmId, ZULIP_UPDATE_ANNOUNCEMENTS_LEVELS[series] ?? ZULIP_UPDATE_ANNOUNCEMENTS_LEVEL, ...(announceInGeneral ? [general!.id] : [])],
  );
  return created;
}

/** A system group's NamedUserGroup row: every group setting is role:nobody, no creator. */
function systemGroupValues(id: number, name: string, description: string, realmId: number, nobodyId: number): Row {
  const row: Row = {
    usergroup_ptr_id: id,
    name,
    description,
    is_system_group: true,
    realm_id: realmId,
    deactivated: false,
    creator_id: null,
    date_created: null,
  };
  for (const c of NAMED_GROUP_SETTING_COLUMNS) row[c] = nobodyId;
  return row;
}

/** create_system_user_groups_for_realm: 8 groups, 701 audits, the subgroup chain with 705/707 audits. */
async function createSystemGroups(db: Queryable, realmId: number, when: Date): Promise<SystemGroupIds> {
  const ugRows = await insertRows(
    db,
    "zerver_usergroup",
    SYSTEM_GROUPS.map(() => ({ realm_id: realmId })),
  );
  const ids = ugRows.map((r) => Number(r.id));
  const nobodyId = ids[0];
  const groups = {} as SystemGroupIds;
  SYSTEM_GROUPS.forEach(([n], i) => (groups[n] = ids[i]));
  await insertRows(
    db,
    "zerver_namedusergroup",
    SYSTEM_GROUPS.map(([groupName, description], i) => systemGroupValues(ids[i], groupName, description, realmId, nobodyId)),
    null,
  );
  await insertRows(
    db,
    "zerver_realmauditlog",
    ids.map((id) => auditValues({ realmId, eventType: AuditEvent.USER_GROUP_CREATED, eventTime: when, modifiedUserGroupId: id })),
    null,
  );
  // "Nobody" is nobody's subgroup; owners ⊂ administrators ⊂ … ⊂ internet.
  const memberships: Row[] = [];
  const audits: Row[] = [];
  for (let i = 2; i < ids.length; i++) {
    const sub = ids[i - 1];
    const sup = ids[i];
    memberships.push({ supergroup_id: sup, subgroup_id: sub });
    audits.push(
      auditValues({
        realmId,
        eventType: AuditEvent.USER_GROUP_DIRECT_SUBGROUP_MEMBERSHIP_ADDED,
        eventTime: when,
        modifiedUserGroupId: sup,
        extraData: { subgroup_ids: [sub] },
      }),
      auditValues({
        realmId,
        eventType: AuditEvent.USER_GROUP_DIRECT_SUPERGROUP_MEMBERSHIP_ADDED,
        eventTime: when,
        modifiedUserGroupId: sub,
        extraData: { supergroup_ids: [sup] },
      }),
    );
  }
  await insertRows(db, "zerver_groupgroupmembership", memberships, null);
  await insertRows(db, "zerver_realmauditlog", audits, null);
  return groups;
}

/** The system group ids of a realm, by name. */
export async function getSystemGroups(db: Queryable, realmId: number): Promise<SystemGroupIds> {
  const { rows } = await db.query(
    `SELECT usergroup_ptr_id AS id, name FROM zerver_namedusergroup WHERE realm_id = $1 AND is_system_group`,
    [realmId],
  );
  const out = {} as SystemGroupIds;
  for (const r of rows) out[r.name as SystemGroupName] = Number(r.id);
  for (const [n] of SYSTEM_GROUPS) if (!out[n]) throw new Error(`realm ${realmId} has no system group ${n}`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Users

export type RealmRef = number | { id: number };

function realmIdOf(realm: RealmRef): number {
  return typeof realm === "number" ? realm : realm.id;
}

export interface CreateUserOptions {
  email: string;
  fullName: string;
  role?: number;
  /** Deprecated alias: a bot is any user with a botType. isBot without botType means a generic bot. */
  isBot?: boolean;
  botType?: number | null;
  botOwnerId?: number | null;
  dateJoined?: Date;
  /** false = create, then deactivate (do_deactivate_user) at `deactivatedAt` (default dateJoined). */
  isActive?: boolean;
  deactivatedAt?: Date;
  /** A Django password hash; default: an unusable password. */
  passwordHash?: string | null;
  tosVersion?: string | null;
  timezone?: string;
  /** Default: the realm's default_language. */
  defaultLanguage?: string;
  /** Default: realm.default_avatar_source. */
  avatarSource?: string;
  /** Overrides the RealmUserDefault value (humans only; bots always use 1 = everyone). */
  emailAddressVisibility?: number;
  enableMarketingEmails?: boolean;
  /** EXTERNAL_HOST, needed for fake display emails when the visibility is not "everyone". */
  externalHost?: string;
  realmHosts?: Record<string, string>;
  fakeEmailDomain?: string;
  /**
   * The realm's user counts read beside the transaction before the user existed
   * (readRoleCountBaseline with absentUser), for the 101 row's ROLE_COUNT; see
   * roleCountsAfterChange.
   */
  roleCountBaseline?: Promise<RoleCountBaseline | null>;
  /** Audit acting user; default: the new user itself (do_create_user). */
  actingUserId?: number | null;
  /** This user created the realm: becomes acting_user of the REALM_CREATED audit row. */
  realmCreation?: boolean;
  /** Subscribe (humans) to the realm's default channels; default true. */
  defaultChannels?: boolean;
  /** Extra channel ids to subscribe to (like an invitation's streams). */
  channelIds?: number[];
  /** "Now" for the provisional-member check (default: the current time). */
  now?: Date;
  isMirrorDummy?: boolean;
  canForgeSender?: boolean;
  canCreateUsers?: boolean;
  /** Raw zerver_userprofile column overrides. */
  columns?: Record<string, unknown>;
  random?: RandomSource;
}

export interface CreatedUser {
  id: number;
  email: string;
  deliveryEmail: string;
  fullName: string;
  role: number;
  isBot: boolean;
  botType: number | null;
  isActive: boolean;
  realmId: number;
  dateJoined: Date;
  apiKey: string;
  /** Direct system-group memberships written (group names). */
  systemGroups: SystemGroupName[];
}

interface RealmInfo {
  id: number;
  stringId: string;
  defaultLanguage: string;
  defaultAvatarSource: string;
  waitingPeriodThreshold: number;
  /** realm.workplace_users_group_id (12.0+), else null. */
  workplaceUsersGroupId: number | null;
}

async function loadRealm(db: Queryable, realmId: number): Promise<RealmInfo> {
  const { rows } = await db.query(`SELECT * FROM zerver_realm WHERE id = $1`, [realmId]);
  if (!rows.length) throw new Error(`realm ${realmId} does not exist`);
  const r = rows[0];
  return {
    id: Number(r.id),
    stringId: r.string_id,
    defaultLanguage: r.default_language ?? "en",
    // realm.default_avatar_source (12.0, 0776); before, do_create_user's default AVATAR_FROM_GRAVATAR.
    defaultAvatarSource: r.default_avatar_source ?? "G",
    waitingPeriodThreshold: Number(r.waiting_period_threshold ?? 0),
    workplaceUsersGroupId: r.workplace_users_group_id === undefined || r.workplace_users_group_id === null ? null : Number(r.workplace_users_group_id),
  };
}

/** UserProfile.is_provisional_member: a member younger (in whole days) than the waiting period. */
export function isProvisionalMember(role: number, dateJoined: Date, waitingPeriodDays: number, now: Date): boolean {
  if (role !== Role.MEMBER) return false; // is_moderator (and above) → False; guests are not members
  const days = Math.floor((now.getTime() - dateJoined.getTime()) / 86400_000);
  return days < waitingPeriodDays;
}

/** get_system_user_group_for_user */
export function systemGroupForRole(role: number): SystemGroupName {
  switch (role) {
    case Role.OWNER:
      return "role:owners";
    case Role.ADMINISTRATOR:
      return "role:administrators";
    case Role.MODERATOR:
      return "role:moderators";
    case Role.MEMBER:
      return "role:members";
    case Role.GUEST:
      return "role:everyone";
    default:
      throw new Error(`unknown role ${role}`);
  }
}

/** realm_user_count_by_role(): the ROLE_COUNT ("10") payload of billing audit rows. */
export async function roleCountSnapshot(db: Queryable, realmId: number): Promise<Record<string, unknown>> {
  return { [ROLE_COUNT]: await roleCounts(db, realmId) };
}

/**
 * The UserProfile columns that are not user settings, as create_user_profile / create_user set
 * them (with the model defaults of every release: zoom_token before 0767, third_party_api_state,
 * is_imported_stub and is_deleted since; recipient_id before 0798 is filled in afterwards).
 */
function userAccountValues(u: {
  id: number;
  password: string;
  dateJoined: Date;
  deliveryEmail: string;
  email: string;
  fullName: string;
  tosVersion: string | null;
  apiKey: string;
  uuid: string;
  botType: number | null;
  role: number;
  isMirrorDummy: boolean;
  canForgeSender: boolean;
  canCreateUsers: boolean;
  timezone: string;
  avatarSource: string;
  botOwnerId: number | null;
  realmId: number;
}): Row {
  return {
    id: u.id,
    password: u.password,
    last_login: u.dateJoined,
    is_superuser: false,
    delivery_email: u.deliveryEmail,
    email: u.email,
    full_name: u.fullName,
    date_joined: u.dateJoined,
    tos_version: u.tosVersion,
    api_key: u.apiKey,
    uuid: u.uuid,
    is_staff: false,
    is_active: true,
    is_bot: u.botType !== null,
    bot_type: u.botType,
    role: u.role,
    long_term_idle: false,
    last_active_message_id: null,
    is_mirror_dummy: u.isMirrorDummy,
    can_forge_sender: u.canForgeSender,
    can_create_users: u.canCreateUsers,
    last_reminder: null,
    rate_limits: "",
    default_all_public_streams: false,
    timezone: u.timezone,
    avatar_source: u.avatarSource,
    avatar_version: 1,
    avatar_hash: null,
    bot_owner_id: u.botOwnerId,
    realm_id: u.realmId,
    default_events_register_stream_id: null,
    default_sending_stream_id: null,
    can_change_user_emails: false,
    is_imported_stub: false,
    third_party_api_state: "{}",
    zoom_token: null,
    is_deleted: false,
    recipient_id: null,
  };
}

/**
 * do_create_user: the UserProfile (settings from RealmUserDefault for humans), USER_CREATED audit
 * with a ROLE_COUNT snapshot, the system-group membership(s) with 703 audits, and for humans the
 * default-channel subscriptions (301 audits, subscriber counts, UserMessage history rows).
 * Must run inside the caller's transaction.
 */
export async function createUser(db: Queryable, realm: RealmRef, opts: CreateUserOptions): Promise<CreatedUser> {
  const random = opts.random ?? cryptoRandom;
  const info = await loadRealm(db, realmIdOf(realm));
  const groups = await getSystemGroups(db, info.id);
  const botType = opts.botType ?? (opts.isBot ? BotType.DEFAULT : null);
  const isBot = botType !== null;
  const role = opts.role ?? Role.MEMBER;
  const dateJoined = opts.dateJoined ?? new Date();
  const now = opts.now ?? new Date(Math.max(Date.now(), dateJoined.getTime()));
  const deliveryEmail = normalizeEmail(opts.email);

  const dup = await db.query(
    `SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND upper(delivery_email) = upper($2)`,
    [info.id, deliveryEmail],
  );
  if (dup.rows.length) throw new Error(`A user with email ${deliveryEmail} already exists in realm ${info.stringId || "(root)"}`);

  const upCols = await tableColumns(db, "zerver_userprofile");
  const values: Row = {};
  if (isBot) {
    Object.assign(values, USER_SETTING_DEFAULTS, { email_address_visibility: EmailAddressVisibility.EVERYONE });
  } else {
    const rud = await db.query(`SELECT * FROM zerver_realmuserdefault WHERE realm_id = $1`, [info.id]);
    if (!rud.rows.length) throw new Error(`realm ${info.id} has no RealmUserDefault row`);
    Object.assign(values, USER_SETTING_DEFAULTS);
    for (const [k, v] of Object.entries(rud.rows[0])) if (!NOT_COPIED_FROM_REALM_DEFAULTS.has(k) && upCols.has(k)) values[k] = v;
    if (opts.emailAddressVisibility !== undefined) values.email_address_visibility = opts.emailAddressVisibility;
    if (opts.enableMarketingEmails !== undefined) values.enable_marketing_emails = opts.enableMarketingEmails;
  }
  values.default_language = opts.defaultLanguage ?? info.defaultLanguage;

  const id = await nextId(db, "zerver_userprofile");
  let email = deliveryEmail;
  if (values.email_address_visibility !== EmailAddressVisibility.EVERYONE) {
    if (!opts.externalHost && !opts.fakeEmailDomain) {
      throw new Error("createUser: externalHost is needed to build the display email of a user whose email is not public");
    }
    const host = opts.externalHost ? realmHostFor(info.stringId, opts.externalHost, opts.realmHosts) : "";
    const domain = fakeEmailDomain(host, opts.fakeEmailDomain);
    email = `user${id}@${domain}`;
  }
  const apiKey = random.alnum(32);
  Object.assign(
    values,
    userAccountValues({
      id,
      password: isBot ? unusablePassword(random) : (opts.passwordHash ?? unusablePassword(random)),
      dateJoined,
      deliveryEmail,
      email,
      fullName: opts.fullName,
      tosVersion: opts.tosVersion ?? null,
      apiKey,
      uuid: random.uuid(),
      botType,
      role,
      isMirrorDummy: opts.isMirrorDummy ?? false,
      canForgeSender: opts.canForgeSender ?? false,
      // Observed on the reference install: the organization's creator has can_create_users
      // (set at creation, no 108 audit row); other users do not.
      canCreateUsers: opts.canCreateUsers ?? opts.realmCreation === true,
      timezone: opts.timezone ?? "",
      avatarSource: opts.avatarSource ?? info.defaultAvatarSource,
      botOwnerId: opts.botOwnerId ?? null,
      realmId: info.id,
    }),
  );
  Object.assign(values, opts.columns ?? {});
  await insertRow(db, "zerver_userprofile", values, "");
  // lib/create_user.py before 12.0: the personal Recipient, user.recipient, and the Subscription to it.
  if (await hasPersonalRecipients(db)) await createPersonalRecipients(db, [{ id, isActive: true }]);

  const actingUserId = opts.actingUserId ?? id;
  await audit(db, {
    realmId: info.id,
    eventType: AuditEvent.USER_CREATED,
    eventTime: dateJoined,
    actingUserId,
    modifiedUserId: id,
    extraData: {
      [ROLE_COUNT]: await roleCountsAfterChange(db, info.id, opts.roleCountBaseline, null, { role, is_active: true, is_bot: isBot }, workplaceGroupOf(info.workplaceUsersGroupId, (Object.keys(groups) as SystemGroupName[]).map((name) => ({ id: groups[name], name })))),
    },
  });
  if (opts.realmCreation) {
    await db.query(
      `UPDATE zerver_realmauditlog SET acting_user_id = $2
        WHERE id = (SELECT max(id) FROM zerver_realmauditlog WHERE realm_id = $1 AND event_type = $3)`,
      [info.id, id, AuditEvent.REALM_CREATED],
    );
  }

  const systemGroups: SystemGroupName[] = [systemGroupForRole(role)];
  if (role === Role.MEMBER && !isProvisionalMember(role, dateJoined, info.waitingPeriodThreshold, now)) {
    systemGroups.push("role:fullmembers");
  }
  for (const g of systemGroups) {
    await db.query(`INSERT INTO zerver_usergroupmembership (user_group_id, user_profile_id) VALUES ($1, $2)`, [groups[g], id]);
    await audit(db, {
      realmId: info.id,
      eventType: AuditEvent.USER_GROUP_DIRECT_USER_MEMBERSHIP_ADDED,
      eventTime: dateJoined,
      actingUserId,
      modifiedUserId: id,
      modifiedUserGroupId: groups[g],
    });
  }

  if (!isBot) {
    const channelIds = new Set<number>(opts.channelIds ?? []);
    if (opts.defaultChannels ?? true) {
      const ds = await db.query(`SELECT stream_id FROM zerver_defaultstream WHERE realm_id = $1`, [info.id]);
      for (const r of ds.rows) channelIds.add(Number(r.stream_id));
    }
    if (channelIds.size) await bulkAddSubscriptions(db, info.id, [...channelIds], [id], { when: dateJoined, actingUserId: null });
    await addNewUserHistory(db, info.id, id, [...channelIds], { realmCreation: opts.realmCreation ?? false, now });
  }

  const user: CreatedUser = {
    id,
    email,
    deliveryEmail,
    fullName: opts.fullName,
    role,
    isBot,
    botType,
    isActive: true,
    realmId: info.id,
    dateJoined,
    apiKey,
    systemGroups,
  };
  if (opts.isActive === false) {
    await deactivateUser(db, id, { when: opts.deactivatedAt ?? dateJoined, actingUserId: opts.actingUserId ?? null });
    user.isActive = false;
  }
  return user;
}

/** Django's BaseUserManager.normalize_email: lowercase the domain part. */
function normalizeEmail(email: string): string {
  const at = email.lastIndexOf("@");
  if (at < 0) return email;
  return email.slice(0, at) + "@" + email.slice(at + 1).toLowerCase();
}

/** A new Subscription row: the model defaults, with is_user_active copied from the user. */
/** A Subscription row with the model's defaults. */
export function subscriptionValues(recipientId: number, userId: number, isUserActive: boolean, color: string = DEFAULT_SUBSCRIPTION_COLOR): Row {
  return {
    active: true,
    is_user_active: isUserActive,
    is_muted: false,
    color,
    pin_to_top: false,
    desktop_notifications: null,
    audible_notifications: null,
    push_notifications: null,
    email_notifications: null,
    wildcard_mentions_notify: null,
    recipient_id: recipientId,
    user_profile_id: userId,
  };
}

/**
 * Before Zulip 12 (0798): one personal Recipient (type 1) per user, userprofile.recipient_id
 * pointing at it, and the user's Subscription to it (Subscription model defaults, is_user_active
 * from the user), as create_user and bulk_create_users wrote them. Recipients are made in the
 * order given.
 */
async function createPersonalRecipients(db: Queryable, users: { id: number; isActive: boolean }[]): Promise<Map<number, number>> {
  const recipients = await insertRows(
    db,
    "zerver_recipient",
    users.map((u) => ({ type_id: u.id, type: RecipientType.PERSONAL })),
  );
  const byUser = new Map(users.map((u, i) => [u.id, Number(recipients[i].id)]));
  await db.query(
    `UPDATE zerver_userprofile u SET recipient_id = x.rid
       FROM unnest($1::int[], $2::int[]) AS x(uid, rid) WHERE u.id = x.uid`,
    [[...byUser.keys()], [...byUser.values()]],
  );
  await insertRows(
    db,
    "zerver_subscription",
    users.map((u) => subscriptionValues(byUser.get(u.id)!, u.id, u.isActive)),
    null,
  );
  return byUser;
}

/**
 * do_deactivate_user's database part for one user (deactivate-user.ts deactivateUserInTx, the
 * one deactivation implementation): is_active=false, subscriptions' is_user_active=false,
 * subscriber counts decremented, scheduled emails cleared, invitations revoked, USER_DEACTIVATED
 * audit with ROLE_COUNT. Bots and sessions are the caller's business.
 */
export async function deactivateUser(
  db: Queryable,
  userId: number,
  opts: { when?: Date; actingUserId?: number | null } = {},
): Promise<void> {
  await deactivateUserInTx(db, userId, { now: opts.when ?? new Date(), actingUserId: opts.actingUserId ?? null });
}

/**
 * create_internal_realm's bots: bulk_create_users into zulipinternal (101 audits with empty
 * extra_data, role:members + role:fullmembers memberships with 703 audits), each bot owning
 * itself with avatar_source 'U', then can_forge_sender for the email gateway (108 audit).
 * Idempotent: bots that exist are skipped.
 */
export async function createSystemBots(
  db: Queryable,
  systemRealm: RealmRef,
  opts: { dateJoined?: Date; random?: RandomSource } = {},
): Promise<Record<string, number>> {
  const random = opts.random ?? cryptoRandom;
  const info = await loadRealm(db, realmIdOf(systemRealm));
  const groups = await getSystemGroups(db, info.id);
  const when = opts.dateJoined ?? new Date();
  const out: Record<string, number> = {};
  const existing = await db.query(`SELECT id, email FROM zerver_userprofile WHERE realm_id = $1`, [info.id]);
  const have = new Map(existing.rows.map((r) => [r.email as string, Number(r.id)]));
  const toCreate = SYSTEM_BOTS.filter((b) => !have.has(b.email));
  const rows: Row[] = [];
  for (const b of toCreate) {
    const id = await nextId(db, "zerver_userprofile");
    rows.push({
      ...USER_SETTING_DEFAULTS,
      default_language: info.defaultLanguage,
      ...userAccountValues({
        id,
        password: unusablePassword(random),
        dateJoined: when,
        deliveryEmail: b.email,
        email: b.email,
        fullName: b.fullName,
        tosVersion: null,
        apiKey: random.alnum(32),
        uuid: random.uuid(),
        botType: BotType.DEFAULT,
        role: Role.MEMBER,
        isMirrorDummy: false,
        canForgeSender: false,
        canCreateUsers: false,
        timezone: "",
        avatarSource: "U",
        botOwnerId: id,
        realmId: info.id,
      }),
    });
  }
  await insertRows(db, "zerver_userprofile", rows, null);
  await insertRows(
    db,
    "zerver_realmauditlog",
    rows.map((r) => auditValues({ realmId: info.id, eventType: AuditEvent.USER_CREATED, eventTime: when, modifiedUserId: r.id as number })),
    null,
  );
  if (rows.length && (await hasPersonalRecipients(db))) {
    await createPersonalRecipients(db, rows.map((r) => ({ id: r.id as number, isActive: true })));
  }
  const provisional = isProvisionalMember(Role.MEMBER, when, info.waitingPeriodThreshold, when);
  const memberships: Row[] = [];
  for (const r of rows) {
    memberships.push({ user_group_id: groups["role:members"], user_profile_id: r.id });
    if (!provisional) memberships.push({ user_group_id: groups["role:fullmembers"], user_profile_id: r.id });
  }
  await insertRows(db, "zerver_usergroupmembership", memberships, null);
  await insertRows(
    db,
    "zerver_realmauditlog",
    memberships.map((m) =>
      auditValues({
        realmId: info.id,
        eventType: AuditEvent.USER_GROUP_DIRECT_USER_MEMBERSHIP_ADDED,
        eventTime: when,
        modifiedUserId: m.user_profile_id as number,
        modifiedUserGroupId: m.user_group_id as number,
      }),
    ),
    null,
  );
  for (const r of rows) have.set(r.email as string, r.id as number);
  for (const b of SYSTEM_BOTS) {
    const id = have.get(b.email)!;
    out[b.email] = id;
    if (b.canForgeSender && toCreate.includes(b)) {
      await db.query(`UPDATE zerver_userprofile SET can_forge_sender = true WHERE id = $1`, [id]);
      await audit(db, {
        realmId: info.id,
        eventType: AuditEvent.USER_SPECIAL_PERMISSION_CHANGED,
        eventTime: when,
        modifiedUserId: id,
        extraData: { "1": false, "2": true, property: "can_forge_sender" },
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Channels and subscriptions

export interface CreateChannelOptions {
  name: string;
  description?: string;
  /** Rendered HTML of the description; default: escaped text in a paragraph. */
  renderedDescription?: string;
  inviteOnly?: boolean;
  /** Default: true for public channels, false (protected history) for private ones. */
  historyPublicToSubscribers?: boolean;
  isWebPublic?: boolean;
  messageRetentionDays?: number | null;
  /** The creating user: acting user of the audit row and member of the "channel creator" group. */
  creatorId?: number | null;
  /** Users to subscribe (bulk_add_subscriptions, acting user = creator). */
  subscribers?: number[];
  dateCreated?: Date;
  /** Raw zerver_stream column overrides. */
  columns?: Record<string, unknown>;
}

/** The Stream model's values of every release (group settings are added by createChannel). */
function channelRowValues(c: {
  name: string;
  when: Date;
  description: string;
  renderedDescription: string;
  inviteOnly: boolean;
  historyPublic: boolean;
  isWebPublic: boolean;
  messageRetentionDays: number | null;
  creatorId: number | null;
  realmId: number;
}): Row {
  return {
    name: c.name,
    date_created: c.when,
    deactivated: false,
    description: c.description,
    rendered_description: c.renderedDescription,
    invite_only: c.inviteOnly,
    history_public_to_subscribers: c.historyPublic,
    is_web_public: c.isWebPublic,
    message_retention_days: c.messageRetentionDays,
    first_message_id: null,
    creator_id: c.creatorId,
    realm_id: c.realmId,
    recipient_id: null,
    is_recently_active: true,
    subscriber_count: 0, // since 11.0 (0704)
    folder_id: null, // since 11.0 (0708)
    topics_policy: 1, // since 11.0 (0717)
    is_in_zephyr_realm: false, // before 0752 (Zulip 10, 11)
  };
}

/** create_stream_if_needed (+ bulk_add_subscriptions for `subscribers`). Caller's transaction. */
export async function createChannel(db: Queryable, realm: RealmRef, opts: CreateChannelOptions): Promise<CreatedChannel> {
  const realmId = realmIdOf(realm);
  const groups = await getSystemGroups(db, realmId);
  const when = opts.dateCreated ?? new Date();
  const name = opts.name.trim();
  const clash = await db.query(`SELECT id FROM zerver_stream WHERE realm_id = $1 AND upper(name) = upper($2)`, [realmId, name]);
  if (clash.rows.length) throw new Error(`Channel '${name}' already exists in realm ${realmId}`);
  const inviteOnly = opts.inviteOnly ?? false;
  const historyPublic = inviteOnly ? (opts.historyPublicToSubscribers ?? false) : true;
  const creatorId = opts.creatorId ?? null;

  const values = channelRowValues({
    name,
    when,
    description: opts.description ?? "",
    renderedDescription: opts.renderedDescription ?? renderPlainMarkdown(opts.description ?? ""),
    inviteOnly,
    historyPublic,
    isWebPublic: opts.isWebPublic ?? false,
    messageRetentionDays: opts.messageRetentionDays ?? null,
    creatorId,
    realmId,
  });
  const streamCols = await tableColumns(db, "zerver_stream");
  for (const [col, groupName] of Object.entries(STREAM_GROUP_SETTING_DEFAULTS)) {
    if (!streamCols.has(col)) continue; // a setting this release does not have yet
    if (groupName) {
      values[col] = groups[groupName];
    } else if (creatorId !== null) {
      // "channel creator": an anonymous group (no NamedUserGroup row) with the creator as member.
      const creatorRealm = await db.query(`SELECT realm_id FROM zerver_userprofile WHERE id = $1`, [creatorId]);
      const g = await db.query(`INSERT INTO zerver_usergroup (realm_id) VALUES ($1) RETURNING id`, [
        Number(creatorRealm.rows[0]?.realm_id ?? realmId),
      ]);
      const gid = Number(g.rows[0].id);
      await db.query(`INSERT INTO zerver_usergroupmembership (user_group_id, user_profile_id) VALUES ($1, $2)`, [gid, creatorId]);
      values[col] = gid;
    } else {
      values[col] = groups["role:nobody"];
    }
  }
  Object.assign(values, opts.columns ?? {});
  const streamId = Number((await insertRow(db, "zerver_stream", values)).id);
  const rec = await db.query(`INSERT INTO zerver_recipient (type_id, type) VALUES ($1, $2) RETURNING id`, [
    streamId,
    RecipientType.STREAM,
  ]);
  const recipientId = Number(rec.rows[0].id);
  await db.query(`UPDATE zerver_stream SET recipient_id = $2 WHERE id = $1`, [streamId, recipientId]);
  await audit(db, {
    realmId,
    eventType: AuditEvent.CHANNEL_CREATED,
    eventTime: when,
    actingUserId: creatorId,
    modifiedStreamId: streamId,
  });
  if (opts.subscribers?.length) {
    await bulkAddSubscriptions(db, realmId, [streamId], opts.subscribers, { when, actingUserId: creatorId });
  }
  return { id: streamId, name, recipientId, realmId };
}

/** get_last_message_id(): the server-wide max message id, -1 when there are no messages. */
export async function lastMessageId(db: Queryable): Promise<number> {
  const { rows } = await db.query(`SELECT max(id) AS id FROM zerver_message`);
  return rows[0].id === null ? -1 : Number(rows[0].id);
}

/**
 * bulk_add_subscriptions: new Subscription rows (palette colour, is_user_active copied from the
 * user), reactivation of inactive ones, SUBSCRIPTION_CREATED/ACTIVATED audits carrying
 * event_last_message_id, and subscriber_count updates. Returns the channel ids that became
 * active subscriptions for at least one user.
 */
export async function bulkAddSubscriptions(
  db: Queryable,
  realmId: number,
  channelIds: number[],
  userIds: number[],
  opts: { when?: Date; actingUserId?: number | null; /** receives the ids of the audit rows written */ auditLogIds?: number[] } = {},
): Promise<number[]> {
  if (!channelIds.length || !userIds.length) return [];
  const when = opts.when ?? new Date();
  const streams = (
    await db.query(`SELECT id, recipient_id FROM zerver_stream WHERE id = ANY($1::bigint[]) ORDER BY recipient_id`, [channelIds])
  ).rows.map((r) => ({ id: Number(r.id), recipientId: Number(r.recipient_id) }));
  const users = (
    await db.query(`SELECT id, is_active FROM zerver_userprofile WHERE id = ANY($1::int[]) ORDER BY id`, [userIds])
  ).rows.map((r) => ({ id: Number(r.id), isActive: r.is_active as boolean }));
  const existing = await db.query(
    `SELECT s.id, s.user_profile_id, s.recipient_id, s.active, s.color, r.type
       FROM zerver_subscription s JOIN zerver_recipient r ON r.id = s.recipient_id
      WHERE s.user_profile_id = ANY($1::int[])`,
    [users.map((u) => u.id)],
  );
  const eventLastMessageId = await lastMessageId(db);
  const newSubs: Row[] = [];
  const audits: Row[] = [];
  const reactivate: number[] = [];
  const countDelta = new Map<number, number>();
  const touched = new Set<number>();
  for (const u of users) {
    const mine = existing.rows.filter((r) => Number(r.user_profile_id) === u.id);
    const used = new Set(mine.filter((r) => Number(r.type) === RecipientType.STREAM).map((r) => r.color as string));
    const available = STREAM_ASSIGNMENT_COLORS.filter((c) => !used.has(c));
    let nextColor = 0;
    for (const s of streams) {
      const sub = mine.find((r) => Number(r.recipient_id) === s.recipientId);
      if (sub?.active) continue;
      if (sub) {
        reactivate.push(Number(sub.id));
        audits.push(
          auditValues({
            realmId,
            eventType: AuditEvent.SUBSCRIPTION_ACTIVATED,
            eventTime: when,
            actingUserId: opts.actingUserId ?? null,
            modifiedUserId: u.id,
            modifiedStreamId: s.id,
            eventLastMessageId,
          }),
        );
      } else {
        const color =
          nextColor < available.length
            ? available[nextColor]
            : STREAM_ASSIGNMENT_COLORS[s.recipientId % STREAM_ASSIGNMENT_COLORS.length];
        nextColor++;
        newSubs.push(subscriptionValues(s.recipientId, u.id, u.isActive, color));
        audits.push(
          auditValues({
            realmId,
            eventType: AuditEvent.SUBSCRIPTION_CREATED,
            eventTime: when,
            actingUserId: opts.actingUserId ?? null,
            modifiedUserId: u.id,
            modifiedStreamId: s.id,
            eventLastMessageId,
          }),
        );
      }
      touched.add(s.id);
      if (u.isActive) countDelta.set(s.id, (countDelta.get(s.id) ?? 0) + 1);
    }
  }
  await insertRows(db, "zerver_subscription", newSubs, null);
  if (reactivate.length) {
    await db.query(`UPDATE zerver_subscription SET active = true WHERE id = ANY($1::bigint[])`, [reactivate]);
  }
  const auditRows = await insertRows(db, "zerver_realmauditlog", audits, opts.auditLogIds ? "id" : null);
  opts.auditLogIds?.push(...auditRows.map((r) => Number(r.id)));
  if ((await tableColumns(db, "zerver_stream")).has("subscriber_count")) {
    // Stream.subscriber_count exists since 11.0 (0704).
    if (countDelta.size) {
      await db.query(
        `UPDATE zerver_stream s SET subscriber_count = s.subscriber_count + d.n
           FROM unnest($1::bigint[], $2::int[]) AS d(id, n) WHERE s.id = d.id`,
        [[...countDelta.keys()], [...countDelta.values()]],
      );
    }
  }
  return [...touched];
}

/**
 * add_new_user_history (Zulip 12): UserMessage rows for the newest 1000 messages of the channels
 * the user just joined whose history they can access, plus the organization's tracked onboarding
 * messages (OnboardingUserMessage). Rows are "historical" unless the user created the realm.
 * Without tracked onboarding messages all but the newest 20 are marked read; with them, every
 * message that is not an onboarding message is read and starred onboarding messages are starred.
 */
async function addNewUserHistory(
  db: Queryable,
  realmId: number,
  userId: number,
  channelIds: number[],
  opts: { realmCreation: boolean; now: Date },
): Promise<void> {
  const recent = channelIds.length
    ? (
        await db.query(
          `SELECT m.id FROM zerver_message m JOIN zerver_stream s ON s.recipient_id = m.recipient_id
            WHERE m.realm_id = $1 AND s.id = ANY($2::bigint[]) AND s.history_public_to_subscribers
            ORDER BY m.id DESC LIMIT 1000`,
          [realmId, channelIds],
        )
      ).rows.map((r) => Number(r.id))
    : [];
  const tracked = new Map<number, number>(
    (await db.query(`SELECT message_id, flags FROM zerver_onboardingusermessage WHERE realm_id = $1`, [realmId])).rows.map((r) => [
      Number(r.message_id),
      Number(r.flags),
    ]),
  );
  const history = new Set([...recent, ...tracked.keys()]);
  if (history.size === 0) return;
  const already = new Set(
    (await db.query(`SELECT message_id FROM zerver_usermessage WHERE user_profile_id = $1 AND message_id = ANY($2::bigint[])`, [userId, recent])).rows.map(
      (r) => Number(r.message_id),
    ),
  );
  const ids = [...history].filter((m) => !already.has(m)).sort((a, b) => a - b);
  const older = tracked.size ? new Set<number>() : new Set(ids.slice(0, Math.max(0, ids.length - 20)));
  const ONBOARDING_STARRED = 4;
  await insertRows(
    db,
    "zerver_usermessage",
    ids.map((mid) => {
      let flags = opts.realmCreation ? 0 : UserMessageFlag.HISTORICAL;
      if (tracked.size) {
        if (!tracked.has(mid)) flags |= UserMessageFlag.READ;
        else if (tracked.get(mid)! & ONBOARDING_STARRED) flags |= UserMessageFlag.STARRED;
      } else if (older.has(mid)) {
        flags |= UserMessageFlag.READ;
      }
      return { flags, message_id: mid, user_profile_id: userId };
    }),
    null,
  );
}

// ---------------------------------------------------------------------------------------------
// Direct message groups and messages

/** huddle_hash: sha1 of the sorted, de-duplicated, comma-joined user ids. */
export function directMessageGroupHash(userIds: number[]): string {
  const ids = [...new Set(userIds)].sort((a, b) => a - b);
  return crypto().createHash("sha1").update(ids.join(",")).digest("hex");
}

/**
 * get_or_create_direct_message_group: zerver_huddle + type-3 recipient + one subscription per
 * participant. Zulip 12 sends every DM (1:1 and self-DMs too) through one of these; before,
 * only conversations of three or more users (see directMessageRecipient).
 */
export async function getOrCreateDirectMessageGroup(
  db: Queryable,
  userIds: number[],
): Promise<{ id: number; recipientId: number; created: boolean }> {
  const ids = [...new Set(userIds)].sort((a, b) => a - b);
  const hash = directMessageGroupHash(ids);
  const found = await db.query(`SELECT id, recipient_id FROM zerver_huddle WHERE huddle_hash = $1`, [hash]);
  if (found.rows.length) return { id: Number(found.rows[0].id), recipientId: Number(found.rows[0].recipient_id), created: false };
  const h = await db.query(`INSERT INTO zerver_huddle (huddle_hash, group_size) VALUES ($1, $2) RETURNING id`, [hash, ids.length]);
  const huddleId = Number(h.rows[0].id);
  const r = await db.query(`INSERT INTO zerver_recipient (type_id, type) VALUES ($1, $2) RETURNING id`, [
    huddleId,
    RecipientType.DIRECT_MESSAGE_GROUP,
  ]);
  const recipientId = Number(r.rows[0].id);
  await db.query(`UPDATE zerver_huddle SET recipient_id = $2 WHERE id = $1`, [huddleId, recipientId]);
  const users = await db.query(`SELECT id, is_active FROM zerver_userprofile WHERE id = ANY($1::int[]) ORDER BY id`, [ids]);
  await insertRows(
    db,
    "zerver_subscription",
    users.rows.map((u) => subscriptionValues(recipientId, Number(u.id), u.is_active)),
    null,
  );
  return { id: huddleId, recipientId, created: true };
}

/**
 * The Recipient of a direct message among `userIds` (the sender included). Zulip 12 sends every
 * DM to a DM group. Before 12.0 (personal recipients exist), a 1:1 or self DM went to the other
 * user's (for a self DM, the sender's) personal recipient; only conversations of three or more
 * created DM groups. Zulip 11 (zulip/zulip#34307, May 2025) first used a DM group that already
 * existed for the pair; Zulip 10 always used the personal recipient.
 */
export async function directMessageRecipient(
  db: Queryable,
  senderId: number,
  userIds: number[],
): Promise<{ recipientId: number; type: number }> {
  const ids = [...new Set([senderId, ...userIds])];
  if (ids.length <= 2 && (await hasPersonalRecipients(db))) {
    if ((await databaseSeries(db)) !== "10.x") {
      const found = await db.query(`SELECT recipient_id FROM zerver_huddle WHERE huddle_hash = $1`, [directMessageGroupHash(ids)]);
      if (found.rows.length) return { recipientId: Number(found.rows[0].recipient_id), type: RecipientType.DIRECT_MESSAGE_GROUP };
    }
    const other = ids.find((id) => id !== senderId) ?? senderId;
    const { rows } = await db.query(`SELECT recipient_id FROM zerver_userprofile WHERE id = $1`, [other]);
    if (!rows.length || rows[0].recipient_id === null) throw new Error(`user ${other} has no personal recipient`);
    return { recipientId: Number(rows[0].recipient_id), type: RecipientType.PERSONAL };
  }
  return { recipientId: (await getOrCreateDirectMessageGroup(db, ids)).recipientId, type: RecipientType.DIRECT_MESSAGE_GROUP };
}

export interface SendMessageOptions {
  senderId: number;
  /** A channel message (topic ≤ 60 chars) or a DM to these users (the sender is added). */
  to: { channelId: number; topic: string } | { userIds: number[] };
  content: string;
  renderedContent?: string;
  dateSent?: Date;
  /** Sending client name; default "website" for humans, "Internal" for bots. */
  client?: string;
  /** Users whose row gets the "mentioned" flag. */
  mentionedUserIds?: number[];
  /** Message.has_link as Zulip's Markdown sets it (any <a href> in the rendering); default: a URL in the content. */
  hasLink?: boolean;
}

/** UserTopic.VisibilityPolicy */
export const VisibilityPolicy = { INHERIT: 0, MUTED: 1, UNMUTED: 2, FOLLOWED: 3 } as const;

const ALERT_WORD_BEFORE = new Set([" ", "\n", "(", '"', ".", ",", "'", ";", "[", "*", "`", ">"]);
const ALERT_WORD_AFTER = new Set([" ", "\n", ")", '"', "?", ":", ".", ",", "'", ";", "]", "!", "*", "`"]);

/**
 * The users whose alert words occur in `content` (Markdown's AlertWordNotificationProcessor):
 * case-insensitive matches of each word, with Zulip's quirky boundary rules (the character
 * before the word, or the start; the character after it, or the end).
 */
export function usersWithAlertWords(content: string, words: { userId: number; word: string }[]): Set<number> {
  const lower = content.toLowerCase();
  const found = new Set<number>();
  for (const { userId, word } of words) {
    const w = word.toLowerCase();
    if (!w || found.has(userId)) continue;
    for (let start = lower.indexOf(w); start >= 0; start = lower.indexOf(w, start + 1)) {
      const end = start + w.length - 1;
      const before = end - w.length;
      const okStart = before <= 0 || ALERT_WORD_BEFORE.has(content[before]);
      const okEnd = end + 1 >= content.length || ALERT_WORD_AFTER.has(content[end + 1]);
      if (okStart && okEnd) {
        found.add(userId);
        break;
      }
    }
  }
  return found;
}

/**
 * The UserMessage rows of a channel message as do_send_messages makes them
 * (get_recipient_info + get_subscriptions_for_send_message + create_user_messages): every active
 * subscriber; long-term-idle ones only when the message is notifiable for them (channel or
 * followed-topic email/push notifications, honouring muted channels and topics) or gets them a
 * flag. Flags: read for users who muted the sender, mentioned, has_alert_word.
 */
async function channelMessageRecipients(
  db: Queryable,
  o: { realmId: number; streamId: number; recipientId: number; topic: string; senderId: number; content: string; mentionedUserIds: Set<number> },
): Promise<{ id: number; flags: number }[]> {
  const subs = (
    await db.query(
      `SELECT u.id, u.long_term_idle, sub.is_muted, sub.push_notifications, sub.email_notifications,
              u.enable_stream_push_notifications AS user_push, u.enable_stream_email_notifications AS user_email,
              u.enable_followed_topic_push_notifications AS followed_push,
              u.enable_followed_topic_email_notifications AS followed_email
         FROM zerver_subscription sub JOIN zerver_userprofile u ON u.id = sub.user_profile_id
        WHERE sub.recipient_id = $1 AND sub.active AND sub.is_user_active AND u.is_active
        ORDER BY u.id`,
      [o.recipientId],
    )
  ).rows;
  const policies = new Map<number, number>(
    (
      await db.query(`SELECT user_profile_id, visibility_policy FROM zerver_usertopic WHERE stream_id = $1 AND upper(topic_name) = upper($2)`, [
        o.streamId,
        o.topic,
      ])
    ).rows.map((r) => [Number(r.user_profile_id), Number(r.visibility_policy)]),
  );
  const alertWords = (await db.query(`SELECT user_profile_id, word FROM zerver_alertword WHERE realm_id = $1`, [o.realmId])).rows.map((r) => ({
    userId: Number(r.user_profile_id),
    word: String(r.word),
  }));
  const withAlertWords = usersWithAlertWords(o.content, alertWords);
  const hasAnyAlertWord = new Set(alertWords.map((a) => a.userId));
  const muting = new Set(
    (await db.query(`SELECT user_profile_id FROM zerver_muteduser WHERE muted_user_id = $1`, [o.senderId])).rows.map((r) => Number(r.user_profile_id)),
  );
  // user_allows_notifications_in_StreamTopic
  const allows = (isMuted: boolean, policy: number, channelSetting: boolean | null, userSetting: boolean) => {
    if (isMuted && policy !== VisibilityPolicy.UNMUTED) return false;
    if (policy === VisibilityPolicy.MUTED) return false;
    return channelSetting !== null ? channelSetting : userSetting;
  };
  const out: { id: number; flags: number }[] = [];
  for (const s of subs) {
    const id = Number(s.id);
    const policy = policies.get(id) ?? VisibilityPolicy.INHERIT;
    if (s.long_term_idle && id !== o.senderId) {
      // get_subscriptions_for_send_message's filter: idle users who cannot need a row are not even read.
      const considered =
        s.push_notifications === true ||
        (s.push_notifications === null && s.user_push) ||
        s.email_notifications === true ||
        (s.email_notifications === null && s.user_email) ||
        o.mentionedUserIds.has(id) ||
        hasAnyAlertWord.has(id) ||
        policy === VisibilityPolicy.FOLLOWED;
      if (!considered) continue;
    }
    let flags = 0;
    if (muting.has(id)) flags |= UserMessageFlag.READ;
    if (o.mentionedUserIds.has(id)) flags |= UserMessageFlag.MENTIONED;
    if (withAlertWords.has(id)) flags |= UserMessageFlag.HAS_ALERT_WORD;
    if (s.long_term_idle && id !== o.senderId && flags === 0) {
      const notifiable =
        allows(s.is_muted, policy, s.push_notifications, s.user_push) ||
        allows(s.is_muted, policy, s.email_notifications, s.user_email) ||
        (policy === VisibilityPolicy.FOLLOWED && (s.followed_push || s.followed_email));
      if (!notifiable) continue;
    }
    out.push({ id, flags });
  }
  return out;
}

/**
 * The database part of do_send_messages for plain messages: the Message row and one UserMessage
 * row per recipient (channel messages: see channelMessageRecipients; every DM participant, with
 * is_private). The sender's row is read when sent from a human client. A channel's
 * first_message_id and is_recently_active are updated as do_send_messages does.
 */
export async function sendMessage(db: Queryable, opts: SendMessageOptions): Promise<{ id: number; recipientId: number }> {
  const sender = (
    await db.query(
      `SELECT u.id, u.realm_id, u.is_bot, r.string_id FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id WHERE u.id = $1`,
      [opts.senderId],
    )
  ).rows[0];
  if (!sender) throw new Error(`sender ${opts.senderId} does not exist`);
  const clientName = opts.client ?? (sender.is_bot ? "Internal" : "website");
  const clientId = await getOrCreateClient(db, clientName);
  const dateSent = opts.dateSent ?? new Date();
  let recipientId: number;
  let realmId: number = Number(sender.realm_id);
  let isChannel: boolean;
  let subject = "";
  let recipients: { id: number; flags: number }[];
  let streamId: number | null = null;
  if ("channelId" in opts.to) {
    const s = (await db.query(`SELECT id, realm_id, recipient_id FROM zerver_stream WHERE id = $1`, [opts.to.channelId])).rows[0];
    if (!s) throw new Error(`channel ${opts.to.channelId} does not exist`);
    streamId = Number(s.id);
    recipientId = Number(s.recipient_id);
    realmId = Number(s.realm_id);
    isChannel = true;
    subject = opts.to.topic;
    recipients = await channelMessageRecipients(db, {
      realmId,
      streamId,
      recipientId,
      topic: subject,
      senderId: opts.senderId,
      content: opts.content,
      mentionedUserIds: new Set(opts.mentionedUserIds ?? []),
    });
  } else {
    const ids = [...new Set([opts.senderId, ...opts.to.userIds])];
    recipientId = (await directMessageRecipient(db, opts.senderId, ids)).recipientId;
    isChannel = false;
    if (sender.string_id === SYSTEM_BOT_REALM) {
      const other = await db.query(
        `SELECT realm_id FROM zerver_userprofile WHERE id = ANY($1::int[]) AND id <> $2 ORDER BY id LIMIT 1`,
        [ids, opts.senderId],
      );
      if (other.rows.length) realmId = Number(other.rows[0].realm_id);
    }
    recipients = ids.sort((a, b) => a - b).map((id) => ({ id, flags: UserMessageFlag.IS_PRIVATE }));
  }
  const sentByHuman = HUMAN_CLIENTS.has(clientName.toLowerCase()) || clientName.toLowerCase().includes("desktop app");
  const mentioned = new Set(opts.mentionedUserIds ?? []);
  for (const r of recipients) {
    if (r.id === opts.senderId && sentByHuman) r.flags |= UserMessageFlag.READ;
    if (mentioned.has(r.id)) r.flags |= UserMessageFlag.MENTIONED;
  }
  const m = await insertRow(db, "zerver_message", {
    type: 1,
    subject,
    content: opts.content,
    rendered_content: opts.renderedContent ?? renderPlainMarkdown(opts.content),
    rendered_content_version: 1,
    date_sent: dateSent,
    last_edit_time: null,
    edit_history: null,
    has_attachment: false,
    has_image: false,
    has_link: opts.hasLink ?? /https?:\/\//.test(opts.content),
    search_tsvector: null,
    sender_id: opts.senderId,
    sending_client_id: clientId,
    realm_id: realmId,
    recipient_id: recipientId,
    is_channel_message: isChannel,
  });
  const messageId = Number(m.id);
  await insertRows(
    db,
    "zerver_usermessage",
    recipients.map((r) => ({ flags: r.flags, message_id: messageId, user_profile_id: r.id })),
    null,
  );
  if (streamId !== null) {
    await db.query(`UPDATE zerver_stream SET first_message_id = $2 WHERE id = $1 AND first_message_id IS NULL`, [streamId, messageId]);
    await db.query(`UPDATE zerver_stream SET is_recently_active = true WHERE id = $1 AND NOT is_recently_active`, [streamId]);
  }
  return { id: messageId, recipientId };
}

// ---------------------------------------------------------------------------------------------
// What manage.py create_user / create_realm need beyond the rows above

/**
 * Why createRealm / createUser (with their channels, groups, subscriptions and audit rows) cannot
 * write this database as its Zulip release would (null when they can), decided from the catalog:
 * a NOT NULL column without a database default that this code has no value for, or a realm
 * group setting whose default it does not know. Zulip 10.x, 11.x and 12.x databases pass.
 */
/** The tables creationSchemaProblem checks, i.e. those that creating realms and users writes. */
const CREATION_TABLES = [
  "zerver_realm",
  "zerver_realmuserdefault",
  "zerver_userprofile",
  "zerver_usergroup",
  "zerver_namedusergroup",
  "zerver_realmauditlog",
  "zerver_stream",
  "zerver_recipient",
  "zerver_subscription",
  "zerver_defaultstream",
  "zerver_realmauthenticationmethod",
  "zerver_presencesequence",
  "zerver_usergroupmembership",
  "zerver_groupgroupmembership",
  "zerver_usermessage",
];

export async function creationSchemaProblem(db: Queryable): Promise<string | null> {
  await prefetchTableShapes(db, CREATION_TABLES);
  const epoch = new Date(0);
  const fixed: RandomSource = { alnum: (n) => "x".repeat(n), uuid: () => "00000000-0000-4000-8000-000000000000" };
  const realmGroupCols = [...(await tableColumns(db, "zerver_realm"))].filter(isRealmGroupSettingColumn);
  const rudCols = await tableColumns(db, "zerver_realmuserdefault");
  const account = userAccountValues({
    id: 0, password: "", dateJoined: epoch, deliveryEmail: "", email: "", fullName: "", tosVersion: null, apiKey: "",
    uuid: "", botType: null, role: Role.MEMBER, isMirrorDummy: false, canForgeSender: false, canCreateUsers: false,
    timezone: "", avatarSource: "G", botOwnerId: null, realmId: 0,
  });
  const channel = channelRowValues({
    name: "", when: epoch, description: "", renderedDescription: "", inviteOnly: false, historyPublic: true,
    isWebPublic: false, messageRetentionDays: null, creatorId: null, realmId: 0,
  });
  const supplied: [string, string[]][] = [
    ["zerver_realm", [...Object.keys(realmRowValues({ stringId: "" }, { name: "", internal: false, dateCreated: epoch, random: fixed })), ...realmGroupCols]],
    ["zerver_realmuserdefault", [...Object.keys(USER_SETTING_DEFAULTS), ...Object.keys(REALM_USER_DEFAULT_OVERRIDES), "realm_id"]],
    // Humans also get every setting RealmUserDefault has (copy_default_settings).
    ["zerver_userprofile", [...Object.keys(USER_SETTING_DEFAULTS), ...rudCols, "default_language", ...Object.keys(account)]],
    ["zerver_usergroup", ["realm_id"]],
    ["zerver_namedusergroup", Object.keys(systemGroupValues(0, "", "", 0, 0))],
    ["zerver_realmauditlog", Object.keys(auditValues({ realmId: 0, eventType: 0, eventTime: epoch }))],
    ["zerver_stream", [...Object.keys(channel), ...Object.keys(STREAM_GROUP_SETTING_DEFAULTS)]],
    ["zerver_recipient", ["type_id", "type"]],
    ["zerver_subscription", Object.keys(subscriptionValues(0, 0, true))],
    ["zerver_defaultstream", ["realm_id", "stream_id"]],
    ["zerver_realmauthenticationmethod", ["name", "realm_id"]],
    ["zerver_presencesequence", ["last_update_id", "realm_id"]],
    ["zerver_usergroupmembership", ["user_group_id", "user_profile_id"]],
    ["zerver_groupgroupmembership", ["supergroup_id", "subgroup_id"]],
    ["zerver_usermessage", ["flags", "message_id", "user_profile_id"]],
  ];
  const problems: string[] = [];
  for (const [table, keys] of supplied) problems.push(...missingRequired(table, await requiredColumns(db, table), keys));
  const unknownGroups = realmGroupCols.filter((c) => !REALM_GROUP_SETTING_DEFAULTS[c]).map((c) => `zerver_realm.${c} (group setting)`);
  problems.push(...unknownGroups);
  if (!problems.length) return null;
  return (
    "Creating organizations and users is not supported on this database: zulip-manage does not know the value this " +
    `Zulip release would give ${problems.join(", ")}. Use the Zulip server's own manage.py.`
  );
}

/** ScheduledEmail.type */
export const ScheduledEmailType = { WELCOME: 1, DIGEST: 2, INVITATION_REMINDER: 3 } as const;

/** Realm.ORG_TYPES[...]["onboarding_zulip_guide_url"] by org type id. */
const ONBOARDING_GUIDE: Record<number, { url: string; reference: string } | undefined> = {
  10: { url: "https://zulip.com/for/business/", reference: "business" },
  20: { url: "https://zulip.com/for/open-source/", reference: "opensource" },
  30: { url: "https://zulip.com/for/education/", reference: "education" },
  35: { url: "https://zulip.com/for/education/", reference: "education" },
  40: { url: "https://zulip.com/for/research/", reference: "research" },
  50: { url: "https://zulip.com/for/events/", reference: "event" },
  60: { url: "https://zulip.com/for/communities/", reference: "nonprofit" },
  90: { url: "https://zulip.com/for/communities/", reference: "community" },
};
const COMMUNITIES_GUIDE = "https://zulip.com/for/communities/";

/** The weekday (1 = Monday … 7 = Sunday) of `when` in a time zone (UTC when unset or unknown). */
function isoWeekday(when: Date, timezone: string): number {
  let name: string;
  try {
    name = new Intl.DateTimeFormat("en-US", { timeZone: timezone || "UTC", weekday: "short" }).format(when);
  } catch {
    name = new Intl.DateTimeFormat("en-US", { timeZone: "UTC", weekday: "short" }).format(when);
  }
  return ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].indexOf(name) + 1;
}

/** get_onboarding_email_schedule(user): delays in milliseconds, never landing on a weekend. */
export function onboardingEmailSchedule(dateJoined: Date, timezone: string): Record<string, number> {
  const d = (days: number) => (days * 24 - 1) * 3600_000;
  const s: Record<string, number> = {
    onboarding_zulip_topics: d(2),
    onboarding_zulip_guide: d(4),
    onboarding_team_to_zulip: d(6),
  };
  switch (isoWeekday(dateJoined, timezone)) {
    case 1:
      s.onboarding_team_to_zulip = d(8);
      break;
    case 2:
    case 3:
      s.onboarding_zulip_guide = d(6);
      s.onboarding_team_to_zulip = d(8);
      break;
    case 4:
      s.onboarding_zulip_topics = d(4);
      s.onboarding_zulip_guide = d(6);
      s.onboarding_team_to_zulip = d(8);
      break;
    case 5:
      s.onboarding_zulip_topics = d(4);
      s.onboarding_zulip_guide = d(6);
      s.onboarding_team_to_zulip = d(10);
      break;
    case 7:
      s.onboarding_team_to_zulip = d(8);
      break;
  }
  return s;
}

export interface ServerUrls {
  /** realm.url of the user's realm */
  realmUrl: string;
  /** settings.ROOT_DOMAIN_URI */
  rootDomainUrl: string;
  /** settings.EXTERNAL_URI_SCHEME */
  externalUriScheme: string;
  /** settings.EXTERNAL_HOST */
  externalHost: string;
  /** settings.CORPORATE_ENABLED */
  corporateEnabled?: boolean;
  /** settings.WELCOME_EMAIL_SENDER ({"name", "email"}) or null (the default). */
  welcomeEmailSender?: { name: string; email: string } | null;
}

export interface WelcomeEmailsResult {
  unsubscribeConfirmationId: number;
  unsubscribeLink: string;
  /** ScheduledEmail rows: id, template and when. */
  scheduled: { id: number; template: string; scheduledAt: Date }[];
}

/**
 * enqueue_welcome_emails(user, realm_creation): the one-click unsubscribe link (an UNSUBSCRIBE
 * confirmation of the user, valid 1,000,000 days) and the onboarding ScheduledEmail rows with
 * their recipient rows: onboarding_zulip_topics (unless the address has an account elsewhere on
 * the server), onboarding_zulip_guide (for org types with a guide; the communities guide only
 * for administrators) and, for the organization's creator, onboarding_team_to_zulip.
 */
export async function enqueueWelcomeEmails(
  db: Queryable,
  userId: number,
  urls: ServerUrls,
  opts: { realmCreation?: boolean; now?: Date; unsubscribeKey?: string } = {},
): Promise<WelcomeEmailsResult> {
  const now = opts.now ?? new Date();
  const { rows } = await db.query(
    `SELECT u.id, u.realm_id, u.full_name, u.delivery_email, u.role, u.date_joined, u.timezone, r.name AS realm_name, r.org_type
       FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id WHERE u.id = $1`,
    [userId],
  );
  const u = rows[0];
  if (!u) throw new Error(`user ${userId} does not exist`);
  const realmId = Number(u.realm_id);
  // Accounts with this address in other organizations (Django's delivery_email__iexact). Asked
  // realm by realm, the (realm_id, upper(delivery_email)) unique index answers it; a plain
  // upper() comparison would read every user of the server.
  const others = await db.query(
    `SELECT count(*)::int AS n FROM zerver_userprofile
      WHERE realm_id IN (SELECT id FROM zerver_realm) AND upper(delivery_email::text) = upper($1) AND id <> $2`,
    [u.delivery_email, userId],
  );
  // one_click_unsubscribe_link(user, "welcome")
  const ct = await db.query(`SELECT id FROM django_content_type WHERE app_label = 'zerver' AND model = 'userprofile'`);
  if (!ct.rows.length) throw new Error("django_content_type has no zerver.userprofile row");
  const key = opts.unsubscribeKey ?? generateConfirmationKey();
  const conf = await db.query(
    `INSERT INTO confirmation_confirmation (content_type_id, object_id, date_sent, confirmation_key, expiry_date, realm_id, type)
     VALUES ($1, $2, $3, $4, $3::timestamptz + interval '1000000 days', $5, 4) RETURNING id`,
    [Number(ct.rows[0].id), userId, now, key, realmId],
  );
  const unsubscribeLink = `${urls.realmUrl}/accounts/unsubscribe/welcome/${key}`;
  const schedule = onboardingEmailSchedule(u.date_joined, u.timezone ?? "");
  const common = {
    realm_url: urls.realmUrl,
    realm_name: u.realm_name,
    root_domain_url: urls.rootDomainUrl,
    external_url_scheme: urls.externalUriScheme,
    external_host: urls.externalHost,
    user_name: u.full_name,
    corporate_enabled: urls.corporateEnabled ?? false,
  };
  const emails: { template: string; context: Record<string, unknown> }[] = [];
  if (others.rows[0].n === 0) {
    emails.push({
      template: "onboarding_zulip_topics",
      context: {
        ...common,
        unsubscribe_link: unsubscribeLink,
        move_messages_link: urls.realmUrl + "/help/move-content-to-another-topic",
        rename_topics_link: urls.realmUrl + "/help/rename-a-topic",
        move_channels_link: urls.realmUrl + "/help/move-content-to-another-channel",
      },
    });
  }
  const guide = ONBOARDING_GUIDE[Number(u.org_type)];
  const isAdmin = Number(u.role) === Role.OWNER || Number(u.role) === Role.ADMINISTRATOR;
  if (guide && !(guide.url === COMMUNITIES_GUIDE && !isAdmin)) {
    emails.push({
      template: "onboarding_zulip_guide",
      context: { ...common, unsubscribe_link: unsubscribeLink, organization_type: guide.reference, zulip_guide_link: guide.url },
    });
  }
  if (opts.realmCreation) {
    emails.push({
      template: "onboarding_team_to_zulip",
      context: {
        ...common,
        unsubscribe_link: unsubscribeLink,
        get_organization_started: urls.realmUrl + "/help/moving-to-zulip",
        invite_users: urls.realmUrl + "/help/invite-users-to-join",
        trying_out_zulip: urls.realmUrl + "/help/trying-out-zulip",
        why_zulip: "https://zulip.com/why-zulip/",
      },
    });
  }
  const sender = urls.welcomeEmailSender ?? null;
  const scheduled: WelcomeEmailsResult["scheduled"] = [];
  for (const e of emails) {
    const data = {
      template_prefix: `zerver/emails/${e.template}`,
      from_name: sender ? sender.name : null,
      from_address: sender ? sender.email : "SUPPORT",
      language: null,
      context: e.context,
    };
    const at = new Date(now.getTime() + schedule[e.template]);
    const row = await db.query(
      `INSERT INTO zerver_scheduledemail (scheduled_timestamp, data, address, type, realm_id) VALUES ($1, $2, NULL, $3, $4) RETURNING id`,
      [at, JSON.stringify(data), ScheduledEmailType.WELCOME, realmId],
    );
    const id = Number(row.rows[0].id);
    await db.query(`INSERT INTO zerver_scheduledemail_users (scheduledemail_id, userprofile_id) VALUES ($1, $2)`, [id, userId]);
    scheduled.push({ id, template: e.template, scheduledAt: at });
  }
  return { unsubscribeConfirmationId: Number(conf.rows[0].id), unsubscribeLink, scheduled };
}

/** confirmation.models.generate_key(): 24 characters of lowercase base32. */
function generateConfirmationKey(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  const bytes = crypto().randomBytes(15);
  let bits = 0;
  let value = 0;
  let out = "";
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  return out;
}

export interface NewHumanUserSteps {
  /** PreregistrationUser rows of this address in the realm marked revoked. */
  preregistrationsRevoked: number;
  /** Invitation reminder emails to this address that were removed. */
  invitationRemindersRemoved: number;
  welcomeEmails: WelcomeEmailsResult | null;
  onboardingStepAdded: boolean;
}

/**
 * The database steps of process_new_human_user that follow the subscriptions createUser already
 * made (no invitation involved, as for manage.py create_user / create_realm): other
 * PreregistrationUsers of the address revoked, scheduled invitation reminders to it cleared,
 * the welcome ScheduledEmails (when the realm sends welcome emails) and the
 * "visibility_policy_banner" OnboardingStep. Messages (the signup announcement, Welcome Bot's)
 * and the queued "account registered" email are not part of this.
 */
export async function processNewHumanUserRows(
  db: Queryable,
  userId: number,
  urls: ServerUrls,
  opts: { realmCreation?: boolean; now?: Date } = {},
): Promise<NewHumanUserSteps> {
  const now = opts.now ?? new Date();
  const { rows } = await db.query(
    `SELECT u.delivery_email, u.realm_id, r.send_welcome_emails FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id WHERE u.id = $1`,
    [userId],
  );
  const u = rows[0];
  const revoked = await db.query(
    `UPDATE zerver_preregistrationuser SET status = 2 WHERE upper(email) = upper($1) AND realm_id = $2`,
    [u.delivery_email, Number(u.realm_id)],
  );
  // clear_scheduled_invitation_emails(email)
  await db.query(
    `DELETE FROM zerver_scheduledemail_users WHERE scheduledemail_id IN
       (SELECT id FROM zerver_scheduledemail WHERE upper(address) = upper($1) AND type = $2)`,
    [u.delivery_email, ScheduledEmailType.INVITATION_REMINDER],
  );
  const cleared = await db.query(`DELETE FROM zerver_scheduledemail WHERE upper(address) = upper($1) AND type = $2`, [
    u.delivery_email,
    ScheduledEmailType.INVITATION_REMINDER,
  ]);
  const welcomeEmails = u.send_welcome_emails ? await enqueueWelcomeEmails(db, userId, urls, { realmCreation: opts.realmCreation, now }) : null;
  const step = await db.query(
    `INSERT INTO zerver_onboardingstep (onboarding_step, timestamp, user_id)
     SELECT 'visibility_policy_banner', $2, $1
      WHERE NOT EXISTS (SELECT 1 FROM zerver_onboardingstep WHERE user_id = $1 AND onboarding_step = 'visibility_policy_banner')
     RETURNING id`,
    [userId, now],
  );
  return {
    preregistrationsRevoked: revoked.rowCount ?? 0,
    invitationRemindersRemoved: cleared.rowCount ?? 0,
    welcomeEmails,
    onboardingStepAdded: step.rows.length > 0,
  };
}

/** The RealmAuditLog rows about a user (for a user created in this transaction: the rows its creation wrote). */
export async function auditLogIdsOfUser(q: Queryable, userId: number): Promise<number[]> {
  const { rows } = await q.query("SELECT id FROM zerver_realmauditlog WHERE modified_user_id = $1 ORDER BY id", [userId]);
  return rows.map((r: any) => Number(r.id));
}
