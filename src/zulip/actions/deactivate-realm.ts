// do_deactivate_realm (zerver/actions/realm_settings.py) for manage.py deactivate_realm and the
// redirect placeholder of change_realm_subdomain; do_add_deactivated_redirect;
// delete_realm_user_sessions (zerver/lib/sessions.py); and do_send_realm_deactivation_email (the
// owners' email of deactivate_realm --email_owners).
//
// deactivateRealm / setDeactivatedRedirect / deleteRealmSessions run inside the caller's
// transaction; doDeactivateRealm and doAddDeactivatedRedirect own theirs (the realm row locked as
// Zulip's select_for_update(no_key=True) locks it). Memcached coherence goes through the
// CacheInvalidation passed in (flush_realm for every realm saved, the cached copies of deleted
// sessions); real-time events and queue jobs through the `notify` passed in, staged inside the
// transaction in Zulip's order and sent after the commit.
//
// Not reproduced: Zulip Cloud's billing downgrade (BILLING_ENABLED only).
import { AuditLogEventType, insertAuditLog, ROLE_COUNT, roleCounts } from "../audit.js";
import type { CacheInvalidation } from "../cache.js";
import type { Db, Queryable } from "../../db/db.js";
import type { Notify } from "../../services/events.js";
import { activeUserIds } from "../audiences.js";
import { buildEmail, EmailDeliveryError, type EmailSettings, Mailer, type OutgoingEmail, securityEmailFromName, supportAddress } from "../../services/email.js";
import type { Realm } from "../lookup.js";
import { type EmailUser, humanOwnerUsers, lockRealm } from "../realms.js";
import { deleteUserSessions, findUserSessions, type UserSession } from "../sessions.js";
import { emailBaseDefault, escapeHtml } from "../templates/html.js";

/** RealmDeactivationReasonType (zerver/actions/realm_settings.py); manage.py accepts any text. */
export const REALM_DEACTIVATION_REASONS = [
  "owner_request",
  "tos_violation",
  "inactivity",
  "self_hosting_migration",
  "demo_expired",
  "subdomain_change",
] as const;

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
  realm: Realm,
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
async function deleteScheduledEmails(q: Queryable, realmId: number): Promise<number> {
  await q.query("DELETE FROM zerver_scheduledemail_users WHERE scheduledemail_id IN (SELECT id FROM zerver_scheduledemail WHERE realm_id = $1)", [realmId]);
  const { rowCount } = await q.query("DELETE FROM zerver_scheduledemail WHERE realm_id = $1", [realmId]);
  return rowCount ?? 0;
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
export async function deleteRealmSessions(q: Queryable, realmId: number, cache?: CacheInvalidation, opts: { secretKey?: string } = {}): Promise<UserSession[]> {
  const { rows } = await q.query("SELECT id FROM zerver_userprofile WHERE realm_id = $1", [realmId]);
  return deleteUserSessions(
    q,
    rows.map((r) => Number(r.id)),
    cache,
    { unexpiredOnly: true, ...(opts.secretKey !== undefined ? { secretKey: opts.secretKey } : {}) },
  );
}

/** What deactivating the realm now would remove, without writing: its scheduled emails and its users' unexpired sessions. */
export async function planRealmDeactivation(
  q: Queryable,
  realmId: number,
  opts: { secretKey?: string } = {},
): Promise<{ scheduledEmails: number; sessions: UserSession[] }> {
  const { rows: se } = await q.query("SELECT count(*)::int AS n FROM zerver_scheduledemail WHERE realm_id = $1", [realmId]);
  const { rows: users } = await q.query("SELECT id FROM zerver_userprofile WHERE realm_id = $1", [realmId]);
  const sessions = await findUserSessions(
    q,
    users.map((u) => Number(u.id)),
    { unexpiredOnly: true, ...(opts.secretKey !== undefined ? { secretKey: opts.secretKey } : {}) },
  );
  return { scheduledEmails: Number(se[0].n), sessions };
}

/** do_add_deactivated_redirect in a transaction of its own, the realm row locked. */
export async function doAddDeactivatedRedirect(db: Db, realmId: number, url: string, cache?: CacheInvalidation): Promise<void> {
  await db.tx(async (q) => {
    const locked = await lockRealm(q, realmId);
    await setDeactivatedRedirect(q, { id: locked.id, string_id: locked.string_id, deactivated: locked.deactivated }, url, cache);
  });
  cache?.changeCommitted();
}

/**
 * manage.py deactivate_realm's do_deactivate_realm: one transaction (the realm row locked; null
 * when it turns out to be deactivated already, nothing written), then, after the commit as Zulip
 * does, delete_realm_user_sessions in a second one.
 */
export async function doDeactivateRealm(
  db: Db,
  realmId: number,
  opts: { reason: string; actingUserId?: number | null; now?: Date; cache?: CacheInvalidation; notify?: Notify; secretKey?: string },
): Promise<(DeactivationResult & { sessionsDeleted: number }) | null> {
  const tx = <T>(fn: (q: Queryable) => Promise<T>) => (opts.notify ? opts.notify.events.tx(db, fn) : db.tx(fn));
  const outcome = await tx(async (q) => {
    const locked = await lockRealm(q, realmId);
    if (locked.deactivated) return null;
    return deactivateRealm(q, locked, opts);
  });
  if (outcome === null) return null;
  opts.cache?.changeCommitted();
  const sessions = await db.tx((q) => deleteRealmSessions(q, realmId, opts.cache, opts.secretKey !== undefined ? { secretKey: opts.secretKey } : {}));
  return { ...outcome, sessionsDeleted: sessions.length };
}

// ---------------------------------------------------------------------------------------------
// Realm deactivation email

export interface RealmEmailInfo {
  name: string;
  string_id: string;
  host: string;
  url: string;
}

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
function localDate(when: Date, timezone: string, serverTimezone = "UTC"): { year: number; month: number; day: number } {
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
function localizeDate(d: { year: number; month: number; day: number }, language: string): string {
  if (language.toLowerCase().replace("_", "-") === "en-gb") return `${d.day} ${SHORT_MONTHS[d.month - 1]} ${d.year}`;
  return `${AP_MONTHS[d.month - 1]} ${d.day}, ${d.year}`;
}

/** templates/zerver/emails/realm_deactivated.*, for a deactivation by the management command. */
function renderRealmDeactivatedEmail(c: {
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
  const content = [`<p>\n${firstParagraph}</p>`, `<p>\n    If you have any questions or concerns, please reply to this email as soon as possible.\n</p>`].join(
    "\n",
  );
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

/** One owner's deactivation email: error null when the SMTP server accepted it. */
export interface OwnerEmailResult {
  owner: EmailUser & { email: string; realm_id: number };
  error: string | null;
}

/**
 * do_send_realm_deactivation_email for manage.py deactivate_realm --email_owners: the realm's
 * active human owners emailed (buildRealmDeactivatedEmails) over one SMTP connection. An email
 * the server refuses is reported (onFailure, as it happens) and the others are still sent; a
 * connection that cannot be opened throws.
 */
export async function sendRealmDeactivationEmails(
  q: Queryable,
  realmId: number,
  es: EmailSettings,
  realm: RealmEmailInfo,
  opts: { when: Date; serverTimezone?: string; onFailure?: (owner: EmailUser, message: string) => void },
): Promise<OwnerEmailResult[]> {
  const owners = await humanOwnerUsers(q, realmId);
  const mails = buildRealmDeactivatedEmails(es, realm, owners, {
    when: opts.when,
    ...(opts.serverTimezone !== undefined ? { serverTimezone: opts.serverTimezone } : {}),
  });
  if (!mails.length) return [];
  const results: OwnerEmailResult[] = [];
  const mailer = await Mailer.open(es);
  try {
    for (const [i, { mail }] of mails.entries()) {
      const owner = owners[i];
      try {
        await mailer.send(mail);
        results.push({ owner, error: null });
      } catch (e) {
        if (!(e instanceof EmailDeliveryError)) throw e;
        results.push({ owner, error: e.message });
        opts.onFailure?.(owner, e.message);
      }
    }
  } finally {
    mailer.close();
  }
  return results;
}
