import { type Static, Type } from "@sinclair/typebox";
import { AuditLogIds, Count, DryRunField, Nullable, Obj, OutcomeFields, Realm, User } from "./shared.js";

export const CustomEmailResult = Obj({ user: User, realm: Realm, ...OutcomeFields });
export const SendCustomEmailBody = Obj({
  ...DryRunField,
  email_id: Type.String({ pattern: "^[0-9a-f]{32}$" }),
  subject: Type.String(),
  from_name: Nullable(Type.String()),
  from_address: Nullable(Type.String()),
  reply_to: Nullable(Type.String()),
  records_audit_log: Type.Boolean({ description: "Zulip 12+: a CUSTOM_EMAIL_SENT row per delivered email, and users who already got this email are left out" }),
  excluded_already_received_count: Count,
  sent_count: Count,
  failed_count: Count,
  audit_log_ids: AuditLogIds,
  results: Type.Array(CustomEmailResult),
});
export type SendCustomEmailBody = Static<typeof SendCustomEmailBody>;
export type CustomEmailResult = Static<typeof CustomEmailResult>;
export const bodies = [SendCustomEmailBody];
export const description = "A custom email, one result per recipient.";
