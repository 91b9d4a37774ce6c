// zerver_userprofile.role values (UserProfile.ROLE_*), in one place: their printed names
// (ROLE_ID_TO_NAME_MAP) and API names. The system group of each role is groups.ts
// SYSTEM_GROUP_FOR_ROLE; do_change_user_role is actions/change-user-role.ts.
export const ROLES = {
  REALM_OWNER: 100,
  REALM_ADMINISTRATOR: 200,
  MODERATOR: 300,
  MEMBER: 400,
  GUEST: 600,
} as const;

export type RoleId = (typeof ROLES)[keyof typeof ROLES];

/** Every role, highest first (UserProfile.ROLE_TYPES). */
export const ROLE_IDS: readonly RoleId[] = [ROLES.REALM_OWNER, ROLES.REALM_ADMINISTRATOR, ROLES.MODERATOR, ROLES.MEMBER, ROLES.GUEST];

export const ROLE_NAMES: Record<number, { printed: string; api: string }> = {
  [ROLES.REALM_OWNER]: { printed: "Organization owner", api: "owner" },
  [ROLES.REALM_ADMINISTRATOR]: { printed: "Organization administrator", api: "administrator" },
  [ROLES.MODERATOR]: { printed: "Moderator", api: "moderator" },
  [ROLES.MEMBER]: { printed: "Member", api: "member" },
  [ROLES.GUEST]: { printed: "Guest", api: "guest" },
};
