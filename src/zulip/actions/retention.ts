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
//   No events are sent (retention deletes silently in Zulip too).
// cleanArchivedData (clean_archived_data): ArchiveTransactions older than
//   ARCHIVED_DATA_VACUUMING_DELAY_DAYS and not protect_from_deletion, 100 per transaction, with
//   their archived rows (CASCADE). ArchivedAttachments are left for delete_old_unclaimed_attachments.
// scrub_realms (organizations due for deletion) is in realm-scrub.ts.
//
// Restoring (restore_data_from_archive) copies the archive rows back by archive_transaction_id;
// everything it needs is in the rows written here.
import { usedUploadSpaceKeys } from "./attachments.js";
import type { CacheInvalidation } from "../cache.js";
import type { Db, Queryable } from "../../db/db.js";
import type { ZulipLogFile } from "../../lib/managelog.js";
import {
  assertCovered,
  cascadeClosure,
  CascadeDeletion,
  catalogForeignKeys,
  type CatalogForeignKey,
  GENERIC_RELATIONS,
  referencesTo,
  ruleFor,
} from "../../db/ondelete.js";

export const MESSAGE_BATCH_SIZE = 1000;
export const STREAM_MESSAGE_BATCH_SIZE = 100;
export const TRANSACTION_DELETION_BATCH_SIZE = 100;
export const RETENTION_POLICY_BASED = 1;
/** ArchiveTransaction.MANUAL: deletions that are not the retention policy's. */
export const MANUAL = 2;
const RECIPIENT_PERSONAL = 1;
const RECIPIENT_DIRECT_MESSAGE_GROUP = 3;

const q = (name: string) => `"${name.replace(/"/g, '""')}"`;

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
}

export interface RetentionTarget {
  realm: { id: number; string_id: string; name: string; message_retention_days: number };
  channels: { id: number; recipient_id: number; days: number }[];
}

/** get_realms_and_streams_for_archiving, in realm and channel id order. */
export async function realmsAndChannelsForArchiving(db: Queryable): Promise<RetentionTarget[]> {
  const realms = await db.query("SELECT id, string_id, name, message_retention_days FROM zerver_realm WHERE message_retention_days <> -1 ORDER BY id");
  const byId = new Map<number, RetentionTarget>();
  for (const r of realms.rows) byId.set(Number(r.id), { realm: { id: Number(r.id), string_id: r.string_id, name: r.name, message_retention_days: Number(r.message_retention_days) }, channels: [] });
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

/** Delete messages and everything that cascades from them along `edges`: ids found top-down, rows deleted bottom-up. */
async function deleteMessagesAlong(t: Queryable, edges: { table: string; column: string; parent: string }[], ids: number[]): Promise<void> {
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
  for (const table of order.reverse()) {
    await t.query(`DELETE FROM ${q(table)} WHERE id = ANY($1::bigint[])`, [[...found.get(table)!]]);
  }
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
  /** Attachment rows deleted because none of their messages is left. */
  attachments_deleted: number;
}

export class Archiver {
  private fks: CatalogForeignKey[] | null = null;
  private cascade: { table: string; column: string; parent: string }[] | null = null;
  private msgCols: string[] = [];
  private related: { src: string; dst: string; cols: string[]; key: "user_messages" | "reactions" | "submessages" }[] = [];
  private attCols: string[] = [];
  private txCols: string[] = [];

  constructor(
    private readonly db: Db,
    readonly totals: ArchiveTotals,
    private readonly log: ZulipLogFile | null,
  ) {}

  async init(): Promise<void> {
    this.fks = await catalogForeignKeys(this.db);
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
  }

  /** run_archiving_in_chunks: one transaction per batch until a batch comes back short. */
  async inChunks(realmId: number, where: string, params: unknown[], chunkSize: number): Promise<number> {
    let count = 0;
    for (;;) {
      const started = Date.now();
      const { ids, txId } = await this.db.tx(async (t) => {
        const values: Record<string, string> = { timestamp: "now()", restored: "false", restored_timestamp: "NULL", type: String(RETENTION_POLICY_BASED), realm_id: "$1", protect_from_deletion: "false" };
        const tx = await t.query(`INSERT INTO zerver_archivetransaction (${this.txCols.map(q).join(", ")}) VALUES (${this.txCols.map((c) => values[c]).join(", ")}) RETURNING id`, [realmId]);
        const txId = Number(tx.rows[0].id);
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
        // delete_messages: Message.objects.filter(id__in=...).delete(), with Django's cascades.
        await this.deleteMessages(t, ids);
        return { ids, txId };
      });
      if (ids.length) {
        count += ids.length;
        this.totals.transactions.push(txId);
        this.log?.write("INFO", `Archived ${ids.length} messages in ${((Date.now() - started) / 1000).toFixed(2)}s in transaction ${txId}.`);
      }
      if (ids.length < chunkSize) break;
    }
    return count;
  }

  /** move_related_objects_to_archive. */
  private async moveRelated(t: Queryable, ids: number[], counts: RelatedCounts = this.totals): Promise<void> {
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
    await t.query(
      `INSERT INTO zerver_archivedattachment_messages (id, archivedattachment_id, archivedmessage_id)
         SELECT id, attachment_id, message_id FROM zerver_attachment_messages WHERE message_id = ANY($1::int[])
       ON CONFLICT (id) DO NOTHING`,
      [ids],
    );
  }

  /** Message.objects.filter(id__in=ids).delete() with Django's cascades. */
  private async deleteMessages(t: Queryable, ids: number[]): Promise<void> {
    if (this.cascade) return deleteMessagesAlong(t, this.cascade, ids);
    const del = new CascadeDeletion(t, this.fks!, "archive these messages");
    await del.addRoots("zerver_message", "SELECT unnest($1::int[])", [ids]);
    await del.collect();
    await del.execute();
    await del.dispose();
  }

  /**
   * move_messages_to_archive(message_ids, realm, chunk_size) as Zulip 10.x and 11.x have it
   * (zerver/lib/retention.py), inside the caller's transaction `t` (do_scrub_realm is one
   * durable transaction; Zulip's inner atomic blocks are savepoint-less): the ids in slices of
   * `chunkSize`, each run_archiving(type=MANUAL, realm, chunk_size=None): a new ArchiveTransaction
   * (type 2, `realmId`), the messages copied (ON CONFLICT (id) moves an archived id to it), their
   * related rows, then the messages deleted; a slice that finds nothing deletes its
   * ArchiveTransaction again. After each slice the Attachments whose ArchivedAttachment twin
   * links one of its messages and that no message or scheduled message uses any more are deleted
   * (their owners' realm_used_upload_space entries go to `inval`). Zulip raises
   * Message.DoesNotExist when nothing at all was archived; the caller decides (`messages` 0).
   */
  async moveMessagesToArchive(
    t: Queryable,
    ids: number[],
    opts: { realmId: number | null; chunkSize: number; inval: CacheInvalidation },
  ): Promise<MovedToArchive> {
    const out: MovedToArchive = { transactions: [], messages: 0, user_messages: 0, reactions: 0, submessages: 0, archived_attachments: 0, attachments_deleted: 0 };
    for (let i = 0; i < ids.length; i += opts.chunkSize) {
      const chunk = ids.slice(i, i + opts.chunkSize);
      const values: Record<string, string> = { timestamp: "clock_timestamp()", restored: "false", restored_timestamp: "NULL", type: String(MANUAL), realm_id: "$1::int", protect_from_deletion: "false" };
      const tx = await t.query(
        `INSERT INTO zerver_archivetransaction (${this.txCols.map(q).join(", ")}) VALUES (${this.txCols.map((c) => values[c]).join(", ")}) RETURNING id`,
        [opts.realmId],
      );
      const txId = Number(tx.rows[0].id);
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
        await this.moveRelated(t, got, out);
        await this.deleteMessages(t, got);
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
        await del.execute();
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

export function emptyArchiveTotals(): ArchiveTotals {
  return { transactions: [], channel_messages: 0, direct_messages: 0, user_messages: 0, reactions: 0, submessages: 0, archived_attachments: 0, attachments_deleted: 0, realms: [] };
}

/** An Archiver ready for moveMessagesToArchive (catalog read, cascade planned). */
export async function messageArchiver(db: Db): Promise<Archiver> {
  const a = new Archiver(db, emptyArchiveTotals(), null);
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
    const summary = { id: realm.id, string_id: realm.string_id, name: realm.name, channel_messages: r.channel_messages, direct_messages: r.direct_messages, attachments_deleted: r.attachments_deleted };
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

/** archive_messages(). */
export async function archiveMessages(db: Db, inval: CacheInvalidation, log: ZulipLogFile): Promise<ArchiveTotals> {
  const totals = emptyArchiveTotals();
  log.write("INFO", `Starting the archiving process with chunk_size ${MESSAGE_BATCH_SIZE}`);
  const archiver = new Archiver(db, totals, log);
  await archiver.init();
  for (const { realm, channels } of await realmsAndChannelsForArchiving(db)) {
    const summary = { id: realm.id, string_id: realm.string_id, name: realm.name, channel_messages: 0, direct_messages: 0, attachments_deleted: 0 };
    if (channels.length) {
      log.write("INFO", `Archiving stream messages for realm ${realm.string_id}`);
      for (const c of channels) {
        const cutoff = new Date(Date.now() - c.days * 86400_000);
        summary.channel_messages += await archiver.inChunks(
          realm.id,
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
        realm.id,
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
      await del.addRoots("zerver_archivetransaction", `SELECT id FROM zerver_archivetransaction WHERE id = ANY($2::bigint[]) AND ${cond} FOR UPDATE`, [vacuumingDelayDays, block]);
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

