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
import { CommandError } from "../../lib/errors.js";
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

/** manage.py change_user_role's refusals when the flag already has the asked value (its CommandError messages). */
const UNCHANGED_MESSAGES: Record<PermissionFlag, { already: string; cannot: string }> = {
  can_forge_sender: { already: "User can already forge messages for this realm.", cannot: "User can't forge messages for this realm." },
  can_create_users: { already: "User can already create users for this realm.", cannot: "User can't create users for this realm." },
  can_change_user_emails: {
    already: "User can already change user emails for this realm.",
    cannot: "User can't change user emails for this realm.",
  },
  is_billing_admin: {
    already: "User is already a billing administrator for this realm.",
    cannot: "User is not a billing administrator for this realm.",
  },
};

/** manage.py change_user_role's check before setting `flag` to `grant`: a CommandError when the user's value (`current`) is already that. */
export function checkPermissionChange(flag: PermissionFlag, current: boolean, grant: boolean): void {
  if (current && grant) throw new CommandError(UNCHANGED_MESSAGES[flag].already);
  if (!current && !grant) throw new CommandError(UNCHANGED_MESSAGES[flag].cannot);
}

/** Whether this database's release has the flag's column (can_change_user_emails is newer than the others; is_billing_admin is gone since 10.0). */
export function permissionFlagSupported(db: Db, flag: PermissionFlag): Promise<boolean> {
  return db.hasColumn("zerver_userprofile", flag);
}

/**
 * How is_billing_admin is changed on this database: "column" (before Zulip 10.0, the flag),
 * "setting" (since 10.0: the user added to or removed from the realm setting
 * can_manage_billing_group, group-settings.ts changeBillingPermission), or null when it has neither.
 */
export async function billingAdminMode(db: Db): Promise<"column" | "setting" | null> {
  if (await permissionFlagSupported(db, "is_billing_admin")) return "column";
  if (await db.hasColumn("zerver_realm", "can_manage_billing_group_id")) return "setting";
  return null;
}
