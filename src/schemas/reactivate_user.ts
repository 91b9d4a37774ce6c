import { type Static, Type } from "@sinclair/typebox";
import { AuditLogIds, CacheReport, Count, DryRunField, EventsReport, Extend, Id, Nullable, Obj, Realm, User } from "./shared.js";

export const ReactivateUserBody = Obj({
  ...DryRunField,
  realm: Realm,
  user: Extend(User, { is_bot: Type.Boolean() }),
  changed: Type.Boolean({ description: "false in a dry run" }),
  subscription_count: Count,
  channel_ids: Type.Array(Id, { description: "channels whose subscriber_count went up by one" }),
  audit_log_ids: AuditLogIds,
  inactive_bot_owner: Nullable(User),
  cache: Nullable(CacheReport),
  events: Nullable(EventsReport),
});
export type ReactivateUserBody = Static<typeof ReactivateUserBody>;
export const bodies = [ReactivateUserBody];
export const description = "A deactivated user reactivated (the web UI's Reactivate button).";
