import { type Static, Type } from "@sinclair/typebox";
import { AuditLogIds, CacheReport, Count, DryRunField, EventsReport, Extend, Id, Nullable, Obj, Realm, Timestamp, User } from "./shared.js";

export const Session = Obj({
  expires_at: Timestamp,
  data: Type.Record(Type.String(), Type.Unknown(), { description: "the decoded session dict" }),
});
export const Deactivated = Obj({
  user: Extend(User, { is_bot: Type.Boolean() }),
  subscription_count: Count,
  channel_ids: Type.Array(Id, { description: "channels whose subscriber_count went down by one" }),
  scheduled_emails_left_count: Count,
  scheduled_emails_deleted_count: Count,
  invitations_revoked_count: Count,
  sessions_deleted_count: Count,
  audit_log_ids: AuditLogIds,
});
export const DeactivateUserBody = Obj({
  ...DryRunField,
  realm: Realm,
  user: Extend(User, { was_active: Type.Boolean() }),
  sessions: Type.Array(Session),
  bots: Type.Array(User, { description: "the active bots the user owns, deactivated first" }),
  deactivated: Type.Array(Deactivated, { description: "bots first, then the user; only accounts changed; [] in a dry run" }),
  cache: Nullable(CacheReport),
  events: Nullable(EventsReport),
});
export type DeactivateUserBody = Static<typeof DeactivateUserBody>;
export const bodies = [DeactivateUserBody];
export const description =
  "A user deactivated with their bots. Without -f: ok false, exit 1, dry_run true, the plan, and manage.py's message in error; --dry-run exits 0.";
