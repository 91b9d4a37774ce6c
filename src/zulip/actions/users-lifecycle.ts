// Deactivating and reactivating users the way Zulip's actions do it (zerver/actions/users.py
// do_deactivate_user / change_user_is_active, zerver/actions/create_user.py do_reactivate_user,
// zerver/lib/send_email.py clear_scheduled_emails, zerver/lib/invites.py
// revoke_invites_generated_by_user, zerver/lib/sessions.py delete_user_sessions), for
// deactivate_user, reactivate_user and delete_user.
//
// API (all functions take a Db or a Queryable; none of them prints anything):
//
//   activeBotsOwnedBy(q, userId): Promise<UserProfile[]>
//       get_active_bots_owned_by_user: active bots whose bot_owner is the user (ordered by id;
//       for a system bot that owns itself, the bot itself is in the list, as in Zulip).
//   describeSessions(q, userIds): Promise<SessionListing[]>
//       the user's django_session rows with Python's str() of expire_date and the decoded dict,
//       what `deactivate_user` prints (expired sessions included).
//   deactivateUserInTx(q, userId, opts): Promise<DeactivationResult>
//       one user, inside the caller's transaction: locks the row, and if the user is active
//       writes what do_deactivate_user writes for it (is_active, subscriptions'
//       is_user_active, channel subscriber counts, scheduled emails, revoked invitations, the
//       103 audit row with ROLE_COUNT) and queues the cache keys in opts.cache. No sessions.
//   doDeactivateUser(db, userId, opts): Promise<DeactivateUserOutcome>
//       the whole do_deactivate_user: the user's active bots first (each in its own
//       transaction), then the user; after each commit the deactivated account's sessions are
//       deleted (on_commit in Zulip). Cache keys (user keys, realm user lists, cached session
//       copies) go to opts.cache; the caller runs opts.cache.commit() at the end.
//   reactivationProblem(q, user): Promise<string | null>
//       why reactivate_user must refuse (realm deactivated, placeholder account, already
//       active, delivery email now used by another active account, bot name in use), or null.
//   cacheReportJson(report): the "cache" member of the commands' --json documents.
//   reactivateUserInTx(q, userId, opts): Promise<ReactivationResult>
//       do_reactivate_user inside the caller's transaction (locks and re-checks the row first;
//       throws CommandError with the problem): is_active, is_user_active, subscriber counts,
//       the 104 audit row with ROLE_COUNT, cache keys.
//
// Deliberate differences from Zulip: the user row is locked (SELECT … FOR NO KEY UPDATE) and
// re-read before anything is written, so two concurrent runs cannot both deactivate (Zulip's
// do_deactivate_user does not lock, and a concurrent pair writes two 103 rows and decrements
// subscriber counts twice); a self-owned system bot is not "cascaded" into itself (Zulip would
// process it twice); Tornado events, the push-bouncer upload queue and Cloud billing are
// skipped (see commands.md §3.3/§3.4) unless opts.notify is given (user-events.ts). Sessions are matched by their decoded _auth_user_id
// without checking the signature (Django's get_decoded() ignores sessions signed with another
// SECRET_KEY; such sessions are unusable anyway, so listing or deleting them does no harm).
import { AuditLogEventType, insertAuditLog, ROLE_COUNT, type RoleCountBaseline, roleCountsAfterChange, tableColumnSet } from "../audit.js";
import type { CacheInvalidation, CacheUser } from "../cache.js";
import type { Db, Queryable } from "../../db/db.js";
import type { Notify } from "../../services/events.js";
import { CommandError } from "../../lib/errors.js";
import type { UserProfile } from "../lookup.js";
import { pyRepr } from "../../lib/pyformat.js";
import { decodeSessionData, deleteUserSessions, findUserSessions, type UserSession } from "../sessions.js";
import { sendUserDeactivationEvents, sendUserReactivationEvents } from "../events/user-events.js";

/** Recipient.STREAM */
const RECIPIENT_STREAM = 2;
/** Confirmation.INVITATION / MULTIUSE_INVITE */
const CONFIRMATION_INVITATION = 2;
const CONFIRMATION_MULTIUSE_INVITE = 6;
/** confirmation.settings STATUS_USED / STATUS_REVOKED */
const STATUS_USED = 1;
const STATUS_REVOKED = 2;

export async function activeBotsOwnedBy(q: Queryable, userId: number): Promise<UserProfile[]> {
  const { rows } = await q.query(
    "SELECT * FROM zerver_userprofile WHERE is_bot AND is_active AND bot_owner_id = $1 ORDER BY id",
    [userId],
  );
  return rows;
}

export interface SessionListing {
  sessionKey: string;
  userId: number;
  /** Python's str() of the aware datetime Django returns, e.g. "2025-01-02 03:04:05.123456+00:00". */
  expireDate: string;
  /** The decoded session dict. */
  data: Record<string, unknown>;
  /** `print(session.expire_date, session.get_decoded())` */
  line: string;
}

/** zerver.lib.sessions.user_sessions() for several users, formatted as manage.py prints them. */
export async function describeSessions(q: Queryable, userIds: Iterable<number>): Promise<SessionListing[]> {
  const sessions = await findUserSessions(q, userIds);
  if (sessions.length === 0) return [];
  const { rows } = await q.query(
    `SELECT session_key, session_data,
            to_char(expire_date AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS secs,
            to_char(expire_date AT TIME ZONE 'UTC', 'US') AS us
       FROM django_session WHERE session_key = ANY ($1::text[])`,
    [sessions.map((s) => s.sessionKey)],
  );
  const byKey = new Map(rows.map((r) => [r.session_key as string, r]));
  const out: SessionListing[] = [];
  for (const s of sessions) {
    const r = byKey.get(s.sessionKey);
    if (!r) continue; // deleted meanwhile
    const us = Number(r.us);
    const expireDate = `${r.secs}${us ? `.${String(us).padStart(6, "0")}` : ""}+00:00`;
    const data = decodeSessionData(r.session_data) ?? {};
    out.push({ sessionKey: s.sessionKey, userId: s.userId, expireDate, data, line: `${expireDate} ${pyRepr(data)}` });
  }
  return out;
}

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
function tx<T>(db: Db, opts: LifecycleOptions, fn: (q: Queryable) => Promise<T>): Promise<T> {
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

async function lockUser(q: Queryable, userId: number): Promise<UserProfile> {
  const { rows } = await q.query("SELECT * FROM zerver_userprofile WHERE id = $1 FOR NO KEY UPDATE", [userId]);
  if (rows.length === 0) throw new CommandError(`The user with id ${userId} no longer exists; nothing was changed.`);
  return rows[0];
}

/**
 * change_user_is_active(): is_active, Subscription.is_user_active for all the user's
 * subscriptions, and subscriber_count ±1 on each channel with an active subscription.
 */
async function changeUserIsActive(q: Queryable, userId: number, value: boolean): Promise<{ subscriptions: number; channelIds: number[] }> {
  await q.query("UPDATE zerver_userprofile SET is_active = $2 WHERE id = $1", [userId, value]);
  const subs = await q.query("UPDATE zerver_subscription SET is_user_active = $2 WHERE user_profile_id = $1", [userId, value]);
  let channelIds: number[] = [];
  if ((await tableColumnSet(q, "zerver_stream")).has("subscriber_count")) {
    // get_user_subscribed_streams(user).update(subscriber_count=F("subscriber_count") ± 1)
    const { rows } = await q.query(
      `UPDATE zerver_stream SET subscriber_count = subscriber_count + $2
        WHERE recipient_id IN (SELECT s.recipient_id FROM zerver_subscription s JOIN zerver_recipient r ON r.id = s.recipient_id
                                WHERE s.user_profile_id = $1 AND r.type = $3 AND s.active)
        RETURNING id`,
      [userId, value ? 1 : -1, RECIPIENT_STREAM],
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
    [userId, now, CONFIRMATION_INVITATION, CONFIRMATION_MULTIUSE_INVITE, STATUS_USED, STATUS_REVOKED],
  );
  return rowCount ?? 0;
}

/** One user's do_deactivate_user database writes, inside the caller's transaction. */
export async function deactivateUserInTx(q: Queryable, userId: number, opts: LifecycleOptions = {}): Promise<DeactivationResult> {
  const user = await lockUser(q, userId);
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
    await sendUserDeactivationEvents(q, opts.notify, user, { featureLevel: opts.featureLevel ?? Number.MAX_SAFE_INTEGER, revokedInvites: result.invitationsRevoked > 0 });
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
      const r = await tx(db, opts, (q) => deactivateUserInTx(q, Number(bot.id), { ...opts, roleCountBaseline: undefined }));
      if (r.changed) {
        opts.cache?.changeCommitted();
        r.sessionsDeleted = (await deleteSessionsAfterCommit(db, r.userId, opts.cache)).length;
      }
      outcome.bots.push(r);
    }
  }
  // The baseline was read before the bots' deactivations: it holds for the user only when there were none.
  const baseline = outcome.bots.some((b) => b.changed) ? undefined : opts.roleCountBaseline;
  const r = await tx(db, opts, (q) => deactivateUserInTx(q, userId, { ...opts, roleCountBaseline: baseline }));
  if (r.changed) {
    opts.cache?.changeCommitted();
    r.sessionsDeleted = (await deleteSessionsAfterCommit(db, userId, opts.cache)).length;
  }
  outcome.user = r;
  return outcome;
}

/** Why reactivate_user must refuse for this user (as read now), or null. */
export async function reactivationProblem(q: Queryable, user: UserProfile): Promise<string | null> {
  const { rows } = await q.query("SELECT string_id, name, deactivated FROM zerver_realm WHERE id = $1", [user.realm_id]);
  const realm = rows[0];
  if (realm?.deactivated) {
    return (
      `The organization '${realm.string_id}' (${realm.name}) is deactivated; reactivate the organization first ` +
      `(a deactivated organization's users cannot log in anyway).`
    );
  }
  if (user.is_active) return `User ${user.delivery_email} is already active.`;
  if (user.is_mirror_dummy) return "Cannot activate a placeholder account; ask the user to sign up, instead.";
  // The unique indexes make a clash in the same realm impossible on an intact database; a
  // damaged one (or a unique index dropped by hand) must not end up with two active accounts
  // answering to one address.
  const clash = await q.query(
    `SELECT id, delivery_email FROM zerver_userprofile
      WHERE realm_id = $1 AND id <> $2 AND is_active
        AND (upper(delivery_email::text) = upper($3) OR upper(email::text) = upper($4))
      ORDER BY id LIMIT 1`,
    [user.realm_id, user.id, user.delivery_email, user.email],
  );
  if (clash.rows.length) {
    return (
      `The email address ${user.delivery_email} is now used by another active account ` +
      `(user id ${clash.rows[0].id}, ${clash.rows[0].delivery_email}); change one of the addresses first.`
    );
  }
  if (user.is_bot) {
    // check_bot_name_available(realm_id, full_name, is_activation=True)
    const dup = await q.query(
      "SELECT 1 FROM zerver_userprofile WHERE realm_id = $1 AND full_name = $2 AND is_active LIMIT 1",
      [user.realm_id, String(user.full_name).trim()],
    );
    if (dup.rows.length) {
      return (
        `There is already an active bot named "${user.full_name}" in this organization. ` +
        "To reactivate this bot, you must rename or deactivate the other one first."
      );
    }
  }
  return null;
}

export interface ReactivationResult {
  userId: number;
  email: string;
  isBot: boolean;
  subscriptions: number;
  channelIds: number[];
  auditLogIds: number[];
  /** For a bot: its owner, when that owner is deactivated (Zulip only reassigns it for an acting admin). */
  inactiveBotOwner: { id: number; email: string } | null;
}

/** do_reactivate_user(user, acting_user=…) inside the caller's transaction. */
export async function reactivateUserInTx(q: Queryable, userId: number, opts: LifecycleOptions = {}): Promise<ReactivationResult> {
  const user = await lockUser(q, userId);
  const problem = await reactivationProblem(q, user);
  if (problem) throw new CommandError(problem);
  const now = opts.now ?? new Date();
  const active = await changeUserIsActive(q, userId, true);
  const auditLogIds = await insertAuditLog(q, [
    {
      realmId: Number(user.realm_id),
      eventType: AuditLogEventType.USER_REACTIVATED,
      eventTime: now,
      actingUserId: opts.actingUserId ?? null,
      modifiedUserId: userId,
      extraData: { [ROLE_COUNT]: await roleCountsAfterChange(q, Number(user.realm_id), opts.roleCountBaseline, user, { ...user, is_active: true }) },
    },
  ]);
  let inactiveBotOwner: ReactivationResult["inactiveBotOwner"] = null;
  if (user.is_bot && user.bot_owner_id !== null && Number(user.bot_owner_id) !== userId) {
    const o = await q.query("SELECT id, delivery_email, is_active FROM zerver_userprofile WHERE id = $1", [user.bot_owner_id]);
    if (o.rows.length && !o.rows[0].is_active) inactiveBotOwner = { id: Number(o.rows[0].id), email: o.rows[0].delivery_email };
  }
  if (opts.notify) await sendUserReactivationEvents(q, opts.notify, user, { featureLevel: opts.featureLevel ?? Number.MAX_SAFE_INTEGER });
  await opts.cache?.userChanged(q, { ...user, is_active: true } as UserProfile & CacheUser, ["is_active"]);
  return {
    userId,
    email: user.delivery_email,
    isBot: Boolean(user.is_bot),
    subscriptions: active.subscriptions,
    channelIds: active.channelIds,
    auditLogIds,
    inactiveBotOwner,
  };
}

export { cacheReportJson } from "../cache.js";
