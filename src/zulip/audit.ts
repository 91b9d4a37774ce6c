// RealmAuditLog rows written the way Zulip writes them (zerver/models/realm_audit_logs.py),
// and the ROLE_COUNT snapshot Zulip stores in the billing-relevant ones
// (zerver/lib/user_counts.py: realm_user_count_by_role).
//
// Every NOT NULL column is supplied explicitly (Django supplies the Python-side defaults:
// backfilled=false, extra_data={}; `scrubbed` has a database default but is written too where
// the column exists). event_time is the application's clock, like Django's timezone_now().
import { pyStrip } from "../lib/pyformat.js";
import { type Queryable, tableColumns } from "../db/db.js";
import { type ActiveRoster, parseRoster, primeActiveRoster, rosterSql, rosterWith } from "./audiences.js";
import { realmCondition } from "./lookup.js";
import { ROLES_IN_SYSTEM_GROUP, SystemGroups } from "./groups.js";
import { ROLE_IDS, ROLES } from "./roles.js";
import { insertRow, type Row } from "./rows.js";

export const AuditLogEventType = {
  USER_CREATED: 101,
  USER_ACTIVATED: 102,
  USER_DEACTIVATED: 103,
  USER_REACTIVATED: 104,
  USER_ROLE_CHANGED: 105,
  USER_DELETED: 106,
  USER_DELETED_PRESERVING_MESSAGES: 107,
  USER_SPECIAL_PERMISSION_CHANGED: 108,
  USER_SOFT_ACTIVATED: 120,
  USER_SOFT_DEACTIVATED: 121,
  USER_PASSWORD_CHANGED: 122,
  USER_AVATAR_SOURCE_CHANGED: 123,
  USER_FULL_NAME_CHANGED: 124,
  USER_EMAIL_CHANGED: 125,
  USER_TERMS_OF_SERVICE_VERSION_CHANGED: 126,
  USER_API_KEY_CHANGED: 127,
  USER_BOT_OWNER_CHANGED: 128,
  USER_DEFAULT_SENDING_STREAM_CHANGED: 129,
  USER_DEFAULT_REGISTER_STREAM_CHANGED: 130,
  USER_DEFAULT_ALL_PUBLIC_STREAMS_CHANGED: 131,
  USER_SETTING_CHANGED: 132,
  USER_DIGEST_EMAIL_CREATED: 133,
  USER_IS_IMPORTED_STUB_CHANGED: 134,
  REALM_DEACTIVATED: 201,
  REALM_REACTIVATED: 202,
  REALM_SCRUBBED: 203,
  REALM_PLAN_TYPE_CHANGED: 204,
  REALM_LOGO_CHANGED: 205,
  REALM_EXPORTED: 206,
  REALM_PROPERTY_CHANGED: 207,
  REALM_ICON_SOURCE_CHANGED: 208,
  REALM_DISCOUNT_CHANGED: 209,
  REALM_SPONSORSHIP_APPROVED: 210,
  REALM_BILLING_MODALITY_CHANGED: 211,
  REALM_REACTIVATION_EMAIL_SENT: 212,
  REALM_SPONSORSHIP_PENDING_STATUS_CHANGED: 213,
  REALM_SUBDOMAIN_CHANGED: 214,
  REALM_CREATED: 215,
  REALM_DEFAULT_USER_SETTINGS_CHANGED: 216,
  REALM_ORG_TYPE_CHANGED: 217,
  REALM_DOMAIN_ADDED: 218,
  REALM_DOMAIN_CHANGED: 219,
  REALM_DOMAIN_REMOVED: 220,
  REALM_IMPORTED: 229,
  REALM_EXPORT_DELETED: 230,
  SUBSCRIPTION_CREATED: 301,
  SUBSCRIPTION_ACTIVATED: 302,
  SUBSCRIPTION_DEACTIVATED: 303,
  SUBSCRIPTION_PROPERTY_CHANGED: 304,
  USER_MUTED: 350,
  USER_UNMUTED: 351,
  CHANNEL_CREATED: 601,
  CHANNEL_DEACTIVATED: 602,
  CHANNEL_NAME_CHANGED: 603,
  CHANNEL_REACTIVATED: 604,
  USER_GROUP_CREATED: 701,
  USER_GROUP_DELETED: 702,
  USER_GROUP_DIRECT_USER_MEMBERSHIP_ADDED: 703,
  USER_GROUP_DIRECT_USER_MEMBERSHIP_REMOVED: 704,
  USER_GROUP_DIRECT_SUBGROUP_MEMBERSHIP_ADDED: 705,
  USER_GROUP_DIRECT_SUBGROUP_MEMBERSHIP_REMOVED: 706,
  USER_GROUP_DIRECT_SUPERGROUP_MEMBERSHIP_ADDED: 707,
  USER_GROUP_DIRECT_SUPERGROUP_MEMBERSHIP_REMOVED: 708,
  CUSTOM_EMAIL_SENT: 810,
} as const;

/** RealmAuditLog extra_data keys. */
export const OLD_VALUE = "1";
export const NEW_VALUE = "2";
export const ROLE_COUNT = "10";
const ROLE_COUNT_HUMANS = "11";
const ROLE_COUNT_BOTS = "12";

/** The events Zulip uploads to the push bouncer (and which carry a ROLE_COUNT). */
export const SYNCED_BILLING_EVENTS: readonly number[] = [
  AuditLogEventType.USER_CREATED,
  AuditLogEventType.USER_ACTIVATED,
  AuditLogEventType.USER_DEACTIVATED,
  AuditLogEventType.USER_REACTIVATED,
  AuditLogEventType.USER_ROLE_CHANGED,
  AuditLogEventType.REALM_DEACTIVATED,
  AuditLogEventType.REALM_REACTIVATED,
  AuditLogEventType.REALM_IMPORTED,
];

export interface AuditLogEntry {
  realmId: number;
  eventType: number;
  /** Default: now. Entries Zulip writes with one bulk_create share one time: pass the same Date. */
  eventTime?: Date;
  actingUserId?: number | null;
  modifiedUserId?: number | null;
  modifiedStreamId?: number | null;
  modifiedUserGroupId?: number | null;
  modifiedChannelFolderId?: number | null;
  eventLastMessageId?: number | null;
  extraData?: Record<string, unknown>;
  backfilled?: boolean;
}

/**
 * db.ts tableColumns under its former name, for actions/delete-user.ts until it imports
 * tableColumns from db.ts itself (the one column cache).
 */

/**
 * Insert audit rows (one statement, ids ascending in the given order, like Django's
 * bulk_create) and return their ids.
 */
export async function insertAuditLog(q: Queryable, entries: AuditLogEntry[]): Promise<number[]> {
  if (entries.length === 0) return [];
  const cols = await tableColumns(q, "zerver_realmauditlog");
  const names = [
    "realm_id",
    "acting_user_id",
    "modified_user_id",
    "modified_stream_id",
    "modified_user_group_id",
    "event_last_message_id",
    "event_type",
    "event_time",
    "backfilled",
    "extra_data",
  ];
  if (cols.has("modified_channel_folder_id")) names.push("modified_channel_folder_id");
  if (cols.has("scrubbed")) names.push("scrubbed");
  const params: unknown[] = [];
  const tuples: string[] = [];
  const now = new Date();
  for (const e of entries) {
    const values: unknown[] = [
      e.realmId,
      e.actingUserId ?? null,
      e.modifiedUserId ?? null,
      e.modifiedStreamId ?? null,
      e.modifiedUserGroupId ?? null,
      e.eventLastMessageId ?? null,
      e.eventType,
      e.eventTime ?? now,
      e.backfilled ?? false,
      JSON.stringify(e.extraData ?? {}),
    ];
    if (names.includes("modified_channel_folder_id")) values.push(e.modifiedChannelFolderId ?? null);
    if (names.includes("scrubbed")) values.push(false);
    const ph = values.map((v, i) => {
      params.push(v);
      const n = params.length;
      return names[i] === "extra_data" ? `$${n}::jsonb` : names[i] === "event_time" ? `$${n}::timestamptz` : `$${n}`;
    });
    tuples.push(`(${ph.join(", ")})`);
  }
  const { rows } = await q.query(`INSERT INTO zerver_realmauditlog (${names.join(", ")}) VALUES ${tuples.join(", ")} RETURNING id`, params);
  return rows.map((r) => Number(r.id));
}

/**
 * One RealmAuditLog row's values, every NOT NULL column supplied, for the creation code's checked
 * INSERTs (rows.ts insertRow / insertRows: a column a release lacks is left out).
 */
export function auditLogRow(e: AuditLogEntry): Row {
  return {
    event_time: e.eventTime ?? new Date(),
    backfilled: e.backfilled ?? false,
    extra_data: JSON.stringify(e.extraData ?? {}),
    event_type: e.eventType,
    event_last_message_id: e.eventLastMessageId ?? null,
    acting_user_id: e.actingUserId ?? null,
    modified_user_id: e.modifiedUserId ?? null,
    realm_id: e.realmId,
    modified_stream_id: e.modifiedStreamId ?? null,
    modified_user_group_id: e.modifiedUserGroupId ?? null,
    scrubbed: false,
  };
}

/** One audit row through rows.ts insertRow (CreationSchemaError on a schema it does not know); its id. */
export async function insertAuditLogRow(q: Queryable, e: AuditLogEntry): Promise<number> {
  return Number((await insertRow(q, "zerver_realmauditlog", auditLogRow(e))).id);
}

/** The RealmAuditLog rows about a user (for a user created in this transaction: the rows its creation wrote). */
export async function auditLogIdsOfUser(q: Queryable, userId: number): Promise<number[]> {
  const { rows } = await q.query("SELECT id FROM zerver_realmauditlog WHERE modified_user_id = $1 ORDER BY id", [userId]);
  return rows.map((r) => Number(r.id));
}

/**
 * The ids of every RealmAuditLog row of an organization, in order: for an organization this
 * transaction created (create_realm, change_realm_subdomain's placeholder), the rows it wrote.
 */
export async function auditLogIdsOfRealm(q: Queryable, realmId: number): Promise<number[]> {
  const { rows } = await q.query("SELECT id FROM zerver_realmauditlog WHERE realm_id = $1 ORDER BY id", [realmId]);
  return rows.map((r) => Number(r.id));
}

/** The ROLE_COUNT payload: {"11": {"<role>": n, ..., [workplace keys]}, "12": bots}. */
export interface RoleCountSnapshot {
  [ROLE_COUNT_HUMANS]: Record<string, number>;
  [ROLE_COUNT_BOTS]: number;
}

const ROLE_TYPES: readonly number[] = ROLE_IDS;
const { REALM_OWNER, REALM_ADMINISTRATOR, MODERATOR, MEMBER } = ROLES;

/** A realm's active users: humans by role, and bots. */
export interface RealmUserCounts {
  humans: Record<string, number>;
  bots: number;
}

/** One pass over a realm's users: active humans by role and active bots. */
const REALM_USER_COUNTS_SQL = `SELECT json_agg(json_build_array(is_bot, role, n)) FROM (
    SELECT is_bot, role, count(*)::int AS n FROM zerver_userprofile
     WHERE realm_id = $1 AND is_active GROUP BY is_bot, role) c`;

function realmUserCounts(rows: [boolean, number, number][] | null): RealmUserCounts {
  const humans: Record<string, number> = {};
  let bots = 0;
  for (const [isBot, role, n] of rows ?? []) {
    if (isBot) bots += n;
    else humans[String(role)] = n;
  }
  return { humans, bots };
}

/** The user columns a role count depends on. */
export interface CountedUserState {
  id: number;
  realm_id: number;
  role: number;
  is_active: boolean;
  is_bot: boolean;
}

/**
 * A realm's user counts together with one user's state, read in one statement (one snapshot),
 * typically on a second connection while the command's own transaction gets going; see
 * countsAfterChange.
 */
export interface RoleCountBaseline {
  /** null: the realm had no user with that address (a user about to be created). */
  user: CountedUserState | null;
  counts: RealmUserCounts;
  /** The realm's active users in the same snapshot (what the action's events go to; see primeRosterAfterChange). */
  roster: ActiveRoster;
  /** When it was read (Date.now()): a baseline older than BASELINE_MAX_AGE_MS is not used. */
  readAt: number;
}

/**
 * How old a baseline may be when used: it stands for "the realm as the change finds it" only if
 * read moments before (a command that waits, e.g. at a prompt, counts in its transaction).
 */
const BASELINE_MAX_AGE_MS = 2000;

/** realm_user_count_by_role's counts (active humans by role, active bots) of a roster. */
function rosterCounts(r: ActiveRoster): RealmUserCounts {
  const byRole = new Map<number, number>();
  let bots = 0;
  for (let i = 0; i < r.ids.length; i++) {
    if (r.bots[i]) bots++;
    else byRole.set(r.roles[i], (byRole.get(r.roles[i]) ?? 0) + 1);
  }
  return { humans: Object.fromEntries([...byRole].map(([role, n]) => [String(role), n])), bots };
}

/**
 * Read a RoleCountBaseline for the user with this delivery email (any case) in the realm; null
 * when there is no such realm, or no such user unless `absentUser` (then the baseline says the
 * user is not there: the counts before creating it).
 */
export async function readRoleCountBaseline(
  q: Queryable,
  realm: { column: "id" | "string_id"; param: string | number } | null,
  email: string,
  opts: { absentUser?: boolean } = {},
): Promise<RoleCountBaseline | null> {
  // Without a realm: the one user with this address on the server (as get_user finds it).
  const { rows } = realm
    ? await q.query(
        `SELECT (${rosterSql("r.id")}) AS roster, u.id, u.realm_id, u.role, u.is_active, u.is_bot
           FROM zerver_realm r LEFT JOIN zerver_userprofile u ON u.realm_id = r.id AND upper(u.delivery_email::text) = upper($2)
          WHERE r.${realm.column} = $1`,
        [realm.param, pyStrip(email)],
      )
    : await q.query(
        `SELECT (${rosterSql("u.realm_id")}) AS roster, u.id, u.realm_id, u.role, u.is_active, u.is_bot
           FROM zerver_userprofile u
          WHERE u.realm_id IN (SELECT id FROM zerver_realm) AND upper(u.delivery_email::text) = upper($1) LIMIT 2`,
        [pyStrip(email)],
      );
  if (rows.length !== 1) return null;
  const r = rows[0];
  const roster = parseRoster(r.roster);
  const readAt = Date.now();
  if (r.id === null) return opts.absentUser ? { user: null, counts: rosterCounts(roster), roster, readAt } : null;
  return {
    user: { id: Number(r.id), realm_id: Number(r.realm_id), role: Number(r.role), is_active: Boolean(r.is_active), is_bot: Boolean(r.is_bot) },
    counts: rosterCounts(roster),
    roster,
    readAt,
  };
}

/**
 * Start reading a RoleCountBaseline on a second connection (Context.sideRead) for the user a
 * command is about to change, named as the command's arguments name it: -r (optional) and the
 * address. Resolves null when that cannot be done; the command then counts in its transaction.
 */
export function roleCountBaselineBeside(
  ctx: { sideRead<T>(fn: (q: Queryable) => Promise<T>): Promise<T | null> },
  realmOption: string | undefined,
  email: string,
  opts: { absentUser?: boolean } = {},
): Promise<RoleCountBaseline | null> {
  const realm = realmOption === undefined ? null : realmCondition(realmOption);
  if (realmOption !== undefined && realm === null) return Promise.resolve(null); // matches no realm
  if (realm === null && opts.absentUser) return Promise.resolve(null); // a new user needs its realm
  return ctx.sideRead((q) => readRoleCountBaseline(q, realm, email, opts));
}

/**
 * The counts realm_user_count_by_role would find right after `before` (the user's row as locked
 * by the caller's transaction) became `after`, from a baseline read earlier: exact when the
 * baseline saw the user exactly as the lock does (the lock keeps the user as it is until the
 * commit), and the rest of the realm the same, which is the case unless some other user of the
 * realm is created, (de)activated or changes role in the few milliseconds between the two; a
 * count that Zulip itself takes then is as much a matter of timing. null when the baseline does
 * not match the locked row: count inside the transaction instead.
 */
export function countsAfterChange(
  baseline: RoleCountBaseline | null,
  before: CountedUserState | null,
  after: { role: number; is_active: boolean; is_bot: boolean },
): RealmUserCounts | null {
  if (!baseline || !baselineMatches(baseline, before)) return null;
  const humans = { ...baseline.counts.humans };
  let bots = baseline.counts.bots;
  const shift = (u: { role: number; is_active: boolean; is_bot: boolean }, by: number) => {
    if (!u.is_active) return;
    if (u.is_bot) bots += by;
    else humans[String(u.role)] = (humans[String(u.role)] ?? 0) + by;
  };
  if (before) shift(before, -1);
  shift(after, +1);
  return { humans, bots };
}

/** Whether a baseline, read moments ago, saw the user exactly as the caller's lock has it (a new user: the address free). */
function baselineMatches(baseline: RoleCountBaseline, before: CountedUserState | null): boolean {
  if (Date.now() - baseline.readAt > BASELINE_MAX_AGE_MS) return false;
  const b = baseline.user;
  if (b === null || before === null) return b === null && before === null;
  return (
    b.id === Number(before.id) &&
    b.realm_id === Number(before.realm_id) &&
    b.role === Number(before.role) &&
    b.is_active === Boolean(before.is_active) &&
    b.is_bot === Boolean(before.is_bot)
  );
}

/**
 * After the caller wrote the user's change (`before` as locked, `after` as written, `id` the
 * user's), let the events that follow in this transaction go to the baseline's roster adjusted
 * for it (audiences.ts activeRoster), instead of reading the realm's users again; when the
 * baseline is missing or does not match the locked row (countsAfterChange), they are read.
 */
export function primeRosterAfterChange(
  q: Queryable,
  realmId: number,
  baseline: RoleCountBaseline | null | undefined | Promise<RoleCountBaseline | null>,
  id: number,
  before: CountedUserState | null,
  after: { role: number; is_active: boolean; is_bot: boolean },
): void {
  if (!baseline) return;
  primeActiveRoster(q, realmId, async () => {
    const b = await baseline;
    return b && baselineMatches(b, before) && Number(b.user?.realm_id ?? realmId) === realmId ? rosterWith(b.roster, id, after) : null;
  });
}

/**
 * What the workplace_users key of a role count (Zulip 12+) is made of: nothing (older releases),
 * roles (the realm's "workplace users" setting is a role-based system group: counted from the
 * humans by role), or a number of group members counted from the memberships (any other group;
 * Zulip counts those before a role change moves the user's memberships).
 */
export type WorkplacePart = { kind: "none" } | { kind: "roles"; roles: readonly number[] } | { kind: "members"; count: number };

/** The realm's workplace users group as the caller knows it: its id, and its name when it is a system group. */
export interface WorkplaceGroup {
  id: number | null;
  name: string | null;
}

/**
 * The realm's workplace users group from what a caller has read already: the realm row's
 * workplace_users_group_id (undefined before Zulip 12, then nothing to say) and the realm's
 * system groups (a group not among them is a custom one: no name).
 */
export function workplaceGroupOf(workplaceUsersGroupId: unknown, systemGroups: Iterable<{ id: number; name: string }>): WorkplaceGroup | undefined {
  if (workplaceUsersGroupId === undefined || workplaceUsersGroupId === null) return undefined;
  const id = Number(workplaceUsersGroupId);
  return { id, name: [...systemGroups].find((g) => g.id === id)?.name ?? null };
}

function workplaceRoles(group: WorkplaceGroup): readonly number[] | null {
  return group.name !== null && group.name !== SystemGroups.FULL_MEMBERS && ROLES_IN_SYSTEM_GROUP[group.name] ? ROLES_IN_SYSTEM_GROUP[group.name] : null;
}

/**
 * get_recursive_group_members(group).filter(is_bot=False, is_active=True).count(): a join
 * through the direct memberships, so (like Django) a user who is a direct member of two groups
 * in the subgroup tree counts twice.
 */
async function countWorkplaceMembers(q: Queryable, groupId: number | null): Promise<number> {
  const r = await q.query(
    `WITH RECURSIVE sub(id) AS (
       SELECT id FROM zerver_usergroup WHERE id = $1
       UNION
       SELECT m.subgroup_id FROM zerver_groupgroupmembership m JOIN sub ON m.supergroup_id = sub.id
     )
     SELECT count(*)::int AS n
       FROM zerver_userprofile u
       JOIN zerver_usergroupmembership gm ON gm.user_profile_id = u.id
      WHERE gm.user_group_id IN (SELECT id FROM sub) AND u.is_active AND NOT u.is_bot`,
    [groupId],
  );
  return Number(r.rows[0].n);
}

/**
 * The workplace part of realm_user_count_by_role, read now (inside the transaction, before any
 * group membership it depends on moves). `group`: the realm's workplace users group when the
 * caller knows it (saves a read).
 */
export async function readWorkplacePart(q: Queryable, realmId: number, group?: WorkplaceGroup): Promise<WorkplacePart> {
  if (!(await tableColumns(q, "zerver_realm")).has("workplace_users_group_id")) return { kind: "none" };
  if (!group) {
    const { rows } = await q.query(`SELECT ${WORKPLACE_GROUP_COLUMNS} ${WORKPLACE_GROUP_FROM} WHERE r.id = $1`, [realmId]);
    group = { id: rows[0]?.gid ?? null, name: rows[0]?.name ?? null };
  }
  return workplacePartOf(q, group);
}

/** The workplace users group of realm `r` (its id, and its name when it is a system group). */
const WORKPLACE_GROUP_COLUMNS = "r.workplace_users_group_id AS gid, n.name";
const WORKPLACE_GROUP_FROM = `FROM zerver_realm r
  LEFT JOIN zerver_namedusergroup n
         ON n.usergroup_ptr_id = r.workplace_users_group_id AND n.is_system_group AND n.realm_id = r.id`;

async function workplacePartOf(q: Queryable, group: WorkplaceGroup): Promise<WorkplacePart> {
  const roles = workplaceRoles(group);
  return roles ? { kind: "roles", roles } : { kind: "members", count: await countWorkplaceMembers(q, group.id) };
}

/** realm_user_count_by_role's payload from the counts and the workplace part. */
export function assembleRoleCounts(counts: RealmUserCounts, workplace: WorkplacePart): RoleCountSnapshot {
  // Zulip's key order: administrators first (realm_user_count_by_role's dict literal).
  const humans: Record<string, number> = {};
  for (const role of [REALM_ADMINISTRATOR, REALM_OWNER, MODERATOR, MEMBER, ROLES.GUEST]) humans[String(role)] = 0;
  Object.assign(humans, counts.humans);
  if (workplace.kind !== "none") {
    const sum = (roles: readonly number[]) => roles.reduce((s, role) => s + (humans[String(role)] ?? 0), 0);
    const total = sum(ROLE_TYPES);
    const count = workplace.kind === "roles" ? sum(workplace.roles) : workplace.count;
    humans.workplace_users = count;
    humans.non_workplace_users = total - count;
  }
  return { [ROLE_COUNT_HUMANS]: humans, [ROLE_COUNT_BOTS]: counts.bots };
}

/**
 * realm_user_count_by_role(realm), computed inside the caller's transaction after its change.
 * The workplace_users / non_workplace_users keys exist exactly in the Zulip versions that have
 * zerver_realm.workplace_users_group_id (12.0+); pass `workplace` to override the detection.
 */
export async function roleCounts(q: Queryable, realmId: number, opts: { workplace?: boolean } = {}): Promise<RoleCountSnapshot> {
  const workplace = opts.workplace ?? (await tableColumns(q, "zerver_realm")).has("workplace_users_group_id");
  if (!workplace) return assembleRoleCounts(await readRealmUserCounts(q, realmId), { kind: "none" });
  // The counts and the workplace users group in one round trip.
  const { rows } = await q.query(`SELECT (${REALM_USER_COUNTS_SQL}) AS counts, ${WORKPLACE_GROUP_COLUMNS} ${WORKPLACE_GROUP_FROM} WHERE r.id = $1`, [realmId]);
  const part = await workplacePartOf(q, { id: rows[0]?.gid ?? null, name: rows[0]?.name ?? null });
  return assembleRoleCounts(realmUserCounts(rows[0]?.counts ?? null), part);
}

/**
 * realm_user_count_by_role(realm) inside the caller's transaction right after a user went from
 * `before` (null: did not exist) to `after`: from the baseline when it matches
 * (countsAfterChange), else counted now.
 */
export async function roleCountsAfterChange(
  q: Queryable,
  realmId: number,
  baseline: RoleCountBaseline | null | undefined | Promise<RoleCountBaseline | null>,
  before: CountedUserState | null,
  after: { role: number; is_active: boolean; is_bot: boolean },
  workplaceGroup?: WorkplaceGroup,
): Promise<RoleCountSnapshot> {
  const counts = countsAfterChange((await baseline) ?? null, before, after);
  if (!counts) return roleCounts(q, realmId);
  return assembleRoleCounts(counts, await readWorkplacePart(q, realmId, workplaceGroup));
}

/** The realm's active humans by role and active bots, read now. */
export async function readRealmUserCounts(q: Queryable, realmId: number): Promise<RealmUserCounts> {
  const { rows } = await q.query(`SELECT (${REALM_USER_COUNTS_SQL}) AS counts`, [realmId]);
  return realmUserCounts(rows[0]?.counts ?? null);
}

/** realm_user_count_by_role(): the ROLE_COUNT ("10") payload of billing audit rows. */
export async function roleCountSnapshot(q: Queryable, realmId: number): Promise<Record<string, unknown>> {
  return { [ROLE_COUNT]: await roleCounts(q, realmId) };
}
