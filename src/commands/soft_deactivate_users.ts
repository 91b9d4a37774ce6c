// soft_deactivate_users: soft activate/deactivate users, as manage.py's command does (see
// src/zulip/actions/soft-deactivation.ts for what each step writes).
//
//   -d EMAIL...          soft-deactivate these users ("Soft deactivating forcefully...")
//   -d                   soft-deactivate every active human whose last visit is more than
//                        --inactive-for days (default 28) ago, then, unless settings.py sets
//                        AUTO_CATCH_UP_SOFT_DEACTIVATED_USERS = False, add the missing UserMessage
//                        rows of all soft-deactivated users (Zulip's daily cron job)
//   -a EMAIL...          soft-reactivate these users (their missing UserMessage rows first)
//   -r REALM             limit to one organization
//
// Zulip does all of this inline in the command (nothing goes to a queue worker), and so do we,
// in batches with flat memory. Cron-friendly: never prompts; one summary line; -q prints only
// errors. A user whose catch-up fails during -d is reported (exit 1) after the others are done,
// as Zulip logs and carries on.
//
// --json: src/schemas/soft_deactivate_users.ts (README: --json output): one body for -d, one
// for -a; users as the contract's user object; catch-up failures (exit 1) with status failed.
import { addFlushCacheOption, addRealmOption, pythonIntArg } from "../cli/options.js";
import { CacheInvalidation, cacheReportJson } from "../zulip/cache.js";
import { plural } from "../cli/output.js";
import { defineCommand } from "../cli/command.js";
import { CommandError } from "../lib/errors.js";
import { getRealm } from "../zulip/lookup.js";
import { outcome } from "../cli/json-contract.js";
import { usersJsonByIds } from "../cli/json-objects.js";
import type { SoftActivateBody, SoftDeactivateBody } from "../schemas/soft_deactivate_users.js";
import {
  autoCatchUpSoftDeactivatedUsers,
  reactivateUserIfSoftDeactivated,
  SoftDeactivationLog,
  type SoftReactivated,
  softDeactivateUsers,
  usersFromEmails,
  usersToSoftDeactivate,
} from "../zulip/actions/soft-deactivation.js";

const userCount = (n: number) => `${n} user(s)`;

export default defineCommand({
  name: "soft_deactivate_users",
  description: "Soft activate/deactivate users. Users are recognised by their emails here.",
  examples: [
    "zulip-manage soft_deactivate_users -d --quiet                 # daily from cron, as Zulip's own job",
    "zulip-manage soft_deactivate_users -d --inactive-for 60 -r zulip",
    "zulip-manage soft_deactivate_users -d iago@zulip.example.net",
    "zulip-manage soft_deactivate_users -a iago@zulip.example.net --json",
  ],
  configure: (cmd) =>
    addFlushCacheOption(
      addRealmOption(cmd)
        .option("-d, --deactivate", "Used to deactivate user/users.")
        .option("-a, --activate", "Used to activate user/users.")
        .option("--inactive-for <days>", "Number of days of inactivity before soft-deactivation", pythonIntArg, 28)
        .argument("[users...]", "A list of user emails to soft activate/deactivate.")
        .option("-q, --quiet", "print nothing but errors"),
    ),
  async run(ctx, args, opts) {
    const out = ctx.out;
    const quiet = Boolean(opts.quiet);
    const say = (s: string) => (quiet ? undefined : out.line(s));
    const emails = (args[0] ?? []).filter((e) => e !== undefined);
    if (!opts.activate && !opts.deactivate) throw new CommandError("Pass -d/--deactivate or -a/--activate (see zulip-manage soft_deactivate_users --help).");
    if (opts.activate && !emails.length) throw new CommandError("You need to specify at least one user to use the activate option.");
    const db = await ctx.db();
    const realm = await getRealm(db, opts.realm);
    const realmId = realm ? Number(realm.id) : null;
    const log = new SoftDeactivationLog(ctx.paths.logDir);
    const inval = new CacheInvalidation(ctx, opts.flushCache);

    if (opts.activate) {
      // manage.py checks --activate first when both are given.
      const users = await usersFromEmails(db, emails, realmId);
      const activated: SoftReactivated[] = [];
      const already: { id: number; email: string }[] = [];
      await inval.guard(async () => {
        for (const u of users) {
          const r = await reactivateUserIfSoftDeactivated(db, u, inval, log);
          if (r) activated.push(r);
          else already.push({ id: u.id, email: u.delivery_email });
        }
      });
      const cache = await inval.commit();
      say(`Soft reactivated ${userCount(activated.length)}`);
      if (out.json) {
        const objs = await usersJsonByIds(db, [...activated.map((a) => a.id), ...already.map((a) => a.id)]);
        out.jsonBody<SoftActivateBody>({
          dry_run: false,
          action: "activate",
          soft_reactivated: activated.map((a) => ({
            user: objs.get(a.id)!,
            messages_added_count: a.messages_added,
            last_active_message_id: a.last_active_message_id,
            audit_log_ids: [a.audit_log_id],
          })),
          already_active: already.map((a) => objs.get(a.id)!),
          cache: cacheReportJson(cache),
        });
      }
      return 0;
    }

    const forced = emails.length > 0;
    const users = forced ? await usersFromEmails(db, emails, realmId) : await usersToSoftDeactivate(db, opts.inactiveFor, realmId);
    if (forced) say("Soft deactivating forcefully...");
    const deactivated = await inval.guard(() => softDeactivateUsers(db, users, inval, log));
    const cache = await inval.commit();
    // do_auto_soft_deactivate_users' catch-up (not after -d with users).
    const catchUp = forced ? null : await autoCatchUpSoftDeactivatedUsers(db, realmId, log, ctx.config().settings);
    say(`Soft deactivated ${userCount(deactivated.length)}`);
    if (catchUp) {
      const added = catchUp.caught_up.reduce((n, c) => n + c.messages_added, 0);
      say(`Caught up ${catchUp.caught_up.length} soft-deactivated users (${plural(added, "message")} added)`);
      for (const f of catchUp.failures) out.error(`Failed to catch up ${f.email} (id ${f.id}): ${f.error}`);
    }
    const failures = catchUp?.failures ?? [];
    if (out.json) {
      const objs = await usersJsonByIds(db, [...deactivated.map((d) => d.id), ...(catchUp?.caught_up ?? []).map((c) => c.id), ...failures.map((f) => f.id)]);
      out.jsonBody<SoftDeactivateBody>(
        {
          dry_run: false,
          action: "deactivate",
          mode: forced ? "users" : "inactive",
          inactive_for_days: forced ? null : opts.inactiveFor,
          soft_deactivated: deactivated.map((d) => ({
            user: objs.get(d.id)!,
            last_active_message_id: d.last_active_message_id,
            audit_log_ids: [d.audit_log_id],
          })),
          caught_up:
            catchUp &&
            catchUp.caught_up.map((c) => ({ user: objs.get(c.id)!, messages_added_count: c.messages_added, last_active_message_id: c.last_active_message_id })),
          catch_up_failures: failures.map((f) => ({ user: objs.get(f.id) ?? null, ...outcome("failed", f.error) })),
          cache: cacheReportJson(cache),
        },
        failures.length ? { error: `Failed to catch up ${failures.length} soft-deactivated user(s).`, error_code: "refused" } : undefined,
      );
    }
    return catchUp?.failures.length ? 1 : 0;
  },
});
