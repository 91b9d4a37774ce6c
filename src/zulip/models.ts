// Small constants of Zulip's models (zerver/models/*.py) that several modules need, defined once
// here so that the event builders (src/zulip/events), the model modules and the actions use the
// same values. Constants with a module of their own live there: roles (roles.ts ROLES), audit
// event types (audit.ts AuditLogEventType), confirmation types (confirmation.ts), system groups
// (groups.ts).

/** Recipient.PERSONAL / STREAM / DIRECT_MESSAGE_GROUP (formerly HUDDLE): zerver_recipient.type. */
export const RecipientType = { PERSONAL: 1, STREAM: 2, DIRECT_MESSAGE_GROUP: 3 } as const;

/**
 * UserProfile.EMAIL_ADDRESS_VISIBILITY_* (zerver/models/users.py): who may see a user's real
 * address (zerver_userprofile.email_address_visibility, RealmUserDefault's too).
 */
export const EmailAddressVisibility = { EVERYONE: 1, MEMBERS: 2, ADMINS: 3, NOBODY: 4, MODERATORS: 5 } as const;

/** UserProfile.TOS_VERSION_BEFORE_FIRST_LOGIN: the tos_version of an account nobody has logged in to. */
export const TOS_VERSION_BEFORE_FIRST_LOGIN = "-1";
