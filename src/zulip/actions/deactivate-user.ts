// do_deactivate_user (zerver/actions/users.py) and what it calls: change_user_is_active (shared
// with do_reactivate_user), clear_scheduled_emails (zerver/lib/send_email.py),
// revoke_invites_generated_by_user (zerver/lib/invites.py) and, on commit, delete_user_sessions
// (zerver/lib/sessions.py). The one deactivation of a user: deactivate_user, delete_user (which
// starts with it) and the creation helpers (create.ts deactivateUser) all come here.
//
//   deactivateUserInTx(q, userId, opts): Promise<DeactivationResult>
//       one user, inside the caller's transaction: locks the row, and if the user is active
//       writes what do_deactivate_user writes for it (is_active, subscriptions'
//       is_user_active, channel subscriber counts, scheduled emails, revoked invitations, the
//       103 audit row with ROLE_COUNT), stages its events in opts.notify and queues the cache
//       keys in opts.cache. No sessions.
//   doDeactivateUser(db, userId, opts): Promise<DeactivateUserOutcome>
//       the whole do_deactivate_user: the user's active bots first (each in its own
//       transaction), then the user; after each commit the deactivated account's sessions are
//       deleted (on_commit in Zulip). Cache keys (user keys, realm user lists, cached session
//       copies) go to opts.cache; the caller runs opts.cache.commit() and events.commit() at the end.
//
// Deliberate differences from Zulip: the user row is locked (lockUserRow) and re-read before
// anything is written, so two concurrent runs cannot both deactivate (Zulip's do_deactivate_user
// does not lock, and a concurrent pair writes two 103 rows and decrements subscriber counts
// twice); a self-owned system bot is not "cascaded" into itself (Zulip would process it twice);
// the push-bouncer upload queue and Cloud billing are skipped (see commands.md §3.3/§3.4) and
// events are sent only when opts.notify is given (user-events.ts). Sessions are matched by their
// decoded _auth_user_id without checking the signature (Django's get_decoded() ignores sessions
// signed with another SECRET_KEY; such sessions are unusable anyway, so listing or deleting them
// does no harm).
import { AuditLogEventType, insertAuditLog, primeRosterAfterChange, ROLE_COUNT, type RoleCountBaseline, roleCountsAfterChange } from "../audit.js";
import { tableColumns } from "../../db/db.js";
import type { CacheInvalidation, CacheUser } from "../cache.js";
import { CONFIRMATION_STATUS, CONFIRMATION_TYPES } from "../confirmation.js";
import type { Db, Queryable } from "../../db/db.js";
import type { Notify } from "../../services/events.js";
import { activeBotsOwnedBy, lockUserRow, type UserProfile } from "../lookup.js";
import { RecipientType } from "../models.js";
import { deleteUserSessions, type UserSession } from "../sessions.js";
import { sendUserDeactivationEvents } from "../events/user-events.js";
import { CommandError } from "../../lib/errors.js";

export interface LifecycleOptions {
  /** acting_user of the audit rows (manage.py passes None). */
  actingUserId?: number | null;
  /** Collects the memcached keys to delete after COMMIT. */
  cache?: CacheInvalidation;
  /** Audit event time (default: now). */
  now?: Date;
  /**
   * The realm's user counts read beside the transaction (readRoleCountBaseline) for the
   * ROLE_COUNT of the one user this changes; see roleCountsAfterChange.
   */
  roleCountBaseline?: Promise<RoleCountBaseline | null>;
  /** Stage the real-time events (and queue jobs) Zulip sends; with featureLevel for the release. */
  notify?: Notify;
  featureLevel?: number;
}

/** db.tx, through the EventDelivery when there is one (events become due on COMMIT). */
export function lifecycleTx<T>(db: Db, opts: LifecycleOptions, fn: (q: Queryable) => Promise<T>): Promise<T> {
  return opts.notify ? opts.notify.events.tx(db, fn) : db.tx(fn);
}

export interface DeactivationResult {
  userId: number;
  email: string;
  isBot: boolean;
  /** False when the user was already inactive (nothing written). */
  changed: boolean;
  /** Subscription rows whose is_user_active was set to false. */
  subscriptions: number;
  /** Channels whose subscriber_count was decremented. */
  channelIds: number[];
  /** ScheduledEmail rows the user was removed from / that were deleted as a result. */
  scheduledEmailsLeft: number;
  scheduledEmailsDeleted: number;
  /** Confirmation rows (invitations by this user) whose expiry_date was set to now. */
  invitationsRevoked: number;
  auditLogIds: number[];
  /** Filled by doDeactivateUser. */
  sessionsDeleted: number;
}

/**
 * change_user_is_active(): is_active, Subscription.is_user_active for all the user's
 * subscriptions, and subscriber_count ±1 on each channel with an active subscription.
 */
export async function changeUserIsActive(q: Queryable, userId: number, value: boolean): Promise<{ subscriptions: number; channelIds: number[] }> {
  await q.query("UPDATE zerver_userprofile SET is_active = $2 WHERE id = $1", [userId, value]);
  const subs = await q.query("UPDATE zerver_subscription SET is_user_active = $2 WHERE user_profile_id = $1", [userId, value]);
  let channelIds: number[] = [];
  if ((await tableColumns(q, "zerver_stream")).has("subscriber_count")) {
    // get_user_subscribed_streams(user).update(subscriber_count=F("subscriber_count") ± 1)
    const { rows } = await q.query(
      `UPDATE zerver_stream SET subscriber_count = subscriber_count + $2
        WHERE recipient_id IN (SELECT s.recipient_id FROM zerver_subscription s JOIN zerver_recipient r ON r.id = s.recipient_id
                                WHERE s.user_profile_id = $1 AND r.type = $3 AND s.active)
        RETURNING id`,
      [userId, value ? 1 : -1, RecipientType.STREAM],
    );
    channelIds = rows.map((r) => Number(r.id)).sort((a, b) => a - b);
  }
  return { subscriptions: subs.rowCount ?? 0, channelIds };
}

/** clear_scheduled_emails([userId]): drop the user from ScheduledEmail rows; delete rows left with no users. */
async function clearScheduledEmails(q: Queryable, userId: number): Promise<{ left: number; deleted: number }> {
  const { rows } = await q.query(
    `SELECT e.id FROM zerver_scheduledemail e
      WHERE e.id IN (SELECT scheduledemail_id FROM zerver_scheduledemail_users WHERE userprofile_id = $1)
      ORDER BY e.id FOR UPDATE`,
    [userId],
  );
  const ids = rows.map((r) => Number(r.id));
  if (ids.length === 0) return { left: 0, deleted: 0 };
  await q.query("DELETE FROM zerver_scheduledemail_users WHERE scheduledemail_id = ANY ($1::bigint[]) AND userprofile_id = $2", [ids, userId]);
  const del = await q.query(
    `DELETE FROM zerver_scheduledemail e WHERE e.id = ANY ($1::bigint[])
        AND NOT EXISTS (SELECT 1 FROM zerver_scheduledemail_users u WHERE u.scheduledemail_id = e.id)`,
    [ids],
  );
  return { left: ids.length, deleted: del.rowCount ?? 0 };
}

/**
 * revoke_invites_generated_by_user(): expire (expiry_date = now) the INVITATION confirmations of
 * the user's still-valid PreregistrationUsers and the unexpired MULTIUSE_INVITE confirmations of
 * their MultiuseInvites.
 */
async function revokeInvitesGeneratedBy(q: Queryable, userId: number, now: Date): Promise<number> {
  // filter_to_valid_prereg_users: status not used/revoked, and a confirmation (through the
  // generic relation) that has not expired.
  const { rowCount } = await q.query(
    `UPDATE confirmation_confirmation SET expiry_date = $2
      WHERE id IN (
        SELECT c.id FROM confirmation_confirmation c
         WHERE c.type = $3 AND c.object_id IN (
           SELECT p.id FROM zerver_preregistrationuser p
            WHERE p.referred_by_id = $1 AND p.status NOT IN ($5, $6)
              AND EXISTS (SELECT 1 FROM confirmation_confirmation c2
                            JOIN django_content_type ct ON ct.id = c2.content_type_id
                           WHERE ct.app_label = 'zerver' AND ct.model = 'preregistrationuser'
                             AND c2.object_id = p.id AND (c2.expiry_date IS NULL OR c2.expiry_date >= $2)))
        UNION
        SELECT c.id FROM confirmation_confirmation c
         WHERE c.type = $4 AND c.object_id IN (SELECT m.id FROM zerver_multiuseinvite m WHERE m.referred_by_id = $1)
           AND (c.expiry_date >= $2 OR c.expiry_date IS NULL))`,
    [userId, now, CONFIRMATION_TYPES.INVITATION, CONFIRMATION_TYPES.MULTIUSE_INVITE, CONFIRMATION_STATUS.USED, CONFIRMATION_STATUS.REVOKED],
  );
  return rowCount ?? 0;
}

/** One user's do_deactivate_user database writes and events, inside the caller's transaction. */
export async function deactivateUserInTx(q: Queryable, userId: number, opts: LifecycleOptions = {}): Promise<DeactivationResult> {
  const user = await lockUserRow(q, userId);
  const result: DeactivationResult = {
    userId,
    email: user.delivery_email,
    isBot: Boolean(user.is_bot),
    changed: false,
    subscriptions: 0,
    channelIds: [],
    scheduledEmailsLeft: 0,
    scheduledEmailsDeleted: 0,
    invitationsRevoked: 0,
    auditLogIds: [],
    sessionsDeleted: 0,
  };
  if (!user.is_active) return result;
  const now = opts.now ?? new Date();
  const active = await changeUserIsActive(q, userId, false);
  primeRosterAfterChange(q, Number(user.realm_id), opts.roleCountBaseline, userId, user, { ...user, is_active: false });
  result.subscriptions = active.subscriptions;
  result.channelIds = active.channelIds;
  const emails = await clearScheduledEmails(q, userId);
  result.scheduledEmailsLeft = emails.left;
  result.scheduledEmailsDeleted = emails.deleted;
  result.invitationsRevoked = await revokeInvitesGeneratedBy(q, userId, now);
  result.auditLogIds = await insertAuditLog(q, [
    {
      realmId: Number(user.realm_id),
      eventType: AuditLogEventType.USER_DEACTIVATED,
      eventTime: now,
      actingUserId: opts.actingUserId ?? null,
      modifiedUserId: userId,
      extraData: { [ROLE_COUNT]: await roleCountsAfterChange(q, Number(user.realm_id), opts.roleCountBaseline, user, { ...user, is_active: false }) },
    },
  ]);
  if (opts.notify) {
    await sendUserDeactivationEvents(q, opts.notify, user, {
      featureLevel: opts.featureLevel ?? Number.MAX_SAFE_INTEGER,
      revokedInvites: result.invitationsRevoked > 0,
    });
  }
  await opts.cache?.userChanged(q, { ...user, is_active: false } as UserProfile & CacheUser, ["is_active"]);
  result.changed = true;
  return result;
}

export interface DeactivateUserOutcome {
  /** The user's own result (changed=false when already inactive). */
  user: DeactivationResult;
  /** Bots deactivated first, in id order. */
  bots: DeactivationResult[];
}

/** delete_user_sessions(user) after a commit; the cached copies go to `cache`. */
async function deleteSessionsAfterCommit(db: Db, userId: number, cache?: CacheInvalidation): Promise<UserSession[]> {
  // No transaction needed: a read, then (only when there is something to delete) one DELETE of
  // exactly those sessions, which is atomic by itself.
  const deleted = await deleteUserSessions(db, [userId], cache);
  if (deleted.length) cache?.changeCommitted();
  return deleted;
}

/**
 * do_deactivate_user(user, acting_user=…): bots first, each committed on its own, then the
 * user; each deactivated account's sessions are deleted right after its commit.
 */
export async function doDeactivateUser(db: Db, userId: number, opts: LifecycleOptions = {}): Promise<DeactivateUserOutcome> {
  const { rows } = await db.query("SELECT is_active FROM zerver_userprofile WHERE id = $1", [userId]);
  if (rows.length === 0) throw new CommandError(`The user with id ${userId} no longer exists; nothing was changed.`);
  const outcome: DeactivateUserOutcome = { user: undefined as unknown as DeactivationResult, bots: [] };
  if (rows[0].is_active) {
    for (const bot of await activeBotsOwnedBy(db, userId)) {
      if (Number(bot.id) === userId) continue; // a system bot owning itself
      const r = await lifecycleTx(db, opts, (q) => deactivateUserInTx(q, Number(bot.id), { ...opts, roleCountBaseline: undefined }));
      if (r.changed) {
        opts.cache?.changeCommitted();
        r.sessionsDeleted = (await deleteSessionsAfterCommit(db, r.userId, opts.cache)).length;
      }
      outcome.bots.push(r);
    }
  }
  // The baseline was read before the bots' deactivations: it holds for the user only when there were none.
  const baseline = outcome.bots.some((b) => b.changed) ? undefined : opts.roleCountBaseline;
  const r = await lifecycleTx(db, opts, (q) => deactivateUserInTx(q, userId, { ...opts, roleCountBaseline: baseline }));
  if (r.changed) {
    opts.cache?.changeCommitted();
    r.sessionsDeleted = (await deleteSessionsAfterCommit(db, userId, opts.cache)).length;
  }
  outcome.user = r;
  return outcome;
}
