// unarchive_channel: manage.py unarchive_channel (formerly unarchive_stream): find an archived
// channel by name (also under the "!DEACTIVATED:" names archiving used to give) or id, check
// the new name, then do_unarchive_stream(channel, new_name, acting_user=None).
//
// One transaction (the channel row locked): the channel active under its (new) name, its email
// addresses reactivated, the attachments of its messages' public-visibility caches reset, the
// CHANNEL_REACTIVATED (604) audit row, and — when the organization has channel event messages
// on — Notification Bot's "Channel #**<name>** has been unarchived." in the channel's "channel
// events" topic with its UserMessage rows. When that message cannot be written exactly as Zulip
// renders it (non-English organization, unusual characters in the name, private channel), it is
// not written and a note says so. Memcached: the channel's display recipient and its messages'
// cached copies are deleted.
//
// Events (after the commit; lib/events.ts), as do_unarchive_stream sends them, to the users who
// can see the channel (can_access_stream_metadata_user_ids: for a public channel every active
// non-guest and its guest subscribers; for a private one its subscribers, the admins and bots,
// and the members of the groups that may administer it, add or subscribe to it): `stream`
// `update` is_archived=false, then `stream` `create` with the channel object and
// for_unarchiving=true (11.x and later; on 10.x only the create, without for_unarchiving — see
// zulip/actions/channels.ts); then, for the notice (12.x), the is_recently_active update and
// its `message` event (zulip/events/message-events.ts). Nothing for a dry run or a refusal.
//
// --json: src/schemas/unarchive_channel.ts (README: --json output): the channel's name as {old, new};
// when a name matches several archived channels, matches lists them (deactivated_at) and the
// document is a refusal.
import { addEventsOption, addFlushCacheOption, addRequiredRealmOption } from "../cli/options.js";
import { CacheInvalidation } from "../zulip/cache.js";
import {
  archivedChannelById,
  archivedChannelsByName,
  checkUnarchiveName,
  doUnarchiveStream,
  lastDeactivation,
  type ChannelRow,
} from "../zulip/actions/channels.js";
import { defineCommand } from "../cli/command.js";
import { EventDelivery, eventsReportJson, featureLevel } from "../services/events.js";
import { CommandError, UsageError } from "../lib/errors.js";
import { utcTimestampFromPg } from "../cli/json-contract.js";
import { realmJson } from "../cli/json-objects.js";
import type { UnarchiveChannelBody } from "../schemas/unarchive_channel.js";
import { getRealm, type Realm } from "../zulip/lookup.js";
import { cacheReportJson as cacheJson } from "../zulip/cache.js";

export default defineCommand({
  name: "unarchive_channel",
  description:
    "Reactivate a channel that was deactivated.\n\n" +
    'The channel is found by its name (also under the "!DEACTIVATED:…" names older Zulip versions gave archived ' +
    "channels) or by id; it comes back under its old name or --new-name.",
  examples: [
    "zulip-manage unarchive_channel -r zulip -c design",
    "zulip-manage unarchive_channel -r zulip --channel-id 17 -n design-archive",
    "zulip-manage unarchive_channel -r zulip -c design --dry-run",
  ],
  configure: (cmd) =>
    addEventsOption(
      addFlushCacheOption(
        addRequiredRealmOption(
          cmd
            .usage("[options] -r REALM (-c NAME | --channel-id ID) [-n NEW_NAME]")
            .option("-c, --channel <channel>", "Name of a deactivated channel in the realm.")
            .option("--channel-id <channel_id>", "ID of a deactivated channel in the realm.")
            .option("-n, --new-name <new_name>", "Name to reactivate as; defaults to the old name."),
        ).option("--dry-run", "show what would change, and change nothing"),
      ),
    ),
  async run(ctx, _args, opts) {
    if (opts.channel !== undefined && opts.channelId !== undefined) {
      throw new UsageError("argument --channel-id: not allowed with argument -c/--channel");
    }
    if (opts.channel === undefined && opts.channelId === undefined) {
      throw new UsageError("one of the arguments -c/--channel --channel-id is required");
    }
    const out = ctx.out;
    const dryRun = Boolean(opts.dryRun);
    const db = await ctx.db();
    const realm = (await getRealm(db, opts.realm)) as Realm;
    const result: UnarchiveChannelBody = {
      dry_run: dryRun,
      realm: realmJson(ctx.config().settings, realm),
      channel: null,
      matches: [],
      audit_log_ids: [],
      web_public_cleared: false,
      attachments_reset_count: 0,
      archived_attachments_reset_count: 0,
      channel_email_addresses_reactivated_count: 0,
      notice: null,
      notes: [],
      cache: null,
      events: null,
    };

    let channel: ChannelRow;
    let newName: string;
    if (opts.channelId !== undefined) {
      channel = await archivedChannelById(db, realm, opts.channelId);
      if (opts.newName === undefined) throw new CommandError("--new-name flag is required with --channel-id");
      newName = opts.newName;
    } else {
      const name: string = opts.channel!;
      const possible = await archivedChannelsByName(db, realm.id, name);
      if (possible.length === 0) throw new CommandError("No matching deactivated channels found!");
      if (possible.length > 1) {
        out.line("Matching channels:");
        for (const c of possible) {
          const shown = await lastDeactivation(db, realm.id, c.id);
          result.matches.push({ id: Number(c.id), name: c.name, deactivated_at: shown === null ? null : utcTimestampFromPg(shown) });
          out.line(`  (${c.id}) ${c.name}, deactivated on ${shown ?? "(no deactivation record)"}`);
        }
        out.jsonBody<UnarchiveChannelBody>(result);
        throw new CommandError("More than one matching channel found!  Specify which with --channel-id");
      }
      channel = possible[0];
      newName = opts.newName ?? name;
    }

    await checkUnarchiveName(db, realm.id, channel.id, newName);

    result.channel = { id: Number(channel.id), name: { old: channel.name, new: newName }, invite_only: Boolean(channel.invite_only) };
    const finish = (code: number) => {
      out.jsonBody<UnarchiveChannelBody>(result);
      return code;
    };
    if (dryRun) {
      out.line(`Would unarchive channel ${channel.id} '${channel.name}' as '${newName}'.`);
      out.line("(dry run: nothing was changed)");
      return finish(0);
    }

    const inval = new CacheInvalidation(ctx, opts.flushCache);
    const events = new EventDelivery(ctx, opts.events);
    const notify = { events, realm: { id: Number(realm.id), string_id: realm.string_id }, what: `the unarchiving of the channel '${newName}'` };
    const r = await doUnarchiveStream(db, channel.id, newName, {
      cache: inval,
      notify,
      featureLevel: featureLevel(ctx.paths, db),
      settings: ctx.config().settings,
    });
    result.cache = cacheJson(await inval.commit());
    result.events = eventsReportJson(await events.commit());
    result.audit_log_ids = [r.auditLogId];
    result.web_public_cleared = r.webPublicCleared;
    result.attachments_reset_count = r.attachmentsReset;
    result.archived_attachments_reset_count = r.archivedAttachmentsReset;
    result.channel_email_addresses_reactivated_count = r.channelEmailAddressesReactivated;
    if (r.notice.messageId !== null) {
      result.notice = { message_id: r.notice.messageId, topic: r.notice.topic!, recipients_count: r.notice.recipients };
    }
    if (r.notice.notWritten) {
      result.notes.push(r.notice.notWritten);
      out.line(`Note: ${r.notice.notWritten}.`);
    }
    for (const e of r.notice.eventsNotSent) {
      result.notes.push(`not sent: ${e}`);
      out.line(`Note: not sent: ${e}.`);
    }
    return finish(0);
  },
});
