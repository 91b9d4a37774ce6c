import { type Static, Type } from "@sinclair/typebox";
import { CacheReport, Change, Count, DryRunField, EventsReport, Nullable, Obj, Realm, Timestamp } from "./shared.js";

/** A realm's push notification status as the service reported it, where it changed. */
export const RealmPushChange = Obj({
  realm: Realm,
  push_notifications_enabled: Nullable(Change(Type.Boolean())),
  push_notifications_enabled_end_at: Nullable(Change(Nullable(Timestamp))),
});
/** send_server_data_to_push_bouncer's outcome (also create_realm's push_service.server_data). */
export const ServerData = Obj({
  last_acknowledged: Obj(
    { realm_count_id: Type.Integer(), installation_count_id: Type.Integer(), realmauditlog_id: Type.Integer() },
    "the last rows the service had",
  ),
  realms_sent_count: Count,
  realmauditlog_rows_sent_count: Count,
  realm_changes: Type.Array(RealmPushChange),
  unknown_realm_uuids: Type.Array(Type.String()),
  marked_push_disabled: Type.Array(Realm, { description: "organizations marked push-disabled after the service could not be reached" }),
  cache: Nullable(CacheReport),
  events: Nullable(EventsReport),
});
/** A request to the service and its answer (secrets hidden). */
export const ServiceExchange = Obj({
  method: Type.String(),
  path: Type.String(),
  sent: Type.Unknown(),
  status: Nullable(Type.Integer()),
  answer: Type.Unknown({ description: "what the service answered; null on a transport error" }),
  error: Nullable(Type.String()),
});
export const RegisterServerBody = Obj({
  ...DryRunField,
  action: Type.Union([Type.Literal("register"), Type.Literal("rotate_key"), Type.Literal("registration_transfer"), Type.Literal("deactivate")]),
  services_url: Type.String(),
  hostname: Nullable(Type.String()),
  contact_email: Nullable(Type.String()),
  agreed_to_terms_of_service: Nullable(Type.Boolean({ description: "null with --deactivate and --rotate-key (not asked)" })),
  created: Nullable(Type.Boolean({ description: "a new registration (null when not registered)" })),
  secrets_updated: Type.Array(Type.String(), { description: "the zulip-secrets.conf keys rewritten" }),
  server_data: Nullable(ServerData),
  restart_required: Type.Boolean(),
  requests: Type.Array(ServiceExchange),
});
export type RegisterServerBody = Static<typeof RegisterServerBody>;
export type ServerDataJson = Static<typeof ServerData>;
export type RealmPushChangeJson = Static<typeof RealmPushChange>;
export const bodies = [RegisterServerBody];
export const description = "This server's registration with the Mobile Push Notification Service.";
