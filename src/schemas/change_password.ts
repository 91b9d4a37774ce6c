import { type Static, Type } from "@sinclair/typebox";
import { AuditLogIds, CacheReport, Count, DryRunField, Nullable, Obj, Realm, ServiceReport, User } from "./shared.js";

/** The Redis follow-up: the user's failed login attempts forgotten (best effort, after the commit). */
export const RateLimitReport = ServiceReport({ keys_deleted_count: Count }, "the Redis report: the failed-login counter of the user's email cleared");
export const ChangePasswordBody = Obj({
  ...DryRunField,
  realm: Realm,
  user: User,
  hasher: Type.String({ description: 'the password hasher: "argon2", or "pbkdf2_sha256" on a development server' }),
  audit_log_ids: AuditLogIds,
  rate_limit: RateLimitReport,
  cache: Nullable(CacheReport),
});
export type ChangePasswordBody = Static<typeof ChangePasswordBody>;
export const bodies = [ChangePasswordBody];
export const description = "A user's password changed (dry_run is always false: the command has no dry run).";
