// create_stream_if_needed (zerver/lib/streams.py) in the caller's transaction: the Stream row
// with the model's defaults of every release (is_in_zephyr_realm = false before 0752), its
// Recipient, the permission group settings' defaults (the "channel creator" one an anonymous
// group holding the creator), the CHANNEL_CREATED row, and bulk_add_subscriptions for the
// subscribers asked for. The events and the ensure_stream wrapper are subscriptions.ts.
import { pyStrip } from "../../lib/pyformat.js";
import { AuditLogEventType, insertAuditLogRow } from "../audit.js";
import type { Queryable } from "../../db/db.js";
import { getSystemGroups, type SystemGroupName, SystemGroups } from "../groups.js";
import { realmIdOf, type RealmIdOrRef } from "../lookup.js";
import { renderPlainMarkdown } from "../plain-markdown.js";
import { RecipientType, TopicsPolicy } from "../models.js";
import { insertRow, type Row } from "../rows.js";
import { tableColumns } from "../../db/db.js";
import { bulkAddSubscriptions } from "./bulk-add-subscriptions.js";

/** Stream.stream_permission_group_settings defaults; null = "channel creator" (anonymous group). */
export const STREAM_GROUP_SETTING_DEFAULTS: Record<string, SystemGroupName | null> = {
  can_add_subscribers_group_id: SystemGroups.NOBODY,
  can_administer_channel_group_id: null,
  can_create_topic_group_id: SystemGroups.EVERYONE,
  can_delete_any_message_group_id: SystemGroups.NOBODY,
  can_delete_own_message_group_id: SystemGroups.NOBODY,
  can_move_messages_out_of_channel_group_id: SystemGroups.NOBODY,
  can_move_messages_within_channel_group_id: SystemGroups.NOBODY,
  can_remove_subscribers_group_id: SystemGroups.ADMINISTRATORS,
  can_resolve_topics_group_id: SystemGroups.NOBODY,
  can_send_message_group_id: SystemGroups.EVERYONE,
  can_subscribe_group_id: SystemGroups.NOBODY,
};

export interface CreatedChannel {
  id: number;
  name: string;
  recipientId: number;
  realmId: number;
}

export interface CreateChannelOptions {
  name: string;
  description?: string;
  /** Rendered HTML of the description; default: escaped text in a paragraph. */
  renderedDescription?: string;
  inviteOnly?: boolean;
  /** Default: true for public channels, false (protected history) for private ones. */
  historyPublicToSubscribers?: boolean;
  isWebPublic?: boolean;
  messageRetentionDays?: number | null;
  /** The creating user: acting user of the audit row and member of the "channel creator" group. */
  creatorId?: number | null;
  /** Users to subscribe (bulk_add_subscriptions, acting user = creator). */
  subscribers?: number[];
  dateCreated?: Date;
  /** Raw zerver_stream column overrides. */
  columns?: Record<string, unknown>;
}

/** The Stream model's values of every release (group settings are added by createChannel). */
export function channelRowValues(c: {
  name: string;
  when: Date;
  description: string;
  renderedDescription: string;
  inviteOnly: boolean;
  historyPublic: boolean;
  isWebPublic: boolean;
  messageRetentionDays: number | null;
  creatorId: number | null;
  realmId: number;
}): Row {
  return {
    name: c.name,
    date_created: c.when,
    deactivated: false,
    description: c.description,
    rendered_description: c.renderedDescription,
    invite_only: c.inviteOnly,
    history_public_to_subscribers: c.historyPublic,
    is_web_public: c.isWebPublic,
    message_retention_days: c.messageRetentionDays,
    first_message_id: null,
    creator_id: c.creatorId,
    realm_id: c.realmId,
    recipient_id: null,
    is_recently_active: true,
    subscriber_count: 0, // since 11.0 (0704)
    folder_id: null, // since 11.0 (0708)
    topics_policy: TopicsPolicy.INHERIT, // since 11.0 (0717)
    is_in_zephyr_realm: false, // before 0752 (Zulip 10, 11)
  };
}

/** create_stream_if_needed (+ bulk_add_subscriptions for `subscribers`). Caller's transaction. */
export async function createChannel(db: Queryable, realm: RealmIdOrRef, opts: CreateChannelOptions): Promise<CreatedChannel> {
  const realmId = realmIdOf(realm);
  const groups = await getSystemGroups(db, realmId);
  const when = opts.dateCreated ?? new Date();
  const name = pyStrip(opts.name);
  const clash = await db.query(`SELECT id FROM zerver_stream WHERE realm_id = $1 AND upper(name) = upper($2)`, [realmId, name]);
  if (clash.rows.length) throw new Error(`Channel '${name}' already exists in realm ${realmId}`);
  const inviteOnly = opts.inviteOnly ?? false;
  const historyPublic = inviteOnly ? (opts.historyPublicToSubscribers ?? false) : true;
  const creatorId = opts.creatorId ?? null;

  const values = channelRowValues({
    name,
    when,
    description: opts.description ?? "",
    renderedDescription: opts.renderedDescription ?? renderPlainMarkdown(opts.description ?? ""),
    inviteOnly,
    historyPublic,
    isWebPublic: opts.isWebPublic ?? false,
    messageRetentionDays: opts.messageRetentionDays ?? null,
    creatorId,
    realmId,
  });
  const streamCols = await tableColumns(db, "zerver_stream");
  for (const [col, groupName] of Object.entries(STREAM_GROUP_SETTING_DEFAULTS)) {
    if (!streamCols.has(col)) continue; // a setting this release does not have yet
    if (groupName) {
      values[col] = groups[groupName];
    } else if (creatorId !== null) {
      // "channel creator": an anonymous group (no NamedUserGroup row) with the creator as member.
      const creatorRealm = await db.query(`SELECT realm_id FROM zerver_userprofile WHERE id = $1`, [creatorId]);
      const g = await db.query(`INSERT INTO zerver_usergroup (realm_id) VALUES ($1) RETURNING id`, [Number(creatorRealm.rows[0]?.realm_id ?? realmId)]);
      const gid = Number(g.rows[0].id);
      await db.query(`INSERT INTO zerver_usergroupmembership (user_group_id, user_profile_id) VALUES ($1, $2)`, [gid, creatorId]);
      values[col] = gid;
    } else {
      values[col] = groups[SystemGroups.NOBODY];
    }
  }
  Object.assign(values, opts.columns ?? {});
  const streamId = Number((await insertRow(db, "zerver_stream", values)).id);
  const rec = await db.query(`INSERT INTO zerver_recipient (type_id, type) VALUES ($1, $2) RETURNING id`, [streamId, RecipientType.STREAM]);
  const recipientId = Number(rec.rows[0].id);
  await db.query(`UPDATE zerver_stream SET recipient_id = $2 WHERE id = $1`, [streamId, recipientId]);
  await insertAuditLogRow(db, {
    realmId,
    eventType: AuditLogEventType.CHANNEL_CREATED,
    eventTime: when,
    actingUserId: creatorId,
    modifiedStreamId: streamId,
  });
  if (opts.subscribers?.length) {
    await bulkAddSubscriptions(db, realmId, [streamId], opts.subscribers, { when, actingUserId: creatorId });
  }
  return { id: streamId, name, recipientId, realmId };
}
