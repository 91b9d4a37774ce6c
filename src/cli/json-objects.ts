// Typed builders of the --json contract's shared realm and user objects (src/schemas/shared.ts
// defines them; src/cli/json-contract.ts has the rest of the contract's run-time half).
import { ROLE_NAMES } from "../zulip/roles.js";
import { realmUrl, type ZulipSettings } from "../config/settings.js";
import type { RealmJson, UserJson } from "../schemas/shared.js";
import type { ServerDataJson } from "../schemas/register_server.js";
import type { ServerDataOutcome, ServerDataReport } from "../zulip/actions/remote-server.js";
import { utcTimestamp } from "./json-contract.js";

/** The one realm object, from a zerver_realm row (id, string_id, name). */
export function realmJson(settings: ZulipSettings, row: { id: number | string; string_id: string; name: string }): RealmJson {
  return { id: Number(row.id), string_id: row.string_id, name: row.name, url: realmUrl(settings, row.string_id) };
}

/** The zerver_userprofile columns userJson() needs (for getUsers' `columns`). */
export const USER_JSON_COLUMNS = "id, email, delivery_email, full_name, realm_id, role";

/** The one user object, from a zerver_userprofile row. */
export function userJson(row: {
  id: number | string;
  email: string;
  delivery_email: string;
  full_name: string;
  realm_id: number | string;
  role: number | string;
}): UserJson {
  const roleId = Number(row.role);
  const name = ROLE_NAMES[roleId]?.api;
  if (!name) throw new Error(`internal error: user ${row.id} has an unknown role ${row.role}`);
  return {
    id: Number(row.id),
    email: row.email,
    delivery_email: row.delivery_email,
    full_name: row.full_name,
    realm_id: Number(row.realm_id),
    role: name as UserJson["role"],
    role_id: roleId as UserJson["role_id"],
  };
}

/** A connection (Db, pg Client, a transaction's Queryable) whose query resolves rows of type R: the columns SELECTed. */
interface RowSource<R> {
  query(sql: string, params?: unknown[]): Promise<{ rows: R[] }>;
}

type RealmRow = Parameters<typeof realmJson>[1];
type UserRow = Parameters<typeof userJson>[0];

/** The one realm object of the realm with this id (json15b: the user write commands). */
export async function realmJsonById(db: RowSource<RealmRow>, settings: ZulipSettings, realmId: number): Promise<RealmJson> {
  const { rows } = await db.query("SELECT id, string_id, name FROM zerver_realm WHERE id = $1", [realmId]);
  if (rows.length === 0) throw new Error(`internal error: no realm ${realmId}`);
  return realmJson(settings, rows[0]);
}

/** The one user object of the user with this id. */
export async function userJsonById(db: RowSource<UserRow>, userId: number): Promise<UserJson> {
  const { rows } = await db.query("SELECT id, email, delivery_email, full_name, realm_id, role FROM zerver_userprofile WHERE id = $1", [userId]);
  if (rows.length === 0) throw new Error(`internal error: no user ${userId}`);
  return userJson(rows[0]);
}

/** The user objects of these users, by id (one query); users that no longer exist are left out. */
export async function usersJsonByIds(db: RowSource<UserRow>, ids: Iterable<number>): Promise<Map<number, UserJson>> {
  const list = [...new Set(ids)];
  const map = new Map<number, UserJson>();
  if (list.length === 0) return map;
  const { rows } = await db.query("SELECT id, email, delivery_email, full_name, realm_id, role FROM zerver_userprofile WHERE id = ANY ($1::int[])", [list]);
  for (const r of rows) map.set(Number(r.id), userJson(r));
  return map; // a user deleted meanwhile is missing
}

/** A push_notifications_enabled_end_timestamp (Unix seconds) as RFC 3339. */
function endAt(ts: number | null): string | null {
  return ts === null ? null : utcTimestamp(new Date(ts * 1000));
}

/** send_server_data_to_push_bouncer's outcome as register_server's and create_realm's server_data. */
export function serverDataJson(settings: ZulipSettings, o: ServerDataOutcome): ServerDataJson {
  return {
    last_acknowledged: {
      realm_count_id: o.lastAcknowledged.realmCountId,
      installation_count_id: o.lastAcknowledged.installationCountId,
      realmauditlog_id: o.lastAcknowledged.realmAuditLogId,
    },
    realms_sent_count: o.realmsSent,
    realmauditlog_rows_sent_count: o.realmAuditLogRowsSent,
    realm_changes: o.realmChanges.map((c) => ({
      realm: realmJson(settings, c.realm),
      push_notifications_enabled: c.pushNotificationsEnabled,
      push_notifications_enabled_end_at: c.pushNotificationsEnabledEndTimestamp && {
        old: endAt(c.pushNotificationsEnabledEndTimestamp.old),
        new: endAt(c.pushNotificationsEnabledEndTimestamp.new),
      },
    })),
    unknown_realm_uuids: o.unknownRealmUuids,
    marked_push_disabled: o.markedPushDisabled.map((r) => realmJson(settings, r)),
    cache: o.cache,
    events: o.events,
  };
}

/** reportServerData()'s report as create_realm's push_service. */
export function serverDataReportJson(
  settings: ZulipSettings,
  r: ServerDataReport,
): { ok: boolean; warning: string | null; server_data: ServerDataJson | null } {
  return { ok: r.ok, warning: r.warning, server_data: r.serverData && serverDataJson(settings, r.serverData) };
}
