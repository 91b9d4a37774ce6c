// bulk_add_subscriptions (zerver/actions/streams.py) in the caller's transaction: new
// Subscription rows with a palette colour each, reactivation of inactive ones, the
// SUBSCRIPTION_CREATED / SUBSCRIPTION_ACTIVATED rows carrying event_last_message_id, and the
// channels' subscriber_count (11.0+). The events are the caller's (subscriptions.ts).
import { AuditLogEventType, auditLogRow } from "../audit.js";
import type { Queryable } from "../../db/db.js";
import { RecipientType, subscriptionValues } from "../models.js";
import { insertRows, type Row } from "../rows.js";
import { tableColumns } from "../../db/db.js";
import { lastMessageId } from "./message-send.js";

/** zerver/lib/stream_color.py STREAM_ASSIGNMENT_COLORS. */
export const STREAM_ASSIGNMENT_COLORS = [
  "#76ce90",
  "#fae589",
  "#a6c7e5",
  "#e79ab5",
  "#bfd56f",
  "#f4ae55",
  "#b0a5fd",
  "#addfe5",
  "#f5ce6e",
  "#c2726a",
  "#94c849",
  "#bd86e5",
  "#ee7e4a",
  "#a6dcbf",
  "#95a5fd",
  "#53a063",
  "#9987e1",
  "#e4523d",
  "#c2c2c2",
  "#4f8de4",
  "#c6a8ad",
  "#e7cc4d",
  "#c8bebf",
  "#a47462",
];

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
  const streams = (await db.query(`SELECT id, recipient_id FROM zerver_stream WHERE id = ANY($1::bigint[]) ORDER BY recipient_id`, [channelIds])).rows.map(
    (r) => ({ id: Number(r.id), recipientId: Number(r.recipient_id) }),
  );
  const users = (await db.query(`SELECT id, is_active FROM zerver_userprofile WHERE id = ANY($1::int[]) ORDER BY id`, [userIds])).rows.map((r) => ({
    id: Number(r.id),
    isActive: r.is_active as boolean,
  }));
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
          auditLogRow({
            realmId,
            eventType: AuditLogEventType.SUBSCRIPTION_ACTIVATED,
            eventTime: when,
            actingUserId: opts.actingUserId ?? null,
            modifiedUserId: u.id,
            modifiedStreamId: s.id,
            eventLastMessageId,
          }),
        );
      } else {
        const color = nextColor < available.length ? available[nextColor] : STREAM_ASSIGNMENT_COLORS[s.recipientId % STREAM_ASSIGNMENT_COLORS.length];
        nextColor++;
        newSubs.push(subscriptionValues(s.recipientId, u.id, u.isActive, color));
        audits.push(
          auditLogRow({
            realmId,
            eventType: AuditLogEventType.SUBSCRIPTION_CREATED,
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
