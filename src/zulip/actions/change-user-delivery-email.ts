// do_change_user_delivery_email(user, new_email, acting_user=None) (zerver/actions/user_settings.py),
// as manage.py change_user_email calls it.
//
// In one transaction the user row is locked and re-read; delivery_email (the real address, used
// for login and email) becomes the new address, and so does `email` (the address other users
// see) when the user's email_address_visibility is "everyone" (1) — otherwise `email` stays the
// generated user<id>@<host> address. The events (user-events.ts sendDeliveryEmailChangeEvents)
// and a 125 (USER_EMAIL_CHANGED) audit row for the user as modified user, as the release writes
// it (emailChangedExtraData). Then the cached user objects under the old and the new addresses,
// the realm's user list and (when `email` changed) the display-recipient caches are
// invalidated. No confirmation email is sent and the user's sessions stay valid (as in
// manage.py).
//
// Checks Zulip does not make (manage.py stores anything): the new address must pass Django's
// email validator, differ from the current one, and not be used by another account of the
// organization (checked before and again under the lock; a unique index violation is reported
// the same way instead of a database IntegrityError traceback).
import { AuditLogEventType, insertAuditLog, NEW_VALUE, OLD_VALUE } from "../audit.js";
import type { CacheInvalidation, CacheUser } from "../cache.js";
import type { Db, Queryable } from "../../db/db.js";
import { seriesAtLeast } from "../../db/zulip-versions.js";
import { CommandError } from "../../lib/errors.js";
import type { AvatarSettings } from "../avatar.js";
import { validateEmailAddress } from "../email-address.js";
import { lockUserRow, type RealmRef, type UserProfile } from "../lookup.js";
import { EmailAddressVisibility } from "../models.js";
import type { EventDelivery } from "../../services/events.js";
import { sendDeliveryEmailChangeEvents } from "../events/user-events.js";
import { databaseSeries } from "../rows.js";

/**
 * The 125 row of do_change_user_delivery_email as manage.py change_user_email writes it, per
 * release (zulip/zulip):
 * - acting_user: the command calls do_change_user_delivery_email(user, new, acting_user=None)
 *   and the action writes acting_user=acting_user, so NULL — true of 10.x already (its
 *   test_import_export's test_export_realm_data_scrubbing calls the action with
 *   acting_user=None); before the parameter existed (9.x and older) it was the user themself.
 * - extra_data: {RealmAuditLog.OLD_VALUE: old delivery_email, NEW_VALUE: new} since PR #34132
 *   "do_change_user_email: Store old and new email in the audit log", merged 2025-04-05 on main
 *   after 10.0 was released (2025-03-20), so from 11.0 on; 10.x writes {}.
 */
function emailChangedExtraData(series: string, oldEmail: string, newEmail: string): Record<string, unknown> {
  return seriesAtLeast(series, "11.x") ? { [OLD_VALUE]: oldEmail, [NEW_VALUE]: newEmail } : {};
}

/** Whether changing this user's delivery email changes the address other users see too. */
export function changesDisplayEmail(user: UserProfile): boolean {
  return Number(user.email_address_visibility) === EmailAddressVisibility.EVERYONE;
}

/** Another account of the realm that already answers to `email` (either address column). */
async function conflictMessage(q: Queryable, user: UserProfile, email: string, realmLabel: string): Promise<string | null> {
  const { rows } = await q.query(
    `SELECT id, delivery_email, full_name, is_active, is_bot FROM zerver_userprofile
      WHERE realm_id = $1 AND id <> $2
        AND (upper(delivery_email::text) = upper($3) OR ($4 AND upper(email::text) = upper($3)))
      ORDER BY id LIMIT 1`,
    [user.realm_id, user.id, email, changesDisplayEmail(user)],
  );
  if (rows.length === 0) return null;
  const o = rows[0];
  const what = `${o.is_bot ? "bot" : "user"} ${o.full_name} (id ${o.id}${o.is_active ? "" : ", deactivated"})`;
  return `The email address ${email} is already used by another account in the organization '${realmLabel}': ${what}.`;
}

/** Refuse (CommandError) a new address that is invalid, the current one, or another account's in the realm. */
export async function checkDeliveryEmailChange(q: Queryable, user: UserProfile, newEmail: string, realm: RealmRef): Promise<void> {
  const invalid = validateEmailAddress(newEmail);
  if (invalid) throw new CommandError(`Invalid email address '${newEmail}': ${invalid}.`);
  if (newEmail === user.delivery_email) throw new CommandError(`${user.delivery_email} already has this email address.`);
  const conflict = await conflictMessage(q, user, newEmail, realm.string_id);
  if (conflict) throw new CommandError(conflict);
}

export interface DeliveryEmailChange {
  before: UserProfile;
  /** The address other users see now. */
  display: string;
  auditLogIds: number[];
  /** Events that could not be built (see sendDeliveryEmailChangeEvents); the command warns. */
  eventsNotSent: string[];
}

/** do_change_user_delivery_email(user, new_email, acting_user=None), in its own transaction. */
export async function doChangeUserDeliveryEmail(
  db: Db,
  userId: number,
  newEmail: string,
  opts: { realm: RealmRef; cache: CacheInvalidation; events: EventDelivery; avatar: AvatarSettings | null; featureLevel: number },
): Promise<DeliveryEmailChange> {
  const series = await databaseSeries(db);
  const notify = { events: opts.events, realm: opts.realm, what: `the new email address of user ${userId}` };
  const result = await opts.events.tx(db, async (q) => {
    const before = await lockUserRow(q, userId, { missing: "The user was deleted while this command ran; nothing was changed." });
    const everyone = changesDisplayEmail(before);
    const again = await conflictMessage(q, before, newEmail, opts.realm.string_id);
    if (again) throw new CommandError(again);
    const fields = everyone ? ["email", "delivery_email"] : ["delivery_email"];
    try {
      if (everyone) await q.query("UPDATE zerver_userprofile SET email = $2, delivery_email = $2 WHERE id = $1", [userId, newEmail]);
      else await q.query("UPDATE zerver_userprofile SET delivery_email = $2 WHERE id = $1", [userId, newEmail]);
    } catch (e: any) {
      if (e?.code === "23505") {
        throw new CommandError(`The email address ${newEmail} is already used by another account in the organization '${opts.realm.string_id}'.`);
      }
      throw e;
    }
    const after = { ...before, delivery_email: newEmail, ...(everyone ? { email: newEmail } : {}) };
    const eventsNotSent = await sendDeliveryEmailChangeEvents(q, notify, after as UserProfile, { avatar: opts.avatar, featureLevel: opts.featureLevel });
    const auditLogIds = await insertAuditLog(q, [
      {
        realmId: Number(before.realm_id),
        eventType: AuditLogEventType.USER_EMAIL_CHANGED,
        eventTime: new Date(),
        actingUserId: null,
        modifiedUserId: userId,
        extraData: emailChangedExtraData(series, before.delivery_email as string, newEmail),
      },
    ]);
    await opts.cache.userChanged(q, after as UserProfile & CacheUser, fields, { before: before as UserProfile & CacheUser });
    return { before, display: after.email as string, auditLogIds, eventsNotSent };
  });
  opts.cache.changeCommitted();
  return result;
}
