import { type Static, Type } from "@sinclair/typebox";
import { AuditLogIds, CacheReport, Count, DryRunField, EventsReport, Nullable, Obj, OutcomeFields, Realm, User } from "./shared.js";

export const ApiKeyRotation = Obj({
  user: User,
  audit_log_ids: AuditLogIds,
  push_tokens_deleted_count: Count,
  ...OutcomeFields,
});
export const LogoutAllUsersBody = Obj({
  ...DryRunField,
  scope: Type.Union(["realm", "deactivated", "realm-deactivated", "all"].map((s) => Type.Literal(s))),
  realm: Nullable(Realm),
  sessions_deleted_count: Count,
  users_logged_out_count: Count,
  anonymous_sessions_deleted_count: Count,
  orphaned_sessions_skipped_count: Count,
  api_keys_rotated: Type.Array(ApiKeyRotation, { description: "with --rotate-api-keys: status done, or would_do in a dry run" }),
  cache: Nullable(CacheReport),
  events: Nullable(EventsReport),
});
export type LogoutAllUsersBody = Static<typeof LogoutAllUsersBody>;
export const bodies = [LogoutAllUsersBody];
export const description = "Browser sessions deleted (and with --rotate-api-keys API keys rotated); in a dry run the counts are what would be deleted.";
