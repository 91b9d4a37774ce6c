// The real-time events of user deactivation and reactivation, and the channel peer events they
// use, as Zulip sends them (read in zulip/zulip main and an 11.x-era version; differences by
// feature level noted where they apply):
//
//   zerver/actions/users.py         send_events_for_user_deactivation, do_deactivate_user
//   zerver/actions/create_user.py   do_reactivate_user
//   zerver/actions/streams.py       send_peer_subscriber_events, send_peer_remove_events
//   zerver/lib/subscription_info.py bulk_get_subscriber_peer_info
//   zerver/lib/invites.py           notify_invites_changed
//   zerver/lib/users.py / models    bot_owner_user_ids, get_users_involved_in_dms_with_target_users
//
// Every function runs inside the action's transaction, after its writes, and only stages
// events (EventDelivery.send); nothing leaves before COMMIT.
import type { Queryable } from "../../db/db.js";
import type { UserProfile } from "../lookup.js";
import { type AvatarSettings, avatarUrl } from "../avatar.js";
import { EmailAddressVisibility, RecipientType } from "../models.js";
import { ROLES } from "../roles.js";
import { FL, type Notify } from "../../services/events.js";
import {
  activeNonGuestUserIds,
  activeRoster,
  rosterRole,
  activeUserIds,
  adminUserAndBotIds,
  humanAdminIds,
  subscribersOfUserSubscriptions,
  userAccessRestricted,
  userIdsWhoCanAccessUser,
  usersInDmsWith,
} from "../audiences.js";
import { metadataGroupMembers } from "./channel-events.js";

/** UserProfile.INACCESSIBLE_USER_NAME (a lazily translated string; servers send it in English unless a request language applies). */
export const INACCESSIBLE_USER_NAME = "Unknown user";

function sorted(ids: Iterable<number>): number[] {
  return [...new Set(ids)].sort((a, b) => a - b);
}

/** bot_owner_user_ids(bot) (zerver/models/users.py; main drops a NULL owner). */
export async function botOwnerUserIds(q: Queryable, bot: UserProfile): Promise<number[]> {
  const { rows } = await q.query("SELECT bool_or(invite_only) AS private FROM zerver_stream WHERE id = ANY ($1::int[])", [
    [bot.default_sending_stream_id, bot.default_events_register_stream_id].filter((x) => x !== null && x !== undefined),
  ]);
  const owner = bot.bot_owner_id === null || bot.bot_owner_id === undefined ? [] : [Number(bot.bot_owner_id)];
  if (rows[0]?.private) return owner;
  return sorted([...(await humanAdminIds(q, bot.realm_id)), ...owner]);
}

/** notify_invites_changed(realm): {"type": "invites_changed"} to the admins and bots. */
async function sendInvitesChanged(q: Queryable, n: Notify): Promise<void> {
  n.events.send(n.realm, { type: "invites_changed" }, await adminUserAndBotIds(q, n.realm.id), n.what);
}

export interface PeerChannel {
  id: number;
  invite_only: boolean;
  is_web_public: boolean;
}

/**
 * bulk_get_subscriber_peer_info(realm, channels), reduced to what send_peer_subscriber_events
 * uses: for private channels, `privatePeers` = subscribers (active subscription, is_user_active)
 * ∪ admins and bots ∪ users granted metadata access by the channel's group settings; for public
 * channels that are not web-public, `outsiders` = their subscribers who are not active
 * non-guests (the only ones that event's audience adds to the non-guests). Public channels'
 * other subscribers are not read: on a large organization they are tens of thousands of rows.
 */
async function subscriberPeerInfo(q: Queryable, realmId: number, channels: PeerChannel[]) {
  const privateIds = channels.filter((c) => c.invite_only).map((c) => c.id);
  const publicIds = channels.filter((c) => !c.invite_only && !c.is_web_public).map((c) => c.id);
  const { rows } = await q.query(
    `SELECT st.id AS channel_id, s.user_profile_id AS user_id
       FROM zerver_stream st JOIN zerver_subscription s ON s.recipient_id = st.recipient_id
      WHERE st.id = ANY ($1::int[]) AND s.active AND s.is_user_active
     UNION ALL
     SELECT st.id, s.user_profile_id
       FROM zerver_stream st JOIN zerver_subscription s ON s.recipient_id = st.recipient_id
       JOIN zerver_userprofile u ON u.id = s.user_profile_id
      WHERE st.id = ANY ($2::int[]) AND s.active AND s.is_user_active AND NOT (u.is_active AND u.role <> ${ROLES.GUEST})`,
    [privateIds, publicIds],
  );
  const subscribed = new Map<number, Set<number>>([...privateIds, ...publicIds].map((id) => [id, new Set<number>()]));
  for (const r of rows) subscribed.get(Number(r.channel_id))!.add(Number(r.user_id));
  const outsiders = new Map(publicIds.map((id) => [id, subscribed.get(id)!]));
  const privatePeers = new Map<number, Set<number>>();
  if (privateIds.length) {
    const admins = await adminUserAndBotIds(q, realmId);
    const granted = await metadataGroupMembers(q, privateIds);
    for (const id of privateIds) privatePeers.set(id, new Set([...subscribed.get(id)!, ...admins, ...(granted.get(id) ?? [])]));
  }
  return { outsiders, privatePeers };
}

/**
 * send_peer_subscriber_events(op, realm, channels, altered): for private channels one event
 * each to their peers; public channels grouped by the same altered user set: web-public ones
 * in one event to every active user, ones without guest subscribers in one event to the
 * non-guests, any other in its own event to non-guests ∪ its subscribers (all minus the
 * altered users). `channels` in Zulip's iteration order (we use channel id order).
 */
export async function sendPeerSubscriberEvents(
  q: Queryable,
  n: Notify,
  op: "peer_add" | "peer_remove",
  channels: PeerChannel[],
  altered: Map<number, Set<number>>,
): Promise<void> {
  if (channels.length === 0) return;
  const info = await subscriberPeerInfo(q, n.realm.id, channels);
  const byId = new Map(channels.map((c) => [c.id, c]));
  const alteredIds = [...altered.keys()].filter((id) => byId.has(id));
  for (const id of alteredIds.filter((i) => byId.get(i)!.invite_only)) {
    const changed = altered.get(id)!;
    const peers = [...info.privatePeers.get(id)!].filter((u) => !changed.has(u));
    // Zulip guards here (streams.py send_peer_subscriber_events: `if peer_user_ids and
    // altered_user_ids:`, 10.x-12.x); the public-channel events below are sent unguarded, even to
    // an empty peer set.
    if (peers.length && changed.size) n.events.send(n.realm, { type: "subscription", op, stream_ids: [id], user_ids: sorted(changed) }, sorted(peers), n.what);
  }
  const publicIds = alteredIds.filter((i) => !byId.get(i)!.invite_only);
  if (publicIds.length === 0) return;
  const nonGuests = new Set(await activeNonGuestUserIds(q, n.realm.id));
  const groups = new Map<string, number[]>();
  for (const id of publicIds) {
    const key = sorted(altered.get(id)!).join(",");
    if (!key) continue;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(id);
  }
  for (const [key, ids] of groups) {
    const changed = new Set(key.split(",").map(Number));
    const userIds = [...changed];
    const webPublic: number[] = [];
    const withoutGuests: number[] = [];
    for (const id of ids) {
      if (byId.get(id)!.is_web_public) webPublic.push(id);
      else if (info.outsiders.get(id)!.size === 0) withoutGuests.push(id);
      else {
        const peers = [...nonGuests, ...info.outsiders.get(id)!].filter((u) => !changed.has(u));
        n.events.send(n.realm, { type: "subscription", op, stream_ids: [id], user_ids: userIds }, sorted(peers), n.what);
      }
    }
    if (webPublic.length) {
      const peers = (await activeUserIds(q, n.realm.id)).filter((u) => !changed.has(u));
      n.events.send(n.realm, { type: "subscription", op, stream_ids: sorted(webPublic), user_ids: userIds }, peers, n.what);
    }
    if (withoutGuests.length) {
      n.events.send(
        n.realm,
        { type: "subscription", op, stream_ids: sorted(withoutGuests), user_ids: userIds },
        sorted([...nonGuests].filter((u) => !changed.has(u))),
        n.what,
      );
    }
  }
}

/** The channels a user has an active subscription to (optionally archived ones too), by id. */
async function subscribedChannels(q: Queryable, userId: number, includeArchived: boolean): Promise<PeerChannel[]> {
  const { rows } = await q.query(
    `SELECT st.id, st.invite_only, st.is_web_public FROM zerver_subscription s
       JOIN zerver_recipient r ON r.id = s.recipient_id AND r.type = ${RecipientType.STREAM}
       JOIN zerver_stream st ON st.id = r.type_id
      WHERE s.user_profile_id = $1 AND s.active ${includeArchived ? "" : "AND NOT st.deactivated"}
      ORDER BY st.id`,
    [userId],
  );
  return rows.map((r) => ({ id: Number(r.id), invite_only: Boolean(r.invite_only), is_web_public: Boolean(r.is_web_public) }));
}

/** The user's direct groups: named ones and anonymous (setting) ones, by id. */
async function directGroups(q: Queryable, userId: number): Promise<{ named: number[]; anonymous: number[] }> {
  const { rows } = await q.query(
    `SELECT m.user_group_id AS id, n.usergroup_ptr_id IS NOT NULL AS named
       FROM zerver_usergroupmembership m LEFT JOIN zerver_namedusergroup n ON n.usergroup_ptr_id = m.user_group_id
      WHERE m.user_profile_id = $1 ORDER BY m.user_group_id`,
    [userId],
  );
  return { named: rows.filter((r) => r.named).map((r) => Number(r.id)), anonymous: rows.filter((r) => !r.named).map((r) => Number(r.id)) };
}

/**
 * send_update_events_for_anonymous_group_settings(groups, realm, recipients): for each
 * anonymous setting group, a user_group update of the named group whose setting it is, or a
 * realm update_dict of the realm setting it is, with its members (active users) and subgroups.
 */
async function sendAnonymousGroupSettingEvents(q: Queryable, n: Notify, groupIds: number[], recipients: number[]): Promise<void> {
  // Zulip's callers guard on the groups only (`if deactivated_user_setting_groups:` /
  // `if setting_user_groups:`); the recipients are never empty there (the deactivation sends only
  // under `if users_without_access_to_deactivated_user:`, the reactivation to every active user).
  if (groupIds.length === 0) return;
  const members = new Map<number, number[]>(groupIds.map((g) => [g, []]));
  const subgroups = new Map<number, number[]>(groupIds.map((g) => [g, []]));
  for (const r of (
    await q.query(
      `SELECT m.user_group_id AS g, m.user_profile_id AS u FROM zerver_usergroupmembership m JOIN zerver_userprofile p ON p.id = m.user_profile_id
        WHERE m.user_group_id = ANY ($1::int[]) AND p.is_active ORDER BY m.id`,
      [groupIds],
    )
  ).rows) {
    members.get(Number(r.g))!.push(Number(r.u));
  }
  for (const r of (
    await q.query("SELECT supergroup_id AS g, subgroup_id AS s FROM zerver_groupgroupmembership WHERE supergroup_id = ANY ($1::int[]) ORDER BY id", [groupIds])
  ).rows) {
    subgroups.get(Number(r.g))!.push(Number(r.s));
  }
  const groupCols = await settingColumns(q, "zerver_namedusergroup");
  const realmCols = await settingColumns(q, "zerver_realm");
  for (const g of groupIds) {
    const value = { direct_members: members.get(g)!, direct_subgroups: subgroups.get(g)! };
    let sent = false;
    if (groupCols.length) {
      const { rows } = await q.query(
        `SELECT usergroup_ptr_id AS id, ${groupCols.join(", ")} FROM zerver_namedusergroup WHERE realm_id = $1 AND $2 IN (${groupCols.join(", ")}) ORDER BY usergroup_ptr_id LIMIT 1`,
        [n.realm.id, g],
      );
      if (rows.length) {
        const setting = groupCols.find((c) => Number(rows[0][c]) === g)!.replace(/_id$/, "");
        n.events.send(n.realm, { type: "user_group", op: "update", group_id: Number(rows[0].id), data: { [setting]: value } }, recipients, n.what);
        sent = true;
      }
    }
    if (!sent && realmCols.length) {
      const { rows } = await q.query(`SELECT ${realmCols.join(", ")} FROM zerver_realm WHERE id = $1`, [n.realm.id]);
      const col = realmCols.find((c) => Number(rows[0]?.[c]) === g);
      if (col)
        n.events.send(n.realm, { type: "realm", op: "update_dict", property: "default", data: { [col.replace(/_id$/, "")]: value } }, recipients, n.what);
    }
  }
}

/** The group-setting columns of a table (…_group_id and can_…_id pointing at user groups). */
async function settingColumns(q: Queryable, table: string): Promise<string[]> {
  const { rows } = await q.query(
    `SELECT a.attname AS col FROM pg_constraint c
       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
      WHERE c.contype = 'f' AND c.conrelid = $1::regclass AND c.confrelid = 'zerver_usergroup'::regclass
        AND a.attname <> 'usergroup_ptr_id' ORDER BY a.attnum`,
    [table],
  );
  return rows.map((r) => r.col as string);
}

/**
 * The events of do_deactivate_user for one user, after change_user_is_active(False), in
 * Zulip's order. `revokedInvites`: whether revoke_invites_generated_by_user revoked any
 * (then invites_changed is sent first, from inside that function).
 */
export async function sendUserDeactivationEvents(
  q: Queryable,
  n: Notify,
  user: UserProfile,
  opts: { featureLevel: number; revokedInvites: boolean },
): Promise<void> {
  if (opts.revokedInvites) await sendInvitesChanged(q, n);
  n.events.auditLogUpload(n.realm);
  // send_events_for_user_deactivation: peer_remove from 11.0 (FL 377), archived channels
  // included from FL 428 (get_streams_for_user(exclude_archived=False)).
  if (opts.featureLevel >= FL.DEACTIVATION_PEER_REMOVE) {
    const channels = await subscribedChannels(q, user.id, opts.featureLevel >= FL.DEACTIVATION_PEER_REMOVE_ARCHIVED);
    await sendPeerSubscriberEvents(q, n, "peer_remove", channels, new Map(channels.map((c) => [c.id, new Set([user.id])])));
  }
  const event = { type: "realm_user", op: "update", person: { user_id: user.id, is_active: false } };
  if (!(await userAccessRestricted(q, user))) {
    n.events.send(n.realm, event, await activeUserIds(q, user.realm_id), n.what);
  } else {
    const nonGuests = await activeNonGuestUserIds(q, user.realm_id);
    const dms = await usersInDmsWith(q, user);
    const { rows } = await q.query(
      `SELECT r.type, s2.user_profile_id AS id FROM zerver_subscription s1
         JOIN zerver_recipient r ON r.id = s1.recipient_id AND r.type IN (${RecipientType.STREAM}, ${RecipientType.DIRECT_MESSAGE_GROUP})
         JOIN zerver_subscription s2 ON s2.recipient_id = s1.recipient_id AND s2.active AND s2.is_user_active
        WHERE s1.user_profile_id = $1 AND s1.active`,
      [user.id],
    );
    const streamPeers = new Set(rows.filter((r) => Number(r.type) === RecipientType.STREAM).map((r) => Number(r.id)));
    const dmGroupPeers = rows.filter((r) => Number(r.type) === RecipientType.DIRECT_MESSAGE_GROUP).map((r) => Number(r.id));
    const withAccess = new Set([...nonGuests, ...dms, ...dmGroupPeers]);
    // The three guards are Zulip's (users.py send_events_for_user_deactivation, 11.x/12.x era:
    // `if users_with_access_to_deactivated_user:`, `if users_without_access_to_deactivated_user:`,
    // `if users_losing_access_to_deactivated_user:`): nothing is published for an empty set.
    if (withAccess.size) n.events.send(n.realm, event, sorted(withAccess), n.what);
    const without = (await activeUserIds(q, user.realm_id)).filter((u) => !withAccess.has(u));
    if (without.length) {
      const groups = await directGroups(q, user.id);
      for (const g of groups.named) n.events.send(n.realm, { type: "user_group", op: "remove_members", group_id: g, user_ids: [user.id] }, without, n.what);
      await sendAnonymousGroupSettingEvents(q, n, groups.anonymous, without);
    }
    const losing = [...streamPeers].filter((u) => !withAccess.has(u));
    if (losing.length) {
      n.events.send(n.realm, { type: "realm_user", op: "remove", person: { user_id: user.id, full_name: INACCESSIBLE_USER_NAME } }, sorted(losing), n.what);
    }
  }
  // Bots, until FL 474 (12.0) removed realm_bot updates.
  if (user.is_bot && opts.featureLevel < FL.NO_REALM_BOT_UPDATES) {
    n.events.send(n.realm, { type: "realm_bot", op: "update", bot: { user_id: user.id, is_active: false } }, await botOwnerUserIds(q, user), n.what);
  }
}

/**
 * The events of do_delete_user_core's bulk_remove_subscriptions(realm, [user], channels,
 * acting_user=None, skip_events_for_removed_user=True) (Zulip 12, zerver/actions/streams.py),
 * staged right after the user's channel subscriptions were set inactive (and before they are
 * deleted), in Zulip's order:
 *  1. send_subscription_remove_events with skip_events_for_removed_user: only
 *     send_peer_remove_events(realm, channels, {channel: {user}}) — peer_remove to each
 *     channel's peers (the subscription remove event, the mark_stream_messages_as_read job and
 *     the stream delete event for the removed user are skipped);
 *  2. when the realm restricts user access (all_users_accessible_by_everyone_in_realm is false:
 *     realm-wide, bots included), send_user_remove_events_on_removing_subscriptions: a realm_user
 *     remove of the user (as "Unknown user") to the subscribers of those channels who can no
 *     longer access them: not non-guests, not sharing an active channel or group-DM
 *     subscription with the user, not in 1:1 DMs with them. Its guest branch (events to the
 *     removed user about users it can no longer see) cannot apply: the overwritten account has
 *     role Member.
 * `channels`: the channels whose subscription was removed (get_user_subscribed_streams: active
 * subscriptions, archived channels included).
 */
export async function sendDeletedUserSubscriptionRemovalEvents(
  q: Queryable,
  n: Notify,
  user: { id: number; realm_id: number },
  channels: PeerChannel[],
): Promise<void> {
  if (channels.length === 0) return;
  await sendPeerSubscriberEvents(q, n, "peer_remove", channels, new Map(channels.map((c) => [c.id, new Set([user.id])])));
  if (!(await userAccessRestricted(q, { realm_id: user.realm_id, is_bot: false }))) return;
  const { rows: inChannels } = await q.query(
    `SELECT DISTINCT s.user_profile_id AS id FROM zerver_subscription s JOIN zerver_stream st ON st.recipient_id = s.recipient_id
      WHERE st.id = ANY ($1::int[]) AND s.active AND s.is_user_active`,
    [channels.map((c) => c.id)],
  );
  const canAccess = new Set([
    ...(await activeNonGuestUserIds(q, user.realm_id)),
    ...(await subscribersOfUserSubscriptions(q, user.id)),
    ...(await usersInDmsWith(q, user)),
    user.id,
  ]);
  const without = inChannels.map((r) => Number(r.id)).filter((id) => !canAccess.has(id));
  // Zulip's guard: `if subscribers_without_access_to_altered_user:` (streams.py).
  if (without.length) {
    n.events.send(n.realm, { type: "realm_user", op: "remove", person: { user_id: user.id, full_name: INACCESSIBLE_USER_NAME } }, sorted(without), n.what);
  }
}

/** The events of do_reactivate_user (acting_user None: no bot owner change), in Zulip's order. */
export async function sendUserReactivationEvents(q: Queryable, n: Notify, user: UserProfile, opts: { featureLevel: number }): Promise<void> {
  n.events.auditLogUpload(n.realm);
  n.events.send(n.realm, { type: "realm_user", op: "update", person: { user_id: user.id, is_active: true } }, await userIdsWhoCanAccessUser(q, user), n.what);
  if (!user.is_bot) {
    n.events.send(
      n.realm,
      { type: "realm_export_consent", user_id: user.id, consented: Boolean(user.allow_private_data_export) },
      await humanAdminIds(q, user.realm_id),
      n.what,
    );
  } else if (opts.featureLevel < FL.NO_REALM_BOT_UPDATES) {
    n.events.send(n.realm, { type: "realm_bot", op: "update", bot: { user_id: user.id, is_active: true } }, await botOwnerUserIds(q, user), n.what);
  }
  const channels = await subscribedChannels(q, user.id, false);
  await sendPeerSubscriberEvents(q, n, "peer_add", channels, new Map(channels.map((c) => [c.id, new Set([user.id])])));
  const groups = await directGroups(q, user.id);
  const everyone = await activeUserIds(q, user.realm_id);
  for (const g of groups.named) n.events.send(n.realm, { type: "user_group", op: "add_members", group_id: g, user_ids: [user.id] }, everyone, n.what);
  await sendAnonymousGroupSettingEvents(q, n, groups.anonymous, everyone);
}

const { EVERYONE, MEMBERS, ADMINS, MODERATORS } = EmailAddressVisibility;
/** UserProfile.ROLE_TO_ACCESSIBLE_EMAIL_ADDRESS_VISIBILITY_IDS. */
/** The email_address_visibility values a role may see through (a function, not a table built at
 * load time: roles.ts and this module import each other through channel-events.ts). */
function visibilitiesFor(role: number): number[] {
  switch (role) {
    case ROLES.REALM_OWNER:
    case ROLES.REALM_ADMINISTRATOR:
      return [EVERYONE, MEMBERS, ADMINS, MODERATORS];
    case ROLES.MODERATOR:
      return [EVERYONE, MEMBERS, MODERATORS];
    case ROLES.MEMBER:
      return [EVERYONE, MEMBERS];
    case ROLES.GUEST:
      return [EVERYONE];
    default:
      return [];
  }
}

/** can_access_delivery_email(viewer, target_id, email_address_visibility) (zerver/lib/users.py). */
export function canAccessDeliveryEmail(viewer: { id: number; role: number }, targetId: number, visibility: number): boolean {
  return viewer.id === targetId || visibilitiesFor(viewer.role).includes(visibility);
}

/**
 * get_users_with_access_to_real_email(user) (zerver/lib/users.py): of the users who can access
 * the user, those for whom can_access_delivery_email(viewer, user, visibility) holds — the user,
 * and viewers whose role may see the user's email_address_visibility.
 */
async function usersWithAccessToRealEmail(q: Queryable, user: UserProfile): Promise<number[]> {
  const candidates = await userIdsWhoCanAccessUser(q, user);
  // Every candidate is an active user of the realm: their roles come from the realm's roster.
  const roster = await activeRoster(q, Number(user.realm_id));
  const visibility = Number(user.email_address_visibility);
  return candidates
    .filter((id) => {
      const role = rosterRole(roster, id);
      return role !== undefined && canAccessDeliveryEmail({ id, role }, Number(user.id), visibility);
    })
    .sort((a, b) => a - b);
}

/**
 * do_change_user_delivery_email's events (10.x-12.x, zerver/actions/user_settings.py): the
 * delivery_email update to those who may see the real address; for a user whose avatar follows
 * the address (avatar_source "G"), notify_avatar_url_change (realm_bot update {avatar_url} to the
 * owners of a bot before 12.0, FL 474; realm_user update with avatar_source, avatar_url,
 * avatar_url_medium, avatar_version to everyone who can see the user); when the visibility is
 * "everyone", the new_email update to everyone who can see the user. Returns what was not sent
 * (the avatar update when its URL cannot be computed as Zulip does, see avatar.ts).
 */
export async function sendDeliveryEmailChangeEvents(
  q: Queryable,
  n: Notify,
  after: UserProfile,
  opts: { avatar: AvatarSettings | null; featureLevel: number },
): Promise<string[]> {
  const notSent: string[] = [];
  n.events.send(
    n.realm,
    { type: "realm_user", op: "update", person: { user_id: after.id, delivery_email: after.delivery_email } },
    await usersWithAccessToRealEmail(q, after),
    n.what,
  );
  if (after.avatar_source === "G") {
    const u = {
      id: Number(after.id),
      realm_id: Number(after.realm_id),
      delivery_email: after.delivery_email as string,
      avatar_source: "G",
      avatar_version: Number(after.avatar_version),
    };
    const url = opts.avatar ? avatarUrl(opts.avatar, u, opts.featureLevel) : { reason: "the avatar settings could not be read" };
    const medium = opts.avatar ? avatarUrl(opts.avatar, u, opts.featureLevel, true) : url;
    if (typeof url !== "string" || typeof medium !== "string") {
      notSent.push(`the avatar update of user ${after.id} (open apps keep the old Gravatar image until they reload): ${(url as { reason: string }).reason}`);
    } else {
      if (after.is_bot && opts.featureLevel < FL.NO_REALM_BOT_UPDATES) {
        n.events.send(n.realm, { type: "realm_bot", op: "update", bot: { user_id: after.id, avatar_url: url } }, await botOwnerUserIds(q, after), n.what);
      }
      n.events.send(
        n.realm,
        {
          type: "realm_user",
          op: "update",
          person: { avatar_source: "G", avatar_url: url, avatar_url_medium: medium, avatar_version: u.avatar_version, user_id: after.id },
        },
        await userIdsWhoCanAccessUser(q, after),
        n.what,
      );
    }
  }
  if (Number(after.email_address_visibility) === EmailAddressVisibility.EVERYONE) {
    n.events.send(
      n.realm,
      { type: "realm_user", op: "update", person: { user_id: after.id, new_email: after.email } },
      await userIdsWhoCanAccessUser(q, after),
      n.what,
    );
  }
  return notSent;
}
