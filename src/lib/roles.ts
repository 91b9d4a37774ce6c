// zerver_userprofile.role values, their printed names (ROLE_ID_TO_NAME_MAP), API names and the
// system group each role is a direct member of.
export const ROLES = {
  REALM_OWNER: 100,
  REALM_ADMINISTRATOR: 200,
  MODERATOR: 300,
  MEMBER: 400,
  GUEST: 600,
} as const;

export const ROLE_NAMES: Record<number, { printed: string; api: string; group: string }> = {
  100: { printed: "Organization owner", api: "owner", group: "role:owners" },
  200: { printed: "Organization administrator", api: "administrator", group: "role:administrators" },
  300: { printed: "Moderator", api: "moderator", group: "role:moderators" },
  400: { printed: "Member", api: "member", group: "role:members" },
  600: { printed: "Guest", api: "guest", group: "role:everyone" },
};

export const ALL_ROLES = [100, 200, 300, 400, 600] as const;
