// do_delete_user (zerver/actions/users.py; do_delete_user_core from 12.0): deactivate the user
// (bots first, deactivate-user.ts), then replace the account by a "Deleted User <id>"
// placeholder, its personal data gone. Zulip changed the algorithm in 12.0 (zulip/zulip#35477,
// plus the is_deleted column of migration 0797), so the database's release decides
// (deletionAlgorithm):
//
//  * Zulip 12.x ("overwrite", do_delete_user_core): in one transaction overwrite the account row
//    in place with the defaults of a fresh "Deleted User <id>" (deleteduser<id>@<fake domain>,
//    unusable password, new API key, is_active false, is_mirror_dummy and is_deleted true, every
//    setting at its model default; id, realm, date_joined, uuid, last_login, bot owner/type and
//    ToS version are kept); unsubscribe it from its channels (bulk_remove_subscriptions(...,
//    skip_events_for_removed_user=True): 303 audit rows, and the peer_remove events — plus, when
//    the realm restricts user access, realm_user remove events — to the other users) and
//    hard-delete its channel Subscription rows; delete its UserMessage, ExternalAuthID,
//    SavedSnippet, ScheduledMessage and Draft rows; scrub the extra_data of the 124/125/132
//    audit rows about it; move every message it sent to the archive tables
//    (do_delete_messages_by_sender(user) → move_messages_to_archive(ids, user.realm,
//    chunk_size=100, skip_notify=False), retention.ts Archiver.moveMessagesToArchive: per 100
//    messages a MANUAL ArchiveTransaction of the user's realm, the archived messages/user
//    messages/reactions/submessages/attachments, delete_messages' delete_message events,
//    first_message_id updates and push-notification removals, the messages deleted, then the
//    attachments with neither messages nor scheduled messages deleted); write the 106 audit
//    row. Its group-DM subscriptions stay, so group conversations keep their participant.
//  * Zulip 10.x / 11.x ("recreate"): in one transaction delete the account row with everything
//    Django's on_delete rules cascade to (src/db/ondelete.ts) plus its personal Recipient (and
//    so every 1:1 DM to it), recreate a "Deleted User <id>" account with the same id as
//    create_user() builds it (settings from RealmUserDefault, personal recipient and its
//    subscription), give it back the group-DM subscriptions, and write the 106 row. No events
//    beyond the deactivation's (the function's docstring: clients are not live-updated about
//    the placeholder).
//
// Before anything is written, the foreign keys in the catalog are checked against the reviewed
// on_delete table (prepareUserDeletion): a reference zulip-manage does not know makes it refuse
// (naming table.column) with nothing changed. The user row is locked (lockUserRow, FOR UPDATE)
// and re-read in the deletion transaction. After the commit the memcached entries Zulip would
// flush are deleted (flush_user_profile with update_fields=None, for the old and the new state,
// plus the post_delete caches of deleted attachments, mutes and custom emoji), and any login
// session still belonging to the account is deleted.
//
//   prepareUserDeletion(db, users, settings)  the algorithm, the catalog check, per user its
//                                              active bots, realm and placeholder settings
//   planUserDeletion(db, prepared, user)      what would be deleted now (rolled back)
//   doDeleteUser(db, prepared, user, opts)    the deletion
//
// Zulip's source for the archiving, per release: 10.x / 11.x do_delete_user does not archive (the
// sender's messages go with the account's cascade); their do_delete_messages_by_sender (used by
// do_scrub_realm only) passes no realm (ArchiveTransaction.realm NULL). 12.x (juno-5/doer, a
// 12.0-dev fork at API feature level 460, and xandylearning/zulip at 12.0-beta1, feature level
// 489): do_delete_user_core calls do_delete_messages_by_sender(user_profile), which is
// move_messages_to_archive(message_ids, user.realm, chunk_size=STREAM_MESSAGE_BATCH_SIZE,
// skip_notify=skip_notify) with skip_notify defaulting to False (only do_scrub_realm passes
// True): ArchiveTransactions of the user's realm, and retention's delete_messages sends its
// events (zulip/zulip PR #35848, feature level 452) as it does for the retention policy.
import { AuditLogEventType, insertAuditLog, type RoleCountBaseline } from "../audit.js";
import { tableColumns } from "../../db/db.js";
import { type CacheInvalidation, cacheKeys, type CacheUser } from "../cache.js";
import { cryptoRandom, type RandomSource } from "../../lib/random.js";
import { unusablePassword } from "../password.js";
import { insertRows } from "../rows.js";
import { NOT_COPIED_FROM_REALM_DEFAULTS, USER_SETTING_DEFAULTS } from "../user-settings.js";
import { fakeEmailDomain } from "./create-user.js";
import { lastMessageId } from "./message-send.js";
import type { Db, Queryable } from "../../db/db.js";
import { CommandError } from "../../lib/errors.js";
import { activeBotsOwnedBy, lockUserRow, type RealmRef, realmRef, type UserProfile } from "../lookup.js";
import { EmailAddressVisibility, RecipientType, subscriptionValues } from "../models.js";
import {
  assertCovered,
  CascadeDeletion,
  cascadeClosure,
  catalogForeignKeys,
  type CatalogForeignKey,
  type DeletionPlan,
  mergePlans,
} from "../../db/ondelete.js";
import { deleteUserSessions } from "../sessions.js";
import { realmHost, type ZulipSettings } from "../../config/settings.js";
import { doDeactivateUser } from "./deactivate-user.js";
import { generateApiKey } from "./regenerate-api-key.js";
import { type EventDelivery, FL, type Notify } from "../../services/events.js";
import { quoteIdent } from "../../db/sql.js";
import { ROLES } from "../roles.js";
import { type Archiver, type MessageDeletionNotify, messageArchiver, type MovedToArchive, STREAM_MESSAGE_BATCH_SIZE } from "./retention.js";
import { usedUploadSpaceKeys } from "./attachments.js";
import { sendDeletedUserSubscriptionRemovalEvents } from "../events/user-events.js";

export type DeletionAlgorithm = "overwrite" | "recreate";

/** Audit events whose extra_data do_delete_user_core scrubs. */
const SCRUBBED_EVENTS = [AuditLogEventType.USER_EMAIL_CHANGED, AuditLogEventType.USER_FULL_NAME_CHANGED, AuditLogEventType.USER_SETTING_CHANGED];
/** do_delete_user_core's fks_to_delete, in its order (table, column). */
const OVERWRITE_DELETES: [string, string][] = [
  ["zerver_usermessage", "user_profile_id"],
  ["zerver_externalauthid", "user_id"],
  ["zerver_savedsnippet", "user_profile_id"],
  ["zerver_scheduledmessage", "sender_id"],
  ["zerver_draft", "user_profile_id"],
];

/** Columns the overwrite keeps (model_to_dict exclude list of do_delete_user_core). */
const OVERWRITE_KEEPS = new Set(["id", "date_joined", "realm_id", "recipient_id", "uuid", "last_login"]);

export interface DeletionSettings {
  /** realm.host for the user's realm. */
  realmHost: string;
  /** settings.FAKE_EMAIL_DOMAIN */
  fakeEmailDomain: string;
}

export interface PlaceholderInfo {
  id: number;
  email: string;
  delivery_email: string;
  full_name: string;
  is_active: boolean;
  is_mirror_dummy: boolean;
  is_deleted: boolean | null;
  recipient_id: number | null;
}

export interface UserDeletionResult {
  user: { id: number; email: string; full_name: string; realm_id: number };
  active_bots: number;
  deleted: boolean;
  error: string | null;
  deactivated: { user: boolean; bots: number[]; sessions_deleted: number } | null;
  rows_deleted: Record<string, number>;
  rows_set_null: Record<string, number>;
  rows_archived: Record<string, number>;
  subscriptions_deactivated: number;
  audit_rows_scrubbed: number;
  placeholder: PlaceholderInfo | null;
  /** Columns of zerver_userprofile zulip-manage does not know (12.x): left as they were. */
  unknown_columns_kept?: string[];
  audit_log_ids: number[];
  sessions_deleted: number;
}

/** Zulip 12.x keeps the row and overwrites it; 10.x / 11.x delete and recreate it. */
async function deletionAlgorithm(db: Db): Promise<DeletionAlgorithm> {
  return (await db.hasColumn("zerver_userprofile", "is_deleted")) ? "overwrite" : "recreate";
}

/** The tables a deletion may remove rows from (for the up-front coverage check). */
function deletionRoots(algorithm: DeletionAlgorithm): string[] {
  // zerver_userprofile is checked in both cases: an unknown reference to users means this
  // zulip-manage does not know the schema well enough to change accounts.
  return algorithm === "recreate"
    ? ["zerver_userprofile", "zerver_recipient"]
    : ["zerver_userprofile", "zerver_subscription", ...OVERWRITE_DELETES.map(([t]) => t), "zerver_message", "zerver_attachment"];
}

/** Which of these tables exist (in the search path), in one query. */
async function existingTables(q: Queryable, tables: string[]): Promise<Set<string>> {
  const { rows } = await q.query("SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NOT NULL", [tables]);
  return new Set(rows.map((r) => r.t as string));
}

/** A table's columns in table order (the connection's catalog cache, src/db/db.ts). */
async function columnsOf(q: Queryable, table: string): Promise<string[]> {
  return [...(await tableColumns(q, table))];
}

/** Django's Address(username=…, domain=…).addr_spec after UserManager.normalize_email. */
function deletedUserEmail(userId: number, s: DeletionSettings): string {
  return `deleteduser${userId}@${fakeEmailDomain(s.realmHost, s.fakeEmailDomain).toLowerCase()}`;
}

/** The settings a deletion needs, from the Zulip configuration. */
function deletionSettings(settings: ZulipSettings, realm: { string_id: string }): DeletionSettings {
  // settings.FAKE_EMAIL_DOMAIN as Zulip computes it ('' in settings.py stays '': not a valid domain).
  return { realmHost: realmHost(settings, realm.string_id), fakeEmailDomain: settings.get("FAKE_EMAIL_DOMAIN") };
}

// ---------------------------------------------------------------------------------------------
// 12.x: overwrite in place

/** Columns every "Deleted User <id>" placeholder gets, whichever deletion algorithm made it. */
const PLACEHOLDER_PROFILE = {
  role: ROLES.MEMBER,
  long_term_idle: false,
  last_active_message_id: null,
  is_mirror_dummy: true,
  can_forge_sender: false,
  can_create_users: false,
  can_change_user_emails: false,
  is_billing_admin: false,
  last_reminder: null,
  rate_limits: "",
  default_all_public_streams: false,
  timezone: "",
  avatar_source: "G",
  avatar_version: 1,
  avatar_hash: null,
} as const;

/** The column values do_delete_user_core writes over the account (a fresh create_user_profile()). */
function overwriteValues(
  user: UserProfile,
  columns: string[],
  s: DeletionSettings,
  random: RandomSource = cryptoRandom,
): { values: Record<string, unknown>; unknown: string[] } {
  const email = deletedUserEmail(user.id, s);
  const known: Record<string, unknown> = {
    ...USER_SETTING_DEFAULTS,
    // create_user_profile(..., timezone=<model default>, default_language=<model default>,
    // email_address_visibility=EVERYONE)
    default_language: "en",
    email_address_visibility: EmailAddressVisibility.EVERYONE,
    password: unusablePassword(random),
    is_superuser: false,
    delivery_email: email,
    email,
    full_name: `Deleted User ${user.id}`,
    tos_version: user.tos_version ?? null,
    api_key: generateApiKey((n) => random.alnum(n)),
    is_staff: false,
    is_active: false,
    is_bot: user.bot_type !== null && user.bot_type !== undefined,
    bot_type: user.bot_type ?? null,
    ...PLACEHOLDER_PROFILE,
    bot_owner_id: user.bot_owner_id ?? null,
    default_events_register_stream_id: null,
    default_sending_stream_id: null,
    is_imported_stub: false,
    third_party_api_state: "{}",
    zoom_token: null,
    is_deleted: true,
  };
  const values: Record<string, unknown> = {};
  const unknown: string[] = [];
  for (const c of columns) {
    if (OVERWRITE_KEEPS.has(c)) continue;
    if (c in known) values[c] = known[c];
    else unknown.push(c);
  }
  return { values, unknown };
}

interface Collected {
  plan: DeletionPlan;
  archived: Record<string, number>;
  subscriptionsDeactivated: number;
  scrubbed: number;
  auditIds: number[];
  placeholder: PlaceholderInfo | null;
  unknownColumns: string[];
  /** Extra cache keys (post_delete signals). */
  cacheKeys: string[];
  /** Bots whose bot_owner was cleared (their cached profiles). */
  orphanedBots: (UserProfile & CacheUser)[];
}

function emptyCollected(): Collected {
  return {
    plan: { deleted: {}, setNull: {} },
    archived: {},
    subscriptionsDeactivated: 0,
    scrubbed: 0,
    auditIds: [],
    placeholder: null,
    unknownColumns: [],
    cacheKeys: [],
    orphanedBots: [],
  };
}

/**
 * The attachments about to be deleted: Attachment's post_delete flush_used_upload_space_cache
 * flushes realm_used_upload_space of the owner's realm (collected before the owners may go).
 */
async function attachmentCacheKeys(q: Queryable, del: CascadeDeletion): Promise<string[]> {
  const t = del.tempTable("zerver_attachment");
  return t ? usedUploadSpaceKeys(q, `SELECT id FROM ${t}`) : [];
}

async function muteAndEmojiCacheKeys(q: Queryable, del: CascadeDeletion): Promise<string[]> {
  const keys: string[] = [];
  const mutes = del.tempTable("zerver_muteduser");
  if (mutes) {
    const { rows } = await q.query(`SELECT DISTINCT muted_user_id FROM zerver_muteduser WHERE id IN (SELECT id FROM ${mutes}) ORDER BY 1`);
    keys.push(...rows.map((r) => cacheKeys.mutingUsers(r.muted_user_id)));
  }
  const emoji = del.tempTable("zerver_realmemoji");
  if (emoji) {
    const { rows } = await q.query(`SELECT DISTINCT realm_id FROM zerver_realmemoji WHERE id IN (SELECT id FROM ${emoji}) ORDER BY 1`);
    keys.push(...rows.map((r) => cacheKeys.realmEmoji(r.realm_id)));
  }
  return keys;
}

/** The messages do_delete_messages_by_sender archives: Message.objects.filter(realm_id=…, sender=user).order_by("id"). */
const SENT_MESSAGES = "SELECT id FROM zerver_message WHERE realm_id = $1 AND sender_id = $2";

/** MovedToArchive as the rows_archived counts of --json (per archive table, none when 0). */
function archivedCounts(m: MovedToArchive): Record<string, number> {
  const counts: Record<string, number> = {
    zerver_archivetransaction: m.transactions.length,
    zerver_archivedmessage: m.messages,
    zerver_archivedreaction: m.reactions,
    zerver_archivedsubmessage: m.submessages,
    zerver_archivedusermessage: m.user_messages,
    zerver_archivedattachment: m.archived_attachments,
    zerver_archivedattachment_messages: m.attachment_messages,
  };
  for (const [k, v] of Object.entries(counts)) if (!v) delete counts[k];
  return counts;
}

/**
 * Dry run of step 5: what the archive tables would receive, and the attachments that would be
 * left without messages. (The messages themselves are in the dry run's one deletion.)
 */
async function planMessageDeletion(q: Queryable, realmId: number, userId: number, out: Collected): Promise<DeletionPlan> {
  const sent = `SELECT id FROM zerver_message WHERE realm_id = ${Number(realmId)} AND sender_id = ${Number(userId)}`;
  const count = async (sql: string) => Number((await q.query(`SELECT count(*)::int AS n FROM (${sql}) x`)).rows[0].n);
  const n = await count(sent);
  if (!n) return { deleted: {}, setNull: {} };
  out.archived = {
    zerver_archivetransaction: Math.ceil(n / STREAM_MESSAGE_BATCH_SIZE),
    zerver_archivedmessage: n,
    zerver_archivedreaction: await count(`SELECT id FROM zerver_reaction WHERE message_id IN (${sent})`),
    zerver_archivedsubmessage: await count(`SELECT id FROM zerver_submessage WHERE message_id IN (${sent})`),
    // The user's own UserMessage rows are deleted (step 3) before the messages are archived.
    zerver_archivedusermessage: await count(`SELECT id FROM zerver_usermessage WHERE message_id IN (${sent}) AND user_profile_id <> ${Number(userId)}`),
    zerver_archivedattachment: await count(
      `SELECT a.id FROM zerver_attachment a WHERE a.id IN (SELECT attachment_id FROM zerver_attachment_messages WHERE message_id IN (${sent}))
         AND a.id NOT IN (SELECT id FROM zerver_archivedattachment)`,
    ),
    zerver_archivedattachment_messages: await count(`SELECT id FROM zerver_attachment_messages WHERE message_id IN (${sent})`),
  };
  for (const [k, v] of Object.entries(out.archived)) if (!v) delete out.archived[k];
  // Left with neither messages nor scheduled messages: the user's own scheduled messages are
  // deleted (step 3) before the archiving, so only other senders' keep an attachment.
  const orphans = await count(
    `SELECT a.id FROM zerver_attachment a
      WHERE a.id IN (SELECT attachment_id FROM zerver_attachment_messages WHERE message_id IN (${sent}))
        AND NOT EXISTS (SELECT 1 FROM zerver_attachment_messages am WHERE am.attachment_id = a.id AND am.message_id NOT IN (${sent}))
        AND NOT EXISTS (SELECT 1 FROM zerver_attachment_scheduled_messages s JOIN zerver_scheduledmessage sm ON sm.id = s.scheduledmessage_id
                         WHERE s.attachment_id = a.id AND sm.sender_id <> ${Number(userId)})`,
  );
  return orphans ? { deleted: { zerver_attachment: orphans }, setNull: {} } : { deleted: {}, setNull: {} };
}

/** What the 12.x deletion transaction needs when it writes. */
interface OverwriteExecution {
  /** bulk_remove_subscriptions' events. */
  notify?: Notify;
  /** do_delete_messages_by_sender's move_messages_to_archive (made before the transaction). */
  archiver: Archiver;
  /** Its delete_messages notices (skip_notify=False, from API feature level 452); null: none. */
  deleteNotify: MessageDeletionNotify | null;
}

/** 12.x's deletion transaction; `execute` null: only collect what it would delete (a dry run). */
async function overwriteDeletion(
  q: Queryable,
  user: UserProfile,
  fks: CatalogForeignKey[],
  s: DeletionSettings,
  execute: OverwriteExecution | null,
): Promise<Collected> {
  const realmId = Number(user.realm_id);
  const what = `delete user ${user.delivery_email}`;
  const out = emptyCollected();
  const columns = await columnsOf(q, "zerver_userprofile");
  const { values, unknown } = overwriteValues(user, columns, s);
  out.unknownColumns = unknown;
  const now = new Date();

  // 1. The account row, overwritten with a fresh dummy's values.
  if (execute) {
    const names = Object.keys(values);
    await q.query(`UPDATE zerver_userprofile SET ${names.map((c, i) => `${quoteIdent(c)} = $${i + 2}`).join(", ")} WHERE id = $1`, [
      user.id,
      ...names.map((c) => values[c]),
    ]);
  }

  // 2. bulk_remove_subscriptions(get_user_subscribed_streams(user), skip_events_for_removed_user=True):
  //    active channel subscriptions (archived channels included) become inactive, with a 303
  //    row each (subscriber counts only change for active users, and the user was deactivated
  //    first); then its events, to the other users only.
  const active = await q.query(
    `SELECT s.id AS sub_id, st.id AS stream_id, st.invite_only, st.is_web_public
       FROM zerver_subscription s
       JOIN zerver_recipient r ON r.id = s.recipient_id AND r.type = ${RecipientType.STREAM}
       JOIN zerver_stream st ON st.recipient_id = s.recipient_id
      WHERE s.user_profile_id = $1 AND s.active
      ORDER BY st.id`,
    [user.id],
  );
  out.subscriptionsDeactivated = active.rows.length;
  if (execute && active.rows.length) {
    await q.query("UPDATE zerver_subscription SET active = false WHERE id = ANY ($1::bigint[])", [active.rows.map((r) => r.sub_id)]);
    const lastId = await lastMessageId(q);
    out.auditIds.push(
      ...(await insertAuditLog(
        q,
        active.rows.map((r) => ({
          realmId,
          eventType: AuditLogEventType.SUBSCRIPTION_DEACTIVATED,
          eventTime: now,
          actingUserId: null,
          modifiedUserId: user.id,
          modifiedStreamId: Number(r.stream_id),
          eventLastMessageId: lastId,
        })),
      )),
    );
    if (execute.notify) {
      const channels = active.rows.map((r) => ({ id: Number(r.stream_id), invite_only: Boolean(r.invite_only), is_web_public: Boolean(r.is_web_public) }));
      await sendDeletedUserSubscriptionRemovalEvents(q, execute.notify, user, channels);
    }
  }
  //    … then every channel Subscription row of the user is hard-deleted.
  //    (A dry run collects steps 2, 3 and 5 in one deletion, so no row is counted twice.)
  const plans: DeletionPlan[] = [];
  const subs = new CascadeDeletion(q, fks, what);
  await subs.addRoots(
    "zerver_subscription",
    `SELECT s.id FROM zerver_subscription s JOIN zerver_recipient r ON r.id = s.recipient_id WHERE s.user_profile_id = $1 AND r.type = ${RecipientType.STREAM}`,
    [user.id],
  );
  if (execute) {
    plans.push(await subs.execute());
    await subs.dispose();
  }

  // 3. fks_to_delete: UserMessage, ExternalAuthID, SavedSnippet, ScheduledMessage, Draft.
  const rows = execute ? new CascadeDeletion(q, fks, what) : subs;
  const present = await existingTables(
    q,
    OVERWRITE_DELETES.map(([t]) => t),
  );
  for (const [table, column] of OVERWRITE_DELETES) {
    if (present.has(table)) await rows.addRoots(table, `SELECT id FROM ${table} WHERE ${quoteIdent(column)} = $1`, [user.id]);
  }
  if (execute) {
    await rows.collect();
    out.cacheKeys.push(...(await attachmentCacheKeys(q, rows)));
    plans.push(await rows.execute());
    await rows.dispose();
  } else {
    await rows.addRoots("zerver_message", SENT_MESSAGES, [realmId, user.id]);
    await rows.collect();
    plans.push(await rows.plan());
  }

  // 4. Scrub the audit rows that can carry personal data.
  if ((await columnsOf(q, "zerver_realmauditlog")).includes("scrubbed")) {
    const sql = `modified_user_id = $1 AND event_type = ANY ($2::int[])`;
    const res = execute
      ? await q.query(`UPDATE zerver_realmauditlog SET extra_data = '{}'::jsonb, scrubbed = true WHERE ${sql}`, [user.id, SCRUBBED_EVENTS])
      : await q.query(`SELECT 1 FROM zerver_realmauditlog WHERE ${sql}`, [user.id, SCRUBBED_EVENTS]);
    out.scrubbed = res.rowCount ?? 0;
  }

  // 5. do_delete_messages_by_sender(user_profile) (12.x: skip_notify=False):
  //    move_messages_to_archive(ids, user.realm, chunk_size=STREAM_MESSAGE_BATCH_SIZE), see
  //    Archiver.moveMessagesToArchive: per 100 messages an ArchiveTransaction of the user's realm,
  //    the rows archived, delete_messages' notices staged, the messages deleted, then the
  //    attachments with neither messages nor scheduled messages deleted.
  if (execute) {
    const ids = (await q.query(`${SENT_MESSAGES} ORDER BY id`, [realmId, user.id])).rows.map((r) => Number(r.id));
    const moved = await execute.archiver.moveMessagesToArchive(q, ids, {
      realmId,
      chunkSize: STREAM_MESSAGE_BATCH_SIZE,
      inval: { addKeys: (keys) => out.cacheKeys.push(...keys) },
      notify: execute.deleteNotify,
    });
    out.archived = archivedCounts(moved);
    plans.push(moved.deleted);
    out.plan = mergePlans(...plans);
  } else {
    out.plan = mergePlans(...plans, await planMessageDeletion(q, realmId, user.id, out));
  }
  // 6. The 106 row.
  if (execute) out.auditIds.push(...(await insertUserDeletedAudit(q, user)));
  out.placeholder = placeholderInfo(user.id, values, columns.includes("is_deleted") ? true : null, null);
  return out;
}

/** The placeholder account a deletion leaves behind, as the JSON output reports it. */
function placeholderInfo(id: number, values: Record<string, unknown>, isDeleted: boolean | null, recipientId: number | null): PlaceholderInfo {
  return {
    id,
    email: String(values.email),
    delivery_email: String(values.delivery_email),
    full_name: String(values.full_name),
    is_active: false,
    is_mirror_dummy: true,
    is_deleted: isDeleted,
    recipient_id: recipientId,
  };
}

/** do_delete_user's USER_DELETED (106) row. */
function insertUserDeletedAudit(q: Queryable, user: UserProfile): Promise<number[]> {
  return insertAuditLog(q, [
    { realmId: Number(user.realm_id), eventType: AuditLogEventType.USER_DELETED, eventTime: new Date(), actingUserId: null, modifiedUserId: user.id },
  ]);
}

// ---------------------------------------------------------------------------------------------
// 10.x / 11.x: delete with cascades, recreate with the same id

/** What create_user(force_id=…, active=False, is_mirror_dummy=True, …) writes for the placeholder. */
async function placeholderRow(
  q: Queryable,
  user: UserProfile,
  columns: Set<string>,
  s: DeletionSettings,
  random: RandomSource = cryptoRandom,
): Promise<Record<string, unknown>> {
  const values: Record<string, unknown> = { ...USER_SETTING_DEFAULTS };
  const rud = await q.query("SELECT * FROM zerver_realmuserdefault WHERE realm_id = $1", [user.realm_id]);
  if (!rud.rows.length)
    throw new CommandError(`The organization of ${user.delivery_email} has no RealmUserDefault row; cannot create the placeholder account.`);
  for (const [k, v] of Object.entries(rud.rows[0])) if (!NOT_COPIED_FROM_REALM_DEFAULTS.has(k) && columns.has(k)) values[k] = v;
  values.default_language = "en";
  const deliveryEmail = deletedUserEmail(user.id, s);
  const visibility = Number(values.email_address_visibility);
  const displayEmail =
    visibility === EmailAddressVisibility.EVERYONE ? deliveryEmail : `user${user.id}@${fakeEmailDomain(s.realmHost, s.fakeEmailDomain).toLowerCase()}`;
  Object.assign(values, {
    id: user.id,
    password: unusablePassword(random),
    last_login: user.date_joined,
    is_superuser: false,
    delivery_email: deliveryEmail,
    email: displayEmail,
    full_name: `Deleted User ${user.id}`,
    date_joined: user.date_joined,
    tos_version: null,
    api_key: generateApiKey((n) => random.alnum(n)),
    uuid: random.uuid(),
    is_staff: false,
    is_active: false,
    is_bot: false,
    bot_type: null,
    ...PLACEHOLDER_PROFILE,
    bot_owner_id: null,
    realm_id: user.realm_id,
    default_events_register_stream_id: null,
    default_sending_stream_id: null,
    zoom_token: null,
    third_party_api_state: "{}",
    is_imported_stub: false,
    recipient_id: null,
  });
  for (const k of Object.keys(values)) if (!columns.has(k)) delete values[k];
  return values;
}

async function recreateDeletion(q: Queryable, user: UserProfile, fks: CatalogForeignKey[], s: DeletionSettings, execute: boolean): Promise<Collected> {
  const what = `delete user ${user.delivery_email}`;
  const out = emptyCollected();
  const groupDms = await q.query(
    `SELECT s.recipient_id FROM zerver_subscription s JOIN zerver_recipient r ON r.id = s.recipient_id
      WHERE s.user_profile_id = $1 AND r.type = ${RecipientType.DIRECT_MESSAGE_GROUP} ORDER BY s.recipient_id`,
    [user.id],
  );
  const del = new CascadeDeletion(q, fks, what);
  await del.addRoots("zerver_userprofile", "SELECT $1::bigint", [user.id]);
  if (user.recipient_id !== null && user.recipient_id !== undefined) {
    await del.addRoots("zerver_recipient", "SELECT $1::bigint", [user.recipient_id]);
  }
  await del.collect();
  out.cacheKeys.push(...(await attachmentCacheKeys(q, del)), ...(await muteAndEmojiCacheKeys(q, del)));
  const bots = await q.query("SELECT * FROM zerver_userprofile WHERE bot_owner_id = $1 AND id <> $1 ORDER BY id", [user.id]);
  out.orphanedBots = bots.rows;
  const columns = new Set(await columnsOf(q, "zerver_userprofile"));
  const values = await placeholderRow(q, user, columns, s);
  if (!execute) {
    out.plan = await del.plan();
    out.placeholder = placeholderInfo(user.id, values, null, null);
    await del.dispose();
    return out;
  }
  out.plan = await del.execute();
  await del.dispose();

  // create_user(force_id=user_id, …): the account, its personal Recipient and subscription.
  await insertRows(q, "zerver_userprofile", [values], null);
  let recipientId: number | null = null;
  if (columns.has("recipient_id")) {
    const rcp = await q.query("INSERT INTO zerver_recipient (type_id, type) VALUES ($1, $2) RETURNING id", [user.id, RecipientType.PERSONAL]);
    recipientId = Number(rcp.rows[0].id);
    await q.query("UPDATE zerver_userprofile SET recipient_id = $2 WHERE id = $1", [user.id, recipientId]);
  }
  // The placeholder is inactive: its subscriptions have is_user_active false.
  const subscription = (rid: number) => subscriptionValues(rid, user.id, false);
  if (recipientId !== null) await insertRows(q, "zerver_subscription", [subscription(recipientId)], null);
  // The group DMs it took part in get a subscription of the placeholder again.
  const still = await q.query("SELECT id FROM zerver_recipient WHERE id = ANY ($1::int[]) ORDER BY id", [groupDms.rows.map((r) => r.recipient_id)]);
  if (still.rows.length)
    await insertRows(
      q,
      "zerver_subscription",
      still.rows.map((r) => subscription(Number(r.id))),
      null,
    );
  out.auditIds.push(...(await insertUserDeletedAudit(q, user)));
  out.placeholder = placeholderInfo(user.id, values, null, recipientId);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Entry points

class DryRunRollback extends Error {}

export interface DeletionTarget {
  user: UserProfile;
  /** The active bots deactivated with the user (before anything is written). */
  activeBots: number;
  realm: RealmRef;
}

export interface PreparedDeletion {
  algorithm: DeletionAlgorithm;
  fks: CatalogForeignKey[];
  /** The message archiving of the "overwrite" algorithm (null for "recreate"). */
  archiver: Archiver | null;
  /** The users, in the order given. */
  targets: DeletionTarget[];
  settings: ZulipSettings;
}

/**
 * What deleting these users needs, read before anything is written: the release's algorithm,
 * the catalog's foreign keys (refusing, with nothing changed, when the schema has references we
 * do not know), and per user the active bots and the realm.
 */
export async function prepareUserDeletion(db: Db, users: UserProfile[], settings: ZulipSettings): Promise<PreparedDeletion> {
  const algorithm = await deletionAlgorithm(db);
  const fks = await catalogForeignKeys(db);
  const targets: DeletionTarget[] = [];
  const realms = new Map<number, RealmRef>();
  for (const user of users) {
    const realmId = Number(user.realm_id);
    if (!realms.has(realmId)) realms.set(realmId, await realmRef(db, realmId));
    targets.push({ user, activeBots: (await activeBotsOwnedBy(db, user.id)).length, realm: realms.get(realmId)! });
  }
  if (users.length)
    assertCovered(fks, cascadeClosure(fks, deletionRoots(algorithm)), users.length === 1 ? `delete user ${users[0].delivery_email}` : "delete these users");
  const archiver = algorithm === "overwrite" && users.length ? await messageArchiver(db, fks) : null;
  return { algorithm, fks, archiver, targets, settings };
}

/**
 * get_fake_email_domain raises InvalidFakeEmailDomainError (Zulip's message) when neither the
 * realm host nor FAKE_EMAIL_DOMAIN makes valid addresses (a server addressed by IP): checked for
 * every user before anything is written (manage.py fails at that user with a traceback, after
 * deleting the users before it).
 */
export function checkPlaceholderAddresses(prepared: PreparedDeletion): void {
  for (const t of prepared.targets) deletedUserEmail(t.user.id, deletionSettings(prepared.settings, t.realm));
}

/** What a deletion writes (or would write) for one user, as the --json results report it. */
export type DeletionCounts = Pick<
  UserDeletionResult,
  "rows_deleted" | "rows_set_null" | "rows_archived" | "subscriptions_deactivated" | "audit_rows_scrubbed" | "placeholder"
>;

function countsOf(c: Collected): DeletionCounts {
  return {
    rows_deleted: c.plan.deleted,
    rows_set_null: c.plan.setNull,
    rows_archived: c.archived,
    subscriptions_deactivated: c.subscriptionsDeactivated,
    audit_rows_scrubbed: c.scrubbed,
    placeholder: c.placeholder,
  };
}

/**
 * What deleting the user would delete now: the rows are only collected (temp tables, no writes,
 * no sequence advanced) inside a transaction that is rolled back. The deactivation that comes
 * first is not simulated: it deletes nothing the deletion would not delete anyway.
 */
export async function planUserDeletion(db: Db, prepared: PreparedDeletion, target: DeletionTarget): Promise<DeletionCounts> {
  const s = deletionSettings(prepared.settings, target.realm);
  let result: Collected | undefined;
  try {
    await db.tx(async (q) => {
      result =
        prepared.algorithm === "overwrite"
          ? await overwriteDeletion(q, target.user, prepared.fks, s, null)
          : await recreateDeletion(q, target.user, prepared.fks, s, false);
      throw new DryRunRollback();
    });
  } catch (e) {
    if (!(e instanceof DryRunRollback)) throw e;
  }
  return countsOf(result!);
}

export interface DeleteUserOptions {
  cache?: CacheInvalidation;
  /** For the deactivation's ROLE_COUNT (see roleCountsAfterChange). */
  roleCountBaseline?: Promise<RoleCountBaseline | null>;
  /** Where the real-time events go (the deactivation's; from 12.0 also the unsubscription's). */
  events?: EventDelivery;
  /** The server's API feature level (featureLevel()). */
  featureLevel?: number;
  /**
   * MOBILE_NOTIFICATIONS_SHARDS (src/config/sharding.ts mobileNotificationShards; default 1): the
   * queues of 12.x's push-notification removals for the deleted messages.
   */
  mobileNotificationShards?: number;
}

/** do_delete_user(user, acting_user=None): deactivate, then the deletion transaction, then caches/sessions. */
export async function doDeleteUser(
  db: Db,
  prepared: PreparedDeletion,
  target: DeletionTarget,
  opts: DeleteUserOptions = {},
): Promise<Omit<UserDeletionResult, "user" | "active_bots" | "error">> {
  const userId = target.user.id;
  const { rows: pre } = await db.query("SELECT * FROM zerver_userprofile WHERE id = $1", [userId]);
  if (!pre.length) throw new CommandError(`The user with id ${userId} no longer exists; nothing was changed.`);
  const realm = (await db.query("SELECT * FROM zerver_realm WHERE id = $1", [pre[0].realm_id])).rows[0];
  if (realm?.is_zephyr_mirror_realm) throw new CommandError("Deleting zephyr mirror users is not supported");
  const email = target.user.delivery_email;
  const notify = (what: string): Notify | undefined => opts.events && { events: opts.events, realm: target.realm, what, featureLevel: opts.featureLevel };

  // do_delete_user starts with do_deactivate_user, events included.
  const deact = await doDeactivateUser(db, userId, {
    actingUserId: null,
    cache: opts.cache,
    roleCountBaseline: opts.roleCountBaseline,
    notify: notify(`the deactivation of ${email}`),
    featureLevel: opts.featureLevel,
  });
  const deletionNotify = notify(`the deletion of ${email}`);
  // 12.x's move_messages_to_archive(..., skip_notify=False) from API feature level 452 (zulip/zulip
  // PR #35848); before it (12.0-dev only) it sent nothing.
  const deleteNotify: MessageDeletionNotify | null =
    opts.events && (opts.featureLevel ?? Number.MAX_SAFE_INTEGER) >= FL.RETENTION_DELETE_EVENTS
      ? {
          events: opts.events,
          mobileNotificationShards: opts.mobileNotificationShards ?? 1,
          realm: target.realm,
          what: `the deletion of ${email}'s messages`,
        }
      : null;
  const work = async (q: Queryable) => {
    const before = (await lockUserRow(q, userId, {
      forDelete: true,
      missing: `The user with id ${userId} was deleted while this command ran; nothing more was changed.`,
    })) as UserProfile & CacheUser;
    const s = deletionSettings(prepared.settings, target.realm);
    const c =
      prepared.algorithm === "overwrite"
        ? await overwriteDeletion(q, before, prepared.fks, s, { notify: deletionNotify, archiver: prepared.archiver!, deleteNotify })
        : await recreateDeletion(q, before, prepared.fks, s, true);
    if (opts.cache) {
      const after = (await q.query("SELECT * FROM zerver_userprofile WHERE id = $1", [userId])).rows[0] as UserProfile & CacheUser;
      // flush_user_profile(update_fields=None) for the new state; the old email / API key
      // variants too (Zulip flushed those when it deactivated the account).
      await opts.cache.userChanged(q, after, null, { before, what: `user ${before.delivery_email} (id ${userId})` });
      for (const bot of c.orphanedBots) {
        await opts.cache.userChanged(q, { ...bot, bot_owner_id: null }, ["bot_owner_id"], { what: `bot ${bot.delivery_email} (id ${bot.id})` });
      }
      if (c.cacheKeys.length) opts.cache.addKeys(c.cacheKeys, "deleted attachments, mutes and custom emoji");
    }
    return c;
  };
  const collected = await (opts.events ? opts.events.tx(db, work) : db.tx(work));
  opts.cache?.changeCommitted();
  // Login sessions still pointing at the account (e.g. when it was already deactivated).
  const sessions = await db.tx((q) => deleteUserSessions(q, [userId], opts.cache));
  if (sessions.length) opts.cache?.changeCommitted();
  const sessionsDeleted = deact.user.sessionsDeleted + deact.bots.reduce((n, b) => n + b.sessionsDeleted, 0);
  return {
    deleted: true,
    deactivated: {
      user: deact.user.changed,
      bots: deact.bots.filter((b) => b.changed).map((b) => b.userId),
      sessions_deleted: sessionsDeleted,
    },
    ...countsOf(collected),
    ...(collected.unknownColumns.length ? { unknown_columns_kept: collected.unknownColumns } : {}),
    audit_log_ids: [...deact.bots.flatMap((b) => b.auditLogIds), ...deact.user.auditLogIds, ...collected.auditIds],
    sessions_deleted: sessions.length,
  };
}
