// delete_old_unclaimed_attachments: remove uploads that no message, scheduled message or archived
// message references, older than --weeks (default 5), as manage.py's command does (see
// src/zulip/actions/attachments.ts for Zulip's rules). A dry run unless -f: it lists the files and exits 1
// with "This was a dry run. Pass -f to actually delete.", like manage.py. -C also looks for files
// in storage without any database row (older than five minutes) and removes them with -f.
//
// Takes the lock of Zulip's own cron job (/srv/zulip-locks/delete_old_unclaimed_attachments.lock,
// a non-blocking flock) so the two never run at once. Local storage only: with S3
// (LOCAL_UPLOADS_DIR unset) the dry run lists, -f and -C refuse (exit 1) before deleting anything.
//
// Output as manage.py's ("Deleting unclaimed attached files older than 5 weeks", one
// "* <file name> created at <time>" per row, "Unclaimed files deleted."), then a summary line for
// cron mail; -q/--quiet prints only errors.
//
// --json: src/schemas/delete_old_unclaimed_attachments.ts (README: --json output). Without -f the
// document is the dry run's plan with ok false, exit 1 and manage.py's message in error, as
// manage.py exits 1 then.
import { addFlushCacheOption, pythonIntArg } from "../cli/options.js";
import {
  cleanUpStorage,
  DEFAULT_WEEKS,
  deleteOldUnclaimedAttachments,
  getOldUnclaimedAttachments,
  type DeleteUnclaimedResult,
  localUploadsDir,
  type UnclaimedRow,
} from "../zulip/actions/attachments.js";
import { CacheInvalidation, cacheReportJson } from "../zulip/cache.js";
import { utcTimestampFromPg } from "../cli/json-contract.js";
import type { DeleteOldUnclaimedAttachmentsBody } from "../schemas/delete_old_unclaimed_attachments.js";
import { plural } from "../cli/output.js";
import { defineCommand } from "../cli/command.js";
import { CommandError } from "../lib/errors.js";
import { withLock } from "../zulip/lockfile.js";

export const DRY_RUN_MESSAGE = "This was a dry run. Pass -f to actually delete.";
export const S3_REFUSAL =
  "Uploaded files are stored in S3 (LOCAL_UPLOADS_DIR is not set); zulip-manage deletes only local files. " +
  "Run /home/zulip/deployments/current/manage.py delete_old_unclaimed_attachments on the server instead.";

export default defineCommand({
  name: "delete_old_unclaimed_attachments",
  description:
    "Remove unclaimed attachments from storage older than a supplied numerical value indicating the limit of how old " +
    "the attachment can be. The default is five weeks.\nA dry run unless -f.",
  examples: [
    "zulip-manage delete_old_unclaimed_attachments",
    "zulip-manage delete_old_unclaimed_attachments -w 8 -f --quiet      # from cron",
    "zulip-manage delete_old_unclaimed_attachments -f -C --json",
  ],
  configure: (cmd) =>
    addFlushCacheOption(
      cmd
        .option("-w, --weeks <weeks>", "How long unattached attachments are preserved; defaults to 5 weeks.", pythonIntArg, DEFAULT_WEEKS)
        .option("-f, --for-real", "Actually remove the files from the storage.")
        .option(
          "-C, --clean-up-storage",
          "Examine all attachments in storage and remove any files which are not in the database. This may take a very long time!",
        )
        .option("-q, --quiet", "print nothing but errors"),
    ),
  async run(ctx, _args, opts) {
    const out = ctx.out;
    const quiet = Boolean(opts.quiet);
    const say = (s = "") => (quiet ? undefined : out.line(s));
    const weeks: number = opts.weeks;
    const forReal = Boolean(opts.forReal);
    const settings = ctx.config().settings;
    const uploadsDir = localUploadsDir(settings);
    if ((forReal || opts.cleanUpStorage) && uploadsDir === null) throw new CommandError(S3_REFUSAL);
    const db = await ctx.db();

    return withLock(ctx.paths.lockDir, "delete_old_unclaimed_attachments", async () => {
      say(`Deleting unclaimed attached files older than ${weeks} weeks`);
      const listed = await getOldUnclaimedAttachments(db, weeks);
      for (const a of [...listed.attachments, ...listed.archived]) say(`* ${a.file_name} created at ${a.create_time}`);

      let deleted: DeleteUnclaimedResult | null = null;
      const inval = new CacheInvalidation(ctx, opts.flushCache);
      if (forReal) {
        deleted = await inval.guard(() => deleteOldUnclaimedAttachments(db, weeks, listed, uploadsDir!, inval));
        say();
        say("Unclaimed files deleted.");
        for (const f of deleted.files.failed) if (!quiet) out.warn(`Warning: could not delete ${f.path}: ${f.error}`);
      }
      let cleanup: Awaited<ReturnType<typeof cleanUpStorage>> | null = null;
      if (opts.cleanUpStorage) {
        say();
        cleanup = await cleanUpStorage(db, uploadsDir!, !forReal);
        // (sic) Zulip's wording.
        say(`Removing extra files in storage black-end older than ${cleanup.cutoff}`);
        for (const f of cleanup.files) say(`* ${f.path} modified at ${f.modified_at}`);
        for (const f of cleanup.removed.failed) if (!quiet) out.warn(`Warning: could not delete ${f.path}: ${f.error}`);
      }

      const cache = forReal ? await inval.commit() : null;
      const unclaimed = (x: UnclaimedRow) => ({
        id: x.id,
        file_name: x.file_name,
        path_id: x.path_id,
        created_at: utcTimestampFromPg(x.create_time),
        size_bytes: x.size,
      });
      out.jsonBody<DeleteOldUnclaimedAttachmentsBody>(
        {
          dry_run: !forReal,
          weeks,
          attachments: listed.attachments.map(unclaimed),
          archived_attachments: listed.archived.map(unclaimed),
          deleted: deleted && {
            attachments_count: deleted.attachments,
            archived_attachments_count: deleted.archived_attachments,
            image_attachments_count: deleted.image_attachments,
            skipped_count: deleted.skipped,
            files: deleted.files,
          },
          storage_cleanup: cleanup && {
            cutoff_at: utcTimestampFromPg(cleanup.cutoff),
            files: cleanup.files.map((f) => ({ path: f.path, modified_at: utcTimestampFromPg(f.modified_at) })),
            removed: cleanup.removed,
          },
          cache: cache ? cacheReportJson(cache) : null,
        },
        forReal ? undefined : { error: DRY_RUN_MESSAGE, error_code: "refused" },
      );
      if (!forReal) {
        say();
        if (!out.json) out.err(DRY_RUN_MESSAGE);
        return 1;
      }
      const files = deleted!.files.deleted.length + (cleanup?.removed.deleted.length ?? 0);
      const failed = deleted!.files.failed.length + (cleanup?.removed.failed.length ?? 0);
      say(
        `Deleted ${plural(deleted!.attachments, "unclaimed attachment")} and ${plural(deleted!.archived_attachments, "archived one")} older than ${weeks} weeks, ` +
          `${plural(files, "file")} removed${cleanup ? ` (${cleanup.removed.deleted.length} without a database row)` : ""}` +
          `${deleted!.skipped ? `; ${deleted!.skipped} claimed meanwhile, kept` : ""}${failed ? `; ${failed} could not be removed` : ""}.`,
      );
      return 0;
    });
  },
});
