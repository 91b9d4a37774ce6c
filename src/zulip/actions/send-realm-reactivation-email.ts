// do_send_realm_reactivation_email (zerver/actions/realm_settings.py): a RealmReactivationStatus,
// its REALM_REACTIVATION confirmation and the REALM_REACTIVATION_EMAIL_SENT row (one transaction,
// the realm row locked), then the email to the realm's human owners and administrators.
import { AuditLogEventType, insertAuditLog } from "../audit.js";
import { CONFIRMATION_STATUS, CONFIRMATION_TYPES, insertConfirmation } from "../confirmation.js";
import { CommandError } from "../../lib/errors.js";
import type { Db, Queryable } from "../../db/db.js";
import {
  buildEmail,
  EmailDeliveryError,
  type EmailSettings,
  Mailer,
  type OutgoingEmail,
  securityEmailFromName,
  supportAddress,
  tokenizedNoreplyAddress,
} from "../../services/email.js";
import { type EmailUser, lockRealm } from "../realms.js";
import { BUTTON_STYLE, emailBaseDefault, escapeHtml, linkTag } from "../templates/html.js";
import type { RealmEmailInfo } from "./deactivate-realm.js";

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
async function createReactivationLink(
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

/**
 * do_send_realm_reactivation_email's rows in a transaction of their own, the realm row locked;
 * refused when the realm was reactivated meanwhile.
 */
export async function doCreateReactivationLink(
  db: Db,
  realmId: number,
  opts: { realmUrl: string; validityDays: number; now?: Date; key?: string },
): Promise<ReactivationLink> {
  return db.tx(async (q) => {
    const locked = await lockRealm(q, realmId);
    if (!locked.deactivated) throw new CommandError(`The realm ${locked.name} is already active.`);
    return createReactivationLink(q, locked, opts);
  });
}

/** templates/zerver/emails/realm_reactivation.{subject.txt,txt,html}, English, self-hosted. */
function renderRealmReactivationEmail(c: {
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
function buildRealmReactivationEmail(
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

/**
 * The email of do_send_realm_reactivation_email, sent (buildRealmReactivationEmail, with
 * settings.CORPORATE_ENABLED read from settings.py): error null when the SMTP server accepted
 * it, else its refusal; a connection that cannot be opened throws.
 */
export async function sendRealmReactivationEmail(
  es: EmailSettings,
  settings: { fileValue(name: string, fallback: unknown): unknown },
  realm: RealmEmailInfo,
  admins: EmailUser[],
  confirmationUrl: string,
): Promise<{ error: string | null }> {
  let corporateEnabled = false;
  try {
    corporateEnabled = settings.fileValue("CORPORATE_ENABLED", false) === true;
  } catch {
    corporateEnabled = false;
  }
  const mail = buildRealmReactivationEmail(es, realm, admins, confirmationUrl, { corporateEnabled });
  const mailer = await Mailer.open(es);
  try {
    await mailer.send(mail);
    return { error: null };
  } catch (e) {
    if (!(e instanceof EmailDeliveryError)) throw e;
    return { error: e.message };
  } finally {
    mailer.close();
  }
}
