// Django's on_delete rules for Zulip's foreign keys, and a cascade engine that deletes rows the
// way Django's deletion Collector would.
//
// Zulip's foreign keys are created by Django without ON DELETE actions (DEFERRABLE INITIALLY
// DEFERRED, nothing else): when Zulip deletes a row, Django collects the rows that reference it
// and deletes them (CASCADE), clears the reference (SET_NULL), or refuses (PROTECT, RESTRICT).
// A tool writing PostgreSQL directly has to do the same, and the rules live in Zulip's Python
// models, not in the database. ON_DELETE_RULES below is THE reviewed table of those rules: one
// entry per (table, column) for every foreign key that references a table zulip-manage deletes
// rows from (zerver_userprofile and everything that can disappear with a user), each citing the
// model field it comes from (zulip/zulip: zerver/models/*.py, analytics/models.py, the
// django-otp / django-two-factor-auth / social-auth-app-django models). Many-to-many "through"
// tables that Django creates itself cascade from both sides.
//
// The engine never guesses: it reads the foreign keys from the catalog at run time, and if a
// table it is about to delete from is referenced by a (table, column) this table does not
// cover, it refuses (UncoveredReferenceError, naming table.column) before writing anything, so
// a newer Zulip (or a local addition) can never leave dangling rows behind.
//
// API:
//   ON_DELETE_RULES, GENERIC_RELATIONS, ruleFor(table, column)
//   catalogForeignKeys(q): Promise<CatalogForeignKey[]>   every single-column FK in the database
//   uncoveredReferences(fks, tables): CatalogForeignKey[] FKs into `tables` without a rule
//   cascadeClosure(fks, roots): string[]                  tables a deletion from `roots` can reach
//   assertCovered(fks, tables, what)                      throws UncoveredReferenceError
//   new CascadeDeletion(q, fks)                           one deletion, inside the caller's transaction:
//     .addRoots(table, selectSql, params)                 rows to delete (selectSql returns the ids)
//     .collect()                                          follow CASCADE rules to a fixpoint (temp tables, no writes)
//     .plan(): DeletionPlan                               rows per table, SET NULL counts, problems
//     .tempTable(table)                                   the temp table holding the ids to delete
//     .execute(): DeletionPlan                            SET NULL updates, then deletes (deepest first)
import type { Queryable } from "./db.js";
import { CommandError } from "../lib/errors.js";
import { quoteQualified } from "./sql.js";

export type OnDelete = "CASCADE" | "SET_NULL" | "PROTECT" | "RESTRICT" | "DO_NOTHING";

export interface OnDeleteRule {
  table: string;
  column: string;
  /** The referenced table. */
  references: string;
  onDelete: OnDelete;
  /** Where the rule comes from (model and field). */
  source: string;
}

const M2M = "auto-created ManyToManyField through table (Django deletes these rows with either side)";

function r(table: string, column: string, references: string, onDelete: OnDelete, source: string): OnDeleteRule {
  return { table, column, references, onDelete, source };
}

/**
 * The reviewed on_delete table. Sources are zulip/zulip models as of Zulip 10.x–12.x (the
 * rules below did not change across those releases); "(12.x)" / "(10.x, 11.x)" marks columns
 * that exist only in some of them.
 */
const ON_DELETE_RULES: readonly OnDeleteRule[] = [
  // ---- references to zerver_userprofile ----------------------------------------------------
  r("analytics_usercount", "user_id", "zerver_userprofile", "CASCADE", "analytics/models.py UserCount.user"),
  r("otp_static_staticdevice", "user_id", "zerver_userprofile", "CASCADE", "django_otp Device.user (StaticDevice)"),
  r("otp_totp_totpdevice", "user_id", "zerver_userprofile", "CASCADE", "django_otp Device.user (TOTPDevice)"),
  r("two_factor_phonedevice", "user_id", "zerver_userprofile", "CASCADE", "django_otp Device.user (two_factor PhoneDevice)"),
  r("social_auth_usersocialauth", "user_id", "zerver_userprofile", "CASCADE", "social_django AbstractUserSocialAuth.user"),
  r("zerver_alertword", "user_profile_id", "zerver_userprofile", "CASCADE", "zerver/models/alert_words.py AlertWord.user_profile"),
  r("zerver_archivedattachment", "owner_id", "zerver_userprofile", "CASCADE", "zerver/models/messages.py AbstractAttachment.owner (ArchivedAttachment)"),
  r("zerver_archivedmessage", "sender_id", "zerver_userprofile", "CASCADE", "zerver/models/messages.py AbstractMessage.sender (ArchivedMessage)"),
  r("zerver_archivedreaction", "user_profile_id", "zerver_userprofile", "CASCADE", "zerver/models/messages.py AbstractEmoji.user_profile (ArchivedReaction)"),
  r("zerver_archivedsubmessage", "sender_id", "zerver_userprofile", "CASCADE", "zerver/models/messages.py AbstractSubMessage.sender (ArchivedSubMessage)"),
  r(
    "zerver_archivedusermessage",
    "user_profile_id",
    "zerver_userprofile",
    "CASCADE",
    "zerver/models/messages.py AbstractUserMessage.user_profile (ArchivedUserMessage)",
  ),
  r("zerver_attachment", "owner_id", "zerver_userprofile", "CASCADE", "zerver/models/messages.py AbstractAttachment.owner (Attachment)"),
  r("zerver_botconfigdata", "bot_profile_id", "zerver_userprofile", "CASCADE", "zerver/models/bots.py BotConfigData.bot_profile"),
  r("zerver_botstoragedata", "bot_profile_id", "zerver_userprofile", "CASCADE", "zerver/models/bots.py BotStorageData.bot_profile"),
  r("zerver_channelemailaddress", "creator_id", "zerver_userprofile", "CASCADE", "zerver/models/streams.py ChannelEmailAddress.creator"),
  r("zerver_channelemailaddress", "sender_id", "zerver_userprofile", "CASCADE", "zerver/models/streams.py ChannelEmailAddress.sender"),
  r("zerver_channelfolder", "creator_id", "zerver_userprofile", "SET_NULL", "zerver/models/channel_folders.py ChannelFolder.creator"),
  r(
    "zerver_customprofilefieldvalue",
    "user_profile_id",
    "zerver_userprofile",
    "CASCADE",
    "zerver/models/custom_profile_fields.py CustomProfileFieldValue.user_profile",
  ),
  r("zerver_device", "user_id", "zerver_userprofile", "CASCADE", "zerver/models/devices.py Device.user (12.x)"),
  r("zerver_draft", "user_profile_id", "zerver_userprofile", "CASCADE", "zerver/models/drafts.py Draft.user_profile"),
  r("zerver_emailchangestatus", "user_profile_id", "zerver_userprofile", "CASCADE", "zerver/models/prereg_users.py EmailChangeStatus.user_profile"),
  r("zerver_externalauthid", "user_id", "zerver_userprofile", "CASCADE", "zerver/models/users.py ExternalAuthID.user"),
  r("zerver_message", "sender_id", "zerver_userprofile", "CASCADE", "zerver/models/messages.py AbstractMessage.sender (Message)"),
  r(
    "zerver_missedmessageemailaddress",
    "user_profile_id",
    "zerver_userprofile",
    "CASCADE",
    "zerver/models/scheduled_jobs.py MissedMessageEmailAddress.user_profile",
  ),
  r("zerver_multiuseinvite", "referred_by_id", "zerver_userprofile", "CASCADE", "zerver/models/prereg_users.py MultiuseInvite.referred_by"),
  r("zerver_muteduser", "user_profile_id", "zerver_userprofile", "CASCADE", "zerver/models/muted_users.py MutedUser.user_profile"),
  r("zerver_muteduser", "muted_user_id", "zerver_userprofile", "CASCADE", "zerver/models/muted_users.py MutedUser.muted_user"),
  r("zerver_namedusergroup", "creator_id", "zerver_userprofile", "SET_NULL", "zerver/models/groups.py NamedUserGroup.creator"),
  r("zerver_navigationview", "user_id", "zerver_userprofile", "CASCADE", "zerver/models/navigation_views.py NavigationView.user"),
  r("zerver_onboardingstep", "user_id", "zerver_userprofile", "CASCADE", "zerver/models/onboarding_steps.py OnboardingStep.user"),
  r("zerver_preregistrationrealm", "created_user_id", "zerver_userprofile", "SET_NULL", "zerver/models/prereg_users.py PreregistrationRealm.created_user"),
  r("zerver_preregistrationuser", "created_user_id", "zerver_userprofile", "SET_NULL", "zerver/models/prereg_users.py PreregistrationUser.created_user"),
  r("zerver_preregistrationuser", "referred_by_id", "zerver_userprofile", "CASCADE", "zerver/models/prereg_users.py PreregistrationUser.referred_by"),
  r("zerver_pushdevicetoken", "user_id", "zerver_userprofile", "CASCADE", "zerver/models/push_notifications.py PushDeviceToken.user"),
  r("zerver_reaction", "user_profile_id", "zerver_userprofile", "CASCADE", "zerver/models/messages.py AbstractEmoji.user_profile (Reaction)"),
  r("zerver_realmauditlog", "acting_user_id", "zerver_userprofile", "CASCADE", "zerver/models/realm_audit_logs.py RealmAuditLog.acting_user"),
  r("zerver_realmauditlog", "modified_user_id", "zerver_userprofile", "CASCADE", "zerver/models/realm_audit_logs.py RealmAuditLog.modified_user"),
  r("zerver_realmemoji", "author_id", "zerver_userprofile", "CASCADE", "zerver/models/realm_emoji.py RealmEmoji.author"),
  r("zerver_realmexport", "acting_user_id", "zerver_userprofile", "SET_NULL", "zerver/models/realms.py RealmExport.acting_user"),
  r("zerver_savedsnippet", "user_profile_id", "zerver_userprofile", "CASCADE", "zerver/models/saved_snippets.py SavedSnippet.user_profile"),
  r("zerver_scheduledemail_users", "userprofile_id", "zerver_userprofile", "CASCADE", `zerver/models/scheduled_jobs.py ScheduledEmail.users: ${M2M}`),
  r("zerver_scheduledmessage", "sender_id", "zerver_userprofile", "CASCADE", "zerver/models/scheduled_jobs.py ScheduledMessage.sender"),
  r(
    "zerver_scheduledmessagenotificationemail",
    "user_profile_id",
    "zerver_userprofile",
    "CASCADE",
    "zerver/models/scheduled_jobs.py ScheduledMessageNotificationEmail.user_profile",
  ),
  r("zerver_service", "user_profile_id", "zerver_userprofile", "CASCADE", "zerver/models/bots.py Service.user_profile"),
  r("zerver_stream", "creator_id", "zerver_userprofile", "SET_NULL", "zerver/models/streams.py Stream.creator"),
  r("zerver_submessage", "sender_id", "zerver_userprofile", "CASCADE", "zerver/models/messages.py AbstractSubMessage.sender (SubMessage)"),
  r("zerver_subscription", "user_profile_id", "zerver_userprofile", "CASCADE", "zerver/models/streams.py Subscription.user_profile"),
  r("zerver_useractivity", "user_profile_id", "zerver_userprofile", "CASCADE", "zerver/models/user_activity.py UserActivity.user_profile"),
  r("zerver_useractivityinterval", "user_profile_id", "zerver_userprofile", "CASCADE", "zerver/models/user_activity.py UserActivityInterval.user_profile"),
  r("zerver_usergroupmembership", "user_profile_id", "zerver_userprofile", "CASCADE", "zerver/models/groups.py UserGroupMembership.user_profile"),
  r("zerver_usermessage", "user_profile_id", "zerver_userprofile", "CASCADE", "zerver/models/messages.py AbstractUserMessage.user_profile (UserMessage)"),
  r("zerver_userpresence", "user_profile_id", "zerver_userprofile", "CASCADE", "zerver/models/presence.py UserPresence.user_profile"),
  r("zerver_userprofile", "bot_owner_id", "zerver_userprofile", "SET_NULL", "zerver/models/users.py UserProfile.bot_owner"),
  r("zerver_userprofile_groups", "userprofile_id", "zerver_userprofile", "CASCADE", `django.contrib.auth PermissionsMixin.groups: ${M2M}`),
  r("zerver_userprofile_user_permissions", "userprofile_id", "zerver_userprofile", "CASCADE", `django.contrib.auth PermissionsMixin.user_permissions: ${M2M}`),
  r("zerver_userstatus", "user_profile_id", "zerver_userprofile", "CASCADE", "zerver/models/presence.py UserStatus.user_profile"),
  r("zerver_usertopic", "user_profile_id", "zerver_userprofile", "CASCADE", "zerver/models/user_topics.py UserTopic.user_profile"),

  // ---- references to zerver_recipient (a user's personal recipient, Zulip 10.x/11.x) ----------
  r("zerver_archivedmessage", "recipient_id", "zerver_recipient", "CASCADE", "zerver/models/messages.py AbstractMessage.recipient (ArchivedMessage)"),
  r("zerver_draft", "recipient_id", "zerver_recipient", "SET_NULL", "zerver/models/drafts.py Draft.recipient"),
  r("zerver_huddle", "recipient_id", "zerver_recipient", "SET_NULL", "zerver/models/recipients.py DirectMessageGroup.recipient"),
  r("zerver_message", "recipient_id", "zerver_recipient", "CASCADE", "zerver/models/messages.py AbstractMessage.recipient (Message)"),
  r("zerver_scheduledmessage", "recipient_id", "zerver_recipient", "CASCADE", "zerver/models/scheduled_jobs.py ScheduledMessage.recipient"),
  r("zerver_stream", "recipient_id", "zerver_recipient", "SET_NULL", "zerver/models/streams.py Stream.recipient"),
  r("zerver_subscription", "recipient_id", "zerver_recipient", "CASCADE", "zerver/models/streams.py Subscription.recipient"),
  r("zerver_usertopic", "recipient_id", "zerver_recipient", "CASCADE", "zerver/models/user_topics.py UserTopic.recipient"),
  r("zerver_userprofile", "recipient_id", "zerver_recipient", "SET_NULL", "zerver/models/users.py UserProfile.recipient (10.x, 11.x)"),

  // ---- references to zerver_message --------------------------------------------------------
  r("zerver_attachment_messages", "message_id", "zerver_message", "CASCADE", `zerver/models/messages.py Attachment.messages: ${M2M}`),
  r("zerver_missedmessageemailaddress", "message_id", "zerver_message", "CASCADE", "zerver/models/scheduled_jobs.py MissedMessageEmailAddress.message"),
  r("zerver_onboardingusermessage", "message_id", "zerver_message", "CASCADE", "zerver/models/messages.py OnboardingUserMessage.message"),
  r("zerver_reaction", "message_id", "zerver_message", "CASCADE", "zerver/models/messages.py Reaction.message"),
  r("zerver_scheduledmessage", "delivered_message_id", "zerver_message", "CASCADE", "zerver/models/scheduled_jobs.py ScheduledMessage.delivered_message"),
  r(
    "zerver_scheduledmessagenotificationemail",
    "message_id",
    "zerver_message",
    "CASCADE",
    "zerver/models/scheduled_jobs.py ScheduledMessageNotificationEmail.message",
  ),
  r("zerver_submessage", "message_id", "zerver_message", "CASCADE", "zerver/models/messages.py SubMessage.message"),
  r("zerver_usermessage", "message_id", "zerver_message", "CASCADE", "zerver/models/messages.py UserMessage.message"),

  // ---- references to zerver_archivedmessage -----------------------------------------------
  r(
    "zerver_archivedmessage",
    "archive_transaction_id",
    "zerver_archivetransaction",
    "CASCADE",
    "zerver/models/messages.py ArchivedMessage.archive_transaction",
  ),
  r(
    "zerver_archivedattachment_messages",
    "archivedmessage_id",
    "zerver_archivedmessage",
    "CASCADE",
    `zerver/models/messages.py ArchivedAttachment.messages: ${M2M}`,
  ),
  r("zerver_archivedreaction", "message_id", "zerver_archivedmessage", "CASCADE", "zerver/models/messages.py ArchivedReaction.message"),
  r("zerver_archivedsubmessage", "message_id", "zerver_archivedmessage", "CASCADE", "zerver/models/messages.py ArchivedSubMessage.message"),
  r("zerver_archivedusermessage", "message_id", "zerver_archivedmessage", "CASCADE", "zerver/models/messages.py ArchivedUserMessage.message"),

  // ---- references to attachments and scheduled messages -----------------------------------
  r(
    "zerver_archivedattachment_messages",
    "archivedattachment_id",
    "zerver_archivedattachment",
    "CASCADE",
    `zerver/models/messages.py ArchivedAttachment.messages: ${M2M}`,
  ),
  r("zerver_attachment_messages", "attachment_id", "zerver_attachment", "CASCADE", `zerver/models/messages.py Attachment.messages: ${M2M}`),
  r("zerver_attachment_scheduled_messages", "attachment_id", "zerver_attachment", "CASCADE", `zerver/models/messages.py Attachment.scheduled_messages: ${M2M}`),
  r(
    "zerver_attachment_scheduled_messages",
    "scheduledmessage_id",
    "zerver_scheduledmessage",
    "CASCADE",
    `zerver/models/messages.py Attachment.scheduled_messages: ${M2M}`,
  ),

  // ---- custom profile fields (do_remove_realm_custom_profile_fields) ---------------------------
  r(
    "zerver_customprofilefieldvalue",
    "field_id",
    "zerver_customprofilefield",
    "CASCADE",
    "zerver/models/custom_profile_fields.py CustomProfileFieldValue.field",
  ),

  // ---- invitations -------------------------------------------------------------------------
  r("zerver_multiuseinvite_groups", "multiuseinvite_id", "zerver_multiuseinvite", "CASCADE", `zerver/models/prereg_users.py MultiuseInvite.groups: ${M2M}`),
  r("zerver_multiuseinvite_streams", "multiuseinvite_id", "zerver_multiuseinvite", "CASCADE", `zerver/models/prereg_users.py MultiuseInvite.streams: ${M2M}`),
  r(
    "zerver_preregistrationuser",
    "multiuse_invite_id",
    "zerver_multiuseinvite",
    "SET_NULL",
    "zerver/models/prereg_users.py PreregistrationUser.multiuse_invite",
  ),
  r(
    "zerver_preregistrationuser_groups",
    "preregistrationuser_id",
    "zerver_preregistrationuser",
    "CASCADE",
    `zerver/models/prereg_users.py PreregistrationUser.groups: ${M2M}`,
  ),
  r(
    "zerver_preregistrationuser_streams",
    "preregistrationuser_id",
    "zerver_preregistrationuser",
    "CASCADE",
    `zerver/models/prereg_users.py PreregistrationUser.streams: ${M2M}`,
  ),

  // ---- third-party 2FA -----------------------------------------------------------------------
  r("otp_static_statictoken", "device_id", "otp_static_staticdevice", "CASCADE", "django_otp.plugins.otp_static StaticToken.device"),
];

/**
 * GenericRelations: deleting a row of `table` makes Django delete the rows of `target` whose
 * (content_type, object_id) point at it.
 */
export interface GenericRelation {
  table: string;
  appLabel: string;
  model: string;
  target: string;
  contentTypeColumn: string;
  objectIdColumn: string;
  source: string;
}

export const GENERIC_RELATIONS: readonly GenericRelation[] = [
  {
    table: "zerver_preregistrationuser",
    appLabel: "zerver",
    model: "preregistrationuser",
    target: "confirmation_confirmation",
    contentTypeColumn: "content_type_id",
    objectIdColumn: "object_id",
    source: "zerver/models/prereg_users.py PreregistrationUser.confirmation = GenericRelation(Confirmation)",
  },
  {
    table: "zerver_preregistrationrealm",
    appLabel: "zerver",
    model: "preregistrationrealm",
    target: "confirmation_confirmation",
    contentTypeColumn: "content_type_id",
    objectIdColumn: "object_id",
    source: "zerver/models/prereg_users.py PreregistrationRealm.confirmation = GenericRelation(Confirmation)",
  },
];

const RULE_INDEX = new Map(ON_DELETE_RULES.map((x) => [`${x.table}.${x.column}`, x]));

export function ruleFor(table: string, column: string): OnDeleteRule | undefined {
  return RULE_INDEX.get(`${table}.${column}`);
}

// ---------------------------------------------------------------------------------------------
// The catalog

export interface CatalogForeignKey {
  constraint: string;
  /** Referencing table; schema-qualified ("schema.table") when not in the search path. */
  table: string;
  column: string;
  nullable: boolean;
  /** Referenced table (in the search path) and column. */
  references: string;
  refColumn: string;
  /** More than one column: never covered by the rule table. */
  multiColumn: boolean;
}

/** Every foreign key constraint whose referenced table is in the search path. */
export async function catalogForeignKeys(q: Queryable): Promise<CatalogForeignKey[]> {
  const { rows } = await q.query(
    `SELECT c.conname,
            CASE WHEN cn.nspname = ANY (current_schemas(false)) THEN cl.relname ELSE cn.nspname || '.' || cl.relname END AS tbl,
            pl.relname AS parent,
            array_length(c.conkey, 1) AS ncols,
            a.attname AS col, NOT a.attnotnull AS nullable,
            pa.attname AS refcol
       FROM pg_catalog.pg_constraint c
       JOIN pg_catalog.pg_class cl ON cl.oid = c.conrelid
       JOIN pg_catalog.pg_namespace cn ON cn.oid = cl.relnamespace
       JOIN pg_catalog.pg_class pl ON pl.oid = c.confrelid
       JOIN pg_catalog.pg_namespace pn ON pn.oid = pl.relnamespace
       JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
       JOIN pg_catalog.pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = c.confkey[1]
      WHERE c.contype = 'f' AND pn.nspname = ANY (current_schemas(false))
      ORDER BY 2, 5, 1`,
  );
  return rows.map((x) => ({
    constraint: x.conname,
    table: x.tbl,
    column: x.col,
    nullable: Boolean(x.nullable),
    references: x.parent,
    refColumn: x.refcol,
    multiColumn: Number(x.ncols) > 1,
  }));
}

export function referencesTo(fks: readonly CatalogForeignKey[], table: string): CatalogForeignKey[] {
  return fks.filter((f) => f.references === table);
}

/** The foreign keys into `tables` that the rule table does not cover. */
function uncoveredReferences(fks: readonly CatalogForeignKey[], tables: Iterable<string>): CatalogForeignKey[] {
  const wanted = new Set(tables);
  return fks.filter((f) => wanted.has(f.references) && (f.multiColumn || ruleFor(f.table, f.column)?.references !== f.references));
}

/** Tables a deletion starting at `roots` can delete from (following CASCADE and generic relations). */
export function cascadeClosure(fks: readonly CatalogForeignKey[], roots: Iterable<string>): string[] {
  const seen = new Set<string>(roots);
  const queue = [...seen];
  while (queue.length) {
    const t = queue.shift()!;
    const next: string[] = [];
    for (const f of referencesTo(fks, t)) {
      if (ruleFor(f.table, f.column)?.onDelete === "CASCADE" && !f.multiColumn) next.push(f.table);
    }
    for (const g of GENERIC_RELATIONS) if (g.table === t) next.push(g.target);
    for (const n of next) {
      if (!seen.has(n)) {
        seen.add(n);
        queue.push(n);
      }
    }
  }
  return [...seen];
}

class UncoveredReferenceError extends CommandError {
  constructor(
    readonly references: CatalogForeignKey[],
    what: string,
  ) {
    super(
      `Refusing to ${what}: this database has ${references.length === 1 ? "a foreign key" : "foreign keys"} that zulip-manage ` +
        `does not know how Zulip deletes (Django's on_delete rule is not in zulip-manage's table): ` +
        references.map((f) => `${f.table}.${f.column} -> ${f.references}.${f.refColumn} (${f.constraint})`).join(", ") +
        `. Deleting anyway could leave rows pointing at deleted ones. Nothing was changed. ` +
        `(A newer Zulip release or a local schema change added ${references.length === 1 ? "this reference" : "these references"}; ` +
        `upgrade zulip-manage, or use Zulip's own manage.py.)`,
    );
    this.name = "UncoveredReferenceError";
  }
}

/** Refuse (before any write) if a table the operation may delete from has an uncovered reference. */
export function assertCovered(fks: readonly CatalogForeignKey[], tables: Iterable<string>, what: string): void {
  const missing = uncoveredReferences(fks, tables);
  if (missing.length) throw new UncoveredReferenceError(missing, what);
}

// ---------------------------------------------------------------------------------------------
// The cascade engine

export interface DeletionPlan {
  /** Rows deleted (or to delete) per table, tables in deletion order. */
  deleted: Record<string, number>;
  /** Rows whose reference is cleared, per "table.column". */
  setNull: Record<string, number>;
}

interface Target {
  table: string;
  temp: string;
  pk: string;
  /** Deepest round in which rows were added (deletion order). */
  depth: number;
}

let tempCounter = 0;

/**
 * The primary keys of these tables (first column, its type, the number of columns), read in one
 * query and remembered per connection: a deletion asks for a table's key each time it meets a
 * new table.
 */
const primaryKeyCache = new WeakMap<Queryable, Map<string, { attname: string; type: string; n: number } | undefined>>();

async function primaryKeys(q: Queryable, tables: string[]): Promise<Map<string, { attname: string; type: string; n: number } | undefined>> {
  let known = primaryKeyCache.get(q);
  if (!known) primaryKeyCache.set(q, (known = new Map()));
  const missing = [...new Set(tables)].filter((t) => !known!.has(t));
  if (missing.length) {
    const { rows } = await q.query(
      `SELECT t.name, a.attname, format_type(a.atttypid, a.atttypmod) AS type, array_length(i.indkey, 1) AS n
         FROM unnest($1::text[]) AS t(name)
         JOIN pg_catalog.pg_index i ON i.indrelid = to_regclass(t.name) AND i.indisprimary
         JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]`,
      [missing],
    );
    for (const t of missing) known.set(t, undefined);
    for (const r of rows) known.set(r.name, { attname: r.attname, type: r.type, n: Number(r.n) });
  }
  return known;
}

/**
 * One Django-style deletion inside the caller's transaction. Temp tables hold the ids to delete
 * (dropped at the end of the transaction); nothing is written to Zulip's tables before
 * execute().
 */
export class CascadeDeletion {
  private targets = new Map<string, Target>();
  private readonly prefix = `zm_del${++tempCounter}_`;
  private collected = false;
  private setNullTargets: { fk: CatalogForeignKey; parent: string }[] = [];

  constructor(
    private readonly q: Queryable,
    private readonly fks: readonly CatalogForeignKey[],
    private readonly what = "delete these rows",
  ) {}

  private async primaryKey(table: string): Promise<string> {
    const pk = (await primaryKeys(this.q, [table, ...this.fks.map((fk) => fk.table)])).get(table);
    if (!pk || pk.n !== 1 || !["integer", "bigint", "smallint"].includes(pk.type)) {
      throw new CommandError(`Refusing to ${this.what}: ${table} has no single integer primary key, which zulip-manage's deletion needs. Nothing was changed.`);
    }
    return pk.attname;
  }

  private async target(table: string): Promise<Target> {
    let t = this.targets.get(table);
    if (!t) {
      const temp = `${this.prefix}${this.targets.size}`;
      const pk = await this.primaryKey(table);
      await this.q.query(`CREATE TEMP TABLE ${temp} (id bigint PRIMARY KEY, round int NOT NULL) ON COMMIT DROP`);
      t = { table, temp, pk, depth: 0 };
      this.targets.set(table, t);
    }
    return t;
  }

  /** The temp table with the ids of `table` to delete (after addRoots/collect), or null. */
  tempTable(table: string): string | null {
    return this.targets.get(table)?.temp ?? null;
  }

  /** Add rows of `table` to delete: `selectSql` returns one column of ids. Returns how many were new. */
  async addRoots(table: string, selectSql: string, params: unknown[] = []): Promise<number> {
    const t = await this.target(table);
    this.collected = false;
    const res = await this.q.query(
      `INSERT INTO ${t.temp} (id, round) SELECT x, 0 FROM (${selectSql}) AS s(x) WHERE x IS NOT NULL ON CONFLICT DO NOTHING`,
      params,
    );
    return res.rowCount ?? 0;
  }

  /** Follow the CASCADE rules (and generic relations) to a fixpoint. Refuses on unknown references. */
  async collect(): Promise<void> {
    assertCovered(this.fks, cascadeClosure(this.fks, this.targets.keys()), this.what);
    // Rows added in round r are expanded in round r + 1; roots (and later additions) are round 0.
    let round = 0;
    for (;;) {
      if (this.targets.size === 0) break; // nothing to delete (and no empty ANALYZE, which would analyze everything)
      let added = 0;
      // Which of the targets have rows of this round (one query for all of them); rows added
      // while this round is expanded belong to the next one.
      const targets = [...this.targets.values()];
      const { rows: withRound } = await this.q.query(
        targets.map((t, i) => `SELECT ${i} AS i WHERE EXISTS (SELECT 1 FROM ${t.temp} WHERE round = $1)`).join(" UNION ALL "),
        [round],
      );
      const due = new Set(withRound.map((r) => Number(r.i)));
      for (const [i, t] of targets.entries()) {
        if (!due.has(i)) continue;
        for (const fk of referencesTo(this.fks, t.table)) {
          const rule = ruleFor(fk.table, fk.column)!;
          if (rule.onDelete !== "CASCADE") continue;
          const child = await this.target(fk.table);
          const parentValues =
            fk.refColumn === t.pk
              ? `SELECT d.id FROM ${t.temp} d WHERE d.round = $1`
              : `SELECT p.${quoteQualified(fk.refColumn)} FROM ${quoteQualified(t.table)} p JOIN ${t.temp} d ON p.${quoteQualified(t.pk)} = d.id WHERE d.round = $1`;
          const res = await this.q.query(
            `INSERT INTO ${child.temp} (id, round)
             SELECT c.${quoteQualified(child.pk)}, $2 FROM ${quoteQualified(fk.table)} c WHERE c.${quoteQualified(fk.column)} IN (${parentValues})
             ON CONFLICT DO NOTHING`,
            [round, round + 1],
          );
          if (res.rowCount) {
            added += res.rowCount;
            child.depth = Math.max(child.depth, round + 1);
          }
        }
        for (const g of GENERIC_RELATIONS) {
          if (g.table !== t.table) continue;
          const child = await this.target(g.target);
          const res = await this.q.query(
            `INSERT INTO ${child.temp} (id, round)
             SELECT c.${quoteQualified(child.pk)}, $2 FROM ${quoteQualified(g.target)} c
               JOIN django_content_type ct ON ct.id = c.${quoteQualified(g.contentTypeColumn)}
              WHERE ct.app_label = $3 AND ct.model = $4
                AND c.${quoteQualified(g.objectIdColumn)} IN (SELECT d.id FROM ${t.temp} d WHERE d.round = $1)
             ON CONFLICT DO NOTHING`,
            [round, round + 1, g.appLabel, g.model],
          );
          if (res.rowCount) {
            added += res.rowCount;
            child.depth = Math.max(child.depth, round + 1);
          }
        }
      }
      await this.q.query(`ANALYZE ${[...this.targets.values()].map((t) => t.temp).join(", ")}`);
      round++;
      if (added === 0) {
        // Later addRoots calls start again at round 0: renumber so they are expanded too (one
        // round trip: statements without parameters go together).
        await this.q.query([...this.targets.values()].map((t) => `UPDATE ${t.temp} SET round = -1 WHERE round >= 0`).join("; "));
        break;
      }
    }
    await this.checkRestrictions();
    this.collected = true;
  }

  /** PROTECT / RESTRICT / DO_NOTHING references to collected rows, and SET_NULL targets. */
  private async checkRestrictions(): Promise<void> {
    this.setNullTargets = [];
    const problems: string[] = [];
    for (const t of this.targets.values()) {
      for (const fk of referencesTo(this.fks, t.table)) {
        const rule = ruleFor(fk.table, fk.column)!;
        if (rule.onDelete === "CASCADE") continue;
        const child = this.targets.get(fk.table);
        const parentValues =
          fk.refColumn === t.pk
            ? `SELECT d.id FROM ${t.temp} d`
            : `SELECT p.${quoteQualified(fk.refColumn)} FROM ${quoteQualified(t.table)} p JOIN ${t.temp} d ON p.${quoteQualified(t.pk)} = d.id`;
        if (rule.onDelete === "SET_NULL") {
          if (!fk.nullable) {
            problems.push(`${fk.table}.${fk.column} is NOT NULL but Django's rule is SET_NULL`);
            continue;
          }
          this.setNullTargets.push({ fk, parent: t.table });
          continue;
        }
        // PROTECT refuses whenever a referencing row exists; RESTRICT and DO_NOTHING are fine
        // when the referencing row is deleted in the same operation.
        const exempt = rule.onDelete !== "PROTECT" && child ? ` AND c.${quoteQualified(child.pk)} NOT IN (SELECT id FROM ${child.temp})` : "";
        const { rows } = await this.q.query(
          `SELECT count(*)::int AS n FROM ${quoteQualified(fk.table)} c WHERE c.${quoteQualified(fk.column)} IN (${parentValues})${exempt}`,
        );
        if (Number(rows[0].n) > 0) {
          problems.push(`${rows[0].n} row(s) of ${fk.table} reference them through ${fk.column} (on_delete=${rule.onDelete}: ${rule.source})`);
        }
      }
    }
    if (problems.length) {
      throw new CommandError(`Refusing to ${this.what}, as Zulip would: ${problems.join("; ")}. Nothing was changed.`);
    }
  }

  private async setNullCounts(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const { fk, parent } of this.setNullTargets) {
      const res = await this.q.query(`SELECT count(*)::int AS n FROM ${quoteQualified(fk.table)} c WHERE ${this.setNullWhere(fk, parent)}`);
      const n = Number(res.rows[0].n);
      if (n) out[`${fk.table}.${fk.column}`] = (out[`${fk.table}.${fk.column}`] ?? 0) + n;
    }
    return out;
  }

  private setNullWhere(fk: CatalogForeignKey, parent: string): string {
    const t = this.targets.get(parent)!;
    const parentValues =
      fk.refColumn === t.pk
        ? `SELECT d.id FROM ${t.temp} d`
        : `SELECT p.${quoteQualified(fk.refColumn)} FROM ${quoteQualified(t.table)} p JOIN ${t.temp} d ON p.${quoteQualified(t.pk)} = d.id`;
    const child = this.targets.get(fk.table);
    const notDeleted = child ? ` AND c.${quoteQualified(child.pk)} NOT IN (SELECT id FROM ${child.temp})` : "";
    return `c.${quoteQualified(fk.column)} IN (${parentValues})${notDeleted}`;
  }

  private ordered(): Target[] {
    // Deepest first (children before parents); ties by name for determinism.
    return [...this.targets.values()].sort((a, b) => b.depth - a.depth || a.table.localeCompare(b.table));
  }

  /** What execute() would do, from the collected state. */
  async plan(): Promise<DeletionPlan> {
    if (!this.collected) await this.collect();
    const deleted: Record<string, number> = {};
    for (const t of this.ordered()) {
      const { rows } = await this.q.query(`SELECT count(*)::int AS n FROM ${t.temp}`);
      if (Number(rows[0].n)) deleted[t.table] = Number(rows[0].n);
    }
    return { deleted, setNull: await this.setNullCounts() };
  }

  /** Clear SET_NULL references, then delete every collected row (children first). */
  async execute(): Promise<DeletionPlan> {
    if (!this.collected) await this.collect();
    const setNull: Record<string, number> = {};
    for (const { fk, parent } of this.setNullTargets) {
      const res = await this.q.query(`UPDATE ${quoteQualified(fk.table)} c SET ${quoteQualified(fk.column)} = NULL WHERE ${this.setNullWhere(fk, parent)}`);
      if (res.rowCount) setNull[`${fk.table}.${fk.column}`] = (setNull[`${fk.table}.${fk.column}`] ?? 0) + res.rowCount;
    }
    const deleted: Record<string, number> = {};
    for (const t of this.ordered()) {
      const res = await this.q.query(`DELETE FROM ${quoteQualified(t.table)} WHERE ${quoteQualified(t.pk)} IN (SELECT id FROM ${t.temp})`);
      if (res.rowCount) deleted[t.table] = res.rowCount;
    }
    return { deleted, setNull };
  }

  /** Drop the temp tables now (they are dropped at the end of the transaction anyway). */
  async dispose(): Promise<void> {
    if (this.targets.size) await this.q.query(`DROP TABLE IF EXISTS ${[...this.targets.values()].map((t) => t.temp).join(", ")}`);
    this.targets.clear();
  }
}

/** Merge deletion plans (sums). */
export function mergePlans(...plans: DeletionPlan[]): DeletionPlan {
  const out: DeletionPlan = { deleted: {}, setNull: {} };
  for (const p of plans) {
    for (const [k, v] of Object.entries(p.deleted)) out.deleted[k] = (out.deleted[k] ?? 0) + v;
    for (const [k, v] of Object.entries(p.setNull)) out.setNull[k] = (out.setNull[k] ?? 0) + v;
  }
  return out;
}
