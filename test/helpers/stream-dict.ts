// The channel object Zulip puts in `stream` `create` events (zerver/lib/streams.py
// stream_to_dict), built for tests from the zerver_stream row with plain SQL, independent of
// src/zulip/events/channel-events.ts. For the 12.x-shaped zerver_stream of every fixture.
import type { TestDatabase } from "./pg.js";

const SETTINGS = [
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

export async function expectedChannelObject(db: TestDatabase, channelId: number, weeklyTraffic: number | null): Promise<Record<string, unknown>> {
  const [s] = await db.query("SELECT * FROM zerver_stream WHERE id = $1", [channelId]);
  const named = new Map<number, string>(
    (await db.query("SELECT usergroup_ptr_id AS id, name FROM zerver_namedusergroup WHERE realm_id = $1", [s.realm_id])).map((r: any) => [
      Number(r.id),
      r.name,
    ]),
  );
  const value = async (groupId: number) => {
    if (named.has(groupId)) return groupId;
    const members = await db.query(
      "SELECT m.user_profile_id AS id FROM zerver_usergroupmembership m JOIN zerver_userprofile u ON u.id = m.user_profile_id WHERE m.user_group_id = $1 AND u.is_active ORDER BY 1",
      [groupId],
    );
    const subgroups = await db.query("SELECT subgroup_id AS id FROM zerver_groupgroupmembership WHERE supergroup_id = $1 ORDER BY 1", [groupId]);
    return { direct_members: members.map((r: any) => Number(r.id)), direct_subgroups: subgroups.map((r: any) => Number(r.id)) };
  };
  const post =
    { "role:everyone": 1, "role:administrators": 2, "role:fullmembers": 3, "role:moderators": 4 }[named.get(Number(s.can_send_message_group_id)) ?? ""] ?? 1;
  const obj: Record<string, unknown> = { is_archived: s.deactivated };
  for (const k of SETTINGS) obj[k] = await value(Number(s[`${k}_id`]));
  Object.assign(obj, {
    creator_id: s.creator_id === null ? null : Number(s.creator_id),
    date_created: Math.floor(new Date(s.date_created).getTime() / 1000),
    description: s.description,
    first_message_id: s.first_message_id === null ? null : Number(s.first_message_id),
    folder_id: s.folder_id === null ? null : Number(s.folder_id),
    is_recently_active: s.is_recently_active,
    history_public_to_subscribers: s.history_public_to_subscribers,
    invite_only: s.invite_only,
    is_web_public: s.is_web_public,
    message_retention_days: s.message_retention_days,
    name: s.name,
    rendered_description: s.rendered_description,
    stream_id: Number(s.id),
    stream_post_policy: post,
    is_announcement_only: post === 2,
    stream_weekly_traffic: weeklyTraffic,
    subscriber_count: Number(s.subscriber_count),
    topics_policy: ["", "inherit", "allow_empty_topic", "disable_empty_topic", "empty_topic_only"][Number(s.topics_policy)],
  });
  return obj;
}

/**
 * The subscription object of a `subscription` `add` event (send_subscription_add_events'
 * APISubscriptionDict): the subscription row's settings, in_home_view, the channel object with
 * the subscriber_count the channel had before the call (Zulip's Stream object is not refreshed by
 * bulk_update_subscriber_counts), and the subscribers (sorted).
 */
export async function expectedSubscriptionObject(
  db: TestDatabase,
  channelId: number,
  userId: number,
  opts: { countBefore: number; subscribers: number[]; weeklyTraffic?: number | null },
): Promise<Record<string, unknown>> {
  const obj = await expectedChannelObject(db, channelId, opts.weeklyTraffic ?? null);
  if ("subscriber_count" in obj) obj.subscriber_count = opts.countBefore;
  const [s] = await db.query(
    "SELECT sub.* FROM zerver_subscription sub JOIN zerver_stream st ON st.recipient_id = sub.recipient_id WHERE st.id = $1 AND sub.user_profile_id = $2",
    [channelId, userId],
  );
  return {
    audible_notifications: s.audible_notifications,
    color: s.color,
    desktop_notifications: s.desktop_notifications,
    email_notifications: s.email_notifications,
    is_muted: s.is_muted,
    pin_to_top: s.pin_to_top,
    push_notifications: s.push_notifications,
    wildcard_mentions_notify: s.wildcard_mentions_notify,
    in_home_view: !s.is_muted,
    subscribers: opts.subscribers,
    ...obj,
  };
}
