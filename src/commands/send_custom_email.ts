// send_custom_email: email users a Markdown document with Zulip branding, as manage.py's
// send_custom_email does (zerver/management/commands/send_custom_email.py and
// zerver/lib/send_email.py: custom_email_sender, send_custom_email).
//
// Recipients: exactly one of --entire-server, --marketing, --all-sponsored-org-admins,
// --json-file, -u/--users, -a/--all-users (with -r), optionally narrowed by --admins-only. The
// Zulip-Cloud-only selectors (--remote-servers, --announce-release) are refused. Who is chosen,
// the 810 CUSTOM_EMAIL_SENT audit rows (Zulip 12+, with the "already received" exclusion) and the
// marketing unsubscribe confirmations: src/zulip/actions/send-custom-email.ts. The file's headers,
// the template subset and the Markdown renderer: src/zulip/templates/ (email-headers, jinja,
// markdown).
//
// The Markdown file may start with RFC 822 headers (`Subject:` and `From:` — the sender's name);
// --subject / --from-name give them on the command line instead, and giving one in both places
// (or in neither) is the same error as manage.py's. The email id is the first 32 hex digits of
// the SHA-256 of the file text.
//
// Differences from manage.py (documented limitations):
//  - Markdown is rendered by a small built-in renderer covering what custom emails use
//    (headings, paragraphs, emphasis, inline code, links, images, lists, block quotes, fenced
//    code, tables, rules). Raw HTML in the Markdown is shown as text, not passed through, and
//    Zulip's help-center extensions ({!macro.md!}, tabs, admonitions) are not supported.
//  - Template interpolation supports {{ name }} and {{ name.attribute }} (e.g. {{ realm_name }},
//    {{ realm.string_id }}, keys from --json-file) and {# comments #}; Jinja statements
//    ({% if %}, filters) are refused with an error before anything is sent.
//  - Nothing is written into the Zulip deployment (manage.py writes generated templates there).
//  - The From header's name is used as written (Python's email parser would re-quote a name
//    with spaces).
//  - --dry-run prints the first email's Subject/From/To headers and its plain-text part.
//
// --json: src/schemas/send_custom_email.ts (README: --json output). `subject` is before per-user
// interpolation; a result's status is done, failed, not_attempted or would_do.
import { Option } from "@commander-js/extra-typings";
import { addRealmOption } from "../cli/options.js";
import { defineCommand } from "../cli/command.js";
import { emailConfigWarnings, type EmailSettings, emailSettings, formatAddress, requireOutgoingEmail } from "../services/email.js";
import { CommandError, errorCode, errorMessage, UsageError } from "../lib/errors.js";
import { READ_LIMITS, readBounded } from "../lib/files.js";
import { parseEmailTemplate } from "../zulip/templates/email-headers.js";
import {
  type CustomEmailTarget,
  customEmailFromName,
  prepareCustomEmail,
  previewCustomEmail,
  type Recipient,
  selectCustomEmailRecipients,
  sendCustomEmail,
} from "../zulip/actions/send-custom-email.js";
import { deliveryStatusJson, outcome, type StatusJson } from "../cli/json-contract.js";
import { realmJson, userJson } from "../cli/json-objects.js";
import type { CustomEmailResult, SendCustomEmailBody } from "../schemas/send_custom_email.js";

const TARGETS = [
  ["entireServer", "--entire-server"],
  ["marketing", "--marketing"],
  ["remoteServers", "--remote-servers"],
  ["announceRelease", "--announce-release"],
  ["allSponsoredOrgAdmins", "--all-sponsored-org-admins"],
  ["jsonFile", "--json-file"],
  ["users", "-u/--users"],
  ["allUsers", "-a/--all-users"],
] as const;

export default defineCommand({
  name: "send_custom_email",
  description:
    "Send a custom email with Zulip branding to the specified users.\n\n" +
    "Useful to send a notice to all users of a realm or server.\n\n" +
    "The From and Subject headers can be provided in the body of the Markdown\n" +
    "document used to generate the email, or on the command line.",
  examples: [
    "zulip-manage send_custom_email --entire-server --path notice.md --dry-run",
    "zulip-manage send_custom_email -r zulip -a --admins-only --path notice.md --subject 'Planned downtime' --from-name 'Zulip admins'",
    "zulip-manage send_custom_email --marketing --path newsletter.md",
  ],
  configure: (cmd) =>
    addRealmOption(
      cmd
        .usage(
          "(--entire-server | --marketing | --all-sponsored-org-admins | --json-file JSON_FILE | -u USERS | -a) " + "--markdown-template-path PATH [options]",
        )
        .option("--entire-server", "Send to every user on the server.")
        .option("--marketing", "Send to active users and realm owners with the enable_marketing_emails setting enabled.")
        .option("--all-sponsored-org-admins", "Send to all organization administrators of sponsored organizations.")
        .option(
          "--json-file <json_file>",
          "Load the JSON file, and send to the users whose ids are the keys in that dict; the context for each email will be extended by each value in the dict.",
        )
        .option("-u, --users <emails>", "Email addresses of user(s) to send emails to.")
        .option("-a, --all-users", "Send to every user on the realm.")
        .addOption(new Option("--remote-servers").hideHelp())
        .addOption(new Option("--announce-release <version>").hideHelp()),
    )
      .option("--admins-only", "Filter recipients selected via other options to to only organization administrators")
      .option("--markdown-template-path <path>", "Path to a Markdown-format body for the email (also: --path).")
      .addOption(new Option("--path <path>").hideHelp())
      .option("--subject <subject>", "Subject for the email. It can be declared in Markdown file in headers")
      .option("--from-name <from_name>", "From line for the email. It can be declared in Markdown file in headers")
      .option("--from-address <from_address>", "From address for the email (default: the support address, ZULIP_ADMINISTRATOR).")
      .option("--reply-to <reply_to>", "Optional reply-to line for the email")
      .option("--dry-run", "Prints emails of the recipients and text of the email."),
  async run(ctx, _args, opts) {
    const out = ctx.out;
    // argparse: the required mutually exclusive group, and the required template path.
    const given = TARGETS.filter(([key]) => opts[key] !== undefined);
    const [first, second] = given;
    if (first === undefined) {
      throw new UsageError(`one of the arguments ${TARGETS.map(([, flag]) => flag).join(" ")} is required`);
    }
    if (second !== undefined) throw new UsageError(`argument ${second[1]}: not allowed with argument ${first[1]}`);
    const templatePath = opts.markdownTemplatePath ?? opts.path;
    if (templatePath === undefined) throw new UsageError("the following arguments are required: --markdown-template-path/--path");
    if (opts.remoteServers || opts.announceRelease !== undefined) {
      throw new CommandError(
        `${first[1]} sends to the Zulip servers registered with Zulip Cloud's push notification service; ` +
          "it only works on Zulip Cloud's billing server, not on a self-hosted Zulip server.",
      );
    }
    const target: CustomEmailTarget = opts.entireServer
      ? { kind: "entire_server" }
      : opts.marketing
        ? { kind: "marketing" }
        : opts.allSponsoredOrgAdmins
          ? { kind: "all_sponsored_org_admins" }
          : opts.jsonFile !== undefined
            ? { kind: "json_file", path: opts.jsonFile }
            : { kind: "users", realm: opts.realm, users: opts.users, allUsers: Boolean(opts.allUsers) };
    const dryRun = Boolean(opts.dryRun);

    let raw: string;
    try {
      raw = readBounded(templatePath, READ_LIMITS.markdown, "The Markdown template");
    } catch (e) {
      if (e instanceof CommandError) throw e;
      throw new CommandError(
        errorCode(e) === "ENOENT" ? `[Errno 2] No such file or directory: '${templatePath}'` : `Cannot read ${templatePath}: ${errorMessage(e)}`,
        "file_unreadable",
      );
    }
    const file = parseEmailTemplate(raw);

    const config = ctx.config();
    const settings = config.settings;
    let es: EmailSettings | null = null;
    try {
      es = emailSettings(config);
    } catch (e) {
      if (!dryRun) throw e;
    }
    // custom_email_sender(): the subject is required before anything else happens.
    const prepared = prepareCustomEmail(
      file,
      { where: templatePath, subject: opts.subject, fromName: opts.fromName, fromAddress: opts.fromAddress, replyTo: opts.replyTo },
      es,
      settings,
    );

    const db = await ctx.db();
    const sel = await selectCustomEmailRecipients(db, settings, target, { adminsOnly: Boolean(opts.adminsOnly), emailId: prepared.emailId });
    // send_custom_email's own line, word for word (no singular form in Zulip either).
    if (sel.excluded > 0) out.line(`Excluded ${sel.excluded} users who already received this email`);
    const recipients = sel.recipients;

    const entry = (r: Recipient, status: StatusJson, error?: string): CustomEmailResult => ({
      user: userJson(r.row),
      realm: realmJson(settings, { id: r.row.realm_id, string_id: r.row.string_id, name: r.row.realm_name }),
      ...outcome(status, error ?? null),
    });
    const emailFailure = (n: number) => ({ error: `${n} of ${recipients.length} emails could not be sent.`, error_code: "email_failed" as const });
    const fromName = customEmailFromName(prepared, recipients.length > 0);
    const docBase = {
      email_id: prepared.emailId,
      subject: prepared.subjectSource,
      from_name: fromName || null,
      from_address: prepared.fromAddress || null,
      reply_to: prepared.replyTo ?? null,
      records_audit_log: sel.audited,
      excluded_already_received_count: sel.excluded,
    };

    if (dryRun) {
      if (out.json) {
        out.jsonBody<SendCustomEmailBody>({
          dry_run: true,
          ...docBase,
          sent_count: 0,
          failed_count: 0,
          audit_log_ids: [],
          results: recipients.map((r) => entry(r, "would_do")),
        });
        return;
      }
      const preview = previewCustomEmail(prepared, sel, es);
      if (preview) {
        const { recipient, rendered } = preview;
        const fromAddr = prepared.fromAddress || "(the support address)";
        const ascii = /^[\x00-\x7f]*$/.test(rendered.text);
        out.line(`Subject: ${rendered.subject}`);
        out.line(`From: ${formatAddress(fromName, fromAddr)}`);
        out.line(`To: ${formatAddress(recipient.row.full_name, recipient.row.delivery_email)}`);
        if (prepared.replyTo !== undefined) out.line(`Reply-To: ${prepared.replyTo}`);
        out.line('Content-Type: text/plain; charset="utf-8"');
        out.line("MIME-Version: 1.0");
        out.line(`Content-Transfer-Encoding: ${ascii ? "7bit" : "8bit"}`);
        out.line();
        out.line(rendered.text.replace(/\n$/, ""));
      }
      out.line("Would send the above email to:");
      for (const r of recipients) out.line(`  ${r.row.delivery_email} (${r.row.string_id})`);
      return;
    }

    if (recipients.length === 0) {
      out.jsonBody<SendCustomEmailBody>({ dry_run: false, ...docBase, sent_count: 0, failed_count: 0, audit_log_ids: [], results: [] });
      return;
    }
    if (!es) es = emailSettings(config);
    requireOutgoingEmail(es);
    for (const w of emailConfigWarnings(es)) out.warn(w);

    const sent = await sendCustomEmail(db, prepared, sel, es, fromName, {
      progress: Boolean(process.stderr.isTTY) && !out.json,
      err: (line) => out.err(line),
    });
    const d = sent.delivery;
    if (d.unreachable) {
      out.err(`Cannot send email: ${d.unreachable.message}`);
      out.err("No emails were sent.");
      out.jsonBody<SendCustomEmailBody>(
        {
          dry_run: false,
          ...docBase,
          sent_count: 0,
          failed_count: recipients.length,
          audit_log_ids: [],
          results: d.results.map((r) => entry(r.item, "not_attempted", r.error?.message)),
        },
        { error: `Cannot send email: ${d.unreachable.message}`, error_code: "email_failed" },
      );
      return 1;
    }
    const notDelivered = d.failed + d.notSent;
    if (sent.auditError) {
      out.err(
        `Warning: the emails were sent, but recording them in the audit log failed: ${sent.auditError.message}\n` +
          `Running the command again would send them again to the users not recorded (${sent.auditWritten} of ${d.sent} recorded).`,
      );
    }
    if (out.json) {
      out.jsonBody<SendCustomEmailBody>(
        {
          dry_run: false,
          ...docBase,
          sent_count: d.sent,
          failed_count: notDelivered,
          audit_log_ids: sent.auditLogIds,
          results: d.results.map((r) => entry(r.item, deliveryStatusJson(r.status), r.error?.message)),
        },
        notDelivered > 0
          ? emailFailure(notDelivered)
          : { error: `The emails were sent, but recording them in the audit log failed: ${sent.auditError?.message}`, error_code: "audit_log_failed" },
      );
    }
    // Like manage.py, a successful send prints nothing more (the counts are in --json).
    if (notDelivered > 0) {
      out.err(`${notDelivered} of ${recipients.length} emails could not be sent${sel.audited ? "; run the same command again to retry them" : ""}.`);
      return 1;
    }
    return sent.auditError ? 1 : 0;
  },
});
