// change_realm_subdomain: manage.py change_realm_subdomain (check_subdomain_available, then
// do_change_realm_subdomain(realm, new, acting_user=None, add_deactivated_redirect=not --skip-redirect)).
//
// One transaction (the realm row locked):
//   * string_id = <new> (a demo organization's scheduled deletion is cleared), the
//     REALM_SUBDOMAIN_CHANGED audit row {"1": old, "2": new};
//   * earlier redirect placeholders pointing at the old URL now point at the new one;
//   * unless --skip-redirect: a placeholder organization at the old subdomain, created exactly as
//     do_create_realm creates any organization (system groups, settings, default channels, audit
//     rows…), deactivated with reason "subdomain_change" and redirecting to the new URL — so
//     people using the old address are told where the organization went. Built with the rows
//     of the database's Zulip release (10.x, 11.x, 12.x; see src/zulip/actions/create-realm.ts); a schema with
//     a required column zulip-manage does not know refuses it (pass --skip-redirect).
// Then every unexpired session of the organization's users is deleted (everyone has to log in
// again at the new address) and memcached gets flush_realm for every realm saved.
//
// Events (after the commit; src/services/events.ts), as do_change_realm_subdomain sends them: none to
// the renamed organization's users (the rename itself sends no event: their open queues fail to
// authenticate at the old address). The placeholder's do_create_realm and do_deactivate_realm
// send theirs — a `stream` `create` per default channel and the `realm` `deactivated`, all
// addressed to the placeholder's users, of whom there are none (Zulip still publishes them with
// empty user lists) — and, with the push notification service, their two
// push_bouncer_update_for_realm jobs. With --skip-redirect: nothing.
//
// --json: src/schemas/change_realm_subdomain.ts (README: --json output): the realm object as it is
// afterwards, subdomain and url as {old, new}, audit_log_ids the rename's row and then every row
// of the placeholder (its creation and deactivation); placeholder null with --skip-redirect.
import { addEventsOption, addFlushCacheOption, addRequiredRealmOption } from "../cli/options.js";
import { CacheInvalidation, cacheReportJson } from "../zulip/cache.js";
import { defineCommand } from "../cli/command.js";
import { EventDelivery, eventsReportJson, featureLevel } from "../services/events.js";
import { CommandError, UsageError } from "../lib/errors.js";
import { getRealm } from "../zulip/lookup.js";
import { doChangeRealmSubdomain, planRealmSubdomainChange } from "../zulip/actions/change-realm-subdomain.js";
import { realmJson } from "../cli/json-objects.js";
import type { ChangeRealmSubdomainBody } from "../schemas/change_realm_subdomain.js";
import { secretKeyOrUndefined } from "../zulip/sessions.js";
import { realmUrl } from "../config/settings.js";
import { requireSubdomainAvailable, subdomainSettings } from "../zulip/subdomain.js";
import { creationSchemaProblem } from "../zulip/actions/creation-schema.js";

export default defineCommand({
  name: "change_realm_subdomain",
  description:
    "Change realm's subdomain.\n\n" +
    "Everyone is logged out and must use the new address. Unless --skip-redirect is given, a deactivated placeholder " +
    "organization is left at the old subdomain that sends visitors to the new one.",
  examples: [
    "zulip-manage change_realm_subdomain -r zulip chat",
    "zulip-manage change_realm_subdomain -r zulip chat --skip-redirect",
    "zulip-manage change_realm_subdomain -r 2 api --allow-reserved-subdomain --dry-run",
  ],
  configure: (cmd) =>
    addEventsOption(
      addFlushCacheOption(
        addRequiredRealmOption(cmd.usage("[options] -r REALM <new subdomain>"))
          .argument("[new_subdomain]", "realm new subdomain")
          .option("--skip-redirect", "Do not redirect the old name to the new one")
          .option("--allow-reserved-subdomain", "Allow use of reserved subdomains")
          .option("--dry-run", "show what would change, and change nothing"),
      ),
    ),
  async run(ctx, args, opts) {
    const newSubdomain = args[0];
    if (newSubdomain === undefined) throw new UsageError("the following arguments are required: <new subdomain>");
    const out = ctx.out;
    const dryRun = Boolean(opts.dryRun);
    const skipRedirect = Boolean(opts.skipRedirect);
    const config = ctx.config();
    const settings = config.settings;
    const db = await ctx.db();
    const realm = (await getRealm(db, opts.realm))!;
    const subOpts = { ...subdomainSettings(settings), allowReserved: Boolean(opts.allowReservedSubdomain) };
    await requireSubdomainAvailable(db, newSubdomain, subOpts);
    const oldSubdomain = realm.string_id;
    if (!skipRedirect) {
      // do_create_realm refuses these outright (AssertionError).
      const forbidden = [subOpts.socialAuthSubdomain, subOpts.selfHostingManagementSubdomain];
      if (forbidden.includes(oldSubdomain)) {
        throw new CommandError("Creating a realm on SOCIAL_AUTH_SUBDOMAIN or SELF_HOSTING_MANAGEMENT_SUBDOMAIN is not allowed! (pass --skip-redirect)");
      }
      const unsupported = await creationSchemaProblem(db);
      if (unsupported) throw new CommandError(`${unsupported} Pass --skip-redirect to change the subdomain without a redirect.`);
    }
    const oldUrl = realmUrl(settings, oldSubdomain);
    const newUrl = realmUrl(settings, newSubdomain);
    const secretKey = secretKeyOrUndefined(settings);
    const inval = new CacheInvalidation(ctx, opts.flushCache);
    const result: ChangeRealmSubdomainBody = {
      dry_run: dryRun,
      realm: realmJson(settings, realm),
      subdomain: { old: oldSubdomain, new: newSubdomain },
      url: { old: oldUrl, new: newUrl },
      audit_log_ids: [],
      placeholder: null,
      redirects_updated: [],
      sessions_deleted_count: 0,
      cache: null,
      events: null,
    };
    const finish = () => {
      out.jsonBody<ChangeRealmSubdomainBody>(result);
      return 0;
    };

    if (dryRun) {
      const plan = await planRealmSubdomainChange(db, realm.id, oldUrl, secretKey ? { secretKey } : {});
      result.redirects_updated = plan.redirectsUpdated.map((r) => realmJson(settings, r));
      result.sessions_deleted_count = plan.sessions;
      out.line(`Would change the subdomain of ${realm.name} from '${oldSubdomain}' to '${newSubdomain}' (${oldUrl} → ${newUrl}).`);
      if (!skipRedirect) out.line(`Would leave a deactivated placeholder at '${oldSubdomain}' redirecting to ${newUrl}.`);
      for (const r of result.redirects_updated) out.line(`Would point the redirect of '${r.string_id}' (id ${r.id}) at ${newUrl}.`);
      out.line(`Would end ${result.sessions_deleted_count} login session(s).`);
      out.line("(dry run: nothing was changed)");
      return finish();
    }

    const events = new EventDelivery(ctx, opts.events);
    const level = featureLevel(ctx.paths, db);
    await events.guard(() =>
      inval.guard(async () => {
        const change = await doChangeRealmSubdomain(db, realm, newSubdomain, {
          oldUrl,
          newUrl,
          skipRedirect,
          subdomainRules: subOpts,
          cache: inval,
          events: { notify: { events, what: `the placeholder organization left at '${oldSubdomain}'` }, featureLevel: level },
          ...(secretKey ? { secretKey } : {}),
        });
        result.audit_log_ids = [change.rename.auditLogId, ...(change.placeholder?.auditLogIds ?? [])];
        result.realm = realmJson(settings, { ...realm, string_id: newSubdomain });
        result.redirects_updated = change.rename.redirectsUpdated.map((r) => realmJson(settings, r));
        if (change.placeholder) {
          const p = change.placeholder.realm;
          result.placeholder = { ...realmJson(settings, { id: p.id, string_id: oldSubdomain, name: p.name }), deactivated_redirect: newUrl };
        }
        result.sessions_deleted_count = change.sessionsDeleted;
      }),
    );
    result.cache = cacheReportJson(await inval.commit());
    result.events = eventsReportJson(await events.commit());
    out.line("Done!");
    return finish();
  },
});
