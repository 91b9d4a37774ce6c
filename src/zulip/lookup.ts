// Realm and user lookups with manage.py's exact semantics and messages
// (zerver/lib/management.py: get_realm, get_user, get_users).
import { pyStrip } from "../lib/pyformat.js";
import type { Queryable } from "../db/db.js";
import { CommandError } from "../lib/errors.js";

/**
 * A zerver_realm row as `SELECT *` reads it: the columns this code reads (a release without a
 * column leaves it out: those are optional). Lookups that select fewer columns say so.
 */
export interface Realm {
  id: number;
  string_id: string;
  name: string;
  deactivated: boolean;
  deactivated_redirect: string | null;
  default_language: string;
  emails_restricted_to_domains: boolean;
  invite_required: boolean;
  waiting_period_threshold: number;
  org_type: number;
  plan_type: number;
  date_created: Date;
  /** Where the release has them (the code checks the catalog). */
  scheduled_deletion_date?: Date | null;
  demo_organization_scheduled_deletion_date?: Date | null;
  /** 12.0+ (the "workplace users" group setting). */
  workplace_users_group_id?: number;
}

/**
 * A zerver_userprofile row as `SELECT *` reads it: the columns this code reads (a release without
 * a column leaves it out: those are optional). Lookups that select fewer columns say so.
 */
export interface UserProfile {
  id: number;
  email: string;
  delivery_email: string;
  full_name: string;
  realm_id: number;
  role: number;
  is_active: boolean;
  is_bot: boolean;
  bot_type: number | null;
  bot_owner_id: number | null;
  date_joined: Date;
  last_login: Date | null;
  password: string;
  api_key: string;
  tos_version: string | null;
  rate_limits: string;
  default_language: string;
  timezone: string;
  email_address_visibility: number;
  is_mirror_dummy: boolean;
  long_term_idle: boolean;
  avatar_source: string;
  avatar_version: number;
  avatar_hash: string | null;
  default_sending_stream_id: number | null;
  default_events_register_stream_id: number | null;
  allow_private_data_export: boolean;
  can_forge_sender: boolean;
  can_create_users: boolean;
  /** 12.0+ */
  can_change_user_emails?: boolean;
  /** Before 10.0 (replaced by the realm's can_manage_billing_group). */
  is_billing_admin?: boolean;
  /** Before 12.0 (0798): the user's personal Recipient. */
  recipient_id?: number | null;
}

export const REALM_HELP =
  "The numeric or string ID (subdomain) of the Zulip organization to modify.\n" +
  "You can use the command list_realms to find ID of the realms in this server.";

/** Python's int(): surrounding whitespace, an optional sign, digits with single '_' separators. */
export function parsePythonInt(value: string): number | null {
  const m = /^\s*([+-]?)(\d(?:_?\d)*)\s*$/.exec(value);
  if (!m) return null;
  const n = Number(m[2].replace(/_/g, ""));
  return m[1] === "-" ? -n : n;
}

/** str(Realm) in Zulip: "<string_id> <id>". */
export function realmLabel(realm: Realm): string {
  return `${realm.string_id} ${realm.id}`;
}

/**
 * How get_realm finds the realm the -r value names: by id when it parses as a Python int, else
 * by string_id. null: a number outside PostgreSQL's integer range, which matches nothing (as
 * in Django).
 */
export function realmCondition(value: string): { column: "id" | "string_id"; param: string | number } | null {
  const asInt = parsePythonInt(value);
  if (asInt === null) return { column: "string_id", param: value };
  return Number.isSafeInteger(asInt) && Math.abs(asInt) <= 2147483647 ? { column: "id", param: asInt } : null;
}

export async function getRealm(db: Queryable, value: string | undefined, columns = "*"): Promise<Realm | null> {
  if (value === undefined || value === null) return null;
  const cond = realmCondition(value);
  const { rows } = cond ? await db.query(`SELECT ${columns} FROM zerver_realm WHERE ${cond.column} = $1`, [cond.param]) : { rows: [] };
  if (rows.length === 0) throw new CommandError(`There is no realm with id '${value}'. Aborting.`, "realm_not_found");
  return rows[0] as Realm;
}

/** manage.py's get_user(email, realm): delivery_email, case-insensitive, deactivated users included. */
export async function getUser(db: Queryable, email: string, realm: Realm | null): Promise<UserProfile> {
  const stripped = pyStrip(email);
  if (realm) {
    const { rows } = await db.query("SELECT * FROM zerver_userprofile WHERE upper(delivery_email::text) = upper($1) AND realm_id = $2", [stripped, realm.id]);
    if (rows.length === 0) {
      throw new CommandError(`The realm '${realmLabel(realm)}' does not contain a user with email '${email}'`, "user_not_found");
    }
    return rows[0];
  }
  // Realm by realm, so that the (realm_id, upper(delivery_email)) unique index answers it
  // instead of a read of every user of the server.
  const { rows } = await db.query(
    "SELECT * FROM zerver_userprofile WHERE realm_id IN (SELECT id FROM zerver_realm) AND upper(delivery_email::text) = upper($1) LIMIT 2",
    [stripped],
  );
  if (rows.length > 1) {
    throw new CommandError(
      "This Zulip server contains multiple users with that email (in different realms); please pass `--realm` to specify which one to modify.",
      "user_ambiguous",
    );
  }
  if (rows.length === 0) throw new CommandError(`This Zulip server does not contain a user with email '${email}'`, "user_not_found");
  return rows[0];
}

/** A realm as --json documents name it (and as actions are told which realm they work on). */
export interface RealmRef {
  id: number;
  string_id: string;
}

/** A realm given by its id, or by an object that has it (a RealmRef, a Realm row, a created realm). */
export type RealmIdOrRef = number | Pick<RealmRef, "id">;

export function realmIdOf(realm: RealmIdOrRef): number {
  return typeof realm === "number" ? realm : realm.id;
}

/**
 * manage.py's get_user(email, get_realm(options)) for commands that work on one user, with the
 * realm the user belongs to (the -r realm, or the user's own when -r was not given).
 */
export async function getUserWithRealm(db: Queryable, email: string, realmOption: string | undefined): Promise<{ user: UserProfile; realm: RealmRef }> {
  const user = await getUser(db, email, await getRealm(db, realmOption));
  return { user, realm: await realmRef(db, user.realm_id) };
}

/** The realm with this id, as a RealmRef. */
export async function realmRef(db: Queryable, realmId: number): Promise<RealmRef> {
  const { rows } = await db.query("SELECT id, string_id FROM zerver_realm WHERE id = $1", [realmId]);
  return { id: Number(rows[0].id), string_id: rows[0].string_id as string };
}

export interface UserListOptions {
  users?: string;
  allUsers?: boolean;
}

/** manage.py's get_users(options, realm, is_bot=None, include_deactivated=False). */
export async function getUsers(
  db: Queryable,
  options: UserListOptions,
  realm: Realm | null,
  filter: { isBot?: boolean; includeDeactivated?: boolean; columns?: string } = {},
): Promise<UserProfile[]> {
  // Bulk commands select only the columns they use: 50,000 full rows are ~100 MB in memory.
  const columns = filter.columns ?? "*";
  const hasUsers = options.users !== undefined && options.users !== null;
  if (!hasUsers && !options.allUsers) throw new CommandError("You have to pass either -u/--users or -a/--all-users.", "invalid_arguments");
  if (hasUsers && options.allUsers) throw new CommandError("You can't use both -u/--users and -a/--all-users.", "invalid_arguments");
  if (options.allUsers && !realm) throw new CommandError("The --all-users option requires a realm; please pass --realm.", "invalid_arguments");

  if (options.allUsers) {
    const where = ["realm_id = $1"];
    const params: unknown[] = [realm!.id];
    if (!filter.includeDeactivated) where.push("is_active");
    if (filter.isBot !== undefined) {
      params.push(filter.isBot);
      where.push(`is_bot = $${params.length}`);
    }
    const { rows } = await db.query(`SELECT ${columns} FROM zerver_userprofile WHERE ${where.join(" AND ")} ORDER BY id`, params);
    return rows;
  }
  const emails = [...new Set(options.users!.split(",").map(pyStrip))];
  for (const email of emails) await getUser(db, email, realm);
  const params: unknown[] = [emails];
  let sql = `SELECT ${columns} FROM zerver_userprofile WHERE upper(delivery_email::text) = ANY (SELECT upper(e) FROM unnest($1::text[]) AS e)`;
  if (realm) {
    params.push(realm.id);
    sql += " AND realm_id = $2";
  }
  const { rows } = await db.query(sql + " ORDER BY id", params);
  return rows;
}

/** get_user_profile_by_api_key(api_key): any realm, deactivated users included; null when none. */
export async function getUserByApiKey(db: Queryable, apiKey: string): Promise<UserProfile | null> {
  const { rows } = await db.query("SELECT * FROM zerver_userprofile WHERE api_key = $1", [apiKey]);
  return rows.length ? (rows[0] as UserProfile) : null;
}

/** UserProfile.objects.filter(is_bot=True, bot_owner=user): every bot of the user, deactivated ones included (id order). */
export async function botsOwnedBy(db: Queryable, userId: number): Promise<UserProfile[]> {
  const { rows } = await db.query("SELECT * FROM zerver_userprofile WHERE is_bot AND bot_owner_id = $1 ORDER BY id", [userId]);
  return rows as UserProfile[];
}

/** get_active_bots_owned_by_user(user) (zerver/lib/users.py): the user's active bots (id order). */
export async function activeBotsOwnedBy(db: Queryable, userId: number): Promise<UserProfile[]> {
  const { rows } = await db.query("SELECT * FROM zerver_userprofile WHERE is_bot AND is_active AND bot_owner_id = $1 ORDER BY id", [userId]);
  return rows as UserProfile[];
}

export interface LockUserRowOptions {
  /** The CommandError's message when the user no longer exists. */
  missing?: string;
  /** The row is about to be deleted: FOR UPDATE (else FOR NO KEY UPDATE, which lets rows referencing it be written meanwhile). */
  forDelete?: boolean;
  /** The columns to read (default every column). */
  columns?: string;
}

/**
 * The user's row, locked until the caller's transaction ends and read again, so that an action
 * works on the row as it is now and two runs cannot both change it (Zulip's actions mostly rely
 * on the row they were given; we lock, see the actions' notes). Throws CommandError when the user
 * no longer exists.
 */
export async function lockUserRow(q: Queryable, userId: number, opts: LockUserRowOptions = {}): Promise<UserProfile> {
  const { rows } = await q.query(`SELECT ${opts.columns ?? "*"} FROM zerver_userprofile WHERE id = $1 FOR ${opts.forDelete ? "UPDATE" : "NO KEY UPDATE"}`, [
    userId,
  ]);
  if (rows.length === 0) throw new CommandError(opts.missing ?? `The user with id ${userId} no longer exists; nothing was changed.`);
  return rows[0] as UserProfile;
}
