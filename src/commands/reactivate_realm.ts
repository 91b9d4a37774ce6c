// reactivate_realm: manage.py reactivate_realm (do_reactivate_realm).
//
// One transaction (the realm row locked): deactivated=false, scheduled_deletion_date=NULL and
// the REALM_REACTIVATED audit row {"10": ROLE_COUNT} (acting user NULL, as Zulip hardcodes it).
// The deactivated_redirect is kept, sessions and email are untouched; memcached gets Zulip's
// flush_realm (the cached profiles of the realm's active users).
//
// Events: none for clients (Zulip sends none: nobody has an open queue in a deactivated realm);
// when the server uses the push notification service, the deferred_work
// push_bouncer_update_for_realm job Zulip queues (after the commit).
//
// --json: src/schemas/reactivate_realm.ts (README: --json output); audit_log_ids [] when nothing
// was done, cache and events null then.
import { addEventsOption, addFlushCacheOption, addRequiredRealmOption } from "../cli/options.js";
import { CacheInvalidation, cacheReportJson } from "../zulip/cache.js";
import { defineCommand } from "../cli/command.js";
import { EventDelivery, eventsReportJson } from "../services/events.js";
import { getRealm } from "../zulip/lookup.js";
import { realmJson } from "../cli/json-objects.js";
import { doReactivateRealm } from "../zulip/actions/reactivate-realm.js";
import type { ReactivateRealmBody } from "../schemas/reactivate_realm.js";

export default defineCommand({
  name: "reactivate_realm",
  description: "Script to reactivate a deactivated realm.\n\n" + "Users of the organization can log in again; its redirect URL (if any) is kept.",
  examples: ["zulip-manage reactivate_realm -r zulip", "zulip-manage reactivate_realm -r 2 --dry-run"],
  configure: (cmd) =>
    addEventsOption(
      addFlushCacheOption(addRequiredRealmOption(cmd.usage("[options] -r REALM")).option("--dry-run", "show what would change, and change nothing")),
    ),
  async run(ctx, _args, opts) {
    const out = ctx.out;
    const dryRun = Boolean(opts.dryRun);
    const db = await ctx.db();
    const realm = (await getRealm(db, opts.realm))!;
    const realmArg = opts.realm;
    const inval = new CacheInvalidation(ctx, opts.flushCache);
    const result: ReactivateRealmBody = {
      dry_run: dryRun,
      realm: realmJson(ctx.config().settings, realm),
      already_active: !realm.deactivated,
      reactivated: false,
      audit_log_ids: [],
      deactivated_redirect: realm.deactivated_redirect ?? null,
      cache: null,
      events: null,
    };
    const finish = () => {
      out.jsonBody<ReactivateRealmBody>(result);
      return 0;
    };
    if (!realm.deactivated) {
      out.line(`Realm ${realmArg} is already active.`);
      return finish();
    }
    if (dryRun) {
      out.line(`Would reactivate ${realmArg}.`);
      out.line("(dry run: nothing was changed)");
      return finish();
    }
    out.line(`Reactivating ${realmArg}`);
    const events = new EventDelivery(ctx, opts.events);
    const notify = {
      events,
      realm: { id: realm.id, string_id: realm.string_id },
      what: `the reactivation of the organization ${realm.string_id || "(root domain)"}`,
    };
    const r = await doReactivateRealm(db, realm.id, { cache: inval, notify });
    if (r === null) {
      await events.commit();
      result.already_active = true;
      out.line(`Realm ${realmArg} is already active.`);
      return finish();
    }
    result.reactivated = true;
    result.audit_log_ids = [r.auditLogId];
    result.cache = cacheReportJson(await inval.commit());
    result.events = eventsReportJson(await events.commit());
    out.line("Done!");
    return finish();
  },
});
