// delete_user: delete users the way Zulip's do_delete_user does (zerver/actions/users.py,
// zerver/management/commands/delete_user.py), dry run by default; the action is
// src/zulip/actions/delete-user.ts.
//
// Zulip changed the algorithm in 12.0 (zulip/zulip#35477, plus the is_deleted column of
// migration 0797), so the database's release decides:
//
//  * Zulip 12.x ("overwrite", do_delete_user_core): deactivate the user (bots first), then in one
//    transaction overwrite the account row in place with the defaults of a fresh "Deleted User
//    <id>" (deleteduser<id>@<fake domain>, unusable password, new API key, is_active false,
//    is_mirror_dummy and is_deleted true, every setting at its model default; id, realm,
//    date_joined, uuid, last_login, bot owner/type and ToS version are kept); unsubscribe it
//    from its channels (bulk_remove_subscriptions: 303 audit rows, peer_remove events) and hard-delete its channel
//    Subscription rows; delete its UserMessage, ExternalAuthID, SavedSnippet, ScheduledMessage
//    and Draft rows; scrub the extra_data of the 124/125/132 audit rows about it; move every
//    message it sent to the archive tables (move_messages_to_archive: ArchiveTransaction rows,
//    archived messages/user messages/reactions/submessages/attachments, then the messages
//    deleted, and attachments no message uses any more deleted); write the 106 audit row. Its
//    group-DM subscriptions stay, so group conversations keep their participant.
//  * Zulip 10.x / 11.x ("recreate"): deactivate, then in one transaction delete the account row
//    with everything Django's on_delete rules cascade to (src/db/ondelete.ts) plus its
//    personal Recipient (and so every 1:1 DM to it), recreate a "Deleted User <id>" account with
//    the same id as create_user() builds it (settings from RealmUserDefault, personal recipient
//    and its subscription), give it back the group-DM subscriptions, and write the 106 row.
//
// Before anything is written, the foreign keys in the catalog are checked against the reviewed
// on_delete table: a reference zulip-manage does not know makes the command refuse (naming
// table.column) with nothing changed. The user row is locked (SELECT … FOR UPDATE) and re-read
// in the deletion transaction. After the commit the memcached entries Zulip would flush are
// deleted (flush_user_profile with update_fields=None, for the old and the new state, plus the
// post_delete caches of deleted attachments, mutes and custom emoji), and any login session
// still belonging to the account is deleted.
//
// Differences from manage.py: a failure for one user stops the command (manage.py would print
// a traceback); the dry run also lists what would be deleted.
//
// --json: src/schemas/delete_user.ts (README: --json output): one result per user with the
// user object, row counts (planned in a dry run), the placeholder, status done / would_do /
// failed / not_attempted. Without -f the plan with dry_run true keeps manage.py's exit 1 (ok
// false, its message in error); --dry-run prints the plan and exits 0.
import { mobileNotificationShards } from "../config/sharding.js";
import { addEventsOption, addFlushCacheOption, addRealmOption, addUserListOptions } from "../cli/options.js";
import { roleCountBaselineBeside } from "../zulip/audit.js";
import { CacheInvalidation, type CacheReport, cacheReportJson } from "../zulip/cache.js";
import { defineCommand } from "../cli/command.js";
import { outcome, type StatusJson } from "../cli/json-contract.js";
import { realmJson, userJson } from "../cli/json-objects.js";
import type { DeleteUserBody } from "../schemas/delete_user.js";
import { CommandError, UsageError } from "../lib/errors.js";
import { getRealm, getUsers, type UserProfile } from "../zulip/lookup.js";
import {
  checkPlaceholderAddresses,
  type DeletionAlgorithm,
  doDeleteUser,
  planUserDeletion,
  prepareUserDeletion,
  type UserDeletionResult,
} from "../zulip/actions/delete-user.js";
import { EventDelivery, eventsReportJson, featureLevel } from "../services/events.js";

function describePlan(result: UserDeletionResult, algorithm: DeletionAlgorithm): string[] {
  const lines: string[] = [];
  const p = result.placeholder!;
  lines.push(
    algorithm === "overwrite"
      ? `  Would keep account ${result.user.id} as the placeholder "${p.full_name}" <${p.delivery_email}> and delete:`
      : `  Would recreate account ${result.user.id} as the placeholder "${p.full_name}" <${p.delivery_email}> after deleting:`,
  );
  const deleted = Object.entries(result.rows_deleted);
  if (!deleted.length) lines.push("    (no rows)");
  for (const [t, n] of deleted) lines.push(`    ${t}: ${n}`);
  const nulls = Object.entries(result.rows_set_null);
  if (nulls.length) lines.push(`  and set to NULL: ${nulls.map(([k, n]) => `${k} (${n})`).join(", ")}`);
  if (Object.keys(result.rows_archived).length) {
    lines.push(
      `  Messages go to the archive tables: ${Object.entries(result.rows_archived)
        .map(([t, n]) => `${t} ${n}`)
        .join(", ")}`,
    );
  }
  if (result.subscriptions_deactivated) lines.push(`  Channel subscriptions ended (303 audit rows): ${result.subscriptions_deactivated}`);
  if (result.audit_rows_scrubbed) lines.push(`  Audit rows scrubbed: ${result.audit_rows_scrubbed}`);
  return lines;
}

/** A user's --json result (src/schemas/delete_user.ts); `row` is the user as looked up before. */
function deletionJson(r: UserDeletionResult, row: UserProfile, status: StatusJson): DeleteUserBody["results"][number] {
  return {
    user: userJson(row),
    active_bot_count: r.active_bots,
    deactivated: r.deactivated && { user: r.deactivated.user, bot_ids: r.deactivated.bots, sessions_deleted_count: r.deactivated.sessions_deleted },
    rows_deleted: r.rows_deleted,
    rows_set_null: r.rows_set_null,
    rows_archived: r.rows_archived,
    subscriptions_deactivated_count: r.subscriptions_deactivated,
    audit_rows_scrubbed_count: r.audit_rows_scrubbed,
    placeholder: r.placeholder,
    ...(r.unknown_columns_kept ? { unknown_columns_kept: r.unknown_columns_kept } : {}),
    audit_log_ids: r.audit_log_ids,
    sessions_deleted_count: r.sessions_deleted,
    ...outcome(status, r.error),
  };
}

export default defineCommand({
  name: "delete_user",
  description:
    "Delete a user or users, including all messages sent by them and personal messages received by them, and audit records, " +
    "like what streams they had been subscribed to. Deactivating users is generally recommended over this tool, but deletion " +
    "can be useful if you specifically to completely delete an account created for testing.\n\nThis will:\n\n" +
    "* Delete the user's account, including metadata like name, email address, custom profile fields, historical subscriptions, etc.\n" +
    "* Delete any messages they've sent and any non-group private messages they've received.\n" +
    "* Group private messages in which the user participated won't be deleted (with the exceptions of those message the deleted " +
    'user sent). An inactive, inaccessible dummy user account named "Deleted User <id>" is created to replace the deleted user ' +
    "as a recipient in group private message conversations, in order to somewhat preserve their integrity.\n" +
    "* Delete other records of the user's activity, such as emoji reactions.\n" +
    "* Deactivate all bots owned by the user, without deleting them or their data. If you want to delete the bots and the message " +
    "sent/received by them, you can use the command on them individually.\n\n" +
    "Zulip 12 keeps the account row (overwritten as the placeholder) and moves the user's messages to the archive tables; " +
    "Zulip 10 and 11 delete the row with everything that references it and recreate the placeholder with the same id.",
  examples: [
    "zulip-manage delete_user -r zulip -u test-account@example.com",
    "zulip-manage delete_user -r zulip -u test-account@example.com -f",
    "zulip-manage delete_user -r zulip -u a@example.com,b@example.com -f --json",
  ],
  configure: (cmd) =>
    addEventsOption(
      addFlushCacheOption(
        addUserListOptions(
          addRealmOption(
            cmd
              .option("-f, --for-real", "Actually delete the user(s). Default is a dry run.")
              .option("--dry-run", "show what would be deleted and exit 0 (without -f the dry run exits 1, like manage.py)"),
          ),
        ),
      ),
    ),
  async run(ctx, _args, opts) {
    const out = ctx.out;
    if (opts.forReal && opts.dryRun) throw new UsageError("-f and --dry-run cannot be used together");
    // One user (-u with a single address, -f): the deactivation's ROLE_COUNT count of the realm's
    // users is read beside (see roleCountsAfterChange).
    const single = opts.forReal && !opts.allUsers && typeof opts.users === "string" && !opts.users.includes(",") ? opts.users : null;
    const roleCountBaseline = single ? roleCountBaselineBeside(ctx, opts.realm, single) : undefined;
    const db = await ctx.db();
    const realm = await getRealm(db, opts.realm);
    const users = await getUsers(db, { users: opts.users, allUsers: opts.allUsers }, realm);
    const forReal = Boolean(opts.forReal);
    // Refuses before anything is written if the schema has references we do not know.
    const prepared = await prepareUserDeletion(db, users, ctx.config().settings);
    const algorithm = prepared.algorithm;
    const results: UserDeletionResult[] = prepared.targets.map((t) => ({
      user: { id: t.user.id, email: t.user.delivery_email, full_name: t.user.full_name, realm_id: Number(t.user.realm_id) },
      active_bots: t.activeBots,
      deleted: false,
      error: null,
      deactivated: null,
      rows_deleted: {},
      rows_set_null: {},
      rows_archived: {},
      subscriptions_deactivated: 0,
      audit_rows_scrubbed: 0,
      placeholder: null,
      audit_log_ids: [],
      sessions_deleted: 0,
    }));
    const botsLine = (r: UserDeletionResult) => `${r.user.email} has ${r.active_bots} active bots that will be deactivated as a result of the user's deletion.`;

    if (!forReal) {
      for (const [i, t] of prepared.targets.entries()) {
        const r = results[i];
        out.line(botsLine(r));
        Object.assign(r, await planUserDeletion(db, prepared, t));
        for (const line of describePlan(r, algorithm)) out.line(line);
      }
      const message = "This was a dry run. Pass -f to actually delete.";
      out.jsonBody<DeleteUserBody>({
        dry_run: true,
        realm: realm && realmJson(ctx.config().settings, realm),
        algorithm,
        results: results.map((r, i) => deletionJson(r, users[i], "would_do")),
        cache: null,
        events: null,
      });
      if (opts.dryRun) {
        out.line("(dry run: nothing was changed)");
        return 0;
      }
      throw new CommandError(message);
    }

    checkPlaceholderAddresses(prepared);
    for (const r of results) out.line(botsLine(r));
    const inval = new CacheInvalidation(ctx, opts.flushCache);
    const events = new EventDelivery(ctx, opts.events);
    const level = featureLevel(ctx.paths, db);
    let failure: string | null = null;
    await inval.guard(async () => {
      for (const [i, t] of prepared.targets.entries()) {
        const r = results[i];
        try {
          Object.assign(
            r,
            await doDeleteUser(db, prepared, t, {
              cache: inval,
              roleCountBaseline: users.length === 1 ? roleCountBaseline : undefined,
              events,
              featureLevel: level,
              mobileNotificationShards: mobileNotificationShards(ctx.config()),
            }),
          );
          out.line(`Successfully deleted user ${t.user.delivery_email}.`);
        } catch (e) {
          if (!(e instanceof CommandError)) throw e;
          r.error = e.message;
          failure = e.message;
          break;
        }
      }
    });
    const cache: CacheReport = await inval.commit();
    const delivery = await events.commit();
    const failedAt = results.findIndex((r) => r.error !== null);
    const statusOf = (i: number): StatusJson => (failedAt === -1 || i < failedAt ? "done" : i === failedAt ? "failed" : "not_attempted");
    out.jsonBody<DeleteUserBody>({
      dry_run: false,
      realm: realm && realmJson(ctx.config().settings, realm),
      algorithm,
      results: results.map((r, i) => deletionJson(r, users[i], statusOf(i))),
      cache: cacheReportJson(cache),
      events: eventsReportJson(delivery),
    });
    if (failure !== null) throw new CommandError(failure);
    return 0;
  },
});
