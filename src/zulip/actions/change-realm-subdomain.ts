// do_change_realm_subdomain (zerver/actions/realm_settings.py): the rename with its
// REALM_SUBDOMAIN_CHANGED row, earlier redirect placeholders pointed at the new URL, and unless
// told otherwise a placeholder organization at the old subdomain (do_create_realm, deactivated
// with reason "subdomain_change", redirecting to the new URL) — one transaction, the realm row
// locked; then every unexpired session of the organization's users is deleted.
import { AuditLogEventType, auditLogIdsOfRealm, insertAuditLog, NEW_VALUE, OLD_VALUE } from "../audit.js";
import type { CacheInvalidation } from "../cache.js";
import { CommandError } from "../../lib/errors.js";
import type { Db, Queryable } from "../../db/db.js";
import { seriesAtLeast } from "../../db/zulip-versions.js";
import type { Notify } from "../../services/events.js";
import type { Realm } from "../lookup.js";
import { lockRealm } from "../realms.js";
import { databaseSeries } from "../rows.js";
import { tableColumns } from "../../db/db.js";
import { findUserSessions } from "../sessions.js";
import { requireSubdomainAvailable, type SubdomainSettings } from "../subdomain.js";
import { createRealm, type CreatedRealm, sendRealmCreationEvents } from "./create-realm.js";
import { deactivateRealm, type DeactivationResult, deleteRealmSessions, setDeactivatedRedirect } from "./deactivate-realm.js";

// ---------------------------------------------------------------------------------------------
// Subdomain change

export interface SubdomainChangeResult {
  oldSubdomain: string;
  newSubdomain: string;
  auditLogId: number;
  /** Earlier placeholder realms whose redirect now points at the new URL. */
  redirectsUpdated: { id: number; string_id: string; name: string }[];
}

/**
 * The REALM_SUBDOMAIN_CHANGED (214) extra_data of do_change_realm_subdomain, per release
 * (zerver/actions/realm_settings.py):
 * - 10.x, 11.x: {"old_subdomain": old, "new_subdomain": new};
 * - 12.x: {RealmAuditLog.OLD_VALUE: old, NEW_VALUE: new} (PR #36731 "Add or fix extra_data
 *   field for audit log entries for changing a property", Nov 2025; the code keeps a comment
 *   that "old RealmAuditLog entries for this used old_subdomain and new_subdomain"), plus
 *   "was_demo_organization": whether the realm was a demo organization (its scheduled deletion
 *   date set) before the change (PR #37161, Dec 2025, to track demo conversions). Both were
 *   merged on main between 11.0 and 12.0; the 12.x file itself is not in the index we read.
 */
function subdomainChangedExtraData(series: string, oldSubdomain: string, newSubdomain: string, wasDemo: boolean): Record<string, unknown> {
  if (!seriesAtLeast(series, "12.x")) return { old_subdomain: oldSubdomain, new_subdomain: newSubdomain };
  return { [OLD_VALUE]: oldSubdomain, [NEW_VALUE]: newSubdomain, was_demo_organization: wasDemo };
}

/**
 * The first transaction of do_change_realm_subdomain: string_id = new (and a demo
 * organization's scheduled deletion cleared), REALM_SUBDOMAIN_CHANGED (extra_data as the
 * release writes it, see subdomainChangedExtraData), and every deactivated realm redirecting
 * to the old URL redirected to the new one.
 */
async function renameRealmSubdomain(
  q: Queryable,
  realm: Realm,
  newSubdomain: string,
  opts: { oldUrl: string; newUrl: string; now?: Date; cache?: CacheInvalidation },
): Promise<SubdomainChangeResult> {
  const now = opts.now ?? new Date();
  const old = realm.string_id;
  const demoColumn = (await tableColumns(q, "zerver_realm")).has("demo_organization_scheduled_deletion_date");
  const wasDemo = demoColumn
    ? Boolean((await q.query("SELECT demo_organization_scheduled_deletion_date IS NOT NULL AS demo FROM zerver_realm WHERE id = $1", [realm.id])).rows[0]?.demo)
    : false;
  await q.query(`UPDATE zerver_realm SET string_id = $2${demoColumn ? ", demo_organization_scheduled_deletion_date = NULL" : ""} WHERE id = $1`, [
    realm.id,
    newSubdomain,
  ]);
  const [auditLogId] = await insertAuditLog(q, [
    {
      realmId: realm.id,
      eventType: AuditLogEventType.REALM_SUBDOMAIN_CHANGED,
      eventTime: now,
      actingUserId: null,
      extraData: subdomainChangedExtraData(await databaseSeries(q), old, newSubdomain, wasDemo),
    },
  ]);
  await opts.cache?.realmChanged(
    q,
    { id: realm.id, string_id: newSubdomain, deactivated: realm.deactivated },
    demoColumn ? ["string_id", "demo_organization_scheduled_deletion_date"] : ["string_id"],
    { oldStringId: old },
  );
  const { rows } = await q.query(
    "SELECT id, string_id, name, deactivated FROM zerver_realm WHERE deactivated AND deactivated_redirect = $1 ORDER BY id FOR NO KEY UPDATE",
    [opts.oldUrl],
  );
  for (const r of rows) await setDeactivatedRedirect(q, { id: Number(r.id), string_id: r.string_id, deactivated: r.deactivated }, opts.newUrl, opts.cache);
  return { oldSubdomain: old, newSubdomain, auditLogId, redirectsUpdated: rows.map((r) => ({ id: Number(r.id), string_id: r.string_id, name: r.name })) };
}

/**
 * The redirect placeholder of do_change_realm_subdomain: do_create_realm(old subdomain, name)
 * with every default (system groups, settings, default channels, ...), do_deactivate_realm(...,
 * "subdomain_change", email_owners=False) and do_add_deactivated_redirect(new URL).
 */
async function createRedirectPlaceholder(
  q: Queryable,
  opts: {
    oldSubdomain: string;
    name: string;
    newUrl: string;
    now?: Date;
    cache?: CacheInvalidation;
    /** Where the placeholder's own events go (its realm is filled in here). */
    events?: { notify: Omit<Notify, "realm">; featureLevel: number };
  },
): Promise<{ realm: CreatedRealm; deactivation: DeactivationResult }> {
  const created = await createRealm(q, { stringId: opts.oldSubdomain, name: opts.name, ...(opts.now ? { dateCreated: opts.now } : {}) });
  const notify = opts.events && { ...opts.events.notify, realm: { id: created.id, string_id: opts.oldSubdomain } };
  if (notify) await sendRealmCreationEvents(q, notify, created, opts.events!.featureLevel);
  const row = await lockRealm(q, created.id);
  const deactivation = await deactivateRealm(q, row, { reason: "subdomain_change", cache: opts.cache, notify, ...(opts.now ? { now: opts.now } : {}) });
  await setDeactivatedRedirect(q, { id: created.id, string_id: opts.oldSubdomain, deactivated: true }, opts.newUrl, opts.cache);
  return { realm: created, deactivation };
}

/** A realm as the change reports it. */
export interface RedirectRealm {
  id: number;
  string_id: string;
  name: string;
}

/** What changing the subdomain now would touch, without writing: redirects to the old URL and the sessions to end. */
export async function planRealmSubdomainChange(
  q: Queryable,
  realmId: number,
  oldUrl: string,
  opts: { secretKey?: string } = {},
): Promise<{ redirectsUpdated: RedirectRealm[]; sessions: number }> {
  const { rows } = await q.query("SELECT id, string_id, name FROM zerver_realm WHERE deactivated AND deactivated_redirect = $1 ORDER BY id", [oldUrl]);
  const { rows: users } = await q.query("SELECT id FROM zerver_userprofile WHERE realm_id = $1", [realmId]);
  const sessions = await findUserSessions(
    q,
    users.map((u) => Number(u.id)),
    { unexpiredOnly: true, ...(opts.secretKey !== undefined ? { secretKey: opts.secretKey } : {}) },
  );
  return { redirectsUpdated: rows.map((r) => ({ id: Number(r.id), string_id: r.string_id, name: r.name })), sessions: sessions.length };
}

export interface RealmSubdomainChange {
  rename: SubdomainChangeResult;
  /** The redirect placeholder left at the old subdomain (null with skipRedirect). */
  placeholder: { realm: CreatedRealm; auditLogIds: number[] } | null;
  sessionsDeleted: number;
}

/**
 * manage.py change_realm_subdomain's do_change_realm_subdomain: one transaction (the realm row
 * locked and checked to still have the old subdomain; the new one checked again) renames the
 * realm and, unless skipRedirect, leaves the redirect placeholder; after the commit every
 * unexpired session of the realm's users is deleted (everyone logs in again).
 */
export async function doChangeRealmSubdomain(
  db: Db,
  realm: { id: number; string_id: string },
  newSubdomain: string,
  opts: {
    oldUrl: string;
    newUrl: string;
    skipRedirect: boolean;
    subdomainRules: SubdomainSettings & { allowReserved?: boolean };
    cache?: CacheInvalidation;
    /** Where the events go (the placeholder's realm is filled in here). */
    events?: { notify: Omit<Notify, "realm">; featureLevel: number };
    secretKey?: string;
  },
): Promise<RealmSubdomainChange> {
  const oldSubdomain = realm.string_id;
  const tx = <T>(fn: (q: Queryable) => Promise<T>) => (opts.events ? opts.events.notify.events.tx(db, fn) : db.tx(fn));
  const changed = await tx(async (q) => {
    const locked = await lockRealm(q, realm.id);
    if (locked.string_id !== oldSubdomain) throw new CommandError("The organization's subdomain changed while this command ran; nothing was changed.");
    // The subdomain may have been taken since the caller checked it.
    await requireSubdomainAvailable(q, newSubdomain, opts.subdomainRules);
    const rename = await renameRealmSubdomain(q, locked, newSubdomain, { oldUrl: opts.oldUrl, newUrl: opts.newUrl, cache: opts.cache });
    if (opts.skipRedirect) return { rename, placeholder: null };
    const p = await createRedirectPlaceholder(q, {
      oldSubdomain,
      name: locked.name,
      newUrl: opts.newUrl,
      cache: opts.cache,
      ...(opts.events ? { events: opts.events } : {}),
    });
    return { rename, placeholder: { realm: p.realm, auditLogIds: await auditLogIdsOfRealm(q, p.realm.id) } };
  });
  opts.cache?.changeCommitted();
  // Sessions can't be deleted inside Zulip's transaction; everyone logs in again.
  const sessions = await db.tx((q) => deleteRealmSessions(q, realm.id, opts.cache, opts.secretKey !== undefined ? { secretKey: opts.secretKey } : {}));
  return { ...changed, sessionsDeleted: sessions.length };
}
