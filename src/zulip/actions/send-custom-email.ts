// send_custom_email: email users a Markdown document with Zulip branding, as Zulip's
// zerver/lib/send_email.py send_custom_email (with custom_email_sender) does for manage.py
// send_custom_email. The file's headers, its Jinja subset and its Markdown are handled by
// src/zulip/templates/ (email-headers, jinja, markdown); this module chooses the recipients,
// writes the rows and sends.
//
// Recipients (selectCustomEmailRecipients): --entire-server (active humans of active realms),
// --marketing (those with enable_marketing_emails, not long-term idle unless owner/admin, one
// email per address), --all-sponsored-org-admins (admins/owners of realms on the sponsored plan,
// one email per address), --json-file (the users whose ids are the keys; each value extends that
// user's template context), -u/--users, -a/--all-users (with -r). Then --admins-only keeps
// administrators and owners; with TERMS_OF_SERVICE_VERSION set, users who never accepted the
// terms are left out.
//
// Zulip 12 and newer record one RealmAuditLog row (810 CUSTOM_EMAIL_SENT, modified_user = the
// recipient, extra_data {"email_id": <id>, "email_subject": <subject>}) per delivered email, and
// skip users who already have one for the same email id; with --marketing /
// --all-sponsored-org-admins an address counts as received when any account with that address
// got it. Older databases: no rows, no exclusion (as Zulip 10/11). Unlike Zulip, rows are written
// only for emails the SMTP server accepted, so running the command again retries exactly the
// failures. --marketing writes one confirmation_confirmation row (type 4, UNSUBSCRIBE) per
// recipient, as Zulip's one_click_unsubscribe_link does.
import { AuditLogEventType, insertAuditLog } from "../audit.js";
import { CONFIRMATION_TYPES, contentTypeId, UNSUBSCRIBE_VALIDITY_DAYS } from "../confirmation.js";
import { getRealm, getUsers, type UserProfile } from "../lookup.js";
import { PlanType, TOS_VERSION_BEFORE_FIRST_LOGIN } from "../models.js";
import { REALM_ADMIN_ROLES_SQL } from "../roles.js";
import type { Db, Queryable } from "../../db/db.js";
import { seriesAtLeast } from "../../db/zulip-versions.js";
import {
  buildEmail,
  type Delivery,
  deliverEmails,
  type EmailSettings,
  noreplyAddress,
  type OutgoingEmail,
  supportAddress,
  tokenizedNoreplyAddress,
} from "../../services/email.js";
import { realmHost, realmUrl, type ZulipSettings } from "../../config/settings.js";
import { CommandError } from "../../lib/errors.js";
import { READ_LIMITS, readOptionFile } from "../../lib/files.js";
import { generateKey } from "../../lib/random.js";
import { type EmailTemplateFile, getHeader } from "../templates/email-headers.js";
import { emailBaseDefault, escapeHtml } from "../templates/html.js";
import { type CompiledTemplate, compileTemplate, renderTemplate } from "../templates/jinja.js";
import { renderMarkdown } from "../templates/markdown.js";

/** Zulip's release that added the 810 rows and the "already received" exclusion. */
const AUDITED_SINCE = "12.x";

// =============================================================================================
// Recipients

/** Who gets the email: the command's mutually exclusive selectors. */
export type CustomEmailTarget =
  | { kind: "entire_server" }
  | { kind: "marketing" }
  | { kind: "all_sponsored_org_admins" }
  | { kind: "json_file"; path: string }
  | { kind: "users"; realm: string | undefined; users: string | undefined; allUsers: boolean };

/** A recipient: the user's columns the email needs, with its realm's string_id and name. */
export type RecipientRow = Pick<UserProfile, "id" | "email" | "delivery_email" | "full_name" | "realm_id" | "role"> & {
  string_id: string;
  realm_name: string;
};

export interface Recipient {
  row: RecipientRow;
  realmUrl: string;
  realmHost: string;
  /** --json-file: this user's value, extending the template context. */
  extra?: Record<string, unknown>;
  unsubscribeLink?: string;
}

interface Selection {
  where: string;
  params: unknown[];
  distinctEmail: boolean;
  extraContext: Map<number, Record<string, unknown>> | null;
}

function activeHumans(alias = "u"): string {
  return `${alias}.is_active AND NOT ${alias}.is_bot AND NOT ${alias}.is_mirror_dummy AND NOT r.deactivated`;
}

async function selectTargets(db: Db, target: CustomEmailTarget): Promise<Selection> {
  switch (target.kind) {
    case "entire_server":
      return { where: activeHumans(), params: [], distinctEmail: false, extraContext: null };
    case "marketing":
      return {
        where: `${activeHumans()} AND u.enable_marketing_emails AND (NOT u.long_term_idle OR u.role IN (${REALM_ADMIN_ROLES_SQL}))`,
        params: [],
        distinctEmail: true,
        extraContext: null,
      };
    case "all_sponsored_org_admins":
      if (!(await db.hasColumn("zerver_realm", "plan_type"))) {
        throw new CommandError("This database has no zerver_realm.plan_type column, so there are no sponsored organizations to select.");
      }
      return {
        where: `${activeHumans()} AND u.role IN (${REALM_ADMIN_ROLES_SQL}) AND r.plan_type = ${PlanType.STANDARD_FREE}`,
        params: [],
        distinctEmail: true,
        extraContext: null,
      };
    case "json_file": {
      const extra = readJsonFileContext(target.path);
      return { where: "u.id = ANY($1::int[])", params: [[...extra.keys()]], distinctEmail: false, extraContext: extra };
    }
    case "users": {
      const realm = await getRealm(db, target.realm);
      const users = await getUsers(db, { users: target.users, allUsers: target.allUsers }, realm, { isBot: false });
      return { where: "u.id = ANY($1::int[])", params: [users.map((u) => Number(u.id))], distinctEmail: false, extraContext: null };
    }
  }
}

/** --json-file: {"<user id>": {<extra context>}, …}. */
function readJsonFileContext(file: string): Map<number, Record<string, unknown>> {
  const text = readOptionFile(file, READ_LIMITS.json, "--json-file");
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e: any) {
    throw new CommandError(`Cannot read --json-file ${file}: ${e?.message ?? e}`);
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new CommandError(`--json-file ${file} must hold a JSON object mapping user ids to context dicts.`);
  }
  const extra = new Map<number, Record<string, unknown>>();
  for (const [key, value] of Object.entries(data as Record<string, unknown>)) {
    const id = /^\s*[+-]?\d+\s*$/.test(key) ? Number(key) : Number.NaN;
    if (!Number.isSafeInteger(id)) throw new CommandError(`--json-file ${file}: key '${key}' is not a user id.`);
    extra.set(id, value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : {});
  }
  return extra;
}

async function loadRecipients(db: Db, sel: Selection, adminsOnly: boolean, tosRequired: boolean): Promise<RecipientRow[]> {
  const conds = [`(${sel.where})`];
  if (adminsOnly) conds.push(`u.role IN (${REALM_ADMIN_ROLES_SQL})`);
  if (tosRequired) conds.push(`u.tos_version IS NOT NULL AND u.tos_version <> '${TOS_VERSION_BEFORE_FIRST_LOGIN}'`);
  const cols = `u.id, u.email, u.delivery_email, u.full_name, u.realm_id, u.role, r.string_id, r.name AS realm_name`;
  const sql = sel.distinctEmail
    ? `SELECT DISTINCT ON (lower(u.delivery_email)) ${cols} FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id
        WHERE ${conds.join(" AND ")} ORDER BY lower(u.delivery_email), u.id`
    : `SELECT ${cols} FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id WHERE ${conds.join(" AND ")} ORDER BY u.id`;
  const { rows } = await db.query(sql, sel.params);
  return rows.map((r) => ({ ...r, id: Number(r.id), realm_id: Number(r.realm_id), role: Number(r.role) }));
}

/** The users (or, per address, the addresses) that already have an 810 row for this email. */
async function alreadyReceived(db: Queryable, emailId: string, byEmail: boolean): Promise<(r: RecipientRow) => boolean> {
  if (byEmail) {
    const { rows } = await db.query(
      `SELECT DISTINCT lower(u.delivery_email) AS e FROM zerver_realmauditlog a JOIN zerver_userprofile u ON u.id = a.modified_user_id
        WHERE a.event_type = $1 AND a.extra_data ->> 'email_id' = $2`,
      [AuditLogEventType.CUSTOM_EMAIL_SENT, emailId],
    );
    const emails = new Set(rows.map((r) => r.e as string));
    return (r) => emails.has(r.delivery_email.toLowerCase());
  }
  const { rows } = await db.query(`SELECT DISTINCT modified_user_id AS id FROM zerver_realmauditlog WHERE event_type = $1 AND extra_data ->> 'email_id' = $2`, [
    AuditLogEventType.CUSTOM_EMAIL_SENT,
    emailId,
  ]);
  const ids = new Set(rows.map((r) => Number(r.id)));
  return (r) => ids.has(r.id);
}

export interface CustomEmailRecipients {
  recipients: Recipient[];
  /** This release records 810 rows (and skips those who already received the email). */
  audited: boolean;
  /** Left out because they already received this email. */
  excluded: number;
  /** --marketing: each email gets a one-click unsubscribe link. */
  marketing: boolean;
}

/**
 * The recipients of the email with this id, as send_custom_email's command and
 * send_custom_email() choose them (see the top of this file).
 */
export async function selectCustomEmailRecipients(
  db: Db,
  settings: ZulipSettings,
  target: CustomEmailTarget,
  opts: { adminsOnly: boolean; emailId: string },
): Promise<CustomEmailRecipients> {
  const audited = seriesAtLeast(db.release, AUDITED_SINCE);
  const sel = await selectTargets(db, target);
  const tosVersion = settings.fileValue("TERMS_OF_SERVICE_VERSION", null);
  let rows = await loadRecipients(db, sel, opts.adminsOnly, tosVersion !== null);
  let excluded = 0;
  if (audited) {
    const received = await alreadyReceived(db, opts.emailId, sel.distinctEmail);
    const kept = rows.filter((r) => !received(r));
    excluded = rows.length - kept.length;
    rows = kept;
  }
  const recipients = rows.map((row): Recipient => {
    const extra = sel.extraContext?.get(row.id);
    return { row, realmUrl: realmUrl(settings, row.string_id), realmHost: realmHost(settings, row.string_id), ...(extra !== undefined ? { extra } : {}) };
  });
  return { recipients, audited, excluded, marketing: target.kind === "marketing" };
}

// =============================================================================================
// The email

export interface PreparedEmail {
  emailId: string;
  templateName: string;
  subject: CompiledTemplate;
  subjectSource: string;
  text: CompiledTemplate;
  html: CompiledTemplate;
  htmlBefore: string;
  htmlAfter: string;
  fromNameSource: string | undefined;
  fromNameOption: string | undefined;
  fromAddress: string;
  replyTo: string | undefined;
}

export interface CustomEmailOptions {
  /** The template's path, for messages. */
  where: string;
  subject?: string | undefined;
  fromName?: string | undefined;
  fromAddress?: string | undefined;
  replyTo?: string | undefined;
}

const CONTENT_MARK = "\u0000CONTENT\u0000";

/**
 * custom_email_sender(): the subject (option or header; required before anything else happens),
 * the compiled templates and the From address (TOKENIZED_NO_REPLY, NO_REPLY and SUPPORT name
 * Zulip's FromAddress values). `es` is null in a dry run without usable email settings.
 */
export function prepareCustomEmail(file: EmailTemplateFile, opts: CustomEmailOptions, es: EmailSettings | null, settings: ZulipSettings): PreparedEmail {
  const subjectSource = getHeader(opts.subject, file.headers.get("subject"), "subject");
  const where = opts.where;
  const html = compileTemplate(renderMarkdown(file.body), where);
  const text = compileTemplate(file.body, where);
  const subject = compileTemplate(subjectSource, `${where} (subject)`);
  const support = es ? supportAddress(es) : "";
  let fromAddress: string = opts.fromAddress ?? support;
  if (es) {
    if (fromAddress === "TOKENIZED_NO_REPLY") fromAddress = tokenizedNoreplyAddress(es);
    else if (fromAddress === "NO_REPLY") fromAddress = noreplyAddress(es);
    else if (fromAddress === "SUPPORT") fromAddress = support;
  }
  const imagesBase = es?.emailImagesBaseUrl ?? `${settings.get("ROOT_DOMAIN_URI")}/static/images/emails`;
  const page = emailBaseDefault({
    emailImagesBaseUrl: imagesBase,
    physicalAddress: es?.physicalAddress ?? "",
    illustration: "email_logo.png",
    content: CONTENT_MARK,
  });
  const [htmlBefore, htmlAfter] = page.split(CONTENT_MARK);
  return {
    emailId: file.hash,
    templateName: `custom_email_${file.hash}`,
    subject,
    subjectSource,
    text,
    html,
    htmlBefore: htmlBefore!,
    htmlAfter: htmlAfter!,
    fromNameSource: file.headers.get("from"),
    fromNameOption: opts.fromName,
    fromAddress,
    replyTo: opts.replyTo,
  };
}

/**
 * The sender's name: get_header(from_name), checked per email as Zulip does (so only when there
 * is an email to send; without recipients whichever was given, or "").
 */
export function customEmailFromName(p: PreparedEmail, haveRecipients: boolean): string {
  return haveRecipients ? getHeader(p.fromNameOption, p.fromNameSource, "from_name") : (p.fromNameOption ?? p.fromNameSource ?? "");
}

function contextFor(r: Recipient, es: EmailSettings | null): Record<string, unknown> {
  const realm = {
    id: r.row.realm_id,
    string_id: r.row.string_id,
    name: r.row.realm_name,
    url: r.realmUrl,
    uri: r.realmUrl,
    host: r.realmHost,
    toString: () => `${r.row.string_id} ${r.row.realm_id}`,
  };
  const ctx: Record<string, unknown> = {
    realm,
    realm_string_id: r.row.string_id,
    realm_url: r.realmUrl,
    realm_uri: r.realmUrl,
    realm_name: r.row.realm_name,
  };
  if (r.unsubscribeLink !== undefined) ctx.unsubscribe_link = r.unsubscribeLink;
  if (r.extra) Object.assign(ctx, r.extra);
  // build_email's additions
  ctx.support_email = es ? supportAddress(es) : "";
  ctx.email_images_base_url = es?.emailImagesBaseUrl ?? "";
  ctx.physical_address = es?.physicalAddress ?? "";
  return ctx;
}

export interface RenderedCustomEmail {
  subject: string;
  text: string;
  html: string;
}

/** The email one recipient gets: the templates interpolated with their context. */
function renderCustomEmail(p: PreparedEmail, r: Recipient, es: EmailSettings | null): RenderedCustomEmail {
  const ctx = contextFor(r, es);
  const subject = renderTemplate(p.subject, ctx, false).trim().replace(/\n/g, "");
  const text = renderTemplate(p.text, ctx, false);
  let content = renderTemplate(p.html, ctx, true);
  if (typeof ctx.unsubscribe_link === "string") {
    content +=
      `\n<p><a href="${escapeHtml(r.realmUrl)}/#settings/notifications">Manage email preferences</a> | ` +
      `<a href="${escapeHtml(ctx.unsubscribe_link)}">Unsubscribe from marketing emails</a></p>`;
  }
  return { subject, text, html: p.htmlBefore + content + p.htmlAfter };
}

/**
 * A dry run's sample: the first recipient's email (with a placeholder for the unsubscribe link
 * that would be created when sending), or null without recipients.
 */
export function previewCustomEmail(
  p: PreparedEmail,
  sel: CustomEmailRecipients,
  es: EmailSettings | null,
): { recipient: Recipient; rendered: RenderedCustomEmail } | null {
  const first = sel.recipients[0];
  if (!first) return null;
  const sample: Recipient = sel.marketing
    ? { ...first, unsubscribeLink: `${first.realmUrl}/accounts/unsubscribe/marketing/<key created when sending>` }
    : first;
  return { recipient: first, rendered: renderCustomEmail(p, sample, es) };
}

function buildFor(p: PreparedEmail, r: Recipient, es: EmailSettings, fromName: string): OutgoingEmail {
  const rendered = renderCustomEmail(p, r, es);
  const mail = buildEmail(es, {
    template: p.templateName,
    rendered,
    toUsers: [{ full_name: r.row.full_name, delivery_email: r.row.delivery_email }],
    fromName,
    fromAddress: p.fromAddress,
    ...(p.replyTo !== undefined ? { replyTo: p.replyTo } : {}),
    realm: { name: r.row.realm_name, host: r.realmHost, string_id: r.row.string_id },
  });
  if (r.unsubscribeLink !== undefined) {
    mail.headers["List-Unsubscribe"] = `<${r.unsubscribeLink}>`;
    mail.headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click";
  }
  return mail;
}

/** one_click_unsubscribe_link(user, "marketing") for many users at once (one INSERT per 5,000). */
async function createUnsubscribeLinks(db: Db, recipients: Recipient[]): Promise<void> {
  if (recipients.length === 0) return;
  const ct = await contentTypeId(db, "zerver", "userprofile");
  const now = new Date();
  const expiry = new Date(now.getTime() + UNSUBSCRIBE_VALIDITY_DAYS * 86_400_000);
  for (let start = 0; start < recipients.length; start += 5000) {
    const chunk = recipients.slice(start, start + 5000);
    const keys = chunk.map(() => generateKey());
    await db.tx(async (q) => {
      await q.query(
        `INSERT INTO confirmation_confirmation (content_type_id, object_id, date_sent, confirmation_key, expiry_date, realm_id, type)
         SELECT $1, t.uid, $2, t.k, $3, t.rid, $4 FROM unnest($5::int[], $6::text[], $7::int[]) AS t(uid, k, rid)`,
        [ct, now, expiry, CONFIRMATION_TYPES.UNSUBSCRIBE, chunk.map((r) => r.row.id), keys, chunk.map((r) => r.row.realm_id)],
      );
    });
    chunk.forEach((r, k) => {
      r.unsubscribeLink = `${r.realmUrl}/accounts/unsubscribe/marketing/${keys[k]}`;
    });
  }
}

/** Writes the 810 rows of delivered emails in batches, as the sends complete. */
class AuditWriter {
  private pending: Recipient[] = [];
  private chain: Promise<void> = Promise.resolve();
  written = 0;
  /** The ids of the rows written. */
  readonly ids: number[] = [];
  error: Error | null = null;

  constructor(
    private readonly db: Db,
    private readonly emailId: string,
    private readonly subject: string,
    private readonly batch = 200,
  ) {}

  add(r: Recipient): void {
    this.pending.push(r);
    if (this.pending.length >= this.batch) void this.flush();
  }

  flush(): Promise<void> {
    if (this.pending.length === 0) return this.chain;
    const rows = this.pending;
    this.pending = [];
    this.chain = this.chain.then(async () => {
      if (this.error) return;
      try {
        const now = new Date();
        const extraData = { email_id: this.emailId, email_subject: this.subject };
        const ids = await this.db.tx((q) =>
          insertAuditLog(
            q,
            rows.map((r) => ({
              realmId: r.row.realm_id,
              eventType: AuditLogEventType.CUSTOM_EMAIL_SENT,
              eventTime: now,
              actingUserId: null,
              modifiedUserId: r.row.id,
              extraData,
            })),
          ),
        );
        this.written += rows.length;
        this.ids.push(...ids);
      } catch (e) {
        this.error = e as Error;
      }
    });
    return this.chain;
  }
}

export interface CustomEmailSent {
  delivery: Delivery<Recipient>;
  /** The 810 rows written (none on older releases). */
  auditLogIds: number[];
  /** How many delivered emails were recorded. */
  auditWritten: number;
  /** Recording the delivered emails failed (they were sent). */
  auditError: Error | null;
}

/**
 * Send the email to every recipient: the first email is rendered before anything is written
 * (template errors surface here, not mid-send), --marketing's unsubscribe confirmations are
 * created, then the emails go out over a few pooled SMTP connections, each delivered one
 * recorded by an 810 row on releases that have them.
 */
export async function sendCustomEmail(
  db: Db,
  p: PreparedEmail,
  sel: CustomEmailRecipients,
  es: EmailSettings,
  fromName: string,
  opts: { progress: boolean; err: (line: string) => void },
): Promise<CustomEmailSent> {
  const recipients = sel.recipients;
  buildFor(p, recipients[0]!, es, fromName);
  if (sel.marketing) await createUnsubscribeLinks(db, recipients);
  const audit = sel.audited ? new AuditWriter(db, p.emailId, p.subjectSource) : null;
  let delivery: Delivery<Recipient>;
  try {
    delivery = await deliverEmails(es, recipients, (r) => buildFor(p, r, es, fromName), {
      progress: opts.progress,
      onSent: (r) => audit?.add(r),
      failureLine: (r, error) => `Failed to send email to ${r.row.delivery_email} (${r.row.string_id}): ${error.message}`,
      err: opts.err,
    });
  } finally {
    await audit?.flush();
  }
  return { delivery, auditLogIds: audit?.ids ?? [], auditWritten: audit?.written ?? 0, auditError: audit?.error ?? null };
}
