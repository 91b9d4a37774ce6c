import { type Static, Type } from "@sinclair/typebox";
import { Channel, SubscriptionResult } from "./channels.js";
import { AuditLogIds, CacheReport, Count, DryRunField, EventsReport, Nullable, Obj, Realm } from "./shared.js";

export const RemoveUsersFromStreamBody = Obj({
  ...DryRunField,
  realm: Realm,
  channel: Channel,
  removed_count: Count,
  not_subscribed_count: Count,
  results: Type.Array(SubscriptionResult, { description: "per user: done (removed), would_do (dry run) or unchanged (was not subscribed)" }),
  audit_log_ids: AuditLogIds,
  cache: Nullable(CacheReport),
  events: Nullable(EventsReport),
});
export type RemoveUsersFromStreamBody = Static<typeof RemoveUsersFromStreamBody>;
export const bodies = [RemoveUsersFromStreamBody];
export const description = "Users unsubscribed from a channel, one result per user.";
