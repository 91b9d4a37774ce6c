// do_change_user_role (zerver/actions/users.py): the role column, the USER_ROLE_CHANGED (105)
// row with {"1": old, "2": new, "10": ROLE_COUNT after the change}, the direct membership moved
// from the old role's system group to the new one (704 and 703 rows), role:fullmembers
// recomputed when "member" is the old or new role, and the events Zulip sends for it.
import {
  type AuditLogEntry,
  AuditLogEventType,
  assembleRoleCounts,
  countsAfterChange,
  primeRosterAfterChange,
  insertAuditLog,
  NEW_VALUE,
  OLD_VALUE,
  ROLE_COUNT,
  type RealmUserCounts,
  type RoleCountBaseline,
  readRealmUserCounts,
  readWorkplacePart,
  workplaceGroupOf,
} from "../audit.js";
import type { Db, Queryable } from "../../db/db.js";
import type { CacheInvalidation } from "../cache.js";
import { metadataAccessChannelIds, sendStreamEventsForRoleUpdate } from "../events/channel-events.js";
import type { Notify } from "../../services/events.js";
import { userIdsWhoCanAccessUser } from "../audiences.js";
import {
  directGroupIds,
  getSystemGroup,
  sendGroupMembersEvent,
  SystemGroups,
  systemGroupNameForRole,
  systemGroups,
  updateFullMembersSystemGroup,
} from "../groups.js";
import { lockUserRow, type Realm, type UserProfile } from "../lookup.js";
import { ROLES } from "../roles.js";

/** What do_change_user_role reads of the realm (the row get_realm read, as Zulip uses it too). */
function realmFacts(realm: Realm): { id: number; waiting_period_threshold: number } {
  return { id: Number(realm.id), waiting_period_threshold: Number(realm.waiting_period_threshold) };
}

export interface GroupMoves {
  removed: string[];
  added: string[];
  auditIds: number[];
}

/** A promise whose value can be looked at without waiting, once it is there. */
export interface Tracked<T> {
  promise: Promise<T>;
  settled: boolean;
  value?: T;
}

export function tracked<T>(promise: Promise<T>): Tracked<T> {
  const t: Tracked<T> = { promise, settled: false };
  promise.then((v) => {
    t.settled = true;
    t.value = v;
  });
  return t;
}

/**
 * do_change_user_role's database writes, on a locked user whose role differs from newRole.
 *
 * `baseline`: the realm's user counts being read on a second connection (see
 * countsAfterChange). The 105 row's ROLE_COUNT comes from it when it matches the locked user,
 * else from a count inside this transaction. The rows are written in Zulip's order (105, then
 * the membership moves with their 704/703 rows); if the baseline has not arrived when the 105
 * row is due, the row gets its ROLE_COUNT filled in before COMMIT, so what is committed is the
 * same.
 */
export async function changeUserRole(
  q: Queryable,
  realmRow: Realm,
  user: UserProfile,
  newRole: number,
  baseline: Tracked<RoleCountBaseline | null>,
  notify?: Notify,
): Promise<GroupMoves> {
  const realm = realmFacts(realmRow);
  const oldRole = Number(user.role);
  const groups = await systemGroups(q, realm.id);
  const oldGroup = await getSystemGroup(q, realm.id, systemGroupNameForRole(oldRole));
  const newGroup = await getSystemGroup(q, realm.id, systemGroupNameForRole(newRole));
  // previously_accessible_streams, read before the role changes (for the stream events at the end).
  const accessibleBefore = notify ? await metadataAccessChannelIds(q, user) : [];

  await q.query("UPDATE zerver_userprofile SET role = $2 WHERE id = $1", [user.id, newRole]);
  primeRosterAfterChange(q, realm.id, baseline.promise, user.id, user, { role: newRole, is_active: user.is_active, is_bot: user.is_bot });
  // The part of the count that depends on group memberships is read now, before they move.
  const workplace = await readWorkplacePart(q, realm.id, workplaceGroupOf(realmRow.workplace_users_group_id, groups.values()));
  const after = { role: newRole, is_active: user.is_active, is_bot: user.is_bot };
  const extraData = (counts: RealmUserCounts) => ({ [OLD_VALUE]: oldRole, [NEW_VALUE]: newRole, [ROLE_COUNT]: assembleRoleCounts(counts, workplace) });
  // Counts by role do not depend on memberships: counting later in this transaction (when the
  // baseline turns out unusable) finds what Zulip finds here.
  let counts: RealmUserCounts | null | undefined = baseline.settled ? countsAfterChange(baseline.value ?? null, user, after) : undefined;
  if (counts === null) counts = await readRealmUserCounts(q, realm.id);
  const auditIds = await insertAuditLog(q, [
    {
      realmId: realm.id,
      eventType: AuditLogEventType.USER_ROLE_CHANGED,
      eventTime: new Date(),
      actingUserId: null,
      modifiedUserId: user.id,
      extraData: extraData(counts ?? { humans: {}, bots: 0 }),
    },
  ]);
  if (notify) {
    // Zulip (do_change_user_role, all of 10.x-12.x): maybe_enqueue_audit_log_upload after the
    // 105 row, then the role update to everyone who can see the user (computed with the new role).
    notify.events.auditLogUpload(notify.realm);
    notify.events.send(
      notify.realm,
      { type: "realm_user", op: "update", person: { user_id: user.id, role: newRole } },
      await userIdsWhoCanAccessUser(q, user),
      notify.what,
    );
  }
  const fillInCounts = async () => {
    if (counts !== undefined) return;
    counts = countsAfterChange(await baseline.promise, user, after) ?? (await readRealmUserCounts(q, realm.id));
    await q.query("UPDATE zerver_realmauditlog SET extra_data = $2::jsonb WHERE id = $1", [auditIds[0], JSON.stringify(extraData(counts))]);
  };

  await q.query("DELETE FROM zerver_usergroupmembership WHERE user_profile_id = $1 AND user_group_id = $2", [user.id, oldGroup.id]);
  const inserted = await q.query(
    `INSERT INTO zerver_usergroupmembership (user_group_id, user_profile_id) VALUES ($1, $2)
     ON CONFLICT (user_group_id, user_profile_id) DO NOTHING RETURNING id`,
    [newGroup.id, user.id],
  );
  const moveTime = new Date();
  const moveRows: AuditLogEntry[] = [
    {
      realmId: realm.id,
      eventType: AuditLogEventType.USER_GROUP_DIRECT_USER_MEMBERSHIP_REMOVED,
      eventTime: moveTime,
      actingUserId: null,
      modifiedUserId: user.id,
      modifiedUserGroupId: oldGroup.id,
    },
  ];
  // Zulip would fail on an already existing membership row (a damaged database); we keep the
  // row and do not claim to have added it.
  if (inserted.rows.length) {
    moveRows.push({ ...moveRows[0], eventType: AuditLogEventType.USER_GROUP_DIRECT_USER_MEMBERSHIP_ADDED, modifiedUserGroupId: newGroup.id });
  }
  auditIds.push(...(await insertAuditLog(q, moveRows)));
  if (notify) {
    await sendGroupMembersEvent(q, notify, "remove_members", oldGroup.id, [user.id]);
    if (inserted.rows.length) await sendGroupMembersEvent(q, notify, "add_members", newGroup.id, [user.id]);
  }
  const moves: GroupMoves = { removed: [oldGroup.name], added: inserted.rows.length ? [newGroup.name] : [], auditIds };

  if (oldRole === ROLES.MEMBER || newRole === ROLES.MEMBER) {
    const plan = await updateFullMembersSystemGroup(q, realm, [user.id], { actingUserId: null, notify });
    if (plan.remove.length) moves.removed.push(plan.fullMembersGroup.name);
    if (plan.add.length) moves.added.push(plan.fullMembersGroup.name);
    moves.auditIds.push(...plan.auditIds);
  }
  if (notify) await sendStreamEventsForRoleUpdate(q, notify, user, accessibleBefore, notify.featureLevel ?? Number.MAX_SAFE_INTEGER);
  await fillInCounts();
  return moves;
}

/** What changeUserRole would do, from the current state, without writing or locking. */
export async function planUserRoleChange(q: Queryable, realmRow: Realm, user: UserProfile, newRole: number): Promise<Omit<GroupMoves, "auditIds">> {
  const realm = realmFacts(realmRow);
  const oldRole = Number(user.role);
  const oldGroup = await getSystemGroup(q, realm.id, systemGroupNameForRole(oldRole));
  const newGroup = await getSystemGroup(q, realm.id, systemGroupNameForRole(newRole));
  const removed = [oldGroup.name];
  const current = await directGroupIds(q, user.id, [newGroup.id]);
  const added = current.has(newGroup.id) ? [] : [newGroup.name];
  if (oldRole === ROLES.MEMBER || newRole === ROLES.MEMBER) {
    const full = await getSystemGroup(q, realm.id, SystemGroups.FULL_MEMBERS);
    const inFull = (await directGroupIds(q, user.id, [full.id])).has(full.id);
    // The state after the move: a direct member of role:members exactly when the new role is member.
    const { rows } = await q.query(
      "SELECT floor(extract(epoch FROM ($2::timestamptz - date_joined)) / 86400)::bigint AS days FROM zerver_userprofile WHERE id = $1",
      [user.id, new Date()],
    );
    const provisional = Number(rows[0].days) < realm.waiting_period_threshold;
    if (inFull && (provisional || newRole !== ROLES.MEMBER)) removed.push(full.name);
    if (newRole === ROLES.MEMBER && !inFull && !provisional) added.push(full.name);
  }
  return { removed, added };
}

/** Lock the user row and read it again (the refresh_from_db with select_for_update(no_key=True) of Zulip's actions). */
export function lockUser(q: Queryable, userId: number): Promise<UserProfile> {
  return lockUserRow(q, userId, { missing: "The user was deleted while this command ran; nothing was changed." });
}

/**
 * do_change_user_role in a transaction of its own: the user row locked and re-read (so two
 * concurrent invocations never both apply the same change), changeUserRole, and flush_user_profile.
 * `moves` is null when the locked row already has the new role (nothing written).
 */
export async function doChangeUserRole(
  db: Db,
  realm: Realm,
  userId: number,
  newRole: number,
  opts: { baseline: Tracked<RoleCountBaseline | null>; notify?: Notify; cache?: CacheInvalidation },
): Promise<{ oldRole: number; moves: GroupMoves | null }> {
  const tx = <T>(fn: (q: Queryable) => Promise<T>) => (opts.notify ? opts.notify.events.tx(db, fn) : db.tx(fn));
  const r = await tx(async (q) => {
    const locked = await lockUser(q, userId);
    const oldRole = Number(locked.role);
    if (oldRole === newRole) return { oldRole, moves: null };
    const moves = await changeUserRole(q, realm, locked, newRole, opts.baseline, opts.notify);
    await opts.cache?.userChanged(q, { ...locked, role: newRole }, ["role"]);
    return { oldRole, moves };
  });
  if (r.moves) opts.cache?.changeCommitted();
  return r;
}
