import { type Static, Type } from "@sinclair/typebox";
import { AuditLogIds, CacheReport, Count, DryRunField, Id, Nullable, Obj, OutcomeFields, User } from "./shared.js";

export const SoftDeactivated = Obj({ user: User, last_active_message_id: Id, audit_log_ids: AuditLogIds });
export const CaughtUp = Obj({ user: User, messages_added_count: Count, last_active_message_id: Nullable(Id) });
export const SoftReactivated = Obj({ user: User, messages_added_count: Count, last_active_message_id: Nullable(Id), audit_log_ids: AuditLogIds });

export const SoftDeactivateBody = Obj(
  {
    ...DryRunField,
    action: Type.Literal("deactivate"),
    mode: Type.Union([Type.Literal("inactive"), Type.Literal("users")], { description: "users: -d EMAIL…; inactive: -d alone" }),
    inactive_for_days: Nullable(Count),
    soft_deactivated: Type.Array(SoftDeactivated),
    caught_up: Nullable(Type.Array(CaughtUp, { description: "null when the catch-up was skipped" })),
    catch_up_failures: Type.Array(Obj({ user: Nullable(User), ...OutcomeFields }), {
      description: "status failed (user null if deleted meanwhile); the exit status is then 1",
    }),
    cache: Nullable(CacheReport),
  },
  "-d: users soft-deactivated, then idle users caught up",
);
export const SoftActivateBody = Obj(
  {
    ...DryRunField,
    action: Type.Literal("activate"),
    soft_reactivated: Type.Array(SoftReactivated),
    already_active: Type.Array(User),
    cache: Nullable(CacheReport),
  },
  "-a: users caught up and soft-reactivated",
);
export type SoftDeactivateBody = Static<typeof SoftDeactivateBody>;
export type SoftActivateBody = Static<typeof SoftActivateBody>;
export const bodies = [SoftDeactivateBody, SoftActivateBody];
export const description = "Users soft-deactivated (-d) or soft-reactivated (-a); dry_run is always false.";
