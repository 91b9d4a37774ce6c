// Small constants of Zulip's models (zerver/models/*.py) that several modules need, defined once
// here so that the event builders (src/zulip/events), the model modules and the actions use the
// same values: organization types, email address visibility, bot types, recipient types,
// UserMessage flags, UserTopic visibility policies, ScheduledEmail types, the channel name limit
// and topics policies, the system bots and their realm,
// and the model defaults of a Subscription row. Constants with a module of their own live there:
// roles (roles.ts ROLES), audit event types (audit.ts AuditLogEventType), confirmation types
// (confirmation.ts), system groups (groups.ts), user settings (user-settings.ts).

/** UserProfile.MAX_NAME_LENGTH: zerver_userprofile.full_name is a varchar(100). */
export const MAX_NAME_LENGTH = 100;

/** UserProfile.TOS_VERSION_BEFORE_FIRST_LOGIN: the user is asked to accept the terms at first login. */
export const TOS_VERSION_BEFORE_FIRST_LOGIN = "-1";

/** UserProfile bot types. */
export const BotType = { DEFAULT: 1, INCOMING_WEBHOOK: 2, OUTGOING_WEBHOOK: 3, EMBEDDED: 4 } as const;

/** Recipient.PERSONAL / STREAM / DIRECT_MESSAGE_GROUP (formerly HUDDLE): zerver_recipient.type. */
export const RecipientType = { PERSONAL: 1, STREAM: 2, DIRECT_MESSAGE_GROUP: 3 } as const;

/** Message.MessageType (zerver_message.type): the messages this code writes are NORMAL. */
export const MessageType = { NORMAL: 1, RESOLVE_TOPIC_NOTIFICATION: 2 } as const;

/** UserMessage.ALL_FLAGS (zerver/models/messages.py), in bit order: flag i is bit 1 << i. */
const USER_MESSAGE_FLAGS = [
  "read",
  "starred",
  "collapsed",
  "mentioned",
  "stream_wildcard_mentioned",
  "topic_wildcard_mentioned",
  "group_mentioned",
  "force_expand",
  "force_collapse",
  "has_alert_word",
  "historical",
  "is_private",
  "active_mobile_push_notification",
] as const;

/** UserMessage.NON_API_FLAGS: bits flags_list() leaves out. */
const NON_API_FLAGS: ReadonlySet<string> = new Set(["is_private", "active_mobile_push_notification"]);

const flagBit = (name: (typeof USER_MESSAGE_FLAGS)[number]) => 1 << USER_MESSAGE_FLAGS.indexOf(name);

/** UserMessage flag bits (those this code reads or sets). */
export const UserMessageFlag = {
  READ: flagBit("read"),
  STARRED: flagBit("starred"),
  MENTIONED: flagBit("mentioned"),
  HAS_ALERT_WORD: flagBit("has_alert_word"),
  HISTORICAL: flagBit("historical"),
  IS_PRIVATE: flagBit("is_private"),
  ACTIVE_MOBILE_PUSH_NOTIFICATION: flagBit("active_mobile_push_notification"),
} as const;

/** UserMessage.flags_list(): the API names of the flags set in `mask`, in bit order. */
export function flagsList(mask: number): string[] {
  return USER_MESSAGE_FLAGS.filter((f, i) => (mask & (1 << i)) !== 0 && !NON_API_FLAGS.has(f));
}

/** Realm.ORG_TYPES ids. */
export const OrgType = {
  UNSPECIFIED: 0,
  BUSINESS: 10,
  OPENSOURCE: 20,
  EDUCATION_NONPROFIT: 30,
  EDUCATION: 35,
  RESEARCH: 40,
  EVENT: 50,
  NONPROFIT: 60,
  GOVERNMENT: 70,
  POLITICAL_GROUP: 80,
  COMMUNITY: 90,
  PERSONAL: 100,
  OTHER: 1000,
} as const;

/** Realm.PLAN_TYPE_* (zerver/models/realms.py): zerver_realm.plan_type. */
export const PlanType = { SELF_HOSTED: 1, LIMITED: 2, STANDARD: 3, STANDARD_FREE: 4, PLUS: 10 } as const;

/**
 * UserProfile.EMAIL_ADDRESS_VISIBILITY_* (zerver/models/users.py): who may see a user's real
 * address (zerver_userprofile.email_address_visibility, RealmUserDefault's too).
 */
export const EmailAddressVisibility = { EVERYONE: 1, MEMBERS: 2, ADMINS: 3, NOBODY: 4, MODERATORS: 5 } as const;

/** Stream.MAX_NAME_LENGTH (zerver/models/streams.py), in code points. */
export const MAX_CHANNEL_NAME_LENGTH = 60;

/** StreamTopicsPolicyEnum (zerver/models/streams.py): zerver_stream.topics_policy and zerver_realm.topics_policy. */
export const TopicsPolicy = { INHERIT: 1, ALLOW_EMPTY_TOPIC: 2, DISABLE_EMPTY_TOPIC: 3, EMPTY_TOPIC_ONLY: 4 } as const;

/** StreamTopicsPolicyEnum's names (the API values of topics_policy), by value. */
export const TOPICS_POLICY_NAMES: Readonly<Record<number, string>> = {
  [TopicsPolicy.INHERIT]: "inherit",
  [TopicsPolicy.ALLOW_EMPTY_TOPIC]: "allow_empty_topic",
  [TopicsPolicy.DISABLE_EMPTY_TOPIC]: "disable_empty_topic",
  [TopicsPolicy.EMPTY_TOPIC_ONLY]: "empty_topic_only",
};

/**
 * settings.INTERNAL_BOTS (zproject/computed_settings.py, INTERNAL_BOT_DOMAIN "zulip.com"; the
 * two Nagios staging bots are added on a production server): the system bots of the system bot
 * realm, by their settings name.
 */
export const SystemBots = {
  NOTIFICATION_BOT: { email: "notification-bot@zulip.com", fullName: "Notification Bot" },
  EMAIL_GATEWAY_BOT: { email: "emailgateway@zulip.com", fullName: "Email Gateway" },
  NAGIOS_SEND_BOT: { email: "nagios-send-bot@zulip.com", fullName: "Nagios Send Bot" },
  NAGIOS_RECEIVE_BOT: { email: "nagios-receive-bot@zulip.com", fullName: "Nagios Receive Bot" },
  WELCOME_BOT: { email: "welcome-bot@zulip.com", fullName: "Welcome Bot" },
  NAGIOS_STAGING_SEND_BOT: { email: "nagios-staging-send-bot@zulip.com", fullName: "Nagios Staging Send Bot" },
  NAGIOS_STAGING_RECEIVE_BOT: { email: "nagios-staging-receive-bot@zulip.com", fullName: "Nagios Staging Receive Bot" },
} as const;

/**
 * settings.CROSS_REALM_BOT_EMAILS. Not a setting an administrator has: zproject/computed_settings.py
 * assigns it unconditionally after /etc/zulip/settings.py is read (checked in 10.x-12.x).
 */
export const CROSS_REALM_BOT_EMAILS: readonly string[] = [SystemBots.NOTIFICATION_BOT.email, SystemBots.WELCOME_BOT.email, SystemBots.EMAIL_GATEWAY_BOT.email];

/** settings.SYSTEM_BOT_REALM's default, and the name create_internal_realm gives it. */
export const SYSTEM_BOT_REALM = "zulipinternal";
export const SYSTEM_BOT_REALM_NAME = "System bot realm";

/** UserTopic.VisibilityPolicy */
export const VisibilityPolicy = { INHERIT: 0, MUTED: 1, UNMUTED: 2, FOLLOWED: 3 } as const;

/** ScheduledEmail.type */
export const ScheduledEmailType = { WELCOME: 1, DIGEST: 2, INVITATION_REMINDER: 3 } as const;

/** zerver/lib/stream_color.py's fallback colour of a new Subscription. */
const DEFAULT_SUBSCRIPTION_COLOR = "#c2c2c2";

/** A Subscription row with the model's defaults (is_user_active copied from the user). */
export function subscriptionValues(
  recipientId: number,
  userId: number,
  isUserActive: boolean,
  color: string = DEFAULT_SUBSCRIPTION_COLOR,
): Record<string, unknown> {
  return {
    active: true,
    is_user_active: isUserActive,
    is_muted: false,
    color,
    pin_to_top: false,
    desktop_notifications: null,
    audible_notifications: null,
    push_notifications: null,
    email_notifications: null,
    wildcard_mentions_notify: null,
    recipient_id: recipientId,
    user_profile_id: userId,
  };
}
