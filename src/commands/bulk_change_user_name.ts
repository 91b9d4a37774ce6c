// bulk_change_user_name: manage.py bulk_change_user_name — rename many users from a file of
// "<email>,<new name>" lines (the first comma separates; "-" reads standard input), each with
// Zulip's check_full_name and do_change_full_name (src/zulip/actions/change-full-name.ts): one transaction per line
// (the user row locked), a USER_FULL_NAME_CHANGED audit row per change, the realm_user events,
// the user's cache entries deleted.
//
// Like manage.py, it prints "<email>: <old name> -> <new name>" per line and skips unknown
// emails with "e-mail <email> doesn't exist in the realm <realm>, skipping". Unlike manage.py
// (which stores any name and crashes on a line without a comma), names go through Zulip's
// validation and a bad line is skipped with the reason; the exit status is 1 when any line was
// skipped.
//
// --json: src/schemas/bulk_change_user_name.ts (README: --json output): one result per
// non-blank line, full_name as {old, new}; a skipped line is status refused (exit 1).
import { addEventsOption, addFlushCacheOption, addRequiredRealmOption } from "../cli/options.js";
import { CacheInvalidation, cacheReportJson } from "../zulip/cache.js";
import { defineCommand } from "../cli/command.js";
import { CommandError, UsageError } from "../lib/errors.js";
import { EventDelivery, eventsReportJson, featureLevel } from "../services/events.js";
import { READ_LIMITS, readOptionFile } from "../lib/files.js";
import { getRealm, getUser, type Realm, realmLabel, type UserProfile } from "../zulip/lookup.js";
import { outcome } from "../cli/json-contract.js";
import { realmJson, userJson } from "../cli/json-objects.js";
import type { BulkChangeUserNameBody } from "../schemas/bulk_change_user_name.js";
import { checkFullName, doChangeFullName } from "../zulip/actions/change-full-name.js";
import { pyStrip } from "../lib/pyformat.js";

interface LineResult {
  line: number;
  email: string;
  user_id: number | null;
  old_name: string | null;
  new_name: string | null;
  changed: boolean;
  error: string | null;
  audit_log_id: number | null;
  row: UserProfile | null;
}

function lineJson(r: LineResult, dryRun: boolean): BulkChangeUserNameBody["results"][number] {
  const status = r.error !== null ? "refused" : r.new_name === r.old_name ? "unchanged" : dryRun ? "would_do" : "done";
  return {
    line: r.line,
    email: r.email,
    user: r.row && userJson(r.row),
    full_name: r.old_name !== null && r.new_name !== null ? { old: r.old_name, new: r.new_name } : null,
    audit_log_ids: r.audit_log_id === null ? [] : [r.audit_log_id],
    ...outcome(status, r.error),
  };
}

/** Python's text-mode line iteration (universal newlines): the lines, without their ends. */
export function pythonLines(text: string): string[] {
  const lines = text.split(/\r\n|\r|\n/);
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

export default defineCommand({
  name: "bulk_change_user_name",
  description:
    "Change the names for many users.\n\n" +
    '<data file> has one "<email>,<new name>" line per user ("-" reads standard input). Each name is checked as ' +
    "Zulip checks a name changed in the web app (length, characters, unique names where the organization requires them).",
  examples: [
    "zulip-manage bulk_change_user_name -r zulip names.csv",
    "zulip-manage bulk_change_user_name -r zulip names.csv --dry-run",
    "printf 'iago@zulip.com,Iago Ghost\\n' | zulip-manage bulk_change_user_name -r zulip -",
  ],
  configure: (cmd) =>
    addEventsOption(
      addFlushCacheOption(
        addRequiredRealmOption(
          cmd.usage("[options] -r REALM <data file>").argument("[data_file]", "file containing rows of the form <email>,<desired name>"),
        ).option("--dry-run", "show what would change, and change nothing"),
      ),
    ),
  async run(ctx, args, opts) {
    const out = ctx.out;
    if (args[0] === undefined) throw new UsageError("the following arguments are required: <data file>");
    const text = readOptionFile(args[0], READ_LIMITS.csv, "the data file");
    const dryRun = Boolean(opts.dryRun);
    const db = await ctx.db();
    const realm = (await getRealm(db, opts.realm)) as Realm;
    const realmRef = { id: Number(realm.id), string_id: realm.string_id };
    const inval = new CacheInvalidation(ctx, opts.flushCache);
    const events = new EventDelivery(ctx, opts.events);
    const level = featureLevel(ctx.paths, db);
    const results: LineResult[] = [];
    let cache: BulkChangeUserNameBody["cache"] = null;
    let delivery: BulkChangeUserNameBody["events"] = null;
    try {
      for (const [i, raw] of pythonLines(text).entries()) {
        const line = pyStrip(raw);
        if (line === "") continue;
        const comma = line.indexOf(",");
        const r: LineResult = {
          line: i + 1,
          email: comma < 0 ? line : line.slice(0, comma),
          user_id: null,
          old_name: null,
          new_name: null,
          changed: false,
          error: null,
          audit_log_id: null,
          row: null,
        };
        results.push(r);
        if (comma < 0) {
          r.error = "expected <email>,<new name>";
          out.err(`line ${r.line}: ${r.error}; skipping`);
          continue;
        }
        const newRaw = line.slice(comma + 1);
        let user: UserProfile;
        try {
          user = await getUser(db, r.email, realm);
        } catch (e) {
          if (!(e instanceof CommandError)) throw e;
          r.error = e.message;
          out.line(`e-mail ${r.email} doesn't exist in the realm ${realmLabel(realm)}, skipping`);
          continue;
        }
        r.user_id = user.id;
        r.row = user;
        r.old_name = user.full_name;
        out.line(`${r.email}: ${user.full_name} -> ${newRaw}`);
        try {
          if (dryRun) {
            r.new_name = await checkFullName(db, newRaw, user);
            if (r.new_name === user.full_name) out.line("  (the name is unchanged: nothing would be written)");
            continue;
          }
          inval.prepare();
          const change = await doChangeFullName(db, user.id, newRaw, { realm: realmRef, events, featureLevel: level, cache: inval });
          r.old_name = change.oldName;
          r.new_name = change.newName;
          r.changed = change.changed;
          r.audit_log_id = change.auditLogId;
          if (!change.changed) out.line("  (the name is unchanged: nothing was written)");
        } catch (e) {
          if (!(e instanceof CommandError)) throw e;
          r.error = e.message;
          out.err(`line ${r.line} (${r.email}): ${e.message} Skipping.`);
        }
      }
    } finally {
      if (!dryRun) {
        cache = cacheReportJson(await inval.commit());
        delivery = eventsReportJson(await events.commit());
      }
    }
    const failed = results.filter((r) => r.error !== null);
    if (dryRun) out.line("(dry run: nothing was changed)");
    const summary = `${failed.length} of ${results.length} lines were skipped.`;
    out.jsonBody<BulkChangeUserNameBody>(
      { dry_run: dryRun, realm: realmJson(ctx.config().settings, realm), results: results.map((r) => lineJson(r, dryRun)), cache, events: delivery },
      failed.length ? { error: summary, error_code: "refused" } : undefined,
    );
    if (failed.length) {
      out.err(summary);
      return 1;
    }
    return 0;
  },
});
