// Message retention, as zerver/lib/retention.py does it (Zulip 10-12), for the archive_messages
// cron command (zerver/management/commands/archive_messages.py: clean_archived_data(), then
// archive_messages(), then scrub_realms()).
//
// archiveMessages (archive_messages + get_realms_and_streams_for_archiving):
//   - realms with message_retention_days != -1, and channels whose own message_retention_days is
//     set (not -1) in realms without a policy; a channel in a realm with a policy uses its own
//     value when set and truthy, else the realm's; -1 on the channel means never;
//   - per channel, messages older than the cutoff (date_sent < now - days), batches of 100
//     (STREAM_MESSAGE_BATCH_SIZE); then, when the realm has a policy, its direct messages
//     (recipient types 1 and 3), batches of 1000; each batch is ONE transaction: a new
//     ArchiveTransaction (type RETENTION_POLICY_BASED = 1, the realm), the messages copied to
//     zerver_archivedmessage (every column but search_tsvector; ON CONFLICT (id) moves an
//     already-archived id to this transaction), their UserMessage / Reaction / SubMessage rows,
//     Attachments and attachment links copied to the archive tables, then the messages deleted
//     with Django's cascades (src/db/ondelete.ts). A batch that finds nothing deletes its
//     ArchiveTransaction again;
//   - then delete_expired_attachments: the realm's Attachments that now have neither messages nor
//     scheduled messages and have an ArchivedAttachment twin (the owners' realm_used_upload_space
//     cache entries are flushed, as Attachment's post_delete does).
//   Zulip 10.x and 11.x send nothing for these deletions; Zulip 12.x (API feature level 452)
//   sends delete_message events, updates the channels' first_message_id and queues the removal of
//   mobile push notifications: see stageDeleteNotices below.
//   Zulip runs the whole of archive_messages() in ONE durable transaction
//   (@transaction.atomic(durable=True) in every 10.x-12.x copy of retention.py read), its batches
//   being savepoint-less atomic blocks inside it; zulip-manage commits each batch on its own, so
//   that a run over millions of messages neither holds its locks for hours nor loses everything
//   to one late failure. What is committed is what Zulip commits, batch by batch.
// cleanArchivedData (clean_archived_data): ArchiveTransactions older than
//   ARCHIVED_DATA_VACUUMING_DELAY_DAYS and not protect_from_deletion, 100 per transaction, with
//   their archived rows (CASCADE). ArchivedAttachments are left for delete_old_unclaimed_attachments.
// scrub_realms (organizations due for deletion) is in realm-scrub.ts.
//
// Archiver.moveMessagesToArchive (move_messages_to_archive) is the other way in, used by
// do_delete_messages_by_sender (delete-user.ts, Zulip 12.x's do_delete_user) and do_scrub_realm
// (realm-scrub.ts): ONE implementation of the archiving for all three.
//
// Restoring (restore_data_from_archive) copies the archive rows back by archive_transaction_id;
// everything it needs is in the rows written here.
import { RecipientType, UserMessageFlag } from "../models.js";
import { quoteIdent } from "../../db/sql.js";
import { usedUploadSpaceKeys } from "./attachments.js";
import type { CacheInvalidation } from "../cache.js";
import type { Db, Queryable } from "../../db/db.js";
import type { ZulipLogFile } from "../../lib/managelog.js";
import type { EventDelivery, EventRealm, ZulipEvent } from "../../services/events.js";
import { ROLES } from "../roles.js";
import {
  assertCovered,
  cascadeClosure,
  CascadeDeletion,
  catalogForeignKeys,
  type CatalogForeignKey,
  type DeletionPlan,
  GENERIC_RELATIONS,
  mergePlans,
  referencesTo,
  ruleFor,
} from "../../db/ondelete.js";
import { CommandError } from "../../lib/errors.js";

export const MESSAGE_BATCH_SIZE = 1000;
export const STREAM_MESSAGE_BATCH_SIZE = 100;
const TRANSACTION_DELETION_BATCH_SIZE = 100;
const RETENTION_POLICY_BASED = 1;
/** ArchiveTransaction.MANUAL: deletions that are not the retention policy's. */
const MANUAL = 2;
const RECIPIENT_PERSONAL = RecipientType.PERSONAL;
const RECIPIENT_STREAM = RecipientType.STREAM;
const RECIPIENT_DIRECT_MESSAGE_GROUP = RecipientType.DIRECT_MESSAGE_GROUP;
/** UserMessage.flags.active_mobile_push_notification (where_active_push_notification). */
const ACTIVE_MOBILE_PUSH_NOTIFICATION = UserMessageFlag.ACTIVE_MOBILE_PUSH_NOTIFICATION;

const q = quoteIdent;

/** Columns of `src` that `dst` also has (the model's fields), in `dst`'s catalog order. */
async function sharedColumns(db: Db, src: string, dst: string, exclude: string[] = []): Promise<string[]> {
  const s = await db.columns(src);
  const d = await db.columns(dst);
  return [...d].filter((c) => s.has(c) && !exclude.includes(c)).sort();
}

export interface ArchiveTotals {
  transactions: number[];
  channel_messages: number;
  direct_messages: number;
  user_messages: number;
  reactions: number;
  submessages: number;
  archived_attachments: number;
  attachments_deleted: number;
  realms: { id: number; string_id: string; name: string; channel_messages: number; direct_messages: number; attachments_deleted: number }[];
  /** Zulip 12.x: what retention's delete_messages sent and updated (zeros on 10.x/11.x). */
  notices: DeleteNoticeCounts;
}

export interface RetentionTarget {
  realm: { id: number; string_id: string; name: string; message_retention_days: number };
  channels: { id: number; recipient_id: number; days: number }[];
}

/** get_realms_and_streams_for_archiving, in realm and channel id order. */
async function realmsAndChannelsForArchiving(db: Queryable): Promise<RetentionTarget[]> {
  const realms = await db.query("SELECT id, string_id, name, message_retention_days FROM zerver_realm WHERE message_retention_days <> -1 ORDER BY id");
  const byId = new Map<number, RetentionTarget>();
  for (const r of realms.rows)
    byId.set(Number(r.id), {
      realm: { id: Number(r.id), string_id: r.string_id, name: r.name, message_retention_days: Number(r.message_retention_days) },
      channels: [],
    });
  const streams = await db.query(
    `SELECT s.id, s.recipient_id, s.message_retention_days AS s_days, r.id AS realm_id, r.string_id, r.name AS realm_name, r.message_retention_days AS r_days
       FROM zerver_stream s JOIN zerver_realm r ON r.id = s.realm_id
      WHERE (r.message_retention_days <> -1 AND (s.message_retention_days IS NULL OR s.message_retention_days <> -1))
         OR (r.message_retention_days = -1 AND s.message_retention_days IS NOT NULL AND s.message_retention_days <> -1)
      ORDER BY r.id, s.id`,
  );
  for (const s of streams.rows) {
    const realmId = Number(s.realm_id);
    let t = byId.get(realmId);
    if (!t) {
      t = { realm: { id: realmId, string_id: s.string_id, name: s.realm_name, message_retention_days: Number(s.r_days) }, channels: [] };
      byId.set(realmId, t);
    }
    // `if stream.message_retention_days:` (truthy), else the realm's policy.
    const days = s.s_days ? Number(s.s_days) : Number(s.r_days);
    if (days === -1 || s.recipient_id === null) continue; // a 0 on a channel of a realm without a policy: Zulip asserts
    t.channels.push({ id: Number(s.id), recipient_id: Number(s.recipient_id), days });
  }
  return [...byId.values()].sort((a, b) => a.realm.id - b.realm.id);
}

/**
 * Django's cascade for deleting messages, planned once per run: every table that (transitively)
 * references zerver_message through a CASCADE rule of src/db/ondelete.ts, as edges in
 * breadth-first order. null when the generic engine is needed instead: a reference the rules do
 * not cover (assertCovered refuses), a SET_NULL/PROTECT/RESTRICT/DO_NOTHING rule or a generic
 * relation on the way, a reference to a column other than "id", or a table without an "id".
 * Each batch then costs two statements per table instead of the engine's temporary tables.
 */
export async function planMessageCascade(db: Db, fks: CatalogForeignKey[]): Promise<{ table: string; column: string; parent: string }[] | null> {
  const closure = cascadeClosure(fks, ["zerver_message"]);
  assertCovered(fks, closure, "archive these messages");
  if (GENERIC_RELATIONS.some((g) => closure.includes(g.table))) return null;
  const edges: { table: string; column: string; parent: string }[] = [];
  const seen = new Set(["zerver_message"]);
  const queue = ["zerver_message"];
  while (queue.length) {
    const parent = queue.shift()!;
    for (const fk of referencesTo(fks, parent)) {
      if (ruleFor(fk.table, fk.column)?.onDelete !== "CASCADE" || fk.refColumn !== "id" || fk.multiColumn) return null;
      if (!(await db.columns(fk.table)).has("id")) return null;
      edges.push({ table: fk.table, column: fk.column, parent });
      if (!seen.has(fk.table)) {
        seen.add(fk.table);
        queue.push(fk.table);
      }
    }
  }
  return edges;
}

/**
 * Delete messages and everything that cascades from them along `edges`: ids found top-down, rows
 * deleted bottom-up. Returns the rows deleted per table.
 */
async function deleteMessagesAlong(t: Queryable, edges: { table: string; column: string; parent: string }[], ids: number[]): Promise<Record<string, number>> {
  const found = new Map<string, Set<number>>([["zerver_message", new Set(ids)]]);
  const order: string[] = ["zerver_message"];
  const pending: { table: string; ids: number[] }[] = [{ table: "zerver_message", ids }];
  while (pending.length) {
    const { table, ids: parentIds } = pending.shift()!;
    for (const e of edges) {
      if (e.parent !== table || !parentIds.length) continue;
      const { rows } = await t.query(`SELECT id FROM ${q(e.table)} WHERE ${q(e.column)} = ANY($1::bigint[])`, [parentIds]);
      const have = found.get(e.table) ?? new Set<number>();
      const fresh = rows.map((r: any) => Number(r.id)).filter((id: number) => !have.has(id));
      if (!fresh.length) continue;
      for (const id of fresh) have.add(id);
      if (!found.has(e.table)) {
        found.set(e.table, have);
        order.push(e.table);
      }
      pending.push({ table: e.table, ids: fresh });
    }
  }
  const deleted: Record<string, number> = {};
  for (const table of order.reverse()) {
    const res = await t.query(`DELETE FROM ${q(table)} WHERE id = ANY($1::bigint[])`, [[...found.get(table)!]]);
    if (res.rowCount) deleted[table] = res.rowCount;
  }
  return deleted;
}

/** The rows move_related_objects_to_archive copied. */
export interface RelatedCounts {
  user_messages: number;
  reactions: number;
  submessages: number;
  archived_attachments: number;
}

/** What moveMessagesToArchive did. */
export interface MovedToArchive extends RelatedCounts {
  transactions: number[];
  messages: number;
  /** zerver_archivedattachment_messages rows written (the attachment links of the messages). */
  attachment_messages: number;
  /** Attachment rows deleted because none of their messages or scheduled messages is left. */
  attachments_deleted: number;
  /** Every row deleted (the messages with their cascades, the attachments), per table. */
  deleted: DeletionPlan;
  /** Zulip 12.x: what delete_messages sent and updated (zeros without `notify`). */
  notices: DeleteNoticeCounts;
}

// ---------------------------------------------------------------------------------------------
// Zulip 12.x: delete_messages(msg_ids, realm, skip_notify=False, acting_user=None) of the
// retention policy (zulip/zulip PR #35848, API feature level 452, "Messages deleted via a message
// retention policy now correctly generate delete_message events"). Zulip 10.x and 11.x delete
// retention's messages silently (delete_messages is Message.objects.filter(...).delete()).
//
// Source: zulip/zulip's own copy of zerver/lib/retention.py in the search index predates the PR;
// the merged code was read in juno-5/doer, a renamed fork of Zulip main at feature level 460
// (12.0-dev, after 452): zerver/lib/retention.py (run_archiving → delete_messages →
// _process_grouped_messages_deletion) and zerver/lib/message.py
// (event_recipient_ids_for_action_on_messages), with check_update_first_message_id as
// zerver/actions/message_delete.py has it; do_clear_mobile_push_notifications_for_ids(None, ids)
// as zerver/actions/message_flags.py has it in the 12.x-era forks ykphone-dev/zulip and
// Dyslectric/zulip-meet-integration (zulip/zulip PR #36121: no "remove" job for users without a
// registered push device). Inside each archiving batch, after the related rows are archived and
// before the messages are deleted:
//
//  1. the batch's messages grouped in the database: GROUP BY recipient_id and, for channel
//     messages, UPPER(subject) (direct messages: per recipient), each group's ids in id order;
//  2. do_clear_mobile_push_notifications_for_ids(user_profile_ids=None, message_ids=batch): the
//     UserMessage rows of the batch with active_mobile_push_notification set, per user; for users
//     with a registered push device (a PushDeviceToken, or a Device with a push token) a
//     {"type": "remove", "user_profile_id", "message_ids"} job on missedmessage_mobile_notifications
//     (…_shard<user_id % MOBILE_NOTIFICATIONS_SHARDS + 1> when sharded). For the other users Zulip
//     clears the flag on those rows; the rows are deleted with their messages a moment later in
//     the same transaction (their archived copies were taken before), so that UPDATE changes
//     nothing that remains and is not repeated here;
//  3. per group, in the query's order: the event {"type": "delete_message", "message_ids" (sorted),
//     ["stream_id", "topic" (lower(UPPER(subject)))], "message_type": "stream" | "private"} to
//     event_recipient_ids_for_action_on_messages(ids): for direct messages the users with a
//     UserMessage row; for a channel its active subscribers (Subscription active and
//     is_user_active), and — protected history: only those of them with a UserMessage row;
//     private with shared history: just them; public: plus the non-guest users with a UserMessage
//     row; long-term-idle users never. The group's messages are deleted, then
//     check_update_first_message_id: when the channel's first_message_id is one of them, it
//     becomes the channel's lowest remaining message id (or NULL) and {"type": "stream", "op":
//     "update", "property": "first_message_id", "value", "stream_id", "name"} goes to the same
//     users, before the delete_message event. Stream.save(update_fields=["first_message_id"])
//     flushes no cache entry in 12.x (flush_stream).
//
// Here the batch's messages are deleted together after the groups are processed; each group's
// first_message_id look-up leaves out the messages of the groups before it and its own, which
// is what Zulip's deleting group by group leaves in the table at that moment.
//
// When: Zulip's archive_messages is one durable transaction (@transaction.atomic(durable=True) in
// every 10.x-12.x copy read), so it sends all of these after its single COMMIT at the end.
// zulip-manage commits each batch in its own transaction (see the file comment), so a batch's
// events and jobs become due after that batch's COMMIT, and are delivered whenever the due ones
// reach maxStagedRecipients recipient entries (and at the end of the command): never before
// their deletion is committed, and never more than that many in memory.

/** Flush the due retention events once they reach this many recipient entries. */
const MAX_STAGED_RETENTION_RECIPIENTS = 200_000;

/** Where 12.x's delete_messages sends its notices. */
export interface DeleteNotify {
  events: EventDelivery;
  /** MOBILE_NOTIFICATIONS_SHARDS (zulip.conf [application_server] mobile_notification_shards, default 1). */
  mobileNotificationShards: number;
}

/** The 12.x behaviour of retention's delete_messages (null on 10.x and 11.x). */
export interface RetentionNotify extends DeleteNotify {
  /** Deliver what is due now (EventDelivery.commit), keeping its report. */
  flush: () => Promise<void>;
  /** Default MAX_STAGED_RETENTION_RECIPIENTS (tests). */
  maxStagedRecipients?: number;
}

/** What retention's 12.x delete_messages did in one run. */
export interface DeleteNoticeCounts {
  delete_message_events: number;
  first_message_id_updates: number;
  push_removal_jobs: number;
}

interface ChannelForDeletion {
  id: number;
  recipient_id: number;
  name: string;
  first_message_id: number | null;
  invite_only: boolean;
  history_public_to_subscribers: boolean;
}

/** mobile_notifications_queue_name(user_profile_id). */
function mobileNotificationsQueueName(userId: number, shards: number): string {
  return shards > 1 ? `missedmessage_mobile_notifications_shard${(userId % shards) + 1}` : "missedmessage_mobile_notifications";
}

/**
 * event_recipient_ids_for_action_on_messages(message_ids, is_channel_message, channel=…,
 * exclude_long_term_idle_users=True) (zerver/lib/message.py, 12.x), ascending.
 */
async function eventRecipientIdsForActionOnMessages(q: Queryable, ids: number[], channel: ChannelForDeletion | null): Promise<number[]> {
  const withRow = (excludeGuests: boolean) =>
    `SELECT um.user_profile_id AS id FROM zerver_usermessage um JOIN zerver_userprofile u ON u.id = um.user_profile_id
      WHERE um.message_id = ANY($1::int[]) AND NOT u.long_term_idle${excludeGuests ? ` AND u.role <> ${ROLES.GUEST}` : ""}`;
  // get_active_subscriptions_for_stream_id(channel.id, include_deactivated_users=False), without idle users.
  const subscribers = (p: number) => `SELECT s.user_profile_id AS id FROM zerver_subscription s
      JOIN zerver_recipient r ON r.id = s.recipient_id JOIN zerver_userprofile u ON u.id = s.user_profile_id
     WHERE r.type = ${RECIPIENT_STREAM} AND r.type_id = $${p} AND s.active AND s.is_user_active AND NOT u.long_term_idle`;
  let sql: string;
  let params: unknown[];
  if (!channel) {
    sql = `SELECT DISTINCT id FROM (${withRow(false)}) x`;
    params = [ids];
  } else if (!channel.history_public_to_subscribers) {
    // Protected history: subscribed and received the message.
    sql = `${withRow(false)} INTERSECT ${subscribers(2)}`;
    params = [ids, channel.id];
  } else if (channel.invite_only) {
    sql = `SELECT DISTINCT id FROM (${subscribers(1)}) x`;
    params = [channel.id];
  } else {
    // Public with public history: subscribers, and non-guests with a UserMessage row.
    sql = `${withRow(true)} UNION ${subscribers(2)}`;
    params = [ids, channel.id];
  }
  const { rows } = await q.query(`SELECT id FROM (${sql}) y ORDER BY id`, params);
  return rows.map((r: any) => Number(r.id));
}

/**
 * 12.x's delete_messages(ids, realm, skip_notify=False, acting_user=None) notices for one batch,
 * inside its transaction (see above); `what` names the deletion in delivery warnings.
 */
async function stageDeleteNotices(
  t: Queryable,
  realm: EventRealm,
  ids: number[],
  notify: DeleteNotify,
  counts: DeleteNoticeCounts,
  hasDevice: boolean,
  what: string,
): Promise<number> {
  const events = notify.events;
  let staged = 0;
  // Message.objects.filter(id__in=msg_ids).annotate(group_topic=Case(When(is_channel_message,
  // then=Upper(subject)), default=None)).values("recipient_id", "group_topic")
  // .annotate(message_ids=ArrayAgg("id", order_by="id")): no ORDER BY, as there.
  const { rows: groups } = await t.query(
    `SELECT zerver_message.recipient_id,
            CASE WHEN zerver_message.is_channel_message THEN UPPER(zerver_message.subject) ELSE NULL END AS group_topic,
            ARRAY_AGG(zerver_message.id ORDER BY zerver_message.id) AS message_ids
       FROM zerver_message WHERE zerver_message.id = ANY($1::int[])
      GROUP BY 1, 2`,
    [ids],
  );
  const channelRecipients = [...new Set(groups.filter((g: any) => g.group_topic !== null).map((g: any) => Number(g.recipient_id)))];
  const channels = new Map<number, ChannelForDeletion>();
  if (channelRecipients.length) {
    const { rows } = await t.query(
      "SELECT id, recipient_id, name, first_message_id, invite_only, history_public_to_subscribers FROM zerver_stream WHERE recipient_id = ANY($1::int[])",
      [channelRecipients],
    );
    for (const r of rows) {
      channels.set(Number(r.recipient_id), {
        id: Number(r.id),
        recipient_id: Number(r.recipient_id),
        name: String(r.name),
        first_message_id: r.first_message_id === null ? null : Number(r.first_message_id),
        invite_only: Boolean(r.invite_only),
        history_public_to_subscribers: Boolean(r.history_public_to_subscribers),
      });
    }
  }
  // do_clear_mobile_push_notifications_for_ids(user_profile_ids=None, message_ids=msg_ids)
  if (events.enabled) {
    const { rows: ums } = await t.query(
      `SELECT user_profile_id, message_id FROM zerver_usermessage
        WHERE message_id = ANY($1::int[]) AND (flags & ${ACTIVE_MOBILE_PUSH_NOTIFICATION}) <> 0 ORDER BY id`,
      [ids],
    );
    const byUser = new Map<number, number[]>();
    for (const um of ums) {
      const uid = Number(um.user_profile_id);
      if (!byUser.has(uid)) byUser.set(uid, []);
      byUser.get(uid)!.push(Number(um.message_id));
    }
    if (byUser.size) {
      const { rows: reg } = await t.query(
        `SELECT user_id FROM zerver_pushdevicetoken WHERE user_id = ANY($1::int[])${
          hasDevice ? " UNION SELECT user_id FROM zerver_device WHERE user_id = ANY($1::int[]) AND push_token_id IS NOT NULL" : ""
        }`,
        [[...byUser.keys()]],
      );
      const registered = new Set(reg.map((r: any) => Number(r.user_id)));
      for (const [uid, messageIds] of byUser) {
        if (!registered.has(uid)) continue;
        events.enqueue(
          mobileNotificationsQueueName(uid, notify.mobileNotificationShards),
          { type: "remove", user_profile_id: uid, message_ids: messageIds },
          "the removal of the deleted messages' mobile push notifications",
        );
        counts.push_removal_jobs++;
        staged++;
      }
    }
  }
  const gone: number[] = [];
  for (const g of groups) {
    const messageIds: number[] = (g.message_ids as unknown[]).map(Number);
    const channel = g.group_topic === null ? null : channels.get(Number(g.recipient_id));
    if (g.group_topic !== null && !channel) throw new Error(`archive_messages: no channel has recipient ${g.recipient_id} (messages ${messageIds.join(", ")})`);
    const event: ZulipEvent = { type: "delete_message", message_ids: messageIds };
    if (channel) {
      event.stream_id = channel.id;
      event.topic = String(g.group_topic).toLowerCase();
    }
    event.message_type = channel ? "stream" : "private";
    const users = events.enabled ? await eventRecipientIdsForActionOnMessages(t, messageIds, channel ?? null) : [];
    gone.push(...messageIds);
    // check_update_first_message_id(realm, stream, message_ids, users_to_notify)
    if (channel && channel.first_message_id !== null && messageIds.includes(channel.first_message_id)) {
      const { rows } = await t.query(
        "SELECT id FROM zerver_message WHERE realm_id = $1 AND recipient_id = $2 AND NOT (id = ANY($3::int[])) ORDER BY id LIMIT 1",
        [realm.id, channel.recipient_id, gone],
      );
      channel.first_message_id = rows.length ? Number(rows[0].id) : null;
      await t.query("UPDATE zerver_stream SET first_message_id = $2 WHERE id = $1", [channel.id, channel.first_message_id]);
      counts.first_message_id_updates++;
      events.send(
        realm,
        { type: "stream", op: "update", property: "first_message_id", value: channel.first_message_id, stream_id: channel.id, name: channel.name },
        users,
        `the first message of channel '${channel.name}'`,
      );
      if (events.enabled) staged += users.length + 1;
    }
    events.send(realm, event, users, what);
    if (events.enabled) {
      counts.delete_message_events++;
      staged += users.length + 1;
    }
  }
  return staged;
}

/**
 * 12.x's move_messages_to_archive(..., skip_notify=False): delete_messages' notices for messages
 * deleted in one transaction (do_delete_messages_by_sender from do_delete_user_core), all of them
 * delivered after that transaction's COMMIT.
 */
export interface MessageDeletionNotify extends DeleteNotify {
  realm: EventRealm;
  /** Names the deletion in delivery warnings ("the deletion of x@example.com's messages"). */
  what: string;
  /** Default MAX_STAGED_DELETION_RECIPIENTS (tests). */
  maxStagedRecipients?: number;
}

/**
 * The most recipient entries moveMessagesToArchive stages for one transaction (they are held in
 * memory until its COMMIT): past it, it refuses (and the transaction rolls back) rather than
 * run out of memory.
 */
const MAX_STAGED_DELETION_RECIPIENTS = 50_000_000;

/** What moveMessagesToArchive needs of a cache invalidation. */
type CacheKeySink = Pick<CacheInvalidation, "addKeys">;

export class Archiver {
  private fks: CatalogForeignKey[] | null;
  private cascade: { table: string; column: string; parent: string }[] | null = null;
  private msgCols: string[] = [];
  private related: { src: string; dst: string; cols: string[]; key: "user_messages" | "reactions" | "submessages" }[] = [];
  private attCols: string[] = [];
  private txCols: string[] = [];
  private hasDevice = false;
  /** Recipient entries of the retention notices due since the last flush. */
  private staged = 0;

  constructor(
    private readonly db: Db,
    readonly totals: ArchiveTotals,
    private readonly log: ZulipLogFile | null,
    /** Zulip 12.x: retention's delete_messages sends notices (see stageDeleteNotices); null on 10.x/11.x. */
    private readonly notify: RetentionNotify | null = null,
    /** The catalog's foreign keys when the caller has read them already (else init() reads them). */
    fks: CatalogForeignKey[] | null = null,
  ) {
    this.fks = fks;
  }

  /** Read the catalog (outside any transaction): the columns to copy and the cascade to follow. */
  async init(): Promise<void> {
    this.fks ??= await catalogForeignKeys(this.db);
    this.cascade = await planMessageCascade(this.db, this.fks);
    // EXCLUDE_FIELDS = {search_tsvector}
    this.msgCols = await sharedColumns(this.db, "zerver_message", "zerver_archivedmessage", ["search_tsvector", "archive_transaction_id"]);
    for (const [src, dst, key] of [
      ["zerver_reaction", "zerver_archivedreaction", "reactions"],
      ["zerver_submessage", "zerver_archivedsubmessage", "submessages"],
      ["zerver_usermessage", "zerver_archivedusermessage", "user_messages"],
    ] as const) {
      this.related.push({ src, dst, key, cols: await sharedColumns(this.db, src, dst) });
    }
    this.attCols = await sharedColumns(this.db, "zerver_attachment", "zerver_archivedattachment");
    const tx = await this.db.columns("zerver_archivetransaction");
    this.txCols = ["timestamp", "restored", "restored_timestamp", "type", "realm_id", "protect_from_deletion"].filter((c) => tx.has(c));
    this.hasDevice = (await this.db.columns("zerver_device")).has("push_token_id");
  }

  /**
   * ArchiveTransaction.objects.create(type=type, realm=realm): timestamp is the model's
   * default=timezone_now, the application's clock when this row is created (so each chunk's row
   * has its own time, as in Zulip, whatever transaction it is in).
   */
  private async createArchiveTransaction(t: Queryable, type: number, realmId: number | null): Promise<number> {
    const values: Record<string, string> = {
      timestamp: "$1::timestamptz",
      restored: "false",
      restored_timestamp: "NULL",
      type: String(type),
      realm_id: "$2::int",
      protect_from_deletion: "false",
    };
    const tx = await t.query(
      `INSERT INTO zerver_archivetransaction (${this.txCols.map(q).join(", ")}) VALUES (${this.txCols.map((c) => values[c]).join(", ")}) RETURNING id`,
      [new Date(), realmId],
    );
    return Number(tx.rows[0].id);
  }

  /**
   * run_archiving(type=RETENTION_POLICY_BASED, realm, chunk_size): one transaction per batch until
   * a batch comes back short; on 12.x each batch stages delete_messages' notices, delivered after
   * its COMMIT (see stageDeleteNotices).
   */
  async inChunks(realm: EventRealm, where: string, params: unknown[], chunkSize: number): Promise<number> {
    const realmId = realm.id;
    const notify = this.notify;
    let count = 0;
    for (;;) {
      const started = Date.now();
      let staged = 0;
      const work = async (t: Queryable) => {
        const txId = await this.createArchiveTransaction(t, RETENTION_POLICY_BASED, realmId);
        const n = params.length;
        const moved = await t.query(
          `INSERT INTO zerver_archivedmessage (${this.msgCols.map(q).join(", ")}, archive_transaction_id)
             SELECT ${this.msgCols.map((c) => `zerver_message.${q(c)}`).join(", ")}, $${n + 1}::bigint
               FROM zerver_message ${where}
              LIMIT ${chunkSize}
           ON CONFLICT (id) DO UPDATE SET archive_transaction_id = $${n + 1}::bigint
           RETURNING id`,
          [...params, txId],
        );
        const ids = moved.rows.map((r: any) => Number(r.id));
        if (!ids.length) {
          await t.query("DELETE FROM zerver_archivetransaction WHERE id = $1", [txId]); // Nothing was archived
          return { ids, txId };
        }
        await this.moveRelated(t, ids);
        // delete_messages: on 12.x its notices first; then Message.objects.filter(id__in=...)
        // .delete(), with Django's cascades.
        if (notify)
          staged = await stageDeleteNotices(t, realm, ids, notify, this.totals.notices, this.hasDevice, "the deletion of messages past their retention period");
        await this.deleteMessages(t, ids);
        return { ids, txId };
      };
      const { ids, txId } = notify ? await notify.events.tx(this.db, work) : await this.db.tx(work);
      if (ids.length) {
        count += ids.length;
        this.totals.transactions.push(txId);
        this.log?.write("INFO", `Archived ${ids.length} messages in ${((Date.now() - started) / 1000).toFixed(2)}s in transaction ${txId}.`);
      }
      if (notify && staged) {
        this.staged += staged;
        if (this.staged >= (notify.maxStagedRecipients ?? MAX_STAGED_RETENTION_RECIPIENTS)) {
          this.staged = 0;
          await notify.flush();
        }
      }
      if (ids.length < chunkSize) break;
    }
    return count;
  }

  /** move_related_objects_to_archive; returns the number of attachment links archived. */
  private async moveRelated(t: Queryable, ids: number[], counts: RelatedCounts = this.totals): Promise<number> {
    for (const m of this.related) {
      const res = await t.query(
        `INSERT INTO ${m.dst} (${m.cols.map(q).join(", ")}) SELECT ${m.cols.map((c) => `x.${q(c)}`).join(", ")} FROM ${m.src} x
          WHERE x.message_id = ANY($1::int[]) ON CONFLICT (id) DO NOTHING`,
        [ids],
      );
      counts[m.key] += res.rowCount ?? 0;
    }
    const att = await t.query(
      `INSERT INTO zerver_archivedattachment (${this.attCols.map(q).join(", ")})
         SELECT ${this.attCols.map((c) => `a.${q(c)}`).join(", ")} FROM zerver_attachment a
          WHERE a.id IN (SELECT attachment_id FROM zerver_attachment_messages WHERE message_id = ANY($1::int[]))
       ON CONFLICT (id) DO NOTHING`,
      [ids],
    );
    counts.archived_attachments += att.rowCount ?? 0;
    const links = await t.query(
      `INSERT INTO zerver_archivedattachment_messages (id, archivedattachment_id, archivedmessage_id)
         SELECT id, attachment_id, message_id FROM zerver_attachment_messages WHERE message_id = ANY($1::int[])
       ON CONFLICT (id) DO NOTHING`,
      [ids],
    );
    return links.rowCount ?? 0;
  }

  /** Message.objects.filter(id__in=ids).delete() with Django's cascades: what was deleted. */
  private async deleteMessages(t: Queryable, ids: number[]): Promise<DeletionPlan> {
    if (this.cascade) return { deleted: await deleteMessagesAlong(t, this.cascade, ids), setNull: {} };
    const del = new CascadeDeletion(t, this.fks!, "archive these messages");
    await del.addRoots("zerver_message", "SELECT unnest($1::int[])", [ids]);
    await del.collect();
    const plan = await del.execute();
    await del.dispose();
    return plan;
  }

  /**
   * move_messages_to_archive(message_ids, realm, chunk_size, skip_notify) (zerver/lib/retention.py),
   * inside the caller's transaction `t` (Zulip's inner atomic blocks are savepoint-less): the ids
   * in slices of `chunkSize`, each run_archiving(type=MANUAL, realm, chunk_size=None): a new
   * ArchiveTransaction (type 2, `realmId`), the messages copied (ON CONFLICT (id) moves an
   * archived id to it), their related rows, then the messages deleted; a slice that finds nothing
   * deletes its ArchiveTransaction again. After each slice the Attachments whose
   * ArchivedAttachment twin links one of its messages and that no message or scheduled message
   * uses any more are deleted (Attachment's post_delete flush_used_upload_space_cache: the
   * owners' realms' keys go to `inval`). Zulip raises Message.DoesNotExist when nothing at all
   * was archived; the caller decides (`messages` 0).
   *
   * The realm per release: 10.x and 11.x take realm=None unless given (do_delete_messages_by_sender
   * and do_scrub_realm's system-bot messages pass none: ArchiveTransactions without a realm);
   * 12.x requires it (do_delete_messages_by_sender passes user.realm).
   *
   * `notify` (12.x, skip_notify=False): delete_messages' notices for each slice, before its
   * messages are deleted (stageDeleteNotices), delivered after the caller's COMMIT; without it,
   * skip_notify=True or a release before 12.x: nothing is sent.
   */
  async moveMessagesToArchive(
    t: Queryable,
    ids: number[],
    opts: { realmId: number | null; chunkSize: number; inval: CacheKeySink; notify?: MessageDeletionNotify | null },
  ): Promise<MovedToArchive> {
    const out: MovedToArchive = {
      transactions: [],
      messages: 0,
      user_messages: 0,
      reactions: 0,
      submessages: 0,
      archived_attachments: 0,
      attachment_messages: 0,
      attachments_deleted: 0,
      deleted: { deleted: {}, setNull: {} },
      notices: { delete_message_events: 0, first_message_id_updates: 0, push_removal_jobs: 0 },
    };
    const notify = opts.notify ?? null;
    const maxStaged = notify?.maxStagedRecipients ?? MAX_STAGED_DELETION_RECIPIENTS;
    let staged = 0;
    for (let i = 0; i < ids.length; i += opts.chunkSize) {
      const chunk = ids.slice(i, i + opts.chunkSize);
      const txId = await this.createArchiveTransaction(t, MANUAL, opts.realmId);
      const moved = await t.query(
        `INSERT INTO zerver_archivedmessage (${this.msgCols.map(q).join(", ")}, archive_transaction_id)
           SELECT ${this.msgCols.map((c) => `zerver_message.${q(c)}`).join(", ")}, $2::bigint
             FROM zerver_message WHERE zerver_message.id = ANY($1::int[])
         ON CONFLICT (id) DO UPDATE SET archive_transaction_id = $2::bigint
         RETURNING id`,
        [chunk, txId],
      );
      const got = moved.rows.map((r: any) => Number(r.id));
      if (!got.length) {
        await t.query("DELETE FROM zerver_archivetransaction WHERE id = $1", [txId]); // Nothing was archived
      } else {
        out.attachment_messages += await this.moveRelated(t, got, out);
        if (notify) {
          staged += await stageDeleteNotices(t, notify.realm, got, notify, out.notices, this.hasDevice, notify.what);
          if (staged > maxStaged) {
            throw new CommandError(
              `${notify.what} would send events to more than ${maxStaged} recipients in all, more than zulip-manage can hold in memory ` +
                "until its commit, so it was rolled back. Run with --events=none (open clients then show the deleted messages until they reload).",
            );
          }
        }
        out.deleted = mergePlans(out.deleted, await this.deleteMessages(t, got));
        out.messages += got.length;
        out.transactions.push(txId);
      }
      // Clean up attachments: Attachment.objects.filter(messages__isnull=True,
      // scheduled_messages__isnull=True, id__in=<ArchivedAttachments linking the slice>).delete()
      const del = new CascadeDeletion(t, this.fks!, "delete the attachments of the archived messages");
      const n = await del.addRoots(
        "zerver_attachment",
        `SELECT a.id FROM zerver_attachment a
          WHERE a.id IN (SELECT archivedattachment_id FROM zerver_archivedattachment_messages WHERE archivedmessage_id = ANY($1::int[]))
            AND NOT EXISTS (SELECT 1 FROM zerver_attachment_messages m WHERE m.attachment_id = a.id)
            AND NOT EXISTS (SELECT 1 FROM zerver_attachment_scheduled_messages s WHERE s.attachment_id = a.id)`,
        [chunk],
      );
      if (n) {
        await del.collect();
        opts.inval.addKeys(await usedUploadSpaceKeys(t, `SELECT id FROM ${del.tempTable("zerver_attachment")}`), "the organizations' used upload space");
        out.deleted = mergePlans(out.deleted, await del.execute());
        out.attachments_deleted += n;
      }
      await del.dispose();
    }
    return out;
  }

  /** delete_expired_attachments(realm). */
  async deleteExpiredAttachments(realmId: number, inval: CacheInvalidation): Promise<number> {
    return this.db.tx(async (t) => {
      const del = new CascadeDeletion(t, this.fks!, "delete the realm's expired attachments");
      const n = await del.addRoots(
        "zerver_attachment",
        `SELECT a.id FROM zerver_attachment a
          WHERE a.realm_id = $1
            AND NOT EXISTS (SELECT 1 FROM zerver_attachment_messages m WHERE m.attachment_id = a.id)
            AND NOT EXISTS (SELECT 1 FROM zerver_attachment_scheduled_messages s WHERE s.attachment_id = a.id)
            AND a.id IN (SELECT id FROM zerver_archivedattachment WHERE realm_id = $1)
          FOR UPDATE`,
        [realmId],
      );
      if (n) {
        await del.collect();
        // Attachment's post_delete: flush_used_upload_space_cache (the owner's realm).
        inval.addKeys(await usedUploadSpaceKeys(t, `SELECT id FROM ${del.tempTable("zerver_attachment")}`), "the organizations' used upload space");
        await del.execute();
      }
      await del.dispose();
      return n;
    });
  }
}

function emptyArchiveTotals(): ArchiveTotals {
  return {
    transactions: [],
    channel_messages: 0,
    direct_messages: 0,
    user_messages: 0,
    reactions: 0,
    submessages: 0,
    archived_attachments: 0,
    attachments_deleted: 0,
    realms: [],
    notices: { delete_message_events: 0, first_message_id_updates: 0, push_removal_jobs: 0 },
  };
}

/**
 * An Archiver ready for moveMessagesToArchive (catalog read, cascade planned), made before the
 * caller's transaction; `fks`: the catalog's foreign keys when the caller has them already.
 */
export async function messageArchiver(db: Db, fks: CatalogForeignKey[] | null = null): Promise<Archiver> {
  const a = new Archiver(db, emptyArchiveTotals(), null, null, fks);
  await a.init();
  return a;
}

const CHANNEL_DUE = `SELECT m.id FROM zerver_message m
   JOIN unnest($2::int[], $3::timestamptz[]) AS c(recipient_id, cutoff) ON m.recipient_id = c.recipient_id AND m.date_sent < c.cutoff
  WHERE m.realm_id = $1`;
const DIRECT_DUE = `SELECT m.id FROM zerver_message m JOIN zerver_recipient r ON r.id = m.recipient_id
  WHERE m.realm_id = $1 AND r.type IN (${RECIPIENT_PERSONAL}, ${RECIPIENT_DIRECT_MESSAGE_GROUP}) AND m.date_sent < $4::timestamptz`;

/**
 * What archiveMessages would do now (the dry run): the same policies and cutoffs, counted, not
 * written. attachments_deleted counts the realm's Attachments that would be left with neither
 * messages nor scheduled messages and have (or would get) an ArchivedAttachment twin.
 */
export async function planArchiveMessages(db: Db): Promise<ArchiveTotals> {
  const totals = emptyArchiveTotals();
  const now = Date.now();
  for (const { realm, channels } of await realmsAndChannelsForArchiving(db)) {
    const recipients = channels.map((c) => c.recipient_id);
    const cutoffs = channels.map((c) => new Date(now - c.days * 86400_000));
    const direct = realm.message_retention_days !== -1 ? new Date(now - realm.message_retention_days * 86400_000) : null;
    const { rows } = await db.query(
      `WITH ch AS (${CHANNEL_DUE}),
            dm AS (${direct ? DIRECT_DUE : "SELECT NULL::int AS id WHERE false"}),
            due AS (SELECT id FROM ch UNION SELECT id FROM dm)
       SELECT (SELECT count(*) FROM ch)::int AS channel_messages,
              (SELECT count(*) FROM dm)::int AS direct_messages,
              (SELECT count(*) FROM zerver_usermessage WHERE message_id IN (SELECT id FROM due))::int AS user_messages,
              (SELECT count(*) FROM zerver_reaction WHERE message_id IN (SELECT id FROM due))::int AS reactions,
              (SELECT count(*) FROM zerver_submessage WHERE message_id IN (SELECT id FROM due))::int AS submessages,
              (SELECT count(DISTINCT attachment_id) FROM zerver_attachment_messages WHERE message_id IN (SELECT id FROM due))::int AS archived_attachments,
              (SELECT count(*) FROM zerver_attachment a WHERE a.realm_id = $1
                  AND NOT EXISTS (SELECT 1 FROM zerver_attachment_scheduled_messages s WHERE s.attachment_id = a.id)
                  AND NOT EXISTS (SELECT 1 FROM zerver_attachment_messages m WHERE m.attachment_id = a.id AND m.message_id NOT IN (SELECT id FROM due))
                  AND (EXISTS (SELECT 1 FROM zerver_attachment_messages m WHERE m.attachment_id = a.id)
                       OR a.id IN (SELECT id FROM zerver_archivedattachment WHERE realm_id = $1)))::int AS attachments_deleted`,
      direct ? [realm.id, recipients, cutoffs, direct] : [realm.id, recipients, cutoffs],
    );
    const r = rows[0];
    const summary = {
      id: realm.id,
      string_id: realm.string_id,
      name: realm.name,
      channel_messages: r.channel_messages,
      direct_messages: r.direct_messages,
      attachments_deleted: r.attachments_deleted,
    };
    totals.channel_messages += r.channel_messages;
    totals.direct_messages += r.direct_messages;
    totals.user_messages += r.user_messages;
    totals.reactions += r.reactions;
    totals.submessages += r.submessages;
    totals.archived_attachments += r.archived_attachments;
    totals.attachments_deleted += r.attachments_deleted;
    totals.realms.push(summary);
  }
  return totals;
}

/**
 * archive_messages(). `notify`: Zulip 12.x's delete_message events, first_message_id updates and
 * push-notification removals (null: 10.x and 11.x, which send nothing).
 */
export async function archiveMessages(db: Db, inval: CacheInvalidation, log: ZulipLogFile, notify: RetentionNotify | null = null): Promise<ArchiveTotals> {
  const totals = emptyArchiveTotals();
  log.write("INFO", `Starting the archiving process with chunk_size ${MESSAGE_BATCH_SIZE}`);
  const archiver = new Archiver(db, totals, log, notify);
  await archiver.init();
  for (const { realm, channels } of await realmsAndChannelsForArchiving(db)) {
    const summary = { id: realm.id, string_id: realm.string_id, name: realm.name, channel_messages: 0, direct_messages: 0, attachments_deleted: 0 };
    if (channels.length) {
      log.write("INFO", `Archiving stream messages for realm ${realm.string_id}`);
      for (const c of channels) {
        const cutoff = new Date(Date.now() - c.days * 86400_000);
        summary.channel_messages += await archiver.inChunks(
          realm,
          "WHERE zerver_message.realm_id = $1 AND zerver_message.recipient_id = $2 AND zerver_message.date_sent < $3",
          [realm.id, c.recipient_id, cutoff],
          STREAM_MESSAGE_BATCH_SIZE,
        );
      }
      log.write("INFO", `Done. Archived ${summary.channel_messages} messages.`);
    }
    if (realm.message_retention_days !== -1) {
      log.write("INFO", `Archiving personal and huddle messages for realm ${realm.string_id}`);
      const cutoff = new Date(Date.now() - realm.message_retention_days * 86400_000);
      summary.direct_messages = await archiver.inChunks(
        realm,
        `INNER JOIN zerver_recipient ON zerver_recipient.id = zerver_message.recipient_id
          WHERE zerver_message.realm_id = $1 AND zerver_recipient.type IN (${RECIPIENT_PERSONAL}, ${RECIPIENT_DIRECT_MESSAGE_GROUP}) AND zerver_message.date_sent < $2`,
        [realm.id, cutoff],
        MESSAGE_BATCH_SIZE,
      );
      log.write("INFO", `Done. Archived ${summary.direct_messages} messages`);
    }
    summary.attachments_deleted = await archiver.deleteExpiredAttachments(realm.id, inval);
    if (summary.attachments_deleted) {
      inval.changeCommitted();
      log.write("INFO", `Cleaned up ${summary.attachments_deleted} attachments for realm ${realm.string_id}`);
    }
    totals.channel_messages += summary.channel_messages;
    totals.direct_messages += summary.direct_messages;
    totals.attachments_deleted += summary.attachments_deleted;
    totals.realms.push(summary);
  }
  return totals;
}

/** What cleanArchivedData would delete now (the dry run). */
export async function planCleanArchivedData(db: Db, vacuumingDelayDays: number): Promise<{ transactions: number; archived_messages: number }> {
  const protectedCol = await db.hasColumn("zerver_archivetransaction", "protect_from_deletion");
  const cond = `timestamp < now() - make_interval(days => $1::int)${protectedCol ? " AND NOT protect_from_deletion" : ""}`;
  const { rows } = await db.query(
    `SELECT (SELECT count(*) FROM zerver_archivetransaction WHERE ${cond})::int AS transactions,
            (SELECT count(*) FROM zerver_archivedmessage WHERE archive_transaction_id IN (SELECT id FROM zerver_archivetransaction WHERE ${cond}))::int AS archived_messages`,
    [vacuumingDelayDays],
  );
  return { transactions: rows[0].transactions, archived_messages: rows[0].archived_messages };
}

/** clean_archived_data(): the number of ArchiveTransactions deleted. */
export async function cleanArchivedData(db: Db, vacuumingDelayDays: number, log: ZulipLogFile): Promise<{ transactions: number; archived_messages: number }> {
  log.write("INFO", "Cleaning old archive data.");
  const protectedCol = await db.hasColumn("zerver_archivetransaction", "protect_from_deletion");
  const cond = `timestamp < now() - make_interval(days => $1::int)${protectedCol ? " AND NOT protect_from_deletion" : ""}`;
  const { rows } = await db.query(`SELECT id FROM zerver_archivetransaction WHERE ${cond} ORDER BY id`, [vacuumingDelayDays]);
  const ids = rows.map((r: any) => Number(r.id));
  const fks = ids.length ? await catalogForeignKeys(db) : [];
  let count = 0;
  let messages = 0;
  for (let i = 0; i < ids.length; i += TRANSACTION_DELETION_BATCH_SIZE) {
    const block = ids.slice(i, i + TRANSACTION_DELETION_BATCH_SIZE);
    await db.tx(async (t) => {
      const del = new CascadeDeletion(t, fks, "delete old archive transactions");
      // Re-checked under the batch's transaction (a transaction protected meanwhile stays).
      await del.addRoots("zerver_archivetransaction", `SELECT id FROM zerver_archivetransaction WHERE id = ANY($2::bigint[]) AND ${cond} FOR UPDATE`, [
        vacuumingDelayDays,
        block,
      ]);
      await del.collect();
      const plan = await del.execute();
      count += plan.deleted.zerver_archivetransaction ?? 0;
      messages += plan.deleted.zerver_archivedmessage ?? 0;
      await del.dispose();
    });
  }
  log.write("INFO", `Deleted ${count} old ArchiveTransactions.`);
  return { transactions: count, archived_messages: messages };
}
