import { type Static, Type } from "@sinclair/typebox";
import { CacheReport, Count, DryRunField, Id, Obj, Realm } from "./shared.js";

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
    realms: Type.Array(Obj({ realm: Realm, channel_messages_count: Count, direct_messages_count: Count, attachments_deleted_count: Count })),
  }),
  realms_due_for_scrubbing: Type.Array(Obj({ realm: Realm, reason: Type.String() }), {
    description: "organizations Zulip's cron job would scrub; zulip-manage does not (exit 1, error_code refused, when any)",
  }),
  cache: CacheReport,
});
export type ArchiveMessagesBody = Static<typeof ArchiveMessagesBody>;
export const bodies = [ArchiveMessagesBody];
export const description = "The message retention cron job: old archives vacuumed, messages past retention archived.";
