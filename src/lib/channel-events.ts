// Channel (stream) events, as Zulip builds them (zerver/lib/streams.py, zerver/lib/
// stream_traffic.py, zerver/lib/user_groups.py; read in the 10.x-era, 11.x and main versions):
//
//   stream_to_dict(stream, recent_traffic, anonymous_group_membership) -> the channel object of
//       `stream` create events (streamToDict);
//   send_stream_creation_event(...)                 -> sendStreamCreationEvent;
//   can_access_stream_metadata_user_ids(stream)     -> canAccessStreamMetadataUserIds;
//   get_streams_traffic / get_average_weekly_stream_traffic -> weeklyTraffic.
//
// The channel object has one member per Stream model field of the release (plus computed
// ones), so the fields are chosen by the columns zerver_stream has: a 10.x database has no
// folder_id / subscriber_count / topics_policy / can_subscribe_group_id / … and its
// stream_to_dict has none of them either; default_push_notifications (main after 12.2) only
// where the column exists.
import type { Queryable } from "./db.js";
import { activeNonGuestUserIds, adminUserAndBotIds, FL, type Notify } from "./events.js";

/** Stream.stream_permission_group_settings, in APIStreamDict's order. */
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
] as const;

/** StreamTopicsPolicyEnum names. */
const TOPICS_POLICY_NAMES: Record<number, string> = { 1: "inherit", 2: "allow_empty_topic", 3: "disable_empty_topic", 4: "empty_topic_only" };

/** Stream.SYSTEM_GROUPS_ENUM_MAP: can_send_message_group -> the legacy stream_post_policy. */
const STREAM_POST_POLICY: Record<string, number> = { "role:everyone": 1, "role:administrators": 2, "role:fullmembers": 3, "role:moderators": 4 };
const STREAM_POST_POLICY_EVERYONE = 1;
const STREAM_POST_POLICY_ADMINS = 2;

async function streamColumns(q: Queryable): Promise<Set<string>> {
  const { rows } = await q.query(
    `SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass('zerver_stream') AND attnum > 0 AND NOT attisdropped`,
  );
  return new Set(rows.map((r) => r.attname as string));
}

/**
 * round_to_2_significant_digits: Python's round(n, 2 - len(str(n))), which rounds halves to
 * even (round(25, -1) == 20, round(150, -2) == 200).
 */
export function roundTo2SignificantDigits(n: number): number {
  const digits = 2 - String(n).length;
  if (digits >= 0) return n;
  const f = 10 ** -digits;
  const lower = Math.floor(n / f);
  const rest = n - lower * f;
  const up = rest * 2 > f || (rest * 2 === f && lower % 2 === 1);
  return (up ? lower + 1 : lower) * f;
}

/**
 * get_average_weekly_stream_traffic(stream_id, date_created, get_streams_traffic(realm, {id})):
 * the channel's messages in the last 28 days (analytics StreamCount
 * "messages_in_stream:is_bot:day", bots and humans), per week; null for channels younger
 * than 7 days.
 */
export async function weeklyTraffic(q: Queryable, channel: { id: number; realm_id: number; date_created: Date }, now = new Date()): Promise<number | null> {
  const { rows } = await q.query(
    `SELECT coalesce(sum(value), 0)::bigint AS n FROM analytics_streamcount
      WHERE realm_id = $1 AND property = 'messages_in_stream:is_bot:day' AND end_time > $2 AND stream_id = $3`,
    [channel.realm_id, new Date(now.getTime() - 28 * 86400_000), channel.id],
  );
  const traffic = Number(rows[0].n);
  const ageDays = Math.floor((now.getTime() - new Date(channel.date_created).getTime()) / 86400_000);
  let average: number;
  if (ageDays >= 28) average = Math.floor(traffic / 4);
  else if (ageDays >= 7) average = Math.floor((traffic * 7) / ageDays);
  else return null;
  if (average === 0 && traffic > 0) average = 1;
  return roundTo2SignificantDigits(average);
}

/**
 * stream_to_dict(stream, recent_traffic, anonymous_group_membership): the API channel object.
 * Group settings are the group id for a named group, else {"direct_members", "direct_subgroups"}
 * of the anonymous group (active members only, get_members_and_subgroups_of_groups; Zulip's
 * lists come from an unordered UNION, sent here sorted). `traffic`: false for a channel
 * created just now (Zulip passes no recent_traffic: stream_weekly_traffic null).
 */
export async function streamToDict(q: Queryable, channelId: number, opts: { traffic: boolean; now?: Date }): Promise<Record<string, unknown>> {
  const cols = await streamColumns(q);
  const { rows } = await q.query("SELECT * FROM zerver_stream WHERE id = $1", [channelId]);
  const s = rows[0];
  const settings = GROUP_SETTINGS.filter((g) => cols.has(`${g}_id`));
  const groupIds = settings.map((g) => Number(s[`${g}_id`]));
  const { rows: named } = await q.query("SELECT usergroup_ptr_id AS id, name FROM zerver_namedusergroup WHERE usergroup_ptr_id = ANY ($1::int[])", [groupIds]);
  const namedName = new Map(named.map((r) => [Number(r.id), r.name as string]));
  const anonymous = groupIds.filter((id) => !namedName.has(id));
  const members = new Map<number, { direct_members: number[]; direct_subgroups: number[] }>(anonymous.map((id) => [id, { direct_members: [], direct_subgroups: [] }]));
  if (anonymous.length) {
    const { rows: m } = await q.query(
      `SELECT m.user_group_id AS g, m.user_profile_id AS id FROM zerver_usergroupmembership m JOIN zerver_userprofile u ON u.id = m.user_profile_id
        WHERE m.user_group_id = ANY ($1::int[]) AND u.is_active ORDER BY m.user_profile_id`,
      [anonymous],
    );
    for (const r of m) members.get(Number(r.g))!.direct_members.push(Number(r.id));
    const { rows: sg } = await q.query(
      "SELECT supergroup_id AS g, subgroup_id AS id FROM zerver_groupgroupmembership WHERE supergroup_id = ANY ($1::int[]) ORDER BY subgroup_id",
      [anonymous],
    );
    for (const r of sg) members.get(Number(r.g))!.direct_subgroups.push(Number(r.id));
  }
  const groupValue = (id: number) => (namedName.has(id) ? id : members.get(id)!);
  const sendGroup = cols.has("can_send_message_group_id") ? namedName.get(Number(s.can_send_message_group_id)) : undefined;
  const postPolicy = cols.has("can_send_message_group_id") ? (STREAM_POST_POLICY[sendGroup ?? ""] ?? STREAM_POST_POLICY_EVERYONE) : Number(s.stream_post_policy);
  const d: Record<string, unknown> = { is_archived: s.deactivated };
  for (const g of settings) d[g] = groupValue(Number(s[`${g}_id`]));
  d.creator_id = s.creator_id === null ? null : Number(s.creator_id);
  d.date_created = Math.floor(new Date(s.date_created).getTime() / 1000);
  d.description = s.description;
  d.first_message_id = s.first_message_id === null ? null : Number(s.first_message_id);
  if (cols.has("folder_id")) d.folder_id = s.folder_id === null ? null : Number(s.folder_id);
  if (cols.has("is_recently_active")) d.is_recently_active = s.is_recently_active;
  d.history_public_to_subscribers = s.history_public_to_subscribers;
  d.invite_only = s.invite_only;
  d.is_web_public = s.is_web_public;
  d.message_retention_days = s.message_retention_days === null ? null : Number(s.message_retention_days);
  d.name = s.name;
  if (cols.has("default_push_notifications")) d.default_push_notifications = s.default_push_notifications;
  d.rendered_description = s.rendered_description;
  d.stream_id = Number(s.id);
  d.stream_post_policy = postPolicy;
  d.is_announcement_only = postPolicy === STREAM_POST_POLICY_ADMINS;
  d.stream_weekly_traffic = opts.traffic ? await weeklyTraffic(q, { id: Number(s.id), realm_id: Number(s.realm_id), date_created: s.date_created }, opts.now) : null;
  if (cols.has("subscriber_count")) d.subscriber_count = Number(s.subscriber_count);
  if (cols.has("topics_policy")) d.topics_policy = TOPICS_POLICY_NAMES[Number(s.topics_policy)] ?? String(s.topics_policy);
  return d;
}

/**
 * send_stream_creation_event(realm, stream, user_ids, recent_traffic, …, for_unarchiving):
 * {"type": "stream", "op": "create", "streams": [<channel object>], "for_unarchiving": …}.
 * The for_unarchiving member exists from 11.0 (FL 378; its Tornado strips it and delivers
 * the event only to clients without the archived_channels capability when it is true); a
 * 10.x Tornado would pass it on to clients, so it is left out there.
 */
export async function sendStreamCreationEvent(
  q: Queryable,
  n: Notify,
  channelId: number,
  users: number[],
  opts: { traffic: boolean; forUnarchiving: boolean; featureLevel: number; now?: Date },
): Promise<void> {
  const event: Record<string, unknown> = { type: "stream", op: "create", streams: [await streamToDict(q, channelId, { traffic: opts.traffic, now: opts.now })] };
  if (opts.featureLevel >= FL.ARCHIVED_CHANNEL_EVENTS) event.for_unarchiving = opts.forUnarchiving;
  n.events.send(n.realm, event as { type: string }, users, n.what);
}

/**
 * can_access_stream_metadata_user_ids(stream) (zerver/lib/streams.py, 11.x and main): for a
 * public channel the active non-guests and the guests subscribed to it (active subscriptions of
 * active users); for a private one its active subscribers, the realm's admins and bots
 * (get_admin_users_and_bots), and the active non-guest members (recursively) of the groups its
 * can_administer_channel_group / can_add_subscribers_group / can_subscribe_group name
 * (get_user_ids_with_metadata_access_via_permission_groups). Sorted ids.
 */
export async function canAccessStreamMetadataUserIds(q: Queryable, channel: { id: number; realm_id: number; invite_only: boolean; recipient_id: number }): Promise<number[]> {
  const ids = new Set<number>();
  const { rows: subs } = await q.query(
    `SELECT s.user_profile_id AS id, u.role FROM zerver_subscription s JOIN zerver_userprofile u ON u.id = s.user_profile_id
      WHERE s.recipient_id = $1 AND s.active AND s.is_user_active`,
    [channel.recipient_id],
  );
  if (!channel.invite_only) {
    for (const id of await activeNonGuestUserIds(q, channel.realm_id)) ids.add(id);
    for (const r of subs) if (Number(r.role) === 600) ids.add(Number(r.id));
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
           JOIN zerver_userprofile u ON u.id = m.user_profile_id WHERE u.is_active AND u.role <> 600`,
        [channel.id],
      );
      for (const r of rows) ids.add(Number(r.id));
    }
  }
  return [...ids].sort((a, b) => a - b);
}
