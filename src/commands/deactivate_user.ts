// deactivate_user: deactivate a user (and the bots they own) and log them out, as manage.py's
// deactivate_user does with do_deactivate_user (zerver/actions/users.py).
//
// Without -f/--for-real it is a dry run: it prints what manage.py prints (the user, their
// sessions, how many bots go with them) and exits 1 with "This was a dry run. Pass -f to
// actually deactivate." exactly like manage.py, so scripts written for manage.py behave the same.
// With -f, for each active bot the user owns and then for the user, one transaction: the row is
// locked and re-read, is_active=false, the subscriptions' is_user_active=false, every channel
// with an active subscription loses one subscriber_count, the account is removed from scheduled
// emails (emails left without recipients are deleted), the invitations it sent are revoked
// (their confirmations expire now), and a 103 (USER_DEACTIVATED) audit row with the ROLE_COUNT
// after the change is written. After each commit the account's sessions are deleted from
// django_session and from memcached, and the cached user objects and realm user lists are
// invalidated (see src/zulip/actions/deactivate-user.ts).
//
// --json: src/schemas/deactivate_user.ts (README: --json output). Without -f (or with --dry-run)
// the plan (user, sessions with expires_at, bots) with dry_run true and deactivated []; without
// -f the exit status stays manage.py's 1 (ok false, its message in error), --dry-run exits 0.
import { addEventsOption, addFlushCacheOption, addRealmOption } from "../cli/options.js";
import { CacheInvalidation, cacheReportJson as cacheJson } from "../zulip/cache.js";
import { roleCountBaselineBeside } from "../zulip/audit.js";
import { defineCommand } from "../cli/command.js";
import { EventDelivery, eventsReportJson, featureLevel } from "../services/events.js";
import { CommandError, UsageError } from "../lib/errors.js";
import { activeBotsOwnedBy, getUserWithRealm } from "../zulip/lookup.js";
import { describeSessions } from "../zulip/sessions.js";
import { utcTimestampFromPg } from "../cli/json-contract.js";
import { realmJsonById, userJson } from "../cli/json-objects.js";
import { type DeactivationResult, doDeactivateUser } from "../zulip/actions/deactivate-user.js";
import type { DeactivateUserBody } from "../schemas/deactivate_user.js";

export const DRY_RUN_MESSAGE = "This was a dry run. Pass -f to actually deactivate.";

function resultJson(r: DeactivationResult, user: DeactivateUserBody["bots"][number]): DeactivateUserBody["deactivated"][number] {
  return {
    user: { ...user, is_bot: r.isBot },
    subscription_count: r.subscriptions,
    channel_ids: r.channelIds,
    scheduled_emails_left_count: r.scheduledEmailsLeft,
    scheduled_emails_deleted_count: r.scheduledEmailsDeleted,
    invitations_revoked_count: r.invitationsRevoked,
    sessions_deleted_count: r.sessionsDeleted,
    audit_log_ids: r.auditLogIds,
  };
}

export default defineCommand({
  name: "deactivate_user",
  description:
    "Deactivate a user, including forcibly logging them out.\n\n" +
    "Without -f this is a dry run: it shows the user's sessions and bots and exits with status 1, like manage.py. " +
    "The user's active bots are deactivated first; the user can be reactivated later with reactivate_user.",
  examples: ["zulip-manage deactivate_user -r zulip iago@zulip.com", "zulip-manage deactivate_user -r zulip iago@zulip.com -f"],
  configure: (cmd) =>
    addEventsOption(
      addFlushCacheOption(
        addRealmOption(
          cmd
            .usage("[options] [-r REALM] [-f] <email>")
            .option("-f, --for-real", "Actually deactivate the user. Default is a dry run.")
            .option("--dry-run", "show what would be done and exit 0 (without -f the dry run exits 1, like manage.py)")
            .argument("[email]", "email of user to deactivate"),
        ),
      ),
    ),
  async run(ctx, args, opts) {
    const [email] = args;
    if (email === undefined) throw new UsageError("the following arguments are required: <email>");
    if (opts.forReal && opts.dryRun) throw new UsageError("-f and --dry-run cannot be used together");
    const forReal = Boolean(opts.forReal);
    const out = ctx.out;
    // ROLE_COUNT's count of the realm's users, read beside (see roleCountsAfterChange).
    const roleCountBaseline = forReal ? roleCountBaselineBeside(ctx, opts.realm, email) : undefined;
    const db = await ctx.db();
    const { user, realm } = await getUserWithRealm(db, email, opts.realm);

    const sessions = await describeSessions(db, [user.id]);
    const bots = await activeBotsOwnedBy(db, user.id);
    out.line(`Deactivating ${user.full_name} (${user.delivery_email}) - ${realm.string_id}`);
    out.line(`${user.delivery_email} has the following active sessions:`);
    for (const s of sessions) out.line(s.line);
    out.line("");
    out.line(`${user.delivery_email} has ${bots.length} active bots that will also be deactivated.`);

    const userObj = userJson(user);
    const botObjs = new Map(bots.map((b) => [Number(b.id), userJson(b)]));
    const doc: DeactivateUserBody = {
      dry_run: !forReal,
      realm: await realmJsonById(db, ctx.config().settings, user.realm_id),
      user: { ...userObj, was_active: Boolean(user.is_active) },
      sessions: sessions.map((s) => ({ expires_at: utcTimestampFromPg(s.expireDate), data: s.data })),
      bots: [...botObjs.values()],
      deactivated: [],
      cache: null,
      events: null,
    };
    if (!forReal) {
      out.jsonBody<DeactivateUserBody>(doc);
      if (opts.dryRun) {
        out.line("(dry run: nothing was changed)");
        return;
      }
      throw new CommandError(DRY_RUN_MESSAGE);
    }

    const inval = new CacheInvalidation(ctx, opts.flushCache);
    inval.prepare();
    const events = new EventDelivery(ctx, opts.events);
    const notify = { events, realm: { id: realm.id, string_id: realm.string_id }, what: `the deactivation of ${user.delivery_email}` };
    let outcome;
    try {
      outcome = await doDeactivateUser(db, user.id, { actingUserId: null, cache: inval, roleCountBaseline, notify, featureLevel: featureLevel(ctx.paths, db) });
    } finally {
      // Whatever was committed before a failure still gets its cache entries deleted and its events sent.
      doc.cache = cacheJson(await inval.commit());
      doc.events = eventsReportJson(await events.commit());
    }
    out.line("Sessions deleted, user deactivated.");
    doc.deactivated = [...outcome.bots, outcome.user].filter((r) => r.changed).map((r) => resultJson(r, botObjs.get(r.userId) ?? userObj));
    out.jsonBody<DeactivateUserBody>(doc);
  },
});
