import { type Static, Type } from "@sinclair/typebox";
import { AuditLogIds, CacheReport, Count, DryRunField, EventsReport, Id, Nullable, Obj, OutcomeFields, Realm } from "./shared.js";

export const ArchiveMessagesBody = Obj({
  ...DryRunField,
  clean_archived_data: Obj({
    vacuuming_delay_days: Type.Integer({ description: "ARCHIVED_DATA_VACUUMING_DELAY_DAYS" }),
    transactions_deleted_count: Count,
    archived_messages_deleted_count: Count,
  }),
  archived: Obj({
    transaction_ids: Type.Array(Id, { description: "the zerver_archivetransaction rows written" }),
    channel_messages_count: Count,
    direct_messages_count: Count,
    user_messages_count: Count,
    reactions_count: Count,
    submessages_count: Count,
    archived_attachments_count: Count,
    attachments_deleted_count: Count,
    first_message_id_updates_count: Type.Integer({
      minimum: 0,
      description: "Zulip 12.x: channels whose first_message_id moved on because their first message was archived (0 on 10.x/11.x and in a dry run)",
    }),
    realms: Type.Array(Obj({ realm: Realm, channel_messages_count: Count, direct_messages_count: Count, attachments_deleted_count: Count })),
  }),
  realms_scrubbed: Type.Array(
    Obj({
      realm: Realm,
      users_count: Count,
      messages_archived_count: Count,
      archive_transaction_ids: Type.Array(Id, { description: "the MANUAL zerver_archivetransaction rows written (empty in a dry run)" }),
      attachments_deleted_count: Count,
      archived_attachments_deleted_count: Count,
      custom_profile_fields_deleted_count: Count,
      files_deleted_count: Nullable(Type.Integer({ minimum: 0, description: "uploaded files removed from LOCAL_UPLOADS_DIR/files (null in a dry run)" })),
      avatar_files_deleted_count: Nullable(
        Type.Integer({ minimum: 0, description: "avatar image files removed from LOCAL_UPLOADS_DIR/avatars (null in a dry run)" }),
      ),
      audit_log_ids: AuditLogIds,
    }),
    { description: "deactivated organizations past their scheduled deletion date, scrubbed as Zulip's do_scrub_realm does (in a dry run: what would be)" },
  ),
  realms_due_for_scrubbing: Type.Array(
    Obj({
      realm: Realm,
      reason: Type.String(),
      zulip_fails: Type.Boolean({
        description: "true: Zulip's own do_scrub_realm fails here too, and its job stops (so does this one); false: zulip-manage refuses",
      }),
    }),
    { description: "organizations due for scrubbing that were not scrubbed, and why (exit 1, error_code refused, when any)" },
  ),
  demo_organizations_deactivated: Type.Array(
    Obj({
      realm: Realm,
      audit_log_ids: AuditLogIds,
      scheduled_emails_deleted_count: Count,
      sessions_deleted_count: Count,
      results: Type.Array(Obj({ to: Type.String(), user_id: Id, ...OutcomeFields }), { description: "the owners' emails" }),
    }),
    { description: "expired demo organizations deactivated as Zulip's job does (queued for scrubbing)" },
  ),
  cache: Nullable(CacheReport),
  events: Nullable(EventsReport),
});
export type ArchiveMessagesBody = Static<typeof ArchiveMessagesBody>;
export const bodies = [ArchiveMessagesBody];
export const description =
  "The message retention cron job: old archives vacuumed, messages past retention archived, deactivated organizations past their deletion date scrubbed, expired demo organizations deactivated.";
