// Channel creation and membership as Zulip's management commands do them
// (zerver/lib/streams.py create_stream_if_needed / ensure_stream, zerver/actions/streams.py
// bulk_add_subscriptions / bulk_remove_subscriptions; acting user none, as manage.py passes):
//
//  * get_stream(name, realm): the realm's channel whose name matches case-insensitively after
//    stripping (archived channels included).
//  * create_stream_if_needed(realm, name): when no channel matches, a public channel with
//    Zulip's defaults (lib/create.ts createChannel: history public, the permission groups'
//    defaults with "channel creator" = role:nobody as there is no creator, recipient, empty
//    description) and a CHANNEL_CREATED (601) row; Stream's post_save deletes the channel's
//    name lookup key from memcached.
//  * bulk_add_subscriptions: per user, a new Subscription (a colour not yet used by the user,
//    is_user_active copied) or the inactive one reactivated; SUBSCRIPTION_CREATED (301) /
//    SUBSCRIPTION_ACTIVATED (302) rows with event_last_message_id; subscriber_count + active
//    users (Zulip 11+). Already active subscriptions are left alone.
//  * bulk_remove_subscriptions: active subscriptions deactivated, subscriber_count - active
//    users, one SUBSCRIPTION_DEACTIVATED (303) row each (one event_time, event_last_message_id).
// Zulip writes no Notification Bot message for these (the "subscribed you" and "new channel"
// messages come from the API views, not the actions).
//
// Events (staged in the transaction, sent after the commit): create_stream_if_needed's stream
// create; per bulk_add_subscriptions call (manage.py makes one per user and channel) the events
// of channel-events.ts sendSubscriptionAddEvents; for bulk_remove_subscriptions those of
// sendSubscriptionRemoveEvents, then, in an organization that limits whom guests see,
// user-creation-events.ts sendUserRemoveEventsOnRemovingSubscriptions.
import { pyStrip } from "../../lib/pyformat.js";
import { AuditLogEventType, insertAuditLog } from "../audit.js";
import { type CacheInvalidation, cacheKeys } from "../cache.js";
import { bulkAddSubscriptions } from "./bulk-add-subscriptions.js";
import { createChannel } from "./create-channel.js";
import { lastMessageId } from "./message-send.js";
import { type Db, hasColumn, type Queryable } from "../../db/db.js";
import { channelDicts, sendStreamCreationEvent, sendSubscriptionAddEvents, sendSubscriptionRemoveEvents } from "../events/channel-events.js";
import { sendUserRemoveEventsOnRemovingSubscriptions } from "../events/user-creation-events.js";
import type { AvatarSettings } from "../avatar.js";
import { CommandError } from "../../lib/errors.js";
import type { Notify } from "../../services/events.js";
import { activeNonGuestUserIds, subscribersOfUserSubscriptions, userAccessRestricted } from "../audiences.js";
import { getRealm, getUsers, type Realm, type UserProfile } from "../lookup.js";
import { MAX_CHANNEL_NAME_LENGTH } from "../models.js";
import { lockRealm } from "../realms.js";

export interface ChannelInfo {
  id: number;
  name: string;
  recipient_id: number;
  invite_only: boolean;
  is_web_public: boolean;
  deactivated: boolean;
}

const CHANNEL_COLUMNS = "id, name, recipient_id, invite_only, is_web_public, deactivated";

function channelOf(r: any): ChannelInfo {
  return {
    id: Number(r.id),
    name: r.name,
    recipient_id: Number(r.recipient_id),
    invite_only: Boolean(r.invite_only),
    is_web_public: Boolean(r.is_web_public),
    deactivated: Boolean(r.deactivated),
  };
}

/** get_stream(name, realm): case-insensitive, archived channels included; null when none. */
export async function findChannel(q: Queryable, realmId: number, name: string, lock = false): Promise<ChannelInfo | null> {
  const { rows } = await q.query(
    `SELECT ${CHANNEL_COLUMNS} FROM zerver_stream WHERE realm_id = $1 AND upper(name) = upper($2) ORDER BY id LIMIT 1${lock ? " FOR NO KEY UPDATE" : ""}`,
    [realmId, pyStrip(name)],
  );
  return rows.length ? channelOf(rows[0]) : null;
}

/**
 * The names create_stream_if_needed would store but the database cannot (Zulip fails with a
 * database error on those), and the empty name (which Zulip's command would create).
 */
export function channelNameProblem(name: string): string | null {
  const n = pyStrip(name);
  if (n === "") return "Channel name can't be empty.";
  if ([...n].length > MAX_CHANNEL_NAME_LENGTH) return `Channel name too long (limit: ${MAX_CHANNEL_NAME_LENGTH} characters).`;
  if (n.includes("\u0000")) return "Channel name cannot contain NULL (0x00) characters.";
  return null;
}

/** ensure_stream(realm, name, acting_user=None), inside the caller's transaction. */
export async function ensureChannel(
  q: Queryable,
  realmId: number,
  name: string,
  opts: { cache?: CacheInvalidation; notify?: Notify; featureLevel?: number } = {},
): Promise<{ channel: ChannelInfo; created: boolean; auditLogIds: number[] }> {
  // Serialize creators of the realm's channels (Zulip relies on its get_or_create here).
  await lockRealm(q, realmId, { columns: "id" });
  const existing = await findChannel(q, realmId, name);
  if (existing) return { channel: existing, created: false, auditLogIds: [] };
  const problem = channelNameProblem(name);
  if (problem) throw new CommandError(problem);
  const before = Number((await q.query("SELECT coalesce(max(id), 0) AS m FROM zerver_realmauditlog")).rows[0].m);
  const made = await createChannel(q, realmId, { name: pyStrip(name), creatorId: null, description: "" });
  const { rows } = await q.query("SELECT id FROM zerver_realmauditlog WHERE id > $1 AND modified_stream_id = $2 ORDER BY id", [before, made.id]);
  opts.cache?.addKeys([cacheKeys.streamByRealmAndName(made.name, realmId)], `channel '${made.name}'`);
  const channel = (await findChannel(q, realmId, made.name))!;
  // create_stream_if_needed (zerver/lib/streams.py, 11.x/12.x-era version read; the same in
  // 10.x): a new public, not web-public channel's `stream` `create` to active_non_guest_user_ids,
  // without traffic (stream_weekly_traffic null) and with for_unarchiving false from FL 378.
  if (opts.notify) {
    await sendStreamCreationEvent(q, opts.notify, { id: made.id, realm_id: realmId }, await activeNonGuestUserIds(q, realmId), {
      traffic: false,
      forUnarchiving: false,
      featureLevel: opts.featureLevel!,
    });
  }
  return { channel, created: true, auditLogIds: rows.map((r) => Number(r.id)) };
}

export interface SubscriptionChange {
  /** Users newly subscribed / unsubscribed. */
  changed: number[];
  /** Users that were already (un)subscribed. */
  unchanged: number[];
}

async function activeSubscribers(q: Queryable, recipientId: number, userIds: number[]): Promise<Set<number>> {
  const { rows } = await q.query("SELECT user_profile_id FROM zerver_subscription WHERE recipient_id = $1 AND active AND user_profile_id = ANY ($2::int[])", [
    recipientId,
    userIds,
  ]);
  return new Set(rows.map((r) => Number(r.user_profile_id)));
}

/** Which of the users are subscribed to the channel now (for dry runs and output). */
export async function subscribedUsers(q: Queryable, channel: ChannelInfo, userIds: number[]): Promise<Set<number>> {
  return activeSubscribers(q, channel.recipient_id, userIds);
}

/** What the subscription events need besides the Notify: the release and the avatar settings (restricted-access realms). */
export interface SubscriptionEventOptions {
  notify: Notify;
  featureLevel: number;
  /** readAvatarSettings(): the realm_user add events of an organization that limits whom users see. */
  avatar: AvatarSettings | null;
}

/**
 * bulk_add_subscriptions(realm, [channel], users, acting_user=None), inside the caller's
 * transaction, once per user as manage.py makes the calls; with `events`, each call's events
 * (channel-events.ts sendSubscriptionAddEvents). Returns, besides the change, what could not be
 * sent (with the reason).
 */
export async function addSubscriptions(
  q: Queryable,
  realmId: number,
  channel: ChannelInfo,
  userIds: number[],
  opts: { events?: SubscriptionEventOptions } = {},
): Promise<SubscriptionChange & { auditLogIds: number[]; eventsNotSent: string[] }> {
  // The subscription rows of these users for this channel, locked.
  await q.query("SELECT id FROM zerver_subscription WHERE recipient_id = $1 AND user_profile_id = ANY ($2::int[]) FOR UPDATE", [channel.recipient_id, userIds]);
  const already = await activeSubscribers(q, channel.recipient_id, userIds);
  const changed = userIds.filter((u) => !already.has(u));
  const auditLogIds: number[] = [];
  const eventsNotSent: string[] = [];
  const ev = opts.events;
  const restricted = ev ? await userAccessRestricted(q, { realm_id: realmId, is_bot: false }) : false;
  for (const u of changed) {
    // get_subscribers_of_target_user_subscriptions, read before the rows are written.
    const before = restricted ? await subscribersOfUserSubscriptions(q, u) : null;
    // manage.py re-reads the channel (ensure_stream) before each call: its object as of now.
    const streamDict = ev ? (await channelDicts(q, realmId, [channel.id], { traffic: true }))[0] : null;
    await bulkAddSubscriptions(q, realmId, [channel.id], [u], { actingUserId: null, auditLogIds });
    if (ev) {
      eventsNotSent.push(
        ...(await sendSubscriptionAddEvents(q, ev.notify, { ...channel, realm_id: realmId }, [u], {
          featureLevel: ev.featureLevel,
          streamDict: streamDict!,
          ...(before ? { restricted: { before, avatar: ev.avatar } } : {}),
        })),
      );
    }
  }
  return { changed, unchanged: userIds.filter((u) => already.has(u)), auditLogIds, eventsNotSent };
}

/** bulk_remove_subscriptions(realm, users, [channel], acting_user=None), inside the caller's transaction. */
async function removeSubscriptions(
  q: Queryable,
  realmId: number,
  channel: ChannelInfo,
  userIds: number[],
  opts: { events?: Omit<SubscriptionEventOptions, "avatar">; now?: Date } = {},
): Promise<SubscriptionChange & { auditLogIds: number[] }> {
  const { rows } = await q.query(
    `SELECT s.id, s.user_profile_id, u.is_active FROM zerver_subscription s JOIN zerver_userprofile u ON u.id = s.user_profile_id
      WHERE s.recipient_id = $1 AND s.active AND s.user_profile_id = ANY ($2::int[]) ORDER BY s.user_profile_id FOR UPDATE OF s`,
    [channel.recipient_id, userIds],
  );
  const subscribed = new Set(rows.map((r) => Number(r.user_profile_id)));
  // In the order the users were given (Zulip's subs_to_deactivate follows the user list).
  const order = userIds.filter((u) => subscribed.has(u));
  const unchanged = userIds.filter((u) => !subscribed.has(u));
  if (order.length === 0) return { changed: [], unchanged, auditLogIds: [] };
  await q.query("UPDATE zerver_subscription SET active = false WHERE id = ANY ($1::bigint[])", [rows.map((r) => r.id)]);
  const activeCount = rows.filter((r) => r.is_active).length;
  if (activeCount && (await hasColumn(q, "zerver_stream", "subscriber_count"))) {
    await q.query("UPDATE zerver_stream SET subscriber_count = subscriber_count - $2 WHERE id = $1", [channel.id, activeCount]);
  }
  const eventTime = opts.now ?? new Date();
  const eventLastMessageId = await lastMessageId(q);
  const auditLogIds = await insertAuditLog(
    q,
    order.map((u) => ({
      realmId,
      eventType: AuditLogEventType.SUBSCRIPTION_DEACTIVATED,
      eventTime,
      actingUserId: null,
      modifiedUserId: u,
      modifiedStreamId: channel.id,
      eventLastMessageId,
    })),
  );
  const ev = opts.events;
  if (ev) {
    await sendSubscriptionRemoveEvents(q, ev.notify, { ...channel, realm_id: realmId }, order, { featureLevel: ev.featureLevel });
    if (await userAccessRestricted(q, { realm_id: realmId, is_bot: false })) {
      for (const u of order) await sendUserRemoveEventsOnRemovingSubscriptions(q, ev.notify, channel, u);
    }
  }
  return { changed: order, unchanged, auditLogIds };
}

/**
 * The organization (-r) and the users (-u EMAILS or -a) a channel-membership command works on,
 * as manage.py's get_realm / get_users select them, with the columns the user object needs.
 */
export async function selectRealmUsers(
  db: Queryable,
  opts: { realm?: string; users?: string; allUsers?: boolean },
  /** The user columns to read (the command's user objects need them). */
  columns: string,
): Promise<{ realm: Realm; realmRef: { id: number; string_id: string }; users: UserProfile[]; userIds: number[]; emailOf: Map<number, string> }> {
  const realm = (await getRealm(db, opts.realm)) as Realm;
  const users = await getUsers(db, { users: opts.users, allUsers: opts.allUsers }, realm, { columns });
  return {
    realm,
    realmRef: { id: Number(realm.id), string_id: realm.string_id },
    users,
    userIds: users.map((u) => Number(u.id)),
    emailOf: new Map(users.map((u) => [Number(u.id), u.delivery_email as string])),
  };
}

// ---------------------------------------------------------------------------------------------
// The commands' steps, each in a transaction of its own (events staged on notify.events, cache
// keys on `cache`; the caller delivers both after the commit)

/** create_stream: ensure_stream(realm, name, acting_user=None) in its own transaction; a channel created marks the cache change committed. */
export async function doEnsureChannel(
  db: Db,
  realmId: number,
  name: string,
  opts: { cache: CacheInvalidation; notify: Notify; featureLevel: number },
): Promise<{ channel: ChannelInfo; created: boolean; auditLogIds: number[] }> {
  const r = await opts.notify.events.tx(db, (q) => ensureChannel(q, realmId, name, opts));
  if (r.created) opts.cache.changeCommitted();
  return r;
}

/** add_users_to_streams' check before anything is written: each name that is not a channel yet is one Zulip could create (CommandError otherwise). */
export async function checkChannelNamesCreatable(q: Queryable, realmId: number, names: string[]): Promise<void> {
  for (const name of names) {
    if (!(await findChannel(q, realmId, name))) {
      const problem = channelNameProblem(name);
      if (problem) throw new CommandError(`${problem} ('${name}')`);
    }
  }
}

/**
 * add_users_to_streams for one channel, in its own transaction: ensure_stream(realm, name),
 * then bulk_add_subscriptions for each user (addSubscriptions). A channel created marks the
 * cache change committed.
 */
export async function doAddUsersToChannel(
  db: Db,
  realmId: number,
  name: string,
  userIds: number[],
  opts: { cache: CacheInvalidation; notify: Notify; featureLevel: number; avatar: AvatarSettings | null },
): Promise<{ ensured: Awaited<ReturnType<typeof ensureChannel>>; change: Awaited<ReturnType<typeof addSubscriptions>> }> {
  const r = await opts.notify.events.tx(db, async (q) => {
    const ensured = await ensureChannel(q, realmId, name, { cache: opts.cache, notify: opts.notify, featureLevel: opts.featureLevel });
    const change = await addSubscriptions(q, realmId, ensured.channel, userIds, {
      events: { notify: opts.notify, featureLevel: opts.featureLevel, avatar: opts.avatar },
    });
    return { ensured, change };
  });
  if (r.ensured.created) opts.cache.changeCommitted();
  return r;
}

/** The dry run of doAddUsersToChannel: the channel (null: it would be created) and which of the users are subscribed already. */
export async function planAddUsersToChannel(
  q: Queryable,
  realmId: number,
  name: string,
  userIds: number[],
): Promise<{ channel: ChannelInfo | null; already: Set<number> }> {
  const channel = await findChannel(q, realmId, name);
  return { channel, already: channel ? await subscribedUsers(q, channel, userIds) : new Set<number>() };
}

/** remove_users_from_stream: bulk_remove_subscriptions(realm, users, [channel], acting_user=None) in its own transaction. */
export function doRemoveUsersFromChannel(
  db: Db,
  realmId: number,
  channel: ChannelInfo,
  userIds: number[],
  opts: { notify: Notify; featureLevel: number },
): Promise<SubscriptionChange & { auditLogIds: number[] }> {
  return opts.notify.events.tx(db, (q) => removeSubscriptions(q, realmId, channel, userIds, { events: opts }));
}
