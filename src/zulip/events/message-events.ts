// The real-time `message` event of a channel message that zulip-manage writes (the Notification
// Bot notices: channel unarchived, new user joined), as do_send_messages builds it
// (zerver/actions/message_send.py; get_recipient_info, create_user_messages,
// get_active_presence_idle_user_ids; zerver/lib/message_cache.py MessageDict.wide_dict;
// zerver/lib/notification_data.py UserMessageNotificationsData; zerver/lib/streams.py
// notify_stream_is_recently_active_update). Read: a 12.2 message_send.py (a fork of the 12.2
// release; its own additions — an Expo push job, realm_guest_user_ids — are not Zulip's and are
// left out), the 12.0-development and later main versions, and a 10.x-era version.
//
// What a Notification Bot message in a channel produces, in order:
//
//  1. when the channel was not "recently active": `stream` `update` is_recently_active=true to
//     can_access_stream_metadata_user_ids (the channel becomes active with this message);
//  2. the `message` event {type, message, message_dict, presence_idle_user_ids,
//     online_push_user_ids, dm_mention_push_disabled_user_ids, dm_mention_email_disabled_user_ids,
//     stream_push_user_ids, stream_email_user_ids, topic_wildcard_mention_user_ids,
//     stream_wildcard_mention_user_ids, followed_topic_push_user_ids,
//     followed_topic_email_user_ids, topic_wildcard_mention_in_followed_topic_user_ids,
//     stream_wildcard_mention_in_followed_topic_user_ids, muted_sender_user_ids,
//     all_bot_user_ids, [push_device_registered_user_ids: 12.0 on, PR #35965],
//     disable_external_notifications, realm_host, + realm_id and stream_name for a public
//     channel, invite_only for a private one}, to one dict per recipient {id, flags,
//     mentioned_user_group_id}: every active subscriber the message concerns
//     (get_subscriptions_for_send_message leaves out long-term-idle users it needs nothing
//     from) and every user with a UserMessage row.
//
// No queue-worker job: embed_links only for links with previews (the notices' channel links
// and silent mentions have none), no outgoing-webhook / embedded-bot jobs (the sender is a bot),
// no Welcome Bot reply (not a DM). The sender is a system bot, so there is no automatic
// follow/unmute of the topic, and user_access_restricted_in_realm is false for it (no
// user_ids_without_access_to_sender).
//
// Python sets become lists in no fixed order (user ids here are sorted); the sender is never
// a recipient of these messages. topic_links are computed from the organization's linkifiers
// (src/zulip/linkifiers.ts). Not reproduced (the event is then not sent, and the caller says
// so): topic_links of a topic that could contain a URL, or from a linkifier whose re2 pattern
// or URL template zulip-manage does not translate with certainty.
import { realmHost, type ZulipSettings } from "../../config/settings.js";
import { hasColumn, type Queryable } from "../../db/db.js";
import type { Notify } from "../../services/events.js";
import { flagsList, RecipientType, VisibilityPolicy } from "../models.js";
import { canAccessStreamMetadataUserIds } from "./channel-events.js";
import { realmLinkifiers, type TopicLink, topicLinks } from "../linkifiers.js";

/** What the message event needs from the server's settings. */
export interface MessageEventEnv {
  /** realm.host of the channel's organization. */
  realmHost: string;
  /** settings.OFFLINE_THRESHOLD_SECS (default 140). */
  offlineThresholdSecs: number;
}

/** The MessageEventEnv of an organization from the server's settings; null when they cannot be read. */
export function messageEventEnv(settings: ZulipSettings, realmStringId: string): MessageEventEnv | null {
  try {
    const t = settings.fileValue("OFFLINE_THRESHOLD_SECS", 140);
    return { realmHost: realmHost(settings, realmStringId), offlineThresholdSecs: typeof t === "number" ? t : 140 };
  } catch {
    return null;
  }
}

/** The feature level from which message events carry push_device_registered_user_ids (12.0 development; the exact level was not determined). */
const PUSH_DEVICE_REGISTERED_FROM = 426;

/** user_allows_notifications_in_StreamTopic (the non-wildcard settings). */
function allowsInStreamTopic(isMuted: boolean, policy: number, channelSetting: boolean | null, userSetting: boolean): boolean {
  if (isMuted && policy !== VisibilityPolicy.UNMUTED) return false;
  if (policy === VisibilityPolicy.MUTED) return false;
  return channelSetting !== null ? channelSetting : userSetting;
}

const sorted = (ids: Iterable<number>) => [...new Set(ids)].sort((a, b) => a - b);

/**
 * MessageDict.wide_dict(message) of a channel message with no edits, reactions or submessages,
 * hydrated with the sender's and the recipient's fields. `senderRecipientId` (10.0-11.x: the
 * sender's personal recipient, FL 327) when the schema still has UserProfile.recipient.
 */
function wideDict(
  m: Record<string, any>,
  sender: Record<string, any>,
  channel: { id: number; name: string; recipient_id: number },
  senderRecipientId: number | null | undefined,
  links: TopicLink[],
): Record<string, unknown> {
  const d: Record<string, unknown> = {
    id: Number(m.id),
    sender_id: Number(m.sender_id),
    content: m.content,
    recipient_type_id: channel.id,
    recipient_type: RecipientType.STREAM,
    recipient_id: channel.recipient_id,
    timestamp: Math.floor(new Date(m.date_sent).getTime() / 1000),
    client: m.client,
    subject: m.subject,
    sender_realm_id: Number(sender.realm_id),
    topic_links: links,
    rendered_content: m.rendered_content,
    is_me_message: false,
    reactions: [],
    submessages: [],
  };
  if (senderRecipientId !== undefined) d.sender_recipient_id = senderRecipientId;
  Object.assign(d, {
    sender_full_name: sender.full_name,
    sender_email: sender.email,
    sender_delivery_email: sender.delivery_email,
    sender_realm_str: sender.realm_str,
    sender_avatar_source: sender.avatar_source,
    sender_avatar_version: Number(sender.avatar_version),
    sender_is_mirror_dummy: Boolean(sender.is_mirror_dummy),
    sender_email_address_visibility: Number(sender.email_address_visibility),
    display_recipient: channel.name,
    type: "stream",
    stream_id: channel.id,
  });
  return d;
}

/**
 * do_send_messages' events for a channel message just written (Message and UserMessage rows in
 * this transaction). `wasRecentlyActive`: the channel's is_recently_active before the message.
 * `possiblyMentionedUserIds`: the users the content's mention syntax names (silent mentions
 * included; MentionData.get_user_ids). Returns why the event was not sent (empty when sent).
 */
export async function sendChannelMessageEvents(
  q: Queryable,
  n: Notify,
  o: { messageId: number; wasRecentlyActive: boolean; possiblyMentionedUserIds?: number[]; featureLevel: number; env: MessageEventEnv },
): Promise<string[]> {
  const { rows: mr } = await q.query(`SELECT m.*, c.name AS client FROM zerver_message m JOIN zerver_client c ON c.id = m.sending_client_id WHERE m.id = $1`, [
    o.messageId,
  ]);
  const m = mr[0];
  const { rows: cr } = await q.query(
    "SELECT id, realm_id, name, recipient_id, invite_only, is_web_public, deactivated FROM zerver_stream WHERE recipient_id = $1",
    [m.recipient_id],
  );
  const st = cr[0];
  const channel = {
    id: Number(st.id),
    realm_id: Number(st.realm_id),
    name: st.name as string,
    recipient_id: Number(st.recipient_id),
    invite_only: Boolean(st.invite_only),
  };
  // notify_stream_is_recently_active_update comes first (and does not depend on the message dict).
  if (!o.wasRecentlyActive) {
    n.events.send(
      n.realm,
      { type: "stream", op: "update", property: "is_recently_active", value: true, stream_id: channel.id, name: channel.name },
      await canAccessStreamMetadataUserIds(q, {
        id: channel.id,
        realm_id: channel.realm_id,
        invite_only: channel.invite_only,
        recipient_id: channel.recipient_id,
      }),
      n.what,
    );
  }
  const what = `the message event of message ${o.messageId} (open apps show it after a reload)`;
  // topic_links(rendering_realm_id, topic): the channel's organization's linkifiers (see
  // src/zulip/linkifiers.ts); the raw-URL part is not computed, so a topic that could hold a
  // URL (a domain or a scheme needs a "." or a ":") is refused.
  if (/[.:]/.test(m.subject)) return [`${what}: the topic could hold a link, whose topic link zulip-manage does not compute`];
  const links = topicLinks(await realmLinkifiers(q, channel.realm_id), m.subject);
  if ("why" in links) return [`${what}: its topic links are not computed: ${links.why}`];

  const withRecipient = await hasColumn(q, "zerver_userprofile", "recipient_id");
  const { rows: sr } = await q.query(
    `SELECT u.*, r.string_id AS realm_str FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id WHERE u.id = $1`,
    [m.sender_id],
  );
  const sender = sr[0];
  const senderId = Number(sender.id);

  // get_subscriptions_for_send_message (no wildcard mention, no topic wildcard) + get_recipient_info.
  const { rows: subs } = await q.query(
    `SELECT u.id, u.is_bot, u.long_term_idle, s.is_muted, s.push_notifications, s.email_notifications,
            u.enable_stream_push_notifications AS user_push, u.enable_stream_email_notifications AS user_email,
            u.enable_followed_topic_push_notifications AS followed_push, u.enable_followed_topic_email_notifications AS followed_email,
            u.enable_online_push_notifications AS online_push, u.enable_offline_push_notifications AS offline_push,
            u.enable_offline_email_notifications AS offline_email
       FROM zerver_subscription s JOIN zerver_userprofile u ON u.id = s.user_profile_id
      WHERE s.recipient_id = $1 AND s.active AND s.is_user_active AND u.is_active
      ORDER BY u.id`,
    [channel.recipient_id],
  );
  const policies = new Map<number, number>(
    (
      await q.query("SELECT user_profile_id AS id, visibility_policy AS p FROM zerver_usertopic WHERE stream_id = $1 AND upper(topic_name) = upper($2)", [
        channel.id,
        m.subject,
      ])
    ).rows.map((r) => [Number(r.id), Number(r.p)]),
  );
  const alertWordUsers = new Set(
    (await q.query("SELECT DISTINCT user_profile_id AS id FROM zerver_alertword WHERE realm_id = $1", [channel.realm_id])).rows.map((r) => Number(r.id)),
  );
  const possiblyMentioned = new Set(o.possiblyMentionedUserIds ?? []);
  const rows = subs.filter((s) => {
    const id = Number(s.id);
    if (!s.long_term_idle) return true;
    return (
      s.push_notifications === true ||
      (s.push_notifications === null && s.user_push) ||
      s.email_notifications === true ||
      (s.email_notifications === null && s.user_email) ||
      possiblyMentioned.has(id) ||
      alertWordUsers.has(id) ||
      policies.get(id) === VisibilityPolicy.FOLLOWED
    );
  });
  const active = rows.map((r) => Number(r.id));
  const policy = (id: number) => policies.get(id) ?? VisibilityPolicy.INHERIT;
  const ids = (f: (r: any) => boolean) => rows.filter(f).map((r) => Number(r.id));
  const streamPush = ids((r) => allowsInStreamTopic(r.is_muted, policy(Number(r.id)), r.push_notifications, r.user_push));
  const streamEmail = ids((r) => allowsInStreamTopic(r.is_muted, policy(Number(r.id)), r.email_notifications, r.user_email));
  const followedPush = ids((r) => policy(Number(r.id)) === VisibilityPolicy.FOLLOWED && r.followed_push);
  const followedEmail = ids((r) => policy(Number(r.id)) === VisibilityPolicy.FOLLOWED && r.followed_email);
  const onlinePush = ids((r) => r.online_push);
  const dmPushDisabled = ids((r) => !r.offline_push);
  const dmEmailDisabled = ids((r) => !r.offline_email);
  // all_bot_user_ids: the bots among the recipients and the possibly mentioned users.
  const { rows: mentionedBots } = possiblyMentioned.size
    ? await q.query("SELECT id FROM zerver_userprofile WHERE id = ANY ($1::int[]) AND is_active AND is_bot", [[...possiblyMentioned]])
    : { rows: [] as any[] };
  const allBots = sorted([...ids((r) => r.is_bot), ...mentionedBots.map((r) => Number(r.id))]);
  const mutedSender = sorted(
    (await q.query("SELECT user_profile_id AS id FROM zerver_muteduser WHERE muted_user_id = $1", [senderId])).rows.map((r) => Number(r.id)),
  );
  const withPushDevices = o.featureLevel >= PUSH_DEVICE_REGISTERED_FROM;
  let pushRegistered: number[] = [];
  if (withPushDevices && active.length) {
    const device = (await hasColumn(q, "zerver_device", "push_token_id"))
      ? "SELECT user_id FROM zerver_device WHERE push_token_id IS NOT NULL UNION "
      : (await hasColumn(q, "zerver_pushdevice", "bouncer_device_id"))
        ? "SELECT user_id FROM zerver_pushdevice WHERE bouncer_device_id IS NOT NULL UNION "
        : "";
    const { rows: dev } = await q.query(
      `SELECT DISTINCT user_id AS id FROM (${device}SELECT user_id FROM zerver_pushdevicetoken) d WHERE user_id = ANY ($1::int[])`,
      [active],
    );
    pushRegistered = sorted(dev.map((r) => Number(r.id)));
  }

  // The UserMessage rows written (create_user_messages) and their flags.
  const { rows: ums } = await q.query("SELECT user_profile_id AS id, flags FROM zerver_usermessage WHERE message_id = $1 ORDER BY user_profile_id", [
    o.messageId,
  ]);
  const flags = new Map(ums.map((r) => [Number(r.id), flagsList(Number(r.flags))]));
  const userIds = sorted([...active, ...flags.keys()]);
  const userList = userIds.includes(senderId) ? [senderId, ...userIds.filter((u) => u !== senderId)] : userIds;
  const users = userList.map((id) => {
    const f = [...(flags.get(id) ?? [])];
    if (f.includes("stream_wildcard_mentioned") || f.includes("topic_wildcard_mentioned")) f.push("wildcard_mentioned");
    return { id, flags: f, mentioned_user_group_id: null };
  });

  // get_active_presence_idle_user_ids: users for whom the message would be notifiable if they
  // were idle (no mention, DM or wildcard here: channel or followed-topic email/push), and who
  // have not been active within OFFLINE_THRESHOLD_SECS.
  const bots = new Set(allBots);
  const muted = new Set(mutedSender);
  const registered = new Set(pushRegistered);
  const inSet = (list: number[]) => new Set(list);
  const [sp, se, fp, fe] = [inSet(streamPush), inSet(streamEmail), inSet(followedPush), inSet(followedEmail)];
  const candidates = active.filter((id) => {
    if (bots.has(id) || id === senderId || muted.has(id)) return false;
    const pushOk = !withPushDevices || registered.has(id);
    return se.has(id) || fe.has(id) || (pushOk && (sp.has(id) || fp.has(id)));
  });
  let presenceIdle: number[] = [];
  const presenceDisabled = (await hasColumn(q, "zerver_realm", "is_zephyr_mirror_realm"))
    ? Boolean((await q.query("SELECT is_zephyr_mirror_realm AS z FROM zerver_realm WHERE id = $1", [channel.realm_id])).rows[0].z)
    : false;
  if (!presenceDisabled && candidates.length) {
    const { rows: present } = await q.query(
      "SELECT user_profile_id AS id FROM zerver_userpresence WHERE user_profile_id = ANY ($1::int[]) AND last_active_time >= now() - make_interval(secs => $2)",
      [candidates, o.env.offlineThresholdSecs],
    );
    const recent = new Set(present.map((r) => Number(r.id)));
    presenceIdle = sorted(candidates.filter((id) => !recent.has(id)));
  }

  const event: Record<string, unknown> = {
    type: "message",
    message: o.messageId,
    message_dict: wideDict(m, sender, channel, withRecipient ? (sender.recipient_id === null ? null : Number(sender.recipient_id)) : undefined, links.links),
    presence_idle_user_ids: presenceIdle,
    online_push_user_ids: onlinePush,
    dm_mention_push_disabled_user_ids: dmPushDisabled,
    dm_mention_email_disabled_user_ids: dmEmailDisabled,
    stream_push_user_ids: streamPush,
    stream_email_user_ids: streamEmail,
    topic_wildcard_mention_user_ids: [],
    stream_wildcard_mention_user_ids: [],
    followed_topic_push_user_ids: followedPush,
    followed_topic_email_user_ids: followedEmail,
    topic_wildcard_mention_in_followed_topic_user_ids: [],
    stream_wildcard_mention_in_followed_topic_user_ids: [],
    muted_sender_user_ids: mutedSender,
    all_bot_user_ids: allBots,
  };
  if (withPushDevices) event.push_device_registered_user_ids = pushRegistered;
  event.disable_external_notifications = false;
  event.realm_host = o.env.realmHost;
  if (!channel.invite_only) {
    event.realm_id = channel.realm_id;
    event.stream_name = channel.name;
  } else {
    event.invite_only = true;
  }
  n.events.send(n.realm, event as { type: string }, users, n.what);
  return [];
}
