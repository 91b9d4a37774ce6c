// archive_messages: Zulip's message retention cron job (zerver/management/commands/archive_messages.py):
// delete old archived data (clean_archived_data), archive the messages past the organizations'
// and channels' message_retention_days (archive_messages), then scrub the organizations due for
// it (scrub_realms). See src/lib/retention.ts for what each step writes.
//
// Takes Zulip's lock for it (/srv/zulip-locks/archive_messages.lock, a non-blocking flock; the
// directory is ZULIP_LOCK_DIR when set), so it never runs beside Zulip's own cron job. Scrubbing
// organizations is not done by zulip-manage: when an organization is due, everything else is done
// and the command names it and exits 1 ("run manage.py archive_messages").
//
// Cron-friendly: no options needed, never prompts, one summary line; -q prints only errors.
// --json: src/schemas/archive_messages.ts (README: --json output); dry_run is always false (there is
// no dry run). Organizations due for scrubbing make it a refusal (exit 1) after everything else.
import { addFlushCacheOption, CacheInvalidation, cacheReportJson } from "../lib/cache.js";
import { realmJson } from "../lib/json-objects.js";
import type { ArchiveMessagesBody } from "../schemas/archive_messages.js";
import { defineCommand } from "../lib/command.js";
import { CommandError } from "../lib/errors.js";
import { withLock } from "../lib/lockfile.js";
import { ZulipLogFile } from "../lib/managelog.js";
import { archiveMessages, cleanArchivedData, realmsDueForScrubbing } from "../lib/retention.js";

/** settings.ARCHIVED_DATA_VACUUMING_DELAY_DAYS's default (zproject/default_settings.py). */
export const DEFAULT_VACUUMING_DELAY_DAYS = 30;

export default defineCommand({
  name: "archive_messages",
  description:
    "Apply the message retention policies: delete archived data older than ARCHIVED_DATA_VACUUMING_DELAY_DAYS, " +
    "then move messages past their organization's or channel's message_retention_days to the archive tables " +
    "(restorable until they are vacuumed).\nZulip's daily cron job; takes the same lock.",
  examples: ["zulip-manage archive_messages", "zulip-manage archive_messages --quiet      # from cron", "zulip-manage archive_messages --json"],
  configure(cmd) {
    cmd.option("-q, --quiet", "print nothing but errors");
    addFlushCacheOption(cmd);
  },
  async run(ctx, _args, opts) {
    const out = ctx.out;
    const quiet = Boolean(opts.quiet);
    const delaySetting = ctx.config().settings.fileValue("ARCHIVED_DATA_VACUUMING_DELAY_DAYS", DEFAULT_VACUUMING_DELAY_DAYS);
    const delay = typeof delaySetting === "number" && Number.isInteger(delaySetting) ? delaySetting : DEFAULT_VACUUMING_DELAY_DAYS;
    const db = await ctx.db();
    const log = new ZulipLogFile(ctx.paths.logDir, "retention.log");
    const inval = new CacheInvalidation(ctx, opts.flushCache);

    return withLock(ctx.paths.lockDir, "archive_messages", async () => {
      const cleaned = await cleanArchivedData(db, delay, log);
      const archived = await inval.guard(() => archiveMessages(db, inval, log));
      const cache = await inval.commit();
      const due = await realmsDueForScrubbing(db);
      const moved = archived.channel_messages + archived.direct_messages;
      if (!quiet && !out.json) {
        out.line(
          `Archived ${moved} message${moved === 1 ? "" : "s"} (${archived.channel_messages} in channels, ${archived.direct_messages} direct) ` +
            `in ${archived.transactions.length} archive transaction${archived.transactions.length === 1 ? "" : "s"}; ` +
            `deleted ${cleaned.transactions} archive transaction${cleaned.transactions === 1 ? "" : "s"} older than ${delay} days ` +
            `and ${archived.attachments_deleted} expired attachment${archived.attachments_deleted === 1 ? "" : "s"}.`,
        );
      }
      const settings = ctx.config().settings;
            const names = due.map((r) => `${r.string_id === "" ? "''" : r.string_id} (id ${r.id}: ${r.reason})`).join(", ");
      const dueMessage =
        `${due.length} organization${due.length === 1 ? " is" : "s are"} due to be scrubbed: ${names}. ` +
        "zulip-manage does not scrub organizations; Zulip's own archive_messages cron job (manage.py archive_messages) does.";
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
          cache: cacheReportJson(cache)!,
        },
        due.length ? { error: dueMessage, error_code: "refused" } : undefined,
      );
      if (due.length) {
        if (out.json) out.err(dueMessage);
        else throw new CommandError(dueMessage);
        return 1;
      }
      return 0;
    });
  },
});
