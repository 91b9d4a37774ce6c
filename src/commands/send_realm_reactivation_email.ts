// send_realm_reactivation_email: manage.py send_realm_reactivation_email
// (do_send_realm_reactivation_email(realm, acting_user=None)).
//
// For a deactivated organization: one transaction writes a RealmReactivationStatus (status 0),
// its REALM_REACTIVATION confirmation (key valid CONFIRMATION_LINK_DEFAULT_VALIDITY_DAYS, 1 day
// by default; the link is <organization URL>/reactivate/<key>) and the
// REALM_REACTIVATION_EMAIL_SENT audit row; then one email with the link goes to all of the
// organization's active human owners and administrators over SMTP ("Reactivate your Zulip
// organization", from "<INSTALLATION_NAME> account security" at a tokenized noreply address).
// Like Zulip, the rows stay when sending fails (exit 1). Without any active human administrator
// nothing is written (Zulip would crash after writing the rows).
//
// --json: src/schemas/send_realm_reactivation_email.ts (README: --json output); confirmation,
// realm_reactivation_status_id null and audit_log_ids [] in a dry run; email.status would_do,
// done or failed.
import { addRequiredRealmOption } from "../cli/options.js";
import { defineCommand } from "../cli/command.js";
import { emailConfigWarnings, emailSettings, requireOutgoingEmail } from "../services/email.js";
import { CommandError } from "../lib/errors.js";
import { getRealm } from "../zulip/lookup.js";
import { humanAdminUsers, languageNote } from "../zulip/realms.js";
import { doCreateReactivationLink, sendRealmReactivationEmail } from "../zulip/actions/send-realm-reactivation-email.js";
import { realmHost, realmUrl } from "../config/settings.js";
import { outcome, utcTimestamp } from "../cli/json-contract.js";
import { realmJson, userJson } from "../cli/json-objects.js";
import type { SendRealmReactivationEmailBody } from "../schemas/send_realm_reactivation_email.js";

export default defineCommand({
  name: "send_realm_reactivation_email",
  description:
    "Sends realm reactivation email to admins\n\n" +
    "The organization's owners and administrators get a link (valid for a day by default) that reactivates it.",
  examples: ["zulip-manage send_realm_reactivation_email -r zulip", "zulip-manage send_realm_reactivation_email -r 2 --dry-run"],
  configure: (cmd) => addRequiredRealmOption(cmd.usage("[options] -r REALM")).option("--dry-run", "show who would get the email, and write and send nothing"),
  async run(ctx, _args, opts) {
    const out = ctx.out;
    const dryRun = Boolean(opts.dryRun);
    const config = ctx.config();
    const settings = config.settings;
    const db = await ctx.db();
    const realm = (await getRealm(db, opts.realm))!;
    if (!realm.deactivated) throw new CommandError(`The realm ${realm.name} is already active.`);

    const admins = await humanAdminUsers(db, realm.id);
    if (admins.length === 0) {
      throw new CommandError(`The realm ${realm.name} has no active human owner or administrator to send the reactivation email to; nothing was done.`);
    }
    const language = realm.default_language ?? "en";
    const result: SendRealmReactivationEmailBody = {
      dry_run: dryRun,
      realm: realmJson(settings, realm),
      recipients: admins.map((a) => userJson(a)),
      confirmation: null,
      realm_reactivation_status_id: null,
      audit_log_ids: [],
      email: { ...outcome("would_do"), language_note: languageNote(language) },
    };
    const finish = (code: number) => {
      out.jsonBody<SendRealmReactivationEmailBody>(
        result,
        code === 0 ? undefined : { error: `Failed to send the reactivation email: ${result.email.error}`, error_code: "email_failed" },
      );
      return code;
    };

    if (dryRun) {
      out.line(`Would send the reactivation email to ${admins.map((a) => a.delivery_email).join(", ")}.`);
      out.line("(dry run: nothing was changed)");
      return finish(0);
    }

    const es = emailSettings(config);
    requireOutgoingEmail(es);
    for (const w of emailConfigWarnings(es)) out.warn(w);
    const url = realmUrl(settings, realm.string_id);
    const info = { name: realm.name, string_id: realm.string_id, host: realmHost(settings, realm.string_id), url };

    out.line("Sending email to admins");
    const link = await doCreateReactivationLink(db, realm.id, { realmUrl: url, validityDays: settings.get("CONFIRMATION_LINK_DEFAULT_VALIDITY_DAYS") });
    result.confirmation = { id: link.confirmationId, key: link.key, url: link.url, expires_at: link.expiresAt ? utcTimestamp(link.expiresAt) : null };
    result.realm_reactivation_status_id = link.statusId;
    result.audit_log_ids = [link.auditLogId];

    const sent = await sendRealmReactivationEmail(es, settings, info, admins, link.url);
    if (sent.error !== null) {
      result.email = { ...result.email, ...outcome("failed", sent.error) };
      out.err(`Failed to send the reactivation email: ${sent.error}`);
      out.err(`The reactivation link was created anyway (as Zulip does): ${link.url}`);
      return finish(1);
    }
    result.email = { ...result.email, ...outcome("done") };
    out.line("Done!");
    return finish(0);
  },
});
