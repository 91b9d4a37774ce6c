// do_reactivate_realm (zerver/actions/realm_settings.py): deactivated=false,
// scheduled_deletion_date=NULL (where the column exists) and REALM_REACTIVATED with ROLE_COUNT;
// the deactivated_redirect is kept; flush_realm; no event for clients (nobody can have an open
// queue in a deactivated realm), only the push bouncer job.
import { AuditLogEventType, insertAuditLog, ROLE_COUNT, roleCounts } from "../audit.js";
import type { CacheInvalidation } from "../cache.js";
import type { Db, Queryable } from "../../db/db.js";
import type { Notify } from "../../services/events.js";
import type { Realm } from "../lookup.js";
import { lockRealm } from "../realms.js";
import { tableColumns } from "../../db/db.js";

/**
 * do_reactivate_realm: deactivated=false, scheduled_deletion_date=NULL (where the column exists)
 * and REALM_REACTIVATED with ROLE_COUNT. deactivated_redirect is left alone, as Zulip does.
 */
async function reactivateRealm(
  q: Queryable,
  realm: Realm,
  opts: { now?: Date; cache?: CacheInvalidation; notify?: Notify } = {},
): Promise<{ auditLogId: number }> {
  const now = opts.now ?? new Date();
  const fields = ["deactivated"];
  if ((await tableColumns(q, "zerver_realm")).has("scheduled_deletion_date")) {
    await q.query("UPDATE zerver_realm SET deactivated = false, scheduled_deletion_date = NULL WHERE id = $1", [realm.id]);
    fields.push("scheduled_deletion_date");
  } else {
    await q.query("UPDATE zerver_realm SET deactivated = false WHERE id = $1", [realm.id]);
  }
  const [auditLogId] = await insertAuditLog(q, [
    {
      realmId: realm.id,
      eventType: AuditLogEventType.REALM_REACTIVATED,
      eventTime: now,
      actingUserId: null,
      extraData: { [ROLE_COUNT]: await roleCounts(q, realm.id) },
    },
  ]);
  // do_reactivate_realm (10.x, 11.x, main): no event for clients (nobody can have an open
  // queue in a deactivated realm), only maybe_enqueue_audit_log_upload after the audit row.
  opts.notify?.events.auditLogUpload(opts.notify.realm);
  await opts.cache?.realmChanged(q, { id: realm.id, string_id: realm.string_id, deactivated: false }, fields);
  return { auditLogId };
}

/**
 * do_reactivate_realm in a transaction of its own, the realm row locked: null when the realm
 * turns out to be active already (nothing written).
 */
export async function doReactivateRealm(
  db: Db,
  realmId: number,
  opts: { now?: Date; cache?: CacheInvalidation; notify?: Notify } = {},
): Promise<{ auditLogId: number } | null> {
  const tx = <T>(fn: (q: Queryable) => Promise<T>) => (opts.notify ? opts.notify.events.tx(db, fn) : db.tx(fn));
  const r = await tx(async (q) => {
    const locked = await lockRealm(q, realmId);
    if (!locked.deactivated) return null;
    return reactivateRealm(q, locked, opts);
  });
  if (r !== null) opts.cache?.changeCommitted();
  return r;
}
