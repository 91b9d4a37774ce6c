// Organizations as the commands read them (zerver/models/realms.py): the list of realms, every
// column of every realm as PostgreSQL prints it (list_realms --all), a realm's owners and
// administrators, and the row lock Zulip's select_for_update(no_key=True) takes before an action
// changes a realm.
import type { Db, Queryable } from "../db/db.js";
import type { Realm, UserProfile } from "./lookup.js";
import { CommandError } from "../lib/errors.js";
import { ROLES } from "./roles.js";

/**
 * The realm row, locked against concurrent writers (select_for_update(no_key=True)); `columns`:
 * the SELECT list (default every column). A realm deleted meanwhile (do_delete_realm... ran
 * between the command's lookup and this lock) refuses the command: CommandError.
 */
export async function lockRealm(q: Queryable, realmId: number, opts: { columns?: string } = {}): Promise<Realm> {
  const { rows } = await q.query(`SELECT ${opts.columns ?? "*"} FROM zerver_realm WHERE id = $1 FOR NO KEY UPDATE`, [realmId]);
  if (!rows.length) throw new CommandError("The organization was deleted while this command ran; nothing was changed.");
  return rows[0] as Realm;
}

/** A realm as lists show it. */
export interface ListedRealm {
  id: number;
  string_id: string;
  name: string;
  deactivated: boolean;
}

/** Every realm of the server, by id. */
export async function listRealms(q: Queryable): Promise<ListedRealm[]> {
  const { rows } = await q.query("SELECT id, string_id, name, deactivated FROM zerver_realm ORDER BY id");
  return rows as ListedRealm[];
}

/** The realms that have a subdomain (the root-domain realm's string id is empty), by string id. */
export async function realmsWithSubdomain(q: Queryable): Promise<Omit<ListedRealm, "deactivated">[]> {
  const { rows } = await q.query("SELECT id, string_id, name FROM zerver_realm WHERE string_id <> '' ORDER BY string_id");
  return rows;
}

/** Every column of every realm as PostgreSQL prints it (in UTC), with the column types, by id. */
export interface RealmsAsText {
  fields: { name: string; dataTypeID: number }[];
  rows: Record<string, string | null>[];
  /** RealmAuthenticationMethod names by realm id. */
  authenticationMethods: Map<number, Set<string>>;
}

/**
 * `SELECT * FROM zerver_realm` with every value as text (nothing lost: microseconds, big
 * numbers), for printing each the way Python prints it; timestamps come out in UTC, the time
 * zone every connection of ours starts with (db.ts SESSION_OPTIONS).
 */
export async function realmsAsText(db: Db): Promise<RealmsAsText> {
  const res = await db.client.query({
    text: "SELECT * FROM zerver_realm ORDER BY id",
    types: { getTypeParser: () => (v: string) => v },
  } as any);
  return { fields: res.fields, rows: res.rows, authenticationMethods: await realmAuthenticationMethods(db) };
}

/** Every realm's RealmAuthenticationMethod names, by realm id (a realm without any is absent). */
export async function realmAuthenticationMethods(q: Queryable): Promise<Map<number, Set<string>>> {
  const { rows } = await q.query("SELECT realm_id, name FROM zerver_realmauthenticationmethod");
  const byRealm = new Map<number, Set<string>>();
  for (const m of rows) {
    const id = Number(m.realm_id);
    if (!byRealm.has(id)) byRealm.set(id, new Set());
    byRealm.get(id)!.add(m.name);
  }
  return byRealm;
}

/** The realm's default channels (DefaultStream), by id. */
export async function defaultChannelIds(q: Queryable, realmId: number): Promise<number[]> {
  const { rows } = await q.query("SELECT stream_id FROM zerver_defaultstream WHERE realm_id = $1", [realmId]);
  return rows.map((r) => Number(r.stream_id));
}

/** The names of the realm's default channels, sorted. */
export async function defaultChannelNames(q: Queryable, realmId: number): Promise<string[]> {
  const { rows } = await q.query("SELECT s.name FROM zerver_defaultstream d JOIN zerver_stream s ON s.id = d.stream_id WHERE d.realm_id = $1 ORDER BY s.name", [
    realmId,
  ]);
  return rows.map((r) => r.name as string);
}

/** What the organization emails need of a user. */
export interface EmailUser {
  id: number;
  full_name: string;
  delivery_email: string;
  default_language: string;
  timezone: string;
  role: number;
}

/** Realm.get_human_admin_users(): active human owners and administrators (by id). */
export async function humanAdminUsers(q: Queryable, realmId: number): Promise<(EmailUser & { email: string; realm_id: number })[]> {
  const { rows } = await q.query(
    `SELECT id, email, realm_id, full_name, delivery_email, default_language, timezone, role FROM zerver_userprofile
      WHERE realm_id = $1 AND NOT is_bot AND is_active AND role IN ($2, $3) ORDER BY id`,
    [realmId, ROLES.REALM_OWNER, ROLES.REALM_ADMINISTRATOR],
  );
  return rows.map((r) => ({ ...r, id: Number(r.id), realm_id: Number(r.realm_id), role: Number(r.role) }));
}

/** Realm.get_human_owner_users(): active human owners (by id). */
export async function humanOwnerUsers(q: Queryable, realmId: number): Promise<(EmailUser & { email: string; realm_id: number })[]> {
  return (await humanAdminUsers(q, realmId)).filter((u) => u.role === ROLES.REALM_OWNER);
}

/** Realm.get_admin_users_and_bots(): active owners and administrators, bots included (by id). */
export async function adminUsersAndBots(
  q: Queryable,
  realmId: number,
): Promise<Pick<UserProfile, "id" | "email" | "delivery_email" | "full_name" | "realm_id" | "role" | "is_bot">[]> {
  const { rows } = await q.query(
    `SELECT id, email, delivery_email, full_name, realm_id, role, is_bot FROM zerver_userprofile
      WHERE realm_id = $1 AND is_active AND role IN ($2, $3) ORDER BY id`,
    [realmId, ROLES.REALM_ADMINISTRATOR, ROLES.REALM_OWNER],
  );
  return rows;
}

/** The note an email result carries when Zulip would have used another language. */
export function languageNote(language: string): string | null {
  return language === "en" ? null : `rendered in English (Zulip would use the user's language, ${language})`;
}
