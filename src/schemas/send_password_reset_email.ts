import { type Static, Type } from "@sinclair/typebox";
import { Count, DryRunField, EventsReport, Nullable, Obj, OutcomeFields, Realm, User } from "./shared.js";

export const PasswordResetResult = Obj({
  user: User,
  realm: Realm,
  variant: Type.Union([Type.Literal("reset_link"), Type.Literal("deactivated")], { description: "deactivated: the email without a reset link" }),
  ...OutcomeFields,
});
export const SendPasswordResetEmailBody = Obj({
  ...DryRunField,
  sent_count: Count,
  failed_count: Count,
  results: Type.Array(PasswordResetResult),
  events: Type.Optional(Nullable(EventsReport)),
});
export type SendPasswordResetEmailBody = Static<typeof SendPasswordResetEmailBody>;
export const bodies = [SendPasswordResetEmailBody];
export const description = "Password reset emails, one result per user.";
