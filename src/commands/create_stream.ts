// create_stream: manage.py create_stream — create a public channel with Zulip's defaults as
// create_stream_if_needed(realm, name, acting_user=None) does (src/zulip/actions/subscriptions.ts
// ensureChannel): the channel and its recipient, the permission groups' defaults, the
// CHANNEL_CREATED audit row. Like manage.py, nobody is subscribed (despite its help text) and
// an existing channel of that name (any case) is left as it is; we say so.
//
// --json: src/schemas/create_stream.ts (README: --json output).
import { pyStrip } from "../lib/pyformat.js";
import { addEventsOption, addFlushCacheOption, addRequiredRealmOption } from "../cli/options.js";
import { CacheInvalidation, cacheReportJson } from "../zulip/cache.js";
import { defineCommand } from "../cli/command.js";
import { CommandError, UsageError } from "../lib/errors.js";
import { EventDelivery, eventsReportJson, featureLevel } from "../services/events.js";
import { realmJson } from "../cli/json-objects.js";
import { getRealm } from "../zulip/lookup.js";
import type { CreateStreamBody } from "../schemas/create_stream.js";
import { channelNameProblem, doEnsureChannel, findChannel } from "../zulip/actions/subscriptions.js";

export default defineCommand({
  name: "create_stream",
  description:
    "Create a stream, and subscribe all active users (excluding bots).\n\n" +
    "This should be used for TESTING only, unless you understand the limitations of the command.\n\n" +
    "(As in manage.py, the channel is created public with Zulip's default settings and nobody is subscribed; " +
    "use add_users_to_streams for that.)",
  examples: ["zulip-manage create_stream -r zulip design", "zulip-manage create_stream -r zulip 'team updates' --dry-run"],
  configure: (cmd) =>
    addEventsOption(
      addFlushCacheOption(
        addRequiredRealmOption(cmd.usage("[options] -r REALM <stream name>"), "realm in which to create the stream")
          .argument("[stream_name]", "name of stream to create")
          .option("--dry-run", "show what would change, and change nothing"),
      ),
    ),
  async run(ctx, args, opts) {
    const out = ctx.out;
    if (args[0] === undefined) throw new UsageError("the following arguments are required: <stream name>");
    const dryRun = Boolean(opts.dryRun);
    const db = await ctx.db();
    const realm = (await getRealm(db, opts.realm))!;
    const realmRef = { id: Number(realm.id), string_id: realm.string_id };
    const name = pyStrip(args[0]);
    const doc: CreateStreamBody = {
      dry_run: dryRun,
      realm: realmJson(ctx.config().settings, realm),
      channel: { id: null, name },
      created: false,
      audit_log_ids: [],
      cache: null,
      events: null,
    };
    const existing = await findChannel(db, realmRef.id, name);
    if (!existing) {
      const problem = channelNameProblem(name);
      if (problem) throw new CommandError(problem);
    }
    if (dryRun || existing) {
      doc.channel = existing ? { id: existing.id, name: existing.name } : { id: null, name };
      doc.created = !existing && dryRun;
      if (existing) out.line(`Channel '${existing.name}' already exists${existing.deactivated ? " (archived)" : ""}; nothing to do.`);
      else out.line(`Would create channel '${name}' (public, Zulip's default settings).`);
      if (dryRun) {
        out.line("(dry run: nothing was changed)");
        doc.created = !existing;
      } else {
        // Nothing to write; --flush-cache=all still flushes, as in every write command.
        doc.cache = cacheReportJson(await new CacheInvalidation(ctx, opts.flushCache).commit());
      }
      out.jsonBody<CreateStreamBody>(doc);
      return 0;
    }
    const inval = new CacheInvalidation(ctx, opts.flushCache);
    const events = new EventDelivery(ctx, opts.events);
    try {
      inval.prepare();
      const notify = { events, realm: { id: realmRef.id, string_id: realmRef.string_id }, what: `the new channel '${name}'` };
      const r = await doEnsureChannel(db, realmRef.id, name, { cache: inval, notify, featureLevel: featureLevel(ctx.paths, db) });
      doc.channel = { id: r.channel.id, name: r.channel.name };
      doc.created = r.created;
      doc.audit_log_ids = r.auditLogIds;
      out.line(r.created ? `Created channel '${r.channel.name}'.` : `Channel '${r.channel.name}' already exists; nothing to do.`);
    } finally {
      doc.cache = cacheReportJson(await inval.commit());
      doc.events = eventsReportJson(await events.commit());
    }
    out.jsonBody<CreateStreamBody>(doc);
    return 0;
  },
});
