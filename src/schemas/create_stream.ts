import { type Static, Type } from "@sinclair/typebox";
import { AuditLogIds, CacheReport, DryRunField, EventsReport, Id, Nullable, Obj, Realm } from "./shared.js";

export const CreateStreamBody = Obj({
  ...DryRunField,
  realm: Realm,
  channel: Obj({ id: Nullable(Id), name: Type.String() }, "the channel (id null when it would be created in a dry run)"),
  created: Type.Boolean({ description: "created (or would be, in a dry run); false when it existed already" }),
  audit_log_ids: AuditLogIds,
  cache: Nullable(CacheReport),
  events: Nullable(EventsReport),
});
export type CreateStreamBody = Static<typeof CreateStreamBody>;
export const bodies = [CreateStreamBody];
export const description = "A public channel created with Zulip's defaults (or left alone when it exists).";
