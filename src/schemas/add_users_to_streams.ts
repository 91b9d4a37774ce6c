import { type Static, Type } from "@sinclair/typebox";
import { SubscriptionResult } from "./channels.js";
import { AuditLogIds, CacheReport, Count, DryRunField, EventsReport, Id, Nullable, Obj, Realm } from "./shared.js";

export const ChannelSubscriptions = Obj({
  id: Nullable(Id),
  name: Type.String(),
  created: Type.Boolean({ description: "created (or would be, in a dry run: id null then)" }),
  archived: Type.Boolean(),
  subscribed_count: Count,
  already_subscribed_count: Count,
  results: Type.Array(SubscriptionResult, { description: "per user: done (subscribed), would_do (dry run) or unchanged (already subscribed)" }),
});
export const AddUsersToStreamsBody = Obj({
  ...DryRunField,
  realm: Realm,
  channels: Type.Array(ChannelSubscriptions),
  audit_log_ids: AuditLogIds,
  cache: Nullable(CacheReport),
  events: Nullable(EventsReport),
});
export type AddUsersToStreamsBody = Static<typeof AddUsersToStreamsBody>;
export type ChannelSubscriptions = Static<typeof ChannelSubscriptions>;
export const bodies = [AddUsersToStreamsBody];
export const description = "Users subscribed to channels (created when missing), one result per user and channel.";
