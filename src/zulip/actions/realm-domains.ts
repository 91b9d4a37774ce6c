// An organization's allowed email domains (zerver_realmdomain), changed as Zulip's
// zerver/actions/realm_domains.py does (the same in 10.x, 11.x and 12.x):
//
//  * do_add_realm_domain: the row, a REALM_DOMAIN_ADDED (218) audit row with extra_data
//    {"realm_domains": [every domain of the realm after the change], "added_domain": {...}},
//    event {"type": "realm_domains", "op": "add", "realm_domain": {"domain", "allow_subdomains"}}.
//  * do_change_realm_domain: allow_subdomains, REALM_DOMAIN_CHANGED (219) {"realm_domains",
//    "changed_domain"}, event op "change".
//  * do_remove_realm_domain: the row deleted, REALM_DOMAIN_REMOVED (220) {"realm_domains",
//    "removed_domain"}; when it was the last domain and the organization restricts sign-ups to
//    its domains, do_set_realm_property(realm, "emails_restricted_to_domains", False) (207 row
//    {"1": true, "2": false, "property": ...}, event realm/update, the realm saved: flush_realm);
//    then event op "remove" {"domain"}.
// Events go to every active user of the realm. get_realm_domains() lists the realm's domains as
// {"domain", "allow_subdomains"} in the table's order (id order here).
//
// manage.py's own realm_domain command writes only the zerver_realmdomain row (no audit row, no
// event, and it leaves emails_restricted_to_domains on after removing the last domain); we do
// what the organization settings page does, so that open browsers and the audit log follow.
import { pyStrip } from "../../lib/pyformat.js";
import { AuditLogEventType, insertAuditLog, NEW_VALUE, OLD_VALUE } from "../audit.js";
import type { CacheInvalidation } from "../cache.js";
import type { Db, Queryable } from "../../db/db.js";
import { CommandError } from "../../lib/errors.js";
import type { Notify } from "../../services/events.js";
import { activeUserIds } from "../audiences.js";
import { lockRealm } from "../realms.js";

export interface RealmDomain {
  domain: string;
  allow_subdomains: boolean;
}

/** get_realm_domains(realm) */
export async function realmDomains(q: Queryable, realmId: number): Promise<RealmDomain[]> {
  const { rows } = await q.query("SELECT domain, allow_subdomains FROM zerver_realmdomain WHERE realm_id = $1 ORDER BY id", [realmId]);
  return rows.map((r) => ({ domain: r.domain as string, allow_subdomains: Boolean(r.allow_subdomains) }));
}

/**
 * zerver/lib/domains.py validate_domain: the message of the first rule broken, or null. The
 * caller has stripped and lower-cased the domain (as the command does).
 */
export function domainProblem(domain: string): string | null {
  if (domain.length === 0) return "Domain can't be empty.";
  if (!domain.includes(".")) return "Domain must have at least one dot (.)";
  if ([...domain].length > 255) return "Domain is too long";
  if (domain.startsWith(".") || domain.endsWith(".")) return "Domain cannot start or end with a dot (.)";
  for (const sub of domain.split(".")) {
    if (!sub) return "Consecutive '.' are not allowed.";
    if (sub.startsWith("-") || sub.endsWith("-")) return "Subdomains cannot start or end with a '-'.";
    if (!/^[a-z0-9-]*$/.test(sub)) return "Domain can only have letters, numbers, '.' and '-'s.";
  }
  return null;
}

/** The command's normalization: options["domain"].strip().lower() (Python's, for ASCII and beyond). */
export function normalizeDomain(domain: string): string {
  return pyStrip(domain).toLowerCase();
}

export interface DomainChangeResult {
  auditLogIds: number[];
  /** emails_restricted_to_domains was turned off (the last domain was removed). */
  restrictionLifted: boolean;
  domains: RealmDomain[];
  /** The domain added or removed. */
  changed: RealmDomain;
}

/** do_add_realm_domain, inside the caller's transaction. */
async function addRealmDomain(
  q: Queryable,
  realmId: number,
  domain: string,
  allowSubdomains: boolean,
  opts: { notify?: Notify; now?: Date } = {},
): Promise<DomainChangeResult> {
  await lockRealm(q, realmId, { columns: "id" });
  // Checked first (the realm row lock serializes writers), so a refused add uses no id.
  const { rows: existing } = await q.query("SELECT 1 FROM zerver_realmdomain WHERE realm_id = $1 AND domain = $2", [realmId, domain]);
  if (existing.length) throw new CommandError(`The domain ${domain} is already a part of your organization.`);
  await q.query("INSERT INTO zerver_realmdomain (realm_id, domain, allow_subdomains) VALUES ($1, $2, $3)", [realmId, domain, allowSubdomains]);
  const domains = await realmDomains(q, realmId);
  const added = { domain, allow_subdomains: allowSubdomains };
  const auditLogIds = await insertAuditLog(q, [
    {
      realmId,
      eventType: AuditLogEventType.REALM_DOMAIN_ADDED,
      eventTime: opts.now ?? new Date(),
      actingUserId: null,
      extraData: { realm_domains: domains, added_domain: added },
    },
  ]);
  if (opts.notify) {
    opts.notify.events.send(opts.notify.realm, { type: "realm_domains", op: "add", realm_domain: added }, await activeUserIds(q, realmId), opts.notify.what);
  }
  return { auditLogIds, restrictionLifted: false, domains, changed: added };
}

/** do_remove_realm_domain, inside the caller's transaction. */
async function removeRealmDomain(
  q: Queryable,
  realmId: number,
  domain: string,
  opts: { notify?: Notify; cache?: CacheInvalidation; now?: Date } = {},
): Promise<DomainChangeResult> {
  const realm = await lockRealm(q, realmId, { columns: "id, string_id, deactivated, emails_restricted_to_domains" });
  const { rows } = await q.query("DELETE FROM zerver_realmdomain WHERE realm_id = $1 AND domain = $2 RETURNING allow_subdomains", [realmId, domain]);
  if (!rows.length) throw new CommandError("No such entry found!");
  const domains = await realmDomains(q, realmId);
  const removed = { domain, allow_subdomains: Boolean(rows[0].allow_subdomains) };
  const when = opts.now ?? new Date();
  const auditLogIds = await insertAuditLog(q, [
    {
      realmId,
      eventType: AuditLogEventType.REALM_DOMAIN_REMOVED,
      eventTime: when,
      actingUserId: null,
      extraData: { realm_domains: domains, removed_domain: removed },
    },
  ]);
  const users = opts.notify ? await activeUserIds(q, realmId) : [];
  let restrictionLifted = false;
  if (domains.length === 0 && realm.emails_restricted_to_domains) {
    // do_set_realm_property(realm, "emails_restricted_to_domains", False, acting_user=None)
    await q.query("UPDATE zerver_realm SET emails_restricted_to_domains = false WHERE id = $1", [realmId]);
    opts.notify?.events.send(
      opts.notify.realm,
      { type: "realm", op: "update", property: "emails_restricted_to_domains", value: false },
      users,
      opts.notify.what,
    );
    auditLogIds.push(
      ...(await insertAuditLog(q, [
        {
          realmId,
          eventType: AuditLogEventType.REALM_PROPERTY_CHANGED,
          eventTime: new Date(),
          actingUserId: null,
          extraData: { [OLD_VALUE]: true, [NEW_VALUE]: false, property: "emails_restricted_to_domains" },
        },
      ])),
    );
    await opts.cache?.realmChanged(q, realm, ["emails_restricted_to_domains"]);
    restrictionLifted = true;
  }
  opts.notify?.events.send(opts.notify.realm, { type: "realm_domains", op: "remove", domain }, users, opts.notify.what);
  return { auditLogIds, restrictionLifted, domains, changed: removed };
}

/**
 * manage.py realm_domain --op add / remove: do_add_realm_domain or do_remove_realm_domain in its
 * own transaction (events staged on opts.notify.events, the cache change marked committed; the
 * caller delivers both).
 */
export async function doChangeRealmDomain(
  db: Db,
  realmId: number,
  op: "add" | "remove",
  domain: string,
  allowSubdomains: boolean,
  opts: { notify: Notify; cache: CacheInvalidation },
): Promise<DomainChangeResult> {
  const r = await opts.notify.events.tx(db, (q) =>
    op === "add"
      ? addRealmDomain(q, realmId, domain, allowSubdomains, { notify: opts.notify })
      : removeRealmDomain(q, realmId, domain, { notify: opts.notify, cache: opts.cache }),
  );
  opts.cache.changeCommitted();
  return r;
}

/**
 * The dry run of doChangeRealmDomain: the same refusals on the current state, the domains
 * afterwards, the domain added or removed, and whether the restriction to the domains would be
 * lifted (`restricted`: emails_restricted_to_domains now).
 */
export async function planRealmDomainChange(
  q: Queryable,
  realmId: number,
  op: "add" | "remove",
  domain: string,
  allowSubdomains: boolean,
  restricted: boolean,
): Promise<Omit<DomainChangeResult, "auditLogIds">> {
  const domains = await realmDomains(q, realmId);
  const existing = domains.find((d) => d.domain === domain);
  if (op === "add") {
    if (existing) throw new CommandError(`The domain ${domain} is already a part of your organization.`);
    const added = { domain, allow_subdomains: allowSubdomains };
    return { domains: [...domains, added], changed: added, restrictionLifted: false };
  }
  if (!existing) throw new CommandError("No such entry found!");
  const remaining = domains.filter((d) => d !== existing);
  return { domains: remaining, changed: existing, restrictionLifted: remaining.length === 0 && restricted };
}
