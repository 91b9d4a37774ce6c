// Organization (realm) lifecycle, writing what Zulip's actions write:
//
//   do_deactivate_realm          (zerver/actions/realm_settings.py)
//   do_reactivate_realm
//   do_add_deactivated_redirect
//   do_send_realm_reactivation_email
//   do_send_realm_deactivation_email (the owners' email of deactivate_realm --email_owners)
//   do_change_realm_subdomain    (zerver/actions/create_realm.py)
//   delete_realm_user_sessions   (zerver/lib/sessions.py)
//
// The functions taking a Queryable run inside the caller's transaction and never COMMIT; the
// caller locks nothing itself: lockRealm() takes the row lock Zulip's select_for_update would.
// Memcached coherence goes through the CacheInvalidation the caller passes (flush_realm for
// every realm saved, the cached copies of deleted sessions).
//
// Real-time events and queue jobs go through the `notify` the caller passes (lib/events.ts),
// staged inside the transaction in Zulip's order and sent after the commit.
//
// Not reproduced: Zulip Cloud's billing downgrade (BILLING_ENABLED only).
import { AuditLogEventType, insertAuditLog, NEW_VALUE, OLD_VALUE, ROLE_COUNT, roleCounts } from "../audit.js";
import type { CacheInvalidation } from "../cache.js";
import { CONFIRMATION_STATUS, CONFIRMATION_TYPES, insertConfirmation } from "../confirmation.js";
import { createRealm, type CreatedRealm, sendRealmCreationEvents } from "./create-realm.js";
import { databaseSeries } from "../rows.js";
import { seriesAtLeast } from "../../db/zulip-versions.js";
import type { Queryable } from "../../db/db.js";
import { activeUserIds, type Notify } from "../../services/events.js";
import { buildEmail, type EmailSettings, type OutgoingEmail, securityEmailFromName, supportAddress, tokenizedNoreplyAddress } from "../../services/email.js";
import { deleteUserSessions, type UserSession } from "../sessions.js";
import { emailBaseDefault, BUTTON_STYLE, escapeHtml, linkTag } from "../templates/html.js";

/** RealmDeactivationReasonType (zerver/actions/realm_settings.py); manage.py accepts any text. */
export const REALM_DEACTIVATION_REASONS = [
  "owner_request",
  "tos_violation",
  "inactivity",
  "self_hosting_migration",
  "demo_expired",
  "subdomain_change",
] as const;

export interface RealmRow {
  id: number;
  string_id: string;
  name: string;
  deactivated: boolean;
  deactivated_redirect: string | null;
  default_language: string;
  [column: string]: any;
}

/** The realm row, locked against concurrent writers (select_for_update(no_key=True)). */
export async function lockRealm(q: Queryable, realmId: number): Promise<RealmRow> {
  const { rows } = await q.query("SELECT * FROM zerver_realm WHERE id = $1 FOR NO KEY UPDATE", [realmId]);
  if (!rows.length) throw new Error(`realm ${realmId} disappeared while this command ran`);
  return rows[0] as RealmRow;
}

async function hasColumn(q: Queryable, table: string, column: string): Promise<boolean> {
  const { rows } = await q.query(
    `SELECT 1 FROM pg_catalog.pg_attribute a
      WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped`,
    [table, column],
  );
  return rows.length > 0;
}

// ---------------------------------------------------------------------------------------------
// Deactivation / reactivation

export interface DeactivationResult {
  auditLogId: number;
  /** ScheduledEmail rows deleted (welcome emails, digests, invitation reminders). */
  scheduledEmailsDeleted: number;
  scheduledDeletionDate: Date | null;
}

/**
 * do_deactivate_realm's transaction: deactivated=true (and scheduled_deletion_date when a
 * deletion delay is given), the REALM_DEACTIVATED row with ROLE_COUNT and the reason, and the
 * realm's ScheduledEmail rows (with their recipient rows) deleted. Users are not deactivated.
 * Call with a locked, active realm; sessions are deleted afterwards (deleteRealmSessions).
 */
export async function deactivateRealm(
  q: Queryable,
  realm: RealmRow,
  opts: { reason: string; actingUserId?: number | null; deletionDelayDays?: number | null; now?: Date; cache?: CacheInvalidation; notify?: Notify },
): Promise<DeactivationResult> {
  const now = opts.now ?? new Date();
  const deletionDate =
    opts.deletionDelayDays === null || opts.deletionDelayDays === undefined ? null : new Date(now.getTime() + opts.deletionDelayDays * 86400_000);
  const fields = ["deactivated"];
  if (deletionDate) {
    await q.query("UPDATE zerver_realm SET deactivated = true, scheduled_deletion_date = $2 WHERE id = $1", [realm.id, deletionDate]);
    fields.push("scheduled_deletion_date");
  } else {
    await q.query("UPDATE zerver_realm SET deactivated = true WHERE id = $1", [realm.id]);
  }
  const [auditLogId] = await insertAuditLog(q, [
    {
      realmId: realm.id,
      eventType: AuditLogEventType.REALM_DEACTIVATED,
      eventTime: now,
      actingUserId: opts.actingUserId ?? null,
      extraData: { [ROLE_COUNT]: await roleCounts(q, realm.id), deactivation_reason: opts.reason },
    },
  ]);
  // Zulip (do_deactivate_realm in zerver/actions/realm_settings.py, the same in the 10.x, 11.x
  // and main versions read): maybe_enqueue_audit_log_upload right after the audit row, then the
  // ScheduledEmail deletion, then {"type": "realm", "op": "deactivated", "realm_id"} to
  // active_user_ids(realm) (the users stay active) — it only ends the open long-polls, whose
  // clients then fail to authenticate and show the deactivation notice. Both on commit, in that
  // order. (deletion_delay_days=0 also queues scrub_deactivated_realm; no command here passes it.)
  const n = opts.notify;
  n?.events.auditLogUpload(n.realm);
  const scheduledEmailsDeleted = await deleteScheduledEmails(q, realm.id);
  n?.events.send(n.realm, { type: "realm", op: "deactivated", realm_id: realm.id }, await activeUserIds(q, realm.id), n.what);
  await opts.cache?.realmChanged(q, { id: realm.id, string_id: realm.string_id, deactivated: true }, fields);
  return { auditLogId, scheduledEmailsDeleted, scheduledDeletionDate: deletionDate };
}

/** ScheduledEmail.objects.filter(realm=realm).delete(): the M2M rows go first (Django's cascade). */
export async function deleteScheduledEmails(q: Queryable, realmId: number): Promise<number> {
  await q.query(
    "DELETE FROM zerver_scheduledemail_users WHERE scheduledemail_id IN (SELECT id FROM zerver_scheduledemail WHERE realm_id = $1)",
    [realmId],
  );
  const { rowCount } = await q.query("DELETE FROM zerver_scheduledemail WHERE realm_id = $1", [realmId]);
  return rowCount ?? 0;
}

/**
 * do_reactivate_realm: deactivated=false, scheduled_deletion_date=NULL (where the column exists)
 * and REALM_REACTIVATED with ROLE_COUNT. deactivated_redirect is left alone, as Zulip does.
 */
export async function reactivateRealm(
  q: Queryable,
  realm: RealmRow,
  opts: { now?: Date; cache?: CacheInvalidation; notify?: Notify } = {},
): Promise<{ auditLogId: number }> {
  const now = opts.now ?? new Date();
  const fields = ["deactivated"];
  if (await hasColumn(q, "zerver_realm", "scheduled_deletion_date")) {
    await q.query("UPDATE zerver_realm SET deactivated = false, scheduled_deletion_date = NULL WHERE id = $1", [realm.id]);
    fields.push("scheduled_deletion_date");
  } else {
    await q.query("UPDATE zerver_realm SET deactivated = false WHERE id = $1", [realm.id]);
  }
  const [auditLogId] = await insertAuditLog(q, [
    {
      realmId: realm.id,
      eventType: AuditLogEventType.REALM_REACTIVATED,
      eventTime: now,
      actingUserId: null,
      extraData: { [ROLE_COUNT]: await roleCounts(q, realm.id) },
    },
  ]);
  // do_reactivate_realm (10.x, 11.x, main): no event for clients (nobody can have an open
  // queue in a deactivated realm), only maybe_enqueue_audit_log_upload after the audit row.
  opts.notify?.events.auditLogUpload(opts.notify.realm);
  await opts.cache?.realmChanged(q, { id: realm.id, string_id: realm.string_id, deactivated: false }, fields);
  return { auditLogId };
}

/** do_add_deactivated_redirect: realm.deactivated_redirect = url (a plain save; no audit row). */
export async function setDeactivatedRedirect(
  q: Queryable,
  realm: { id: number; string_id: string; deactivated: boolean },
  url: string,
  cache?: CacheInvalidation,
): Promise<void> {
  await q.query("UPDATE zerver_realm SET deactivated_redirect = $2 WHERE id = $1", [realm.id, url]);
  await cache?.realmChanged(q, realm, ["deactivated_redirect"]);
}

/**
 * delete_realm_user_sessions: every unexpired session of any user of the realm (active or not,
 * bots included) is deleted, with its cached copy. Sessions whose signature does not verify
 * with SECRET_KEY are what Django decodes as empty, so they are kept, as Zulip keeps them.
 */
export async function deleteRealmSessions(
  q: Queryable,
  realmId: number,
  cache?: CacheInvalidation,
  opts: { secretKey?: string } = {},
): Promise<UserSession[]> {
  const { rows } = await q.query("SELECT id FROM zerver_userprofile WHERE realm_id = $1", [realmId]);
  return deleteUserSessions(
    q,
    rows.map((r) => Number(r.id)),
    cache,
    { unexpiredOnly: true, ...(opts.secretKey !== undefined ? { secretKey: opts.secretKey } : {}) },
  );
}

// ---------------------------------------------------------------------------------------------
// Realm reactivation email

export interface ReactivationLink {
  statusId: number;
  confirmationId: number;
  key: string;
  url: string;
  expiresAt: Date | null;
  auditLogId: number;
}

/**
 * The database part of do_send_realm_reactivation_email: a RealmReactivationStatus (status 0),
 * its REALM_REACTIVATION confirmation (tied to the realm; CONFIRMATION_LINK_DEFAULT_VALIDITY_DAYS)
 * and the REALM_REACTIVATION_EMAIL_SENT row. The link is <realm url>/reactivate/<key>.
 */
export async function createReactivationLink(
  q: Queryable,
  realm: { id: number },
  opts: { realmUrl: string; validityDays: number; now?: Date; key?: string },
): Promise<ReactivationLink> {
  const now = opts.now ?? new Date();
  const status = await q.query("INSERT INTO zerver_realmreactivationstatus (status, realm_id) VALUES ($1, $2) RETURNING id", [
    CONFIRMATION_STATUS.UNUSED,
    realm.id,
  ]);
  const statusId = Number(status.rows[0].id);
  const conf = await insertConfirmation(q, {
    contentType: { appLabel: "zerver", model: "realmreactivationstatus" },
    objectId: statusId,
    type: CONFIRMATION_TYPES.REALM_REACTIVATION,
    realmId: realm.id,
    validityDays: opts.validityDays,
    now,
    ...(opts.key !== undefined ? { key: opts.key } : {}),
  });
  const [auditLogId] = await insertAuditLog(q, [
    { realmId: realm.id, eventType: AuditLogEventType.REALM_REACTIVATION_EMAIL_SENT, eventTime: now, actingUserId: null },
  ]);
  return {
    statusId,
    confirmationId: conf.id,
    key: conf.key,
    url: `${opts.realmUrl.replace(/\/+$/, "")}/reactivate/${conf.key}`,
    expiresAt: conf.expiryDate,
    auditLogId,
  };
}

export interface EmailUser {
  id: number;
  full_name: string;
  delivery_email: string;
  default_language: string;
  timezone: string;
  role: number;
}

/** Realm.get_human_admin_users(): active human owners and administrators (by id). */
export async function humanAdminUsers(q: Queryable, realmId: number): Promise<(EmailUser & { email: string; realm_id: number })[]> {
  const { rows } = await q.query(
    `SELECT id, email, realm_id, full_name, delivery_email, default_language, timezone, role FROM zerver_userprofile
      WHERE realm_id = $1 AND NOT is_bot AND is_active AND role IN (100, 200) ORDER BY id`,
    [realmId],
  );
  return rows.map((r) => ({ ...r, id: Number(r.id), realm_id: Number(r.realm_id), role: Number(r.role) }));
}

/** Realm.get_human_owner_users(): active human owners (by id). */
export async function humanOwnerUsers(q: Queryable, realmId: number): Promise<(EmailUser & { email: string; realm_id: number })[]> {
  return (await humanAdminUsers(q, realmId)).filter((u) => u.role === 100);
}

export interface RealmEmailInfo {
  name: string;
  string_id: string;
  host: string;
  url: string;
}

/** templates/zerver/emails/realm_reactivation.{subject.txt,txt,html}, English, self-hosted. */
export function renderRealmReactivationEmail(c: {
  realmName: string;
  realmUrl: string;
  confirmationUrl: string;
  supportEmail: string;
  corporateEnabled?: boolean;
  emailImagesBaseUrl: string;
  physicalAddress: string;
}): { subject: string; text: string; html: string } {
  const contact = c.corporateEnabled
    ? `Do you have questions or feedback to share? Contact us at ${c.supportEmail} — we'd love to help!`
    : `If you have any questions, please contact this Zulip server's administrators at ${c.supportEmail}.`;
  // The plain-text engine's trim_blocks eats the newline after each {% endtrans %}.
  const text =
    `Dear former administrators of ${c.realmName},\n\n` +
    `One of your administrators requested reactivation of the previously deactivated Zulip organization hosted at ${c.realmUrl}.\n\n` +
    `Click the link below to reactivate your organization.\n` +
    `    <${c.confirmationUrl}>\n\n` +
    `If the request was in error, you can take no action and this link will expire in 24 hours.\n\n` +
    contact;
  const mail = `<a href="mailto:${escapeHtml(c.supportEmail)}">${escapeHtml(c.supportEmail)}</a>`;
  const contactHtml = c.corporateEnabled
    ? `Do you have questions or feedback to share? <a href="mailto:${escapeHtml(c.supportEmail)}">Contact us</a> — we'd love to help!`
    : `If you have any questions, please contact this Zulip server's administrators at ${mail}.`;
  const content = [
    `<p>Dear former administrators of ${escapeHtml(c.realmName)},</p>`,
    `<p>One of your administrators requested reactivation of the previously deactivated Zulip organization hosted at ${linkTag(c.realmUrl)}.</p>`,
    `<p>\n    Click the button below to reactivate your organization.\n    <a class="button" href="${escapeHtml(c.confirmationUrl)}" style="${BUTTON_STYLE}">Reactivate organization</a>\n</p>`,
    `<p>If the request was in error, you can take no action and this link will expire in 24 hours.</p>`,
    `<p>\n    ${contactHtml}\n</p>`,
  ].join("\n\n");
  return {
    subject: "Reactivate your Zulip organization",
    text,
    html: emailBaseDefault({
      emailImagesBaseUrl: c.emailImagesBaseUrl,
      physicalAddress: c.physicalAddress,
      illustration: "registration_confirmation.png",
      content,
    }),
  };
}

/**
 * send_email_to_admins("zerver/emails/realm_reactivation", ...): one message to all the realm's
 * human admins and owners ("Full Name <address>" each), from "<INSTALLATION_NAME> account
 * security" at a tokenized noreply address. send_email derives the List-Id from the recipients'
 * realm, but logs without "in <realm>" (no realm argument is passed).
 */
export function buildRealmReactivationEmail(
  es: EmailSettings,
  realm: RealmEmailInfo,
  admins: EmailUser[],
  confirmationUrl: string,
  opts: { corporateEnabled?: boolean } = {},
): OutgoingEmail {
  const mail = buildEmail(es, {
    template: "realm_reactivation",
    rendered: renderRealmReactivationEmail({
      realmName: realm.name,
      realmUrl: realm.url,
      confirmationUrl,
      supportEmail: supportAddress(es),
      corporateEnabled: opts.corporateEnabled,
      emailImagesBaseUrl: es.emailImagesBaseUrl,
      physicalAddress: es.physicalAddress,
    }),
    toUsers: admins.map((a) => ({ full_name: a.full_name, delivery_email: a.delivery_email })),
    fromName: securityEmailFromName(es),
    fromAddress: tokenizedNoreplyAddress(es),
    realm: { name: realm.name, host: realm.host, string_id: realm.string_id },
  });
  return { ...mail, realmStringId: undefined };
}

// ---------------------------------------------------------------------------------------------
// Realm deactivation email

const AP_MONTHS = ["Jan.", "Feb.", "March", "April", "May", "June", "July", "Aug.", "Sept.", "Oct.", "Nov.", "Dec."];
const SHORT_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** Legacy zone names Zulip's canonicalize_timezone() maps to their current names. */
const TIMEZONE_ALIASES: Record<string, string> = {
  "America/Buenos_Aires": "America/Argentina/Buenos_Aires",
  "America/Catamarca": "America/Argentina/Catamarca",
  "America/Cordoba": "America/Argentina/Cordoba",
  "America/Jujuy": "America/Argentina/Jujuy",
  "America/Mendoza": "America/Argentina/Mendoza",
  "Asia/Calcutta": "Asia/Kolkata",
  "Asia/Katmandu": "Asia/Kathmandu",
  "Asia/Rangoon": "Asia/Yangon",
  "Asia/Saigon": "Asia/Ho_Chi_Minh",
  "Europe/Kiev": "Europe/Kyiv",
  "Pacific/Enderbury": "Pacific/Kanton",
};

/** The calendar date of `when` in a user's time zone (the server's TIME_ZONE, UTC, when unset or unknown). */
export function localDate(when: Date, timezone: string, serverTimezone = "UTC"): { year: number; month: number; day: number } {
  const tz = TIMEZONE_ALIASES[timezone] ?? (timezone || serverTimezone);
  let parts: Intl.DateTimeFormatPart[];
  try {
    parts = new Intl.DateTimeFormat("en-US", { timeZone: tz, year: "numeric", month: "numeric", day: "numeric" }).formatToParts(when);
  } catch {
    parts = new Intl.DateTimeFormat("en-US", { timeZone: "UTC", year: "numeric", month: "numeric", day: "numeric" }).formatToParts(when);
  }
  const get = (t: string) => Number(parts.find((p) => p.type === t)!.value);
  return { year: get("year"), month: get("month"), day: get("day") };
}

/**
 * Django's |localize of a date: DATE_FORMAT of the language, "N j, Y" for English ("Jan. 5,
 * 2026"), "j M Y" for British English ("5 Jan 2026"). Other languages use the English format
 * here (their translated emails are not reproduced).
 */
export function localizeDate(d: { year: number; month: number; day: number }, language: string): string {
  if (language.toLowerCase().replace("_", "-") === "en-gb") return `${d.day} ${SHORT_MONTHS[d.month - 1]} ${d.year}`;
  return `${AP_MONTHS[d.month - 1]} ${d.day}, ${d.year}`;
}

/** templates/zerver/emails/realm_deactivated.*, for a deactivation by the management command. */
export function renderRealmDeactivatedEmail(c: {
  realmName: string;
  eventDate: string;
  /** data_already_deleted / scheduled_deletion_date of deactivations with a deletion delay. */
  dataAlreadyDeleted?: boolean;
  deletionDate?: string | null;
  emailImagesBaseUrl: string;
  physicalAddress: string;
}): { subject: string; text: string; html: string } {
  let deletion = "";
  if (c.dataAlreadyDeleted) deletion = "All data associated with this organization has been permanently deleted.";
  else if (c.deletionDate) deletion = `All data associated with this organization will be permanently deleted on ${c.deletionDate}.`;
  const first = `Your Zulip organization, ${c.realmName}, was deactivated on ${c.eventDate}.`;
  const text = first + deletion + "\n\nIf you have any questions or concerns, please reply to this email as soon as possible.";
  const firstHtml = `Your Zulip organization, ${escapeHtml(c.realmName)}, was deactivated on ${escapeHtml(c.eventDate)}.`;
  const firstParagraph = [firstHtml, ...(deletion ? [escapeHtml(deletion)] : [])].map((l) => `    ${l}\n`).join("");
  const content = [
    `<p>\n${firstParagraph}</p>`,
    `<p>\n    If you have any questions or concerns, please reply to this email as soon as possible.\n</p>`,
  ].join("\n");
  return {
    subject: `Your Zulip organization ${c.realmName} has been deactivated`.trim().replace(/\n/g, ""),
    text,
    html: emailBaseDefault({
      emailImagesBaseUrl: c.emailImagesBaseUrl,
      physicalAddress: c.physicalAddress,
      illustration: "email_logo.png",
      content,
    }),
  };
}

/**
 * do_send_realm_deactivation_email for acting_user=None: one email per human owner, to the bare
 * address, from "<INSTALLATION_NAME> account security" at the support address (ZULIP_ADMINISTRATOR),
 * dated in the owner's time zone.
 */
export function buildRealmDeactivatedEmails(
  es: EmailSettings,
  realm: RealmEmailInfo,
  owners: EmailUser[],
  opts: { when: Date; serverTimezone?: string; scheduledDeletionDate?: Date | null; dataAlreadyDeleted?: boolean },
): { owner: EmailUser; mail: OutgoingEmail }[] {
  return owners.map((owner) => {
    const date = localizeDate(localDate(opts.when, owner.timezone, opts.serverTimezone), owner.default_language);
    const deletionDate = opts.scheduledDeletionDate
      ? localizeDate(localDate(opts.scheduledDeletionDate, owner.timezone, opts.serverTimezone), owner.default_language)
      : null;
    const mail = buildEmail(es, {
      template: "realm_deactivated",
      rendered: renderRealmDeactivatedEmail({
        realmName: realm.name,
        eventDate: date,
        deletionDate,
        dataAlreadyDeleted: opts.dataAlreadyDeleted,
        emailImagesBaseUrl: es.emailImagesBaseUrl,
        physicalAddress: es.physicalAddress,
      }),
      toEmails: [owner.delivery_email],
      fromName: securityEmailFromName(es),
      fromAddress: supportAddress(es),
      realm: { name: realm.name, host: realm.host, string_id: realm.string_id },
    });
    return { owner, mail };
  });
}

// ---------------------------------------------------------------------------------------------
// Subdomain change

export interface SubdomainChangeResult {
  oldSubdomain: string;
  newSubdomain: string;
  auditLogId: number;
  /** Earlier placeholder realms whose redirect now points at the new URL. */
  redirectsUpdated: { id: number; string_id: string; name: string }[];
}

/**
 * The REALM_SUBDOMAIN_CHANGED (214) extra_data of do_change_realm_subdomain, per release
 * (zerver/actions/realm_settings.py):
 * - 10.x, 11.x: {"old_subdomain": old, "new_subdomain": new};
 * - 12.x: {RealmAuditLog.OLD_VALUE: old, NEW_VALUE: new} (PR #36731 "Add or fix extra_data
 *   field for audit log entries for changing a property", Nov 2025; the code keeps a comment
 *   that "old RealmAuditLog entries for this used old_subdomain and new_subdomain"), plus
 *   "was_demo_organization": whether the realm was a demo organization (its scheduled deletion
 *   date set) before the change (PR #37161, Dec 2025, to track demo conversions). Both were
 *   merged on main between 11.0 and 12.0; the 12.x file itself is not in the index we read.
 */
export function subdomainChangedExtraData(series: string, oldSubdomain: string, newSubdomain: string, wasDemo: boolean): Record<string, unknown> {
  if (!seriesAtLeast(series, "12.x")) return { old_subdomain: oldSubdomain, new_subdomain: newSubdomain };
  return { [OLD_VALUE]: oldSubdomain, [NEW_VALUE]: newSubdomain, was_demo_organization: wasDemo };
}

/**
 * The first transaction of do_change_realm_subdomain: string_id = new (and a demo
 * organization's scheduled deletion cleared), REALM_SUBDOMAIN_CHANGED (extra_data as the
 * release writes it, see subdomainChangedExtraData), and every deactivated realm redirecting
 * to the old URL redirected to the new one.
 */
export async function renameRealmSubdomain(
  q: Queryable,
  realm: RealmRow,
  newSubdomain: string,
  opts: { oldUrl: string; newUrl: string; now?: Date; cache?: CacheInvalidation },
): Promise<SubdomainChangeResult> {
  const now = opts.now ?? new Date();
  const old = realm.string_id;
  const demoColumn = await hasColumn(q, "zerver_realm", "demo_organization_scheduled_deletion_date");
  const wasDemo = demoColumn
    ? Boolean((await q.query("SELECT demo_organization_scheduled_deletion_date IS NOT NULL AS demo FROM zerver_realm WHERE id = $1", [realm.id])).rows[0]?.demo)
    : false;
  await q.query(
    `UPDATE zerver_realm SET string_id = $2${demoColumn ? ", demo_organization_scheduled_deletion_date = NULL" : ""} WHERE id = $1`,
    [realm.id, newSubdomain],
  );
  const [auditLogId] = await insertAuditLog(q, [
    {
      realmId: realm.id,
      eventType: AuditLogEventType.REALM_SUBDOMAIN_CHANGED,
      eventTime: now,
      actingUserId: null,
      extraData: subdomainChangedExtraData(await databaseSeries(q), old, newSubdomain, wasDemo),
    },
  ]);
  await opts.cache?.realmChanged(
    q,
    { id: realm.id, string_id: newSubdomain, deactivated: realm.deactivated },
    demoColumn ? ["string_id", "demo_organization_scheduled_deletion_date"] : ["string_id"],
    { oldStringId: old },
  );
  const { rows } = await q.query(
    "SELECT id, string_id, name, deactivated FROM zerver_realm WHERE deactivated AND deactivated_redirect = $1 ORDER BY id FOR NO KEY UPDATE",
    [opts.oldUrl],
  );
  for (const r of rows) await setDeactivatedRedirect(q, { id: Number(r.id), string_id: r.string_id, deactivated: r.deactivated }, opts.newUrl, opts.cache);
  return { oldSubdomain: old, newSubdomain, auditLogId, redirectsUpdated: rows.map((r) => ({ id: Number(r.id), string_id: r.string_id, name: r.name })) };
}

/**
 * The redirect placeholder of do_change_realm_subdomain: do_create_realm(old subdomain, name)
 * with every default (system groups, settings, default channels, ...), do_deactivate_realm(...,
 * "subdomain_change", email_owners=False) and do_add_deactivated_redirect(new URL).
 */
export async function createRedirectPlaceholder(
  q: Queryable,
  opts: {
    oldSubdomain: string;
    name: string;
    newUrl: string;
    now?: Date;
    cache?: CacheInvalidation;
    /** Where the placeholder's own events go (its realm is filled in here). */
    events?: { notify: Omit<Notify, "realm">; featureLevel: number };
  },
): Promise<{ realm: CreatedRealm; deactivation: DeactivationResult }> {
  const created = await createRealm(q, { stringId: opts.oldSubdomain, name: opts.name, ...(opts.now ? { dateCreated: opts.now } : {}) });
  const notify = opts.events && { ...opts.events.notify, realm: { id: created.id, string_id: opts.oldSubdomain } };
  if (notify) await sendRealmCreationEvents(q, notify, created, opts.events!.featureLevel);
  const row = await lockRealm(q, created.id);
  const deactivation = await deactivateRealm(q, row, { reason: "subdomain_change", cache: opts.cache, notify, ...(opts.now ? { now: opts.now } : {}) });
  await setDeactivatedRedirect(q, { id: created.id, string_id: opts.oldSubdomain, deactivated: true }, opts.newUrl, opts.cache);
  return { realm: created, deactivation };
}

// ---------------------------------------------------------------------------------------------
// Small helpers the commands share

export { cacheReportJson as cacheJson } from "../cache.js";

/** SECRET_KEY when readable (to skip sessions Django would not honour), else undefined. */
export function secretKeyOrUndefined(settings: { get(name: "SECRET_KEY"): string }): string | undefined {
  try {
    return settings.get("SECRET_KEY");
  } catch {
    return undefined;
  }
}

export function languageNote(language: string): string | null {
  return language === "en" ? null : `rendered in English (Zulip would use the user's language, ${language})`;
}

