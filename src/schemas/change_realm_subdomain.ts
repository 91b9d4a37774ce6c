import { type Static, Type } from "@sinclair/typebox";
import { AuditLogIds, CacheReport, Change, Count, DryRunField, EventsReport, Extend, Nullable, Obj, Realm } from "./shared.js";

export const ChangeRealmSubdomainBody = Obj({
  ...DryRunField,
  realm: Extend(Realm, {}, "the organization, as it is after the command (as it is now in a dry run)"),
  subdomain: Change(Type.String()),
  url: Change(Type.String()),
  audit_log_ids: AuditLogIds,
  placeholder: Nullable(
    Extend(
      Realm,
      { deactivated_redirect: Type.String() },
      "the deactivated organization left at the old subdomain (null with --skip-redirect or in a dry run)",
    ),
  ),
  redirects_updated: Type.Array(Realm, { description: "earlier placeholders whose redirect now points at the new URL" }),
  sessions_deleted_count: Count,
  cache: Nullable(CacheReport),
  events: Nullable(EventsReport),
});
export type ChangeRealmSubdomainBody = Static<typeof ChangeRealmSubdomainBody>;
export const bodies = [ChangeRealmSubdomainBody];
export const description = "An organization's subdomain changed; audit_log_ids lists the rename's row, then the placeholder's rows.";
