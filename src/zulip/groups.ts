// System user groups and direct group membership, written the way Zulip writes them
// (zerver/lib/user_groups.py, zerver/actions/user_groups.py): membership rows plus their
// USER_GROUP_DIRECT_USER_MEMBERSHIP_ADDED (703) / _REMOVED (704) audit rows, and the
// role:fullmembers recomputation (update_users_in_full_members_system_group).
import { AuditLogEventType, insertAuditLog } from "./audit.js";
import type { Queryable } from "../db/db.js";
import { CommandError } from "../lib/errors.js";
import type { Notify } from "../services/events.js";
import { activeUserIds } from "./audiences.js";
import { ROLE_IDS, ROLES } from "./roles.js";

export const SystemGroups = {
  NOBODY: "role:nobody",
  OWNERS: "role:owners",
  ADMINISTRATORS: "role:administrators",
  MODERATORS: "role:moderators",
  FULL_MEMBERS: "role:fullmembers",
  MEMBERS: "role:members",
  EVERYONE: "role:everyone",
  EVERYONE_ON_INTERNET: "role:internet",
} as const;

/** The system groups in creation order, with their descriptions (create_system_user_groups_for_realm). */
export const SYSTEM_GROUPS = [
  [SystemGroups.NOBODY, "Nobody"],
  [SystemGroups.OWNERS, "Owners of this organization"],
  [SystemGroups.ADMINISTRATORS, "Administrators of this organization, including owners"],
  [SystemGroups.MODERATORS, "Moderators of this organization, including administrators"],
  [SystemGroups.FULL_MEMBERS, "Members of this organization, not including new accounts and guests"],
  [SystemGroups.MEMBERS, "Members of this organization, not including guests"],
  [SystemGroups.EVERYONE, "Everyone in this organization, including guests"],
  [SystemGroups.EVERYONE_ON_INTERNET, "Everyone on the Internet"],
] as const;
export type SystemGroupName = (typeof SYSTEM_GROUPS)[number][0];
export type SystemGroupIds = Record<SystemGroupName, number>;

/** NamedUserGroup's six group-setting columns; system groups point all of them at role:nobody. */
export const NAMED_GROUP_SETTING_COLUMNS = [
  "can_add_members_group_id",
  "can_join_group_id",
  "can_leave_group_id",
  "can_manage_group_id",
  "can_mention_group_id",
  "can_remove_members_group_id",
] as const;

/** get_system_user_group_for_user: the system group a user of each role is a direct member of. */
const SYSTEM_GROUP_FOR_ROLE: Record<number, SystemGroupName> = {
  [ROLES.REALM_OWNER]: SystemGroups.OWNERS,
  [ROLES.REALM_ADMINISTRATOR]: SystemGroups.ADMINISTRATORS,
  [ROLES.MODERATOR]: SystemGroups.MODERATORS,
  [ROLES.MEMBER]: SystemGroups.MEMBERS,
  [ROLES.GUEST]: SystemGroups.EVERYONE,
};

/**
 * The roles whose users belong (directly or through subgroups) to each role-based system group
 * (role:fullmembers depends on the waiting period as well: isProvisionalMember).
 */
export const ROLES_IN_SYSTEM_GROUP: Readonly<Record<string, readonly number[]>> = {
  [SystemGroups.NOBODY]: [],
  [SystemGroups.OWNERS]: [ROLES.REALM_OWNER],
  [SystemGroups.ADMINISTRATORS]: [ROLES.REALM_OWNER, ROLES.REALM_ADMINISTRATOR],
  [SystemGroups.MODERATORS]: [ROLES.REALM_OWNER, ROLES.REALM_ADMINISTRATOR, ROLES.MODERATOR],
  [SystemGroups.MEMBERS]: [ROLES.REALM_OWNER, ROLES.REALM_ADMINISTRATOR, ROLES.MODERATOR, ROLES.MEMBER],
  [SystemGroups.EVERYONE]: ROLE_IDS,
  [SystemGroups.EVERYONE_ON_INTERNET]: ROLE_IDS,
};

export interface NamedGroup {
  id: number;
  name: string;
}

/** The realm's system groups by name. */
export async function systemGroups(q: Queryable, realmId: number): Promise<Map<string, NamedGroup>> {
  const { rows } = await q.query(
    "SELECT usergroup_ptr_id AS id, name FROM zerver_namedusergroup WHERE realm_id = $1 AND is_system_group ORDER BY usergroup_ptr_id",
    [realmId],
  );
  const groups = new Map(rows.map((r) => [r.name as string, { id: Number(r.id), name: r.name as string }]));
  let perConnection = systemGroupCache.get(q);
  if (!perConnection) systemGroupCache.set(q, (perConnection = new Map()));
  perConnection.set(realmId, groups);
  return groups;
}

/**
 * System groups already read on a connection, per realm. A system group's id and name never
 * change once it exists; a group missing here (not created yet when the realm's groups were
 * read) is looked up again.
 */
const systemGroupCache = new WeakMap<Queryable, Map<number, Map<string, NamedGroup>>>();

/** NamedUserGroup.objects.get(realm=realm, name=name, is_system_group=True). */
export async function getSystemGroup(q: Queryable, realmId: number, name: string): Promise<NamedGroup> {
  const known = systemGroupCache.get(q)?.get(realmId)?.get(name);
  if (known) return known;
  const group = (await systemGroups(q, realmId)).get(name);
  if (!group) {
    throw new CommandError(`The realm (id ${realmId}) has no system group '${name}'; its user groups are damaged. Nothing was changed.`);
  }
  return group;
}

/** The system group ids of a realm, by name (every one of them must exist). */
export async function getSystemGroups(q: Queryable, realmId: number): Promise<SystemGroupIds> {
  const groups = await systemGroups(q, realmId);
  const out = {} as SystemGroupIds;
  for (const [n] of SYSTEM_GROUPS) {
    const g = groups.get(n);
    if (!g) throw new Error(`realm ${realmId} has no system group ${n}`);
    out[n] = g.id;
  }
  return out;
}

/** UserProfile.is_provisional_member: a member younger (in whole days) than the waiting period. */
export function isProvisionalMember(role: number, dateJoined: Date, waitingPeriodDays: number, now: Date): boolean {
  if (role !== ROLES.MEMBER) return false; // is_moderator (and above) → False; guests are not members
  const days = Math.floor((now.getTime() - dateJoined.getTime()) / 86400_000);
  return days < waitingPeriodDays;
}

export function systemGroupNameForRole(role: number): SystemGroupName {
  const name = SYSTEM_GROUP_FOR_ROLE[role];
  if (!name) throw new CommandError(`Unknown role ${role}.`);
  return name;
}

/** Ids of the groups (among `groupIds`, or all) the user is a direct member of. */
export async function directGroupIds(q: Queryable, userId: number, groupIds?: number[]): Promise<Set<number>> {
  const { rows } = groupIds
    ? await q.query("SELECT user_group_id FROM zerver_usergroupmembership WHERE user_profile_id = $1 AND user_group_id = ANY ($2::bigint[])", [
        userId,
        groupIds,
      ])
    : await q.query("SELECT user_group_id FROM zerver_usergroupmembership WHERE user_profile_id = $1", [userId]);
  return new Set(rows.map((r) => Number(r.user_group_id)));
}

export interface MembershipChangeOptions {
  actingUserId?: number | null;
  /** Send the user_group add_members / remove_members event Zulip sends for the change. */
  notify?: Notify;
  /** One time for all audit rows of the call (Zulip: one timezone_now() per bulk_create). */
  eventTime?: Date;
}

/**
 * bulk_add_members_to_user_groups([group], userIds): membership rows and one 703 audit row each.
 * Rows that already exist are left alone and get no audit row.
 */
async function addDirectMembers(
  q: Queryable,
  realmId: number,
  groupId: number,
  userIds: number[],
  opts: MembershipChangeOptions = {},
): Promise<{ added: number[]; auditIds: number[] }> {
  if (userIds.length === 0) return { added: [], auditIds: [] };
  const { rows } = await q.query(
    `INSERT INTO zerver_usergroupmembership (user_group_id, user_profile_id)
     SELECT $1, u FROM unnest($2::int[]) WITH ORDINALITY AS t(u, ord) ORDER BY ord
     ON CONFLICT (user_group_id, user_profile_id) DO NOTHING
     RETURNING user_profile_id`,
    [groupId, userIds],
  );
  const added = new Set(rows.map((r) => Number(r.user_profile_id)));
  const ordered = userIds.filter((u) => added.has(u));
  if (opts.notify && ordered.length) await sendGroupMembersEvent(q, opts.notify, "add_members", groupId, ordered);
  const eventTime = opts.eventTime ?? new Date();
  const auditIds = await insertAuditLog(
    q,
    ordered.map((u) => ({
      realmId,
      eventType: AuditLogEventType.USER_GROUP_DIRECT_USER_MEMBERSHIP_ADDED,
      eventTime,
      actingUserId: opts.actingUserId ?? null,
      modifiedUserId: u,
      modifiedUserGroupId: groupId,
    })),
  );
  return { added: ordered, auditIds };
}

/**
 * bulk_remove_members_from_user_groups([group], userIds): deletes the membership rows and writes
 * one 704 audit row per user (Zulip writes them whether or not a row was deleted).
 */
async function removeDirectMembers(q: Queryable, realmId: number, groupId: number, userIds: number[], opts: MembershipChangeOptions = {}): Promise<number[]> {
  if (userIds.length === 0) return [];
  await q.query("DELETE FROM zerver_usergroupmembership WHERE user_group_id = $1 AND user_profile_id = ANY ($2::int[])", [groupId, userIds]);
  if (opts.notify) await sendGroupMembersEvent(q, opts.notify, "remove_members", groupId, userIds);
  const eventTime = opts.eventTime ?? new Date();
  return insertAuditLog(
    q,
    userIds.map((u) => ({
      realmId,
      eventType: AuditLogEventType.USER_GROUP_DIRECT_USER_MEMBERSHIP_REMOVED,
      eventTime,
      actingUserId: opts.actingUserId ?? null,
      modifiedUserId: u,
      modifiedUserGroupId: groupId,
    })),
  );
}

export interface FullMembersPlan {
  fullMembersGroup: NamedGroup;
  /** Direct members of role:fullmembers to remove (provisional, or no longer members). */
  remove: number[];
  /** Direct members of role:members who are not full members yet and are past the waiting period. */
  add: number[];
}

/**
 * What update_users_in_full_members_system_group(realm, userIds) would change, from the
 * current state (reads only). `now` is the time the provisional check uses; a user is
 * provisional when the whole days since date_joined (Python timedelta.days) are fewer than
 * the realm's waiting_period_threshold.
 */
async function planFullMembersUpdate(
  q: Queryable,
  realm: { id: number; waiting_period_threshold: number },
  userIds: number[],
  now: Date,
): Promise<FullMembersPlan> {
  const full = await getSystemGroup(q, realm.id, SystemGroups.FULL_MEMBERS);
  const members = await getSystemGroup(q, realm.id, SystemGroups.MEMBERS);
  const { rows } = await q.query(
    `SELECT m.user_group_id AS group_id, u.id, u.role,
            floor(extract(epoch FROM ($3::timestamptz - u.date_joined)) / 86400)::bigint AS days
       FROM zerver_usergroupmembership m
       JOIN zerver_userprofile u ON u.id = m.user_profile_id
      WHERE m.user_group_id = ANY ($1::bigint[]) AND u.id = ANY ($2::int[])
      ORDER BY m.user_group_id, u.id`,
    [[full.id, members.id], userIds, now],
  );
  const threshold = Number(realm.waiting_period_threshold);
  const provisional = (r: any) => Number(r.days) < threshold;
  const fullRows = rows.filter((r) => Number(r.group_id) === full.id);
  const memberRows = rows.filter((r) => Number(r.group_id) === members.id);
  const fullIds = new Set(fullRows.map((r) => Number(r.id)));
  const remove = fullRows.filter((r) => provisional(r) || Number(r.role) !== ROLES.MEMBER).map((r) => Number(r.id));
  const add = memberRows.filter((r) => !fullIds.has(Number(r.id)) && !provisional(r)).map((r) => Number(r.id));
  return { fullMembersGroup: full, remove, add };
}

/**
 * update_users_in_full_members_system_group(realm, userIds): apply the plan (removals first)
 * and return it with the ids of the audit rows written.
 */
export async function updateFullMembersSystemGroup(
  q: Queryable,
  realm: { id: number; waiting_period_threshold: number },
  userIds: number[],
  opts: { actingUserId?: number | null; now?: Date; notify?: Notify } = {},
): Promise<FullMembersPlan & { auditIds: number[] }> {
  const plan = await planFullMembersUpdate(q, realm, userIds, opts.now ?? new Date());
  const auditIds: number[] = [];
  if (plan.remove.length) {
    auditIds.push(
      ...(await removeDirectMembers(q, realm.id, plan.fullMembersGroup.id, plan.remove, {
        actingUserId: opts.actingUserId,
        eventTime: new Date(),
        notify: opts.notify,
      })),
    );
  }
  if (plan.add.length) {
    const r = await addDirectMembers(q, realm.id, plan.fullMembersGroup.id, plan.add, {
      actingUserId: opts.actingUserId,
      eventTime: new Date(),
      notify: opts.notify,
    });
    auditIds.push(...r.auditIds);
  }
  return { ...plan, auditIds };
}

/**
 * do_send_user_group_members_update_event(op, group, user_ids) (zerver/actions/user_groups.py):
 * {"type": "user_group", "op": "add_members" | "remove_members", "group_id", "user_ids"} to
 * every active user of the realm.
 */
export async function sendGroupMembersEvent(q: Queryable, n: Notify, op: "add_members" | "remove_members", groupId: number, userIds: number[]): Promise<void> {
  n.events.send(n.realm, { type: "user_group", op, group_id: groupId, user_ids: userIds }, await activeUserIds(q, n.realm.id), n.what);
}
