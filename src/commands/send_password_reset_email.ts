import { addEventsOption, addRealmOption, addUserListOptions } from "../cli/options.js";
import { defineUntypedCommand } from "../cli/command.js";
import type { Queryable } from "../db/db.js";
import { buildEmail, deliverEmails, emailConfigWarnings, emailSettings, type OutgoingEmail, requireOutgoingEmail, securityEmailFromName, tokenizedNoreplyAddress } from "../services/email.js";
import { CommandError } from "../lib/errors.js";
import { EventDelivery, eventsReportJson } from "../services/events.js";
import { getRealm, getUsers, type UserProfile } from "../zulip/lookup.js";
import { makeToken, passwordResetUrl } from "../zulip/password-reset.js";
import { realmHost, realmUrl } from "../config/settings.js";
import { renderPasswordReset } from "../zulip/templates/password_reset.js";
import { outcome, type StatusJson } from "../cli/json-contract.js";
import { userJson } from "../cli/json-objects.js";
import type { RealmJson } from "../schemas/shared.js";
import type { SendPasswordResetEmailBody } from "../schemas/send_password_reset_email.js";

/** UserProfile.TOS_VERSION_BEFORE_FIRST_LOGIN */
const TOS_VERSION_BEFORE_FIRST_LOGIN = "-1";

interface RealmInfo {
  id: number;
  string_id: string;
  name: string;
  url: string;
  host: string;
}

interface Recipient {
  user: UserProfile;
  realm: RealmInfo;
  /** Inactive users get the variant without a link (do_send_password_reset_email). */
  deactivated: boolean;
  otherRealmUrls: string[];
}

/** The columns this command uses (the token hashes id, password, last_login and email). */
const USER_COLUMNS = "id, email, delivery_email, full_name, realm_id, role, is_active, is_bot, password, last_login, tos_version";

async function selectUsers(db: Queryable, opts: Record<string, any>): Promise<UserProfile[]> {
  let users: UserProfile[];
  if (opts.entireServer) {
    const { rows } = await db.query(
      `SELECT ${USER_COLUMNS} FROM zerver_userprofile WHERE is_active AND NOT is_bot AND NOT is_mirror_dummy ORDER BY id`,
    );
    users = rows;
  } else {
    const realm = await getRealm(db, opts.realm);
    try {
      users = await getUsers(db, { users: opts.users, allUsers: opts.allUsers }, realm, { isBot: false, columns: USER_COLUMNS });
    } catch (e) {
      if (e instanceof CommandError && e.message === "You have to pass either -u/--users or -a/--all-users.") {
        throw new CommandError("You have to pass -u/--users or -a/--all-users or --entire-server.", "invalid_arguments");
      }
      throw e;
    }
  }
  if (opts.onlyNeverLoggedIn) users = users.filter((u) => u.tos_version === TOS_VERSION_BEFORE_FIRST_LOGIN);
  return users;
}

export default defineUntypedCommand({
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
  configure(cmd) {
    cmd.option("--only-never-logged-in", "Filter to only users which have not accepted the TOS.");
    cmd.option("--entire-server", "Send to every user on the server. ");
    addUserListOptions(cmd, {
      users: "Email addresses of user(s) to send password reset emails to.",
      all: "Send to every user on the realm.",
    });
    addRealmOption(cmd);
    cmd.option("--dry-run", "List the recipients without sending anything.");
    addEventsOption(cmd);
  },
  async run(ctx, _args, opts) {
    const out = ctx.out;
    const config = ctx.config();
    const settings = config.settings;
    const db = await ctx.db();
    const users = await selectUsers(db, opts);

    if (users.length === 0) {
      if (out.json) out.jsonBody<SendPasswordResetEmailBody>({ dry_run: Boolean(opts.dryRun), sent_count: 0, failed_count: 0, results: [] });
      else out.line("No matching users!");
      return;
    }

    const realmIds = [...new Set(users.map((u) => Number(u.realm_id)))];
    const { rows: realmRows } = await db.query("SELECT id, string_id, name FROM zerver_realm WHERE id = ANY($1::int[])", [realmIds]);
    const realms = new Map<number, RealmInfo>();
    for (const r of realmRows) {
      realms.set(Number(r.id), { id: Number(r.id), string_id: r.string_id, name: r.name, url: realmUrl(settings, r.string_id), host: realmHost(settings, r.string_id) });
    }

    // Deactivated users: the realms where the same address still has an active account.
    const inactiveEmails = [...new Set(users.filter((u) => !u.is_active).map((u) => u.delivery_email.toUpperCase()))];
    const others = new Map<string, string[]>();
    if (inactiveEmails.length) {
      const { rows } = await db.query(
        `SELECT upper(u.delivery_email::text) AS e, r.string_id FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id
          WHERE u.is_active AND upper(u.delivery_email::text) = ANY($1::text[]) ORDER BY u.id`,
        [inactiveEmails],
      );
      for (const r of rows) {
        const list = others.get(r.e) ?? [];
        list.push(realmUrl(settings, r.string_id));
        others.set(r.e, list);
      }
    }

    const recipients: Recipient[] = users.map((u) => ({
      user: u,
      realm: realms.get(Number(u.realm_id))!,
      deactivated: !u.is_active,
      otherRealmUrls: u.is_active ? [] : (others.get(u.delivery_email.toUpperCase()) ?? []),
    }));

    const describe = (r: Recipient) => `${r.user.delivery_email} (${r.realm.host})`;
    const realmObject = (r: RealmInfo): RealmJson => ({ id: r.id, string_id: r.string_id, name: r.name, url: r.url });
    const jsonEntry = (r: Recipient, status: StatusJson, error?: string): SendPasswordResetEmailBody["results"][number] => ({
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
      out.line(`Would send password reset emails to ${recipients.length} user${recipients.length === 1 ? "" : "s"}:`);
      for (const r of recipients) out.line(`  ${describe(r)}${r.deactivated ? " [deactivated: email without a reset link]" : ""}`);
      return;
    }

    const es = emailSettings(config);
    requireOutgoingEmail(es);
    for (const w of emailConfigWarnings(es)) out.warn(w);
    const secretKey = settings.get("SECRET_KEY");

    const build = (r: Recipient): OutgoingEmail => {
      const u = r.user;
      const context = {
        email: u.delivery_email,
        realmUrl: r.realm.url,
        realmName: r.realm.name,
        activeAccountInRealm: !r.deactivated,
        userDeactivated: r.deactivated,
        otherRealmUrls: r.otherRealmUrls,
        resetUrl: r.deactivated
          ? undefined
          : passwordResetUrl(r.realm.url, Number(u.id), makeToken({ id: Number(u.id), password: u.password, last_login: u.last_login, email: u.email }, secretKey)),
        emailImagesBaseUrl: es.emailImagesBaseUrl,
        physicalAddress: es.physicalAddress,
      };
      return buildEmail(es, {
        template: "password_reset",
        rendered: renderPasswordReset(context),
        ...(r.deactivated ? { toEmails: [u.delivery_email] } : { toUsers: [{ full_name: u.full_name, delivery_email: u.delivery_email }] }),
        fromName: securityEmailFromName(es),
        fromAddress: tokenizedNoreplyAddress(es),
        realm: { name: r.realm.name, host: r.realm.host, string_id: r.realm.string_id },
      });
    };

    const d = await deliverEmails(es, recipients, build, {
      progress: Boolean(process.stderr.isTTY) && !out.json,
      failureLine: (r, error) => `Failed to send password reset email to ${describe(r)}: ${error.message}`,
      err: (line) => out.err(line),
    });
    const { results, sent, failed, notSent } = d;
    // do_send_password_reset_email queues {"type": "soft_reactivate", "user_profile_id"} on
    // deferred_work (queue_soft_reactivation) for each active recipient before sending its email;
    // the worker soft-reactivates the user if long_term_idle (the 120 audit row, caught-up
    // messages). This is that job, for every active user whose email was attempted; it is
    // never done here inline (issue 16).
    const events = new EventDelivery(ctx, opts.events, { afterDatabaseChange: false });
    for (const r of results) {
      if (r.item.deactivated || r.status === "not_sent") continue;
      events.enqueue("deferred_work", { type: "soft_reactivate", user_profile_id: Number(r.item.user.id) }, `the soft reactivation of ${r.item.user.delivery_email} if idle`);
    }
    events.committed();
    const delivery = await events.commit();
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
          results: results.map((r) => jsonEntry(r.item, r.status === "sent" ? "done" : r.status === "failed" ? "failed" : "not_attempted", r.error?.message)),
          events: eventsReportJson(delivery),
        },
        d.unreachable
          ? { error: `Cannot send email: ${d.unreachable.message}`, error_code: "email_failed" }
          : { error: `${n} of ${recipients.length} password reset email${recipients.length === 1 ? "" : "s"} could not be sent.`, error_code: "email_failed" },
      );
    } else if (sent > 0) {
      out.line(`Sent ${sent} password reset email${sent === 1 ? "" : "s"}.`);
    }
    if (d.unreachable) return 1;
    if (failed + notSent > 0) {
      out.err(`${failed + notSent} of ${recipients.length} password reset email${recipients.length === 1 ? "" : "s"} could not be sent.`);
      return 1;
    }
  },
});
