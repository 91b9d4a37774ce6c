import { type Static, Type } from "@sinclair/typebox";
import { AuditLogIds, DryRunField, Id, Nullable, Obj, OutcomeFields, Realm, Timestamp, User } from "./shared.js";

export const SendRealmReactivationEmailBody = Obj({
  ...DryRunField,
  realm: Realm,
  recipients: Type.Array(User, { description: "the active human owners and administrators (one email to all of them)" }),
  confirmation: Nullable(Obj({ id: Id, key: Type.String(), url: Type.String(), expires_at: Nullable(Timestamp) })),
  realm_reactivation_status_id: Nullable(Id),
  audit_log_ids: AuditLogIds,
  email: Obj({ ...OutcomeFields, language_note: Nullable(Type.String()) }),
});
export type SendRealmReactivationEmailBody = Static<typeof SendRealmReactivationEmailBody>;
export const bodies = [SendRealmReactivationEmailBody];
export const description = "A deactivated organization's reactivation link, emailed to its administrators.";
