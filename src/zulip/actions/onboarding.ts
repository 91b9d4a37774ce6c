// process_new_human_user's rows (zerver/actions/create_user.py) for a user who signs up without
// an invitation (manage.py create_user / create_realm), and enqueue_welcome_emails
// (zerver/lib/onboarding.py … send_email): other PreregistrationUsers of the address revoked,
// scheduled invitation reminders to it cleared, the welcome ScheduledEmails with their one-click
// unsubscribe confirmation, and the "visibility_policy_banner" OnboardingStep. Messages (the
// signup announcement: channels.ts; Welcome Bot's) and the queued "account registered" email are
// not part of this.
import type { Queryable } from "../../db/db.js";
import { CONFIRMATION_STATUS, CONFIRMATION_TYPES, insertConfirmation, UNSUBSCRIBE_VALIDITY_DAYS } from "../confirmation.js";
import { OrgType, ScheduledEmailType } from "../models.js";
import { isRealmAdmin } from "../roles.js";
import { realmUrl, type ZulipSettings } from "../../config/settings.js";

/** Realm.ORG_TYPES[...]["onboarding_zulip_guide_url"] by org type id. */
const ONBOARDING_GUIDE: Record<number, { url: string; reference: string } | undefined> = {
  [OrgType.BUSINESS]: { url: "https://zulip.com/for/business/", reference: "business" },
  [OrgType.OPENSOURCE]: { url: "https://zulip.com/for/open-source/", reference: "opensource" },
  [OrgType.EDUCATION_NONPROFIT]: { url: "https://zulip.com/for/education/", reference: "education" },
  [OrgType.EDUCATION]: { url: "https://zulip.com/for/education/", reference: "education" },
  [OrgType.RESEARCH]: { url: "https://zulip.com/for/research/", reference: "research" },
  [OrgType.EVENT]: { url: "https://zulip.com/for/events/", reference: "event" },
  [OrgType.NONPROFIT]: { url: "https://zulip.com/for/communities/", reference: "nonprofit" },
  [OrgType.COMMUNITY]: { url: "https://zulip.com/for/communities/", reference: "community" },
};
const COMMUNITIES_GUIDE = "https://zulip.com/for/communities/";

/** The weekday (1 = Monday … 7 = Sunday) of `when` in a time zone (UTC when unset or unknown). */
function isoWeekday(when: Date, timezone: string): number {
  let name: string;
  try {
    name = new Intl.DateTimeFormat("en-US", { timeZone: timezone || "UTC", weekday: "short" }).format(when);
  } catch {
    name = new Intl.DateTimeFormat("en-US", { timeZone: "UTC", weekday: "short" }).format(when);
  }
  return ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].indexOf(name) + 1;
}

/** get_onboarding_email_schedule(user): delays in milliseconds, never landing on a weekend. */
function onboardingEmailSchedule(dateJoined: Date, timezone: string): Record<string, number> {
  const d = (days: number) => (days * 24 - 1) * 3600_000;
  const s: Record<string, number> = {
    onboarding_zulip_topics: d(2),
    onboarding_zulip_guide: d(4),
    onboarding_team_to_zulip: d(6),
  };
  switch (isoWeekday(dateJoined, timezone)) {
    case 1:
      s.onboarding_team_to_zulip = d(8);
      break;
    case 2:
    case 3:
      s.onboarding_zulip_guide = d(6);
      s.onboarding_team_to_zulip = d(8);
      break;
    case 4:
      s.onboarding_zulip_topics = d(4);
      s.onboarding_zulip_guide = d(6);
      s.onboarding_team_to_zulip = d(8);
      break;
    case 5:
      s.onboarding_zulip_topics = d(4);
      s.onboarding_zulip_guide = d(6);
      s.onboarding_team_to_zulip = d(10);
      break;
    case 7:
      s.onboarding_team_to_zulip = d(8);
      break;
  }
  return s;
}

export interface ServerUrls {
  /** realm.url of the user's realm */
  realmUrl: string;
  /** settings.ROOT_DOMAIN_URI */
  rootDomainUrl: string;
  /** settings.EXTERNAL_URI_SCHEME */
  externalUriScheme: string;
  /** settings.EXTERNAL_HOST */
  externalHost: string;
  /** settings.CORPORATE_ENABLED */
  corporateEnabled?: boolean;
  /** settings.WELCOME_EMAIL_SENDER ({"name", "email"}) or null (the default). */
  welcomeEmailSender?: { name: string; email: string } | null;
}

/** ServerUrls plus what fake display emails need (REALM_HOSTS, FAKE_EMAIL_DOMAIN). */
export interface NewUserUrls extends ServerUrls {
  realmHosts: Record<string, string>;
  fakeEmailDomain: string;
}

/** The URLs and settings Zulip's common_context and fake display emails use, for the realm with this string id. */
export function serverUrls(s: ZulipSettings, stringId: string): NewUserUrls {
  const fileValue = (name: string, fallback: unknown) => {
    try {
      return s.fileValue(name, fallback as any);
    } catch {
      return fallback;
    }
  };
  const sender = fileValue("WELCOME_EMAIL_SENDER", null) as any;
  return {
    realmUrl: realmUrl(s, stringId),
    rootDomainUrl: s.get("ROOT_DOMAIN_URI"),
    externalUriScheme: s.get("EXTERNAL_URI_SCHEME"),
    externalHost: s.get("EXTERNAL_HOST"),
    corporateEnabled: fileValue("CORPORATE_ENABLED", false) === true,
    welcomeEmailSender: sender && typeof sender === "object" && typeof sender.name === "string" && typeof sender.email === "string" ? sender : null,
    realmHosts: s.get("REALM_HOSTS"),
    fakeEmailDomain: s.get("FAKE_EMAIL_DOMAIN"),
  };
}

export interface WelcomeEmailsResult {
  unsubscribeConfirmationId: number;
  unsubscribeLink: string;
  /** ScheduledEmail rows: id, template and when. */
  scheduled: { id: number; template: string; scheduledAt: Date }[];
}

/**
 * enqueue_welcome_emails(user, realm_creation): the one-click unsubscribe link (an UNSUBSCRIBE
 * confirmation of the user, valid 1,000,000 days) and the onboarding ScheduledEmail rows with
 * their recipient rows: onboarding_zulip_topics (unless the address has an account elsewhere on
 * the server), onboarding_zulip_guide (for org types with a guide; the communities guide only
 * for administrators) and, for the organization's creator, onboarding_team_to_zulip.
 */
async function enqueueWelcomeEmails(
  db: Queryable,
  userId: number,
  urls: ServerUrls,
  opts: { realmCreation?: boolean; now?: Date; unsubscribeKey?: string } = {},
): Promise<WelcomeEmailsResult> {
  const now = opts.now ?? new Date();
  const { rows } = await db.query(
    `SELECT u.id, u.realm_id, u.full_name, u.delivery_email, u.role, u.date_joined, u.timezone, r.name AS realm_name, r.org_type
       FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id WHERE u.id = $1`,
    [userId],
  );
  const u = rows[0];
  if (!u) throw new Error(`user ${userId} does not exist`);
  const realmId = Number(u.realm_id);
  // Accounts with this address in other organizations (Django's delivery_email__iexact). Asked
  // realm by realm, the (realm_id, upper(delivery_email)) unique index answers it; a plain
  // upper() comparison would read every user of the server.
  const others = await db.query(
    `SELECT count(*)::int AS n FROM zerver_userprofile
      WHERE realm_id IN (SELECT id FROM zerver_realm) AND upper(delivery_email::text) = upper($1) AND id <> $2`,
    [u.delivery_email, userId],
  );
  // one_click_unsubscribe_link(user, "welcome"): create_confirmation_object's expiry is
  // date_sent + timedelta(days=1000000), computed here (not with a PostgreSQL interval, whose
  // days follow the session time zone's daylight saving time).
  const conf = await insertConfirmation(db, {
    contentType: { appLabel: "zerver", model: "userprofile" },
    objectId: userId,
    type: CONFIRMATION_TYPES.UNSUBSCRIBE,
    realmId,
    validityDays: UNSUBSCRIBE_VALIDITY_DAYS,
    now,
    key: opts.unsubscribeKey,
  });
  const key = conf.key;
  const unsubscribeLink = `${urls.realmUrl}/accounts/unsubscribe/welcome/${key}`;
  const schedule = onboardingEmailSchedule(u.date_joined, u.timezone ?? "");
  const common = {
    realm_url: urls.realmUrl,
    realm_name: u.realm_name,
    root_domain_url: urls.rootDomainUrl,
    external_url_scheme: urls.externalUriScheme,
    external_host: urls.externalHost,
    user_name: u.full_name,
    corporate_enabled: urls.corporateEnabled ?? false,
  };
  const emails: { template: string; context: Record<string, unknown> }[] = [];
  if (others.rows[0].n === 0) {
    emails.push({
      template: "onboarding_zulip_topics",
      context: {
        ...common,
        unsubscribe_link: unsubscribeLink,
        move_messages_link: urls.realmUrl + "/help/move-content-to-another-topic",
        rename_topics_link: urls.realmUrl + "/help/rename-a-topic",
        move_channels_link: urls.realmUrl + "/help/move-content-to-another-channel",
      },
    });
  }
  const guide = ONBOARDING_GUIDE[Number(u.org_type)];
  const isAdmin = isRealmAdmin(Number(u.role));
  if (guide && !(guide.url === COMMUNITIES_GUIDE && !isAdmin)) {
    emails.push({
      template: "onboarding_zulip_guide",
      context: { ...common, unsubscribe_link: unsubscribeLink, organization_type: guide.reference, zulip_guide_link: guide.url },
    });
  }
  if (opts.realmCreation) {
    emails.push({
      template: "onboarding_team_to_zulip",
      context: {
        ...common,
        unsubscribe_link: unsubscribeLink,
        get_organization_started: urls.realmUrl + "/help/moving-to-zulip",
        invite_users: urls.realmUrl + "/help/invite-users-to-join",
        trying_out_zulip: urls.realmUrl + "/help/trying-out-zulip",
        why_zulip: "https://zulip.com/why-zulip/",
      },
    });
  }
  const sender = urls.welcomeEmailSender ?? null;
  const scheduled: WelcomeEmailsResult["scheduled"] = [];
  for (const e of emails) {
    const data = {
      template_prefix: `zerver/emails/${e.template}`,
      from_name: sender ? sender.name : null,
      from_address: sender ? sender.email : "SUPPORT",
      language: null,
      context: e.context,
    };
    const at = new Date(now.getTime() + schedule[e.template]);
    const row = await db.query(
      `INSERT INTO zerver_scheduledemail (scheduled_timestamp, data, address, type, realm_id) VALUES ($1, $2, NULL, $3, $4) RETURNING id`,
      [at, JSON.stringify(data), ScheduledEmailType.WELCOME, realmId],
    );
    const id = Number(row.rows[0].id);
    await db.query(`INSERT INTO zerver_scheduledemail_users (scheduledemail_id, userprofile_id) VALUES ($1, $2)`, [id, userId]);
    scheduled.push({ id, template: e.template, scheduledAt: at });
  }
  return { unsubscribeConfirmationId: conf.id, unsubscribeLink, scheduled };
}

export interface NewHumanUserSteps {
  /** PreregistrationUser rows of this address in the realm marked revoked. */
  preregistrationsRevoked: number;
  /** Invitation reminder emails to this address that were removed. */
  invitationRemindersRemoved: number;
  welcomeEmails: WelcomeEmailsResult | null;
  onboardingStepAdded: boolean;
}

/**
 * The database steps of process_new_human_user that follow the subscriptions createUser already
 * made (no invitation involved, as for manage.py create_user / create_realm): other
 * PreregistrationUsers of the address revoked, scheduled invitation reminders to it cleared,
 * the welcome ScheduledEmails (when the realm sends welcome emails) and the
 * "visibility_policy_banner" OnboardingStep. Messages (the signup announcement, Welcome Bot's)
 * and the queued "account registered" email are not part of this.
 */
export async function processNewHumanUserRows(
  db: Queryable,
  userId: number,
  urls: ServerUrls,
  opts: { realmCreation?: boolean; now?: Date } = {},
): Promise<NewHumanUserSteps> {
  const now = opts.now ?? new Date();
  const { rows } = await db.query(
    `SELECT u.delivery_email, u.realm_id, r.send_welcome_emails FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id WHERE u.id = $1`,
    [userId],
  );
  const u = rows[0];
  const revoked = await db.query(`UPDATE zerver_preregistrationuser SET status = $3 WHERE upper(email) = upper($1) AND realm_id = $2`, [
    u.delivery_email,
    Number(u.realm_id),
    CONFIRMATION_STATUS.REVOKED,
  ]);
  // clear_scheduled_invitation_emails(email)
  await db.query(
    `DELETE FROM zerver_scheduledemail_users WHERE scheduledemail_id IN
       (SELECT id FROM zerver_scheduledemail WHERE upper(address) = upper($1) AND type = $2)`,
    [u.delivery_email, ScheduledEmailType.INVITATION_REMINDER],
  );
  const cleared = await db.query(`DELETE FROM zerver_scheduledemail WHERE upper(address) = upper($1) AND type = $2`, [
    u.delivery_email,
    ScheduledEmailType.INVITATION_REMINDER,
  ]);
  const welcomeEmails = u.send_welcome_emails ? await enqueueWelcomeEmails(db, userId, urls, { realmCreation: opts.realmCreation, now }) : null;
  const step = await db.query(
    `INSERT INTO zerver_onboardingstep (onboarding_step, timestamp, user_id)
     SELECT 'visibility_policy_banner', $2, $1
      WHERE NOT EXISTS (SELECT 1 FROM zerver_onboardingstep WHERE user_id = $1 AND onboarding_step = 'visibility_policy_banner')
     RETURNING id`,
    [userId, now],
  );
  return {
    preregistrationsRevoked: revoked.rowCount ?? 0,
    invitationRemindersRemoved: cleared.rowCount ?? 0,
    welcomeEmails,
    onboardingStepAdded: step.rows.length > 0,
  };
}
