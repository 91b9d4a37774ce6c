// The password reset emails of manage.py send_password_reset_email
// (zerver/management/commands/send_password_reset_email.py), each as Zulip's
// do_send_password_reset_email (zerver/actions/users.py) builds it: the reset link
// (generate_password_reset_url, src/zulip/password-reset.ts) for active users; for deactivated
// ones the variant without a link, naming the realms where the same address still has an
// active account. Mail goes out over SMTP with the server's EMAIL_* settings, many recipients
// sharing a few pooled connections.
//
// do_send_password_reset_email queues {"type": "soft_reactivate", "user_profile_id"} on
// deferred_work (queue_soft_reactivation) for each active recipient before sending its email; the
// worker soft-reactivates the user if long_term_idle (the 120 audit row, caught-up messages).
// That job is staged here for every active user whose email was attempted; it is never done
// inline.
import { CommandError } from "../../lib/errors.js";
import type { Queryable } from "../../db/db.js";
import { realmHost, realmUrl, type ZulipSettings } from "../../config/settings.js";
import {
  buildEmail,
  type Delivery,
  deliverEmails,
  type EmailSettings,
  type OutgoingEmail,
  securityEmailFromName,
  tokenizedNoreplyAddress,
} from "../../services/email.js";
import type { EventDelivery } from "../../services/events.js";
import { getRealm, getUsers, type UserProfile } from "../lookup.js";
import { TOS_VERSION_BEFORE_FIRST_LOGIN } from "../models.js";
import { makeToken, passwordResetUrl } from "../password-reset.js";
import { renderPasswordReset } from "../templates/password_reset.js";

/** The columns used here (the token hashes id, password, last_login and email). */
const USER_COLUMNS = "id, email, delivery_email, full_name, realm_id, role, is_active, is_bot, password, last_login, tos_version";

export interface PasswordResetRealm {
  id: number;
  string_id: string;
  name: string;
  url: string;
  host: string;
}

export interface PasswordResetRecipient {
  user: UserProfile;
  realm: PasswordResetRealm;
  /** Inactive users get the variant without a link (do_send_password_reset_email). */
  deactivated: boolean;
  otherRealmUrls: string[];
}

/** Who gets a password reset email: send_password_reset_email's options. */
export interface PasswordResetSelection {
  entireServer: boolean;
  realm: string | undefined;
  users: string | undefined;
  allUsers: boolean;
  /** --only-never-logged-in: those who have not accepted the Terms of Service. */
  onlyNeverLoggedIn: boolean;
}

async function selectUsers(db: Queryable, sel: PasswordResetSelection): Promise<UserProfile[]> {
  let users: UserProfile[];
  if (sel.entireServer) {
    const { rows } = await db.query(`SELECT ${USER_COLUMNS} FROM zerver_userprofile WHERE is_active AND NOT is_bot AND NOT is_mirror_dummy ORDER BY id`);
    users = rows;
  } else {
    const realm = await getRealm(db, sel.realm);
    try {
      users = await getUsers(db, { users: sel.users, allUsers: sel.allUsers }, realm, { isBot: false, columns: USER_COLUMNS });
    } catch (e) {
      if (e instanceof CommandError && e.message === "You have to pass either -u/--users or -a/--all-users.") {
        throw new CommandError("You have to pass -u/--users or -a/--all-users or --entire-server.", "invalid_arguments");
      }
      throw e;
    }
  }
  if (sel.onlyNeverLoggedIn) users = users.filter((u) => u.tos_version === TOS_VERSION_BEFORE_FIRST_LOGIN);
  return users;
}

/** The selected users with their realms, and for deactivated ones the realms where their address is still active. */
export async function passwordResetRecipients(db: Queryable, settings: ZulipSettings, sel: PasswordResetSelection): Promise<PasswordResetRecipient[]> {
  const users = await selectUsers(db, sel);
  if (users.length === 0) return [];

  const realmIds = [...new Set(users.map((u) => Number(u.realm_id)))];
  const { rows: realmRows } = await db.query("SELECT id, string_id, name FROM zerver_realm WHERE id = ANY($1::int[])", [realmIds]);
  const realms = new Map<number, PasswordResetRealm>();
  for (const r of realmRows) {
    realms.set(Number(r.id), {
      id: Number(r.id),
      string_id: r.string_id,
      name: r.name,
      url: realmUrl(settings, r.string_id),
      host: realmHost(settings, r.string_id),
    });
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

  return users.map((u) => ({
    user: u,
    realm: realms.get(Number(u.realm_id))!,
    deactivated: !u.is_active,
    otherRealmUrls: u.is_active ? [] : (others.get(u.delivery_email.toUpperCase()) ?? []),
  }));
}

/** `email (realm host)`, as the messages name a recipient. */
export function describePasswordResetRecipient(r: PasswordResetRecipient): string {
  return `${r.user.delivery_email} (${r.realm.host})`;
}

/** do_send_password_reset_email's email for one recipient. */
function buildPasswordResetEmail(es: EmailSettings, secretKey: string, r: PasswordResetRecipient): OutgoingEmail {
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
}

/**
 * Send each recipient their email, then stage the soft_reactivate job of every active recipient
 * whose email was attempted on `events` (marked committed: the caller delivers them).
 */
export async function doSendPasswordResetEmails(
  es: EmailSettings,
  settings: ZulipSettings,
  recipients: PasswordResetRecipient[],
  events: EventDelivery,
  opts: { progress: boolean; err: (line: string) => void },
): Promise<Delivery<PasswordResetRecipient>> {
  const secretKey = settings.get("SECRET_KEY");
  const d = await deliverEmails(es, recipients, (r) => buildPasswordResetEmail(es, secretKey, r), {
    progress: opts.progress,
    failureLine: (r, error) => `Failed to send password reset email to ${describePasswordResetRecipient(r)}: ${error.message}`,
    err: opts.err,
  });
  for (const r of d.results) {
    if (r.item.deactivated || r.status === "not_sent") continue;
    events.enqueue(
      "deferred_work",
      { type: "soft_reactivate", user_profile_id: Number(r.item.user.id) },
      `the soft reactivation of ${r.item.user.delivery_email} if idle`,
    );
  }
  events.committed();
  return d;
}
