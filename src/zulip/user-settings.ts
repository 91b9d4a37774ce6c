// UserBaseSettings (zerver/models/users.py): the user settings a RealmUserDefault row holds for
// new users of an organization, with the model's defaults, and what new users do not copy.

import { EmailAddressVisibility } from "./models.js";

/** UserBaseSettings model defaults = a fresh RealmUserDefault row (email_address_visibility varies). */
export const USER_SETTING_DEFAULTS: Record<string, unknown> = {
  enter_sends: false,
  left_side_userlist: false,
  default_language: "en",
  web_home_view: "inbox",
  web_escape_navigates_to_home_view: true,
  fluid_layout_width: false,
  high_contrast_mode: false,
  translate_emoticons: false,
  display_emoji_reaction_users: true,
  twenty_four_hour_time: false,
  starred_message_counts: true,
  color_scheme: 1,
  web_font_size_px: 16,
  web_line_height_percent: 140,
  web_animate_image_previews: "on_hover",
  demote_inactive_streams: 1,
  web_mark_read_on_scroll_policy: 1,
  web_channel_default_view: 1,
  emojiset: "google",
  user_list_style: 3,
  web_stream_unreads_count_display_policy: 2,
  web_navigate_to_sent_message: true,
  email_notifications_batching_period_seconds: 120,
  enable_stream_desktop_notifications: false,
  enable_stream_email_notifications: false,
  enable_stream_push_notifications: false,
  enable_stream_audible_notifications: false,
  notification_sound: "zulip",
  wildcard_mentions_notify: true,
  enable_followed_topic_desktop_notifications: true,
  enable_followed_topic_email_notifications: true,
  enable_followed_topic_push_notifications: true,
  enable_followed_topic_audible_notifications: true,
  enable_followed_topic_wildcard_mentions_notify: true,
  enable_desktop_notifications: true,
  pm_content_in_desktop_notifications: true,
  enable_sounds: true,
  enable_offline_email_notifications: true,
  message_content_in_email_notifications: true,
  enable_offline_push_notifications: true,
  enable_online_push_notifications: true,
  desktop_icon_count_display: 1,
  enable_digest_emails: true,
  enable_login_emails: true,
  enable_marketing_emails: true,
  presence_enabled: true,
  realm_name_in_email_notifications_policy: 1,
  automatically_follow_topics_policy: 3,
  automatically_unmute_topics_in_muted_streams_policy: 2,
  automatically_follow_topics_where_mentioned: true,
  enable_drafts_synchronization: true,
  send_stream_typing_notifications: true,
  send_private_typing_notifications: true,
  send_read_receipts: true,
  receives_typing_notifications: true,
  email_address_visibility: EmailAddressVisibility.EVERYONE,
  allow_private_data_export: false,
  web_suggest_update_timezone: true,
  hide_ai_features: false,
  resolved_topic_notice_auto_read_policy: 2,
  web_left_sidebar_unreads_count_summary: true,
  web_left_sidebar_show_channel_folders: true,
  web_inbox_show_channel_folders: true,
};

/**
 * RealmUserDefault differs from the UserProfile model defaults in one column: a fresh Zulip 12.2
 * server writes allow_private_data_export = true on every RealmUserDefault row (both realms of
 * the reference install), while every user (bots and the signed-up owner alike) has false.
 */
export const REALM_USER_DEFAULT_OVERRIDES: Record<string, unknown> = { allow_private_data_export: true };

/**
 * Settings new users do not take from RealmUserDefault: copy_default_settings() skips
 * default_language and enable_login_emails; allow_private_data_export (export consent) is not
 * inherited either (observed on the reference install: realm default true, new owner false).
 */
export const NOT_COPIED_FROM_REALM_DEFAULTS = new Set(["id", "realm_id", "default_language", "enable_login_emails", "allow_private_data_export"]);
