// Channels (streams): finding archived channels by their old names, un-archiving them as
// do_unarchive_stream does (zerver/actions/streams.py), and the Notification Bot notices Zulip
// posts into channels (the unarchive notice in the channel's "channel events" topic, the
// "<user> joined this organization." signup announcement), written as do_send_messages writes
// them (src/zulip/actions/message-send.ts sendMessage) with the Markdown rendering Zulip's server produces.
//
// A notice is only written when its rendering is certain: English organizations (Zulip
// translates the topic and text into the organization's language), names made of letters,
// digits, spaces and a few plain punctuation marks (anything that Zulip's Markdown could turn
// into formatting or a different link is left alone), no linkifier of the organization that
// matches the text or whose pattern is not translated (linkifierRefusal), and Zulip 12
// databases (older releases word and route these notices differently). Otherwise no message is
// written and the result says why, so the caller can tell the user.
import { AuditLogEventType, insertAuditLog } from "../audit.js";
import { type CacheInvalidation, cacheKeys } from "../cache.js";
import { sendMessage } from "./message-send.js";
import { escapeMarkdownText } from "../templates/html.js";
import { MAX_CHANNEL_NAME_LENGTH, SYSTEM_BOT_REALM, SystemBots, TopicsPolicy } from "../models.js";
import { canAccessStreamMetadataUserIds, sendStreamCreationEvent } from "../events/channel-events.js";
import { type Db, hasColumn, type Queryable } from "../../db/db.js";
import { CommandError, errorCode, errorMessage } from "../../lib/errors.js";
import { parsePythonInt } from "../lookup.js";
import { FL, type Notify } from "../../services/events.js";
import { messageEventEnv, sendChannelMessageEvents } from "../events/message-events.js";
import type { ZulipSettings } from "../../config/settings.js";
import { linkifierMatching, realmLinkifiers } from "../linkifiers.js";

/** What the notices need to send their message events: where, the release, the server's settings. */
export interface NoticeEvents {
  notify: Notify;
  featureLevel: number;
  settings: ZulipSettings;
}

/** Stream.MAX_NAME_LENGTH */
const NOTIFICATION_BOT = SystemBots.NOTIFICATION_BOT.email;

export interface ChannelRow {
  id: number;
  name: string;
  realm_id: number;
  deactivated: boolean;
  invite_only: boolean;
  is_web_public: boolean;
  recipient_id: number;
  [column: string]: any;
}

function codePoints(s: string): string[] {
  return [...s];
}

/**
 * deactivated_streams_by_old_name(realm, name): archived channels of the realm named `name`,
 * or renamed the way archiving used to rename them: 7 characters, "!DEACTIVATED:" and the
 * first 40 characters of the name (matched as a PostgreSQL regular expression, unescaped, as
 * Django's name__regex does), or 1–20 "!" + "DEACTIVATED:" + name cut to 60 characters.
 */
async function deactivatedChannelsByOldName(q: Queryable, realmId: number, name: string): Promise<ChannelRow[]> {
  const prefix = ".......!DEACTIVATED:";
  const truncated = codePoints(name)
    .slice(0, MAX_CHANNEL_NAME_LENGTH - codePoints(prefix).length)
    .join("");
  const oldNames: string[] = [];
  for (let bangs = 1; bangs <= 20; bangs++) {
    oldNames.push(
      codePoints("!".repeat(bangs) + "DEACTIVATED:" + name)
        .slice(0, MAX_CHANNEL_NAME_LENGTH)
        .join(""),
    );
  }
  const { rows } = await q.query(
    `SELECT * FROM zerver_stream
      WHERE realm_id = $1 AND deactivated AND (name = $2 OR name ~ $3 OR name = ANY($4::text[]))
      ORDER BY id`,
    [realmId, name, `^${prefix}${truncated}`, oldNames],
  );
  return rows as ChannelRow[];
}

/** str(event_time) of the channel's latest CHANNEL_DEACTIVATED row (Python's format, UTC), if any. */
export async function lastDeactivation(q: Queryable, realmId: number, channelId: number): Promise<string | null> {
  const { rows } = await q.query(
    `SELECT to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS s, to_char(event_time AT TIME ZONE 'UTC', 'US') AS us
       FROM zerver_realmauditlog WHERE realm_id = $1 AND modified_stream_id = $2 AND event_type = $3 ORDER BY id DESC LIMIT 1`,
    [realmId, channelId, AuditLogEventType.CHANNEL_DEACTIVATED],
  );
  if (!rows.length) return null;
  return `${rows[0].s}${rows[0].us === "000000" ? "" : "." + rows[0].us}+00:00`;
}

// ---------------------------------------------------------------------------------------------
// Markdown rendering of the notices

/** Python's urllib.parse.quote(s, safe=""): UTF-8 percent-encoding of all but [A-Za-z0-9_.~-]. */
function pyQuote(s: string): string {
  let out = "";
  for (const byte of Buffer.from(s, "utf8")) {
    const ch = String.fromCharCode(byte);
    out += /[A-Za-z0-9_.~-]/.test(ch) ? ch : "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/** zerver/lib/url_encoding.py hash_util_encode (the web app's encodeHashComponent). */
function hashUtilEncode(s: string): string {
  return pyQuote(s).replace(/\./g, "%2E").replace(/%/g, ".");
}

/** encode_stream(): "<id>-<name with spaces as dashes, hash-encoded>". */
function encodeChannel(id: number, name: string): string {
  return `${id}-${hashUtilEncode(name.replace(/ /g, "-"))}`;
}

/** Names whose Markdown rendering we reproduce with certainty inside a channel link. */
function isPlainChannelName(name: string): boolean {
  return /^[\p{L}\p{N}\p{M}](?:[\p{L}\p{N}\p{M} -]*[\p{L}\p{N}\p{M}])?$/u.test(name) && !/ {2}/.test(name);
}

/** Full names whose silent-mention rendering we reproduce with certainty. */
function isPlainUserName(name: string): boolean {
  return /^[\p{L}\p{N}\p{M}](?:[\p{L}\p{N}\p{M} .,'()-]*[\p{L}\p{N}\p{M}.)])?$/u.test(name) && !/ {2}/.test(name);
}

/** Languages whose notices are the English text (Zulip's en and en-GB catalogs). */
function isEnglish(language: string | null | undefined): boolean {
  const l = (language ?? "en").toLowerCase().replace("_", "-");
  return l === "en" || l === "en-gb";
}

/** StreamPattern: `#**name**` for a channel the sender can read. */
function renderChannelLink(id: number, name: string): string {
  return `<a class="stream" data-stream-id="${id}" href="/#narrow/channel/${encodeChannel(id, name)}">#${escapeMarkdownText(name)}</a>`;
}

/** UserMentionPattern, silent: `@_**Full Name|id**`. */
function renderSilentMention(id: number, fullName: string): string {
  return `<span class="user-mention silent" data-user-id="${id}">${escapeMarkdownText(fullName)}</span>`;
}

/** Python-Markdown's inline placeholder for the first element it stashes (util.INLINE_PLACEHOLDER % "0000"). */
const FIRST_INLINE_PLACEHOLDER = "\u0002klzzwxh:0000\u0003";

/**
 * Why a notice cannot be written because of the organization's linkifiers, or null.
 *
 * Zulip's Markdown applies the linkifiers (inline patterns of priority 45) after the user
 * mention (95) and channel link (85) patterns: by then the notice's `@_**name|id**` or
 * `#**name**` is an element whose text is an AtomicString (no later pattern sees the name) and
 * the paragraph's text holds the inline placeholder in its place, e.g.
 * "Channel \x02klzzwxh:0000\x03 has been unarchived.". A linkifier that matches that text turns
 * part of it into a link (`url_to_a`), which the hand-written rendered_content does not hold:
 * the notice is then not written rather than written wrong. The raw Markdown text is tested too
 * (belt and braces: it can only refuse more). A pattern zulip-manage does not translate may or
 * may not match: the notice is not written either (linkifierMatching).
 */
async function linkifierRefusal(q: Queryable, realmId: number, content: string, paragraph: string): Promise<string | null> {
  const found = linkifierMatching(await realmLinkifiers(q, realmId), [paragraph, content]);
  if (found === null) return null;
  if (found.why === "matches") return `the organization's linkifier ${JSON.stringify(found.pattern)} matches its text, whose link zulip-manage does not render`;
  return `the organization's linkifier ${JSON.stringify(found.pattern)} has ${found.why}, which zulip-manage does not translate from re2, so whether it links part of the text is not known`;
}

// ---------------------------------------------------------------------------------------------
// Notification Bot notices

export interface NoticeResult {
  /** The message written, or null. */
  messageId: number | null;
  channel: string | null;
  topic: string | null;
  /** Why no message was written although Zulip would write one (null: written, or Zulip writes none either). */
  notWritten: string | null;
  /** Why Zulip itself writes no message here (null when it does). */
  zulipWritesNone: string | null;
  /** UserMessage rows written. */
  recipients: number;
  /** Events of the written message not sent, with the reason. */
  eventsNotSent: string[];
}

const none = (why: { notWritten?: string; zulipWritesNone?: string }): NoticeResult => ({
  messageId: null,
  channel: null,
  topic: null,
  notWritten: why.notWritten ?? null,
  zulipWritesNone: why.zulipWritesNone ?? null,
  recipients: 0,
  eventsNotSent: [],
});

/** get_system_bot(settings.NOTIFICATION_BOT): the Notification Bot of the system bot realm. */
async function notificationBotId(q: Queryable, systemBotRealm = SYSTEM_BOT_REALM): Promise<number | null> {
  const { rows } = await q.query(
    `SELECT u.id FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id
      WHERE r.string_id = $1 AND upper(u.delivery_email) = upper($2)`,
    [systemBotRealm, NOTIFICATION_BOT],
  );
  return rows.length ? Number(rows[0].id) : null;
}

/** get_stream_topics_policy(realm, stream) */
function effectiveTopicsPolicy(channelPolicy: number | null, realmPolicy: number | null): number {
  if (channelPolicy === null || channelPolicy === TopicsPolicy.INHERIT) return realmPolicy ?? TopicsPolicy.ALLOW_EMPTY_TOPIC;
  return channelPolicy;
}

/**
 * internal_send_stream_message from Notification Bot: the Message (client "Internal", realm =
 * the channel's realm) and its UserMessage rows. Returns null (like Zulip, which logs the error
 * and sends nothing) when the channel's topic policy forbids the topic.
 */
async function sendNotificationBotMessage(
  q: Queryable,
  o: {
    channelId: number;
    topic: string;
    content: string;
    rendered: string;
    hasLink: boolean;
    when?: Date;
    events?: NoticeEvents;
    possiblyMentionedUserIds?: number[];
  },
): Promise<{ id: number; recipients: number; eventsNotSent: string[] } | { refused: string }> {
  const bot = await notificationBotId(q);
  if (bot === null) return { refused: `the Notification Bot account (${NOTIFICATION_BOT}) does not exist` };
  const { rows } = await q.query(
    `SELECT s.topics_policy AS channel_policy, r.topics_policy AS realm_policy
       FROM zerver_stream s JOIN zerver_realm r ON r.id = s.realm_id WHERE s.id = $1`,
    [o.channelId],
  );
  const policy = effectiveTopicsPolicy(rows[0]?.channel_policy ?? null, rows[0]?.realm_policy ?? null);
  if (policy === TopicsPolicy.DISABLE_EMPTY_TOPIC && o.topic === "") return { refused: "the channel does not allow messages without a topic" };
  if (policy === TopicsPolicy.EMPTY_TOPIC_ONLY && o.topic !== "") return { refused: "the channel only allows messages without a topic" };
  const { rows: ra } = await q.query("SELECT is_recently_active FROM zerver_stream WHERE id = $1", [o.channelId]);
  const wasRecentlyActive = Boolean(ra[0].is_recently_active);
  const sent = await sendMessage(q, {
    senderId: bot,
    to: { channelId: o.channelId, topic: o.topic },
    content: o.content,
    renderedContent: o.rendered,
    hasLink: o.hasLink,
    client: "Internal",
    ...(o.when ? { dateSent: o.when } : {}),
  });
  const { rows: n } = await q.query("SELECT count(*)::int AS n FROM zerver_usermessage WHERE message_id = $1", [sent.id]);
  const eventsNotSent: string[] = [];
  if (o.events) {
    const env = messageEventEnv(o.events.settings, o.events.notify.realm.string_id);
    if (env === null) eventsNotSent.push(`the message event of message ${sent.id}: the server's settings could not be read`);
    else {
      eventsNotSent.push(
        ...(await sendChannelMessageEvents(q, o.events.notify, {
          messageId: sent.id,
          wasRecentlyActive,
          possiblyMentionedUserIds: o.possiblyMentionedUserIds,
          featureLevel: o.events.featureLevel,
          env,
        })),
      );
    }
  }
  return { id: sent.id, recipients: n[0].n, eventsNotSent };
}

/**
 * maybe_send_channel_events_notice(notification_bot, channel, "Channel #**<name>** has been
 * unarchived."): posted only when the organization has send_channel_events_messages on, into
 * the "channel events" topic (the empty topic for channels that only allow it).
 */
async function sendUnarchiveNotice(q: Queryable, channelId: number, opts: { when?: Date; events?: NoticeEvents } = {}): Promise<NoticeResult> {
  if (!(await hasColumn(q, "zerver_realm", "send_channel_events_messages"))) {
    return none({
      notWritten: "Zulip releases before 12.0 post a Notification Bot message about the unarchiving, worded and routed differently; it was not written",
    });
  }
  const { rows } = await q.query(
    `SELECT s.id, s.name, s.realm_id, s.invite_only, s.topics_policy, r.send_channel_events_messages AS send, r.default_language
       FROM zerver_stream s JOIN zerver_realm r ON r.id = s.realm_id WHERE s.id = $1`,
    [channelId],
  );
  const c = rows[0];
  if (!c.send) return none({ zulipWritesNone: "the organization has channel event messages turned off" });
  const why = (reason: string) => none({ notWritten: `Notification Bot's "Channel #**${c.name}** has been unarchived." message was not written: ${reason}` });
  if (!isEnglish(c.default_language)) return why(`Zulip would write it in the organization's language (${c.default_language})`);
  if (!isPlainChannelName(c.name)) return why("the channel name contains characters whose Markdown rendering zulip-manage does not reproduce");
  if (c.invite_only) return why("links to private channels render depending on Notification Bot's access, which zulip-manage does not reproduce");
  const topic = Number(c.topics_policy) === TopicsPolicy.EMPTY_TOPIC_ONLY ? "" : "channel events";
  const content = `Channel #**${c.name}** has been unarchived.`;
  const linkified = await linkifierRefusal(q, Number(c.realm_id), content, `Channel ${FIRST_INLINE_PLACEHOLDER} has been unarchived.`);
  if (linkified) return why(linkified);
  const rendered = `<p>Channel ${renderChannelLink(Number(c.id), c.name)} has been unarchived.</p>`;
  const sent = await sendNotificationBotMessage(q, {
    channelId,
    topic,
    content,
    rendered,
    hasLink: true,
    ...(opts.when ? { when: opts.when } : {}),
    events: opts.events,
  });
  if ("refused" in sent) return none({ zulipWritesNone: `${sent.refused} (Zulip logs this and sends nothing)` });
  return {
    messageId: sent.id,
    channel: c.name,
    topic,
    notWritten: null,
    zulipWritesNone: null,
    recipients: sent.recipients,
    eventsNotSent: sent.eventsNotSent,
  };
}

/**
 * notify_new_user(user): when the organization has a signup announcements channel and the new
 * user is not its only active human, Notification Bot posts "@_**<name>|<id>** joined this
 * organization." into its "signups" topic.
 */
export async function sendSignupAnnouncement(q: Queryable, userId: number, opts: { when?: Date; events?: NoticeEvents } = {}): Promise<NoticeResult> {
  const { rows } = await q.query(
    `SELECT u.id, u.full_name, u.realm_id, r.signup_announcements_stream_id AS channel_id, r.default_language,
            (SELECT count(*)::int FROM (SELECT 1 FROM zerver_userprofile x WHERE x.realm_id = u.realm_id AND x.is_active AND NOT x.is_bot LIMIT 2) h) AS humans
       FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id WHERE u.id = $1`,
    [userId],
  );
  const u = rows[0];
  // realm_user_count(realm) == 1; counting to two is enough to tell (a realm can have 50,000).
  if (u.humans === 1) return none({ zulipWritesNone: "the user is the organization's first user" });
  if (u.channel_id === null) return none({ zulipWritesNone: "the organization has no signup announcements channel" });
  const { rows: ch } = await q.query("SELECT * FROM zerver_stream WHERE id = $1", [u.channel_id]);
  const why = (reason: string) =>
    none({ notWritten: `Notification Bot's "${u.full_name} joined this organization." announcement in #${ch[0]?.name ?? "?"} was not written: ${reason}` });
  if (!(await hasColumn(q, "zerver_realm", "send_channel_events_messages"))) return why("only Zulip 12 databases are supported for it");
  if (!isEnglish(u.default_language)) return why(`Zulip would write it in the organization's language (${u.default_language})`);
  if (!isPlainUserName(u.full_name)) return why("the name contains characters whose Markdown rendering zulip-manage does not reproduce");
  const content = `@_**${u.full_name}|${u.id}** joined this organization.`;
  const linkified = await linkifierRefusal(q, Number(u.realm_id), content, `${FIRST_INLINE_PLACEHOLDER} joined this organization.`);
  if (linkified) return why(linkified);
  const rendered = `<p>${renderSilentMention(Number(u.id), u.full_name)} joined this organization.</p>`;
  // send_message_to_signup_notification_stream (12.x): the empty topic in a channel that allows only that.
  const topic = Number(ch[0].topics_policy) === TopicsPolicy.EMPTY_TOPIC_ONLY ? "" : "signups";
  const sent = await sendNotificationBotMessage(q, {
    channelId: Number(u.channel_id),
    topic,
    content,
    rendered,
    hasLink: false,
    ...(opts.when ? { when: opts.when } : {}),
    events: opts.events,
    // MentionData.get_user_ids(): the silently mentioned new user.
    possiblyMentionedUserIds: [Number(u.id)],
  });
  if ("refused" in sent) return none({ zulipWritesNone: `${sent.refused} (Zulip logs this and sends nothing)` });
  return {
    messageId: sent.id,
    channel: ch[0].name,
    topic,
    notWritten: null,
    zulipWritesNone: null,
    recipients: sent.recipients,
    eventsNotSent: sent.eventsNotSent,
  };
}

// ---------------------------------------------------------------------------------------------
// Unarchiving

export interface UnarchiveResult {
  channelId: number;
  oldName: string;
  newName: string;
  auditLogId: number;
  /** is_web_public was cleared (a private channel archived as web-public, Zulip's repair). */
  webPublicCleared: boolean;
  channelEmailAddressesReactivated: number;
  attachmentsReset: number;
  archivedAttachmentsReset: number;
  notice: NoticeResult;
}

/** Errors do_unarchive_stream raises (JsonableError in Zulip). */
class UnarchiveError extends Error {}

/**
 * do_unarchive_stream(channel, new_name, acting_user=None) on a locked channel row: the channel
 * active again under `newName` (is_web_public cleared for private channels), its email
 * addresses reactivated, the is_realm_public / is_web_public caches of attachments (and archived
 * attachments) on its messages reset to NULL, the CHANNEL_REACTIVATED row, and the Notification
 * Bot notice. Caches: the channel's display recipient, its messages' message_dict entries and
 * the channel lookup keys of both names.
 */
async function unarchiveChannel(
  q: Queryable,
  channel: ChannelRow,
  newName: string,
  opts: { cache?: CacheInvalidation; now?: Date; notify?: Notify; featureLevel?: number; settings?: ZulipSettings } = {},
): Promise<UnarchiveResult> {
  const now = opts.now ?? new Date();
  const { rows: subs } = await q.query(`SELECT count(*)::int AS n FROM zerver_subscription WHERE recipient_id = $1 AND active`, [channel.recipient_id]);
  if (!channel.deactivated) throw new UnarchiveError("Channel is not currently deactivated");
  if (channel.name !== newName) {
    const { rows } = await q.query("SELECT 1 FROM zerver_stream WHERE realm_id = $1 AND name = $2", [channel.realm_id, newName]);
    if (rows.length) throw new UnarchiveError(`Channel named ${newName} already exists`);
  }
  if (channel.invite_only && subs[0].n === 0) throw new UnarchiveError("Channel is private and have no subscribers");

  const webPublicCleared = Boolean(channel.invite_only && channel.is_web_public);
  await q.query("UPDATE zerver_stream SET deactivated = false, name = $2, is_web_public = $3 WHERE id = $1", [
    channel.id,
    newName,
    webPublicCleared ? false : channel.is_web_public,
  ]);
  let emails = 0;
  if (await hasColumn(q, "zerver_channelemailaddress", "deactivated")) {
    const r = await q.query("UPDATE zerver_channelemailaddress SET deactivated = false WHERE realm_id = $1 AND channel_id = $2", [
      channel.realm_id,
      channel.id,
    ]);
    emails = r.rowCount ?? 0;
  }
  const att = await q.query(
    `UPDATE zerver_attachment SET is_web_public = NULL, is_realm_public = NULL
      WHERE id IN (SELECT am.attachment_id FROM zerver_attachment_messages am JOIN zerver_message m ON m.id = am.message_id
                    WHERE m.recipient_id = $1)`,
    [channel.recipient_id],
  );
  const archived = await q.query(
    `UPDATE zerver_archivedattachment SET is_web_public = NULL, is_realm_public = NULL
      WHERE id IN (SELECT am.archivedattachment_id FROM zerver_archivedattachment_messages am
                     JOIN zerver_archivedmessage m ON m.id = am.archivedmessage_id WHERE m.recipient_id = $1)`,
    [channel.recipient_id],
  );
  const [auditLogId] = await insertAuditLog(q, [
    { realmId: channel.realm_id, eventType: AuditLogEventType.CHANNEL_REACTIVATED, eventTime: now, actingUserId: null, modifiedStreamId: channel.id },
  ]);
  if (opts.cache) {
    const { rows: msgs } = await q.query("SELECT id FROM zerver_message WHERE realm_id = $1 AND recipient_id = $2", [channel.realm_id, channel.recipient_id]);
    opts.cache.addKeys(
      [
        cacheKeys.displayRecipient(channel.recipient_id),
        cacheKeys.streamByRealmAndName(channel.name, channel.realm_id),
        cacheKeys.streamByRealmAndName(newName, channel.realm_id),
        ...msgs.map((m) => cacheKeys.messageDict(Number(m.id))),
      ],
      `channel '${newName}' (id ${channel.id}) and its messages`,
    );
  }
  const n = opts.notify;
  if (n) {
    // Zulip 11.x / 12.x (do_unarchive_stream, FL >= 378): to can_access_stream_metadata_user_ids
    // of the now active channel, {"type": "stream", "op": "update", "property": "is_archived",
    // "value": false, "stream_id", "name"} (Tornado gives it to clients with the
    // archived_channels capability), then send_stream_creation_event(..., recent_traffic,
    // for_unarchiving=True) (to the others, which had dropped the channel), then the notice.
    // 10.x archived channels with a `stream` `delete` to everyone and had no is_archived update;
    // its do_unarchive_stream (not in the index: read in its 9.x form) made the channel
    // private and sent the create to admins only. zulip-manage unarchives as 11.x does on every
    // release, so on 10.x it sends the create a 10.x client understands (no for_unarchiving,
    // which a 10.x Tornado would pass on) to the users who can see the channel.
    const level = opts.featureLevel ?? FL.ARCHIVED_CHANNEL_EVENTS;
    const users = await canAccessStreamMetadataUserIds(q, {
      id: channel.id,
      realm_id: channel.realm_id,
      invite_only: channel.invite_only,
      recipient_id: channel.recipient_id,
    });
    if (level >= FL.ARCHIVED_CHANNEL_EVENTS) {
      n.events.send(
        n.realm,
        { type: "stream", op: "update", stream_id: Number(channel.id), name: newName, property: "is_archived", value: false },
        users,
        n.what,
      );
    }
    await sendStreamCreationEvent(q, n, { id: Number(channel.id), realm_id: Number(channel.realm_id) }, users, {
      traffic: true,
      forUnarchiving: true,
      featureLevel: level,
    });
  }
  const notice = await sendUnarchiveNotice(q, channel.id, {
    when: now,
    ...(n && opts.settings ? { events: { notify: n, featureLevel: opts.featureLevel ?? FL.ARCHIVED_CHANNEL_EVENTS, settings: opts.settings } } : {}),
  });
  return {
    channelId: channel.id,
    oldName: channel.name,
    newName,
    auditLogId,
    webPublicCleared,
    channelEmailAddressesReactivated: emails,
    attachmentsReset: att.rowCount ?? 0,
    archivedAttachmentsReset: archived.rowCount ?? 0,
    notice,
  };
}

// ---------------------------------------------------------------------------------------------
// Lookups for unarchive_channel

/** The channel with this id (any realm), or null. */
async function channelById(q: Queryable, id: number): Promise<ChannelRow | null> {
  if (!Number.isSafeInteger(id) || Math.abs(id) > 2147483647) return null;
  const { rows } = await q.query("SELECT * FROM zerver_stream WHERE id = $1", [id]);
  return rows.length ? (rows[0] as ChannelRow) : null;
}

/** The channel row, locked for the unarchiving transaction (null: deleted meanwhile). */
async function lockChannel(q: Queryable, id: number): Promise<ChannelRow | null> {
  const { rows } = await q.query("SELECT * FROM zerver_stream WHERE id = $1 FOR NO KEY UPDATE", [id]);
  return rows.length ? (rows[0] as ChannelRow) : null;
}

/** A realm's string_id. */
async function realmStringId(q: Queryable, realmId: number): Promise<string> {
  const { rows } = await q.query("SELECT string_id FROM zerver_realm WHERE id = $1", [realmId]);
  return rows[0].string_id;
}

/** Another channel of the realm already has this name (case-insensitively). */
async function channelNameTaken(q: Queryable, realmId: number, name: string, exceptId: number): Promise<boolean> {
  const { rows } = await q.query("SELECT 1 FROM zerver_stream WHERE realm_id = $1 AND upper(name) = upper($2) AND id <> $3", [realmId, name, exceptId]);
  return rows.length > 0;
}

// ---------------------------------------------------------------------------------------------
// manage.py unarchive_channel's checks, and do_unarchive_stream in a transaction of its own

/** --channel-id: the archived channel of the realm with that id, or manage.py's CommandError. */
export async function archivedChannelById(q: Queryable, realm: { id: number; string_id: string }, idText: string): Promise<ChannelRow> {
  const id = parsePythonInt(idText);
  const channel = id === null ? null : await channelById(q, id);
  if (!channel) throw new CommandError(`There is no channel with id '${idText}'.`);
  if (Number(channel.realm_id) !== Number(realm.id)) {
    throw new CommandError(
      `Channel id ${channel.id}, named '${channel.name}', is in realm '${await realmStringId(q, channel.realm_id)}', not '${realm.string_id}'`,
    );
  }
  if (!channel.deactivated) throw new CommandError(`Channel id ${channel.id}, named '${channel.name}', is not deactivated`);
  return channel;
}

/** -c: deactivatedChannelsByOldName, a name PostgreSQL cannot use as a regular expression refused with a CommandError. */
export async function archivedChannelsByName(q: Queryable, realmId: number, name: string): Promise<ChannelRow[]> {
  try {
    return await deactivatedChannelsByOldName(q, realmId, name);
  } catch (e) {
    if (errorCode(e) === "2201B") {
      throw new CommandError(
        `The channel name '${name}' is not usable as a pattern (Zulip matches old archived names with a regular expression): ${errorMessage(e)}. Use --channel-id instead.`,
      );
    }
    throw e;
  }
}

/** The checks of the name the channel comes back under (no other channel has it; check_stream_name), as CommandErrors. */
export async function checkUnarchiveName(q: Queryable, realmId: number, channelId: number, newName: string): Promise<void> {
  if (await channelNameTaken(q, realmId, newName, channelId))
    throw new CommandError(`Channel with name '${newName}' already exists; pass a different --new-name`);
  if ([...newName].length > MAX_CHANNEL_NAME_LENGTH) throw new CommandError(`Channel name too long (limit: ${MAX_CHANNEL_NAME_LENGTH} characters).`);
  if (newName.trim() === "") throw new CommandError(`Invalid channel name '${newName}'`);
}

/**
 * do_unarchive_stream(channel, new_name, acting_user=None) in its own transaction: the channel
 * row locked and re-read, unarchiveChannel; its refusals (and a channel deleted meanwhile) as
 * CommandErrors. The events are staged on opts.notify.events and the cache keys on opts.cache
 * (marked committed); the caller delivers both.
 */
export async function doUnarchiveStream(
  db: Db,
  channelId: number,
  newName: string,
  opts: { cache: CacheInvalidation; notify: Notify; featureLevel: number; settings: ZulipSettings },
): Promise<UnarchiveResult> {
  let r: UnarchiveResult;
  try {
    r = await opts.notify.events.tx(db, async (q) => {
      const locked = await lockChannel(q, channelId);
      if (!locked) throw new CommandError("The channel was deleted while this command ran; nothing was changed.");
      return unarchiveChannel(q, locked, newName, opts);
    });
  } catch (e) {
    if (e instanceof UnarchiveError) throw new CommandError(e.message);
    throw e;
  }
  opts.cache.changeCommitted();
  return r;
}
