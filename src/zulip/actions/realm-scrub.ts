// scrub_realms, the last step of Zulip's archive_messages cron job
// (zerver/management/commands/archive_messages.py):
//
//   clean_deactivated_realm_data()      # do_scrub_realm for deactivated realms past scheduled_deletion_date
//   delete_expired_demo_organizations() # do_deactivate_realm for demo organizations past their date
//
// (zerver/actions/realm_settings.py, read in the search index: zulip/zulip main and an older copy
// of the file from the 11.x era — do_deactivate_realm, delete_expired_demo_organizations and
// demo_organization_owner_email_exists are the same in both; do_scrub_realm is not.)
//
// Not reproduced: main's email passes is_demo_organization, and its HTML part then says "Your
// Zulip demo organization, …"; the older copy has no such variant, and which release got it could
// not be established, so the email is the one deactivate_realm sends (deactivate-realm.ts).
//
// delete_expired_demo_organizations is done here, exactly: for each active realm whose
// demo_organization_scheduled_deletion_date has passed (id order), one transaction with the realm
// row locked runs do_deactivate_realm(acting_user=None, deactivation_reason="demo_expired",
// deletion_delay_days=0, email_owners=demo_organization_owner_email_exists(realm)):
// deactivated=true, scheduled_deletion_date=now, the REALM_DEACTIVATED audit row (ROLE_COUNT,
// reason), maybe_enqueue_audit_log_upload, the realm's ScheduledEmail rows deleted, the
// {"type": "realm", "op": "deactivated"} event to its active users, and — because the delay is
// 0 — the deferred_work job {"type": "scrub_deactivated_realm", "realm_id"}: Zulip's deferred_work
// worker then scrubs the organization (scrub_deactivated_realm → do_scrub_realm). Zulip publishes
// that job with queue_json_publish_rollback_unsafe (during the transaction); we publish it after
// the COMMIT, in the same order, so a rolled-back deactivation never queues a scrub. Then, outside
// the transaction like Zulip: the users' sessions are deleted (delete_realm_user_sessions), and
// the human owners get the "organization deactivated" email with data_already_deleted=True when
// any of them has a non-empty delivery_email (demo_organization_owner_email_exists).
//
// clean_deactivated_realm_data (deactivated realms whose scheduled_deletion_date has passed, id
// order) runs scrub_deactivated_realm → do_scrub_realm(realm, acting_user=None) for each; see
// doScrubRealm below for what Zulip 10.x and 11.x write. Zulip 12.x rewrote do_scrub_realm
// (do_scrub_avatar_images, messages archived with skip_notify=True, channels' first_message_id
// cleared, attachments deleted through delete_message_attachments(delete_from=(ImageAttachment,))
// with their ImageAttachment rows, only channel and DM-group recipients for cross-realm
// messages). 12.x's released code of it and of its helpers could not be found, so on 12.x (and
// newer) zulip-manage refuses to scrub: the realms are named, nothing is written for them, the
// command exits 1. What the search index holds (searched: zerver/actions/realm_settings.py,
// zerver/actions/user_settings.py, zerver/actions/message_delete.py, zerver/lib/retention.py in
// zulip/zulip and every fork listed for those paths; find_string on do_scrub_avatar_image(s),
// skip_notify, _process_grouped_messages_deletion; the PR threads of #35848 and #37391):
//  - zulip/zulip's realm_settings.py is a main-branch copy of unknown date (12.0 or later: "Prior
//    to Zulip 12.0" comments, do_delete_realm) that fits 12.x's schema: cross-realm recipients
//    are channels and DM groups only, do_delete_all_realm_attachments uses the
//    delete_message_attachments(delete_from=(ImageAttachment,)) context manager under
//    select_for_update — neither that context manager (zerver/lib/upload) nor its message_delete.py
//    (do_delete_messages_by_sender(user, skip_notify=True); the stored one is a 9.x/10.x copy) nor
//    its user_settings.py (the stored one is older) is in the index;
//  - 12.0-development forks disagree with it and with each other: hypnoastic/zulip and
//    omkarrr2533/zulip call do_scrub_avatar_image (singular) and archive without skip_notify;
//    juno-5/doer (renamed fork, feature level 460) calls do_scrub_avatar_images with skip_notify
//    and clears first_message_id, but still reads UserProfile.recipient_id, which 12.x dropped
//    (migration 0798_remove_userprofile_recipient_and_personal_recipients), and deletes
//    attachments in batches of 1000 without touching ImageAttachment;
//  - do_scrub_avatar_images: rxkshit04/zulip resets to Gravatar and deletes avatar versions 1 to
//    the old one; prakhar1144/zulip's do_scrub_avatar_image resets to realm.default_avatar_source
//    and deletes the old version only (both skip_notify=True: no avatar events).
// None of these is known to be the 12.x release, and a partial reproduction would be a
// half-scrub. It also refuses, as a scrub could not be complete, when the uploads are in
// S3 (LOCAL_UPLOADS_DIR unset: the files cannot be deleted), when the avatar_salt secret cannot
// be read (the avatar files cannot be found) and when BILLING_ENABLED is set (the billing
// downgrade is Zulip Cloud's, not reproduced).
import { type CacheInvalidation } from "../cache.js";
import type { Config } from "../../config/config.js";
import { realmHost, realmUrl, type ZulipSettings } from "../../config/settings.js";
import type { Db, Queryable } from "../../db/db.js";
import { EmailDeliveryError, type EmailSettings, emailSettings, Mailer } from "../../services/email.js";
import { type EventDelivery, FL } from "../../services/events.js";
import { activeUserIds, userAccessRestricted, userIdsWhoCanAccessUser } from "../audiences.js";
import { AuditLogEventType, insertAuditLog } from "../audit.js";
import { type AvatarSettings, avatarUrl, readAvatarSalt, readAvatarSettings, userAvatarBasePath } from "../avatar.js";
import { generateKey } from "../../lib/random.js";
import { CascadeDeletion, catalogForeignKeys } from "../../db/ondelete.js";
import { botOwnerUserIds } from "../events/user-events.js";
import { deleteLocalFiles, type LocalFileResult, localUploadsDir, usedUploadSpaceKeys } from "./attachments.js";
import { buildRealmDeactivatedEmails, deactivateRealm, deleteRealmSessions, type RealmEmailInfo } from "./deactivate-realm.js";
import { RecipientType } from "../models.js";
import { humanOwnerUsers, lockRealm } from "../realms.js";
import { secretKeyOrUndefined } from "../sessions.js";
import { type Archiver, messageArchiver, MESSAGE_BATCH_SIZE, STREAM_MESSAGE_BATCH_SIZE } from "./retention.js";

export interface RealmDueForScrubbing {
  id: number;
  string_id: string;
  name: string;
  reason: string;
}

/** clean_deactivated_realm_data's realms: deactivated, scheduled_deletion_date <= now (id order). */
async function realmsDueForScrubbing(db: Db): Promise<RealmDueForScrubbing[]> {
  if (!(await db.hasColumn("zerver_realm", "scheduled_deletion_date"))) return [];
  const { rows } = await db.query("SELECT id, string_id, name FROM zerver_realm WHERE deactivated AND scheduled_deletion_date <= now() ORDER BY id");
  return rows.map((r) => ({ id: Number(r.id), string_id: r.string_id, name: r.name, reason: "deactivated, scheduled deletion date passed" }));
}

/** delete_expired_demo_organizations' realms: active, demo_organization_scheduled_deletion_date <= now. */
async function expiredDemoOrganizations(db: Db): Promise<{ id: number; string_id: string; name: string }[]> {
  if (!(await db.hasColumn("zerver_realm", "demo_organization_scheduled_deletion_date"))) return [];
  const { rows } = await db.query(
    "SELECT id, string_id, name FROM zerver_realm WHERE NOT deactivated AND demo_organization_scheduled_deletion_date <= now() ORDER BY id",
  );
  return rows.map((r) => ({ id: Number(r.id), string_id: r.string_id, name: r.name }));
}

/** demo_organization_owner_email_exists: the active human owners' delivery emails are not just {""}. */
async function demoOrganizationOwnerEmailExists(q: Queryable, realmId: number): Promise<boolean> {
  const emails = new Set((await humanOwnerUsers(q, realmId)).map((u) => u.delivery_email));
  return !(emails.size === 1 && emails.has(""));
}

export interface DemoDeactivation {
  id: number;
  string_id: string;
  name: string;
  audit_log_id: number;
  scheduled_emails_deleted: number;
  sessions_deleted: number;
  emails: { to: string; user_id: number; status: "sent" | "failed"; error: string | null }[];
}

export interface DemoDeletionOptions {
  cache: CacheInvalidation;
  events: EventDelivery;
  secretKey?: string;
  /** Only called when an organization's owners are to be emailed. */
  emailSettings: () => EmailSettings;
  realmInfo: (stringId: string, name: string) => RealmEmailInfo;
  serverTimezone?: string;
  warn: (message: string) => void;
  now?: () => Date;
}

/**
 * delete_expired_demo_organizations: one transaction per organization (see the file comment).
 * Events and the scrub jobs are staged on `events`; the caller commits the cache, then the events.
 */
async function deleteExpiredDemoOrganizations(db: Db, opts: DemoDeletionOptions): Promise<DemoDeactivation[]> {
  const out: DemoDeactivation[] = [];
  for (const candidate of await expiredDemoOrganizations(db)) {
    const when = opts.now?.() ?? new Date();
    const notify = {
      events: opts.events,
      realm: { id: candidate.id, string_id: candidate.string_id },
      what: `the deactivation of the expired demo organization ${candidate.string_id || "(root domain)"}`,
    };
    const done = await opts.events.tx(db, async (q) => {
      const locked = await lockRealm(q, candidate.id);
      // Re-checked under the lock: someone may have deactivated or converted it meanwhile.
      if (locked.deactivated || !locked.demo_organization_scheduled_deletion_date || new Date(locked.demo_organization_scheduled_deletion_date) > when) {
        return null;
      }
      const emailOwners = await demoOrganizationOwnerEmailExists(q, locked.id);
      const result = await deactivateRealm(q, locked, {
        reason: "demo_expired",
        actingUserId: null,
        deletionDelayDays: 0,
        now: when,
        cache: opts.cache,
        notify,
      });
      // do_deactivate_realm with deletion_delay_days == 0, after the "deactivated" event.
      opts.events.enqueue(
        "deferred_work",
        { type: "scrub_deactivated_realm", realm_id: locked.id },
        `the scrubbing of ${candidate.string_id || "(root domain)"}`,
      );
      return { result, emailOwners, name: String(locked.name) };
    });
    if (!done) continue;
    opts.cache.changeCommitted();
    const sessions = await db.tx((q) => deleteRealmSessions(q, candidate.id, opts.cache, opts.secretKey !== undefined ? { secretKey: opts.secretKey } : {}));
    const entry: DemoDeactivation = {
      id: candidate.id,
      string_id: candidate.string_id,
      name: done.name,
      audit_log_id: done.result.auditLogId,
      scheduled_emails_deleted: done.result.scheduledEmailsDeleted,
      sessions_deleted: sessions.length,
      emails: [],
    };
    out.push(entry);
    if (done.emailOwners) await emailOwners(db, opts, entry, done.name, when);
  }
  return out;
}

/**
 * The dry run of deleteExpiredDemoOrganizations: the organizations and their scheduled emails
 * (sessions are not counted: telling a session's user needs its signed data; 0).
 */
async function planExpiredDemoOrganizations(db: Db): Promise<DemoDeactivation[]> {
  const out: DemoDeactivation[] = [];
  for (const d of await expiredDemoOrganizations(db)) {
    const { rows } = await db.query("SELECT count(*)::int AS n FROM zerver_scheduledemail WHERE realm_id = $1", [d.id]);
    out.push({ ...d, audit_log_id: 0, scheduled_emails_deleted: Number(rows[0].n), sessions_deleted: 0, emails: [] });
  }
  return out;
}

/** do_send_realm_deactivation_email(realm, None, deletion_delay_days=0): data_already_deleted. */
async function emailOwners(db: Db, opts: DemoDeletionOptions, entry: DemoDeactivation, name: string, when: Date): Promise<void> {
  const owners = await humanOwnerUsers(db, entry.id);
  if (!owners.length) return;
  const fail = (to: string, userId: number, message: string) => {
    entry.emails.push({ to, user_id: userId, status: "failed", error: message });
    opts.warn(`Failed to send the deactivation email to ${to}: ${message}`);
  };
  let es: EmailSettings;
  let mailer: Mailer;
  try {
    es = opts.emailSettings();
    mailer = await Mailer.open(es);
  } catch (e) {
    for (const o of owners) fail(o.delivery_email, o.id, (e as Error).message);
    return;
  }
  try {
    const mails = buildRealmDeactivatedEmails(es, opts.realmInfo(entry.string_id, name), owners, {
      when,
      ...(opts.serverTimezone !== undefined ? { serverTimezone: opts.serverTimezone } : {}),
      dataAlreadyDeleted: true,
    });
    for (const { owner, mail } of mails) {
      try {
        await mailer.send(mail);
        entry.emails.push({ to: owner.delivery_email, user_id: owner.id, status: "sent", error: null });
      } catch (e) {
        if (!(e instanceof EmailDeliveryError)) throw e;
        fail(owner.delivery_email, owner.id, e.message);
      }
    }
  } finally {
    mailer.close();
  }
}

// ---------------------------------------------------------------------------------------------
// clean_deactivated_realm_data → scrub_deactivated_realm → do_scrub_realm

/** The releases whose do_scrub_realm zulip-manage reproduces. */
const SCRUB_RELEASES = ["10.x", "11.x"];

export interface ScrubSettings {
  /** The database's release (Db.release). */
  release: string;
  /** LOCAL_UPLOADS_DIR, or null (S3). */
  uploadsDir: string | null;
  /** AVATAR_SALT, or null when unreadable. */
  avatarSalt: string | null;
  /** settings.BILLING_ENABLED. */
  billingEnabled: boolean;
  /** settings.SYSTEM_BOT_REALM (default "zulipinternal"). */
  systemBotRealm: string;
}

/** Why zulip-manage does not scrub on this server (checked before anything is written), or null. */
function scrubRefusal(s: ScrubSettings): string | null {
  if (!SCRUB_RELEASES.includes(s.release)) {
    return (
      `zulip-manage scrubs organizations as Zulip 10.x and 11.x do; this database is Zulip ${s.release}, whose do_scrub_realm ` +
      "(do_scrub_avatar_images, move_messages_to_archive with skip_notify, attachments deleted with their ImageAttachment rows) " +
      "zulip-manage has not been checked against, and a partial reproduction would be a half-scrub."
    );
  }
  if (s.billingEnabled)
    return "BILLING_ENABLED is set: do_scrub_realm first downgrades the organization's plan (Zulip Cloud billing), which zulip-manage does not do.";
  if (s.uploadsDir === null)
    return "Uploaded files are stored in S3 (LOCAL_UPLOADS_DIR is not set); do_scrub_realm deletes the organization's files and avatars, and zulip-manage deletes only local files.";
  if (s.avatarSalt === null) return "The avatar_salt secret cannot be read, so the avatar files do_scrub_realm deletes cannot be found.";
  return null;
}

/** What Zulip's job raises when the organization has no message from a system bot (10.x, 11.x). */
const NO_CROSS_REALM_MESSAGES =
  "Zulip's do_scrub_realm stops with Message.DoesNotExist here: move_messages_to_archive() of the organization's messages from system bots " +
  "raises when there are none, which rolls the whole scrub back and ends the cron job";

export interface FileCounts {
  deleted: number;
  missing: number;
  failed: { path: string; error: string }[];
}

export interface ScrubOptions {
  cache: CacheInvalidation;
  events: EventDelivery;
  settings: ScrubSettings;
  /** realm.host for a string_id (the scrubbed addresses' domain). */
  realmHost: (stringId: string) => string;
  /** For the realm_user avatar events (null: not readable; the events are then not sent, with a warning). */
  avatar: AvatarSettings | null;
  featureLevel: number;
  log?: (message: string) => void;
  /** generate_key's randomness (tests). */
  random?: (n: number) => Uint8Array;
  /** Default MAX_STAGED_RECIPIENTS (tests). */
  maxStagedRecipients?: number;
}

export interface ScrubResult {
  id: number;
  string_id: string;
  name: string;
  users: number;
  messages_archived: number;
  archive_transaction_ids: number[];
  attachments_deleted: number;
  archived_attachments_deleted: number;
  custom_profile_fields_deleted: number;
  audit_log_ids: number[];
  files: FileCounts;
  avatar_files: FileCounts;
  /** Events Zulip sends that could not be built (avatar URLs), as warnings. */
  not_sent: string[];
}

export interface NotScrubbed {
  id: number;
  string_id: string;
  name: string;
  reason: string;
  /** true: Zulip's own job would fail here too (and stops); false: zulip-manage refuses. */
  zulip_fails: boolean;
}

export interface CleanDeactivatedRealmDataResult {
  scrubbed: ScrubResult[];
  not_scrubbed: NotScrubbed[];
  /** Zulip's job would have ended with an error at the last of not_scrubbed: nothing after it was run. */
  stopped: boolean;
}

/** Zulip's own do_scrub_realm would fail here: rolled back, and the job stops. */
class ScrubFailure extends Error {}
/** zulip-manage does not scrub this organization (nothing written); the job goes on. */
class ScrubRefused extends Error {}

/**
 * The most recipient entries the avatar events of one scrub may stage (users × recipients):
 * Zulip sends one realm_user update per user to everyone who can see them, so a realm of N active
 * users stages about N² entries (50,000 users: 2.5 billion), more than a process can hold.
 */
const MAX_STAGED_RECIPIENTS = 50_000_000;

function counts(r: LocalFileResult): FileCounts {
  return { deleted: r.deleted.length, missing: r.missing.length, failed: r.failed };
}

const USER_COLUMNS =
  "id, realm_id, email, delivery_email, api_key, is_bot, is_active, full_name, avatar_source, avatar_version, bot_owner_id, default_sending_stream_id, default_events_register_stream_id";

/**
 * The cross-realm messages do_scrub_realm archives (10.x, 11.x): sent by a user of the
 * SYSTEM_BOT_REALM, with the organization as Message.realm, to one of its channels, one of its
 * users' personal recipients or a DM group one of its users is subscribed to (id order).
 */
async function crossRealmBotMessageIds(q: Queryable, realmId: number, internalRealmId: number): Promise<number[]> {
  const { rows } = await q.query(
    `SELECT m.id FROM zerver_message m JOIN zerver_userprofile s ON s.id = m.sender_id
      WHERE s.realm_id = $2 AND m.realm_id = $1 AND m.recipient_id IN (
              SELECT recipient_id FROM zerver_stream WHERE realm_id = $1
              UNION SELECT recipient_id FROM zerver_userprofile WHERE realm_id = $1
              UNION SELECT sub.recipient_id FROM zerver_subscription sub
                      JOIN zerver_recipient r ON r.id = sub.recipient_id
                      JOIN zerver_userprofile u ON u.id = sub.user_profile_id
                     WHERE r.type = ${RecipientType.DIRECT_MESSAGE_GROUP} AND u.realm_id = $1)
      ORDER BY m.id`,
    [realmId, internalRealmId],
  );
  return rows.map((r: any) => Number(r.id));
}

async function internalRealmId(q: Queryable, systemBotRealm: string): Promise<number | null> {
  const { rows } = await q.query("SELECT id FROM zerver_realm WHERE string_id = $1", [systemBotRealm]);
  return rows.length ? Number(rows[0].id) : null;
}

/** The avatar files delete_avatar_image(user, version) removes: <base>.original, <base>-medium.png, <base>.png. */
function avatarFiles(userId: number, version: number, realmId: number, salt: string): string[] {
  const base = userAvatarBasePath(userId, version, realmId, salt);
  return [`${base}.original`, `${base}-medium.png`, `${base}.png`];
}

/**
 * do_scrub_realm(realm, acting_user=None) as Zulip 10.x and 11.x have it (zerver/actions/
 * realm_settings.py, @transaction.atomic(durable=True): ONE transaction), in its order:
 *
 *  1. for each user of the organization (every UserProfile, bots and deactivated users too;
 *     id order here, Zulip's queryset has none):
 *     - do_delete_messages_by_sender(user): the messages it sent in the organization, id order,
 *       when there are any, go through move_messages_to_archive(ids, chunk_size=100) (type
 *       MANUAL ArchiveTransactions without a realm; see Archiver.moveMessagesToArchive);
 *     - do_delete_avatar_image(user): do_change_avatar_fields(user, "G") — avatar_source "G",
 *       avatar_version + 1, a USER_AVATAR_SOURCE_CHANGED (123) audit row {"avatar_source": "G"},
 *       notify_avatar_url_change (a realm_bot update to the bot's owners for a bot, a realm_user
 *       update with avatar_source, avatar_url, avatar_url_medium, avatar_version to those who can
 *       see the user), then delete_avatar_image(user, old_version): the three files of the old
 *       version under LOCAL_UPLOADS_DIR/avatars;
 *     - full_name "Scrubbed <15 chars of generate_key()>", email = delivery_email =
 *       "scrubbed-<15 other chars>@<realm.host>";
 *  2. the organization's messages from system bots (crossRealmBotMessageIds) through
 *     move_messages_to_archive(ids) (chunks of 1000; none: Zulip raises, see
 *     NO_CROSS_REALM_MESSAGES);
 *  3. do_remove_realm_custom_profile_fields: its CustomProfileField rows (their values cascade);
 *  4. do_delete_all_realm_attachments: for Attachment, then ArchivedAttachment, every file
 *     (path_id, under LOCAL_UPLOADS_DIR/files; thumbnails and ImageAttachment rows are not
 *     touched in these releases), then the rows with their cascades;
 *  5. a REALM_SCRUBBED (203) audit row; scheduled_deletion_date = NULL (realm.save()).
 *
 * Cache: flush_user_profile for each user save (the old addresses' keys too), the used upload
 * space of deleted Attachments' realms, flush_realm for the realm save. Zulip deletes files
 * inside the transaction; here they go after the COMMIT (a failure never leaves rows pointing at
 * deleted files). Events are staged and sent after the COMMIT, like send_event_on_commit.
 * Returns null when the realm is no longer due (checked under the row lock).
 */
async function doScrubRealm(db: Db, realmId: number, archiver: Archiver, opts: ScrubOptions): Promise<ScrubResult | null> {
  const s = opts.settings;
  const uploadsDir = s.uploadsDir!;
  const salt = s.avatarSalt!;
  const random = opts.random;
  const attachmentFiles: string[] = [];
  const avatarPaths: string[] = [];
  const fks = await catalogForeignKeys(db);
  const result = await opts.events.tx(db, async (q): Promise<ScrubResult | null> => {
    const realm = await lockRealm(q, realmId);
    // scrub_deactivated_realm's condition, re-checked under the lock.
    const due = await q.query("SELECT deactivated AND scheduled_deletion_date <= now() AS due FROM zerver_realm WHERE id = $1", [realmId]);
    if (!due.rows[0]?.due) return null;
    const internal = await internalRealmId(q, s.systemBotRealm);
    if (internal === null) throw new ScrubFailure(`get_realm(SYSTEM_BOT_REALM) raises: there is no organization '${s.systemBotRealm}'`);
    // Checked before anything is written: the users' loop below archives only messages its users
    // sent, so the system bots' messages are the same then (none for the system bot realm itself,
    // whose bots are its users).
    if (internal === realmId || !(await crossRealmBotMessageIds(q, realmId, internal)).length) throw new ScrubFailure(NO_CROSS_REALM_MESSAGES);
    const stringId = String(realm.string_id);
    const notify = { realm: { id: realmId, string_id: stringId }, what: `the scrubbing of ${stringId || "(root domain)"}` };
    const r: ScrubResult = {
      id: realmId,
      string_id: stringId,
      name: String(realm.name),
      users: 0,
      messages_archived: 0,
      archive_transaction_ids: [],
      attachments_deleted: 0,
      archived_attachments_deleted: 0,
      custom_profile_fields_deleted: 0,
      audit_log_ids: [],
      files: { deleted: 0, missing: 0, failed: [] },
      avatar_files: { deleted: 0, missing: 0, failed: [] },
      not_sent: [],
    };
    const host = opts.realmHost(stringId);
    const users = (await q.query(`SELECT ${USER_COLUMNS} FROM zerver_userprofile WHERE realm_id = $1 ORDER BY id FOR UPDATE`, [realmId])).rows;
    r.users = users.length;
    // get_user_ids_who_can_access_user: every active user unless access is restricted (bots never are).
    const restricted = await userAccessRestricted(q, { realm_id: realmId, is_bot: false });
    const everyone = await activeUserIds(q, realmId);
    if (opts.events.enabled && users.length * everyone.length > (opts.maxStagedRecipients ?? MAX_STAGED_RECIPIENTS)) {
      throw new ScrubRefused(
        `its ${users.length} users' avatar events would go to up to ${everyone.length} users each, more than zulip-manage can hold in memory; ` +
          "run with --events=none (a deactivated organization's users have no open clients to update)",
      );
    }
    const archive = async (ids: number[], chunkSize: number) => {
      const moved = await archiver.moveMessagesToArchive(q, ids, { realmId: null, chunkSize, inval: opts.cache });
      r.messages_archived += moved.messages;
      r.archive_transaction_ids.push(...moved.transactions);
      r.attachments_deleted += moved.attachments_deleted;
      return moved;
    };
    for (const u of users) {
      const userId = Number(u.id);
      // do_delete_messages_by_sender(user)
      const sent = (await q.query("SELECT id FROM zerver_message WHERE realm_id = $1 AND sender_id = $2 ORDER BY id", [realmId, userId])).rows.map((m: any) =>
        Number(m.id),
      );
      if (sent.length) await archive(sent, STREAM_MESSAGE_BATCH_SIZE);
      // do_delete_avatar_image(user, acting_user=None)
      const oldVersion = Number(u.avatar_version);
      const { rows: av } = await q.query(
        "UPDATE zerver_userprofile SET avatar_source = 'G', avatar_version = avatar_version + 1 WHERE id = $1 RETURNING avatar_version",
        [userId],
      );
      const after = { ...u, avatar_source: "G", avatar_version: Number(av[0].avatar_version) };
      await opts.cache.userChanged(q, after as any, ["avatar_source", "avatar_version"]);
      r.audit_log_ids.push(
        ...(await insertAuditLog(q, [
          { realmId, eventType: AuditLogEventType.USER_AVATAR_SOURCE_CHANGED, modifiedUserId: userId, actingUserId: null, extraData: { avatar_source: "G" } },
        ])),
      );
      await notifyAvatarUrlChange(q, opts, notify, after, restricted && !u.is_bot ? null : everyone, r.not_sent);
      avatarPaths.push(...avatarFiles(userId, oldVersion, realmId, salt));
      // The rename (user.save(update_fields=["full_name", "email", "delivery_email"])).
      const fullName = `Scrubbed ${generateKey(random).slice(0, 15)}`;
      const email = `scrubbed-${generateKey(random).slice(0, 15)}@${host}`;
      await q.query("UPDATE zerver_userprofile SET full_name = $2, email = $3, delivery_email = $3 WHERE id = $1", [userId, fullName, email]);
      await opts.cache.userChanged(q, { ...after, full_name: fullName, email, delivery_email: email } as any, ["full_name", "email", "delivery_email"], {
        before: u as any,
      });
    }
    // The organization's messages from system bots.
    const crossRealm = await crossRealmBotMessageIds(q, realmId, internal);
    if (!crossRealm.length) throw new ScrubFailure(NO_CROSS_REALM_MESSAGES);
    await archive(crossRealm, MESSAGE_BATCH_SIZE);
    // do_remove_realm_custom_profile_fields(realm)
    {
      const del = new CascadeDeletion(q, fks, "remove the organization's custom profile fields");
      r.custom_profile_fields_deleted = await del.addRoots("zerver_customprofilefield", "SELECT id FROM zerver_customprofilefield WHERE realm_id = $1", [
        realmId,
      ]);
      if (r.custom_profile_fields_deleted) await del.execute();
      await del.dispose();
    }
    // do_delete_all_realm_attachments(realm): files of Attachment, then of ArchivedAttachment, each followed by its rows.
    for (const table of ["zerver_attachment", "zerver_archivedattachment"] as const) {
      const { rows } = await q.query(`SELECT path_id FROM ${table} WHERE realm_id = $1 ORDER BY id`, [realmId]);
      attachmentFiles.push(...rows.map((x: any) => String(x.path_id)));
      const del = new CascadeDeletion(q, fks, "delete the organization's attachments");
      const n = await del.addRoots(table, `SELECT id FROM ${table} WHERE realm_id = $1`, [realmId]);
      if (n) {
        await del.collect();
        if (table === "zerver_attachment") {
          opts.cache.addKeys(await usedUploadSpaceKeys(q, `SELECT id FROM ${del.tempTable("zerver_attachment")}`), "the organizations' used upload space");
          r.attachments_deleted += n;
        } else r.archived_attachments_deleted = n;
        await del.execute();
      }
      await del.dispose();
    }
    r.audit_log_ids.push(...(await insertAuditLog(q, [{ realmId, eventType: AuditLogEventType.REALM_SCRUBBED, actingUserId: null }])));
    await q.query("UPDATE zerver_realm SET scheduled_deletion_date = NULL WHERE id = $1", [realmId]);
    await opts.cache.realmChanged(q, { id: realmId, string_id: stringId, deactivated: true }, null);
    return r;
  });
  if (!result) return null;
  opts.cache.changeCommitted();
  const files: LocalFileResult = { deleted: [], missing: [], failed: [] };
  deleteLocalFiles(uploadsDir, attachmentFiles, files, "files");
  const avatars: LocalFileResult = { deleted: [], missing: [], failed: [] };
  deleteLocalFiles(uploadsDir, avatarPaths, avatars, "avatars");
  result.files = counts(files);
  result.avatar_files = counts(avatars);
  opts.log?.(`Scrubbed realm ${realmId}`);
  return result;
}

/**
 * notify_avatar_url_change(user) (zerver/actions/user_settings.py, 10.x/11.x): for a bot, a
 * realm_bot update {user_id, avatar_url} to its owners (bot_owner_user_ids; not sent from 12.0
 * on, FL 474); a realm_user update {avatar_source, avatar_url, avatar_url_medium,
 * avatar_version, user_id} to get_user_ids_who_can_access_user(user). `everyone` is the
 * organization's active users when access is not restricted for this user.
 */
async function notifyAvatarUrlChange(
  q: Queryable,
  opts: ScrubOptions,
  n: { realm: { id: number; string_id: string }; what: string },
  u: any,
  everyone: number[] | null,
  notSent: string[],
): Promise<void> {
  const user = {
    id: Number(u.id),
    realm_id: Number(u.realm_id),
    delivery_email: String(u.delivery_email),
    avatar_source: "G",
    avatar_version: Number(u.avatar_version),
  };
  const url = opts.avatar ? avatarUrl(opts.avatar, user, opts.featureLevel) : { reason: "the avatar settings could not be read" };
  const medium = opts.avatar ? avatarUrl(opts.avatar, user, opts.featureLevel, true) : url;
  if (typeof url !== "string" || typeof medium !== "string") {
    notSent.push(`the avatar update of user ${user.id}: ${(url as { reason: string }).reason}`);
    return;
  }
  if (u.is_bot && opts.featureLevel < FL.NO_REALM_BOT_UPDATES) {
    opts.events.send(n.realm, { type: "realm_bot", op: "update", bot: { user_id: user.id, avatar_url: url } }, await botOwnerUserIds(q, u), n.what);
  }
  const to = everyone ?? (await userIdsWhoCanAccessUser(q, { id: user.id, realm_id: user.realm_id, is_bot: Boolean(u.is_bot) }));
  opts.events.send(
    n.realm,
    {
      type: "realm_user",
      op: "update",
      person: { avatar_source: "G", avatar_url: url, avatar_url_medium: medium, avatar_version: user.avatar_version, user_id: user.id },
    },
    to,
    n.what,
  );
}

/**
 * clean_deactivated_realm_data(): every due organization in id order, each scrubbed in its own
 * transaction (doScrubRealm). On a release or configuration zulip-manage does not scrub for
 * (scrubRefusal), every due organization is listed as not scrubbed and nothing is written.
 * When Zulip's own do_scrub_realm would fail (its job ends there), that organization is rolled
 * back and listed, and the rest is not attempted (stopped).
 */
export async function cleanDeactivatedRealmData(db: Db, opts: ScrubOptions): Promise<CleanDeactivatedRealmDataResult> {
  const out: CleanDeactivatedRealmDataResult = { scrubbed: [], not_scrubbed: [], stopped: false };
  const due = await realmsDueForScrubbing(db);
  if (!due.length) return out;
  const refusal = scrubRefusal(opts.settings);
  if (refusal) {
    out.not_scrubbed = due.map((d) => ({ id: d.id, string_id: d.string_id, name: d.name, reason: refusal, zulip_fails: false }));
    return out;
  }
  const archiver = await messageArchiver(db);
  for (const d of due) {
    try {
      const r = await doScrubRealm(db, d.id, archiver, opts);
      if (r) out.scrubbed.push(r);
    } catch (e) {
      if (e instanceof ScrubRefused) {
        out.not_scrubbed.push({ id: d.id, string_id: d.string_id, name: d.name, reason: `Not scrubbed: ${e.message}.`, zulip_fails: false });
        continue;
      }
      if (!(e instanceof ScrubFailure)) throw e;
      out.not_scrubbed.push({ id: d.id, string_id: d.string_id, name: d.name, reason: e.message, zulip_fails: true });
      out.stopped = true;
      break;
    }
  }
  return out;
}

export interface ScrubPlan {
  id: number;
  string_id: string;
  name: string;
  users: number;
  /** Messages its users sent in it, and its messages from system bots. */
  messages: number;
  cross_realm_messages: number;
  attachments: number;
  /** Its ArchivedAttachments, and those its messages' archiving adds (their Attachments get twins). */
  archived_attachments: number;
  custom_profile_fields: number;
}

/** The dry run of cleanDeactivatedRealmData: what would be scrubbed, and what not (and why). Writes nothing. */
async function planCleanDeactivatedRealmData(db: Db, settings: ScrubSettings): Promise<{ scrub: ScrubPlan[]; not_scrubbed: NotScrubbed[] }> {
  const out: { scrub: ScrubPlan[]; not_scrubbed: NotScrubbed[] } = { scrub: [], not_scrubbed: [] };
  const due = await realmsDueForScrubbing(db);
  if (!due.length) return out;
  const refusal = scrubRefusal(settings);
  if (refusal) {
    out.not_scrubbed = due.map((d) => ({ id: d.id, string_id: d.string_id, name: d.name, reason: refusal, zulip_fails: false }));
    return out;
  }
  const internal = await internalRealmId(db, settings.systemBotRealm);
  for (const d of due) {
    const crossRealm = internal === null || internal === d.id ? [] : await crossRealmBotMessageIds(db, d.id, internal);
    if (internal === null || !crossRealm.length) {
      const reason = internal === null ? `get_realm(SYSTEM_BOT_REALM) raises: there is no organization '${settings.systemBotRealm}'` : NO_CROSS_REALM_MESSAGES;
      out.not_scrubbed.push({ id: d.id, string_id: d.string_id, name: d.name, reason, zulip_fails: true });
      break;
    }
    const { rows } = await db.query(
      `SELECT (SELECT count(*) FROM zerver_userprofile WHERE realm_id = $1)::int AS users,
              (SELECT count(*) FROM zerver_message m JOIN zerver_userprofile u ON u.id = m.sender_id WHERE m.realm_id = $1 AND u.realm_id = $1)::int AS messages,
              (SELECT count(*) FROM zerver_attachment WHERE realm_id = $1)::int AS attachments,
              ((SELECT count(*) FROM zerver_archivedattachment WHERE realm_id = $1)
                + (SELECT count(DISTINCT am.attachment_id) FROM zerver_attachment_messages am JOIN zerver_message m ON m.id = am.message_id
                    WHERE m.realm_id = $1 AND am.attachment_id NOT IN (SELECT id FROM zerver_archivedattachment)))::int AS archived_attachments,
              (SELECT count(*) FROM zerver_customprofilefield WHERE realm_id = $1)::int AS custom_profile_fields`,
      [d.id],
    );
    out.scrub.push({ id: d.id, string_id: d.string_id, name: d.name, ...rows[0], cross_realm_messages: crossRealm.length });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// scrub_realms (zerver/management/commands/archive_messages.py): the two steps, in order

/** ScrubSettings from settings.py (LOCAL_UPLOADS_DIR, AVATAR_SALT, BILLING_ENABLED, SYSTEM_BOT_REALM), for a database of `release`. */
function readScrubSettings(settings: ZulipSettings, release: string): ScrubSettings {
  const systemBotRealm = settings.fileValue("SYSTEM_BOT_REALM", "zulipinternal");
  return {
    release,
    uploadsDir: localUploadsDir(settings),
    avatarSalt: readAvatarSalt(settings),
    billingEnabled: settings.fileValue("BILLING_ENABLED", false) === true,
    systemBotRealm: typeof systemBotRealm === "string" ? systemBotRealm : "zulipinternal",
  };
}

export interface ScrubRealmsOptions {
  cache: CacheInvalidation;
  events: EventDelivery;
  config: Config;
  featureLevel: number;
  /** retention.log's INFO lines. */
  log: (message: string) => void;
  warn: (message: string) => void;
}

export interface ScrubRealmsResult {
  clean: CleanDeactivatedRealmDataResult;
  /** Empty when clean_deactivated_realm_data stopped (Zulip's job ends there). */
  demos: DemoDeactivation[];
}

/**
 * scrub_realms(): clean_deactivated_realm_data(), then — unless Zulip's own job would have ended
 * with an error in it — delete_expired_demo_organizations(). The settings each step needs are
 * read from `config`. Cache changes and events are staged on opts.cache / opts.events.
 */
export async function scrubRealms(db: Db, opts: ScrubRealmsOptions): Promise<ScrubRealmsResult> {
  const settings = opts.config.settings;
  const clean = await cleanDeactivatedRealmData(db, {
    cache: opts.cache,
    events: opts.events,
    settings: readScrubSettings(settings, db.release),
    realmHost: (stringId) => realmHost(settings, stringId),
    avatar: readAvatarSettings(settings),
    featureLevel: opts.featureLevel,
    log: opts.log,
  });
  if (clean.stopped) return { clean, demos: [] };
  const secretKey = secretKeyOrUndefined(settings);
  const demos = await deleteExpiredDemoOrganizations(db, {
    cache: opts.cache,
    events: opts.events,
    ...(secretKey !== undefined ? { secretKey } : {}),
    emailSettings: () => emailSettings(opts.config),
    realmInfo: (stringId, name) => ({ name, string_id: stringId, host: realmHost(settings, stringId), url: realmUrl(settings, stringId) }),
    serverTimezone: settings.get("TIME_ZONE"),
    warn: opts.warn,
  });
  for (const d of demos) opts.log(`Deactivated expired demo organization ${d.id}; queued for scrubbing.`);
  return { clean, demos };
}

/** The dry run of scrubRealms: what each step would do (planCleanDeactivatedRealmData, planExpiredDemoOrganizations). Writes nothing. */
export async function planScrubRealms(
  db: Db,
  settings: ZulipSettings,
): Promise<{ clean: { scrub: ScrubPlan[]; not_scrubbed: NotScrubbed[]; stopped: boolean }; demos: DemoDeactivation[] }> {
  const plan = await planCleanDeactivatedRealmData(db, readScrubSettings(settings, db.release));
  const stopped = plan.not_scrubbed.some((n) => n.zulip_fails);
  return { clean: { ...plan, stopped }, demos: stopped ? [] : await planExpiredDemoOrganizations(db) };
}
