// archive_messages: Zulip's message retention cron job (zerver/management/commands/archive_messages.py):
// delete old archived data (clean_archived_data), archive the messages past the organizations'
// and channels' message_retention_days (archive_messages), then scrub_realms: scrub the
// deactivated organizations whose scheduled deletion date has passed
// (clean_deactivated_realm_data → do_scrub_realm), then deactivate the expired demo
// organizations (delete_expired_demo_organizations). See src/zulip/actions/retention.ts and
// src/zulip/actions/realm-scrub.ts for what each step writes, per release.
//
// On Zulip 12.x the archiving also sends what 12.x's retention sends (API feature level 452):
// delete_message events per channel topic / direct message conversation, the channels'
// first_message_id updates (with their stream update events) and the removal of mobile push
// notifications (missedmessage_mobile_notifications jobs); see src/zulip/actions/retention.ts.
// They go out after the batch that deleted the messages commits, in deliveries of bounded size;
// the "events" member of --json sums those deliveries.
//
// Takes Zulip's lock for it (/srv/zulip-locks/archive_messages.lock, a non-blocking flock; the
// directory is ZULIP_LOCK_DIR when set), so it never runs beside Zulip's own cron job.
//
// Scrubbing is done as Zulip 10.x and 11.x do it. On Zulip 12.x (whose do_scrub_realm
// zulip-manage has not been checked against), with uploads in S3, an unreadable avatar_salt or
// BILLING_ENABLED, the organizations due are named, nothing is written for them, everything else
// is done and the command exits 1. When Zulip's own do_scrub_realm would fail (10.x/11.x: an
// organization without any message from a system bot), that organization is left as it was and
// the job stops there, as Zulip's does (exit 1).
//
// Cron-friendly: no options needed, never prompts, one summary line; -q prints only errors.
// --dry-run: the same line with what would be done, nothing written (the lock is taken all the
// same). --json: src/schemas/archive_messages.ts (README: --json output).
import { addEventsOption, addFlushCacheOption } from "../cli/options.js";
import { CacheInvalidation, cacheReportJson } from "../zulip/cache.js";
import { plural } from "../cli/output.js";
import { defineCommand } from "../cli/command.js";
import { CommandError } from "../lib/errors.js";
import { withLock } from "../zulip/lockfile.js";
import { ZulipLogFile } from "../lib/managelog.js";
import { EventDelivery, type EventReport, eventsReportJson, featureLevel, FL, mergeEventReports } from "../services/events.js";
import { outcome } from "../cli/json-contract.js";
import { realmJson } from "../cli/json-objects.js";
import { type DemoDeactivation, type NotScrubbed, planScrubRealms, scrubRealms } from "../zulip/actions/realm-scrub.js";
import { archiveMessages, cleanArchivedData, planArchiveMessages, planCleanArchivedData, type RetentionNotify } from "../zulip/actions/retention.js";
import { mobileNotificationShards } from "../config/sharding.js";
import type { ArchiveMessagesBody } from "../schemas/archive_messages.js";

/** settings.ARCHIVED_DATA_VACUUMING_DELAY_DAYS's default (zproject/default_settings.py). */
export const DEFAULT_VACUUMING_DELAY_DAYS = 30;

const names = (rs: { string_id: string }[]) => rs.map((r) => r.string_id || "''").join(", ");

export default defineCommand({
  name: "archive_messages",
  description:
    "Apply the message retention policies: delete archived data older than ARCHIVED_DATA_VACUUMING_DELAY_DAYS, " +
    "then move messages past their organization's or channel's message_retention_days to the archive tables " +
    "(restorable until they are vacuumed), then scrub deactivated organizations past their scheduled deletion date " +
    "and deactivate expired demo organizations (queued for scrubbing).\n" +
    "Zulip's daily cron job; takes the same lock.",
  examples: [
    "zulip-manage archive_messages",
    "zulip-manage archive_messages --quiet      # from cron",
    "zulip-manage archive_messages --dry-run    # what it would do",
    "zulip-manage archive_messages --json",
  ],
  configure: (cmd) =>
    addEventsOption(
      addFlushCacheOption(
        cmd
          .option("-q, --quiet", "print nothing but errors")
          .option("--dry-run", "show what would be archived, vacuumed, scrubbed and deactivated; change nothing"),
      ),
    ),
  async run(ctx, _args, opts) {
    const out = ctx.out;
    const quiet = Boolean(opts.quiet);
    const dryRun = Boolean(opts.dryRun);
    const config = ctx.config();
    const settings = config.settings;
    const delaySetting = settings.fileValue("ARCHIVED_DATA_VACUUMING_DELAY_DAYS", DEFAULT_VACUUMING_DELAY_DAYS);
    const delay = typeof delaySetting === "number" && Number.isInteger(delaySetting) ? delaySetting : DEFAULT_VACUUMING_DELAY_DAYS;
    const db = await ctx.db();
    const log = new ZulipLogFile(ctx.paths.logDir, "retention.log");
    const inval = new CacheInvalidation(ctx, opts.flushCache);
    const events = new EventDelivery(ctx, opts.events);
    const realmObj = (r: { id: number; string_id: string; name: string }) => realmJson(settings, r);

    return withLock(ctx.paths.lockDir, "archive_messages", () =>
      events.guard(() =>
        inval.guard(async () => {
          let cleaned: { transactions: number; archived_messages: number };
          let archived: Awaited<ReturnType<typeof archiveMessages>>;
          let scrubbed: ArchiveMessagesBody["realms_scrubbed"];
          let notScrubbed: NotScrubbed[];
          let demos: DemoDeactivation[];
          const warnings: string[] = [];
          /** Deliveries of retention's events during the run (Zulip 12.x). */
          const earlyReports: EventReport[] = [];
          if (dryRun) {
            cleaned = await planCleanArchivedData(db, delay);
            archived = await planArchiveMessages(db);
            const plan = await planScrubRealms(db, settings);
            scrubbed = plan.clean.scrub.map((p) => ({
              realm: realmObj(p),
              users_count: p.users,
              messages_archived_count: p.messages + p.cross_realm_messages,
              archive_transaction_ids: [],
              attachments_deleted_count: p.attachments,
              archived_attachments_deleted_count: p.archived_attachments,
              custom_profile_fields_deleted_count: p.custom_profile_fields,
              files_deleted_count: null,
              avatar_files_deleted_count: null,
              audit_log_ids: [],
            }));
            notScrubbed = plan.clean.not_scrubbed;
            demos = plan.demos;
          } else {
            cleaned = await cleanArchivedData(db, delay, log);
            // Zulip 12.x (FL 452): delete_message events, first_message_id updates and push
            // notification removals, delivered batch after batch (flush) as they pile up.
            const notify: RetentionNotify | null =
              featureLevel(ctx.paths, db) >= FL.RETENTION_DELETE_EVENTS
                ? {
                    events,
                    mobileNotificationShards: mobileNotificationShards(config),
                    flush: async () => {
                      earlyReports.push(await events.commit());
                    },
                  }
                : null;
            archived = await archiveMessages(db, inval, log, notify);
            // scrub_realms: clean_deactivated_realm_data, then delete_expired_demo_organizations.
            const scrub = await scrubRealms(db, {
              cache: inval,
              events,
              config,
              featureLevel: featureLevel(ctx.paths, db),
              log: (m) => log.write("INFO", m),
              warn: (m) => out.err(m),
            });
            scrubbed = scrub.clean.scrubbed.map((r) => ({
              realm: realmObj(r),
              users_count: r.users,
              messages_archived_count: r.messages_archived,
              archive_transaction_ids: r.archive_transaction_ids,
              attachments_deleted_count: r.attachments_deleted,
              archived_attachments_deleted_count: r.archived_attachments_deleted,
              custom_profile_fields_deleted_count: r.custom_profile_fields_deleted,
              files_deleted_count: r.files.deleted,
              avatar_files_deleted_count: r.avatar_files.deleted,
              audit_log_ids: r.audit_log_ids,
            }));
            for (const r of scrub.clean.scrubbed) {
              for (const f of [...r.files.failed, ...r.avatar_files.failed])
                warnings.push(`Organization ${r.string_id || "''"} is scrubbed, but ${f.path} could not be deleted: ${f.error}.`);
              for (const n of r.not_sent) warnings.push(`Organization ${r.string_id || "''"} is scrubbed, but an event was not sent (${n}).`);
            }
            notScrubbed = scrub.clean.not_scrubbed;
            demos = scrub.demos;
          }
          for (const w of warnings) out.warn(w);
          const cache = dryRun ? null : await inval.commit();
          let delivery: EventReport | null = null;
          if (!dryRun) {
            const reports = [...earlyReports, await events.commit()];
            if (demos.length || scrubbed.length || reports.some((r) => !r.skipped)) delivery = mergeEventReports(reports);
          }
          const moved = archived.channel_messages + archived.direct_messages;
          if (!quiet && !out.json) {
            const scrubPart = scrubbed.length
              ? `; ${dryRun ? "would scrub" : "scrubbed"} ${plural(scrubbed.length, "deactivated organization")} (${names(scrubbed.map((s) => s.realm))})`
              : "";
            const demoPart = demos.length
              ? `; ${dryRun ? "would deactivate" : "deactivated"} ${plural(demos.length, "expired demo organization")} (${names(demos)}), queued for scrubbing`
              : "";
            out.line(
              (dryRun
                ? `Dry run: would archive ${plural(moved, "message")} (${archived.channel_messages} in channels, ${archived.direct_messages} direct), ` +
                  `delete ${plural(cleaned.transactions, "archive transaction")} older than ${delay} days and ${plural(archived.attachments_deleted, "expired attachment")}`
                : `Archived ${plural(moved, "message")} (${archived.channel_messages} in channels, ${archived.direct_messages} direct) ` +
                  `in ${plural(archived.transactions.length, "archive transaction")}; ` +
                  `deleted ${plural(cleaned.transactions, "archive transaction")} older than ${delay} days and ${plural(archived.attachments_deleted, "expired attachment")}`) +
                scrubPart +
                demoPart +
                (dryRun ? ". Nothing was changed." : "."),
            );
          }
          const failedEmails = demos.flatMap((d) => d.emails).filter((e) => e.status === "failed").length;
          const problems: string[] = [];
          const refused = notScrubbed.filter((n) => !n.zulip_fails);
          const failed = notScrubbed.filter((n) => n.zulip_fails);
          for (const reason of [...new Set(refused.map((r) => r.reason))]) {
            const these = refused.filter((r) => r.reason === reason);
            problems.push(
              `${plural(these.length, "organization is", "organizations are")} due to be scrubbed and ${dryRun ? "would not be" : these.length === 1 ? "was not" : "were not"} scrubbed: ` +
                `${these.map((r) => `${r.string_id || "''"} (id ${r.id})`).join(", ")}. ${reason} Nothing was changed for ${these.length === 1 ? "it" : "them"}; Zulip's own archive_messages cron job scrubs ${these.length === 1 ? "it" : "them"}.`,
            );
          }
          for (const f of failed) {
            problems.push(
              `Organization ${f.string_id || "''"} (id ${f.id}) ${dryRun ? "could not be" : "was not"} scrubbed: ${f.reason}. ` +
                `Nothing was changed for it${dryRun ? "" : ", and the rest of the job (later organizations, expired demo organizations) was not run"}, as in Zulip.`,
            );
          }
          if (failedEmails)
            problems.push(
              `${plural(failedEmails, "owner email")} about deactivated demo organizations could not be sent (the organizations stay deactivated).`,
            );
          const message = problems.join(" ");
          out.jsonBody<ArchiveMessagesBody>(
            {
              dry_run: dryRun,
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
                first_message_id_updates_count: archived.notices.first_message_id_updates,
                realms: archived.realms.map((r) => ({
                  realm: realmObj(r),
                  channel_messages_count: r.channel_messages,
                  direct_messages_count: r.direct_messages,
                  attachments_deleted_count: r.attachments_deleted,
                })),
              },
              realms_scrubbed: scrubbed,
              realms_due_for_scrubbing: notScrubbed.map((r) => ({ realm: realmObj(r), reason: r.reason, zulip_fails: r.zulip_fails })),
              demo_organizations_deactivated: demos.map((d) => ({
                realm: realmObj(d),
                audit_log_ids: dryRun ? [] : [d.audit_log_id],
                scheduled_emails_deleted_count: d.scheduled_emails_deleted,
                sessions_deleted_count: d.sessions_deleted,
                results: d.emails.map((e) => ({ to: e.to, user_id: e.user_id, ...outcome(e.status === "sent" ? "done" : "failed", e.error) })),
              })),
              cache: cacheReportJson(cache),
              events: delivery ? eventsReportJson(delivery) : null,
            },
            problems.length ? { error: message, error_code: notScrubbed.length ? "refused" : "email_failed" } : undefined,
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
