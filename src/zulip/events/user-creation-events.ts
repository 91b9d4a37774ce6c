// The real-time events of do_create_user (zerver/actions/create_user.py) for a human user, as
// Zulip sends them after the creating transaction commits. Checked against zulip/zulip's
// create_user.py (a 10/11-era version: notify_created_user, do_create_user, process_new_human_user,
// set_up_streams_for_new_human_user), zerver/lib/users.py format_user_row, zerver/lib/avatar.py
// (an older version and the 12.x one with AVATAR_FROM_JDENTICON and GRAVATAR_REALM_OVERRIDE),
// zerver/lib/upload/local.py get_avatar_url, and 12.x's RawUserDict (zerver/lib/types.py,
// is_imported_stub, no is_billing_admin). In order:
//
//   1. maybe_enqueue_audit_log_upload (inside the transaction, a deferred_work job);
//   2. notify_created_user(user, []): realm_user add with format_user_row(client_gravatar=False,
//      user_avatar_url_field_optional=False, custom_profile_field_data={}) — one person with
//      delivery_email to the active users who may see the real address, one with
//      delivery_email null to the others; in a realm with restricted user access the guests get
//      get_data_for_inaccessible_user's placeholder instead (not sent here, see below);
//   3. user_group add_members for the role's system group, then role:fullmembers when the user
//      is a full member, to every active user;
//   4. process_new_human_user → bulk_add_subscriptions(from_user_creation=True): no subscription
//      add / stream create to the new user on this path; subscription peer_add to the peers of
//      the default channels (send_peer_subscriber_events).
//
//   (in a realm that limits whom guests see, between 3 and 4: notify_created_user to the guest
//   subscribers of those channels, send_user_creation_events_on_adding_subscriptions.)
//
// Not sent, because the value cannot be computed faithfully outside Zulip (reported by the
// caller): the guests' "Unknown user" placeholder in restricted-access realms (its avatar_url is
// staticfiles_storage.url("images/unknown-user-avatar.png"), a content-hashed static name on a
// production server); the realm_user add events altogether when the avatar URL depends on the
// S3 upload backend or on the hashed default-avatar static file.
import { type AvatarSettings, avatarUrl } from "../avatar.js";
import type { Queryable } from "../../db/db.js";
import { FL, type Notify } from "../../services/events.js";
import { activeNonGuestUserIds, activeSubscriberIds, subscribersOfUserSubscriptions, userAccessRestricted, usersInDmsWith } from "../audiences.js";
import { sendGroupMembersEvent } from "../groups.js";
import { CROSS_REALM_BOT_EMAILS, RecipientType } from "../models.js";
import { isRealmAdmin, ROLES } from "../roles.js";
import { canAccessDeliveryEmail, INACCESSIBLE_USER_NAME, sendPeerSubscriberEvents } from "./user-events.js";

/** date_joined.isoformat(timespec="minutes") in UTC ("2026-05-01T10:20+00:00"). */
function isoMinutes(d: Date): string {
  return `${d.toISOString().slice(0, 16)}+00:00`;
}

/** is_cross_realm_bot_email(email): email.lower() in settings.CROSS_REALM_BOT_EMAILS. */
function isCrossRealmBotEmail(email: string): boolean {
  return CROSS_REALM_BOT_EMAILS.includes(email.toLowerCase());
}

/**
 * format_user_row(realm_id, acting_user, row, client_gravatar=False,
 * user_avatar_url_field_optional=False, custom_profile_field_data={}) (zerver/lib/users.py; the
 * same in the 10.x/11.x version read, with is_imported_stub from 12.0, FL 433): every user gets
 * timezone (removed only for spectators, acting_user None — never here); a human gets
 * profile_data (the {} passed); a bot instead gets bot_type, is_system_bot: true when its email is
 * a cross-realm bot's, and bot_owner_id (None for legacy data) — no profile_data.
 */
function personObject(u: Record<string, any>, avatar: string, withDeliveryEmail: boolean, featureLevel: number): Record<string, unknown> {
  const role = Number(u.role);
  const person: Record<string, unknown> = {
    email: u.email,
    user_id: Number(u.id),
    avatar_version: Number(u.avatar_version),
    is_admin: isRealmAdmin(role),
    is_owner: role === ROLES.REALM_OWNER,
    is_guest: role === ROLES.GUEST,
    role,
    is_bot: Boolean(u.is_bot),
    full_name: u.full_name,
    timezone: u.timezone,
    is_active: Boolean(u.is_active),
    date_joined: isoMinutes(new Date(u.date_joined)),
    delivery_email: withDeliveryEmail ? u.delivery_email : null,
    avatar_url: avatar,
  };
  if (featureLevel >= FL.IMPORTED_STUB) person.is_imported_stub = Boolean(u.is_imported_stub);
  if (u.is_bot) {
    person.bot_type = u.bot_type === null ? null : Number(u.bot_type);
    if (isCrossRealmBotEmail(String(u.email))) person.is_system_bot = true;
    person.bot_owner_id = u.bot_owner_id === null ? null : Number(u.bot_owner_id);
  } else {
    person.profile_data = {};
  }
  return person;
}

/**
 * get_avatar_field(…, medium=False, client_gravatar=False) for the user row `u`: a string, or
 * {reason} when it cannot be reproduced. A cross-realm (system) bot's is
 * get_static_avatar_url — staticfiles_storage.url("images/static_avatars/…"), content-hashed on a
 * production server (zerver/lib/avatar.py, 10.x-12.x: "System bots have hardcoded avatars").
 */
function userAvatar(settings: AvatarSettings | null, u: Record<string, any>, featureLevel: number): string | { reason: string } {
  if (!settings) return { reason: "the avatar settings could not be read" };
  if (isCrossRealmBotEmail(String(u.delivery_email))) return { reason: "a system bot's static avatar URL is content-hashed on a production server" };
  return avatarUrl(
    settings,
    {
      id: Number(u.id),
      realm_id: Number(u.realm_id),
      delivery_email: u.delivery_email,
      avatar_source: u.avatar_source,
      avatar_version: Number(u.avatar_version),
    },
    featureLevel,
  );
}

/**
 * notify_created_user(user, notify_user_ids): realm_user add, split by who may see the real
 * address; recipients null = every active user (guests excluded when access is restricted:
 * their ids are returned, for the placeholder event not sent here).
 */
async function notifyCreatedUser(
  q: Queryable,
  n: Notify,
  u: Record<string, any>,
  avatar: string,
  featureLevel: number,
  restricted: boolean,
  recipients: number[] | null,
): Promise<number[]> {
  const { rows: viewers } = await q.query(
    `SELECT id, role FROM zerver_userprofile WHERE realm_id = $1 AND is_active ${recipients ? "AND id = ANY ($2::int[])" : ""} ORDER BY id`,
    recipients ? [u.realm_id, recipients] : [u.realm_id],
  );
  const withEmail: number[] = [];
  const without: number[] = [];
  const guests: number[] = [];
  for (const v of viewers) {
    const viewer = { id: Number(v.id), role: Number(v.role) };
    if (restricted && viewer.role === ROLES.GUEST) guests.push(viewer.id);
    else if (canAccessDeliveryEmail(viewer, Number(u.id), Number(u.email_address_visibility))) withEmail.push(viewer.id);
    else without.push(viewer.id);
  }
  // Zulip's guards (create_user.py notify_created_user, 10.x-12.x: `if
  // user_ids_with_real_email_access:`, `if user_ids_without_real_email_access:`): no event for an
  // empty half.
  if (withEmail.length) n.events.send(n.realm, { type: "realm_user", op: "add", person: personObject(u, avatar, true, featureLevel) }, withEmail, n.what);
  if (without.length) n.events.send(n.realm, { type: "realm_user", op: "add", person: personObject(u, avatar, false, featureLevel) }, without, n.what);
  return guests;
}

/**
 * do_create_user's and process_new_human_user's events for a human user created in this
 * transaction (run after its writes). Returns what was not sent, with the reason.
 */
export async function sendUserCreationEvents(
  q: Queryable,
  n: Notify,
  userId: number,
  opts: { featureLevel: number; avatar: AvatarSettings | null; systemGroupIds: number[]; channelIds: number[] },
): Promise<string[]> {
  const notSent: string[] = [];
  n.events.auditLogUpload(n.realm);
  const { rows } = await q.query("SELECT * FROM zerver_userprofile WHERE id = $1", [userId]);
  const u = rows[0];
  const what = `realm_user add events for ${u.delivery_email} (other users' open apps list the new user only after a reload)`;
  const avatar = userAvatar(opts.avatar, u, opts.featureLevel);
  const restricted = await userAccessRestricted(q, { realm_id: Number(u.realm_id), is_bot: false });
  if (typeof avatar !== "string") notSent.push(`${what}: ${avatar.reason}`);
  else {
    const guests = await notifyCreatedUser(q, n, u, avatar, opts.featureLevel, restricted, null);
    if (guests.length)
      notSent.push(`the "Unknown user" realm_user add for ${guests.length} guest(s) (its static avatar URL is content-hashed on a production server)`);
  }
  for (const g of opts.systemGroupIds) await sendGroupMembersEvent(q, n, "add_members", g, [Number(u.id)]);
  if (opts.channelIds.length) {
    const { rows: chs } = await q.query("SELECT id, invite_only, is_web_public FROM zerver_stream WHERE id = ANY ($1::int[]) ORDER BY id", [opts.channelIds]);
    const channels = chs.map((r) => ({ id: Number(r.id), invite_only: Boolean(r.invite_only), is_web_public: Boolean(r.is_web_public) }));
    if (restricted && typeof avatar === "string") {
      // send_user_creation_events_on_adding_subscriptions: the new user's co-subscribers who could
      // not see the user before (guests; the user had no subscriptions) get notify_created_user.
      const { rows: gs } = await q.query(
        `SELECT DISTINCT p.id FROM zerver_subscription s JOIN zerver_recipient r ON r.id = s.recipient_id AND r.type = ${RecipientType.STREAM}
           JOIN zerver_userprofile p ON p.id = s.user_profile_id
          WHERE r.type_id = ANY ($1::int[]) AND s.active AND p.is_active AND p.role = ${ROLES.GUEST} AND p.id <> $2 ORDER BY p.id`,
        [opts.channelIds, u.id],
      );
      // Zulip's guard (`if users_to_receive_creation_event:`) — and needed: notify_created_user
      // with an empty list would mean every active user.
      if (gs.length)
        await notifyCreatedUser(
          q,
          n,
          u,
          avatar,
          opts.featureLevel,
          false,
          gs.map((r) => Number(r.id)),
        );
    }
    await sendPeerSubscriberEvents(q, n, "peer_add", channels, new Map(channels.map((c) => [c.id, new Set([Number(u.id)])])));
  }
  return notSent;
}

// ---------------------------------------------------------------------------------------------
// Restricted user access and channel subscriptions (zerver/actions/streams.py
// send_user_creation_events_on_adding_subscriptions, send_user_remove_events_on_removing_
// subscriptions; zerver/lib/users.py get_subscribers_of_target_user_subscriptions,
// get_users_involved_in_dms_with_target_users), for one user added to or removed from one
// channel, as manage.py's add_users_to_streams / remove_users_from_stream make the calls.

/**
 * notify_created_user(user, notify_user_ids) with a non-empty list: `realm_user` `add` to those of
 * them who are active, split by who may see the real address. Returns why it was not sent.
 */
async function notifyCreatedUserTo(
  q: Queryable,
  n: Notify,
  userId: number,
  recipients: number[],
  opts: { avatar: AvatarSettings | null; featureLevel: number },
): Promise<string[]> {
  const { rows } = await q.query("SELECT * FROM zerver_userprofile WHERE id = $1", [userId]);
  const u = rows[0];
  const what = `the realm_user add of user ${userId} to ${recipients.length} user(s) who can now see them`;
  // A bot too: send_user_creation_events_on_adding_subscriptions calls notify_created_user for
  // a bot subscribed to a channel with guests (format_user_row's bot fields, personObject).
  const avatar = userAvatar(opts.avatar, u, opts.featureLevel);
  if (typeof avatar !== "string") return [`${what}: ${avatar.reason}`];
  await notifyCreatedUser(q, n, u, avatar, opts.featureLevel, false, recipients);
  return [];
}

/**
 * send_user_creation_events_on_adding_subscriptions for user `userId` just subscribed to
 * `channel`: its subscribers who could not see the user before (not non-guests, not sharing a
 * channel or group DM with the user before: `before`, nor a 1:1 DM) get the user's
 * `realm_user` `add`; a guest gets one for each subscriber new to them.
 */
export async function sendUserCreationEventsOnAddingSubscriptions(
  q: Queryable,
  n: Notify,
  channel: { recipient_id: number; realm_id: number },
  userId: number,
  before: Set<number>,
  opts: { avatar: AvatarSettings | null; featureLevel: number },
): Promise<string[]> {
  const notSent: string[] = [];
  const { rows } = await q.query("SELECT id, realm_id, role FROM zerver_userprofile WHERE id = $1", [userId]);
  const user = { id: Number(rows[0].id), realm_id: Number(rows[0].realm_id), role: Number(rows[0].role) };
  const subscribers = await activeSubscriberIds(q, channel.recipient_id);
  const dms = await usersInDmsWith(q, user);
  const nonGuests = new Set(await activeNonGuestUserIds(q, user.realm_id));
  const known = (id: number) => before.has(id) || dms.has(id) || id === user.id;
  const receive = subscribers.filter((id) => !nonGuests.has(id) && !known(id));
  // Zulip's guard: `if users_to_receive_creation_event:` (an empty list would mean everyone).
  if (receive.length) notSent.push(...(await notifyCreatedUserTo(q, n, user.id, receive, opts)));
  if (user.role === ROLES.GUEST) {
    for (const other of subscribers.filter((id) => !known(id))) notSent.push(...(await notifyCreatedUserTo(q, n, other, [user.id], opts)));
  }
  return notSent;
}

/**
 * send_user_remove_events_on_removing_subscriptions for user `userId` just unsubscribed from
 * `channel`: its remaining subscribers who can no longer see the user get `realm_user` `remove`
 * {user_id, full_name: "Unknown user"}; a guest gets one for each subscriber it no longer sees.
 */
export async function sendUserRemoveEventsOnRemovingSubscriptions(q: Queryable, n: Notify, channel: { recipient_id: number }, userId: number): Promise<void> {
  const { rows } = await q.query("SELECT id, realm_id, role FROM zerver_userprofile WHERE id = $1", [userId]);
  const user = { id: Number(rows[0].id), realm_id: Number(rows[0].realm_id), role: Number(rows[0].role) };
  const subscribers = await activeSubscriberIds(q, channel.recipient_id);
  const shared = await subscribersOfUserSubscriptions(q, user.id);
  const dms = await usersInDmsWith(q, user);
  const nonGuests = new Set(await activeNonGuestUserIds(q, user.realm_id));
  const known = (id: number) => shared.has(id) || dms.has(id) || id === user.id;
  const without = subscribers.filter((id) => !nonGuests.has(id) && !known(id));
  const removal = (id: number) => ({ type: "realm_user", op: "remove", person: { user_id: id, full_name: INACCESSIBLE_USER_NAME } });
  // Zulip's guard: `if subscribers_without_access_to_altered_user:` (streams.py, 10.x-12.x).
  if (without.length) n.events.send(n.realm, removal(user.id), without, n.what);
  if (user.role === ROLES.GUEST) {
    for (const other of subscribers.filter((id) => !known(id))) n.events.send(n.realm, removal(other), [user.id], n.what);
  }
}
