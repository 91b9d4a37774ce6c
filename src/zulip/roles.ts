// zerver_userprofile.role values (UserProfile.ROLE_*), in one place: their printed names
// (ROLE_ID_TO_NAME_MAP) and API names. The system group of each role is groups.ts
// SYSTEM_GROUP_FOR_ROLE; do_change_user_role is actions/change-user-role.ts.
//
// This module imports nothing: src/schemas (which may import only src/cli otherwise) builds
// the --json role fields from ROLE_IDS and ROLE_API_NAMES (test/layout.test.ts allows that one
// edge and checks that it stays dependency-free).
export const ROLES = {
  REALM_OWNER: 100,
  REALM_ADMINISTRATOR: 200,
  MODERATOR: 300,
  MEMBER: 400,
  GUEST: 600,
} as const;

/** Every role, highest first (UserProfile.ROLE_TYPES). */
export const ROLE_IDS = [ROLES.REALM_OWNER, ROLES.REALM_ADMINISTRATOR, ROLES.MODERATOR, ROLES.MEMBER, ROLES.GUEST] as const;

/** The API name of each role of ROLE_IDS, in the same order (UserProfile.ROLE_API_NAME_TO_ID's keys). */
export const ROLE_API_NAMES = ["owner", "administrator", "moderator", "member", "guest"] as const;

/** Printed names (UserProfile.ROLE_ID_TO_NAME_MAP), in the order of ROLE_IDS. */
const ROLE_PRINTED_NAMES = ["Organization owner", "Organization administrator", "Moderator", "Member", "Guest"] as const;

export const ROLE_NAMES: Record<number, { printed: string; api: string }> = Object.fromEntries(
  ROLE_IDS.map((id, i) => [id, { printed: ROLE_PRINTED_NAMES[i]!, api: ROLE_API_NAMES[i]! }]),
);

/** UserProfile.is_realm_admin: organization owners and administrators. */
export function isRealmAdmin(role: number): boolean {
  return role === ROLES.REALM_OWNER || role === ROLES.REALM_ADMINISTRATOR;
}

/** The roles of is_realm_admin as an SQL list, for `role IN (…)`. */
export const REALM_ADMIN_ROLES_SQL = `${ROLES.REALM_OWNER}, ${ROLES.REALM_ADMINISTRATOR}`;
