import { type Static, Type } from "@sinclair/typebox";
import { Nullable, Obj, OutcomeFields } from "./shared.js";

export const TestEmailResult = Obj({
  from: Type.String(),
  subject: Type.String(),
  to: Type.Array(Type.String()),
  message_id: Nullable(Type.String()),
  ...OutcomeFields,
});
export const SendTestEmailBody = Obj({
  results: Type.Array(TestEmailResult, { description: "one per message, in sending order; sending stops at the first failure" }),
  smtp_log: Nullable(Type.Array(Type.String(), { description: "the SMTP conversation, when sending failed" })),
});
export type SendTestEmailBody = Static<typeof SendTestEmailBody>;
export type TestEmailResult = Static<typeof TestEmailResult>;
export const bodies = [SendTestEmailBody];
export const description = "Test messages sent from the support and noreply addresses (and to MANAGERS/ADMINS).";
