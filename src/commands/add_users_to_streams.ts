// add_users_to_streams: manage.py add_users_to_streams — subscribe users (-u EMAILS or -a) to
// channels (-s "name,name"), creating a channel that does not exist as Zulip's ensure_stream
// does (lib/subscriptions.ts). One transaction per channel. Output as manage.py's:
// "Subscribed <email> to <channel>" / "Already subscribed <email> to <channel>", plus a line
// when a channel is created (manage.py creates it silently).
//
// --json: src/schemas/add_users_to_streams.ts (README: --json output): per channel, one result per
// user, done (subscribed), would_do (dry run) or unchanged (already subscribed).
import { pyStrip } from "../lib/pyformat.js";
import { addEventsOption, addFlushCacheOption, addRequiredRealmOption, addUserListOptions } from "../cli/options.js";
import { CacheInvalidation, cacheReportJson } from "../zulip/cache.js";
import { defineCommand } from "../cli/command.js";
import { EventDelivery, eventsReportJson, featureLevel } from "../services/events.js";
import { outcome } from "../cli/json-contract.js";
import { realmJson, USER_JSON_COLUMNS, userJson } from "../cli/json-objects.js";
import type { AddUsersToStreamsBody, ChannelSubscriptions } from "../schemas/add_users_to_streams.js";
import { checkChannelNamesCreatable, doAddUsersToChannel, planAddUsersToChannel, selectRealmUsers } from "../zulip/actions/subscriptions.js";
import { readAvatarSettings } from "../zulip/avatar.js";

type ChannelResult = ChannelSubscriptions;

export default defineCommand({
  name: "add_users_to_streams",
  description:
    "Add some or all users in a realm to a set of streams.\n\n" +
    "A channel that does not exist yet is created first, public and with Zulip's default settings, as manage.py does.",
  examples: [
    "zulip-manage add_users_to_streams -r zulip -u iago@zulip.com,hamlet@zulip.com -s design,announce",
    "zulip-manage add_users_to_streams -r zulip -a -s general --dry-run",
  ],
  configure: (cmd) =>
    addEventsOption(
      addFlushCacheOption(
        addUserListOptions(addRequiredRealmOption(cmd.usage("[options] -r REALM (-u EMAILS | -a) -s CHANNELS")), {
          all: "Add all users in realm to these streams.",
        })
          .requiredOption("-s, --streams <streams>", "A comma-separated list of stream names.")
          .option("--dry-run", "show what would change, and change nothing"),
      ),
    ),
  async run(ctx, _args, opts) {
    const out = ctx.out;
    const dryRun = Boolean(opts.dryRun);
    const db = await ctx.db();
    const { realm, realmRef, users, userIds, emailOf: email } = await selectRealmUsers(db, opts, USER_JSON_COLUMNS);
    const names = [
      ...new Set(
        String(opts.streams)
          .split(",")
          .map((n) => pyStrip(n)),
      ),
    ];
    // Refuse names Zulip could not store before writing anything.
    await checkChannelNamesCreatable(db, realmRef.id, names);
    const inval = new CacheInvalidation(ctx, opts.flushCache);
    const events = new EventDelivery(ctx, opts.events);
    const results: ChannelResult[] = [];
    const print = (r: ChannelResult) => {
      if (r.created) out.line(`${dryRun ? "Would create" : "Created"} channel '${r.name}' (public, Zulip's default settings).`);
      if (r.archived) out.line(`Note: channel '${r.name}' is archived; Zulip subscribes users to it all the same.`);
      const subscribedIds = new Set(r.results.filter((x) => x.status !== "unchanged").map((x) => x.user.id));
      for (const id of userIds) {
        const word = subscribedIds.has(id) ? (dryRun ? "Would subscribe" : "Subscribed") : "Already subscribed";
        out.line(`${word} ${email.get(id)} to ${r.name}`);
      }
    };
    let cache: ReturnType<typeof cacheReportJson> = null;
    let delivery: ReturnType<typeof eventsReportJson> = null;
    const auditLogIds: number[] = [];
    const eventsNotSent: string[] = [];
    const byId = new Map(users.map((u) => [Number(u.id), userJson(u)]));
    const setResults = (r: ChannelResult, changed: number[], unchanged: Set<number>) => {
      const done = new Set(changed);
      r.results = userIds
        .filter((u) => done.has(u) || unchanged.has(u))
        .map((u) => ({ user: byId.get(u)!, ...outcome(unchanged.has(u) ? "unchanged" : dryRun ? "would_do" : "done") }));
      r.subscribed_count = changed.length;
      r.already_subscribed_count = r.results.length - changed.length;
    };
    try {
      for (const name of names) {
        const r: ChannelResult = { id: null, name, created: false, archived: false, subscribed_count: 0, already_subscribed_count: 0, results: [] };
        results.push(r);
        if (dryRun) {
          const { channel, already } = await planAddUsersToChannel(db, realmRef.id, name, userIds);
          r.created = channel === null;
          r.id = channel?.id ?? null;
          r.archived = channel?.deactivated ?? false;
          setResults(
            r,
            userIds.filter((u) => !already.has(u)),
            already,
          );
          print(r);
          continue;
        }
        inval.prepare();
        const notify = { events, realm: realmRef, what: `the subscriptions to '${name}'` };
        const level = featureLevel(ctx.paths, db);
        const outcome = await doAddUsersToChannel(db, realmRef.id, name, userIds, {
          cache: inval,
          notify,
          featureLevel: level,
          avatar: readAvatarSettings(ctx.config().settings),
        });
        eventsNotSent.push(...outcome.change.eventsNotSent);
        r.id = outcome.ensured.channel.id;
        r.created = outcome.ensured.created;
        r.archived = outcome.ensured.channel.deactivated;
        setResults(r, outcome.change.changed, new Set(outcome.change.unchanged));
        auditLogIds.push(...outcome.ensured.auditLogIds, ...outcome.change.auditLogIds);
        print(r);
      }
    } finally {
      if (!dryRun) {
        cache = cacheReportJson(await inval.commit());
        delivery = eventsReportJson(await events.commit());
      }
    }
    if (dryRun) out.line("(dry run: nothing was changed)");
    for (const e of eventsNotSent) out.line(`Note: not sent: ${e}.`);
    out.jsonBody<AddUsersToStreamsBody>({
      dry_run: dryRun,
      realm: realmJson(ctx.config().settings, realm),
      channels: results,
      audit_log_ids: auditLogIds,
      cache,
      events: delivery,
    });
    return 0;
  },
});
