// deactivate_realm: deactivate an organization the way manage.py deactivate_realm does
// (do_add_deactivated_redirect, do_deactivate_realm(acting_user=None, email_owners=...)).
//
// One transaction (the realm row locked): deactivated=true, the REALM_DEACTIVATED audit row
// {"10": ROLE_COUNT, "deactivation_reason": REASON}, the realm's scheduled emails deleted. Then,
// like Zulip, outside it: every unexpired login session of the realm's users is deleted (and its
// cached copy), memcached is brought up to date (flush_realm), and with --email_owners each
// active human owner gets the "organization deactivated" email over SMTP. Users are not
// deactivated. --redirect_url is stored first, even when the realm is already deactivated.
//
// Events (after the commit, after the cache update; src/services/events.ts): Zulip's
// {"type": "realm", "op": "deactivated", "realm_id"} to every active user of the realm, which
// ends the open long-polls (the apps then show the deactivation notice), and, when the server
// uses the push notification service, the deferred_work push_bouncer_update_for_realm job
// before it. Nothing for the redirect URL (a plain save in Zulip), a dry run, or a realm that
// is already deactivated.
//
// --json: src/schemas/deactivate_realm.ts (README: --json output): deactivated as {old, new} (new is
// the plan in a dry run), the owners' emails as results (would_do, done, failed; exit 1 and
// error_code email_failed when one failed), cache and events null unless something was written.
import { addEventsOption, addFlushCacheOption, addRequiredRealmOption } from "../cli/options.js";
import { CacheInvalidation, cacheReportJson } from "../zulip/cache.js";
import { defineCommand } from "../cli/command.js";
import { emailConfigWarnings, emailSettings, requireOutgoingEmail } from "../services/email.js";
import { UsageError } from "../lib/errors.js";
import { outcome as outcomeOf } from "../cli/json-contract.js";
import { realmJson, userJson } from "../cli/json-objects.js";
import type { DeactivateRealmBody } from "../schemas/deactivate_realm.js";
import { EventDelivery, eventsReportJson } from "../services/events.js";
import { getRealm } from "../zulip/lookup.js";
import { humanOwnerUsers, languageNote } from "../zulip/realms.js";
import { secretKeyOrUndefined } from "../zulip/sessions.js";
import {
  doAddDeactivatedRedirect,
  doDeactivateRealm,
  planRealmDeactivation,
  REALM_DEACTIVATION_REASONS,
  sendRealmDeactivationEmails,
} from "../zulip/actions/deactivate-realm.js";
import { realmHost, realmUrl } from "../config/settings.js";

export default defineCommand({
  name: "deactivate_realm",
  description:
    "Script to deactivate a realm.\n\n" +
    "Marks the organization deactivated (its users are kept, but can no longer log in), records the reason, " +
    "removes its scheduled emails and logs everyone out. With --email_owners, each organization owner is told by email.",
  examples: [
    "zulip-manage deactivate_realm -r zulip --deactivation_reason owner_request",
    "zulip-manage deactivate_realm -r zulip --deactivation_reason self_hosting_migration --redirect_url https://zulip.example.com --email_owners",
    "zulip-manage deactivate_realm -r 2 --deactivation_reason tos_violation --dry-run",
  ],
  configure: (cmd) =>
    addEventsOption(
      addFlushCacheOption(
        addRequiredRealmOption(
          cmd
            .usage("[options] -r REALM --deactivation_reason REASON")
            .option("--redirect_url <redirect_url>", "URL to which the realm has moved")
            .option("--deactivation_reason <deactivation_reason>", `Reason for deactivation (Zulip's values: ${REALM_DEACTIVATION_REASONS.join(", ")})`)
            .option("--email_owners", "Whether to email organization owners about realm deactivation"),
        ).option("--dry-run", "show what would change, and change nothing"),
      ),
    ),
  async run(ctx, _args, opts) {
    const reason = opts.deactivation_reason;
    if (reason === undefined) throw new UsageError("the following arguments are required: --deactivation_reason");
    const out = ctx.out;
    const dryRun = Boolean(opts.dryRun);
    const config = ctx.config();
    const settings = config.settings;
    const db = await ctx.db();
    const realm = (await getRealm(db, opts.realm))!;
    const realmArg = opts.realm;
    const redirectUrl = opts.redirect_url;
    const emailOwners = Boolean(opts.email_owners);

    // Refuse before changing anything if the owners cannot be emailed.
    const es = emailOwners ? emailSettings(config) : null;
    if (es && !realm.deactivated) {
      requireOutgoingEmail(es);
      for (const w of emailConfigWarnings(es)) out.warn(w);
    }

    const inval = new CacheInvalidation(ctx, opts.flushCache);
    const result: DeactivateRealmBody = {
      dry_run: dryRun,
      realm: realmJson(settings, realm),
      redirect_url: redirectUrl ?? null,
      redirect_set: false,
      already_deactivated: Boolean(realm.deactivated),
      deactivated: { old: Boolean(realm.deactivated), new: Boolean(realm.deactivated) },
      deactivation_reason: reason,
      audit_log_ids: [],
      scheduled_emails_deleted_count: 0,
      sessions_deleted_count: 0,
      results: [],
      cache: null,
      events: null,
    };
    const finish = (code: number, failed = 0) => {
      out.jsonBody<DeactivateRealmBody>(
        result,
        code === 0
          ? undefined
          : {
              error: `The organization is deactivated, but ${failed} of ${result.results.length} owner email(s) could not be sent.`,
              error_code: "email_failed",
            },
      );
      return code;
    };

    const events = new EventDelivery(ctx, opts.events);
    // Whatever fails after a commit, the cache of what was committed is still updated, and then
    // its events are sent.
    return events.guard(() =>
      inval.guard(async () => {
        if (redirectUrl) {
          if (dryRun) {
            out.line(`Would set the redirect URL to ${redirectUrl}`);
          } else {
            out.line(`Setting the redirect URL to ${redirectUrl}`);
            await doAddDeactivatedRedirect(db, realm.id, redirectUrl, inval);
            result.redirect_set = true;
          }
        }

        if (realm.deactivated) {
          out.line(`The realm ${realmArg} is already deactivated.`);
          if (!dryRun) result.cache = cacheReportJson(await inval.commit());
          return finish(0);
        }

        const secretKey = secretKeyOrUndefined(settings);
        const info = { name: realm.name, string_id: realm.string_id, host: realmHost(settings, realm.string_id), url: realmUrl(settings, realm.string_id) };

        if (dryRun) {
          const plan = await planRealmDeactivation(db, realm.id, secretKey ? { secretKey } : {});
          result.deactivated.new = true;
          result.scheduled_emails_deleted_count = plan.scheduledEmails;
          result.sessions_deleted_count = plan.sessions.length;
          out.line(
            `Would deactivate ${realmArg} (reason: ${reason}): ${plan.scheduledEmails} scheduled email(s) removed, ${plan.sessions.length} login session(s) ended.`,
          );
          if (emailOwners) {
            const owners = await humanOwnerUsers(db, realm.id);
            for (const o of owners) {
              result.results.push({ user: userJson(o), ...outcomeOf("would_do"), language_note: languageNote(o.default_language) });
            }
            out.line(`Would email ${owners.length} organization owner(s): ${owners.map((o) => o.delivery_email).join(", ") || "(none)"}`);
          }
          out.line("(dry run: nothing was changed)");
          return finish(0);
        }

        out.line(`Deactivating ${realmArg}`);
        const when = new Date();
        const notify = {
          events,
          realm: { id: realm.id, string_id: realm.string_id },
          what: `the deactivation of the organization ${realm.string_id || "(root domain)"}`,
        };
        // The deactivation, then (after its commit, as Zulip does) delete_realm_user_sessions.
        const outcome = await doDeactivateRealm(db, realm.id, {
          reason,
          actingUserId: null,
          now: when,
          cache: inval,
          notify,
          ...(secretKey ? { secretKey } : {}),
        });
        if (outcome === null) {
          // Deactivated by someone else between our read and the lock.
          out.line(`The realm ${realmArg} is already deactivated.`);
          result.already_deactivated = true;
          result.deactivated = { old: true, new: true };
          result.cache = cacheReportJson(await inval.commit());
          await events.commit();
          return finish(0);
        }
        result.deactivated.new = true;
        result.audit_log_ids = [outcome.auditLogId];
        result.scheduled_emails_deleted_count = outcome.scheduledEmailsDeleted;
        result.sessions_deleted_count = outcome.sessionsDeleted;
        result.cache = cacheReportJson(await inval.commit());
        // Zulip sends its event on the commit, before the sessions go; clients that reconnect in
        // between are refused either way (the realm is deactivated).
        result.events = eventsReportJson(await events.commit());

        let failed = 0;
        if (emailOwners && es) {
          const sent = await sendRealmDeactivationEmails(db, realm.id, es, info, {
            when,
            serverTimezone: settings.get("TIME_ZONE"),
            onFailure: (owner, message) => out.err(`Failed to send the deactivation email to ${owner.delivery_email}: ${message}`),
          });
          for (const { owner, error } of sent) {
            result.results.push({
              user: userJson(owner),
              ...(error === null ? outcomeOf("done") : outcomeOf("failed", error)),
              language_note: languageNote(owner.default_language),
            });
            if (error !== null) failed++;
          }
        }
        out.line("Done!");
        if (failed) {
          out.err(`The organization is deactivated, but ${failed} of ${result.results.length} owner email(s) could not be sent.`);
          return finish(1, failed);
        }
        return finish(0);
      }),
    );
  },
});
