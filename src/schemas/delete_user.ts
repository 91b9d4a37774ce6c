import { type Static, Type } from "@sinclair/typebox";
import { AuditLogIds, CacheReport, Count, DryRunField, EventsReport, Id, Nullable, Obj, OutcomeFields, Realm, User } from "./shared.js";

const RowCounts = Type.Record(Type.String(), Count, { description: "table (or table.column) → rows" });
export const Placeholder = Obj(
  {
    id: Id,
    email: Type.String(),
    delivery_email: Type.String(),
    full_name: Type.String(),
    is_active: Type.Boolean(),
    is_mirror_dummy: Type.Boolean(),
    is_deleted: Nullable(Type.Boolean({ description: "null before Zulip 12" })),
    recipient_id: Nullable(Id),
  },
  'the "Deleted User <id>" placeholder account that replaces the user (its columns)',
);
export const DeletionResult = Obj({
  user: User,
  active_bot_count: Count,
  deactivated: Nullable(
    Obj({ user: Type.Boolean(), bot_ids: Type.Array(Id), sessions_deleted_count: Count }, "the deactivation first done; null in a dry run"),
  ),
  rows_deleted: RowCounts,
  rows_set_null: RowCounts,
  rows_archived: RowCounts,
  subscriptions_deactivated_count: Count,
  audit_rows_scrubbed_count: Count,
  placeholder: Nullable(Placeholder),
  unknown_columns_kept: Type.Optional(
    Type.Array(Type.String(), { description: "zerver_userprofile columns zulip-manage does not know, left as they were (12.x)" }),
  ),
  audit_log_ids: AuditLogIds,
  sessions_deleted_count: Count,
  ...OutcomeFields,
});
export const DeleteUserBody = Obj({
  ...DryRunField,
  realm: Nullable(Realm),
  algorithm: Type.Union([Type.Literal("overwrite"), Type.Literal("recreate")], { description: "overwrite: Zulip 12.x; recreate: 10.x / 11.x" }),
  results: Type.Array(DeletionResult, { description: "one per user: done, would_do (the plan's counts), failed, or not_attempted after a failure" }),
  cache: Nullable(CacheReport),
  events: Nullable(EventsReport),
});
export type DeleteUserBody = Static<typeof DeleteUserBody>;
export const bodies = [DeleteUserBody];
export const description = "Users deleted. Without -f: ok false, exit 1, dry_run true, the plan, and manage.py's message in error; --dry-run exits 0.";
