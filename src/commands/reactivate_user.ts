// reactivate_user: reactivate a deactivated user. manage.py has no such command (admins use
// the web UI); this does what Zulip's do_reactivate_user (zerver/actions/create_user.py) does
// for the web UI's "Reactivate" button, with acting_user NULL as for the other management
// commands: in one transaction the user row is locked and re-checked, is_active=true, the
// subscriptions' is_user_active=true, every channel with an active subscription gains one
// subscriber_count, and a 104 (USER_REACTIVATED) audit row with the ROLE_COUNT after the change
// is written; then the cached user objects and realm user lists are invalidated.
//
// Refused (exit 1): the organization is deactivated; the user is already active; the account
// is a placeholder (mirror dummy, e.g. a deleted user) — Zulip's "Cannot activate a placeholder
// account; ask the user to sign up, instead."; the user's email address is now used by another
// active account of the organization; for a bot, another active user has the same name (the
// web UI's check_bot_name_available rule). A bot whose owner is deactivated is reactivated with
// that owner unchanged (the web UI makes the acting administrator the owner; we have none) and a
// warning says so.
//
// --json: src/schemas/reactivate_user.ts (README: --json output); changed false, audit_log_ids []
// and cache/events null in a dry run; inactive_bot_owner the bot's deactivated owner, or null.
import { addEventsOption, addFlushCacheOption, addRealmOption } from "../cli/options.js";
import { CacheInvalidation, cacheReportJson as cacheJson } from "../zulip/cache.js";
import { roleCountBaselineBeside } from "../zulip/audit.js";
import { defineCommand } from "../cli/command.js";
import { EventDelivery, eventsReportJson, featureLevel } from "../services/events.js";
import { CommandError, UsageError } from "../lib/errors.js";
import { getUserWithRealm } from "../zulip/lookup.js";
import { realmJsonById, userJson, userJsonById } from "../cli/json-objects.js";
import type { ReactivateUserBody } from "../schemas/reactivate_user.js";
import { doReactivateUser, reactivationProblem } from "../zulip/actions/reactivate-user.js";

export default defineCommand({
  name: "reactivate_user",
  description:
    'Reactivate a deactivated user (what the "Reactivate" button in the organization settings does).\n\n' +
    "Not in manage.py. The user's subscriptions, group memberships and role are kept from before the deactivation; " +
    "they can log in again with their old password or any enabled login method.",
  examples: ["zulip-manage reactivate_user -r zulip iago@zulip.com", "zulip-manage reactivate_user -r zulip iago@zulip.com --dry-run"],
  configure: (cmd) =>
    addEventsOption(
      addFlushCacheOption(
        addRealmOption(cmd.usage("[options] [-r REALM] <email>").argument("[email]", "email of the user to reactivate")).option(
          "--dry-run",
          "check that the user can be reactivated, and change nothing",
        ),
      ),
    ),
  async run(ctx, args, opts) {
    const [email] = args;
    if (email === undefined) throw new UsageError("the following arguments are required: <email>");
    const dryRun = Boolean(opts.dryRun);
    const out = ctx.out;
    // ROLE_COUNT's count of the realm's users, read beside (see roleCountsAfterChange).
    const roleCountBaseline = dryRun ? undefined : roleCountBaselineBeside(ctx, opts.realm, email);
    const db = await ctx.db();
    const { user, realm } = await getUserWithRealm(db, email, opts.realm);
    const doc: ReactivateUserBody = {
      dry_run: dryRun,
      realm: await realmJsonById(db, ctx.config().settings, user.realm_id),
      user: { ...userJson(user), is_bot: Boolean(user.is_bot) },
      changed: false,
      subscription_count: 0,
      channel_ids: [],
      audit_log_ids: [],
      inactive_bot_owner: null,
      cache: null,
      events: null,
    };

    if (dryRun) {
      const problem = await reactivationProblem(db, user);
      if (problem) throw new CommandError(problem);
      out.line(`Would reactivate ${user.full_name} (${user.delivery_email}) - ${realm.string_id}.`);
      out.line("(dry run: nothing was changed)");
      out.jsonBody<ReactivateUserBody>(doc);
      return;
    }

    const inval = new CacheInvalidation(ctx, opts.flushCache);
    inval.prepare();
    const events = new EventDelivery(ctx, opts.events);
    const notify = { events, realm: { id: realm.id, string_id: realm.string_id }, what: `the reactivation of ${user.delivery_email}` };
    const result = await doReactivateUser(db, user.id, {
      actingUserId: null,
      cache: inval,
      roleCountBaseline,
      notify,
      featureLevel: featureLevel(ctx.paths, db),
    });
    const cache = await inval.commit();
    const delivery = await events.commit();
    Object.assign(doc, {
      changed: true,
      subscription_count: result.subscriptions,
      channel_ids: result.channelIds,
      audit_log_ids: result.auditLogIds,
      inactive_bot_owner: result.inactiveBotOwner && (await userJsonById(db, result.inactiveBotOwner.id)),
      cache: cacheJson(cache),
      events: eventsReportJson(delivery),
    });
    out.line(`User ${user.delivery_email} reactivated.`);
    if (result.inactiveBotOwner) {
      out.warn(
        `Note: the bot's owner ${result.inactiveBotOwner.email} is deactivated; ` +
          "an organization administrator may want to give the bot a new owner in the organization settings.",
      );
    }
    out.jsonBody<ReactivateUserBody>(doc);
  },
});
