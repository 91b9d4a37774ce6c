import { type Static, Type } from "@sinclair/typebox";
import { AuditLogIds, CacheReport, Change, Count, DryRunField, EventsReport, Nullable, Obj, OutcomeFields, Realm, User } from "./shared.js";

export const NameResult = Obj({
  line: Count,
  email: Type.String({ description: "the email as written in the file" }),
  user: Nullable(User),
  full_name: Nullable(Change(Type.String())),
  audit_log_ids: AuditLogIds,
  ...OutcomeFields,
});
export const BulkChangeUserNameBody = Obj({
  ...DryRunField,
  realm: Realm,
  results: Type.Array(NameResult, { description: "one per non-blank line: done, unchanged, would_do, or refused (skipped with the reason in error)" }),
  cache: Nullable(CacheReport),
  events: Nullable(EventsReport),
});
export type BulkChangeUserNameBody = Static<typeof BulkChangeUserNameBody>;
export const bodies = [BulkChangeUserNameBody];
export const description = "Full names changed from a CSV file, one result per line; exit 1 when a line was skipped.";
