// change_user_email: change a user's email address, as manage.py's change_user_email does with
// do_change_user_delivery_email (zerver/actions/user_settings.py).
//
// In one transaction the user row is locked and re-read; delivery_email (the real address, used
// for login and email) becomes the new address, and so does `email` (the address other users
// see) when the user's email_address_visibility is "everyone" (1) — otherwise `email` stays the
// generated user<id>@<host> address. A 125 (USER_EMAIL_CHANGED) audit row is written for the
// user as modified user, as the release does (see emailChangedAuditRow). Then the cached user
// objects under the old and the new addresses, the realm's user list and (when `email` changed)
// the display-recipient caches are invalidated. No confirmation email is sent and the user's
// sessions stay valid (as in manage.py).
//
// Differences from manage.py, which do not change what is written: the new address is checked
// first with Django's email validator (manage.py stores anything), and an address already used
// by another account of the organization is refused with a clear message instead of a database
// IntegrityError traceback; giving the user's current address is refused. Like manage.py it
// prints nothing on success. --dry-run shows the change and writes nothing.
//
// --json: src/schemas/change_user_email.ts (README: --json output): delivery_email and email
// (the address others see) as {old, new}; audit_log_ids [] and cache/events null in a dry run.
import { addEventsOption, addFlushCacheOption, addRealmOption } from "../cli/options.js";
import { AuditLogEventType, insertAuditLog, NEW_VALUE, OLD_VALUE } from "../zulip/audit.js";
import { CacheInvalidation, type CacheUser } from "../zulip/cache.js";
import { EventDelivery, eventsReportJson, featureLevel } from "../services/events.js";
import { readAvatarSettings } from "../zulip/avatar.js";
import { sendDeliveryEmailChangeEvents } from "../zulip/events/user-events.js";
import { defineUntypedCommand } from "../cli/command.js";
import type { Queryable } from "../db/db.js";
import { validateEmailAddress } from "../zulip/email-address.js";
import { CommandError, UsageError } from "../lib/errors.js";
import { getUserWithRealm, type UserProfile } from "../zulip/lookup.js";
import { cacheReportJson as cacheJson } from "../zulip/actions/users-lifecycle.js";
import { realmJsonById, userJson } from "../cli/json-objects.js";
import type { ChangeUserEmailBody } from "../schemas/change_user_email.js";
import { seriesAtLeast } from "../db/zulip-versions.js";

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

/** UserProfile.EMAIL_ADDRESS_VISIBILITY_EVERYONE */
const VISIBILITY_EVERYONE = 1;

/** Another account of the realm that already answers to `email` (either address column). */
async function conflictMessage(q: Queryable, user: UserProfile, email: string, changesDisplayEmail: boolean, realmLabel: string): Promise<string | null> {
  const { rows } = await q.query(
    `SELECT id, delivery_email, full_name, is_active, is_bot FROM zerver_userprofile
      WHERE realm_id = $1 AND id <> $2
        AND (upper(delivery_email::text) = upper($3) OR ($4 AND upper(email::text) = upper($3)))
      ORDER BY id LIMIT 1`,
    [user.realm_id, user.id, email, changesDisplayEmail],
  );
  if (rows.length === 0) return null;
  const o = rows[0];
  const what = `${o.is_bot ? "bot" : "user"} ${o.full_name} (id ${o.id}${o.is_active ? "" : ", deactivated"})`;
  return `The email address ${email} is already used by another account in the organization '${realmLabel}': ${what}.`;
}

export default defineUntypedCommand({
  name: "change_user_email",
  description:
    "Change the email address for a user.\n\n" +
    "The address other users see changes too when the user's email visibility is \"everyone\". " +
    "No confirmation email is sent; the new address is checked for validity and uniqueness first.",
  examples: [
    "zulip-manage change_user_email -r zulip iago@zulip.com iago@example.org",
    "zulip-manage change_user_email iago@zulip.com iago@example.org --dry-run",
  ],
  configure(cmd) {
    cmd.usage("[options] [-r REALM] <old email> <new email>");
    addRealmOption(cmd);
    cmd.argument("[old_email]", "email address to change");
    cmd.argument("[new_email]", "new email address");
    cmd.option("--dry-run", "check and show the change, and change nothing");
    addFlushCacheOption(cmd);
    addEventsOption(cmd);
  },
  async run(ctx, args, opts) {
    const [oldEmail, newEmail] = args;
    if (oldEmail === undefined) throw new UsageError("the following arguments are required: <old email>, <new email>");
    if (newEmail === undefined) throw new UsageError("the following arguments are required: <new email>");
    const dryRun = Boolean(opts.dryRun);
    const out = ctx.out;
    const db = await ctx.db();
    const { user, realm } = await getUserWithRealm(db, oldEmail, opts.realm);

    const invalid = validateEmailAddress(newEmail);
    if (invalid) throw new CommandError(`Invalid email address '${newEmail}': ${invalid}.`);
    if (newEmail === user.delivery_email) throw new CommandError(`${user.delivery_email} already has this email address.`);
    const plan = (u: UserProfile) => Number(u.email_address_visibility) === VISIBILITY_EVERYONE;
    const conflict = await conflictMessage(db, user, newEmail, plan(user), realm.string_id);
    if (conflict) throw new CommandError(conflict);

    const doc: ChangeUserEmailBody = {
      dry_run: dryRun,
      realm: await realmJsonById(db, ctx.config().settings, user.realm_id),
      user: userJson(user),
      delivery_email: { old: user.delivery_email, new: newEmail },
      email: { old: user.email, new: plan(user) ? newEmail : user.email },
      audit_log_ids: [],
      cache: null,
      events: null,
    };
    if (dryRun) {
      out.line(
        `Would change the email address of ${user.full_name} from ${user.delivery_email} to ${newEmail}` +
          (plan(user) ? " (also the address other users see)." : ` (other users keep seeing ${user.email}).`),
      );
      out.line("(dry run: nothing was changed)");
      out.jsonBody<ChangeUserEmailBody>(doc);
      return;
    }

    const { databaseSeries } = await import("../zulip/rows.js"); // loaded only when writing
    const series = await databaseSeries(db);
    const inval = new CacheInvalidation(ctx, opts.flushCache);
    const events = new EventDelivery(ctx, opts.events);
    const notify = { events, realm: { id: realm.id, string_id: realm.string_id }, what: `the new email address of user ${user.id}` };
    const result = await events.tx(db, async (q) => {
      const { rows: locked } = await q.query("SELECT * FROM zerver_userprofile WHERE id = $1 FOR NO KEY UPDATE", [user.id]);
      if (locked.length === 0) throw new CommandError("The user was deleted while this command ran; nothing was changed.");
      const before: UserProfile = locked[0];
      const everyone = plan(before);
      const again = await conflictMessage(q, before, newEmail, everyone, realm.string_id);
      if (again) throw new CommandError(again);
      const fields = everyone ? ["email", "delivery_email"] : ["delivery_email"];
      try {
        if (everyone) await q.query("UPDATE zerver_userprofile SET email = $2, delivery_email = $2 WHERE id = $1", [user.id, newEmail]);
        else await q.query("UPDATE zerver_userprofile SET delivery_email = $2 WHERE id = $1", [user.id, newEmail]);
      } catch (e: any) {
        if (e?.code === "23505") {
          throw new CommandError(`The email address ${newEmail} is already used by another account in the organization '${realm.string_id}'.`);
        }
        throw e;
      }
      const after = { ...before, delivery_email: newEmail, ...(everyone ? { email: newEmail } : {}) };
      const eventsNotSent = await sendDeliveryEmailChangeEvents(q, notify, after as UserProfile, {
        avatar: readAvatarSettings(ctx.config().settings),
        featureLevel: featureLevel(ctx.paths, db),
      });
      const auditIds = await insertAuditLog(q, [
        {
          realmId: Number(before.realm_id),
          eventType: AuditLogEventType.USER_EMAIL_CHANGED,
          eventTime: new Date(),
          actingUserId: null,
          modifiedUserId: user.id,
          extraData: emailChangedExtraData(series, before.delivery_email as string, newEmail),
        },
      ]);
      await inval.userChanged(q, after as UserProfile & CacheUser, fields, { before: before as UserProfile & CacheUser });
      return { auditIds, before, display: after.email as string, eventsNotSent };
    });
    inval.changeCommitted();
    const cache = await inval.commit();
    const delivery = await events.commit();
    for (const e of result.eventsNotSent) out.warn(`Not sent: ${e}.`);
    Object.assign(doc, {
      events: eventsReportJson(delivery),
      delivery_email: { old: result.before.delivery_email as string, new: newEmail },
      email: { old: result.before.email as string, new: result.display },
      audit_log_ids: result.auditIds,
      cache: cacheJson(cache),
    });
    out.jsonBody<ChangeUserEmailBody>(doc);
  },
});
