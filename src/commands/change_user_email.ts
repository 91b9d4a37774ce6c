// change_user_email: change a user's email address, as manage.py's change_user_email does with
// do_change_user_delivery_email (zerver/actions/user_settings.py; here
// src/zulip/actions/change-user-delivery-email.ts).
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
import { CacheInvalidation, cacheReportJson as cacheJson } from "../zulip/cache.js";
import { EventDelivery, eventsReportJson, featureLevel } from "../services/events.js";
import { readAvatarSettings } from "../zulip/avatar.js";
import { defineCommand } from "../cli/command.js";
import { UsageError } from "../lib/errors.js";
import { getUserWithRealm } from "../zulip/lookup.js";
import { realmJsonById, userJson } from "../cli/json-objects.js";
import type { ChangeUserEmailBody } from "../schemas/change_user_email.js";
import { changesDisplayEmail, checkDeliveryEmailChange, doChangeUserDeliveryEmail } from "../zulip/actions/change-user-delivery-email.js";

export default defineCommand({
  name: "change_user_email",
  description:
    "Change the email address for a user.\n\n" +
    'The address other users see changes too when the user\'s email visibility is "everyone". ' +
    "No confirmation email is sent; the new address is checked for validity and uniqueness first.",
  examples: [
    "zulip-manage change_user_email -r zulip iago@zulip.com iago@example.org",
    "zulip-manage change_user_email iago@zulip.com iago@example.org --dry-run",
  ],
  configure: (cmd) =>
    addEventsOption(
      addFlushCacheOption(
        addRealmOption(cmd.usage("[options] [-r REALM] <old email> <new email>"))
          .argument("[old_email]", "email address to change")
          .argument("[new_email]", "new email address")
          .option("--dry-run", "check and show the change, and change nothing"),
      ),
    ),
  async run(ctx, args, opts) {
    const [oldEmail, newEmail] = args;
    if (oldEmail === undefined) throw new UsageError("the following arguments are required: <old email>, <new email>");
    if (newEmail === undefined) throw new UsageError("the following arguments are required: <new email>");
    const dryRun = Boolean(opts.dryRun);
    const out = ctx.out;
    const db = await ctx.db();
    const { user, realm } = await getUserWithRealm(db, oldEmail, opts.realm);
    await checkDeliveryEmailChange(db, user, newEmail, realm);
    const everyone = changesDisplayEmail(user);

    const doc: ChangeUserEmailBody = {
      dry_run: dryRun,
      realm: await realmJsonById(db, ctx.config().settings, user.realm_id),
      user: userJson(user),
      delivery_email: { old: user.delivery_email, new: newEmail },
      email: { old: user.email, new: everyone ? newEmail : user.email },
      audit_log_ids: [],
      cache: null,
      events: null,
    };
    if (dryRun) {
      out.line(
        `Would change the email address of ${user.full_name} from ${user.delivery_email} to ${newEmail}` +
          (everyone ? " (also the address other users see)." : ` (other users keep seeing ${user.email}).`),
      );
      out.line("(dry run: nothing was changed)");
      out.jsonBody<ChangeUserEmailBody>(doc);
      return;
    }

    const inval = new CacheInvalidation(ctx, opts.flushCache);
    const events = new EventDelivery(ctx, opts.events);
    const result = await doChangeUserDeliveryEmail(db, user.id, newEmail, {
      realm,
      cache: inval,
      events,
      avatar: readAvatarSettings(ctx.config().settings),
      featureLevel: featureLevel(ctx.paths, db),
    });
    const cache = await inval.commit();
    const delivery = await events.commit();
    for (const e of result.eventsNotSent) out.warn(`Not sent: ${e}.`);
    Object.assign(doc, {
      events: eventsReportJson(delivery),
      delivery_email: { old: result.before.delivery_email as string, new: newEmail },
      email: { old: result.before.email as string, new: result.display },
      audit_log_ids: result.auditLogIds,
      cache: cacheJson(cache),
    });
    out.jsonBody<ChangeUserEmailBody>(doc);
  },
});
