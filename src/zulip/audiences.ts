// Who receives an event: Zulip's recipient sets (zerver/models/users.py active_user_ids,
// active_non_guest_user_ids; zerver/models/realms.py get_human_admin_users,
// get_admin_users_and_bots; zerver/lib/users.py user_access_restricted_in_realm,
// get_user_ids_who_can_access_user), read inside the action's transaction.
import { Db, type Queryable } from "../db/db.js";
import { SystemGroups } from "./groups.js";
import { RecipientType } from "./models.js";
import { adminUsersAndBots, humanAdminUsers } from "./realms.js";
import { ROLES } from "./roles.js";

/**
 * SQL (a SELECT of user ids) for get_subscribers_of_target_user_subscriptions([user $userParam]):
 * the active subscribers (is_user_active) of every channel and group DM the user has an active
 * subscription to, the user included.
 */
function sharingSubscribersSql(userParam: string): string {
  return `SELECT s2.user_profile_id FROM zerver_subscription s1
            JOIN zerver_recipient r ON r.id = s1.recipient_id AND r.type IN (${RecipientType.STREAM}, ${RecipientType.DIRECT_MESSAGE_GROUP})
            JOIN zerver_subscription s2 ON s2.recipient_id = s1.recipient_id AND s2.active AND s2.is_user_active
           WHERE s1.user_profile_id = ${userParam} AND s1.active`;
}

/**
 * SQL (a SELECT of user ids, the user's own included, active or not) for the 1:1 direct-message
 * partners of user $userParam in realm $realmParam (get_users_involved_in_dms_with_target_users
 * before the active filter: personal recipients, none from 12.0 on, where 0790/0798 turned 1:1
 * DMs into DM groups).
 */
function dmPartnersSql(realmParam: string, userParam: string): string {
  return `SELECT CASE WHEN m.sender_id = ${userParam} THEN r.type_id ELSE m.sender_id END FROM zerver_message m
            JOIN zerver_recipient r ON r.id = m.recipient_id
           WHERE r.type = ${RecipientType.PERSONAL} AND m.realm_id = ${realmParam} AND (m.sender_id = ${userParam} OR r.type_id = ${userParam})`;
}

/** get_subscribers_of_target_user_subscriptions([user]) (zerver/lib/users.py). */
export async function subscribersOfUserSubscriptions(q: Queryable, userId: number): Promise<Set<number>> {
  return new Set(await ids(q, `SELECT DISTINCT user_profile_id AS id FROM (${sharingSubscribersSql("$1")}) x`, [userId]));
}

/** get_users_involved_in_dms_with_target_users([user]) (zerver/lib/users.py): the active users in 1:1 DMs with the user, not the user. */
export async function usersInDmsWith(q: Queryable, user: { id: number; realm_id: number }): Promise<Set<number>> {
  return new Set(
    await ids(q, `SELECT id FROM zerver_userprofile WHERE is_active AND id <> $2 AND id IN (${dmPartnersSql("$1", "$2")})`, [user.realm_id, user.id]),
  );
}

/** A channel's (recipient's) active subscribers: active subscription of an active user (is_user_active), ascending. */
export function activeSubscriberIds(q: Queryable, recipientId: number): Promise<number[]> {
  return ids(q, "SELECT user_profile_id AS id FROM zerver_subscription WHERE recipient_id = $1 AND active AND is_user_active ORDER BY user_profile_id", [
    recipientId,
  ]);
}

async function ids(q: Queryable, sql: string, params: unknown[]): Promise<number[]> {
  const { rows } = await q.query(sql, params);
  return rows.map((r) => Number(r.id));
}

/** A realm's active users (bots included): ids ascending, with each one's role and is_bot. */
export interface ActiveRoster {
  ids: number[];
  roles: number[];
  bots: boolean[];
}

/**
 * SQL (one text value) of the active users of realm `realmExpr`: a JSON array of id, role,
 * is_bot (0/1) triples by id. On a realm of 50,000 users, node-postgres turns one value into a
 * string far faster than as many rows into objects, and JSON.parse reads a flat array of
 * numbers several times faster than any hand-written parse in a process that just started.
 */
export function rosterSql(realmExpr: string): string {
  return `SELECT '[' || string_agg(id::text || ',' || role::text || CASE WHEN is_bot THEN ',1' ELSE ',0' END, ',' ORDER BY id) || ']'
            FROM zerver_userprofile WHERE realm_id = ${realmExpr} AND is_active`;
}

/** The value of rosterSql (null: no active users). */
export function parseRoster(text: string | null | undefined): ActiveRoster {
  const flat: number[] = text ? JSON.parse(text) : [];
  const roster: ActiveRoster = { ids: [], roles: [], bots: [] };
  // push, not preallocated arrays: V8 makes those holey, several times slower to fill.
  for (let j = 0; j < flat.length; j += 3) {
    roster.ids.push(flat[j]);
    roster.roles.push(flat[j + 1]);
    roster.bots.push(flat[j + 2] === 1);
  }
  return roster;
}

/** Where id is (or would go) in the roster's ascending ids. */
function rosterIndex(r: ActiveRoster, id: number): number {
  let lo = 0;
  let hi = r.ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (r.ids[mid] < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The role of an active user of the roster; undefined for anyone else. */
export function rosterRole(r: ActiveRoster, id: number): number | undefined {
  const i = rosterIndex(r, id);
  return r.ids[i] === id ? r.roles[i] : undefined;
}

/** The roster once user `id` is (or is no longer, when not active) as `after` says. */
export function rosterWith(r: ActiveRoster, id: number, after: { role: number; is_active: boolean; is_bot: boolean }): ActiveRoster {
  const out: ActiveRoster = { ids: [...r.ids], roles: [...r.roles], bots: [...r.bots] };
  const i = rosterIndex(out, id);
  const present = out.ids[i] === id;
  if (after.is_active) {
    if (present) {
      out.roles[i] = after.role;
      out.bots[i] = after.is_bot;
    } else {
      out.ids.splice(i, 0, id);
      out.roles.splice(i, 0, after.role);
      out.bots.splice(i, 0, after.is_bot);
    }
  } else if (present) {
    out.ids.splice(i, 1);
    out.roles.splice(i, 1);
    out.bots.splice(i, 1);
  }
  return out;
}

/** What activeRoster knows of one realm on one connection, and since which write. */
interface RosterEntry {
  stamp: number;
  /** Read (or adjusted) on first use. */
  make: () => Promise<ActiveRoster>;
  roster: Promise<ActiveRoster> | null;
}
const rosters = new WeakMap<Db, Map<number, RosterEntry>>();

function remember(q: Db, realmId: number, make: () => Promise<ActiveRoster>): RosterEntry {
  let byRealm = rosters.get(q);
  if (!byRealm) rosters.set(q, (byRealm = new Map()));
  const entry: RosterEntry = { stamp: q.userProfileWrites, make, roster: null };
  byRealm.set(realmId, entry);
  return entry;
}

function use(q: Db, realmId: number, entry: RosterEntry): Promise<ActiveRoster> {
  if (!entry.roster) {
    entry.roster = entry.make();
    entry.roster.catch(() => {
      if (rosters.get(q)?.get(realmId) === entry) rosters.get(q)!.delete(realmId);
    });
  }
  return entry.roster;
}

/**
 * The realm's active users, read once per connection for as long as nothing has written user
 * rows since (Db.userProfileWrites): an action sends several events to the same realm-wide
 * audience (a role change: the user update and each system-group change), and on a realm of
 * 50,000 users each read costs tens of milliseconds. Zulip reads these sets through memcached
 * (active_user_ids is cached); a Queryable that is not a Db is read every time.
 */
export function activeRoster(q: Queryable, realmId: number): Promise<ActiveRoster> {
  if (!(q instanceof Db)) return readRoster(q, realmId);
  const hit = rosters.get(q)?.get(realmId);
  if (hit && hit.stamp === q.userProfileWrites) return use(q, realmId, hit);
  const entry = remember(q, realmId, () => readRoster(q, realmId));
  return use(q, realmId, entry);
}

/**
 * Tell activeRoster what the realm's active users are now, as the caller knows them (e.g. a
 * roster read beside the transaction, adjusted for the change just written: see
 * audit.ts primeRosterAfterChange; null: read them). Taken on first use, valid until the next
 * write of user rows.
 */
export function primeActiveRoster(q: Queryable, realmId: number, roster: () => Promise<ActiveRoster | null>): void {
  if (q instanceof Db) remember(q, realmId, async () => (await roster()) ?? readRoster(q, realmId));
}

async function readRoster(q: Queryable, realmId: number): Promise<ActiveRoster> {
  const { rows } = await q.query(`SELECT (${rosterSql("$1")}) AS s`, [realmId]);
  return parseRoster(rows[0]?.s);
}

/** active_user_ids(realm_id): every active user, bots included. */
export async function activeUserIds(q: Queryable, realmId: number): Promise<number[]> {
  return [...(await activeRoster(q, realmId)).ids];
}

/** active_non_guest_user_ids(realm_id). */
export async function activeNonGuestUserIds(q: Queryable, realmId: number): Promise<number[]> {
  const r = await activeRoster(q, realmId);
  return r.ids.filter((_, i) => r.roles[i] !== ROLES.GUEST);
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
        id = $2 OR role <> ${ROLES.GUEST} OR id IN (${sharingSubscribersSql("$2")}) OR id IN (${dmPartnersSql("$1", "$2")}))
      ORDER BY id`,
    [user.realm_id, user.id],
  );
}
