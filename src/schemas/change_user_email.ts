import { type Static, Type } from "@sinclair/typebox";
import { AuditLogIds, CacheReport, Change, DryRunField, EventsReport, Nullable, Obj, Realm, User } from "./shared.js";

export const ChangeUserEmailBody = Obj({
  ...DryRunField,
  realm: Realm,
  user: User,
  delivery_email: Change(Type.String()),
  email: Change(Type.String()),
  audit_log_ids: AuditLogIds,
  cache: Nullable(CacheReport),
  events: Nullable(EventsReport),
});
export type ChangeUserEmailBody = Static<typeof ChangeUserEmailBody>;
export const bodies = [ChangeUserEmailBody];
export const description =
  "A user's email address changed. `user` is as before the change; `email` (the address others see) changes too when the user's email visibility is everyone.";
