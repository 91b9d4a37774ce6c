// The shared email layer: Zulip's outgoing-email settings, its From/To/Reply-To/List-Id headers
// (zerver/lib/send_email.py: FromAddress, build_email), SMTP delivery through nodemailer with
// the settings Django's SMTP backend uses, bulk sending over pooled connections, and the
// send_email.log lines Zulip writes.
//
// nodemailer is imported only when something is actually sent.
import fs from "node:fs";
import path from "node:path";
import { format } from "node:util";
import type { Config } from "../config/config.js";
import { generateKey } from "../lib/random.js";
import { EnvironmentError } from "../lib/errors.js";
import { asctime } from "../lib/managelog.js";
import { Progress } from "../lib/progress.js";
import { pyStrRepr } from "../lib/pyformat.js";
import { EMAIL_BACKENDS, type ZulipSettings } from "../config/settings.js";

export const EMAIL_DOCS_URL = "https://zulip.readthedocs.io/en/latest/production/email.html";

// ---------------------------------------------------------------------------------------------
// Settings

export interface EmailSettings {
  host: string | null;
  port: number;
  /** EMAIL_USE_TLS: STARTTLS on a plain connection. */
  useTls: boolean;
  /** EMAIL_USE_SSL: implicit TLS from the first byte. */
  useSsl: boolean;
  user: string;
  /** The `email_password` secret (EMAIL_HOST_PASSWORD); null when unset. */
  password: string | null;
  timeoutSeconds: number;
  /** EMAIL_BACKEND as configured in settings.py, if it was (anything but SMTP is unsupported here). */
  configuredBackend: string | null;
  noreply: string;
  tokenizedNoreply: string;
  addTokensToNoreply: boolean;
  /** ZULIP_ADMINISTRATOR as written (possibly "Name <addr>"). */
  administrator: string;
  installationName: string;
  /** settings.STATIC_URL + "images/emails" */
  emailImagesBaseUrl: string;
  physicalAddress: string;
  /** Django's EMAIL_SUBJECT_PREFIX (mail_admins/mail_managers only). */
  subjectPrefix: string;
  /** Django's SERVER_EMAIL (= ZULIP_ADMINISTRATOR in Zulip). */
  serverEmail: string;
  /** Django's ADMINS / MANAGERS as (name, address) pairs. */
  admins: [string, string][];
  managers: [string, string][];
  /** Directory for send_email.log (Zulip: /var/log/zulip); null = do not log. */
  logDir: string | null;
}

function fileValue(settings: ZulipSettings, name: string, fallback: unknown): unknown {
  try {
    return settings.fileValue(name, fallback as any);
  } catch {
    return fallback;
  }
}

function pairs(v: unknown): [string, string][] | null {
  if (!Array.isArray(v)) return null;
  const out: [string, string][] = [];
  for (const item of v) {
    if (Array.isArray(item) && item.length === 2 && typeof item[0] === "string" && typeof item[1] === "string") {
      out.push([item[0], item[1]]);
    } else {
      return null;
    }
  }
  return out;
}

/** Outgoing email settings as a Zulip server computes them (reads only what email needs). */
export function emailSettings(config: Config): EmailSettings {
  const s = config.settings;
  const administrator = s.get("ZULIP_ADMINISTRATOR");
  const staticUrl = fileValue(s, "STATIC_URL", null);
  const rootUri = s.get("ROOT_DOMAIN_URI");
  const staticBase = typeof staticUrl === "string" && staticUrl ? staticUrl : rootOrigin(rootUri) + "/static/";
  const physical = fileValue(s, "PHYSICAL_ADDRESS", "");
  const prefix = fileValue(s, "EMAIL_SUBJECT_PREFIX", "[Django] ");
  const serverEmail = fileValue(s, "SERVER_EMAIL", administrator);
  const defaultAdmins: [string, string][] = [["Zulip Administrator", administrator]];
  const admins = pairs(fileValue(s, "ADMINS", null)) ?? defaultAdmins;
  const managers = pairs(fileValue(s, "MANAGERS", null)) ?? [];
  return {
    host: s.get("EMAIL_HOST"),
    port: s.get("EMAIL_PORT"),
    useTls: s.get("EMAIL_USE_TLS"),
    useSsl: s.get("EMAIL_USE_SSL"),
    user: s.get("EMAIL_HOST_USER") ?? "",
    password: s.get("EMAIL_HOST_PASSWORD"),
    timeoutSeconds: s.get("EMAIL_TIMEOUT"),
    configuredBackend: s.sources.EMAIL_BACKEND === "file" || s.sources.EMAIL_BACKEND === "override" ? s.get("EMAIL_BACKEND") : null,
    noreply: s.get("NOREPLY_EMAIL_ADDRESS"),
    tokenizedNoreply: s.get("TOKENIZED_NOREPLY_EMAIL_ADDRESS"),
    addTokensToNoreply: s.get("ADD_TOKENS_TO_NOREPLY_ADDRESS"),
    administrator,
    installationName: s.get("INSTALLATION_NAME"),
    emailImagesBaseUrl: staticBase + "images/emails",
    physicalAddress: typeof physical === "string" ? physical : "",
    subjectPrefix: typeof prefix === "string" ? prefix : "[Django] ",
    serverEmail: typeof serverEmail === "string" ? serverEmail : administrator,
    admins,
    managers,
    logDir: config.paths.logDir,
  };
}

function rootOrigin(uri: string): string {
  const m = /^([a-z][a-z0-9+.-]*:\/\/[^/?#]*)/i.exec(uri);
  return m ? m[1] : uri.replace(/\/+$/, "");
}

/**
 * manage.py send_test_email's CommandError when settings.WARN_NO_EMAIL is set (no EMAIL_HOST and
 * no EMAIL_BACKEND: computed_settings.py), word for word (zerver/management/commands/
 * send_test_email.py, same in 10.x–12.x; zerver/tests/test_management_commands.py
 * TestWarnNoEmail checks its start).
 */
export const WARN_NO_EMAIL_MESSAGE = `Outgoing email not yet configured, see\n  ${EMAIL_DOCS_URL}`;

/** Whether Zulip would set WARN_NO_EMAIL (and drop every email) with these settings. */
export function warnNoEmail(s: EmailSettings): boolean {
  return !s.host && !s.configuredBackend;
}

/**
 * Zulip with no EMAIL_HOST silently drops every email (dummy backend, WARN_NO_EMAIL); we refuse
 * instead (exit 3), saying how to configure it.
 */
export function requireOutgoingEmail(s: EmailSettings): void {
  if (s.configuredBackend && s.configuredBackend !== EMAIL_BACKENDS.smtp) {
    throw new EnvironmentError(
      `EMAIL_BACKEND is set to '${s.configuredBackend}' in settings.py; zulip-manage can only send email over SMTP ` +
        `(EMAIL_HOST and friends). See ${EMAIL_DOCS_URL}`,
      "email_not_configured",
    );
  }
  if (!s.host) {
    throw new EnvironmentError(
      `Outgoing email not yet configured: EMAIL_HOST is not set in settings.py, so a Zulip server would silently drop this email.\n` +
        `Configure outgoing email (EMAIL_HOST, EMAIL_HOST_USER, EMAIL_PORT, EMAIL_USE_TLS and the email_password secret) as described in\n` +
        `  ${EMAIL_DOCS_URL}\n` +
        `then check it with: zulip-manage send_test_email <your address>`,
      "email_not_configured",
    );
  }
  if (s.useTls && s.useSsl) {
    // Django's SMTP EmailBackend refuses this combination too.
    throw new EnvironmentError(
      "EMAIL_USE_TLS/EMAIL_USE_SSL are mutually exclusive, so only set one of those settings to True. " +
        `(EMAIL_USE_TLS is STARTTLS, usually port 587; EMAIL_USE_SSL is implicit TLS, usually port 465.) See ${EMAIL_DOCS_URL}`,
      "email_not_configured",
    );
  }
}

/** log_email_config_errors(): a username without a password is almost certainly a mistake. */
export function emailConfigWarnings(s: EmailSettings): string[] {
  if (s.user && s.password === null) {
    return [
      "An SMTP username was set (EMAIL_HOST_USER), but password is unset (EMAIL_HOST_PASSWORD).  " +
        "To disable SMTP authentication, set EMAIL_HOST_USER to an empty string. " +
        "(The password is the email_password secret in zulip-secrets.conf.)",
    ];
  }
  return [];
}

// ---------------------------------------------------------------------------------------------
// Addresses

/** Python's email.utils.parseaddr for the simple forms settings use: "Name <a@b>" or "a@b". */
export function parseaddr(value: string): [string, string] {
  const s = value.trim();
  const m = /^(.*?)\s*<([^<>]*)>\s*$/.exec(s);
  if (m) {
    let name = m[1].trim();
    if (name.startsWith('"') && name.endsWith('"') && name.length >= 2) name = name.slice(1, -1).replace(/\\(.)/g, "$1");
    return [name, m[2].trim()];
  }
  return ["", s];
}

const SPECIALS = /[()<>@,:;."[\]\\]/;

/** str(email.headerregistry.Address(display_name=name, addr_spec=addr)) */
export function formatAddress(name: string | null | undefined, addr: string): string {
  if (!name) return addr;
  const disp = SPECIALS.test(name) ? `"${name.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"` : name;
  return `${disp} <${addr}>`;
}

/** email.utils.formataddr((name, addr)) for ASCII names; non-ASCII names are left for MIME encoding. */
export function formataddr(name: string, addr: string): string {
  if (!name) return addr;

  if (/[^\x00-\x7f]/.test(name)) return `${name} <${addr}>`;
  const quoted = /[\][\\()<>@,:;".]/.test(name) ? `"${name.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"` : name;
  return `${quoted} <${addr}>`;
}

/** Python str.format of a template with a single {token} field ({{ and }} are literal braces). */
function formatToken(template: string, token: string): string {
  return template.replace(/\{\{|\}\}|\{token\}/g, (m) => (m === "{{" ? "{" : m === "}}" ? "}" : token));
}

/** FromAddress.SUPPORT */
export function supportAddress(s: EmailSettings): string {
  return parseaddr(s.administrator)[1];
}

/** FromAddress.NOREPLY */
export function noreplyAddress(s: EmailSettings): string {
  return parseaddr(s.noreply)[1];
}

/** FromAddress.tokenized_no_reply_address(): an unpredictable noreply address. */
export function tokenizedNoreplyAddress(s: EmailSettings, token: string = generateKey()): string {
  if (s.addTokensToNoreply) return formatToken(parseaddr(s.tokenizedNoreply)[1], token);
  return noreplyAddress(s);
}

/** FromAddress.security_email_from_name() (English). */
export function securityEmailFromName(s: EmailSettings): string {
  return `${s.installationName} account security`;
}

// ---------------------------------------------------------------------------------------------
// Building messages

export interface Recipient {
  name?: string;
  address: string;
}

export interface OutgoingEmail {
  /** Template name for logs, e.g. "password_reset". */
  template: string;
  subject: string;
  text: string;
  html?: string;
  from: Recipient;
  to: Recipient[];
  replyTo?: string;
  /** SMTP MAIL FROM. */
  envelopeFrom: string;
  /** Extra headers (X-Auto-Response-Suppress, List-Id, …). */
  headers: Record<string, string>;
  /** realm.string_id for the log line ("… in <string_id>"). */
  realmStringId?: string;
  /** Write the send_email.log lines (Zulip's send_email path does; Django's send_mail does not). Default true. */
  log?: boolean;
}

/** Django's send_mail(subject, message, from_email, recipient_list): one message to everyone, no extra headers, no send_email.log line. */
export function plainMail(template: string, subject: string, body: string, from: string, to: string[]): OutgoingEmail {
  const [name, address] = parseaddr(from);
  return {
    template,
    subject,
    text: body,
    from: name ? { name, address } : { address },
    to: to.map((address) => ({ address })),
    envelopeFrom: address,
    headers: {},
    log: false,
  };
}

export interface BuildEmailOptions {
  template: string;
  rendered: { subject: string; text: string; html?: string };
  /** to_user_ids: users, addressed as "Full Name <delivery_email>". */
  toUsers?: { full_name: string; delivery_email: string }[];
  /** to_emails: bare addresses. */
  toEmails?: string[];
  fromName?: string;
  fromAddress?: string;
  replyTo?: string;
  realm?: { name: string; host: string; string_id: string };
}

/** Address headers longer than this lose their display name (Amazon SES rejects them). */
const MAX_ADDRESS_HEADER = 320;

/** zerver/lib/send_email.py build_email() with already-rendered templates. */
export function buildEmail(s: EmailSettings, o: BuildEmailOptions): OutgoingEmail {
  if ((o.toUsers === undefined) === (o.toEmails === undefined)) throw new Error("buildEmail: pass exactly one of toUsers and toEmails");
  const to: Recipient[] = o.toUsers
    ? o.toUsers.map((u) =>
        Buffer.byteLength(formatAddress(u.full_name, u.delivery_email)) > MAX_ADDRESS_HEADER
          ? { address: u.delivery_email }
          : { name: u.full_name, address: u.delivery_email },
      )
    : o.toEmails!.map((e) => {
        const [name, address] = parseaddr(e);
        return name ? { name, address } : { address };
      });
  const headers: Record<string, string> = { "X-Auto-Response-Suppress": "All" };
  if (o.realm) headers["List-Id"] = formataddr(o.realm.name, o.realm.host);
  const fromName = o.fromName ?? "Zulip";
  const fromAddress = o.fromAddress ?? noreplyAddress(s);
  const from: Recipient =
    Buffer.byteLength(formatAddress(fromName, fromAddress)) > MAX_ADDRESS_HEADER ? { address: fromAddress } : { name: fromName, address: fromAddress };
  let replyTo: string | undefined;
  if (o.replyTo !== undefined) replyTo = o.replyTo;
  else if (fromAddress === noreplyAddress(s)) replyTo = noreplyAddress(s);
  return {
    template: o.template,
    subject: o.rendered.subject,
    text: o.rendered.text,
    html: o.rendered.html,
    from,
    to,
    replyTo,
    envelopeFrom: noreplyAddress(s),
    headers,
    realmStringId: o.realm?.string_id,
  };
}

/** How Zulip's logs show the To list: repr() of a list of "Name <addr>" strings. */
function loggedRecipients(mail: OutgoingEmail): string {
  return "[" + mail.to.map((r) => pyStrRepr(formatAddress(r.name, r.address))).join(", ") + "]";
}

// ---------------------------------------------------------------------------------------------
// send_email.log

/** Append "<asctime> LEVEL    message" to <logDir>/send_email.log, silently skipping when not writable. */
function appendEmailLog(logDir: string | null, level: "INFO" | "WARNING" | "ERROR", message: string): void {
  if (!logDir) return;
  try {
    fs.appendFileSync(path.join(logDir, "send_email.log"), `${asctime()} ${level.padEnd(8)} ${message}\n`);
  } catch {
    /* Zulip's log dir is not writable for everyone; not an error */
  }
}

// ---------------------------------------------------------------------------------------------
// Delivery

/** Why a message was not delivered. */
export class EmailDeliveryError extends Error {
  /** nodemailer's error code (ECONNECTION, ETIMEDOUT, EAUTH, EENVELOPE, …). */
  readonly code?: string;
  /** SMTP reply code, when the server answered. */
  readonly responseCode?: number;
  /** The server's reply text, when it answered. */
  readonly response?: string;
  /** The failure is about the connection or the server, not this recipient: later sends would fail too. */
  readonly connectionLevel: boolean;
  constructor(message: string, details: { code?: string; responseCode?: number; response?: string; connectionLevel: boolean }) {
    super(message);
    this.name = "EmailDeliveryError";
    this.code = details.code;
    this.responseCode = details.responseCode;
    this.response = details.response;
    this.connectionLevel = details.connectionLevel;
  }
}

const CONNECTION_CODES = new Set(["ECONNECTION", "ETIMEDOUT", "ESOCKET", "EDNS", "ETLS", "EAUTH", "EPROXY", "ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH"]);

function describeSmtpError(e: any, s: EmailSettings): EmailDeliveryError {
  const code: string | undefined = e?.code;
  const responseCode: number | undefined = typeof e?.responseCode === "number" ? e.responseCode : undefined;
  const response: string | undefined = typeof e?.response === "string" ? e.response.trim() : undefined;
  const connectionLevel = code !== undefined && CONNECTION_CODES.has(code);
  let message: string;
  const where = `${s.host}:${s.port}`;
  if (code === "EAUTH") {
    message = `SMTP server ${where} refused the login of '${s.user}': ${response ?? e?.message}`;
  } else if (connectionLevel) {
    const detail = String(e?.message ?? e);
    message = `cannot talk to the SMTP server ${where} (${s.useSsl ? "SSL" : s.useTls ? "STARTTLS" : "plain SMTP"}, timeout ${s.timeoutSeconds}s): ${detail}`;
  } else if (response) {
    message = response;
  } else {
    message = String(e?.message ?? e);
  }
  return new EmailDeliveryError(message, { code, responseCode, response, connectionLevel });
}

export interface MailerOptions {
  /** Reuse a few SMTP connections for many messages (bulk sends). */
  pool?: boolean;
  maxConnections?: number;
  /** Collect the SMTP conversation (for send_test_email's "Full SMTP log"). */
  transcript?: string[];
}

export interface SendInfo {
  messageId?: string;
  response?: string;
  accepted: string[];
  rejected: string[];
}

/** nodemailer SMTP options equivalent to Django's SMTP EmailBackend with these settings. */
function smtpTransportOptions(s: EmailSettings): Record<string, unknown> {
  const timeout = s.timeoutSeconds * 1000;
  return {
    host: s.host,
    port: s.port,
    secure: s.useSsl,
    // Django's backend only uses TLS when told to: STARTTLS with EMAIL_USE_TLS, implicit TLS with
    // EMAIL_USE_SSL, and never opportunistically. Certificates are verified either way.
    requireTLS: s.useTls && !s.useSsl,
    ignoreTLS: !s.useTls && !s.useSsl,
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
    dnsTimeout: timeout,
    // Django logs in only when both a username and a password are set.
    auth: s.user && s.password ? { user: s.user, pass: s.password } : undefined,
  };
}

/** An SMTP connection (or pool) configured like Django's SMTP EmailBackend. */
export class Mailer {
  private constructor(
    readonly settings: EmailSettings,
    private readonly transport: any,
  ) {}

  static async open(s: EmailSettings, opts: MailerOptions = {}): Promise<Mailer> {
    requireOutgoingEmail(s);
    const nodemailer = (await import("nodemailer")).default;
    const transcript = opts.transcript;
    const log =
      (level: string) =>
      (_data: unknown, ...args: unknown[]) => {
        if (transcript) transcript.push(`${level}: ${format(...(args as [any, ...any[]]))}`);
      };
    const options: Record<string, unknown> = smtpTransportOptions(s);
    if (transcript) {
      options.logger = { trace: log("trace"), debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error"), fatal: log("fatal") };
      options.debug = true;
    }
    if (opts.pool) {
      options.pool = true;
      options.maxConnections = opts.maxConnections ?? 3;
      // Keep each pooled connection for the whole run: nodemailer's default (100 messages, then
      // QUIT and a new connection, EHLO, STARTTLS, AUTH) costs more than the messages themselves.
      options.maxMessages = Infinity;
    }
    return new Mailer(s, nodemailer.createTransport(options as any));
  }

  /** Deliver one message; logs to send_email.log like send_immediate_email(). Throws EmailDeliveryError. */
  async send(mail: OutgoingEmail): Promise<SendInfo> {
    const s = this.settings;
    const recipients = loggedRecipients(mail);
    const where = mail.realmStringId !== undefined ? `${recipients} in ${mail.realmStringId}` : recipients;
    const logDir = mail.log === false ? null : s.logDir;
    appendEmailLog(logDir, "INFO", `Sending ${mail.template} email to ${where}`);
    const message: Record<string, unknown> = {
      subject: mail.subject,
      text: mail.text,
      from: mail.from.name ? { name: mail.from.name, address: mail.from.address } : mail.from.address,
      to: mail.to.map((r) => (r.name ? { name: r.name, address: r.address } : r.address)),
      envelope: { from: mail.envelopeFrom, to: mail.to.map((r) => r.address) },
      headers: mail.headers,
    };
    if (mail.html !== undefined) message.html = mail.html;
    if (mail.replyTo !== undefined) message.replyTo = mail.replyTo;
    try {
      const info = await this.transport.sendMail(message);
      const rejected = (info.rejected ?? []).map(String);
      if ((info.accepted ?? []).length === 0) {
        throw Object.assign(new Error(`no recipient was accepted: ${info.response ?? ""}`.trim()), { code: "EENVELOPE", response: info.response });
      }
      return { messageId: info.messageId, response: info.response, accepted: (info.accepted ?? []).map(String), rejected };
    } catch (e: any) {
      const err = describeSmtpError(e, s);
      if (err.responseCode !== undefined) {
        appendEmailLog(
          logDir,
          "ERROR",
          `Error sending ${mail.template} email to ${recipients} with error code ${err.responseCode}: ${err.response ?? err.message}`,
        );
      } else {
        appendEmailLog(logDir, "ERROR", `Error sending ${mail.template} email to ${recipients}: ${err.message}`);
      }
      throw err;
    }
  }

  /** Connect (and log in) once without sending, to find an unreachable or misconfigured server early. */
  async verify(): Promise<void> {
    try {
      await this.transport.verify();
    } catch (e: any) {
      throw describeSmtpError(e, this.settings);
    }
  }

  close(): void {
    try {
      this.transport.close();
    } catch {
      /* already closed */
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Bulk sending

export type BulkStatus = "sent" | "failed" | "not_sent";

export interface BulkResult<T> {
  item: T;
  status: BulkStatus;
  error?: EmailDeliveryError;
}

export interface BulkOptions<T> {
  /** Messages in flight at once (= pooled connections). */
  concurrency?: number;
  /** Stop after this many connection-level failures in a row (the server is unreachable). */
  maxConsecutiveConnectionFailures?: number;
  onResult?: (r: BulkResult<T>, done: number, total: number) => void;
}

/**
 * Send one message per item over a pooled Mailer, continuing past failed recipients. When the
 * server itself is unreachable (several connection-level failures in a row), the remaining
 * items are not attempted and come back as "not_sent". Results are in input order.
 */
async function sendBulk<T>(
  mailer: Mailer,
  items: T[],
  build: (item: T) => OutgoingEmail,
  opts: BulkOptions<T> = {},
): Promise<{ results: BulkResult<T>[]; aborted: EmailDeliveryError | null }> {
  const results: BulkResult<T>[] = new Array(items.length);
  const concurrency = Math.max(1, opts.concurrency ?? 3);
  const limit = opts.maxConsecutiveConnectionFailures ?? 3;
  let next = 0;
  let done = 0;
  let consecutive = 0;
  let aborted: EmailDeliveryError | null = null;
  const finish = (i: number, r: BulkResult<T>) => {
    results[i] = r;
    done++;
    opts.onResult?.(r, done, items.length);
  };
  const worker = async () => {
    while (!aborted && next < items.length) {
      const i = next++;
      try {
        await mailer.send(build(items[i]));
        consecutive = 0;
        finish(i, { item: items[i], status: "sent" });
      } catch (e: any) {
        const err = e instanceof EmailDeliveryError ? e : new EmailDeliveryError(String(e?.message ?? e), { connectionLevel: false });
        if (err.connectionLevel) {
          consecutive++;
          if (consecutive >= limit && !aborted) aborted = err;
        } else {
          consecutive = 0;
        }
        finish(i, { item: items[i], status: "failed", error: err });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  for (let i = 0; i < items.length; i++) {
    if (!results[i]) finish(i, { item: items[i], status: "not_sent" });
  }
  return { results, aborted };
}

/** The outcome of deliverEmails. */
export interface Delivery<T> {
  results: BulkResult<T>[];
  sent: number;
  /** Attempted and failed. */
  failed: number;
  /** Not attempted: the server became unreachable, or was from the start. */
  notSent: number;
  /** Several items and the server could not be reached (or refused the login) before anything was sent. */
  unreachable: EmailDeliveryError | null;
}

export interface DeliveryOptions<T> {
  /** A progress bar on stderr (several items, a terminal, no --json). */
  progress: boolean;
  /** The line printed (above the progress bar) for an item that failed. */
  failureLine: (item: T, error: EmailDeliveryError) => string;
  onSent?: (item: T) => void;
  /** Where the "stopped after repeated connection failures" line goes. */
  err: (line: string) => void;
}

/**
 * One message per item, as the bulk-mail commands send them: several items over a pool of three
 * connections, after checking once that the server can be reached and accepts the login (one
 * clear failure, not one per recipient); a progress bar; a line per failed item; and a stop,
 * said on stderr, after repeated connection failures.
 */
export async function deliverEmails<T>(settings: EmailSettings, items: T[], build: (item: T) => OutgoingEmail, opts: DeliveryOptions<T>): Promise<Delivery<T>> {
  const bulk = items.length > 1;
  const mailer = await Mailer.open(settings, { pool: bulk, maxConnections: 3 });
  const progress = new Progress(items.length, { label: "Sending", enabled: bulk && opts.progress });
  let results: BulkResult<T>[];
  let aborted: EmailDeliveryError | null = null;
  try {
    if (bulk) {
      try {
        await mailer.verify();
      } catch (e) {
        if (!(e instanceof EmailDeliveryError)) throw e;
        return { results: items.map((item) => ({ item, status: "not_sent", error: e })), sent: 0, failed: 0, notSent: items.length, unreachable: e };
      }
    }
    ({ results, aborted } = await sendBulk(mailer, items, build, {
      concurrency: bulk ? 3 : 1,
      onResult: (r) => {
        if (r.status === "sent") opts.onSent?.(r.item);
        else if (r.status === "failed") progress.log(opts.failureLine(r.item, r.error!));
        progress.tick();
      },
    }));
  } finally {
    progress.finish();
    mailer.close();
  }
  const count = (status: BulkStatus) => results.filter((r) => r.status === status).length;
  const delivery = { results, sent: count("sent"), failed: count("failed"), notSent: count("not_sent"), unreachable: null };
  if (aborted && delivery.notSent > 0) {
    opts.err(`Stopped after repeated connection failures; ${delivery.notSent} email${delivery.notSent === 1 ? " was" : "s were"} not attempted.`);
  }
  return delivery;
}
