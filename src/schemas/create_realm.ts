import { type Static, Type } from "@sinclair/typebox";
import { AuditLogIds, CacheReport, Count, EventsReport, Extend, Id, Nullable, Obj, Realm, ServiceReport, Timestamp, User } from "./shared.js";
import { ServerData } from "./register_server.js";

const Fields = {
  channels: Type.Array(Obj({ id: Id, name: Type.String() }), { description: "the default channels created" }),
  not_done: Type.Array(Type.String(), { description: "what Zulip does on creation that zulip-manage does not" }),
};
/** The organization created (a real one). */
export const CreateRealmBody = Obj(
  {
    dry_run: Type.Literal(false),
    realm: Realm,
    owner: Extend(User, { password: Type.Union([Type.Literal("set"), Type.Literal("unusable")]) }),
    ...Fields,
    scheduled_emails: Type.Array(Obj({ id: Id, template: Type.String(), scheduled_at: Timestamp }), { description: "the welcome emails scheduled" }),
    audit_log_ids: AuditLogIds,
    system_bot_realm_created: Nullable(
      Extend(Realm, { bots_count: Count }, "the system bot realm and its bots, created first on a database without any organization"),
    ),
    push_service: Nullable(
      ServiceReport(
        { server_data: Nullable(ServerData) },
        "the report to the push notification service, sent here when its queue jobs could not be queued; null when not sent",
      ),
    ),
    cache: CacheReport,
    events: EventsReport,
  },
  "the organization and its owner, created",
);
/**
 * A dry run: the organization does not exist yet, so `realm.id` and the channels' ids are null
 * and there is no owner, nothing scheduled and no service report.
 */
export const CreateRealmDryRunBody = Obj(
  {
    dry_run: Type.Literal(true),
    realm: Obj({ ...Realm.properties, id: Type.Null({ description: "null: not created in a dry run" }) }),
    owner: Type.Null(),
    channels: Type.Array(Obj({ id: Type.Null(), name: Type.String() })),
    not_done: Fields.not_done,
    scheduled_emails: Type.Array(Id, { maxItems: 0 }),
    audit_log_ids: Type.Array(Id, { maxItems: 0 }),
    system_bot_realm_created: Type.Null(),
    push_service: Type.Null(),
    cache: Type.Null(),
    events: Type.Null(),
  },
  "a dry run: what would be created",
);
export type CreateRealmBody = Static<typeof CreateRealmBody>;
export type CreateRealmDryRunBody = Static<typeof CreateRealmDryRunBody>;
export const bodies = [CreateRealmBody, CreateRealmDryRunBody];
export const description = "A new organization with its owner.";
