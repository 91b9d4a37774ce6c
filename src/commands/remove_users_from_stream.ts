// remove_users_from_stream: manage.py remove_users_from_stream — unsubscribe users (-u EMAILS
// or -a) from one channel (-s NAME) as Zulip's bulk_remove_subscriptions does
// (lib/subscriptions.ts): one transaction, SUBSCRIPTION_DEACTIVATED rows, subscriber count,
// the subscription remove / peer_remove events and the mark-as-read queue job. Output as
// manage.py's: "Removed <email> from <channel>" / "<email> was not subscribed".
//
// --json: src/schemas/remove_users_from_stream.ts (README: --json output): one result per user,
// done (removed), would_do (dry run) or unchanged (was not subscribed).
import { pyStrip } from "../lib/pyformat.js";
import { addEventsOption, addFlushCacheOption, addRequiredRealmOption, addUserListOptions } from "../cli/options.js";
import { CacheInvalidation, cacheReportJson } from "../zulip/cache.js";
import { defineCommand } from "../cli/command.js";
import { CommandError } from "../lib/errors.js";
import { EventDelivery, eventsReportJson, featureLevel } from "../services/events.js";
import { outcome } from "../cli/json-contract.js";
import { realmJson, USER_JSON_COLUMNS, userJson } from "../cli/json-objects.js";
import type { RemoveUsersFromStreamBody } from "../schemas/remove_users_from_stream.js";
import { doRemoveUsersFromChannel, findChannel, selectRealmUsers, subscribedUsers } from "../zulip/actions/subscriptions.js";

export default defineCommand({
  name: "remove_users_from_stream",
  description: "Remove some or all users in a realm from a stream.",
  examples: [
    "zulip-manage remove_users_from_stream -r zulip -s design -u iago@zulip.com",
    "zulip-manage remove_users_from_stream -r zulip -s design -a --dry-run",
  ],
  configure: (cmd) =>
    addEventsOption(
      addFlushCacheOption(
        addUserListOptions(
          addRequiredRealmOption(cmd.usage("[options] -r REALM -s CHANNEL (-u EMAILS | -a)").requiredOption("-s, --stream <stream>", "A stream name.")),
          {
            all: "Remove all users in realm from this stream.",
          },
        ).option("--dry-run", "show what would change, and change nothing"),
      ),
    ),
  async run(ctx, _args, opts) {
    const out = ctx.out;
    const dryRun = Boolean(opts.dryRun);
    const db = await ctx.db();
    const { realm, realmRef, users, userIds, emailOf: email } = await selectRealmUsers(db, opts, USER_JSON_COLUMNS);
    const name = pyStrip(String(opts.stream));
    const channel = await findChannel(db, realmRef.id, name);
    if (!channel) throw new CommandError(`Invalid channel name '${name}'`);
    const doc: RemoveUsersFromStreamBody = {
      dry_run: dryRun,
      realm: realmJson(ctx.config().settings, realm),
      channel: { id: channel.id, name: channel.name },
      removed_count: 0,
      not_subscribed_count: 0,
      results: [],
      audit_log_ids: [],
      cache: null,
      events: null,
    };
    let removed: Set<number>;
    if (dryRun) {
      removed = await subscribedUsers(db, channel, userIds);
    } else {
      const inval = new CacheInvalidation(ctx, opts.flushCache);
      const events = new EventDelivery(ctx, opts.events);
      try {
        const r = await doRemoveUsersFromChannel(db, realmRef.id, channel, userIds, {
          notify: { events, realm: realmRef, what: `the unsubscriptions from '${channel.name}'` },
          featureLevel: featureLevel(ctx.paths, db),
        });
        removed = new Set(r.changed);
        doc.audit_log_ids = r.auditLogIds;
      } finally {
        doc.cache = cacheReportJson(await inval.commit());
        doc.events = eventsReportJson(await events.commit());
      }
    }
    doc.results = users.map((u) => ({ user: userJson(u), ...outcome(removed.has(Number(u.id)) ? (dryRun ? "would_do" : "done") : "unchanged") }));
    doc.removed_count = userIds.filter((u) => removed.has(u)).length;
    doc.not_subscribed_count = userIds.length - doc.removed_count;
    for (const id of userIds) {
      if (removed.has(id)) out.line(`${dryRun ? "Would remove" : "Removed"} ${email.get(id)} from ${name}`);
      else out.line(`${email.get(id)} was not subscribed`);
    }
    if (dryRun) out.line("(dry run: nothing was changed)");
    out.jsonBody<RemoveUsersFromStreamBody>(doc);
    return 0;
  },
});
