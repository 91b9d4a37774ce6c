// send_test_email: manage.py send_test_email (zerver/management/commands/send_test_email.py):
// Django's send_mail of a test message from the support address and one from the noreply
// address to the given addresses, then with --managers / --admins Django's mail_managers /
// mail_admins. When sending fails, the SMTP conversation is printed.
//
// --json: src/schemas/send_test_email.ts (README: --json output).
import { defineCommand } from "../cli/command.js";
import {
  emailConfigWarnings,
  emailSettings,
  Mailer,
  type OutgoingEmail,
  plainMail,
  requireOutgoingEmail,
  supportAddress,
  tokenizedNoreplyAddress,
  WARN_NO_EMAIL_MESSAGE,
  warnNoEmail,
} from "../services/email.js";
import { CommandError, EnvironmentError, errorMessage } from "../lib/errors.js";
import { outcome } from "../cli/json-contract.js";
import type { SendTestEmailBody, TestEmailResult } from "../schemas/send_test_email.js";
import {
  TEST_ADMINS_BODY,
  TEST_ADMINS_SUBJECT,
  TEST_EMAIL_BODY,
  TEST_EMAIL_PREAMBLE,
  TEST_EMAIL_SUBJECT,
  TEST_MANAGERS_BODY,
  TEST_MANAGERS_SUBJECT,
  TEST_NOREPLY_EMAIL_SUBJECT,
  testEmailSuccessLine,
} from "../zulip/templates/test_email.js";

export default defineCommand({
  name: "send_test_email",
  description:
    "Sends a test email to the email addresses specified as arguments.\n\n" +
    "Zulip's check of outgoing email: one message from the support address (ZULIP_ADMINISTRATOR) " +
    "and one from the noreply address, sent with the server's EMAIL_* settings.",
  examples: ["zulip-manage send_test_email admin@example.com", "zulip-manage send_test_email a@example.com b@example.com --json"],
  configure: (cmd) =>
    cmd
      .argument("[email...]", "One or more email addresses to send a test email to.")
      .option("--managers", "Send a test email to the addresses specified in settings.MANAGERS.")
      .option("--admins", "Send a test email to the addresses specified in settings.ADMINS."),
  async run(ctx, args, opts) {
    const out = ctx.out;
    const emails = (args[0] ?? []).filter((e) => e !== undefined);
    const es = emailSettings(ctx.config());
    // manage.py's own check and message first (exit 3 here: an environment error).
    if (warnNoEmail(es)) throw new EnvironmentError(WARN_NO_EMAIL_MESSAGE, "email_not_configured");
    requireOutgoingEmail(es);
    for (const w of emailConfigWarnings(es)) out.warn(w);
    if (emails.length === 0) {
      throw new CommandError("Usage: zulip-manage send_test_email username@example.com", "invalid_arguments");
    }

    for (const line of TEST_EMAIL_PREAMBLE) out.line(line);
    const transcript: string[] = [];
    const mailer = await Mailer.open(es, { transcript });
    const results: TestEmailResult[] = [];
    try {
      const send = async (mail: OutgoingEmail) => {
        const facts = { from: mail.from.address, subject: mail.subject, to: mail.to.map((r) => r.address) };
        try {
          const info = await mailer.send(mail);
          results.push({ ...facts, message_id: info.messageId ?? null, ...outcome("done") });
        } catch (e) {
          results.push({ ...facts, message_id: null, ...outcome("failed", errorMessage(e)) });
          throw e;
        }
      };
      try {
        const sender = supportAddress(es);
        out.line(`  * ${sender}`);
        await send(plainMail("test", TEST_EMAIL_SUBJECT, TEST_EMAIL_BODY, sender, emails));
        const noreplySender = tokenizedNoreplyAddress(es);
        out.line(`  * ${noreplySender}`);
        await send(plainMail("test", TEST_NOREPLY_EMAIL_SUBJECT, TEST_EMAIL_BODY, noreplySender, emails));
      } catch (e) {
        if (out.json) {
          out.jsonBody<SendTestEmailBody>({ results, smtp_log: transcript });
        } else {
          out.line(`Failed to send mails: ${errorMessage(e)}`);
          out.line("");
          out.line("Full SMTP log follows:");
          out.line(transcript.join("\n"));
        }
        throw new CommandError(out.json ? `Email sending failed! Failed to send mails: ${errorMessage(e)}` : "Email sending failed!", "email_failed");
      }
      out.line("");
      out.line(testEmailSuccessLine(emails));

      // Django's mail_managers / mail_admins: prefixed subject, from SERVER_EMAIL; nothing when the list is empty.
      const siteMail = async (flag: boolean, list: [string, string][], subject: string, body: string) => {
        if (!flag || list.length === 0) return;
        await send(
          plainMail(
            "test",
            es.subjectPrefix + subject,
            body,
            es.serverEmail,
            list.map((p) => p[1]),
          ),
        );
      };
      await siteMail(Boolean(opts.managers), es.managers, TEST_MANAGERS_SUBJECT, TEST_MANAGERS_BODY);
      await siteMail(Boolean(opts.admins), es.admins, TEST_ADMINS_SUBJECT, TEST_ADMINS_BODY);
    } finally {
      mailer.close();
    }
    out.jsonBody<SendTestEmailBody>({ results, smtp_log: null });
  },
});
