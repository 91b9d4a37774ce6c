import { type Static, Type } from "@sinclair/typebox";
import { AuditLogIds, CacheReport, DryRunField, EventsReport, Extend, Id, Nullable, Obj, Realm, Timestamp, User } from "./shared.js";

export const CreateUserBody = Obj({
  ...DryRunField,
  realm: Realm,
  user: Nullable(
    Extend(User, {
      password: Type.Union([Type.Literal("set"), Type.Literal("unusable")]),
      system_groups: Type.Array(Type.String(), { description: 'the direct system-group memberships written, e.g. "role:members"' }),
    }),
  ),
  subscribed_channels: Type.Array(Type.String(), { description: "channel names (the default channels in a dry run)" }),
  scheduled_emails: Type.Array(Obj({ id: Id, template: Type.String(), scheduled_at: Timestamp })),
  signup_announcement: Nullable(Obj({ message_id: Id, channel: Type.String() })),
  not_done: Type.Array(Type.String(), { description: "what Zulip does on sign-up that zulip-manage does not" }),
  audit_log_ids: AuditLogIds,
  cache: Nullable(CacheReport),
  events: Nullable(EventsReport),
});
export type CreateUserBody = Static<typeof CreateUserBody>;
export const bodies = [CreateUserBody];
export const description = "A user created (user null in a dry run).";
