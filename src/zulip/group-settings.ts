// Realm permission settings whose value is a user group ("group settings", Zulip 10+), read and
// changed the way Zulip's update_realm view changes them when an administrator edits the
// setting in the web app (zerver/views/realm.py update_realm, zerver/lib/user_groups.py
// parse_group_setting_value / get_group_setting_value_for_api / access_user_group_for_setting /
// update_or_create_user_group_for_setting, zerver/actions/realm_settings.py
// do_change_realm_permission_group_setting; the same in 10.x, 11.x and 12.x):
//
//  * A setting's value is a named group (its id), or an anonymous group: a zerver_usergroup row
//    without a zerver_namedusergroup, whose direct members (zerver_usergroupmembership) and
//    direct subgroups (zerver_groupgroupmembership) are the users and groups chosen in the UI.
//    Its API value is {"direct_members": [active direct members], "direct_subgroups": [...]}.
//  * A requested value with no users and one group collapses to that group (and with neither, to
//    role:nobody, which the web app sends and Zulip 11+ also does itself).
//  * Setting an anonymous value updates the current anonymous group in place (Django's
//    .set(): memberships not in the new value are deleted, inactive users' included, missing
//    ones inserted; no 703/704 audit rows, as Zulip writes none for anonymous groups), or creates
//    a new zerver_usergroup when the setting held a named group.
//  * Going from an anonymous group back to a named one deletes the anonymous group (its
//    membership rows with it, as Django's cascade does).
//  * One REALM_PROPERTY_CHANGED (207) row: {"1": old API value, "2": new API value,
//    "property": <setting>}, acting user none. The realm is saved with update_fields=[setting]:
//    flush_realm deletes the cached profiles of the realm's active users.
//  * The event Zulip sends on commit: {"type": "realm", "op": "update_dict", "property":
//    "default", "data": {<setting>: new API value}} to the realm's active users (through
//    src/services/events.ts when the caller passes a Notify).
import { AuditLogEventType, insertAuditLog, NEW_VALUE, OLD_VALUE } from "./audit.js";
import { hasColumn, type Queryable } from "../db/db.js";
import { CommandError } from "../lib/errors.js";
import { getSystemGroup, SystemGroups } from "./groups.js";
import { ROLES } from "./roles.js";
import type { Notify } from "../services/events.js";
import { activeUserIds } from "./audiences.js";

export interface AnonymousValue {
  direct_members: number[];
  direct_subgroups: number[];
}
/** A group setting's API value: a named group's id, or the members of an anonymous group. */
export type GroupSettingValue = number | AnonymousValue;

/** GroupPermissionSetting of Realm.REALM_PERMISSION_GROUP_SETTINGS (the parts the checks use). */
export interface GroupPermissionConfig {
  allowNobodyGroup: boolean;
  allowEveryoneGroup: boolean;
  allowInternetGroup: boolean;
  /** What the setting is called in the web app. */
  label: string;
}

export const REALM_GROUP_SETTING_CONFIG: Record<string, GroupPermissionConfig> = {
  // zerver/models/realms.py: can_manage_billing_group=GroupPermissionSetting(
  //   allow_nobody_group=False, allow_everyone_group=False, default_group_name=ADMINISTRATORS)
  can_manage_billing_group: {
    allowNobodyGroup: false,
    allowEveryoneGroup: false,
    allowInternetGroup: false,
    label: "Who can manage plans and billing",
  },
};

/** How the web app names the system groups in settings. */
const SYSTEM_GROUP_DISPLAY: Record<string, string> = {
  [SystemGroups.NOBODY]: "Nobody",
  [SystemGroups.OWNERS]: "Owners",
  [SystemGroups.ADMINISTRATORS]: "Administrators",
  [SystemGroups.MODERATORS]: "Moderators",
  [SystemGroups.FULL_MEMBERS]: "Full members",
  [SystemGroups.MEMBERS]: "Members",
  [SystemGroups.EVERYONE]: "Everyone including guests",
  [SystemGroups.EVERYONE_ON_INTERNET]: "Everyone on the internet",
};

export interface GroupInfo {
  id: number;
  name: string;
  isSystem: boolean;
}

export function groupDisplayName(g: GroupInfo): string {
  return g.isSystem ? (SYSTEM_GROUP_DISPLAY[g.name] ?? g.name) : g.name;
}

/** The setting's current state. */
export interface GroupSettingState {
  setting: string;
  /** zerver_realm.<setting>_id */
  groupId: number;
  /** The named group, when the value is one. */
  named: GroupInfo | null;
  /** get_group_setting_value_for_api(current value). */
  value: GroupSettingValue;
  /** Direct members of an anonymous group, active or not. */
  allDirectMembers: number[];
}

export function isAnonymous(v: GroupSettingValue): v is AnonymousValue {
  return typeof v !== "number";
}

/** Names of named groups by id (realm-independent). */
export async function namedGroups(q: Queryable, ids: number[]): Promise<Map<number, GroupInfo>> {
  if (ids.length === 0) return new Map();
  const { rows } = await q.query(
    "SELECT usergroup_ptr_id AS id, name, is_system_group FROM zerver_namedusergroup WHERE usergroup_ptr_id = ANY ($1::bigint[])",
    [ids],
  );
  return new Map(rows.map((r) => [Number(r.id), { id: Number(r.id), name: r.name as string, isSystem: Boolean(r.is_system_group) }]));
}

/**
 * The realm's group setting now. Direct members are listed in membership order and subgroups
 * in the order they were added (Zulip's unordered queries return them that way).
 */
export async function readRealmGroupSetting(q: Queryable, realmId: number, setting: string): Promise<GroupSettingState> {
  const { rows } = await q.query(`SELECT ${setting}_id AS g FROM zerver_realm WHERE id = $1`, [realmId]);
  const groupId = Number(rows[0].g);
  const named = (await namedGroups(q, [groupId])).get(groupId) ?? null;
  if (named) return { setting, groupId, named, value: groupId, allDirectMembers: [] };
  const { rows: members } = await q.query(
    `SELECT m.user_profile_id AS id, u.is_active FROM zerver_usergroupmembership m JOIN zerver_userprofile u ON u.id = m.user_profile_id
      WHERE m.user_group_id = $1 ORDER BY m.id`,
    [groupId],
  );
  const { rows: subgroups } = await q.query("SELECT subgroup_id AS id FROM zerver_groupgroupmembership WHERE supergroup_id = $1 ORDER BY id", [groupId]);
  return {
    setting,
    groupId,
    named: null,
    value: {
      direct_members: members.filter((m) => m.is_active).map((m) => Number(m.id)),
      direct_subgroups: subgroups.map((s) => Number(s.id)),
    },
    allDirectMembers: members.map((m) => Number(m.id)),
  };
}

/** Which of `groupIds` (named groups) the user belongs to, directly or through subgroups. */
export async function groupsContainingUser(q: Queryable, userId: number, groupIds: number[]): Promise<number[]> {
  if (groupIds.length === 0) return [];
  const { rows } = await q.query(
    `WITH RECURSIVE tree(root, id) AS (
         SELECT g, g FROM unnest($1::bigint[]) AS g
       UNION
         SELECT t.root, ggm.subgroup_id FROM zerver_groupgroupmembership ggm JOIN tree t ON ggm.supergroup_id = t.id)
     SELECT DISTINCT t.root FROM tree t JOIN zerver_usergroupmembership m ON m.user_group_id = t.id AND m.user_profile_id = $2`,
    [groupIds, userId],
  );
  const found = new Set(rows.map((r) => Number(r.root)));
  return groupIds.filter((g) => found.has(g));
}

/** parse_group_setting_value (with Zulip 11's, and the web app's, empty value = role:nobody). */
export async function parseGroupSettingValue(q: Queryable, realmId: number, v: GroupSettingValue): Promise<GroupSettingValue> {
  if (!isAnonymous(v)) return v;
  if (v.direct_members.length === 0 && v.direct_subgroups.length === 1) return v.direct_subgroups[0];
  if (v.direct_members.length === 0 && v.direct_subgroups.length === 0) return (await getSystemGroup(q, realmId, SystemGroups.NOBODY)).id;
  return v;
}

/** are_both_group_setting_values_equal */
function groupSettingValuesEqual(a: GroupSettingValue, b: GroupSettingValue): boolean {
  if (!isAnonymous(a) && !isAnonymous(b)) return a === b;
  if (isAnonymous(a) && isAnonymous(b)) {
    const same = (x: number[], y: number[]) => new Set(x).size === new Set(y).size && x.every((e) => y.includes(e));
    return same(a.direct_members, b.direct_members) && same(a.direct_subgroups, b.direct_subgroups);
  }
  return false;
}

/** check_setting_configuration_for_system_groups, for a named group value. */
function checkNamedGroup(setting: string, group: GroupInfo & { deactivated?: boolean }, config: GroupPermissionConfig): void {
  if (group.deactivated) throw new CommandError("User group is deactivated.");
  const refuse = (name: string) => new CommandError(`'${setting}' setting cannot be set to '${name}' group.`);
  if (!config.allowInternetGroup && group.name === SystemGroups.EVERYONE_ON_INTERNET) throw refuse(group.name);
  if (!config.allowNobodyGroup && group.name === SystemGroups.NOBODY) throw refuse(group.name);
  if (!config.allowEveryoneGroup && group.name === SystemGroups.EVERYONE) throw refuse(group.name);
}

async function namedGroupInRealm(q: Queryable, realmId: number, id: number, lock: boolean): Promise<GroupInfo & { deactivated: boolean }> {
  const hasDeactivated = await hasColumn(q, "zerver_namedusergroup", "deactivated");
  const { rows } = await q.query(
    `SELECT usergroup_ptr_id AS id, name, is_system_group, ${hasDeactivated ? "deactivated" : "false AS deactivated"}
       FROM zerver_namedusergroup WHERE usergroup_ptr_id = $1 AND realm_id = $2${lock ? " FOR UPDATE" : ""}`,
    [id, realmId],
  );
  if (!rows.length) throw new CommandError("Invalid user group");
  return { id: Number(rows[0].id), name: rows[0].name, isSystem: Boolean(rows[0].is_system_group), deactivated: Boolean(rows[0].deactivated) };
}

/** A committed change of a realm group setting. */
export interface GroupSettingChange {
  oldValue: GroupSettingValue;
  newValue: GroupSettingValue;
  /** The group the setting points at now. */
  groupId: number;
  /** An anonymous group was created for the new value. */
  createdGroupId: number | null;
  /** The old anonymous group was deleted (the setting went back to a named group). */
  deletedGroupId: number | null;
  auditLogId: number;
}

/**
 * update_realm's handling of one group setting, inside the caller's transaction (the realm row
 * locked by the caller, `current` read after the lock): `requested` is parsed, compared with
 * the current value (null when equal: nothing written), then applied as
 * access_user_group_for_setting + do_change_realm_permission_group_setting do.
 */
export async function changeRealmGroupSetting(
  q: Queryable,
  realmId: number,
  current: GroupSettingState,
  requested: GroupSettingValue,
  opts: { actingUserId?: number | null; now?: Date; notify?: Notify } = {},
): Promise<GroupSettingChange | null> {
  const setting = current.setting;
  const config = REALM_GROUP_SETTING_CONFIG[setting];
  if (!config) throw new Error(`unsupported group setting ${setting}`);
  const newValue = await parseGroupSettingValue(q, realmId, requested);
  if (groupSettingValuesEqual(current.value, newValue)) return null;

  let groupId: number;
  let createdGroupId: number | null = null;
  if (!isAnonymous(newValue)) {
    const group = await namedGroupInRealm(q, realmId, newValue, true);
    checkNamedGroup(setting, group, config);
    groupId = group.id;
  } else {
    // update_or_create_user_group_for_setting
    if (current.named === null) {
      groupId = current.groupId;
    } else {
      const { rows } = await q.query("INSERT INTO zerver_usergroup (realm_id) VALUES ($1) RETURNING id", [realmId]);
      groupId = createdGroupId = Number(rows[0].id);
    }
    const { rows: users } = await q.query("SELECT id FROM zerver_userprofile WHERE id = ANY ($1::int[]) AND realm_id = $2 AND is_active", [
      newValue.direct_members,
      realmId,
    ]);
    const activeIds = new Set(users.map((u) => Number(u.id)));
    const bad = newValue.direct_members.find((u) => !activeIds.has(u));
    if (bad !== undefined) throw new CommandError(`Invalid user ID: ${bad}`);
    // direct_members.set(): delete what is not wanted, insert what is missing.
    await q.query("DELETE FROM zerver_usergroupmembership WHERE user_group_id = $1 AND NOT (user_profile_id = ANY ($2::int[]))", [
      groupId,
      newValue.direct_members,
    ]);
    await q.query(
      `INSERT INTO zerver_usergroupmembership (user_group_id, user_profile_id)
       SELECT $1, u FROM unnest($2::int[]) WITH ORDINALITY AS t(u, ord)
        WHERE NOT EXISTS (SELECT 1 FROM zerver_usergroupmembership WHERE user_group_id = $1 AND user_profile_id = u) ORDER BY ord`,
      [groupId, newValue.direct_members],
    );
    for (const sub of newValue.direct_subgroups) {
      const g = await namedGroupInRealm(q, realmId, sub, true);
      if (g.deactivated) throw new CommandError("User group is deactivated.");
    }
    await q.query("DELETE FROM zerver_groupgroupmembership WHERE supergroup_id = $1 AND NOT (subgroup_id = ANY ($2::bigint[]))", [
      groupId,
      newValue.direct_subgroups,
    ]);
    await q.query(
      `INSERT INTO zerver_groupgroupmembership (supergroup_id, subgroup_id)
       SELECT $1, s FROM unnest($2::bigint[]) WITH ORDINALITY AS t(s, ord)
        WHERE NOT EXISTS (SELECT 1 FROM zerver_groupgroupmembership WHERE supergroup_id = $1 AND subgroup_id = s) ORDER BY ord`,
      [groupId, newValue.direct_subgroups],
    );
  }

  await q.query(`UPDATE zerver_realm SET ${setting}_id = $2 WHERE id = $1`, [realmId, groupId]);
  let deletedGroupId: number | null = null;
  if (current.named === null && !isAnonymous(newValue)) {
    await deleteAnonymousGroup(q, current.groupId);
    deletedGroupId = current.groupId;
  }
  // new_setting_api_value = get_group_setting_value_for_api(user_group), read back.
  const after = await readRealmGroupSetting(q, realmId, setting);
  // send_event_on_commit(realm, {"type": "realm", "op": "update_dict", "property": "default",
  // "data": {setting: value}}, active_user_ids(realm.id)); the anonymous value is the dict
  // {"direct_members", "direct_subgroups"} in every release (10.x: the dataclass as orjson
  // writes it; 11+: convert_to_user_group_members_dict).
  if (opts.notify) {
    opts.notify.events.send(
      opts.notify.realm,
      { type: "realm", op: "update_dict", property: "default", data: { [setting]: after.value } },
      await activeUserIds(q, realmId),
      opts.notify.what,
    );
  }
  const [auditLogId] = await insertAuditLog(q, [
    {
      realmId,
      eventType: AuditLogEventType.REALM_PROPERTY_CHANGED,
      eventTime: opts.now ?? new Date(),
      actingUserId: opts.actingUserId ?? null,
      extraData: { [OLD_VALUE]: current.value, [NEW_VALUE]: after.value, property: setting },
    },
  ]);
  return { oldValue: current.value, newValue: after.value, groupId, createdGroupId, deletedGroupId, auditLogId };
}

/**
 * UserGroup.delete() of an anonymous setting group: Django cascades to its memberships and
 * subgroup links. Anything else still pointing at it (another setting) would make Django
 * refuse (RESTRICT); so do we.
 */
async function deleteAnonymousGroup(q: Queryable, groupId: number): Promise<void> {
  const { rows: refs } = await q.query(
    `SELECT c.conrelid::regclass::text AS tbl, a.attname AS col
       FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
      WHERE c.contype = 'f' AND c.confrelid = to_regclass('zerver_usergroup') AND array_length(c.conkey, 1) = 1`,
  );
  for (const r of refs) {
    if (["zerver_usergroupmembership", "zerver_groupgroupmembership"].includes(r.tbl.replace(/^zulip\./, ""))) continue;
    const { rows } = await q.query(`SELECT 1 FROM ${r.tbl} WHERE ${r.col} = $1 LIMIT 1`, [groupId]);
    if (rows.length) {
      throw new CommandError(`The anonymous group ${groupId} is also used by ${r.tbl}.${r.col}; it cannot be deleted. Nothing was changed.`);
    }
  }
  await q.query("DELETE FROM zerver_usergroupmembership WHERE user_group_id = $1", [groupId]);
  await q.query("DELETE FROM zerver_groupgroupmembership WHERE supergroup_id = $1", [groupId]);
  await q.query("DELETE FROM zerver_usergroup WHERE id = $1", [groupId]);
}

/** "Administrators", or "Administrators, Design team and 2 users (a@x, b@x)". */
export async function describeGroupSettingValue(q: Queryable, v: GroupSettingValue): Promise<string> {
  if (!isAnonymous(v)) {
    const g = (await namedGroups(q, [v])).get(v);
    return g ? groupDisplayName(g) : `group ${v}`;
  }
  const groups = await namedGroups(q, v.direct_subgroups);
  const parts = v.direct_subgroups.map((id) => {
    const g = groups.get(id);
    return g ? groupDisplayName(g) : `group ${id}`;
  });
  if (v.direct_members.length) {
    const { rows } = await q.query("SELECT id, delivery_email FROM zerver_userprofile WHERE id = ANY ($1::int[])", [v.direct_members]);
    const email = new Map(rows.map((r) => [Number(r.id), r.delivery_email as string]));
    parts.push(...v.direct_members.map((id) => email.get(id) ?? `user ${id}`));
  }
  return parts.join(", ");
}

// ---------------------------------------------------------------------------------------------
// change_user_role's is_billing_admin on Zulip 10+: one user added to / removed from
// "Who can manage plans and billing" as an administrator does it in the web app (a user pill
// added next to the current group pill, or removed).

export const BILLING_SETTING = "can_manage_billing_group";

/**
 * The value the web app would send for the billing setting with `userId` added (grant) or
 * removed (revoke), or a refusal when the user already has / does not have the permission
 * that way. Guests never have it (allow_everyone_group=False: user_has_permission_for_group_setting
 * is false for guests whatever the groups say), so granting to a guest is refused too.
 */
export async function billingPermissionRequest(
  q: Queryable,
  current: GroupSettingState,
  user: { id: number; role: number; is_active: boolean; delivery_email: string },
  grant: boolean,
): Promise<GroupSettingValue> {
  const label = REALM_GROUP_SETTING_CONFIG[BILLING_SETTING].label;
  const v = current.value;
  const direct = isAnonymous(v) && v.direct_members.includes(user.id);
  const subgroupIds = isAnonymous(v) ? v.direct_subgroups : [v];
  const through = await groupsContainingUser(q, user.id, subgroupIds);
  const names = [...(await namedGroups(q, through)).values()].map((g) => `'${groupDisplayName(g)}'`).join(", ");
  if (grant) {
    if (!user.is_active) throw new CommandError(`${user.delivery_email} is deactivated; only active users can be given the permission.`);
    if (user.role === ROLES.GUEST) {
      throw new CommandError(`Guests cannot manage plans and billing: Zulip ignores guests in the "${label}" setting.`);
    }
    if (direct) throw new CommandError(`User can already manage plans and billing for this realm (named in "${label}").`);
    if (through.length) {
      throw new CommandError(`User can already manage plans and billing for this realm, through the group ${names} ("${label}").`);
    }
    if (isAnonymous(v)) return { direct_members: [...v.direct_members, user.id], direct_subgroups: [...v.direct_subgroups] };
    return { direct_members: [user.id], direct_subgroups: [v] };
  }
  if (!direct) {
    if (through.length && user.role !== ROLES.GUEST) {
      throw new CommandError(
        `User can manage plans and billing only through the group ${names}, not as a member of "${label}" in their own right; ` +
          "change their role or group membership, or the setting, instead.",
      );
    }
    throw new CommandError("User cannot manage plans and billing for this realm.");
  }
  const rest = (v as AnonymousValue).direct_members.filter((u) => u !== user.id);
  const subgroups = (v as AnonymousValue).direct_subgroups;
  if (rest.length === 0 && subgroups.length === 0) {
    throw new CommandError(
      `'${BILLING_SETTING}' setting cannot be set to 'role:nobody' group. ` +
        `${user.delivery_email} is the only one in "${label}"; give someone else the permission first.`,
    );
  }
  return { direct_members: rest, direct_subgroups: [...subgroups] };
}
