// send_password_reset_email: Zulip's password reset email to the selected users, as manage.py's
// send_password_reset_email does (see src/zulip/actions/send-password-reset-email.ts). Exits 1 if
// any email could not be sent.
//
// --json: src/schemas/send_password_reset_email.ts (README: --json output).
import { addEventsOption, addRealmOption, addUserListOptions } from "../cli/options.js";
import { plural } from "../cli/output.js";
import { defineCommand } from "../cli/command.js";
import { emailConfigWarnings, emailSettings, requireOutgoingEmail } from "../services/email.js";
import { EventDelivery, eventsReportJson } from "../services/events.js";
import {
  describePasswordResetRecipient as describe,
  doSendPasswordResetEmails,
  type PasswordResetRealm,
  type PasswordResetRecipient,
  passwordResetRecipients,
} from "../zulip/actions/send-password-reset-email.js";
import { deliveryStatusJson, outcome, type StatusJson } from "../cli/json-contract.js";
import { userJson } from "../cli/json-objects.js";
import type { RealmJson } from "../schemas/shared.js";
import type { SendPasswordResetEmailBody } from "../schemas/send_password_reset_email.js";

export default defineCommand({
  name: "send_password_reset_email",
  description:
    "Send email to specified email address.\n\n" +
    "Each selected user gets Zulip's password reset email, with a link valid for PASSWORD_RESET_TIMEOUT " +
    "(3 days); deactivated users get the variant without a link. Mail goes out over SMTP with the " +
    "server's EMAIL_* settings; many recipients share a few pooled connections. Exits 1 if any email " +
    "could not be sent.",
  examples: [
    "zulip-manage send_password_reset_email -u iago@zulip.com",
    "zulip-manage send_password_reset_email -r engineering --all-users --only-never-logged-in",
    "zulip-manage send_password_reset_email --entire-server --dry-run",
  ],
  configure: (cmd) =>
    addEventsOption(
      addRealmOption(
        addUserListOptions(
          cmd
            .option("--only-never-logged-in", "Filter to only users which have not accepted the TOS.")
            .option("--entire-server", "Send to every user on the server. "),
          {
            users: "Email addresses of user(s) to send password reset emails to.",
            all: "Send to every user on the realm.",
          },
        ),
      ).option("--dry-run", "List the recipients without sending anything."),
    ),
  async run(ctx, _args, opts) {
    const out = ctx.out;
    const config = ctx.config();
    const db = await ctx.db();
    const recipients = await passwordResetRecipients(db, config.settings, {
      entireServer: Boolean(opts.entireServer),
      realm: opts.realm,
      users: opts.users,
      allUsers: Boolean(opts.allUsers),
      onlyNeverLoggedIn: Boolean(opts.onlyNeverLoggedIn),
    });

    if (recipients.length === 0) {
      if (out.json) out.jsonBody<SendPasswordResetEmailBody>({ dry_run: Boolean(opts.dryRun), sent_count: 0, failed_count: 0, results: [] });
      else out.line("No matching users!");
      return;
    }

    const realmObject = (r: PasswordResetRealm): RealmJson => ({ id: r.id, string_id: r.string_id, name: r.name, url: r.url });
    const jsonEntry = (r: PasswordResetRecipient, status: StatusJson, error?: string): SendPasswordResetEmailBody["results"][number] => ({
      user: userJson(r.user),
      realm: realmObject(r.realm),
      variant: r.deactivated ? "deactivated" : "reset_link",
      ...outcome(status, error ?? null),
    });

    if (opts.dryRun) {
      if (out.json) {
        out.jsonBody<SendPasswordResetEmailBody>({ dry_run: true, sent_count: 0, failed_count: 0, results: recipients.map((r) => jsonEntry(r, "would_do")) });
        return;
      }
      out.line(`Would send password reset emails to ${plural(recipients.length, "user")}:`);
      for (const r of recipients) out.line(`  ${describe(r)}${r.deactivated ? " [deactivated: email without a reset link]" : ""}`);
      return;
    }

    const es = emailSettings(config);
    requireOutgoingEmail(es);
    for (const w of emailConfigWarnings(es)) out.warn(w);

    const events = new EventDelivery(ctx, opts.events, { afterDatabaseChange: false });
    const d = await doSendPasswordResetEmails(es, config.settings, recipients, events, {
      progress: Boolean(process.stderr.isTTY) && !out.json,
      err: (line) => out.err(line),
    });
    const delivery = await events.commit();
    const { results, sent, failed, notSent } = d;
    if (d.unreachable) {
      out.err(`Cannot send email: ${d.unreachable.message}`);
      out.err(`No password reset emails were sent.`);
    }
    if (out.json) {
      const n = failed + notSent;
      out.jsonBody<SendPasswordResetEmailBody>(
        {
          dry_run: false,
          sent_count: sent,
          failed_count: n,
          results: results.map((r) => jsonEntry(r.item, deliveryStatusJson(r.status), r.error?.message)),
          events: eventsReportJson(delivery),
        },
        d.unreachable
          ? { error: `Cannot send email: ${d.unreachable.message}`, error_code: "email_failed" }
          : { error: `${n} of ${plural(recipients.length, "password reset email")} could not be sent.`, error_code: "email_failed" },
      );
    } else if (sent > 0) {
      out.line(`Sent ${plural(sent, "password reset email")}.`);
    }
    if (d.unreachable) return 1;
    if (failed + notSent > 0) {
      out.err(`${failed + notSent} of ${plural(recipients.length, "password reset email")} could not be sent.`);
      return 1;
    }
  },
});
