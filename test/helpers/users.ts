// Test users and groups for the realm of the fresh-install fixtures (realm 2), made with plain
// SQL independent of the code under test.
import type { TestDatabase } from "./pg.js";

/** The fresh install's organization. */
export const TEST_REALM = 2;

/** The system group each role is a direct member of. */
export const ROLE_GROUP: Record<number, string> = {
  100: "role:owners",
  200: "role:administrators",
  300: "role:moderators",
  400: "role:members",
  600: "role:everyone",
};

/**
 * Insert a copy of one row of a table (in the zulip schema), with some columns given as SQL
 * expressions (`overrides`, which may use $1..$n for `params`); returns the new row's id.
 * Copying a real row keeps every NOT NULL column filled on every schema version.
 */
export async function copyRow(db: TestDatabase, table: string, sourceId: number, overrides: Record<string, string>, params: unknown[] = []): Promise<number> {
  const cols = (
    await db.query(
      "SELECT column_name FROM information_schema.columns WHERE table_schema = 'zulip' AND table_name = $1 AND column_name <> 'id' ORDER BY ordinal_position",
      [table],
    )
  ).map((r: any) => r.column_name as string);
  const [row] = await db.query(
    `INSERT INTO ${table} (${cols.join(", ")})
     SELECT ${cols.map((c) => overrides[c] ?? c).join(", ")} FROM ${table} WHERE id = $${params.length + 1} RETURNING id`,
    [...params, sourceId],
  );
  return Number(row.id);
}

/**
 * A member of realm 2 (or, with botOwnerId, a generic bot), copied from the fresh install's owner
 * row with only the columns that make it another account changed; no group memberships and no
 * personal recipient (see addUser for a user with the memberships Zulip gives a role).
 */
export async function copyMember(db: TestDatabase, opts: { email: string; fullName: string; botOwnerId?: number; active?: boolean }): Promise<number> {
  const bot = opts.botOwnerId !== undefined;
  const override: Record<string, string> = {
    email: "$1",
    delivery_email: "$1",
    full_name: "$2",
    role: "400",
    api_key: "substr(md5(random()::text), 1, 32)",
    uuid: "gen_random_uuid()",
    is_active: opts.active === false ? "false" : "true",
    is_bot: bot ? "true" : "false",
    bot_type: bot ? "1" : "NULL",
    bot_owner_id: bot ? "$3" : "NULL",
    can_create_users: "false",
    recipient_id: "NULL",
  };
  return copyRow(db, "zerver_userprofile", 8, override, [opts.email, opts.fullName, ...(bot ? [opts.botOwnerId] : [])]);
}

/** The realm's system groups, by name. */
export async function groupIds(db: TestDatabase): Promise<Record<string, number>> {
  const rows = await db.query("SELECT usergroup_ptr_id AS id, name FROM zerver_namedusergroup WHERE realm_id = $1 AND is_system_group", [TEST_REALM]);
  return Object.fromEntries(rows.map((r: any) => [r.name, Number(r.id)]));
}

export interface TestUser {
  id: number;
  email: string;
}

let emailCounter = 0;

/**
 * A new user of realm 2 made by copying the fresh install's owner row (test data only), with
 * the direct system-group memberships Zulip gives that role.
 */
export async function addUser(
  db: TestDatabase,
  opts: { role: number; daysAgo?: number; bot?: boolean; botOwnerId?: number; active?: boolean; fullMember?: boolean; name?: string },
): Promise<TestUser> {
  const email = `${opts.name ?? "user"}${++emailCounter}@test.example`;
  const joined = new Date(Date.now() - (opts.daysAgo ?? 30) * 86400_000);
  const override: Record<string, string> = {
    email: "$1",
    delivery_email: "$1",
    full_name: "$2",
    role: "$3",
    date_joined: "$4",
    last_login: "$4",
    api_key: "substr(md5(random()::text), 1, 32)",
    uuid: "gen_random_uuid()",
    is_active: "$5",
    is_bot: "$6",
    bot_type: "CASE WHEN $6 THEN 1 END",
    bot_owner_id: "CASE WHEN $6 THEN $7::int END",
    recipient_id: "NULL",
    can_forge_sender: "false",
    can_create_users: "false",
    can_change_user_emails: "false",
  };
  const id = await copyRow(db, "zerver_userprofile", 8, override, [
    email,
    `User ${emailCounter}`,
    opts.role,
    joined,
    opts.active ?? true,
    opts.bot ?? false,
    opts.botOwnerId ?? 8,
  ]);
  const g = await groupIds(db);
  const groups = [ROLE_GROUP[opts.role]];
  if (opts.fullMember ?? (opts.role === 400 && !opts.bot)) groups.push("role:fullmembers");
  for (const name of groups) {
    await db.query("INSERT INTO zerver_usergroupmembership (user_group_id, user_profile_id) VALUES ($1, $2)", [g[name], id]);
  }
  return { id, email };
}
