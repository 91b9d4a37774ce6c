// scrub_realms, the last step of Zulip's archive_messages cron job
// (zerver/management/commands/archive_messages.py):
//
//   clean_deactivated_realm_data()      # do_scrub_realm for deactivated realms past scheduled_deletion_date
//   delete_expired_demo_organizations() # do_deactivate_realm for demo organizations past their date
//
// (zerver/actions/realm_settings.py, read in the search index: zulip/zulip main and an older copy
// of the file from the 11.x era — do_deactivate_realm, delete_expired_demo_organizations and
// demo_organization_owner_email_exists are the same in both; do_scrub_realm is not.)
//
// Not reproduced: main's email passes is_demo_organization, and its HTML part then says "Your
// Zulip demo organization, …"; the older copy has no such variant, and which release got it could
// not be established, so the email is the one deactivate_realm sends (deactivate-realm.ts).
//
// delete_expired_demo_organizations is done here, exactly: for each active realm whose
// demo_organization_scheduled_deletion_date has passed (id order), one transaction with the realm
// row locked runs do_deactivate_realm(acting_user=None, deactivation_reason="demo_expired",
// deletion_delay_days=0, email_owners=demo_organization_owner_email_exists(realm)):
// deactivated=true, scheduled_deletion_date=now, the REALM_DEACTIVATED audit row (ROLE_COUNT,
// reason), maybe_enqueue_audit_log_upload, the realm's ScheduledEmail rows deleted, the
// {"type": "realm", "op": "deactivated"} event to its active users, and — because the delay is
// 0 — the deferred_work job {"type": "scrub_deactivated_realm", "realm_id"}: Zulip's deferred_work
// worker then scrubs the organization (scrub_deactivated_realm → do_scrub_realm). Zulip publishes
// that job with queue_json_publish_rollback_unsafe (during the transaction); we publish it after
// the COMMIT, in the same order, so a rolled-back deactivation never queues a scrub. Then, outside
// the transaction like Zulip: the users' sessions are deleted (delete_realm_user_sessions), and
// the human owners get the "organization deactivated" email with data_already_deleted=True when
// any of them has a non-empty delivery_email (demo_organization_owner_email_exists).
//
// clean_deactivated_realm_data is NOT done by zulip-manage: do_scrub_realm deletes every user's
// messages through the archive (do_delete_messages_by_sender), scrubs avatars (files and audit
// rows), renames every user, removes custom profile fields (with events) and deletes every
// attachment file, in ways that differ between releases; a partial reproduction would be a
// half-scrub. Such realms are reported (realmsDueForScrubbing) and the command exits 1; Zulip's
// own cron job or deferred_work worker scrubs them.
import { type CacheInvalidation } from "../cache.js";
import type { Db, Queryable } from "../../db/db.js";
import { EmailDeliveryError, type EmailSettings, Mailer } from "../../services/email.js";
import type { EventDelivery } from "../../services/events.js";
import { buildRealmDeactivatedEmails, deactivateRealm, deleteRealmSessions, type RealmEmailInfo } from "./deactivate-realm.js";
import { humanOwnerUsers, lockRealm } from "../realms.js";

export interface RealmDueForScrubbing {
  id: number;
  string_id: string;
  name: string;
  reason: string;
}

/** clean_deactivated_realm_data's realms: deactivated, scheduled_deletion_date <= now (id order). */
export async function realmsDueForScrubbing(db: Db): Promise<RealmDueForScrubbing[]> {
  if (!(await db.hasColumn("zerver_realm", "scheduled_deletion_date"))) return [];
  const { rows } = await db.query("SELECT id, string_id, name FROM zerver_realm WHERE deactivated AND scheduled_deletion_date <= now() ORDER BY id");
  return rows.map((r) => ({ id: Number(r.id), string_id: r.string_id, name: r.name, reason: "deactivated, scheduled deletion date passed" }));
}

/** delete_expired_demo_organizations' realms: active, demo_organization_scheduled_deletion_date <= now. */
export async function expiredDemoOrganizations(db: Db): Promise<{ id: number; string_id: string }[]> {
  if (!(await db.hasColumn("zerver_realm", "demo_organization_scheduled_deletion_date"))) return [];
  const { rows } = await db.query(
    "SELECT id, string_id FROM zerver_realm WHERE NOT deactivated AND demo_organization_scheduled_deletion_date <= now() ORDER BY id",
  );
  return rows.map((r) => ({ id: Number(r.id), string_id: r.string_id }));
}

/** demo_organization_owner_email_exists: the active human owners' delivery emails are not just {""}. */
export async function demoOrganizationOwnerEmailExists(q: Queryable, realmId: number): Promise<boolean> {
  const emails = new Set((await humanOwnerUsers(q, realmId)).map((u) => u.delivery_email));
  return !(emails.size === 1 && emails.has(""));
}

export interface DemoDeactivation {
  id: number;
  string_id: string;
  name: string;
  audit_log_id: number;
  scheduled_emails_deleted: number;
  sessions_deleted: number;
  emails: { to: string; user_id: number; status: "sent" | "failed"; error: string | null }[];
}

export interface DemoDeletionOptions {
  cache: CacheInvalidation;
  events: EventDelivery;
  secretKey?: string;
  /** Only called when an organization's owners are to be emailed. */
  emailSettings: () => EmailSettings;
  realmInfo: (stringId: string, name: string) => RealmEmailInfo;
  serverTimezone?: string;
  warn: (message: string) => void;
  now?: () => Date;
}

/**
 * delete_expired_demo_organizations: one transaction per organization (see the file comment).
 * Events and the scrub jobs are staged on `events`; the caller commits the cache, then the events.
 */
export async function deleteExpiredDemoOrganizations(db: Db, opts: DemoDeletionOptions): Promise<DemoDeactivation[]> {
  const out: DemoDeactivation[] = [];
  for (const candidate of await expiredDemoOrganizations(db)) {
    const when = opts.now?.() ?? new Date();
    const notify = {
      events: opts.events,
      realm: { id: candidate.id, string_id: candidate.string_id },
      what: `the deactivation of the expired demo organization ${candidate.string_id || "(root domain)"}`,
    };
    const done = await opts.events.tx(db, async (q) => {
      const locked = await lockRealm(q, candidate.id);
      // Re-checked under the lock: someone may have deactivated or converted it meanwhile.
      if (locked.deactivated || !locked.demo_organization_scheduled_deletion_date || new Date(locked.demo_organization_scheduled_deletion_date) > when) {
        return null;
      }
      const emailOwners = await demoOrganizationOwnerEmailExists(q, locked.id);
      const result = await deactivateRealm(q, locked, { reason: "demo_expired", actingUserId: null, deletionDelayDays: 0, now: when, cache: opts.cache, notify });
      // do_deactivate_realm with deletion_delay_days == 0, after the "deactivated" event.
      opts.events.enqueue("deferred_work", { type: "scrub_deactivated_realm", realm_id: locked.id }, `the scrubbing of ${candidate.string_id || "(root domain)"}`);
      return { result, emailOwners, name: String(locked.name) };
    });
    if (!done) continue;
    opts.cache.changeCommitted();
    const sessions = await db.tx((q) => deleteRealmSessions(q, candidate.id, opts.cache, opts.secretKey !== undefined ? { secretKey: opts.secretKey } : {}));
    const entry: DemoDeactivation = {
      id: candidate.id,
      string_id: candidate.string_id,
      name: done.name,
      audit_log_id: done.result.auditLogId,
      scheduled_emails_deleted: done.result.scheduledEmailsDeleted,
      sessions_deleted: sessions.length,
      emails: [],
    };
    out.push(entry);
    if (done.emailOwners) await emailOwners(db, opts, entry, done.name, when);
  }
  return out;
}

/** do_send_realm_deactivation_email(realm, None, deletion_delay_days=0): data_already_deleted. */
async function emailOwners(db: Db, opts: DemoDeletionOptions, entry: DemoDeactivation, name: string, when: Date): Promise<void> {
  const owners = await humanOwnerUsers(db, entry.id);
  if (!owners.length) return;
  const fail = (to: string, userId: number, message: string) => {
    entry.emails.push({ to, user_id: userId, status: "failed", error: message });
    opts.warn(`Failed to send the deactivation email to ${to}: ${message}`);
  };
  let es: EmailSettings;
  let mailer: Mailer;
  try {
    es = opts.emailSettings();
    mailer = await Mailer.open(es);
  } catch (e) {
    for (const o of owners) fail(o.delivery_email, o.id, (e as Error).message);
    return;
  }
  try {
    const mails = buildRealmDeactivatedEmails(es, opts.realmInfo(entry.string_id, name), owners, {
      when,
      ...(opts.serverTimezone !== undefined ? { serverTimezone: opts.serverTimezone } : {}),
      dataAlreadyDeleted: true,
    });
    for (const { owner, mail } of mails) {
      try {
        await mailer.send(mail);
        entry.emails.push({ to: owner.delivery_email, user_id: owner.id, status: "sent", error: null });
      } catch (e) {
        if (!(e instanceof EmailDeliveryError)) throw e;
        fail(owner.delivery_email, owner.id, e.message);
      }
    }
  } finally {
    mailer.close();
  }
}
