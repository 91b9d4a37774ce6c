// export_single_user: export one user's data and message history, as Zulip's
// zerver/management/commands/export_single_user.py and do_export_user do (see src/zulip/actions/export.ts
// for the files and their format), then pack the directory into <dir>.tar.gz.
//
// The output directory is --output (made absolute, symlinks resolved; created if missing;
// refused with manage.py's message if it has anything in it) or a new zulip-export-XXXXXX in the
// temp directory. The database is only read (one read-only REPEATABLE READ transaction, so the
// export is a consistent snapshot); messages stream through a server-side cursor and the
// tarball is written by streaming, so memory stays flat however many messages the user has.
// Differences from manage.py: an existing empty --output directory is used (manage.py crashes
// with FileExistsError), files missing from LOCAL_UPLOADS_DIR are reported as warnings instead
// of aborting, and S3 storage is not read (warning).
//
// --json: src/schemas/export_single_user.ts (README: --json output).
import { addRealmOption } from "../cli/options.js";
import fs from "node:fs";
import { defineCommand } from "../cli/command.js";
import { UsageError } from "../lib/errors.js";
import { exportSettings, exportSingleUser, prepareOutputDir, writeTarGz } from "../zulip/actions/export.js";
import { msSince } from "../cli/json-contract.js";
import { realmJsonById, userJson } from "../cli/json-objects.js";
import { getRealm, getUser } from "../zulip/lookup.js";
import type { ExportSingleUserBody } from "../schemas/export_single_user.js";

export default defineCommand({
  name: "export_single_user",
  description:
    "Exports message data from a Zulip user\n\n" +
    "This command exports the message history for a single Zulip user.\n\n" +
    "Note that this only exports the user's message history and realm-public metadata needed " +
    "to understand it; it does nothing with (for example) any bots owned by the user.",
  examples: [
    "zulip-manage export_single_user -r zulip iago@zulip.com",
    "zulip-manage export_single_user -r zulip iago@zulip.com --output /home/zulip/export-iago",
  ],
  configure: (cmd) =>
    addRealmOption(cmd.argument("[email]", "email of user to export").option("--output <output_dir>", "Directory to write exported data to.")),
  async run(ctx, args, opts) {
    const email = args[0];
    if (email === undefined) throw new UsageError("the following arguments are required: email");
    const out = ctx.out;
    const db = await ctx.db();
    const realm = await getRealm(db, opts.realm);
    const user = await getUser(db, email, realm);
    const started = process.hrtime.bigint();

    const outputDir = prepareOutputDir(opts.output);
    const settings = ctx.config().settings;
    out.line(`Exporting user ${user.delivery_email}`);
    const result = await exportSingleUser(db, user.id, { outputDir, ...exportSettings(settings) });
    for (const w of result.warnings) out.warn(`Warning: ${w}`);
    out.line(`Finished exporting to ${outputDir}; tarring`);
    const tarballPath = outputDir.replace(/\/+$/, "") + ".tar.gz";
    await writeTarGz(outputDir, tarballPath);
    out.line(`Tarball written to ${tarballPath}`);

    if (out.json) {
      out.jsonBody<ExportSingleUserBody>({
        dry_run: false,
        user: userJson(user),
        realm: await realmJsonById(db, settings, user.realm_id),
        output_dir: outputDir,
        tarball: tarballPath,
        tarball_bytes: fs.statSync(tarballPath).size,
        files: result.files,
        tables: result.tables,
        messages_count: result.messages,
        message_files_count: result.messageFiles,
        uploads_count: result.uploads,
        avatars_count: result.avatars,
        emoji_count: result.emoji,
        warnings: result.warnings,
        duration_ms: msSince(started),
      });
    }
    return 0;
  },
});
