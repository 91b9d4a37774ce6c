// Which Zulip server release a database belongs to, judged from its `django_migrations` rows
// for the `zerver` app, and the schema differences between the releases zulip-manage supports
// (10.x, 11.x, 12.x). Facts come from the zulip/zulip repository (zerver/migrations,
// confirmation/migrations, docs/overview/changelog.md); test/fixtures/README.md has the
// same table with the evidence.
//
// Backports: Zulip sometimes backports a migration to a stable branch. It keeps its number
// from `main` (which is higher than the branch's own last migration) and is re-parented onto
// the branch's last migration; `main` then gets a merge migration. So the newest migration of a
// 10.3+ database is 0700, of an 11.3+ one 0753, and a 9.x database can carry 0576/0622/0639,
// which are above the 10.0 floor. releaseForMigration() knows these numbers;
// releaseForMigrations() (all applied names) is the most robust check.
import path from "node:path";
import { READ_LIMITS, readBounded } from "../lib/files.js";

/** A major release series and the zerver migrations it ships. */
export interface ZulipRelease {
  /** "10.0" */
  release: string;
  /** "10.x" */
  series: string;
  /** First zerver migration written for this release (on `main` after the previous release). */
  firstZerverMigration: string;
  /** Newest zerver migration of the X.0 release. */
  lastZerverMigration: string;
  /** Migrations from `main` backported to later X.y point releases (not in X.0). */
  backports: readonly string[];
}

export const RELEASES: readonly ZulipRelease[] = [
  {
    release: "10.0",
    series: "10.x",
    firstZerverMigration: "0570_namedusergroup_can_manage_group",
    lastZerverMigration: "0697_empty_topic_name_for_dms_from_third_party_imports",
    backports: ["0700_fix_user_role_system_groups"], // 10.3
  },
  {
    release: "11.0",
    series: "11.x",
    firstZerverMigration: "0698_scheduledmessage_request_timestamp",
    lastZerverMigration: "0751_externalauthid_zerver_user_externalauth_uniq",
    backports: ["0753_remove_google_blob_emojiset"], // 11.3
  },
  {
    release: "12.0",
    series: "12.x",
    firstZerverMigration: "0752_remove_stream_is_in_zephyr_realm",
    lastZerverMigration: "0800_cleanup_case_mismatched_legacy_apns_tokens",
    backports: [],
  },
];

/** Zulip 9.x backports whose numbers lie above the 10.0 floor. */
export const OLDER_BACKPORTS: readonly string[] = ["0576_backfill_imageattachment", "0622_backfill_imageattachment_again", "0639_zh_hant_tw_rename"];

/** Newest zerver migration of Zulip 9.x before its backports (the squash 0001_squashed_0569 ends here). */
export const LAST_ZULIP9_MIGRATION = "0569_remove_userprofile_tutorial_status";

/** Number of the first zerver migration of Zulip 10.0: databases without it are too old. */
export const ZERVER_MIGRATION_FLOOR = 570;

export const OLDER_THAN_SUPPORTED = "older than 10.0";
export const NEWER_THAN_SUPPORTED = "newer than 12";

/** Leading number of a migration name ("0700_fix_..." → 700); NaN when there is none. */
export function migrationNumber(name: string): number {
  const m = /^(\d{4,})_/.exec(name);
  return m ? Number(m[1]) : Number.NaN;
}

const BACKPORT_SERIES = new Map<number, string>([
  ...OLDER_BACKPORTS.map((n) => [migrationNumber(n), OLDER_THAN_SUPPORTED] as [number, string]),
  ...RELEASES.flatMap((r) => r.backports.map((n) => [migrationNumber(n), r.series] as [number, string])),
]);

/**
 * The release series of a database whose newest applied zerver migration has number `n`:
 * "10.x", "11.x", "12.x", "older than 10.0" or "newer than 12". Numbers of known backports
 * map to the stable series that received them (700 → "10.x", 753 → "11.x", 639 → older).
 * Numbers between releases (development snapshots of `main`) map to the release they led to.
 */
export function releaseForMigration(n: number): string {
  if (!Number.isFinite(n)) throw new RangeError(`not a migration number: ${n}`);
  const backport = BACKPORT_SERIES.get(n);
  if (backport) return backport;
  if (n < ZERVER_MIGRATION_FLOOR) return OLDER_THAN_SUPPORTED;
  for (const r of RELEASES) {
    if (n <= migrationNumber(r.lastZerverMigration)) return r.series;
  }
  return NEWER_THAN_SUPPORTED;
}

/** Whether a database with newest zerver migration number `n` is one zulip-manage supports. */
export function isSupportedMigration(n: number): boolean {
  const series = releaseForMigration(n);
  return series !== OLDER_THAN_SUPPORTED && series !== NEWER_THAN_SUPPORTED;
}

/** Highest migration number among `names`, ignoring known backports (NaN when there is none). */
export function latestMainlineMigration(names: Iterable<string>): number {
  const backports = new Set([...OLDER_BACKPORTS, ...RELEASES.flatMap((r) => r.backports)]);
  let max = Number.NaN;
  for (const name of names) {
    if (backports.has(name)) continue;
    const n = migrationNumber(name);
    if (Number.isFinite(n) && !(n <= max)) max = n;
  }
  return max;
}

/**
 * The release series of a database, given the names of all its applied zerver migrations
 * (`SELECT name FROM django_migrations WHERE app = 'zerver'`). Unaffected by backports.
 */
export function releaseForMigrations(names: Iterable<string>): string {
  const n = latestMainlineMigration(names);
  if (!Number.isFinite(n)) return OLDER_THAN_SUPPORTED;
  return releaseForMigration(n);
}

/** Compare two series strings like "10.x" < "12.x" (for feature checks). */
export function seriesAtLeast(series: string, minimum: string): boolean {
  const a = Number.parseInt(series, 10);
  const b = Number.parseInt(minimum, 10);
  if (series === NEWER_THAN_SUPPORTED) return true;
  if (!Number.isFinite(a) || !Number.isFinite(b)) return false;
  return a >= b;
}

/** A schema difference between supported releases that zulip-manage has to care about. */
export interface SchemaChange {
  table: string;
  /** Column, or null when the whole table appears/disappears. */
  column: string | null;
  kind: "added" | "removed" | "renamed";
  /** For renames: the old column name. */
  oldName?: string;
  /** First series with the change applied ("10.x" = already true for every supported database). */
  series: string;
  app: "zerver" | "confirmation";
  migration: string;
}

/** Differences between Zulip 10.x, 11.x and 12.x in the tables zulip-manage writes most. */
export const SCHEMA_CHANGES: readonly SchemaChange[] = [
  // Already true on every supported release (listed because older docs mention them).
  {
    table: "zerver_userprofile",
    column: "can_change_user_emails",
    kind: "added",
    series: "10.x",
    app: "zerver",
    migration: "0616_userprofile_can_change_user_emails",
  },
  {
    table: "zerver_userprofile",
    column: "is_billing_admin",
    kind: "removed",
    series: "10.x",
    app: "zerver",
    migration: "0684_remove_userprofile_is_billing_admin",
  },
  // Zulip 11.0
  {
    table: "zerver_userprofile",
    column: "resolved_topic_notice_auto_read_policy",
    kind: "added",
    series: "11.x",
    app: "zerver",
    migration: "0703_realmuserdefault_resolved_topic_notice_auto_read_policy_and_more",
  },
  {
    table: "zerver_realmuserdefault",
    column: "resolved_topic_notice_auto_read_policy",
    kind: "added",
    series: "11.x",
    app: "zerver",
    migration: "0703_realmuserdefault_resolved_topic_notice_auto_read_policy_and_more",
  },
  {
    table: "zerver_realmauditlog",
    column: "modified_channel_folder_id",
    kind: "added",
    series: "11.x",
    app: "zerver",
    migration: "0707_realmauditlog_modified_channel_folder",
  },
  { table: "zerver_realm", column: "topics_policy", kind: "added", series: "11.x", app: "zerver", migration: "0710_realm_topics_policy" },
  { table: "zerver_realm", column: "mandatory_topics", kind: "removed", series: "11.x", app: "zerver", migration: "0713_remove_realm_mandatory_topics" },
  {
    table: "zerver_realm",
    column: "can_set_topics_policy_group_id",
    kind: "added",
    series: "11.x",
    app: "zerver",
    migration: "0714_realm_can_set_topics_policy_group",
  },
  {
    table: "zerver_userprofile",
    column: "web_left_sidebar_unreads_count_summary",
    kind: "added",
    series: "11.x",
    app: "zerver",
    migration: "0725_realmuserdefault_web_left_sidebar_unreads_count_summary_and_more",
  },
  {
    table: "zerver_realmuserdefault",
    column: "web_left_sidebar_unreads_count_summary",
    kind: "added",
    series: "11.x",
    app: "zerver",
    migration: "0725_realmuserdefault_web_left_sidebar_unreads_count_summary_and_more",
  },
  {
    table: "zerver_realm",
    column: "can_set_delete_message_policy_group_id",
    kind: "added",
    series: "11.x",
    app: "zerver",
    migration: "0737_realm_can_set_delete_message_policy_group",
  },
  {
    table: "zerver_realm",
    column: "require_e2ee_push_notifications",
    kind: "added",
    series: "11.x",
    app: "zerver",
    migration: "0743_realm_require_e2ee_push_notifications",
  },
  {
    table: "zerver_userprofile",
    column: "web_left_sidebar_show_channel_folders",
    kind: "added",
    series: "11.x",
    app: "zerver",
    migration: "0745_usersetting_web_left_sidebar_show_channel_folders",
  },
  {
    table: "zerver_realmuserdefault",
    column: "web_left_sidebar_show_channel_folders",
    kind: "added",
    series: "11.x",
    app: "zerver",
    migration: "0745_usersetting_web_left_sidebar_show_channel_folders",
  },
  { table: "zerver_realmcreationstatus", column: null, kind: "added", series: "11.x", app: "zerver", migration: "0747_realmcreationstatus" },
  { table: "confirmation_realmcreationkey", column: null, kind: "removed", series: "11.x", app: "confirmation", migration: "0017_delete_realmcreationkey" },
  {
    table: "zerver_realm",
    column: "welcome_message_custom_text",
    kind: "added",
    series: "11.x",
    app: "zerver",
    migration: "0750_multiuseinvite_welcome_message_custom_text_and_more",
  },
  // Zulip 12.0
  {
    table: "zerver_userprofile",
    column: "web_inbox_show_channel_folders",
    kind: "added",
    series: "12.x",
    app: "zerver",
    migration: "0757_realmuserdefault_web_inbox_show_channel_folders_and_more",
  },
  {
    table: "zerver_realmuserdefault",
    column: "web_inbox_show_channel_folders",
    kind: "added",
    series: "12.x",
    app: "zerver",
    migration: "0757_realmuserdefault_web_inbox_show_channel_folders_and_more",
  },
  { table: "zerver_userprofile", column: "is_imported_stub", kind: "added", series: "12.x", app: "zerver", migration: "0759_userprofile_is_imported_stub" },
  {
    table: "zerver_realm",
    column: "send_channel_events_messages",
    kind: "added",
    series: "12.x",
    app: "zerver",
    migration: "0761_realm_send_channel_events_messages",
  },
  {
    table: "zerver_realm",
    column: "owner_full_content_access",
    kind: "added",
    series: "12.x",
    app: "zerver",
    migration: "0762_realm_owner_full_content_access",
  },
  {
    table: "zerver_userprofile",
    column: "third_party_api_state",
    kind: "added",
    series: "12.x",
    app: "zerver",
    migration: "0767_rename_zoom_token_to_video_call_provider_tokens",
  },
  {
    table: "zerver_userprofile",
    column: "zoom_token",
    kind: "removed",
    series: "12.x",
    app: "zerver",
    migration: "0767_rename_zoom_token_to_video_call_provider_tokens",
  },
  { table: "zerver_realmauditlog", column: "scrubbed", kind: "added", series: "12.x", app: "zerver", migration: "0768_realmauditlog_scrubbed" },
  {
    table: "zerver_realm",
    column: "gif_rating_policy",
    kind: "renamed",
    oldName: "giphy_rating",
    series: "12.x",
    app: "zerver",
    migration: "0773_rename_giphy_rating_realm_gif_rating_policy",
  },
  { table: "zerver_realm", column: "default_avatar_source", kind: "added", series: "12.x", app: "zerver", migration: "0776_realm_default_avatar_source" },
  { table: "zerver_realm", column: "rendered_description", kind: "added", series: "12.x", app: "zerver", migration: "0777_realm_rendered_description" },
  {
    table: "zerver_realm",
    column: "rendered_description_version",
    kind: "added",
    series: "12.x",
    app: "zerver",
    migration: "0778_realm_rendered_description_version",
  },
  { table: "zerver_realm", column: "media_preview_size", kind: "added", series: "12.x", app: "zerver", migration: "0781_realm_image_thumbnail_size" },
  { table: "zerver_realm", column: "workplace_users_group_id", kind: "added", series: "12.x", app: "zerver", migration: "0785_realm_workplace_users_group" },
  { table: "zerver_userprofile", column: "is_deleted", kind: "added", series: "12.x", app: "zerver", migration: "0797_userprofile_is_deleted" },
  {
    table: "zerver_userprofile",
    column: "recipient_id",
    kind: "removed",
    series: "12.x",
    app: "zerver",
    migration: "0798_remove_userprofile_recipient_and_personal_recipients",
  },
];

/**
 * Whether `table` (and `column`, if given) exists in a database of release `series`,
 * according to SCHEMA_CHANGES. Returns undefined when SCHEMA_CHANGES says nothing about it.
 */
export function existsIn(series: string, table: string, column: string | null = null): boolean | undefined {
  for (const c of SCHEMA_CHANGES) {
    if (c.table !== table) continue;
    const applied = seriesAtLeast(series, c.series);
    if (c.column === column) {
      if (c.kind === "added") return applied;
      if (c.kind === "removed") return !applied;
      return applied; // renamed: the new name exists from c.series on
    }
    if (c.kind === "renamed" && column !== null && c.oldName === column) return !applied;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// The deployment's version.py

export interface ZulipVersionInfo {
  version: string | null;
  mergeBase: string | null;
  apiFeatureLevel: number | null;
}

/** Read ZULIP_VERSION, ZULIP_MERGE_BASE and API_FEATURE_LEVEL the way version.py computes them. */
export function readZulipVersion(deployDir: string): ZulipVersionInfo {
  const info: ZulipVersionInfo = { version: null, mergeBase: null, apiFeatureLevel: null };
  let text: string;
  try {
    text = readBounded(path.join(deployDir, "version.py"), READ_LIMITS.config, "version.py");
  } catch {
    return info;
  }
  const v = /^ZULIP_VERSION\s*=\s*["']([^"']+)["']/m.exec(text);
  const f = /^API_FEATURE_LEVEL\s*=\s*(\d+)/m.exec(text);
  if (f) info.apiFeatureLevel = Number(f[1]);
  let lines = [v ? v[1]! : "", ""];
  try {
    lines = [...readBounded(path.join(deployDir, "zulip-git-version"), READ_LIMITS.config, "zulip-git-version").split(/(?<=\n)/), "", ""];
  } catch {
    /* a plain release: version.py's literal, empty merge base */
  }
  info.version = lines[0]!.trim() || null;
  info.mergeBase = lines[1]!.trim();
  return info;
}

// ---------------------------------------------------------------------------------------------
// API feature levels

/**
 * The API feature level a database of each release has at least, keyed by the newest zerver
 * migration of that release, for when the deployment's version.py cannot be read. Only the
 * levels zulip-manage branches on matter (events: 377 peer_remove on deactivation, 378
 * unarchive events, 428 archived channels in that peer_remove, 433 is_imported_stub, 474 no
 * more realm_bot updates); each is a 10.0 / 11.0 / 12.0 release feature
 * (api_docs/changelog.md: 10.0 = FL 371, 11.0 = FL 421; all of 428-474 are listed under 12.0,
 * whose last migration is 0800). A development snapshot of main between two releases reads as
 * the older release's level.
 */
const FEATURE_LEVEL_BY_MIGRATION: ReadonlyArray<{ migration: string; featureLevel: number }> = [
  { migration: "0697_empty_topic_name_for_dms_from_third_party_imports", featureLevel: 371 }, // 10.0
  { migration: "0751_externalauthid_zerver_user_externalauth_uniq", featureLevel: 421 }, // 11.0
  { migration: "0800_cleanup_case_mismatched_legacy_apns_tokens", featureLevel: 474 }, // 12.0 (at least)
];

/** The feature level a database with newest mainline zerver migration `n` has at least. */
function featureLevelForMigration(n: number): number {
  let level = 371;
  for (const row of FEATURE_LEVEL_BY_MIGRATION) if (n >= migrationNumber(row.migration)) level = row.featureLevel;
  return level;
}

/**
 * The server's API feature level: API_FEATURE_LEVEL in the deployment's version.py when it
 * can be read (the exact level of the running code), else the migrations' lower bound.
 */
export function apiFeatureLevel(deployDir: string, zerverMigration: number | null): { level: number; source: "version.py" | "migrations" } {
  const fromFile = readZulipVersion(deployDir).apiFeatureLevel;
  if (fromFile !== null) return { level: fromFile, source: "version.py" };
  return { level: zerverMigration === null ? 474 : featureLevelForMigration(zerverMigration), source: "migrations" };
}
