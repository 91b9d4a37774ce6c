// Who receives an event: Zulip's recipient sets (zerver/models/users.py active_user_ids,
// active_non_guest_user_ids; zerver/models/realms.py get_human_admin_users,
// get_admin_users_and_bots; zerver/lib/users.py user_access_restricted_in_realm,
// get_user_ids_who_can_access_user), read inside the action's transaction.
import type { Queryable } from "../db/db.js";
import { SystemGroups } from "./groups.js";
import { RecipientType } from "./models.js";
import { adminUsersAndBots, humanAdminUsers } from "./realms.js";
import { ROLES } from "./roles.js";

async function ids(q: Queryable, sql: string, params: unknown[]): Promise<number[]> {
  const { rows } = await q.query(sql, params);
  return rows.map((r) => Number(r.id));
}

/** active_user_ids(realm_id): every active user, bots included. */
export function activeUserIds(q: Queryable, realmId: number): Promise<number[]> {
  return ids(q, "SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active ORDER BY id", [realmId]);
}

/** active_non_guest_user_ids(realm_id). */
export function activeNonGuestUserIds(q: Queryable, realmId: number): Promise<number[]> {
  return ids(q, `SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND role <> ${ROLES.GUEST} ORDER BY id`, [realmId]);
}

/** realm.get_human_admin_users(): active human owners and administrators (realms.ts humanAdminUsers), by id. */
export async function humanAdminIds(q: Queryable, realmId: number): Promise<number[]> {
  return (await humanAdminUsers(q, realmId)).map((u) => u.id);
}

/** realm.get_admin_users_and_bots(): active owners and administrators, bots included (realms.ts adminUsersAndBots), by id. */
export async function adminUserAndBotIds(q: Queryable, realmId: number): Promise<number[]> {
  return (await adminUsersAndBots(q, realmId)).map((u) => Number(u.id));
}

/**
 * user_access_restricted_in_realm(user): false for bots, and when the realm's
 * can_access_all_users_group is the role:everyone system group.
 */
export async function userAccessRestricted(q: Queryable, user: { realm_id: number; is_bot: boolean }): Promise<boolean> {
  if (user.is_bot) return false;
  const { rows } = await q.query(
    `SELECT n.name FROM zerver_realm r LEFT JOIN zerver_namedusergroup n ON n.usergroup_ptr_id = r.can_access_all_users_group_id
      WHERE r.id = $1`,
    [user.realm_id],
  );
  return rows[0]?.name !== SystemGroups.EVERYONE;
}

/**
 * get_user_ids_who_can_access_user(user) (zerver/lib/users.py, read in main): every active user
 * when access is not restricted; else the user, active non-guests, active users sharing an
 * active channel or group-DM subscription with the user (get_subscribers_of_target_user_
 * subscriptions: recipient types 2 and 3, subscriber active and is_user_active), and active
 * users the user exchanged 1:1 direct messages with (get_users_involved_in_dms_with_target_users:
 * personal recipients, type 1 — none exist from 12.0 on, where 0790/0798 turned 1:1 DMs into
 * DM groups, so that part finds nothing there).
 */
export async function userIdsWhoCanAccessUser(q: Queryable, user: { id: number; realm_id: number; is_bot: boolean }): Promise<number[]> {
  if (!(await userAccessRestricted(q, user))) return activeUserIds(q, user.realm_id);
  return ids(
    q,
    `SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND (
        id = $2 OR role <> ${ROLES.GUEST}
        OR id IN (SELECT s2.user_profile_id FROM zerver_subscription s1
                    JOIN zerver_subscription s2 ON s2.recipient_id = s1.recipient_id
                    JOIN zerver_recipient r ON r.id = s1.recipient_id
                   WHERE s1.user_profile_id = $2 AND s1.active AND s2.active AND s2.is_user_active AND r.type IN (${RecipientType.STREAM}, ${RecipientType.DIRECT_MESSAGE_GROUP}))
        OR id IN (SELECT CASE WHEN m.sender_id = $2 THEN r.type_id ELSE m.sender_id END FROM zerver_message m
                    JOIN zerver_recipient r ON r.id = m.recipient_id
                   WHERE r.type = ${RecipientType.PERSONAL} AND m.realm_id = $1 AND (m.sender_id = $2 OR r.type_id = $2)))
      ORDER BY id`,
    [user.realm_id, user.id],
  );
}
