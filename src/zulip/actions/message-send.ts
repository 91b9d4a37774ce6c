// The database part of do_send_messages (zerver/actions/message_send.py) for plain messages, in
// the caller's transaction: the Message row, one UserMessage row per recipient with Zulip's flags,
// direct message groups (get_or_create_direct_message_group) and the Recipient of a DM as each
// release picks it, and the channel's first_message_id / is_recently_active. Used by the
// signup announcement (channels.ts) and the seed builder. Messages are rendered by plain-markdown.ts's
// stand-in; events are the caller's.
import type { Queryable } from "../../db/db.js";
import { crypto } from "../../lib/builtins.js";
import { getOrCreateClient } from "../clients.js";
import { renderPlainMarkdown } from "../plain-markdown.js";
import { MessageType, RecipientType, subscriptionValues, SYSTEM_BOT_REALM, UserMessageFlag, VisibilityPolicy } from "../models.js";
import { databaseSeries, hasPersonalRecipients, insertRow, insertRows } from "../rows.js";

/** Message.sent_by_human(): the sender's own UserMessage row is marked read only for these clients. */
const HUMAN_CLIENTS = new Set([
  "zulipandroid",
  "zulipios",
  "zulipdesktop",
  "zulipmobile",
  "zulipelectron",
  "zulipterminal",
  "snipe",
  "website",
  "ios",
  "android",
]);

/** get_last_message_id(): the server-wide max message id, -1 when there are no messages. */
export async function lastMessageId(db: Queryable): Promise<number> {
  const { rows } = await db.query(`SELECT max(id) AS id FROM zerver_message`);
  return rows[0].id === null ? -1 : Number(rows[0].id);
}

/** huddle_hash: sha1 of the sorted, de-duplicated, comma-joined user ids. */
function directMessageGroupHash(userIds: number[]): string {
  const ids = [...new Set(userIds)].sort((a, b) => a - b);
  return crypto().createHash("sha1").update(ids.join(",")).digest("hex");
}

/**
 * get_or_create_direct_message_group: zerver_huddle + type-3 recipient + one subscription per
 * participant. Zulip 12 sends every DM (1:1 and self-DMs too) through one of these; before,
 * only conversations of three or more users (see directMessageRecipient).
 */
export async function getOrCreateDirectMessageGroup(db: Queryable, userIds: number[]): Promise<{ id: number; recipientId: number; created: boolean }> {
  const ids = [...new Set(userIds)].sort((a, b) => a - b);
  const hash = directMessageGroupHash(ids);
  const found = await db.query(`SELECT id, recipient_id FROM zerver_huddle WHERE huddle_hash = $1`, [hash]);
  if (found.rows.length) return { id: Number(found.rows[0].id), recipientId: Number(found.rows[0].recipient_id), created: false };
  const h = await db.query(`INSERT INTO zerver_huddle (huddle_hash, group_size) VALUES ($1, $2) RETURNING id`, [hash, ids.length]);
  const huddleId = Number(h.rows[0].id);
  const r = await db.query(`INSERT INTO zerver_recipient (type_id, type) VALUES ($1, $2) RETURNING id`, [huddleId, RecipientType.DIRECT_MESSAGE_GROUP]);
  const recipientId = Number(r.rows[0].id);
  await db.query(`UPDATE zerver_huddle SET recipient_id = $2 WHERE id = $1`, [huddleId, recipientId]);
  const users = await db.query(`SELECT id, is_active FROM zerver_userprofile WHERE id = ANY($1::int[]) ORDER BY id`, [ids]);
  await insertRows(
    db,
    "zerver_subscription",
    users.rows.map((u) => subscriptionValues(recipientId, Number(u.id), u.is_active)),
    null,
  );
  return { id: huddleId, recipientId, created: true };
}

/**
 * The Recipient of a direct message among `userIds` (the sender included). Zulip 12 sends every
 * DM to a DM group. Before 12.0 (personal recipients exist), a 1:1 or self DM went to the other
 * user's (for a self DM, the sender's) personal recipient; only conversations of three or more
 * created DM groups. Zulip 11 (zulip/zulip#34307, May 2025) first used a DM group that already
 * existed for the pair; Zulip 10 always used the personal recipient.
 */
async function directMessageRecipient(db: Queryable, senderId: number, userIds: number[]): Promise<{ recipientId: number; type: number }> {
  const ids = [...new Set([senderId, ...userIds])];
  if (ids.length <= 2 && (await hasPersonalRecipients(db))) {
    if ((await databaseSeries(db)) !== "10.x") {
      const found = await db.query(`SELECT recipient_id FROM zerver_huddle WHERE huddle_hash = $1`, [directMessageGroupHash(ids)]);
      if (found.rows.length) return { recipientId: Number(found.rows[0].recipient_id), type: RecipientType.DIRECT_MESSAGE_GROUP };
    }
    const other = ids.find((id) => id !== senderId) ?? senderId;
    const { rows } = await db.query(`SELECT recipient_id FROM zerver_userprofile WHERE id = $1`, [other]);
    if (!rows.length || rows[0].recipient_id === null) throw new Error(`user ${other} has no personal recipient`);
    return { recipientId: Number(rows[0].recipient_id), type: RecipientType.PERSONAL };
  }
  return { recipientId: (await getOrCreateDirectMessageGroup(db, ids)).recipientId, type: RecipientType.DIRECT_MESSAGE_GROUP };
}

export interface SendMessageOptions {
  senderId: number;
  /** A channel message (topic ≤ 60 chars) or a DM to these users (the sender is added). */
  to: { channelId: number; topic: string } | { userIds: number[] };
  content: string;
  renderedContent?: string;
  dateSent?: Date;
  /** Sending client name; default "website" for humans, "Internal" for bots. */
  client?: string;
  /** Users whose row gets the "mentioned" flag. */
  mentionedUserIds?: number[];
  /** Message.has_link as Zulip's Markdown sets it (any <a href> in the rendering); default: a URL in the content. */
  hasLink?: boolean;
}
const ALERT_WORD_BEFORE = new Set([" ", "\n", "(", '"', ".", ",", "'", ";", "[", "*", "`", ">"]);
const ALERT_WORD_AFTER = new Set([" ", "\n", ")", '"', "?", ":", ".", ",", "'", ";", "]", "!", "*", "`"]);

/**
 * The users whose alert words occur in `content` (Markdown's AlertWordNotificationProcessor):
 * case-insensitive matches of each word, with Zulip's quirky boundary rules (the character
 * before the word, or the start; the character after it, or the end).
 */
function usersWithAlertWords(content: string, words: { userId: number; word: string }[]): Set<number> {
  const lower = content.toLowerCase();
  const found = new Set<number>();
  for (const { userId, word } of words) {
    const w = word.toLowerCase();
    if (!w || found.has(userId)) continue;
    for (let start = lower.indexOf(w); start >= 0; start = lower.indexOf(w, start + 1)) {
      const end = start + w.length - 1;
      const before = end - w.length;
      const okStart = before <= 0 || ALERT_WORD_BEFORE.has(content[before]);
      const okEnd = end + 1 >= content.length || ALERT_WORD_AFTER.has(content[end + 1]);
      if (okStart && okEnd) {
        found.add(userId);
        break;
      }
    }
  }
  return found;
}

/**
 * The UserMessage rows of a channel message as do_send_messages makes them
 * (get_recipient_info + get_subscriptions_for_send_message + create_user_messages): every active
 * subscriber; long-term-idle ones only when the message is notifiable for them (channel or
 * followed-topic email/push notifications, honouring muted channels and topics) or gets them a
 * flag. Flags: read for users who muted the sender, mentioned, has_alert_word.
 */
async function channelMessageRecipients(
  db: Queryable,
  o: { realmId: number; streamId: number; recipientId: number; topic: string; senderId: number; content: string; mentionedUserIds: Set<number> },
): Promise<{ id: number; flags: number }[]> {
  const subs = (
    await db.query(
      `SELECT u.id, u.long_term_idle, sub.is_muted, sub.push_notifications, sub.email_notifications,
              u.enable_stream_push_notifications AS user_push, u.enable_stream_email_notifications AS user_email,
              u.enable_followed_topic_push_notifications AS followed_push,
              u.enable_followed_topic_email_notifications AS followed_email
         FROM zerver_subscription sub JOIN zerver_userprofile u ON u.id = sub.user_profile_id
        WHERE sub.recipient_id = $1 AND sub.active AND sub.is_user_active AND u.is_active
        ORDER BY u.id`,
      [o.recipientId],
    )
  ).rows;
  const policies = new Map<number, number>(
    (
      await db.query(`SELECT user_profile_id, visibility_policy FROM zerver_usertopic WHERE stream_id = $1 AND upper(topic_name) = upper($2)`, [
        o.streamId,
        o.topic,
      ])
    ).rows.map((r) => [Number(r.user_profile_id), Number(r.visibility_policy)]),
  );
  const alertWords = (await db.query(`SELECT user_profile_id, word FROM zerver_alertword WHERE realm_id = $1`, [o.realmId])).rows.map((r) => ({
    userId: Number(r.user_profile_id),
    word: String(r.word),
  }));
  const withAlertWords = usersWithAlertWords(o.content, alertWords);
  const hasAnyAlertWord = new Set(alertWords.map((a) => a.userId));
  const muting = new Set(
    (await db.query(`SELECT user_profile_id FROM zerver_muteduser WHERE muted_user_id = $1`, [o.senderId])).rows.map((r) => Number(r.user_profile_id)),
  );
  // user_allows_notifications_in_StreamTopic
  const allows = (isMuted: boolean, policy: number, channelSetting: boolean | null, userSetting: boolean) => {
    if (isMuted && policy !== VisibilityPolicy.UNMUTED) return false;
    if (policy === VisibilityPolicy.MUTED) return false;
    return channelSetting !== null ? channelSetting : userSetting;
  };
  const out: { id: number; flags: number }[] = [];
  for (const s of subs) {
    const id = Number(s.id);
    const policy = policies.get(id) ?? VisibilityPolicy.INHERIT;
    if (s.long_term_idle && id !== o.senderId) {
      // get_subscriptions_for_send_message's filter: idle users who cannot need a row are not even read.
      const considered =
        s.push_notifications === true ||
        (s.push_notifications === null && s.user_push) ||
        s.email_notifications === true ||
        (s.email_notifications === null && s.user_email) ||
        o.mentionedUserIds.has(id) ||
        hasAnyAlertWord.has(id) ||
        policy === VisibilityPolicy.FOLLOWED;
      if (!considered) continue;
    }
    let flags = 0;
    if (muting.has(id)) flags |= UserMessageFlag.READ;
    if (o.mentionedUserIds.has(id)) flags |= UserMessageFlag.MENTIONED;
    if (withAlertWords.has(id)) flags |= UserMessageFlag.HAS_ALERT_WORD;
    if (s.long_term_idle && id !== o.senderId && flags === 0) {
      const notifiable =
        allows(s.is_muted, policy, s.push_notifications, s.user_push) ||
        allows(s.is_muted, policy, s.email_notifications, s.user_email) ||
        (policy === VisibilityPolicy.FOLLOWED && (s.followed_push || s.followed_email));
      if (!notifiable) continue;
    }
    out.push({ id, flags });
  }
  return out;
}

/**
 * The database part of do_send_messages for plain messages: the Message row and one UserMessage
 * row per recipient (channel messages: see channelMessageRecipients; every DM participant, with
 * is_private). The sender's row is read when sent from a human client. A channel's
 * first_message_id and is_recently_active are updated as do_send_messages does.
 */
export async function sendMessage(db: Queryable, opts: SendMessageOptions): Promise<{ id: number; recipientId: number }> {
  const sender = (
    await db.query(`SELECT u.id, u.realm_id, u.is_bot, r.string_id FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id WHERE u.id = $1`, [
      opts.senderId,
    ])
  ).rows[0];
  if (!sender) throw new Error(`sender ${opts.senderId} does not exist`);
  const clientName = opts.client ?? (sender.is_bot ? "Internal" : "website");
  const clientId = await getOrCreateClient(db, clientName);
  const dateSent = opts.dateSent ?? new Date();
  let recipientId: number;
  let realmId: number = Number(sender.realm_id);
  let isChannel: boolean;
  let subject = "";
  let recipients: { id: number; flags: number }[];
  let streamId: number | null = null;
  if ("channelId" in opts.to) {
    const s = (await db.query(`SELECT id, realm_id, recipient_id FROM zerver_stream WHERE id = $1`, [opts.to.channelId])).rows[0];
    if (!s) throw new Error(`channel ${opts.to.channelId} does not exist`);
    streamId = Number(s.id);
    recipientId = Number(s.recipient_id);
    realmId = Number(s.realm_id);
    isChannel = true;
    subject = opts.to.topic;
    recipients = await channelMessageRecipients(db, {
      realmId,
      streamId,
      recipientId,
      topic: subject,
      senderId: opts.senderId,
      content: opts.content,
      mentionedUserIds: new Set(opts.mentionedUserIds ?? []),
    });
  } else {
    const ids = [...new Set([opts.senderId, ...opts.to.userIds])];
    recipientId = (await directMessageRecipient(db, opts.senderId, ids)).recipientId;
    isChannel = false;
    if (sender.string_id === SYSTEM_BOT_REALM) {
      const other = await db.query(`SELECT realm_id FROM zerver_userprofile WHERE id = ANY($1::int[]) AND id <> $2 ORDER BY id LIMIT 1`, [ids, opts.senderId]);
      if (other.rows.length) realmId = Number(other.rows[0].realm_id);
    }
    recipients = ids.sort((a, b) => a - b).map((id) => ({ id, flags: UserMessageFlag.IS_PRIVATE }));
  }
  const sentByHuman = HUMAN_CLIENTS.has(clientName.toLowerCase()) || clientName.toLowerCase().includes("desktop app");
  const mentioned = new Set(opts.mentionedUserIds ?? []);
  for (const r of recipients) {
    if (r.id === opts.senderId && sentByHuman) r.flags |= UserMessageFlag.READ;
    if (mentioned.has(r.id)) r.flags |= UserMessageFlag.MENTIONED;
  }
  const m = await insertRow(db, "zerver_message", {
    type: MessageType.NORMAL,
    subject,
    content: opts.content,
    rendered_content: opts.renderedContent ?? renderPlainMarkdown(opts.content),
    rendered_content_version: 1,
    date_sent: dateSent,
    last_edit_time: null,
    edit_history: null,
    has_attachment: false,
    has_image: false,
    has_link: opts.hasLink ?? /https?:\/\//.test(opts.content),
    search_tsvector: null,
    sender_id: opts.senderId,
    sending_client_id: clientId,
    realm_id: realmId,
    recipient_id: recipientId,
    is_channel_message: isChannel,
  });
  const messageId = Number(m.id);
  await insertRows(
    db,
    "zerver_usermessage",
    recipients.map((r) => ({ flags: r.flags, message_id: messageId, user_profile_id: r.id })),
    null,
  );
  if (streamId !== null) {
    await db.query(`UPDATE zerver_stream SET first_message_id = $2 WHERE id = $1 AND first_message_id IS NULL`, [streamId, messageId]);
    await db.query(`UPDATE zerver_stream SET is_recently_active = true WHERE id = $1 AND NOT is_recently_active`, [streamId]);
  }
  return { id: messageId, recipientId };
}
