// do_reactivate_user (zerver/actions/create_user.py), with acting_user NULL as for the management
// commands, and the checks the web UI's "Reactivate" makes first (reactivate_user_backend:
// check_bot_name_available; the placeholder and realm checks).
//
//   reactivationProblem(q, user): Promise<string | null>
//       why reactivate_user must refuse (realm deactivated, placeholder account, already
//       active, delivery email now used by another active account, bot name in use), or null.
//   reactivateUserInTx(q, userId, opts): Promise<ReactivationResult>
//       do_reactivate_user inside the caller's transaction (locks and re-checks the row first;
//       throws CommandError with the problem): is_active, is_user_active, subscriber counts,
//       the 104 audit row with ROLE_COUNT, events, cache keys.
//   doReactivateUser(db, userId, opts): the same in its own transaction (events due, cache
//       change committed after COMMIT).
import { pyStrip } from "../../lib/pyformat.js";
import { AuditLogEventType, insertAuditLog, primeRosterAfterChange, ROLE_COUNT, roleCountsAfterChange } from "../audit.js";
import type { CacheUser } from "../cache.js";
import type { Db, Queryable } from "../../db/db.js";
import { CommandError } from "../../lib/errors.js";
import { lockUserRow, type UserProfile } from "../lookup.js";
import { sendUserReactivationEvents } from "../events/user-events.js";
import { changeUserIsActive, type LifecycleOptions, lifecycleTx } from "./deactivate-user.js";

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
    const dup = await q.query("SELECT 1 FROM zerver_userprofile WHERE realm_id = $1 AND full_name = $2 AND is_active LIMIT 1", [
      user.realm_id,
      pyStrip(String(user.full_name)),
    ]);
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
  const user = await lockUserRow(q, userId);
  const problem = await reactivationProblem(q, user);
  if (problem) throw new CommandError(problem);
  const now = opts.now ?? new Date();
  const active = await changeUserIsActive(q, userId, true);
  primeRosterAfterChange(q, Number(user.realm_id), opts.roleCountBaseline, userId, user, { ...user, is_active: true });
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

/** do_reactivate_user in its own transaction; the cache change is marked committed after COMMIT. */
export async function doReactivateUser(db: Db, userId: number, opts: LifecycleOptions = {}): Promise<ReactivationResult> {
  const result = await lifecycleTx(db, opts, (q) => reactivateUserInTx(q, userId, opts));
  opts.cache?.changeCommitted();
  return result;
}
