// do_create_realm (zerver/actions/create_realm.py) and create_internal_realm's realm: the realm
// row with all its settings, its REALM_CREATED row, RealmUserDefault, the eight system groups with
// their subgroup chain and audit rows, the permission-group settings, RealmAuthenticationMethod
// rows, PresenceSequence, and the three default channels with their DefaultStream rows; and the
// events do_create_realm sends.
//
// RELEASES: the rows are those of the Zulip release the database belongs to (10.x, 11.x, 12.x).
// What differs in shape is decided from the catalog (rows.ts): columns a release lacks are left
// out, columns only older releases have get that release's Python default
// (zerver_realm.giphy_rating = "g" (2) before 0773 renamed it and 0763 renumbered the ratings;
// mandatory_topics = false before 0713). Two behaviours leave no trace in the schema and follow
// the release (django_migrations, see databaseSeries): before 12.0 do_create_realm pointed
// new_stream_announcements_stream and zulip_update_announcements_stream at #general, and
// get_latest_zulip_update_announcements_level() is the release's own (15 in 10.x, 21 in 11.x,
// 27 in 12.2).
//
// TRANSACTIONS: createRealm does not BEGIN or COMMIT. The caller runs it inside one transaction
// it controls (e.g. `db.tx(q => createRealm(q, …))`). That is required, not optional: a realm and
// its system groups reference each other, so the realm row is written with placeholder group ids
// that are only fixed up later in the same transaction (all of Zulip's foreign keys are
// DEFERRABLE INITIALLY DEFERRED, so this is checked at COMMIT).
//
// What is deliberately NOT reproduced (onboarding content, not state other code depends on):
// Welcome Bot's onboarding messages in the new channels.
import { AuditLogEventType, auditLogIdsOfRealm, auditLogRow, insertAuditLogRow } from "../audit.js";
import type { Db, Queryable } from "../../db/db.js";
import { CommandError } from "../../lib/errors.js";
import type { ZulipSettings } from "../../config/settings.js";
import { readAvatarSettings, writeJdenticonAvatar } from "../avatar.js";
import type { CacheInvalidation } from "../cache.js";
import type { EventDelivery } from "../../services/events.js";
import { sendUserCreationEvents } from "../events/user-creation-events.js";
import { ROLES } from "../roles.js";
import type { UserProfile } from "../lookup.js";
import { defaultChannelIds } from "../realms.js";
import type { SubdomainSettings } from "../subdomain.js";
import { createUser, type CreatedUser } from "./create-user.js";
import { type NewHumanUserSteps, processNewHumanUserRows, type NewUserUrls } from "./onboarding.js";
import { createSystemBots } from "./server-initialization.js";
import { quoteIdent } from "../../db/sql.js";
import { cryptoRandom, type RandomSource } from "../../lib/random.js";
import { getOrCreateClient } from "../clients.js";
import { NAMED_GROUP_SETTING_COLUMNS, SYSTEM_GROUPS, type SystemGroupIds, type SystemGroupName, SystemGroups } from "../groups.js";
import { renderPlainMarkdown } from "../plain-markdown.js";
import { EmailAddressVisibility, OrgType, PlanType, SYSTEM_BOT_REALM, SYSTEM_BOT_REALM_NAME, TopicsPolicy, TOS_VERSION_BEFORE_FIRST_LOGIN } from "../models.js";
import { CreationSchemaError, databaseSeries, insertRow, insertRows, type Row } from "../rows.js";
import { tableColumns } from "../../db/db.js";
import { REALM_USER_DEFAULT_OVERRIDES, USER_SETTING_DEFAULTS } from "../user-settings.js";
import { sendStreamCreationEvent } from "../events/channel-events.js";
import type { Notify } from "../../services/events.js";
import { activeNonGuestUserIds } from "../audiences.js";
import { createChannel, type CreatedChannel } from "./create-channel.js";

/** get_latest_zulip_update_announcements_level() of Zulip 12.2 (new realms start there). */
const ZULIP_UPDATE_ANNOUNCEMENTS_LEVEL = 27;

/**
 * get_latest_zulip_update_announcements_level() per release series: the level of the release's
 * own "Zulip Server X.0" announcement (zerver/lib/zulip_update_announcements.py: level 15
 * announces 10.0, level 21 announces 11.0; 12.2 ships 27). New realms start at their server's level.
 */
const ZULIP_UPDATE_ANNOUNCEMENTS_LEVELS: Readonly<Record<string, number>> = {
  "10.x": 15,
  "11.x": 21,
  "12.x": ZULIP_UPDATE_ANNOUNCEMENTS_LEVEL,
};

/** Realm.GIPHY_RATING_OPTIONS["g"]["id"] before 0763/0773 (the default of zerver_realm.giphy_rating). */
const LEGACY_GIPHY_RATING_G = 2;

/** Realm.REALM_PERMISSION_GROUP_SETTINGS defaults (column → system group). */
export const REALM_GROUP_SETTING_DEFAULTS: Record<string, SystemGroupName> = {
  can_access_all_users_group_id: SystemGroups.EVERYONE,
  can_add_custom_emoji_group_id: SystemGroups.MEMBERS,
  can_add_subscribers_group_id: SystemGroups.MEMBERS,
  can_create_bots_group_id: SystemGroups.MEMBERS,
  can_create_groups_id: SystemGroups.MEMBERS,
  can_create_private_channel_group_id: SystemGroups.MEMBERS,
  can_create_public_channel_group_id: SystemGroups.MEMBERS,
  can_create_web_public_channel_group_id: SystemGroups.OWNERS,
  can_create_write_only_bots_group_id: SystemGroups.MEMBERS,
  can_delete_any_message_group_id: SystemGroups.ADMINISTRATORS,
  can_delete_own_message_group_id: SystemGroups.EVERYONE,
  can_invite_users_group_id: SystemGroups.MEMBERS,
  can_manage_all_groups_id: SystemGroups.OWNERS,
  can_manage_billing_group_id: SystemGroups.ADMINISTRATORS,
  can_mention_many_users_group_id: SystemGroups.ADMINISTRATORS,
  can_move_messages_between_channels_group_id: SystemGroups.MEMBERS,
  can_move_messages_between_topics_group_id: SystemGroups.EVERYONE,
  can_resolve_topics_group_id: SystemGroups.EVERYONE,
  can_set_delete_message_policy_group_id: SystemGroups.MODERATORS,
  can_set_topics_policy_group_id: SystemGroups.MEMBERS,
  can_summarize_topics_group_id: SystemGroups.EVERYONE,
  create_multiuse_invite_group_id: SystemGroups.ADMINISTRATORS,
  direct_message_initiator_group_id: SystemGroups.EVERYONE,
  direct_message_permission_group_id: SystemGroups.EVERYONE,
  workplace_users_group_id: SystemGroups.EVERYONE,
};

/** do_create_realm's group_settings_defaults_for_org_types (education orgs are stricter). */
const EDUCATION_GROUP_SETTING_OVERRIDES: Record<string, SystemGroupName> = {
  can_add_subscribers_group_id: SystemGroups.MODERATORS,
  can_create_public_channel_group_id: SystemGroups.ADMINISTRATORS,
  can_create_groups_id: SystemGroups.MODERATORS,
  can_invite_users_group_id: SystemGroups.ADMINISTRATORS,
  can_move_messages_between_channels_group_id: SystemGroups.MODERATORS,
};

/** all_default_backend_names(): one RealmAuthenticationMethod row per backend, as a fresh server writes. */
const DEFAULT_AUTH_BACKEND_NAMES = [
  "Dev",
  "Email",
  "LDAP",
  "RemoteUser",
  "GitHub",
  "AzureAD",
  "Discord",
  "GitLab",
  "Google",
  "Apple",
  "SAML",
  "OpenID Connect",
];

/** Clients create_internal_realm() makes so they get low ids. */
const INTERNAL_REALM_CLIENTS = ["Internal", "website", "ZulipMobile", "ZulipElectron"];

// The three channels do_create_realm creates, with their rendered descriptions.
const DEFAULT_REALM_CHANNELS = [
  {
    name: "Zulip",
    description: "Questions and discussion about using Zulip.",
    rendered: "<p>Questions and discussion about using Zulip.</p>",
  },
  {
    name: "sandbox",
    description: "Experiment with Zulip here. :test_tube:",
    rendered: '<p>Experiment with Zulip here. <span aria-label="test tube" class="emoji emoji-1f9ea" role="img" title="test tube">:test_tube:</span></p>',
  },
  {
    name: "general",
    description: "For team-wide conversations",
    rendered: "<p>For team-wide conversations</p>",
  },
];

/** The names of the channels do_create_realm creates, in its order (for a dry run). */
export function defaultRealmChannelNames(): string[] {
  return DEFAULT_REALM_CHANNELS.map((c) => c.name);
}

export interface CreateRealmOptions {
  stringId: string;
  /** Default: "System bot realm" for zulipinternal; required otherwise. */
  name?: string;
  description?: string;
  orgType?: number;
  planType?: number;
  dateCreated?: Date;
  /** RealmUserDefault.email_address_visibility; default per org type as do_create_realm picks it. */
  emailAddressVisibility?: number;
  waitingPeriodThreshold?: number;
  inviteRequired?: boolean;
  emailsRestrictedToDomains?: boolean;
  defaultLanguage?: string;
  enableReadReceipts?: boolean;
  enableSpectatorAccess?: boolean;
  isDemoOrganization?: boolean;
  /** DEMO_ORG_DEADLINE_DAYS (30) by default. */
  demoOrganizationDeadlineDays?: number;
  pushNotificationsEnabled?: boolean;
  howRealmCreatorFoundZulip?: string | null;
  howRealmCreatorFoundZulipExtraContext?: string | null;
  /** Backends to write RealmAuthenticationMethod rows for; default: all of Zulip's (what a fresh server writes). */
  authenticationMethods?: string[];
  /** Create Zulip's three default channels ("Zulip", "sandbox", "general"); default true except for zulipinternal. */
  defaultChannels?: boolean;
  /** Treat as the system bot realm (create_internal_realm semantics); default: stringId === "zulipinternal". */
  internal?: boolean;
  /** Raw zerver_realm column overrides applied to the inserted row (e.g. { message_retention_days: 30 }). */
  columns?: Record<string, unknown>;
  random?: RandomSource;
}

export interface CreatedRealm {
  id: number;
  stringId: string;
  name: string;
  dateCreated: Date;
  internal: boolean;
  /** System group ids by name (role:nobody … role:internet). */
  groups: SystemGroupIds;
  /** The default channels (empty when not created). */
  channels: CreatedChannel[];
}

/** A zerver_realm column holding a group setting (a FK to zerver_usergroup). */
export function isRealmGroupSettingColumn(col: string): boolean {
  return col.endsWith("_group_id") || col === "can_create_groups_id" || col === "can_manage_all_groups_id";
}

function defaultEmailVisibility(orgType: number): number {
  if (orgType === OrgType.BUSINESS) return EmailAddressVisibility.EVERYONE;
  if (orgType === OrgType.EDUCATION || orgType === OrgType.EDUCATION_NONPROFIT) return EmailAddressVisibility.MODERATORS;
  return EmailAddressVisibility.ADMINS;
}

/**
 * The zerver_realm values do_create_realm / create_internal_realm start from: the Realm model's
 * Python defaults of every release (columns the database lacks are dropped at INSERT) and the
 * arguments. Group settings are added by createRealm.
 */
export function realmRowValues(opts: CreateRealmOptions, c: { name: string; internal: boolean; dateCreated: Date; random: RandomSource }): Row {
  const { name, internal, dateCreated, random } = c;
  const orgType = opts.orgType ?? OrgType.UNSPECIFIED;
  const description = opts.description ?? "";
  const enableReadReceipts = internal
    ? (opts.enableReadReceipts ?? false)
    : (opts.enableReadReceipts ?? (opts.inviteRequired === undefined || opts.inviteRequired === true || opts.emailsRestrictedToDomains === true));
  return {
    name,
    description,
    string_id: opts.stringId,
    uuid: random.uuid(),
    uuid_owner_secret: "zuliprealm_" + random.alnum(32),
    push_notifications_enabled: opts.pushNotificationsEnabled ?? false,
    push_notifications_enabled_end_timestamp: null,
    date_created: dateCreated,
    demo_organization_scheduled_deletion_date: opts.isDemoOrganization
      ? new Date(dateCreated.getTime() + (opts.demoOrganizationDeadlineDays ?? 30) * 86400_000)
      : null,
    deactivated: false,
    deactivated_redirect: null,
    emails_restricted_to_domains: opts.emailsRestrictedToDomains ?? false,
    invite_required: opts.inviteRequired ?? true,
    max_invites: null,
    disallow_disposable_email_addresses: true,
    enable_spectator_access: opts.enableSpectatorAccess ?? false,
    want_advertise_in_communities_directory: false,
    inline_image_preview: true,
    inline_url_embed_preview: false,
    digest_emails_enabled: false,
    digest_weekday: 1,
    send_welcome_emails: true,
    message_content_allowed_in_email_notifications: true,
    require_unique_names: false,
    name_changes_disabled: false,
    email_changes_disabled: false,
    avatar_changes_disabled: false,
    move_messages_within_stream_limit_seconds: 604800,
    move_messages_between_streams_limit_seconds: 604800,
    waiting_period_threshold: opts.waitingPeriodThreshold ?? 0,
    message_content_delete_limit_seconds: 600,
    allow_message_editing: true,
    message_content_edit_limit_seconds: 600,
    default_language: opts.defaultLanguage ?? "en",
    zulip_update_announcements_level: null,
    message_retention_days: -1,
    message_visibility_limit: null,
    first_visible_message_id: 0,
    org_type: orgType,
    plan_type: opts.planType ?? PlanType.SELF_HOSTED,
    custom_upload_quota_gb: null,
    video_chat_provider: 1,
    jitsi_server_url: null,
    gif_rating_policy: 1,
    giphy_rating: LEGACY_GIPHY_RATING_G, // before 0773 (and 0763's renumbering)
    default_code_block_language: "",
    enable_read_receipts: enableReadReceipts,
    enable_guest_user_indicator: true,
    icon_source: "G",
    icon_version: 1,
    logo_source: "D",
    logo_version: 1,
    night_logo_source: "D",
    night_logo_version: 1,
    new_stream_announcements_stream_id: null,
    signup_announcements_stream_id: null,
    zulip_update_announcements_stream_id: null,
    moderation_request_channel_id: null,
    scheduled_deletion_date: null,
    enable_guest_user_dm_warning: true,
    message_edit_history_visibility_policy: 1,
    topics_policy: TopicsPolicy.ALLOW_EMPTY_TOPIC,
    mandatory_topics: false, // before 0713 (Zulip 10)
    require_e2ee_push_notifications: false,
    welcome_message_custom_text: "",
    send_channel_events_messages: false,
    owner_full_content_access: false,
    default_avatar_source: "J",
    rendered_description: internal ? null : renderPlainMarkdown(description),
    rendered_description_version: internal ? null : 1,
    media_preview_size: 100,
  };
}

/**
 * do_create_realm (or create_internal_realm for zulipinternal). Must run inside the caller's
 * transaction. The Realm's group-setting columns (as many as the release has) end up pointing at
 * its own system groups.
 */
export async function createRealm(db: Queryable, opts: CreateRealmOptions): Promise<CreatedRealm> {
  const random = opts.random ?? cryptoRandom;
  const internal = opts.internal ?? opts.stringId === SYSTEM_BOT_REALM;
  const name = opts.name ?? (internal ? SYSTEM_BOT_REALM_NAME : undefined);
  if (name === undefined) throw new Error("createRealm: name is required");
  const existing = await db.query(`SELECT id FROM zerver_realm WHERE string_id = $1`, [opts.stringId]);
  if (existing.rows.length) throw new Error(`Realm ${opts.stringId} already exists!`);

  const dateCreated = opts.dateCreated ?? new Date();
  const orgType = opts.orgType ?? OrgType.UNSPECIFIED;
  const series = await databaseSeries(db);
  const realmValues = realmRowValues(opts, { name, internal, dateCreated, random });
  // Placeholder group ids (-1), fixed below once the system groups exist: FKs are deferred.
  const realmCols = await tableColumns(db, "zerver_realm");
  const groupCols = [...realmCols].filter(isRealmGroupSettingColumn);
  const unknown = groupCols.filter((c) => !REALM_GROUP_SETTING_DEFAULTS[c] && !(opts.columns && c in opts.columns));
  if (unknown.length) throw new CreationSchemaError(`No default is known for the realm group setting(s) ${unknown.join(", ")}`);
  for (const col of groupCols) realmValues[col] = -1;
  Object.assign(realmValues, opts.columns ?? {});
  const realmId = Number((await insertRow(db, "zerver_realm", realmValues)).id);

  // REALM_CREATED; acting_user is filled in when the first owner is created (realmCreation).
  await insertAuditLogRow(db, {
    realmId,
    eventType: AuditLogEventType.REALM_CREATED,
    eventTime: dateCreated,
    extraData: internal
      ? {}
      : {
          how_realm_creator_found_zulip: opts.howRealmCreatorFoundZulip ?? null,
          how_realm_creator_found_zulip_extra_context: opts.howRealmCreatorFoundZulipExtraContext ?? null,
        },
  });

  await insertRow(db, "zerver_realmuserdefault", {
    ...USER_SETTING_DEFAULTS,
    ...REALM_USER_DEFAULT_OVERRIDES,
    email_address_visibility: opts.emailAddressVisibility ?? (internal ? EmailAddressVisibility.EVERYONE : defaultEmailVisibility(orgType)),
    realm_id: realmId,
  });

  const groups = await createSystemGroups(db, realmId, dateCreated);

  // set_default_for_realm_permission_group_settings
  const assignments: string[] = [];
  const params: unknown[] = [realmId];
  const education = !internal && (orgType === OrgType.EDUCATION || orgType === OrgType.EDUCATION_NONPROFIT);
  for (const col of groupCols) {
    let groupName = REALM_GROUP_SETTING_DEFAULTS[col];
    if (!groupName) continue;
    if (education && EDUCATION_GROUP_SETTING_OVERRIDES[col]) groupName = EDUCATION_GROUP_SETTING_OVERRIDES[col];
    if (opts.columns && col in opts.columns) continue;
    params.push(groups[groupName]);
    assignments.push(`${quoteIdent(col)} = $${params.length}`);
  }
  await db.query(`UPDATE zerver_realm SET ${assignments.join(", ")} WHERE id = $1`, params);

  await insertRows(
    db,
    "zerver_realmauthenticationmethod",
    (opts.authenticationMethods ?? DEFAULT_AUTH_BACKEND_NAMES).map((n) => ({ name: n, realm_id: realmId })),
    null,
  );
  await insertRow(db, "zerver_presencesequence", { last_update_id: 0, realm_id: realmId }, "");

  const created: CreatedRealm = { id: realmId, stringId: opts.stringId, name, dateCreated, internal, groups, channels: [] };

  if (internal) {
    for (const c of INTERNAL_REALM_CLIENTS) await getOrCreateClient(db, c);
    return created;
  }

  if (opts.defaultChannels ?? true) {
    for (const ch of DEFAULT_REALM_CHANNELS) {
      created.channels.push(
        await createChannel(db, created, {
          name: ch.name,
          description: ch.description,
          renderedDescription: ch.rendered,
          dateCreated,
        }),
      );
    }
    await insertRows(
      db,
      "zerver_defaultstream",
      created.channels.map((c) => ({ realm_id: realmId, stream_id: c.id })),
      null,
    );
  }
  // Before 12.0, do_create_realm sent new-channel and Zulip-update announcements to #general
  // (the third default channel); 12.0 leaves both unset.
  const general = created.channels.find((c) => c.name === DEFAULT_REALM_CHANNELS[2].name);
  const announceInGeneral = (series === "10.x" || series === "11.x") && general !== undefined;
  await db.query(
    `UPDATE zerver_realm SET zulip_update_announcements_level = $2${
      announceInGeneral ? ", new_stream_announcements_stream_id = $3, zulip_update_announcements_stream_id = $3" : ""
    } WHERE id = $1`,
    [realmId, ZULIP_UPDATE_ANNOUNCEMENTS_LEVELS[series] ?? ZULIP_UPDATE_ANNOUNCEMENTS_LEVEL, ...(announceInGeneral ? [general!.id] : [])],
  );
  return created;
}

/** A system group's NamedUserGroup row: every group setting is role:nobody, no creator. */
export function systemGroupValues(id: number, name: string, description: string, realmId: number, nobodyId: number): Row {
  const row: Row = {
    usergroup_ptr_id: id,
    name,
    description,
    is_system_group: true,
    realm_id: realmId,
    deactivated: false,
    creator_id: null,
    date_created: null,
  };
  for (const c of NAMED_GROUP_SETTING_COLUMNS) row[c] = nobodyId;
  return row;
}

/** create_system_user_groups_for_realm: 8 groups, 701 audits, the subgroup chain with 705/707 audits. */
async function createSystemGroups(db: Queryable, realmId: number, when: Date): Promise<SystemGroupIds> {
  const ugRows = await insertRows(
    db,
    "zerver_usergroup",
    SYSTEM_GROUPS.map(() => ({ realm_id: realmId })),
  );
  const ids = ugRows.map((r) => Number(r.id));
  const nobodyId = ids[0];
  const groups = {} as SystemGroupIds;
  SYSTEM_GROUPS.forEach(([n], i) => (groups[n] = ids[i]));
  await insertRows(
    db,
    "zerver_namedusergroup",
    SYSTEM_GROUPS.map(([groupName, description], i) => systemGroupValues(ids[i], groupName, description, realmId, nobodyId)),
    null,
  );
  await insertRows(
    db,
    "zerver_realmauditlog",
    ids.map((id) => auditLogRow({ realmId, eventType: AuditLogEventType.USER_GROUP_CREATED, eventTime: when, modifiedUserGroupId: id })),
    null,
  );
  // "Nobody" is nobody's subgroup; owners ⊂ administrators ⊂ … ⊂ internet.
  const memberships: Row[] = [];
  const audits: Row[] = [];
  for (let i = 2; i < ids.length; i++) {
    const sub = ids[i - 1];
    const sup = ids[i];
    memberships.push({ supergroup_id: sup, subgroup_id: sub });
    audits.push(
      auditLogRow({
        realmId,
        eventType: AuditLogEventType.USER_GROUP_DIRECT_SUBGROUP_MEMBERSHIP_ADDED,
        eventTime: when,
        modifiedUserGroupId: sup,
        extraData: { subgroup_ids: [sub] },
      }),
      auditLogRow({
        realmId,
        eventType: AuditLogEventType.USER_GROUP_DIRECT_SUPERGROUP_MEMBERSHIP_ADDED,
        eventTime: when,
        modifiedUserGroupId: sub,
        extraData: { supergroup_ids: [sup] },
      }),
    );
  }
  await insertRows(db, "zerver_groupgroupmembership", memberships, null);
  await insertRows(db, "zerver_realmauditlog", audits, null);
  return groups;
}

/**
 * The events and jobs of do_create_realm (zerver/actions/create_realm.py; the same calls in the
 * 10.x, 11.x and main versions read), for a realm createRealm just wrote: the
 * maybe_enqueue_audit_log_upload job of its transaction, then, per default channel, the
 * `stream` `create` of ensure_stream -> create_stream_if_needed, sent (public channel) to
 * active_non_guest_user_ids of the new realm — nobody yet, but Zulip still publishes each
 * event with an empty user list, and so do we. No traffic (stream_weekly_traffic null) and
 * for_unarchiving false (from FL 378). No other events: REALM_INTERNAL_BOTS is empty outside
 * Zulip's development settings, and BILLING_ENABLED's plan change is Zulip Cloud's.
 */
export async function sendRealmCreationEvents(q: Queryable, notify: Notify, created: CreatedRealm, featureLevel: number): Promise<void> {
  notify.events.auditLogUpload(notify.realm);
  for (const c of created.channels) {
    await sendStreamCreationEvent(q, notify, { id: c.id, realm_id: created.id }, await activeNonGuestUserIds(q, created.id), {
      traffic: false,
      forUnarchiving: false,
      featureLevel,
    });
  }
}

/**
 * create_internal_realm: the system bot realm (no default channels, the internal clients) and
 * its bots, in the caller's transaction.
 */
async function createInternalRealm(
  q: Queryable,
  stringId: string,
  opts: { dateCreated?: Date; random?: RandomSource } = {},
): Promise<{ realm: CreatedRealm; bots: Record<string, number> }> {
  const realm = await createRealm(q, { stringId, internal: true, ...opts });
  const bots = await createSystemBots(q, realm, {
    ...(opts.dateCreated ? { dateJoined: opts.dateCreated } : {}),
    ...(opts.random ? { random: opts.random } : {}),
  });
  return { realm, bots };
}

// ---------------------------------------------------------------------------------------------
// manage.py create_realm

export const NOT_DONE_ONBOARDING_MESSAGES =
  "Welcome Bot's onboarding messages in the new channels (Zulip posts them when an organization is created; zulip-manage does not write them)";

/** Realm.MAX_REALM_NAME_LENGTH */
const MAX_REALM_NAME_LENGTH = 40;

/** do_create_realm's own assertions about the name and the subdomain (the subdomain's availability aside). */
export function checkNewRealm(name: string, stringId: string, subdomains: SubdomainSettings): void {
  if ([...name].length > MAX_REALM_NAME_LENGTH) {
    throw new CommandError(`Ensure this value has at most ${MAX_REALM_NAME_LENGTH} characters (it has ${[...name].length}).`);
  }
  if ([subdomains.socialAuthSubdomain, subdomains.selfHostingManagementSubdomain].includes(stringId)) {
    throw new CommandError("Creating a realm on SOCIAL_AUTH_SUBDOMAIN or SELF_HOSTING_MANAGEMENT_SUBDOMAIN is not allowed!");
  }
}

export interface NewRealmOutcome {
  realm: CreatedRealm;
  owner: CreatedUser;
  steps: NewHumanUserSteps;
  /** The system bot realm, when this created it first (a server without any realm). */
  systemRealm: { id: number; name: string; bots: number } | null;
  /** Every audit row written for the new organization (and the system bot realm), in order. */
  auditLogIds: number[];
  /** Events that could not be sent, with the reason. */
  eventsNotSent: string[];
  /** What could not be done about the owner's Jdenticon picture (avatar.ts writeJdenticonAvatar). */
  avatarNotDone: string[];
}

/**
 * manage.py create_realm, one transaction: create_internal_realm first when the server has no
 * realm (`initialize`), do_create_realm (and its events), do_create_user for the owner
 * (realm_creation=True, tos_version "-1", acting_user=None), process_new_human_user's rows and the
 * owner's events; flush_realm and flush_user_profile. Then the owner's Jdenticon picture.
 */
export async function doCreateRealm(
  db: Db,
  req: { stringId: string; name: string; owner: { email: string; fullName: string; passwordHash: string | null }; initialize: boolean; systemBotRealm: string },
  opts: { urls: NewUserUrls; events: EventDelivery; featureLevel: number; settings: ZulipSettings; deployDir: string; cache?: CacheInvalidation },
): Promise<NewRealmOutcome> {
  const { stringId } = req;
  const { urls, events } = opts;
  const created = await events.tx(db, async (q) => {
    // A realm created since the caller's check: do_create_realm's "Realm <id> already exists!".
    const { rows } = await q.query("SELECT 1 FROM zerver_realm WHERE string_id = $1", [stringId]);
    if (rows.length) throw new CommandError(`Realm ${stringId} already exists!`);
    let systemRealm: NewRealmOutcome["systemRealm"] = null;
    if (req.initialize) {
      const { rows: again } = await q.query("SELECT 1 FROM zerver_realm LIMIT 1");
      if (again.length) throw new CommandError("An organization was created while this command ran; nothing was changed. Run it again.");
      const internal = await createInternalRealm(q, req.systemBotRealm);
      systemRealm = { id: internal.realm.id, name: internal.realm.name, bots: Object.keys(internal.bots).length };
    }
    const realm = await createRealm(q, { stringId, name: req.name });
    const notify = { events, realm: { id: realm.id, string_id: stringId }, what: `the new organization ${stringId || "(root domain)"}` };
    await sendRealmCreationEvents(q, notify, realm, opts.featureLevel);
    const owner = await createUser(q, realm, {
      email: req.owner.email,
      fullName: req.owner.fullName,
      role: ROLES.REALM_OWNER,
      realmCreation: true,
      tosVersion: TOS_VERSION_BEFORE_FIRST_LOGIN,
      passwordHash: req.owner.passwordHash,
      externalHost: urls.externalHost,
      realmHosts: urls.realmHosts,
      fakeEmailDomain: urls.fakeEmailDomain,
    });
    const steps = await processNewHumanUserRows(q, owner.id, urls, { realmCreation: true });
    // do_create_user's events for the owner (user-creation-events.ts): the audit-log job, the
    // realm_user add (to the owner), role:owners add_members, peer_add for the default channels
    // (to the realm's other non-guests: nobody yet).
    const eventsNotSent = await sendUserCreationEvents(q, notify, owner.id, {
      featureLevel: opts.featureLevel,
      avatar: readAvatarSettings(opts.settings),
      systemGroupIds: [realm.groups[SystemGroups.OWNERS]],
      channelIds: await defaultChannelIds(q, realm.id),
    });
    await opts.cache?.realmChanged(q, { id: realm.id, string_id: stringId, deactivated: false }, null);
    const { rows: urow } = await q.query("SELECT * FROM zerver_userprofile WHERE id = $1", [owner.id]);
    await opts.cache?.userChanged(q, urow[0] as UserProfile, null);
    const auditLogIds = [...(systemRealm ? await auditLogIdsOfRealm(q, systemRealm.id) : []), ...(await auditLogIdsOfRealm(q, realm.id))];
    return { realm, owner, steps, systemRealm, auditLogIds: auditLogIds.sort((x, y) => x - y), eventsNotSent };
  });
  opts.cache?.changeCommitted();
  const avatarNotDone = await writeJdenticonAvatar(db, opts.settings, opts.deployDir, created.owner.id);
  return { ...created, avatarNotDone };
}
