import { type Static, Type } from "@sinclair/typebox";
import { AuditLogIds, CacheReport, DryRunField, EventsReport, Nullable, Obj, Realm } from "./shared.js";

export const ReactivateRealmBody = Obj({
  ...DryRunField,
  realm: Realm,
  already_active: Type.Boolean({ description: "the organization was active: nothing was done" }),
  reactivated: Type.Boolean(),
  audit_log_ids: AuditLogIds,
  deactivated_redirect: Nullable(Type.String({ description: "kept as it is" })),
  cache: Nullable(CacheReport),
  events: Nullable(EventsReport),
});
export type ReactivateRealmBody = Static<typeof ReactivateRealmBody>;
export const bodies = [ReactivateRealmBody];
export const description = "A deactivated organization reactivated.";
