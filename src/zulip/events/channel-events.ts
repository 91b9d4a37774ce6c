// Channel objects and channel events as Zulip builds them (zerver/lib/streams.py stream_to_dict,
// get_streams_traffic, get_average_weekly_stream_traffic, send_stream_deletion_event,
// user_has_metadata_access; zerver/actions/users.py send_stream_events_for_role_update), read
// in zulip/zulip main. Fields of older releases: a field is sent when its column exists
// (subscriber_count, folder_id, topics_policy, is_recently_active and the can_*_group settings
// arrived with their columns in 10.0-12.0).
import { type Queryable, tableColumns } from "../../db/db.js";
import { FL, type Notify } from "../../services/events.js";
import { activeNonGuestUserIds, activeSubscriberIds, adminUserAndBotIds } from "../audiences.js";
import type { AvatarSettings } from "../avatar.js";
import { SystemGroups } from "../groups.js";
import { TOPICS_POLICY_NAMES } from "../models.js";
import { isRealmAdmin, REALM_ADMIN_ROLES_SQL, ROLES } from "../roles.js";
import { sendPeerSubscriberEvents } from "./user-events.js";
import { sendUserCreationEventsOnAddingSubscriptions } from "./user-creation-events.js";

/** Stream.STREAM_POST_POLICY_* and Stream.SYSTEM_GROUPS_ENUM_MAP (the legacy stream_post_policy from can_send_message_group). */
const STREAM_POST_POLICY = { EVERYONE: 1, ADMINS: 2, RESTRICT_NEW_MEMBERS: 3, MODERATORS: 4 } as const;
const POST_POLICY_BY_GROUP: Record<string, number> = {
  [SystemGroups.EVERYONE]: STREAM_POST_POLICY.EVERYONE,
  [SystemGroups.ADMINISTRATORS]: STREAM_POST_POLICY.ADMINS,
  [SystemGroups.FULL_MEMBERS]: STREAM_POST_POLICY.RESTRICT_NEW_MEMBERS,
  [SystemGroups.MODERATORS]: STREAM_POST_POLICY.MODERATORS,
};

/** The group settings of stream_to_dict, in its order. */
const GROUP_SETTINGS = [
  "can_add_subscribers_group",
  "can_administer_channel_group",
  "can_create_topic_group",
  "can_delete_any_message_group",
  "can_delete_own_message_group",
  "can_move_messages_out_of_channel_group",
  "can_move_messages_within_channel_group",
  "can_send_message_group",
  "can_remove_subscribers_group",
  "can_resolve_topics_group",
  "can_subscribe_group",
];

function streamColumns(q: Queryable): Promise<Set<string>> {
  return tableColumns(q, "zerver_stream");
}

/** Python's round(n, ndigits) for an int with ndigits < 0 (round half to even). */
function pyRoundInt(n: number, ndigits: number): number {
  if (ndigits >= 0) return n;
  const f = 10 ** -ndigits;
  const x = n / f;
  const fl = Math.floor(x);
  const diff = x - fl;
  const r = diff > 0.5 || (diff === 0.5 && fl % 2 !== 0) ? fl + 1 : fl;
  return r * f;
}

/** get_average_weekly_stream_traffic(): null for channels younger than 7 days. */
export function averageWeeklyTraffic(traffic: number, dateCreated: Date, now = new Date()): number | null {
  const age = Math.floor((now.getTime() - dateCreated.getTime()) / 86_400_000);
  let avg: number;
  if (age >= 28) avg = Math.floor(traffic / 4);
  else if (age >= 7) avg = Math.floor((traffic * 7) / age);
  else return null;
  if (avg === 0 && traffic > 0) avg = 1;
  return pyRoundInt(avg, 2 - String(avg).length);
}

/**
 * stream_to_dict() for each channel id (in the given order), with stream_weekly_traffic from
 * analytics (get_streams_traffic: messages_in_stream:is_bot:day counts of the last 28 days)
 * when `traffic`, else null.
 */
export async function channelDicts(q: Queryable, realmId: number, ids: number[], opts: { traffic: boolean }): Promise<Record<string, unknown>[]> {
  if (ids.length === 0) return [];
  const cols = await streamColumns(q);
  const { rows } = await q.query("SELECT * FROM zerver_stream WHERE id = ANY ($1::int[])", [ids]);
  const byId = new Map(rows.map((r) => [Number(r.id), r]));
  const traffic = new Map<number, number>();
  if (opts.traffic) {
    const t = await q.query(
      `SELECT stream_id, sum(value)::bigint AS v FROM analytics_streamcount
        WHERE realm_id = $1 AND property = 'messages_in_stream:is_bot:day' AND end_time > now() - interval '28 days' AND stream_id = ANY ($2::int[])
        GROUP BY stream_id`,
      [realmId, ids],
    );
    for (const r of t.rows) traffic.set(Number(r.stream_id), Number(r.v));
  }
  const settings = GROUP_SETTINGS.filter((s) => cols.has(`${s}_id`));
  const groupIds = new Set<number>();
  for (const r of rows) for (const s of settings) if (r[`${s}_id`] !== null) groupIds.add(Number(r[`${s}_id`]));
  const named = new Map<number, string>();
  const members = new Map<number, number[]>();
  const subgroups = new Map<number, number[]>();
  if (groupIds.size) {
    const g = [...groupIds];
    for (const r of (await q.query("SELECT usergroup_ptr_id AS id, name FROM zerver_namedusergroup WHERE usergroup_ptr_id = ANY ($1::int[])", [g])).rows)
      named.set(Number(r.id), r.name);
    const anon = g.filter((x) => !named.has(x));
    for (const x of anon) {
      members.set(x, []);
      subgroups.set(x, []);
    }
    if (anon.length) {
      // The anonymous group's direct members and subgroups (get_anonymous_group_membership_dict_for_streams).
      // Active members only (get_members_and_subgroups_of_groups excludes deactivated users).
      const memberRows = await q.query(
        `SELECT m.user_group_id AS g, m.user_profile_id AS u FROM zerver_usergroupmembership m JOIN zerver_userprofile up ON up.id = m.user_profile_id
          WHERE m.user_group_id = ANY ($1::int[]) AND up.is_active ORDER BY m.user_profile_id`,
        [anon],
      );
      for (const r of memberRows.rows) {
        members.get(Number(r.g))!.push(Number(r.u));
      }
      for (const r of (
        await q.query(
          "SELECT supergroup_id AS g, subgroup_id AS s FROM zerver_groupgroupmembership WHERE supergroup_id = ANY ($1::int[]) ORDER BY subgroup_id",
          [anon],
        )
      ).rows) {
        subgroups.get(Number(r.g))!.push(Number(r.s));
      }
    }
  }
  const settingValue = (id: number | null) => {
    if (id === null) return null;
    const g = Number(id);
    return named.has(g) ? g : { direct_members: members.get(g) ?? [], direct_subgroups: subgroups.get(g) ?? [] };
  };
  return ids
    .filter((id) => byId.has(id))
    .map((id) => {
      const s = byId.get(id)!;
      const d: Record<string, unknown> = { is_archived: Boolean(s.deactivated) };
      for (const name of settings) d[name] = settingValue(s[`${name}_id`]);
      const created = new Date(s.date_created);
      Object.assign(d, {
        creator_id: s.creator_id === null ? null : Number(s.creator_id),
        date_created: Math.floor(created.getTime() / 1000),
        description: s.description,
        first_message_id: s.first_message_id === null ? null : Number(s.first_message_id),
      });
      if (cols.has("folder_id")) d.folder_id = s.folder_id === null ? null : Number(s.folder_id);
      if (cols.has("is_recently_active")) d.is_recently_active = Boolean(s.is_recently_active);
      const postPolicy = cols.has("can_send_message_group_id")
        ? (POST_POLICY_BY_GROUP[named.get(Number(s.can_send_message_group_id)) ?? ""] ?? STREAM_POST_POLICY.EVERYONE)
        : Number(s.stream_post_policy ?? 1);
      Object.assign(d, {
        history_public_to_subscribers: Boolean(s.history_public_to_subscribers),
        invite_only: Boolean(s.invite_only),
        is_web_public: Boolean(s.is_web_public),
        message_retention_days: s.message_retention_days === null ? null : Number(s.message_retention_days),
        name: s.name,
        rendered_description: s.rendered_description,
        stream_id: id,
        stream_post_policy: postPolicy,
        is_announcement_only: postPolicy === STREAM_POST_POLICY.ADMINS,
        stream_weekly_traffic: opts.traffic ? averageWeeklyTraffic(traffic.get(id) ?? 0, created) : null,
      });
      if (cols.has("subscriber_count")) d.subscriber_count = Number(s.subscriber_count);
      if (cols.has("topics_policy")) d.topics_policy = TOPICS_POLICY_NAMES[Number(s.topics_policy)] ?? String(s.topics_policy);
      return d;
    });
}

/**
 * The channels whose metadata the user can see, ascending ids: get_streams_for_user(include_all=
 * True, include_web_public=True) → user_has_metadata_access, non-archived: web-public,
 * subscribed, or — not for guests — public, any channel for administrators, or granted by the
 * channel's can_administer_channel_group / can_add_subscribers_group / can_subscribe_group
 * (recursive group membership). The result also records the user's direct group memberships
 * at that moment, which sendStreamEventsForRoleUpdate compares with the later state.
 */
export type AccessSnapshot = number[] & { directGroupIds?: number[] };

export async function metadataAccessChannelIds(q: Queryable, user: { id: number; realm_id: number }): Promise<AccessSnapshot> {
  const cols = await streamColumns(q);
  const grantCols = ["can_administer_channel_group_id", "can_add_subscribers_group_id", "can_subscribe_group_id"].filter((c) => cols.has(c));
  const grant = grantCols.length
    ? `OR st.id IN (
         WITH RECURSIVE mine(group_id) AS (
           SELECT user_group_id FROM zerver_usergroupmembership WHERE user_profile_id = $2
           UNION SELECT g.supergroup_id FROM zerver_groupgroupmembership g JOIN mine ON g.subgroup_id = mine.group_id)
         SELECT s2.id FROM zerver_stream s2 WHERE s2.realm_id = $1 AND (${grantCols.map((c) => `s2.${c} IN (SELECT group_id FROM mine)`).join(" OR ")}))`
    : "";
  const { rows } = await q.query(
    `SELECT st.id FROM zerver_stream st, zerver_userprofile u
      WHERE st.realm_id = $1 AND u.id = $2 AND NOT st.deactivated AND (
        st.is_web_public
        OR st.recipient_id IN (SELECT recipient_id FROM zerver_subscription WHERE user_profile_id = $2 AND active)
        OR (u.role <> ${ROLES.GUEST} AND (NOT st.invite_only OR u.role IN (${REALM_ADMIN_ROLES_SQL}) ${grant})))
      ORDER BY st.id`,
    [user.realm_id, user.id],
  );
  const snapshot: AccessSnapshot = rows.map((r) => Number(r.id));
  snapshot.directGroupIds = await directGroupIdsOf(q, user.id);
  return snapshot;
}

async function directGroupIdsOf(q: Queryable, userId: number): Promise<number[]> {
  const { rows } = await q.query("SELECT user_group_id AS id FROM zerver_usergroupmembership WHERE user_profile_id = $1 ORDER BY user_group_id", [userId]);
  return rows.map((r) => Number(r.id));
}

/**
 * get_metadata_access_streams_via_group_ids(get_recursive_supergroups_union_for_groups([group]))
 * (zerver/lib/streams.py, zerver/lib/user_groups.py): the realm's channels, archived ones
 * included, whose can_add_subscribers_group / can_administer_channel_group / can_subscribe_group
 * is the group or a group that contains it (recursively). Ascending ids.
 */
async function channelsGrantingViaGroup(q: Queryable, realmId: number, groupId: number): Promise<PeerChannelRef[]> {
  const cols = await streamColumns(q);
  const settings = ["can_add_subscribers_group_id", "can_administer_channel_group_id", "can_subscribe_group_id"].filter((c) => cols.has(c));
  if (settings.length === 0) return [];
  const { rows } = await q.query(
    `WITH RECURSIVE sup(group_id) AS (
        SELECT $2::bigint
        UNION SELECT g.supergroup_id FROM zerver_groupgroupmembership g JOIN sup ON g.subgroup_id = sup.group_id)
     SELECT id, realm_id, name, recipient_id, invite_only, is_web_public FROM zerver_stream
      WHERE realm_id = $1 AND (${settings.map((c) => `${c} IN (SELECT group_id FROM sup)`).join(" OR ")})
      ORDER BY id`,
    [realmId, groupId],
  );
  return rows.map((r) => ({
    id: Number(r.id),
    realm_id: Number(r.realm_id),
    name: r.name,
    recipient_id: Number(r.recipient_id),
    invite_only: Boolean(r.invite_only),
    is_web_public: Boolean(r.is_web_public),
  }));
}

/**
 * Whether `user` is in bulk_can_access_stream_metadata_user_ids of a channel, with the user's
 * direct group memberships taken as `directGroupIds`: for a public channel the non-guests and
 * its guest subscribers; for a private one its subscribers, the administrators (and bots with
 * that role), and the non-guest members of its metadata-granting groups.
 */
async function inMetadataAccessSet(
  q: Queryable,
  user: { id: number; role: number; is_active: boolean },
  channel: PeerChannelRef,
  directGroupIds: number[],
): Promise<boolean> {
  if (!user.is_active) return false;
  const { rows: sub } = await q.query("SELECT 1 FROM zerver_subscription WHERE recipient_id = $1 AND user_profile_id = $2 AND active AND is_user_active", [
    channel.recipient_id,
    user.id,
  ]);
  if (!channel.invite_only) return user.role !== ROLES.GUEST || sub.length > 0;
  if (sub.length > 0 || isRealmAdmin(user.role)) return true;
  if (user.role === ROLES.GUEST) return false;
  const cols = await streamColumns(q);
  const settings = ["can_administer_channel_group_id", "can_add_subscribers_group_id", "can_subscribe_group_id"].filter((c) => cols.has(c));
  if (settings.length === 0 || directGroupIds.length === 0) return false;
  const { rows } = await q.query(
    `WITH RECURSIVE mine(group_id) AS (
        SELECT unnest($2::bigint[])
        UNION SELECT g.supergroup_id FROM zerver_groupgroupmembership g JOIN mine ON g.subgroup_id = mine.group_id)
     SELECT 1 FROM zerver_stream WHERE id = $1 AND (${settings.map((c) => `${c} IN (SELECT group_id FROM mine)`).join(" OR ")})`,
    [channel.id, directGroupIds],
  );
  return rows.length > 0;
}

/**
 * send_stream_deletion_event(realm, user_ids, streams, for_archiving): the streams reduced to
 * their ids (FL 343, 10.0); the internal for_archiving flag from FL 378 (11.0), whose Tornado
 * strips it.
 */
function sendStreamDeletionEvent(n: Notify, userIds: number[], channelIds: number[], featureLevel: number, forArchiving = false): void {
  const event: Record<string, unknown> = { type: "stream", op: "delete", streams: channelIds.map((id) => ({ stream_id: id })), stream_ids: channelIds };
  if (featureLevel >= FL.ARCHIVED_CHANNEL_EVENTS) event.for_archiving = forArchiving;
  n.events.send(n.realm, event as { type: string }, userIds, n.what);
}

/**
 * The channel events of do_change_user_role (zerver/actions/users.py; 10.x-12.x), after its
 * writes, in Zulip's order:
 *
 *  1. When update_users_in_full_members_system_group changed the user's role:fullmembers
 *     membership (a member who became or stopped being a full member, or a role change to or
 *     from member), bulk_add_members_to_user_groups / bulk_remove_members_from_user_groups
 *     (zerver/actions/user_groups.py, FL 349 on) follow their user_group event with, for every
 *     channel (archived ones included, ascending ids) whose metadata-granting group settings name
 *     role:fullmembers or a group containing it: users gaining metadata access get a `stream`
 *     `create` (with traffic; for_unarchiving false from FL 378) and a `subscription` `peer_add`
 *     with the channel's subscribers; users losing it get a `stream` `delete`. Only the user can
 *     gain or lose access there; for the other channels Zulip publishes the same events with no
 *     recipients, and so do we.
 *  2. send_stream_events_for_role_update(user, previously accessible): to the user only, a stream
 *     create with every channel that became visible since the role change began (no
 *     for_unarchiving on this path — so a channel gained through role:fullmembers is announced
 *     twice, as Zulip does), then a peer_add per such channel with its active subscribers; a
 *     stream delete for the channels that became invisible.
 *
 * `before`: metadataAccessChannelIds() read before the role changed (its directGroupIds tell
 * whether the role:fullmembers membership changed since).
 */
export async function sendStreamEventsForRoleUpdate(
  q: Queryable,
  n: Notify,
  user: { id: number; realm_id: number },
  before: AccessSnapshot,
  featureLevel: number,
): Promise<void> {
  if (before.directGroupIds) await sendFullMembersChannelEvents(q, n, user, before.directGroupIds, featureLevel);
  const after = await metadataAccessChannelIds(q, user);
  const gained = after.filter((id) => !before.includes(id));
  const lost = before.filter((id) => !after.includes(id));
  // Guards on the channel sets, as Zulip's (`if now_accessible_stream_ids:` /
  // `if now_inaccessible_stream_ids:`); the recipient is always the user.
  if (gained.length) {
    n.events.send(n.realm, { type: "stream", op: "create", streams: await channelDicts(q, user.realm_id, gained, { traffic: true }) }, [user.id], n.what);
    const { rows } = await q.query(
      `SELECT st.id AS channel_id, s.user_profile_id AS uid FROM zerver_stream st
         JOIN zerver_subscription s ON s.recipient_id = st.recipient_id AND s.active AND s.is_user_active
        WHERE st.id = ANY ($1::int[]) ORDER BY s.user_profile_id`,
      [gained],
    );
    // bulk_get_subscriber_peer_info fills subscribed_ids with the private channels first, then the public ones.
    const { rows: priv } = await q.query("SELECT id FROM zerver_stream WHERE id = ANY ($1::int[]) AND invite_only", [gained]);
    const privateIds = new Set(priv.map((r) => Number(r.id)));
    for (const id of [...gained.filter((g) => privateIds.has(g)), ...gained.filter((g) => !privateIds.has(g))]) {
      const subs = rows.filter((r) => Number(r.channel_id) === id).map((r) => Number(r.uid));
      n.events.send(n.realm, { type: "subscription", op: "peer_add", stream_ids: [id], user_ids: subs }, [user.id], n.what);
    }
  }
  if (lost.length) sendStreamDeletionEvent(n, [user.id], lost, featureLevel);
}

/** Step 1 of sendStreamEventsForRoleUpdate: the stream events of the role:fullmembers membership change. */
async function sendFullMembersChannelEvents(
  q: Queryable,
  n: Notify,
  user: { id: number; realm_id: number },
  directBefore: number[],
  featureLevel: number,
): Promise<void> {
  const { rows: g } = await q.query("SELECT usergroup_ptr_id AS id FROM zerver_namedusergroup WHERE realm_id = $1 AND name = $2 AND is_system_group", [
    user.realm_id,
    SystemGroups.FULL_MEMBERS,
  ]);
  if (!g.length) return; // every 10.x-12.x realm has role:fullmembers (Zulip's .get() would raise)
  const full = Number(g[0].id);
  const directNow = await directGroupIdsOf(q, user.id);
  const wasFull = directBefore.includes(full);
  const isFull = directNow.includes(full);
  if (wasFull === isFull) return;
  const channels = await channelsGrantingViaGroup(q, user.realm_id, full);
  if (channels.length === 0) return;
  const { rows: u } = await q.query("SELECT id, role, is_active FROM zerver_userprofile WHERE id = $1", [user.id]);
  const profile = { id: user.id, role: Number(u[0].role), is_active: Boolean(u[0].is_active) };
  // The state just before bulk_add/remove_members_to/from_user_groups: the new role, the old
  // role:fullmembers membership.
  const directOld = wasFull ? [...directNow, full] : directNow.filter((x) => x !== full);
  // Zulip sends these for every such channel, unguarded (user_groups.py bulk_add_members_to_user_groups:
  // send_stream_creation_event(realm, stream, list(user_ids_gaining_metadata_access), …) and the
  // peer_add to user_ids_gaining_metadata_access; bulk_remove_members_from_user_groups:
  // send_stream_deletion_event(realm, list(user_ids_losing_metadata_access), [stream]); read in
  // zulip/zulip's user_groups.py of the 11.x/12.x era, whose send_stream_creation_event and
  // send_stream_deletion_event in zerver/lib/streams.py do not check the list either): a channel
  // where the user gains or loses nothing is published with no recipients (`users: []`, on a
  // server with one Tornado port; nothing on a sharded one — events.ts).
  for (const channel of channels) {
    const had = await inMetadataAccessSet(q, profile, channel, directOld);
    const has = await inMetadataAccessSet(q, profile, channel, directNow);
    if (isFull) {
      const gaining = has && !had ? [user.id] : [];
      await sendStreamCreationEvent(q, n, channel, gaining, { traffic: true, forUnarchiving: false, featureLevel });
      n.events.send(
        n.realm,
        { type: "subscription", op: "peer_add", stream_ids: [channel.id], user_ids: await activeSubscriberIds(q, channel.recipient_id) },
        gaining,
        n.what,
      );
    } else {
      sendStreamDeletionEvent(n, had && !has ? [user.id] : [], [channel.id], featureLevel);
    }
  }
}

/**
 * send_stream_creation_event(realm, stream, user_ids, recent_traffic, …, for_unarchiving)
 * (zerver/lib/streams.py): {"type": "stream", "op": "create", "streams": [<channel object>],
 * "for_unarchiving": …}. for_unarchiving exists from 11.0 (FL 378; that Tornado strips it and,
 * when true, delivers the event only to clients without the archived_channels capability); a
 * 10.x Tornado would pass it on to clients, so it is left out there. `traffic`: false for a
 * channel created just now (Zulip passes no recent_traffic: stream_weekly_traffic null).
 */
export async function sendStreamCreationEvent(
  q: Queryable,
  n: Notify,
  channel: { id: number; realm_id: number },
  users: number[],
  opts: { traffic: boolean; forUnarchiving: boolean; featureLevel: number },
): Promise<void> {
  const event: Record<string, unknown> = {
    type: "stream",
    op: "create",
    streams: await channelDicts(q, channel.realm_id, [channel.id], { traffic: opts.traffic }),
  };
  if (opts.featureLevel >= FL.ARCHIVED_CHANNEL_EVENTS) event.for_unarchiving = opts.forUnarchiving;
  n.events.send(n.realm, event as { type: string }, users, n.what);
}

/**
 * can_access_stream_metadata_user_ids(stream) (zerver/lib/streams.py, 11.x and main): for a
 * public channel the active non-guests and the guests subscribed to it (active subscriptions
 * of active users); for a private one its active subscribers, the realm's admins and bots
 * (get_admin_users_and_bots), and the active non-guest members (recursively) of the groups its
 * can_administer_channel_group / can_add_subscribers_group / can_subscribe_group name
 * (get_user_ids_with_metadata_access_via_permission_groups). Sorted ids.
 */
export async function canAccessStreamMetadataUserIds(
  q: Queryable,
  channel: { id: number; realm_id: number; invite_only: boolean; recipient_id: number },
): Promise<number[]> {
  const ids = new Set<number>();
  const { rows: subs } = await q.query(
    `SELECT s.user_profile_id AS id, u.role FROM zerver_subscription s JOIN zerver_userprofile u ON u.id = s.user_profile_id
      WHERE s.recipient_id = $1 AND s.active AND s.is_user_active`,
    [channel.recipient_id],
  );
  if (!channel.invite_only) {
    for (const id of await activeNonGuestUserIds(q, channel.realm_id)) ids.add(id);
    for (const r of subs) if (Number(r.role) === ROLES.GUEST) ids.add(Number(r.id));
  } else {
    for (const r of subs) ids.add(Number(r.id));
    for (const id of await adminUserAndBotIds(q, channel.realm_id)) ids.add(id);
    const cols = await streamColumns(q);
    const settings = ["can_administer_channel_group_id", "can_add_subscribers_group_id", "can_subscribe_group_id"].filter((c) => cols.has(c));
    if (settings.length) {
      const { rows } = await q.query(
        `WITH RECURSIVE closure(group_id) AS (
            ${settings.map((c) => `SELECT ${c} FROM zerver_stream WHERE id = $1`).join(" UNION ")}
            UNION
            SELECT g.subgroup_id FROM closure c JOIN zerver_groupgroupmembership g ON g.supergroup_id = c.group_id
         )
         SELECT DISTINCT m.user_profile_id AS id FROM closure c JOIN zerver_usergroupmembership m ON m.user_group_id = c.group_id
           JOIN zerver_userprofile u ON u.id = m.user_profile_id WHERE u.is_active AND u.role <> ${ROLES.GUEST}`,
        [channel.id],
      );
      for (const r of rows) ids.add(Number(r.id));
    }
  }
  return [...ids].sort((a, b) => a - b);
}

// ---------------------------------------------------------------------------------------------
// Subscriptions: bulk_add_subscriptions / bulk_remove_subscriptions (zerver/actions/streams.py,
// read in a 12.0-development version that has maybe_send_channel_events_notice and the
// subscriber counts; the event structure is that of 10.0 on: metadata access through group
// settings arrived at FL 349, and the channel and subscription objects carry a field when its
// column exists, see channelDicts).

export interface PeerChannelRef {
  id: number;
  realm_id: number;
  name: string;
  recipient_id: number;
  invite_only: boolean;
  is_web_public: boolean;
}

/**
 * get_users_dict_with_metadata_access_to_streams_via_permission_groups(channels) (zerver/lib/
 * streams.py): per channel, the active members (through subgroups, recursively) of the groups
 * its can_administer_channel_group / can_add_subscribers_group / can_subscribe_group name —
 * guests excluded (those settings have allow_everyone_group=False).
 */
export async function metadataGroupMembers(q: Queryable, channelIds: number[]): Promise<Map<number, Set<number>>> {
  const out = new Map<number, Set<number>>(channelIds.map((id) => [id, new Set<number>()]));
  if (channelIds.length === 0) return out;
  const cols = await streamColumns(q);
  const settings = ["can_administer_channel_group_id", "can_add_subscribers_group_id", "can_subscribe_group_id"].filter((c) => cols.has(c));
  if (settings.length === 0) return out;
  const { rows } = await q.query(
    `WITH RECURSIVE setting(channel_id, group_id) AS (
        ${settings.map((c) => `SELECT id, ${c} FROM zerver_stream WHERE id = ANY ($1::int[]) AND ${c} IS NOT NULL`).join(" UNION ")}
     ), closure(channel_id, group_id) AS (
        SELECT channel_id, group_id FROM setting
        UNION
        SELECT c.channel_id, g.subgroup_id FROM closure c JOIN zerver_groupgroupmembership g ON g.supergroup_id = c.group_id
     )
     SELECT DISTINCT c.channel_id, m.user_profile_id AS user_id
       FROM closure c JOIN zerver_usergroupmembership m ON m.user_group_id = c.group_id
       JOIN zerver_userprofile u ON u.id = m.user_profile_id AND u.is_active AND u.role <> ${ROLES.GUEST}`,
    [channelIds],
  );
  for (const r of rows) out.get(Number(r.channel_id))?.add(Number(r.user_id));
  return out;
}

/**
 * check_basic_stream_access(user, channel, is_subscribed=False, require_content_access=False)
 * for a user who is not an organization administrator: web-public channels, public channels for
 * non-guests, and for non-guests the channels whose can_subscribe_group / can_add_subscribers_group
 * (content access) or can_administer_channel_group (metadata access) they belong to.
 */
async function keepsMetadataAccessUnsubscribed(q: Queryable, user: { id: number; role: number }, channel: PeerChannelRef): Promise<boolean> {
  if (channel.is_web_public) return true;
  if (user.role === ROLES.GUEST) return false;
  if (!channel.invite_only) return true;
  return (await metadataGroupMembers(q, [channel.id])).get(channel.id)!.has(user.id);
}

/** subscription + stream fields of send_subscription_add_events' APISubscriptionDict. */
async function subscriptionDict(q: Queryable, channel: PeerChannelRef, userId: number, streamDict: Record<string, unknown>, subscribers: number[]) {
  const { rows } = await q.query("SELECT * FROM zerver_subscription WHERE user_profile_id = $1 AND recipient_id = $2", [userId, channel.recipient_id]);
  const s = rows[0];
  return {
    audible_notifications: s.audible_notifications,
    color: s.color,
    desktop_notifications: s.desktop_notifications,
    email_notifications: s.email_notifications,
    is_muted: Boolean(s.is_muted),
    pin_to_top: Boolean(s.pin_to_top),
    push_notifications: s.push_notifications,
    wildcard_mentions_notify: s.wildcard_mentions_notify,
    in_home_view: !s.is_muted,
    subscribers,
    ...streamDict,
  };
}

/**
 * The events of one bulk_add_subscriptions(realm, [channel], users, acting_user=None) call that
 * subscribed `added` (run after the rows are written), in Zulip's order:
 *
 *  1. send_stream_creation_events_for_previously_inaccessible_streams: a `stream` `create` (with
 *     the channel's weekly traffic, for_unarchiving false from FL 378) to the new subscribers of
 *     a private channel who are neither administrators (nor bots with that role) nor granted
 *     metadata access by its groups, and to the new guest subscribers of a public channel that
 *     is not web-public;
 *  2. send_subscription_add_events: to each new subscriber, `subscription` `add` with the
 *     subscription's settings, in_home_view, the channel object and its subscribers;
 *  3. in an organization that limits whom users see: send_user_creation_events_on_adding_
 *     subscriptions (`realm_user` `add` to subscribers who could not see the new subscriber
 *     before, and to a guest subscriber about the subscribers new to them) — see
 *     user-creation-events.ts;
 *  4. send_peer_subscriber_events: `subscription` `peer_add` (user-events.ts).
 *
 * `streamDict`: the channel object (with its weekly traffic) as read before the rows were written
 * — Zulip's Stream objects keep the subscriber_count they were loaded with, and
 * bulk_update_subscriber_counts changes only the database row.
 * `restricted` (only in such an organization; manage.py adds one user per call): `before`, the
 * users the new subscriber shared a channel or group DM with before the change
 * (get_subscribers_of_target_user_subscriptions, read by the caller before writing). Returns
 * what could not be sent, with the reason.
 */
export async function sendSubscriptionAddEvents(
  q: Queryable,
  n: Notify,
  channel: PeerChannelRef,
  added: number[],
  opts: { featureLevel: number; streamDict: Record<string, unknown>; restricted?: { before: Set<number>; avatar: AvatarSettings | null } },
): Promise<string[]> {
  const notSent: string[] = [];
  if (added.length === 0) return notSent;
  const streamDict = opts.streamDict;
  const { rows: users } = await q.query("SELECT id, role FROM zerver_userprofile WHERE id = ANY ($1::int[])", [added]);
  const roleOf = new Map(users.map((u) => [Number(u.id), Number(u.role)]));
  let createFor: number[] = [];
  if (channel.invite_only) {
    const admins = new Set(await adminUserAndBotIds(q, channel.realm_id));
    const granted = (await metadataGroupMembers(q, [channel.id])).get(channel.id)!;
    createFor = added.filter((u) => !admins.has(u) && !granted.has(u));
  } else if (!channel.is_web_public) {
    createFor = added.filter((u) => roleOf.get(u) === ROLES.GUEST);
  }
  // Zulip's guard: `if notify_user_ids:` (send_stream_creation_events_for_previously_inaccessible_streams).
  if (createFor.length) {
    const event: Record<string, unknown> = { type: "stream", op: "create", streams: [streamDict] };
    if (opts.featureLevel >= FL.ARCHIVED_CHANNEL_EVENTS) event.for_unarchiving = false;
    n.events.send(n.realm, event as { type: string }, createFor, n.what);
  }
  const subscribers = await activeSubscriberIds(q, channel.recipient_id);
  for (const u of added) {
    n.events.send(n.realm, { type: "subscription", op: "add", subscriptions: [await subscriptionDict(q, channel, u, streamDict, subscribers)] }, [u], n.what);
  }
  if (opts.restricted) {
    for (const u of added)
      notSent.push(
        ...(await sendUserCreationEventsOnAddingSubscriptions(q, n, channel, u, opts.restricted.before, {
          avatar: opts.restricted.avatar,
          featureLevel: opts.featureLevel,
        })),
      );
  }
  await sendPeerSubscriberEvents(q, n, "peer_add", [channel], new Map([[channel.id, new Set(added)]]));
  return notSent;
}

/**
 * The events of bulk_remove_subscriptions(realm, users, [channel], acting_user=None) for the
 * users in `removed` (in the order the users were given; run after the rows are written):
 * send_subscription_remove_events — per user `subscription` `remove` {name, stream_id}, the
 * deferred_work job mark_stream_messages_as_read, and, for a user who is not an administrator
 * and can no longer see the channel, send_stream_deletion_event to them; then `peer_remove`.
 * In an organization that limits whom users see, the caller then sends
 * send_user_remove_events_on_removing_subscriptions (user-creation-events.ts).
 */
export async function sendSubscriptionRemoveEvents(
  q: Queryable,
  n: Notify,
  channel: PeerChannelRef,
  removed: number[],
  opts: { featureLevel: number },
): Promise<void> {
  if (removed.length === 0) return;
  const { rows } = await q.query("SELECT id, role FROM zerver_userprofile WHERE id = ANY ($1::int[])", [removed]);
  const roleOf = new Map(rows.map((u) => [Number(u.id), Number(u.role)]));
  for (const u of removed) {
    n.events.send(n.realm, { type: "subscription", op: "remove", subscriptions: [{ name: channel.name, stream_id: channel.id }] }, [u], n.what);
    n.events.enqueue("deferred_work", { type: "mark_stream_messages_as_read", user_profile_id: u, stream_recipient_ids: [channel.recipient_id] }, n.what);
    const role = roleOf.get(u)!;
    if (!isRealmAdmin(role) && !(await keepsMetadataAccessUnsubscribed(q, { id: u, role }, channel))) {
      sendStreamDeletionEvent(n, [u], [channel.id], opts.featureLevel);
    }
  }
  await sendPeerSubscriberEvents(q, n, "peer_remove", [channel], new Map([[channel.id, new Set(removed)]]));
}
