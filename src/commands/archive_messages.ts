// archive_messages: Zulip's message retention cron job (zerver/management/commands/archive_messages.py):
// delete old archived data (clean_archived_data), archive the messages past the organizations'
// and channels' message_retention_days (archive_messages), then scrub the organizations due for
// it (scrub_realms). See src/zulip/actions/retention.ts for what each step writes.
//
// Takes Zulip's lock for it (/srv/zulip-locks/archive_messages.lock, a non-blocking flock; the
// directory is ZULIP_LOCK_DIR when set), so it never runs beside Zulip's own cron job.
//
// scrub_realms (src/zulip/actions/realm-scrub.ts): expired demo organizations are deactivated as Zulip does
// (reason demo_expired, deletion delay 0: the deferred_work scrub_deactivated_realm job, the
// realm "deactivated" event, sessions ended, owners emailed). Scrubbing a deactivated
// organization whose scheduled deletion date has passed (do_scrub_realm) is not done by
// zulip-manage: when one is due, everything else is done and the command names it and exits 1.
//
// Cron-friendly: no options needed, never prompts, one summary line; -q prints only errors.
// --json: src/schemas/archive_messages.ts (README: --json output); dry_run is always false (there is
// no dry run). Organizations due for scrubbing, or an owner email that failed, make it exit 1
// after everything else.
import { addEventsOption, addFlushCacheOption } from "../cli/options.js";
import { CacheInvalidation, cacheReportJson } from "../zulip/cache.js";
import { defineUntypedCommand } from "../cli/command.js";
import { CommandError } from "../lib/errors.js";
import { withLock } from "../zulip/lockfile.js";
import { ZulipLogFile } from "../lib/managelog.js";
import { emailSettings } from "../services/email.js";
import { EventDelivery, eventsReportJson } from "../services/events.js";
import { outcome } from "../cli/json-contract.js";
import { realmJson } from "../cli/json-objects.js";
import { secretKeyOrUndefined } from "../zulip/sessions.js";
import { deleteExpiredDemoOrganizations, realmsDueForScrubbing } from "../zulip/actions/realm-scrub.js";
import { archiveMessages, cleanArchivedData } from "../zulip/actions/retention.js";
import { realmHost, realmUrl } from "../config/settings.js";
import type { ArchiveMessagesBody } from "../schemas/archive_messages.js";

/** settings.ARCHIVED_DATA_VACUUMING_DELAY_DAYS's default (zproject/default_settings.py). */
export const DEFAULT_VACUUMING_DELAY_DAYS = 30;

export default defineUntypedCommand({
  name: "archive_messages",
  description:
    "Apply the message retention policies: delete archived data older than ARCHIVED_DATA_VACUUMING_DELAY_DAYS, " +
    "then move messages past their organization's or channel's message_retention_days to the archive tables " +
    "(restorable until they are vacuumed), then deactivate expired demo organizations (queued for scrubbing).\n" +
    "Zulip's daily cron job; takes the same lock.",
  examples: ["zulip-manage archive_messages", "zulip-manage archive_messages --quiet      # from cron", "zulip-manage archive_messages --json"],
  configure(cmd) {
    cmd.option("-q, --quiet", "print nothing but errors");
    addFlushCacheOption(cmd);
    addEventsOption(cmd);
  },
  async run(ctx, _args, opts) {
    const out = ctx.out;
    const quiet = Boolean(opts.quiet);
    const delaySetting = ctx.config().settings.fileValue("ARCHIVED_DATA_VACUUMING_DELAY_DAYS", DEFAULT_VACUUMING_DELAY_DAYS);
    const delay = typeof delaySetting === "number" && Number.isInteger(delaySetting) ? delaySetting : DEFAULT_VACUUMING_DELAY_DAYS;
    const db = await ctx.db();
    const log = new ZulipLogFile(ctx.paths.logDir, "retention.log");
    const inval = new CacheInvalidation(ctx, opts.flushCache);

    const config = ctx.config();
    const settings = config.settings;
    const events = new EventDelivery(ctx, opts.events);

    return withLock(ctx.paths.lockDir, "archive_messages", () =>
      events.guard(() =>
        inval.guard(async () => {
          const cleaned = await cleanArchivedData(db, delay, log);
          const archived = await archiveMessages(db, inval, log);
          // scrub_realms: clean_deactivated_realm_data (refused here), then delete_expired_demo_organizations.
          const due = await realmsDueForScrubbing(db);
          const secretKey = secretKeyOrUndefined(settings);
          const demos = await deleteExpiredDemoOrganizations(db, {
            cache: inval,
            events,
            ...(secretKey !== undefined ? { secretKey } : {}),
            emailSettings: () => emailSettings(config),
            realmInfo: (stringId, name) => ({ name, string_id: stringId, host: realmHost(settings, stringId), url: realmUrl(settings, stringId) }),
            serverTimezone: settings.get("TIME_ZONE"),
            warn: (m) => out.err(m),
          });
          for (const d of demos) log.write("INFO", `Deactivated expired demo organization ${d.id}; queued for scrubbing.`);
          const cache = await inval.commit();
          const delivery = demos.length ? await events.commit() : null;
          const moved = archived.channel_messages + archived.direct_messages;
          if (!quiet && !out.json) {
            out.line(
              `Archived ${moved} message${moved === 1 ? "" : "s"} (${archived.channel_messages} in channels, ${archived.direct_messages} direct) ` +
                `in ${archived.transactions.length} archive transaction${archived.transactions.length === 1 ? "" : "s"}; ` +
                `deleted ${cleaned.transactions} archive transaction${cleaned.transactions === 1 ? "" : "s"} older than ${delay} days ` +
                `and ${archived.attachments_deleted} expired attachment${archived.attachments_deleted === 1 ? "" : "s"}` +
                (demos.length
                  ? `; deactivated ${demos.length} expired demo organization${demos.length === 1 ? "" : "s"} (${demos.map((d) => d.string_id || "''").join(", ")}), queued for scrubbing.`
                  : "."),
            );
          }
          const failedEmails = demos.flatMap((d) => d.emails).filter((e) => e.status === "failed").length;
          const problems: string[] = [];
          if (failedEmails) problems.push(`${failedEmails} owner email${failedEmails === 1 ? "" : "s"} about deactivated demo organizations could not be sent (the organizations stay deactivated).`);
          if (due.length) {
            const names = due.map((r) => `${r.string_id === "" ? "''" : r.string_id} (id ${r.id}: ${r.reason})`).join(", ");
            problems.push(
              `${due.length} organization${due.length === 1 ? " is" : "s are"} due to be scrubbed: ${names}. ` +
                "zulip-manage does not scrub organizations (do_scrub_realm); Zulip's own archive_messages cron job (manage.py archive_messages) " +
                "or its deferred_work worker does.",
            );
          }
          const message = problems.join(" ");
          out.jsonBody<ArchiveMessagesBody>(
            {
              dry_run: false,
              clean_archived_data: {
                vacuuming_delay_days: delay,
                transactions_deleted_count: cleaned.transactions,
                archived_messages_deleted_count: cleaned.archived_messages,
              },
              archived: {
                transaction_ids: archived.transactions,
                channel_messages_count: archived.channel_messages,
                direct_messages_count: archived.direct_messages,
                user_messages_count: archived.user_messages,
                reactions_count: archived.reactions,
                submessages_count: archived.submessages,
                archived_attachments_count: archived.archived_attachments,
                attachments_deleted_count: archived.attachments_deleted,
                realms: archived.realms.map((r) => ({
                  realm: realmJson(settings, r),
                  channel_messages_count: r.channel_messages,
                  direct_messages_count: r.direct_messages,
                  attachments_deleted_count: r.attachments_deleted,
                })),
              },
              realms_due_for_scrubbing: due.map((r) => ({ realm: realmJson(settings, r), reason: r.reason })),
              demo_organizations_deactivated: demos.map((d) => ({
                realm: realmJson(settings, d),
                audit_log_ids: [d.audit_log_id],
                scheduled_emails_deleted_count: d.scheduled_emails_deleted,
                sessions_deleted_count: d.sessions_deleted,
                results: d.emails.map((e) => ({ to: e.to, user_id: e.user_id, ...outcome(e.status === "sent" ? "done" : "failed", e.error) })),
              })),
              cache: cacheReportJson(cache)!,
              events: delivery ? eventsReportJson(delivery) : null,
            },
            problems.length ? { error: message, error_code: due.length ? "refused" : "email_failed" } : undefined,
          );
          if (problems.length) {
            if (out.json) out.err(message);
            else throw new CommandError(message);
            return 1;
          }
          return 0;
        }),
      ),
    );
  },
});
