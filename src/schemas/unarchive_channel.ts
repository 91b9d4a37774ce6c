import { type Static, Type } from "@sinclair/typebox";
import { AuditLogIds, CacheReport, Change, Count, DryRunField, EventsReport, Id, Nullable, Obj, Realm, Timestamp } from "./shared.js";

export const UnarchiveChannelBody = Obj({
  ...DryRunField,
  realm: Realm,
  channel: Nullable(Obj({ id: Id, name: Change(Type.String()), invite_only: Type.Boolean() }, "the channel (null when several matched: see matches)")),
  matches: Type.Array(Obj({ id: Id, name: Type.String(), deactivated_at: Nullable(Timestamp) }), {
    description: "the candidates when a name matched several archived channels (the command then refuses)",
  }),
  audit_log_ids: AuditLogIds,
  web_public_cleared: Type.Boolean({ description: "the channel was web-public and no longer may be (Zulip's rule for unarchiving)" }),
  attachments_reset_count: Count,
  archived_attachments_reset_count: Count,
  channel_email_addresses_reactivated_count: Count,
  notice: Nullable(Obj({ message_id: Id, topic: Type.String(), recipients_count: Count }, "Notification Bot's message in the channel; null when not written")),
  notes: Type.Array(Type.String(), { description: "e.g. why no notice was written" }),
  cache: Nullable(CacheReport),
  events: Nullable(EventsReport),
});
export type UnarchiveChannelBody = Static<typeof UnarchiveChannelBody>;
export const bodies = [UnarchiveChannelBody];
export const description = "An archived channel unarchived.";
