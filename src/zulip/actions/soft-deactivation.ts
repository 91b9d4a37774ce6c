// Soft deactivation, as zerver/lib/soft_deactivation.py does it (Zulip 10-12).
//
// A soft-deactivated ("long-term idle") user gets no UserMessage rows for channel messages that
// do not concern them personally (do_send_messages skips them); the rows are added back when they
// return (add_missing_messages), so that nothing shows they were away.
//
//   softDeactivateUsers   do_soft_deactivate_users: batches of 100 users, one transaction each;
//                         per user last_active_message_id = their newest UserMessage's message
//                         (else the newest message), long_term_idle = true, a 121
//                         (USER_SOFT_DEACTIVATED) audit row; the user caches flushed.
//   usersToSoftDeactivate get_users_for_soft_deactivation: active humans not yet idle whose newest
//                         UserActivity.last_visit is more than `days` whole days ago (users with no
//                         UserActivity row are never picked).
//   addMissingMessages    add_missing_messages: for each channel subscription (the ones the user
//                         left before going idle skipped), the user's subscription history from
//                         RealmAuditLog (301/302/303 ordered by event_last_message_id, id) tells
//                         which messages after last_active_message_id they were subscribed for;
//                         those without a UserMessage row get one with flags 0, in id order, in
//                         batches of 10,000, each batch raising last_active_message_id to its last
//                         message (so an interrupted run resumes). Zulip builds the whole id list
//                         in memory; here the history becomes id intervals and PostgreSQL streams
//                         the ids batch by batch (same rows, flat memory).
//   reactivateUserIfSoftDeactivated
//                         add_missing_messages, then long_term_idle = false and a 120
//                         (USER_SOFT_ACTIVATED) audit row.
//
// No events are sent and nothing is queued by these functions in Zulip (the deferred_work
// "soft_reactivate" job is only queued when a notification is about to reach an idle user).
// Zulip writes a line per user to /var/log/zulip/soft_deactivation.log; so do we (best effort).
import { AuditLogEventType, insertAuditLog } from "../audit.js";
import type { CacheInvalidation, CacheUser } from "../cache.js";
import type { Db, Queryable } from "../../db/db.js";
import { CommandError } from "../../lib/errors.js";
import { ZulipLogFile } from "../../lib/managelog.js";
import { lockUserRow } from "../lookup.js";
import { RecipientType } from "../models.js";

const BULK_CREATE_BATCH_SIZE = 10000;
const SOFT_DEACTIVATE_BATCH_SIZE = 100;

/** logger "zulip.soft_deactivation" (log_to_file: SOFT_DEACTIVATION_LOG_PATH). */
export class SoftDeactivationLog extends ZulipLogFile {
  constructor(logDir: string | null) {
    super(logDir, "soft_deactivation.log");
  }
}

const USER_COLUMNS = "id, realm_id, email, delivery_email, api_key, is_bot, is_active, long_term_idle, last_active_message_id, full_name";

export interface SoftUser extends CacheUser {
  long_term_idle: boolean;
  last_active_message_id: number | null;
  full_name: string;
  is_active: boolean;
}

function toUser(r: any): SoftUser {
  return {
    ...r,
    id: Number(r.id),
    realm_id: Number(r.realm_id),
    last_active_message_id: r.last_active_message_id === null ? null : Number(r.last_active_message_id),
  };
}

async function loadUsers(q: Queryable, ids: number[]): Promise<SoftUser[]> {
  const { rows } = await q.query(`SELECT ${USER_COLUMNS} FROM zerver_userprofile WHERE id = ANY($1::int[]) ORDER BY id`, [ids]);
  return rows.map(toUser);
}

/**
 * get_users_from_emails of the command: delivery_email exactly (case-sensitive, Zulip's noted
 * bug), in the realm when given; refuses unless as many users as emails are found.
 */
export async function usersFromEmails(q: Queryable, emails: string[], realmId: number | null): Promise<SoftUser[]> {
  const params: unknown[] = [emails];
  let sql = `SELECT ${USER_COLUMNS} FROM zerver_userprofile WHERE delivery_email = ANY($1::text[])`;
  if (realmId !== null) {
    params.push(realmId);
    sql += " AND realm_id = $2";
  }
  const { rows } = await q.query(sql + " ORDER BY id", params);
  if (rows.length !== emails.length) {
    const found = new Set(rows.map((r: any) => r.delivery_email as string));
    const missing = [...new Set(emails.filter((e) => !found.has(e)))];
    throw new CommandError(`Users with the following emails were not found:\n\n${missing.join("\n")}\n\nCheck if they are correct.`);
  }
  return rows.map(toUser);
}

/** get_users_for_soft_deactivation(inactive_for_days, realm). */
export async function usersToSoftDeactivate(q: Queryable, inactiveForDays: number, realmId: number | null): Promise<SoftUser[]> {
  const params: unknown[] = [inactiveForDays];
  let realmCond = "";
  if (realmId !== null) {
    params.push(realmId);
    realmCond = "AND u.realm_id = $2";
  }
  // (today - max_last_visit).days > N  <=>  the gap is at least N + 1 whole days.
  const { rows } = await q.query(
    `SELECT ua.user_profile_id AS id FROM zerver_useractivity ua JOIN zerver_userprofile u ON u.id = ua.user_profile_id
      WHERE u.is_active AND NOT u.is_bot AND NOT u.long_term_idle ${realmCond}
      GROUP BY ua.user_profile_id
     HAVING max(ua.last_visit) <= now() - make_interval(days => $1::int + 1)
      ORDER BY 1`,
    params,
  );
  return loadUsers(
    q,
    rows.map((r: any) => Number(r.id)),
  );
}

export interface SoftDeactivated {
  id: number;
  email: string;
  last_active_message_id: number;
  audit_log_id: number;
}

/** do_soft_deactivate_users. */
export async function softDeactivateUsers(db: Db, users: SoftUser[], inval: CacheInvalidation, log: SoftDeactivationLog): Promise<SoftDeactivated[]> {
  const done: SoftDeactivated[] = [];
  for (let i = 0; i < users.length; i += SOFT_DEACTIVATE_BATCH_SIZE) {
    const batch = users.slice(i, i + SOFT_DEACTIVATE_BATCH_SIZE);
    const results = await db.tx(async (q) => {
      const out: Omit<SoftDeactivated, "audit_log_id">[] = [];
      const entries = [];
      for (const u of batch) {
        const before = toUser(
          await lockUserRow(q, u.id, {
            columns: USER_COLUMNS,
            missing: `User ${u.delivery_email} (id ${u.id}) was deleted while this command ran; nothing in this batch of users was changed.`,
          }),
        );
        const { rows } = await q.query(
          `SELECT coalesce((SELECT message_id FROM zerver_usermessage WHERE user_profile_id = $1 ORDER BY message_id DESC LIMIT 1),
                           (SELECT id FROM zerver_message ORDER BY id DESC LIMIT 1)) AS last`,
          [u.id],
        );
        if (rows[0].last === null) throw new CommandError("There are no messages on this server; a user cannot be soft-deactivated before the first message.");
        const last = Number(rows[0].last);
        await q.query("UPDATE zerver_userprofile SET long_term_idle = true, last_active_message_id = $2 WHERE id = $1", [u.id, last]);
        await inval.userChanged(q, { ...before, long_term_idle: true, last_active_message_id: last }, ["long_term_idle", "last_active_message_id"], { before });
        // Each user's row gets its own timezone_now() in Zulip.
        entries.push({ realmId: before.realm_id, modifiedUserId: u.id, eventType: AuditLogEventType.USER_SOFT_DEACTIVATED, eventTime: new Date() });
        out.push({ id: u.id, email: before.delivery_email, last_active_message_id: last });
      }
      const ids = await insertAuditLog(q, entries);
      return out.map((o, k) => ({ ...o, audit_log_id: ids[k]! }));
    });
    inval.changeCommitted();
    for (const r of results) log.write("INFO", `Soft deactivated user ${r.id}`);
    log.write("INFO", `Soft-deactivated batch of ${batch.length} users; ${users.length - i - batch.length} remain to process`);
    done.push(...results);
  }
  return done;
}

interface SubscriptionLog {
  event_type: number;
  event_last_message_id: number | null;
}

/**
 * filter_by_subscription_history for one channel as id intervals (lo, hi] (hi null: no end):
 * an activation/creation at e starts a stretch after e; a deactivation at e ends the current
 * stretch at e (a deactivation with no activation before it: everything up to e counts); after
 * the last log, a stretch is still open only if that log is an activation.
 */
export function subscribedIntervals(logs: SubscriptionLog[]): { lo: number | null; hi: number | null }[] {
  const out: { lo: number | null; hi: number | null }[] = [];
  let lo: number | null = null; // messages > lo are still in play (null: all of them)
  for (const l of logs) {
    if (l.event_last_message_id === null)
      throw new CommandError("A subscription audit log entry has no event_last_message_id; the subscription history cannot be replayed.");
    const e = l.event_last_message_id;
    if (l.event_type === AuditLogEventType.SUBSCRIPTION_DEACTIVATED) {
      if (lo === null || e > lo) out.push({ lo, hi: e });
    } else if (l.event_type === AuditLogEventType.SUBSCRIPTION_ACTIVATED || l.event_type === AuditLogEventType.SUBSCRIPTION_CREATED) {
      lo = lo === null ? e : Math.max(lo, e);
    }
  }
  const last = logs[logs.length - 1];
  if (last && last.event_type !== AuditLogEventType.SUBSCRIPTION_DEACTIVATED) out.push({ lo, hi: null });
  return out;
}

export interface CatchUp {
  id: number;
  email: string;
  messages_added: number;
  last_active_message_id: number | null;
}

/** add_missing_messages(user). */
async function addMissingMessages(db: Db, userId: number): Promise<CatchUp> {
  const [user] = await loadUsers(db, [userId]);
  if (!user) throw new CommandError(`User id ${userId} no longer exists.`);
  if (user.last_active_message_id === null)
    throw new CommandError(`User ${user.delivery_email} has no last_active_message_id; they were never soft-deactivated.`);
  const lastActive = user.last_active_message_id;
  const { rows: subs } = await db.query(
    `SELECT s.recipient_id, r.type_id FROM zerver_subscription s JOIN zerver_recipient r ON r.id = s.recipient_id
      WHERE s.user_profile_id = $1 AND r.type = $2 ORDER BY s.id`,
    [userId, RecipientType.STREAM],
  );
  const streamIds = subs.map((s: any) => Number(s.type_id));
  const { rows: logRows } = await db.query(
    `SELECT modified_stream_id, event_type, event_last_message_id FROM zerver_realmauditlog
      WHERE modified_user_id = $1 AND modified_stream_id = ANY($2::int[]) AND event_type = ANY($3::int[])
      ORDER BY event_last_message_id, id`,
    [userId, streamIds, [AuditLogEventType.SUBSCRIPTION_CREATED, AuditLogEventType.SUBSCRIPTION_DEACTIVATED, AuditLogEventType.SUBSCRIPTION_ACTIVATED]],
  );
  const logs = new Map<number, SubscriptionLog[]>();
  for (const r of logRows) {
    const list = logs.get(Number(r.modified_stream_id)) ?? [];
    list.push({ event_type: Number(r.event_type), event_last_message_id: r.event_last_message_id === null ? null : Number(r.event_last_message_id) });
    logs.set(Number(r.modified_stream_id), list);
  }
  const rid: number[] = [];
  const los: (number | null)[] = [];
  const his: (number | null)[] = [];
  for (const s of subs) {
    const history = logs.get(Number(s.type_id)) ?? [];
    const last = history[history.length - 1];
    if (!last)
      throw new CommandError(
        `User ${user.delivery_email} is subscribed to channel id ${s.type_id} but has no subscription history for it in the audit log; their messages cannot be reconstructed.`,
      );
    // Unsubscribed before going idle: nothing to add for that channel.
    if (last.event_type === AuditLogEventType.SUBSCRIPTION_DEACTIVATED && last.event_last_message_id !== null && last.event_last_message_id <= lastActive)
      continue;
    for (const iv of subscribedIntervals(history)) {
      rid.push(Number(s.recipient_id));
      los.push(iv.lo);
      his.push(iv.hi);
    }
  }
  let added = 0;
  let cursor = lastActive;
  let newLast: number | null = lastActive;
  while (rid.length) {
    const { rows } = await db.query(
      `SELECT DISTINCT m.id FROM zerver_message m
         JOIN unnest($3::int[], $4::bigint[], $5::bigint[]) AS iv(recipient_id, lo, hi)
           ON m.recipient_id = iv.recipient_id AND (iv.lo IS NULL OR m.id > iv.lo) AND (iv.hi IS NULL OR m.id <= iv.hi)
        WHERE m.realm_id = $2 AND m.id > $6
          AND NOT EXISTS (SELECT 1 FROM zerver_usermessage um WHERE um.user_profile_id = $1 AND um.message_id = m.id)
        ORDER BY m.id LIMIT ${BULK_CREATE_BATCH_SIZE}`,
      [userId, user.realm_id, rid, los, his, cursor],
    );
    if (!rows.length) break;
    const ids = rows.map((r: any) => Number(r.id));
    const top = ids[ids.length - 1]!;
    await db.tx(async (q) => {
      // bulk_insert_all_ums(user_ids=[user], message_ids, flags=0)
      const ins = await q.query(
        `INSERT INTO zerver_usermessage (user_profile_id, message_id, flags) SELECT $1, m, 0 FROM unnest($2::int[]) AS m ON CONFLICT DO NOTHING`,
        [userId, ids],
      );
      added += ins.rowCount ?? 0;
      const u = await q.query(
        "UPDATE zerver_userprofile SET last_active_message_id = GREATEST(last_active_message_id, $2) WHERE id = $1 RETURNING last_active_message_id",
        [userId, top],
      );
      newLast = u.rows[0] ? Number(u.rows[0].last_active_message_id) : newLast;
    });
    cursor = top;
  }
  return { id: userId, email: user.delivery_email, messages_added: added, last_active_message_id: newLast };
}

export interface SoftReactivated extends CatchUp {
  audit_log_id: number;
}

/** reactivate_user_if_soft_deactivated: null when the user is not long-term idle. */
export async function reactivateUserIfSoftDeactivated(
  db: Db,
  user: SoftUser,
  inval: CacheInvalidation,
  log: SoftDeactivationLog,
): Promise<SoftReactivated | null> {
  if (!user.long_term_idle) return null;
  const caught = await addMissingMessages(db, user.id);
  const auditId = await db.tx(async (q) => {
    const before = toUser(
      await lockUserRow(q, user.id, { columns: USER_COLUMNS, missing: `User ${user.delivery_email} (id ${user.id}) was deleted while this command ran.` }),
    );
    await q.query("UPDATE zerver_userprofile SET long_term_idle = false WHERE id = $1", [user.id]);
    await inval.userChanged(q, { ...before, long_term_idle: false }, ["long_term_idle"], { before });
    const [id] = await insertAuditLog(q, [
      { realmId: before.realm_id, modifiedUserId: user.id, eventType: AuditLogEventType.USER_SOFT_ACTIVATED, eventTime: new Date() },
    ]);
    return id!;
  });
  inval.changeCommitted();
  log.write("INFO", `Soft reactivated user ${user.id}`);
  return { ...caught, audit_log_id: auditId };
}

/** get_soft_deactivated_users_for_catch_up + do_catch_up_soft_deactivated_users (failures logged, not fatal). */
export async function catchUpSoftDeactivatedUsers(
  db: Db,
  realmId: number | null,
  log: SoftDeactivationLog,
): Promise<{ caught_up: CatchUp[]; failures: { id: number; email: string; error: string }[] }> {
  const params: unknown[] = [];
  let sql = "SELECT id FROM zerver_userprofile WHERE long_term_idle AND is_active AND NOT is_bot";
  if (realmId !== null) {
    params.push(realmId);
    sql += " AND realm_id = $1";
  }
  const { rows } = await db.query(sql + " ORDER BY id", params);
  const caught: CatchUp[] = [];
  const failures: { id: number; email: string; error: string }[] = [];
  for (const r of rows) {
    const id = Number(r.id);
    try {
      caught.push(await addMissingMessages(db, id));
    } catch (e: any) {
      const [u] = await loadUsers(db, [id]);
      failures.push({ id, email: u?.delivery_email ?? "", error: e?.message ?? String(e) });
      log.write("ERROR", `Failed to catch up ${id}: ${e?.message ?? e}`);
    }
  }
  log.write("INFO", `Caught up ${caught.length} soft-deactivated users`);
  if (failures.length) log.write("ERROR", `Failed to catch up ${failures.length} soft-deactivated users`);
  return { caught_up: caught, failures };
}

/**
 * The end of do_auto_soft_deactivate_users: unless settings.py sets
 * AUTO_CATCH_UP_SOFT_DEACTIVATED_USERS = False (then only logged, and null), catch up every
 * soft-deactivated user (of the realm, when given).
 */
export async function autoCatchUpSoftDeactivatedUsers(
  db: Db,
  realmId: number | null,
  log: SoftDeactivationLog,
  settings: { fileValue(name: string, fallback: unknown): unknown },
): Promise<Awaited<ReturnType<typeof catchUpSoftDeactivatedUsers>> | null> {
  if (settings.fileValue("AUTO_CATCH_UP_SOFT_DEACTIVATED_USERS", true) === false) {
    log.write("INFO", "Not catching up users since AUTO_CATCH_UP_SOFT_DEACTIVATED_USERS is off");
    return null;
  }
  return catchUpSoftDeactivatedUsers(db, realmId, log);
}
