// The special permission flags manage.py change_user_role sets (zerver/actions/users.py):
// do_change_can_forge_sender, do_change_can_create_users, do_change_can_change_user_emails —
// the column and a USER_SPECIAL_PERMISSION_CHANGED (108) row {"1": old, "2": new, "property":
// flag} — and, before Zulip 10.0, the is_billing_admin column (no audit row, as Zulip's billing
// code did; since 10.0 it is change-billing-permission.ts changeBillingPermission). One transaction, the
// user row locked and re-read; flush_user_profile.
import { AuditLogEventType, insertAuditLog, NEW_VALUE, OLD_VALUE } from "../audit.js";
import type { CacheInvalidation } from "../cache.js";
import type { Db } from "../../db/db.js";
import { quoteIdent } from "../../db/sql.js";
import { lockUser } from "./change-user-role.js";

export const PERMISSION_FLAGS = ["can_forge_sender", "can_create_users", "can_change_user_emails", "is_billing_admin"] as const;
export type PermissionFlag = (typeof PERMISSION_FLAGS)[number];

/** The flags whose change Zulip records in a 108 row. */
const AUDITED: ReadonlySet<PermissionFlag> = new Set(["can_forge_sender", "can_create_users", "can_change_user_emails"]);

export function isPermissionFlag(name: string): name is PermissionFlag {
  return (PERMISSION_FLAGS as readonly string[]).includes(name);
}

/**
 * Set `flag` to `grant` for the user. Nothing is written when the locked row already has that
 * value (changed false; the caller says why).
 */
export async function doChangeUserPermission(
  db: Db,
  userId: number,
  flag: PermissionFlag,
  grant: boolean,
  opts: { cache?: CacheInvalidation } = {},
): Promise<{ old: boolean; changed: boolean; auditLogIds: number[] }> {
  const r = await db.tx(async (q) => {
    const locked = await lockUser(q, userId);
    const old = Boolean(locked[flag]);
    if (old === grant) return { old, changed: false, auditLogIds: [] };
    const eventTime = new Date();
    await q.query(`UPDATE zerver_userprofile SET ${quoteIdent(flag)} = $2 WHERE id = $1`, [userId, grant]);
    let auditLogIds: number[] = [];
    if (AUDITED.has(flag)) {
      auditLogIds = await insertAuditLog(q, [
        {
          realmId: locked.realm_id,
          eventType: AuditLogEventType.USER_SPECIAL_PERMISSION_CHANGED,
          eventTime,
          actingUserId: null,
          modifiedUserId: userId,
          extraData: { [OLD_VALUE]: old, [NEW_VALUE]: grant, property: flag },
        },
      ]);
    }
    await opts.cache?.userChanged(q, { ...locked, [flag]: grant }, [flag]);
    return { old, changed: true, auditLogIds };
  });
  if (r.changed) opts.cache?.changeCommitted();
  return r;
}
