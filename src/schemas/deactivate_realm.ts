import { type Static, Type } from "@sinclair/typebox";
import { AuditLogIds, CacheReport, Change, Count, DryRunField, EventsReport, Nullable, Obj, OutcomeFields, Realm, User } from "./shared.js";

export const DeactivationEmailResult = Obj({
  user: User,
  ...OutcomeFields,
  language_note: Nullable(Type.String({ description: "when Zulip would have used another language than English" })),
});
export const DeactivateRealmBody = Obj({
  ...DryRunField,
  realm: Realm,
  redirect_url: Nullable(Type.String({ description: "--redirect_url as given" })),
  redirect_set: Type.Boolean({ description: "the redirect URL was stored (false when not given or in a dry run)" }),
  already_deactivated: Type.Boolean({ description: "the organization was deactivated already: nothing else was done" }),
  deactivated: Change(Type.Boolean()),
  deactivation_reason: Type.String(),
  audit_log_ids: AuditLogIds,
  scheduled_emails_deleted_count: Count,
  sessions_deleted_count: Count,
  results: Type.Array(DeactivationEmailResult, { description: "with --email_owners: one email per active human owner" }),
  cache: Nullable(CacheReport),
  events: Nullable(EventsReport),
});
export type DeactivateRealmBody = Static<typeof DeactivateRealmBody>;
export type DeactivationEmailResult = Static<typeof DeactivationEmailResult>;
export const bodies = [DeactivateRealmBody];
export const description = "An organization deactivated; with --email_owners, one result per owner emailed.";
