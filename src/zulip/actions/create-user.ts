// do_create_user (zerver/actions/create_user.py) for one user, in the caller's transaction: the
// UserProfile (settings from RealmUserDefault for humans), the USER_CREATED row with a ROLE_COUNT
// snapshot, the system-group membership(s) with their 703 rows, and for humans the default-channel
// subscriptions (301 rows, subscriber counts) and add_new_user_history's UserMessage rows. Before
// 12.0 (zerver_userprofile.recipient_id exists, before 0798) every new user also gets the personal
// Recipient (type 1) and the Subscription to it that lib/create_user.py wrote then. Everything
// Zulip computes in Python is computed here: RealmUserDefault values, ROLE_COUNT snapshots, fake
// display emails (get_fake_email_domain), UserMessage flags.
//
// Not reproduced (onboarding content, not state other code depends on): Welcome Bot's DM, and
// UserPresence rows (Zulip creates those on the first presence update, not at signup).
// process_new_human_user's rows are onboarding.ts. doCreateUser is manage.py create_user's whole
// transaction (the user, process_new_human_user's rows, the events, the signup announcement) and
// the user's Jdenticon picture after it.
import { pyStrip } from "../../lib/pyformat.js";
import {
  AuditLogEventType,
  auditLogIdsOfUser,
  insertAuditLogRow,
  primeRosterAfterChange,
  ROLE_COUNT,
  type RoleCountBaseline,
  roleCountsAfterChange,
  workplaceGroupOf,
} from "../audit.js";
import type { Db, Queryable } from "../../db/db.js";
import { CommandError } from "../../lib/errors.js";
import { cryptoRandom, type RandomSource } from "../../lib/random.js";
import { deport, realmHostFor, type ZulipSettings } from "../../config/settings.js";
import { validateEmailAddress } from "../email-address.js";
import { getSystemGroups, isProvisionalMember, type SystemGroupName, systemGroupNameForRole, SystemGroups } from "../groups.js";
import { realmIdOf, type RealmIdOrRef, type UserProfile } from "../lookup.js";
import { BotType, EmailAddressVisibility, MAX_NAME_LENGTH, RecipientType, subscriptionValues, UserMessageFlag } from "../models.js";
import { unusablePassword } from "../password.js";
import { ROLES } from "../roles.js";
import { hasPersonalRecipients, insertRow, insertRows, nextId, type Row } from "../rows.js";
import { tableColumns } from "../../db/db.js";
import { NOT_COPIED_FROM_REALM_DEFAULTS, USER_SETTING_DEFAULTS } from "../user-settings.js";
import { readAvatarSettings, writeJdenticonAvatar } from "../avatar.js";
import type { CacheInvalidation } from "../cache.js";
import type { Notify } from "../../services/events.js";
import { sendUserCreationEvents } from "../events/user-creation-events.js";
import { defaultChannelIds } from "../realms.js";
import { bulkAddSubscriptions } from "./bulk-add-subscriptions.js";
import { deactivateUserInTx } from "./deactivate-user.js";
import { type NoticeResult, sendSignupAnnouncement } from "./channels.js";
import { type NewHumanUserSteps, processNewHumanUserRows, type NewUserUrls } from "./onboarding.js";

/**
 * get_fake_email_domain(realm_host) (zerver/models/realms.py, same in 10.x–12.x): the realm host
 * if `bot@<host>` is a valid address (Django's validate_email: email-address.ts), else
 * settings.FAKE_EMAIL_DOMAIN (src/config/settings.ts FAKE_EMAIL_DOMAIN: the one rule for its
 * value) if that one is, else InvalidFakeEmailDomainError with Zulip's message — e.g. a server
 * addressed by an IP address and no FAKE_EMAIL_DOMAIN set, or FAKE_EMAIL_DOMAIN = "".
 */
export function fakeEmailDomain(host: string, fakeEmailDomainSetting: string): string {
  if (validateEmailAddress(`bot@${host}`) === null) return host;
  if (validateEmailAddress(`bot@${fakeEmailDomainSetting}`) !== null) throw new InvalidFakeEmailDomainError(fakeEmailDomainSetting);
  return fakeEmailDomainSetting;
}

/** Zulip's InvalidFakeEmailDomainError, raised by get_fake_email_domain. */
class InvalidFakeEmailDomainError extends CommandError {
  constructor(domain: string) {
    super(`${domain} is not a valid domain. Consider setting the FAKE_EMAIL_DOMAIN setting.`);
  }
}

export interface CreateUserOptions {
  email: string;
  fullName: string;
  role?: number;
  /** Deprecated alias: a bot is any user with a botType. isBot without botType means a generic bot. */
  isBot?: boolean;
  botType?: number | null;
  botOwnerId?: number | null;
  dateJoined?: Date;
  /** false = create, then deactivate (do_deactivate_user) at `deactivatedAt` (default dateJoined). */
  isActive?: boolean;
  deactivatedAt?: Date;
  /** A Django password hash; default: an unusable password. */
  passwordHash?: string | null;
  tosVersion?: string | null;
  timezone?: string;
  /** Default: the realm's default_language. */
  defaultLanguage?: string;
  /** Default: realm.default_avatar_source. */
  avatarSource?: string;
  /** Overrides the RealmUserDefault value (humans only; bots always use 1 = everyone). */
  emailAddressVisibility?: number;
  enableMarketingEmails?: boolean;
  /** EXTERNAL_HOST, needed for fake display emails when the visibility is not "everyone". */
  externalHost?: string;
  realmHosts?: Record<string, string>;
  /** settings.FAKE_EMAIL_DOMAIN (settings.get("FAKE_EMAIL_DOMAIN")); default: its default, deport(externalHost). */
  fakeEmailDomain?: string;
  /**
   * The realm's user counts read beside the transaction before the user existed
   * (readRoleCountBaseline with absentUser), for the 101 row's ROLE_COUNT; see
   * roleCountsAfterChange.
   */
  roleCountBaseline?: Promise<RoleCountBaseline | null>;
  /** Audit acting user; default: the new user itself (do_create_user). */
  actingUserId?: number | null;
  /** This user created the realm: becomes acting_user of the REALM_CREATED audit row. */
  realmCreation?: boolean;
  /** Subscribe (humans) to the realm's default channels; default true. */
  defaultChannels?: boolean;
  /** Extra channel ids to subscribe to (like an invitation's streams). */
  channelIds?: number[];
  /** "Now" for the provisional-member check (default: the current time). */
  now?: Date;
  isMirrorDummy?: boolean;
  canForgeSender?: boolean;
  canCreateUsers?: boolean;
  /** Raw zerver_userprofile column overrides. */
  columns?: Record<string, unknown>;
  random?: RandomSource;
}

export interface CreatedUser {
  id: number;
  email: string;
  deliveryEmail: string;
  fullName: string;
  role: number;
  isBot: boolean;
  botType: number | null;
  isActive: boolean;
  realmId: number;
  dateJoined: Date;
  apiKey: string;
  /** Direct system-group memberships written (group names). */
  systemGroups: SystemGroupName[];
}

export interface RealmInfo {
  id: number;
  stringId: string;
  defaultLanguage: string;
  defaultAvatarSource: string;
  waitingPeriodThreshold: number;
  /** realm.workplace_users_group_id (12.0+), else null. */
  workplaceUsersGroupId: number | null;
}

export async function loadRealm(db: Queryable, realmId: number): Promise<RealmInfo> {
  const { rows } = await db.query(`SELECT * FROM zerver_realm WHERE id = $1`, [realmId]);
  if (!rows.length) throw new Error(`realm ${realmId} does not exist`);
  const r = rows[0];
  return {
    id: Number(r.id),
    stringId: r.string_id,
    defaultLanguage: r.default_language ?? "en",
    // realm.default_avatar_source (12.0, 0776); before, do_create_user's default AVATAR_FROM_GRAVATAR.
    defaultAvatarSource: r.default_avatar_source ?? "G",
    waitingPeriodThreshold: Number(r.waiting_period_threshold ?? 0),
    workplaceUsersGroupId: r.workplace_users_group_id === undefined || r.workplace_users_group_id === null ? null : Number(r.workplace_users_group_id),
  };
}

/**
 * The UserProfile columns that are not user settings, as create_user_profile / create_user set
 * them (with the model defaults of every release: zoom_token before 0767, third_party_api_state,
 * is_imported_stub and is_deleted since; recipient_id before 0798 is filled in afterwards).
 */
export function userAccountValues(u: {
  id: number;
  password: string;
  dateJoined: Date;
  deliveryEmail: string;
  email: string;
  fullName: string;
  tosVersion: string | null;
  apiKey: string;
  uuid: string;
  botType: number | null;
  role: number;
  isMirrorDummy: boolean;
  canForgeSender: boolean;
  canCreateUsers: boolean;
  timezone: string;
  avatarSource: string;
  botOwnerId: number | null;
  realmId: number;
}): Row {
  return {
    id: u.id,
    password: u.password,
    last_login: u.dateJoined,
    is_superuser: false,
    delivery_email: u.deliveryEmail,
    email: u.email,
    full_name: u.fullName,
    date_joined: u.dateJoined,
    tos_version: u.tosVersion,
    api_key: u.apiKey,
    uuid: u.uuid,
    is_staff: false,
    is_active: true,
    is_bot: u.botType !== null,
    bot_type: u.botType,
    role: u.role,
    long_term_idle: false,
    last_active_message_id: null,
    is_mirror_dummy: u.isMirrorDummy,
    can_forge_sender: u.canForgeSender,
    can_create_users: u.canCreateUsers,
    last_reminder: null,
    rate_limits: "",
    default_all_public_streams: false,
    timezone: u.timezone,
    avatar_source: u.avatarSource,
    avatar_version: 1,
    avatar_hash: null,
    bot_owner_id: u.botOwnerId,
    realm_id: u.realmId,
    default_events_register_stream_id: null,
    default_sending_stream_id: null,
    can_change_user_emails: false,
    is_imported_stub: false,
    third_party_api_state: "{}",
    zoom_token: null,
    is_deleted: false,
    recipient_id: null,
  };
}

/**
 * do_create_user: the UserProfile (settings from RealmUserDefault for humans), USER_CREATED audit
 * with a ROLE_COUNT snapshot, the system-group membership(s) with 703 audits, and for humans the
 * default-channel subscriptions (301 audits, subscriber counts, UserMessage history rows).
 * Must run inside the caller's transaction.
 */
export async function createUser(db: Queryable, realm: RealmIdOrRef, opts: CreateUserOptions): Promise<CreatedUser> {
  const random = opts.random ?? cryptoRandom;
  const info = await loadRealm(db, realmIdOf(realm));
  const groups = await getSystemGroups(db, info.id);
  const botType = opts.botType ?? (opts.isBot ? BotType.DEFAULT : null);
  const isBot = botType !== null;
  const role = opts.role ?? ROLES.MEMBER;
  const dateJoined = opts.dateJoined ?? new Date();
  const now = opts.now ?? new Date(Math.max(Date.now(), dateJoined.getTime()));
  const deliveryEmail = normalizeEmail(opts.email);

  const dup = await db.query(`SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND upper(delivery_email) = upper($2)`, [info.id, deliveryEmail]);
  if (dup.rows.length) throw new Error(`A user with email ${deliveryEmail} already exists in realm ${info.stringId || "(root)"}`);

  const upCols = await tableColumns(db, "zerver_userprofile");
  const values: Row = {};
  if (isBot) {
    Object.assign(values, USER_SETTING_DEFAULTS, { email_address_visibility: EmailAddressVisibility.EVERYONE });
  } else {
    const rud = await db.query(`SELECT * FROM zerver_realmuserdefault WHERE realm_id = $1`, [info.id]);
    if (!rud.rows.length) throw new Error(`realm ${info.id} has no RealmUserDefault row`);
    Object.assign(values, USER_SETTING_DEFAULTS);
    for (const [k, v] of Object.entries(rud.rows[0])) if (!NOT_COPIED_FROM_REALM_DEFAULTS.has(k) && upCols.has(k)) values[k] = v;
    if (opts.emailAddressVisibility !== undefined) values.email_address_visibility = opts.emailAddressVisibility;
    if (opts.enableMarketingEmails !== undefined) values.enable_marketing_emails = opts.enableMarketingEmails;
  }
  values.default_language = opts.defaultLanguage ?? info.defaultLanguage;

  const id = await nextId(db, "zerver_userprofile");
  let email = deliveryEmail;
  if (values.email_address_visibility !== EmailAddressVisibility.EVERYONE) {
    if (!opts.externalHost && !opts.fakeEmailDomain) {
      throw new Error("createUser: externalHost is needed to build the display email of a user whose email is not public");
    }
    const host = opts.externalHost ? realmHostFor(info.stringId, opts.externalHost, opts.realmHosts) : "";
    const domain = fakeEmailDomain(host, opts.fakeEmailDomain ?? deport(opts.externalHost!));
    email = `user${id}@${domain}`;
  }
  const apiKey = random.alnum(32);
  Object.assign(
    values,
    userAccountValues({
      id,
      password: isBot ? unusablePassword(random) : (opts.passwordHash ?? unusablePassword(random)),
      dateJoined,
      deliveryEmail,
      email,
      fullName: opts.fullName,
      tosVersion: opts.tosVersion ?? null,
      apiKey,
      uuid: random.uuid(),
      botType,
      role,
      isMirrorDummy: opts.isMirrorDummy ?? false,
      canForgeSender: opts.canForgeSender ?? false,
      // Observed on the reference install: the organization's creator has can_create_users
      // (set at creation, no 108 audit row); other users do not.
      canCreateUsers: opts.canCreateUsers ?? opts.realmCreation === true,
      timezone: opts.timezone ?? "",
      avatarSource: opts.avatarSource ?? info.defaultAvatarSource,
      botOwnerId: opts.botOwnerId ?? null,
      realmId: info.id,
    }),
  );
  Object.assign(values, opts.columns ?? {});
  await insertRow(db, "zerver_userprofile", values, "");
  // lib/create_user.py before 12.0: the personal Recipient, user.recipient, and the Subscription to it.
  if (await hasPersonalRecipients(db)) await createPersonalRecipients(db, [{ id, isActive: true }]);
  primeRosterAfterChange(db, info.id, opts.roleCountBaseline, id, null, { role, is_active: true, is_bot: isBot });

  const actingUserId = opts.actingUserId ?? id;
  await insertAuditLogRow(db, {
    realmId: info.id,
    eventType: AuditLogEventType.USER_CREATED,
    eventTime: dateJoined,
    actingUserId,
    modifiedUserId: id,
    extraData: {
      [ROLE_COUNT]: await roleCountsAfterChange(
        db,
        info.id,
        opts.roleCountBaseline,
        null,
        { role, is_active: true, is_bot: isBot },
        workplaceGroupOf(
          info.workplaceUsersGroupId,
          (Object.keys(groups) as SystemGroupName[]).map((name) => ({ id: groups[name], name })),
        ),
      ),
    },
  });
  if (opts.realmCreation) {
    await db.query(
      `UPDATE zerver_realmauditlog SET acting_user_id = $2
        WHERE id = (SELECT max(id) FROM zerver_realmauditlog WHERE realm_id = $1 AND event_type = $3)`,
      [info.id, id, AuditLogEventType.REALM_CREATED],
    );
  }

  const systemGroups: SystemGroupName[] = [systemGroupNameForRole(role)];
  if (role === ROLES.MEMBER && !isProvisionalMember(role, dateJoined, info.waitingPeriodThreshold, now)) {
    systemGroups.push(SystemGroups.FULL_MEMBERS);
  }
  for (const g of systemGroups) {
    await db.query(`INSERT INTO zerver_usergroupmembership (user_group_id, user_profile_id) VALUES ($1, $2)`, [groups[g], id]);
    await insertAuditLogRow(db, {
      realmId: info.id,
      eventType: AuditLogEventType.USER_GROUP_DIRECT_USER_MEMBERSHIP_ADDED,
      eventTime: dateJoined,
      actingUserId,
      modifiedUserId: id,
      modifiedUserGroupId: groups[g],
    });
  }

  if (!isBot) {
    const channelIds = new Set<number>(opts.channelIds ?? []);
    if (opts.defaultChannels ?? true) {
      const ds = await db.query(`SELECT stream_id FROM zerver_defaultstream WHERE realm_id = $1`, [info.id]);
      for (const r of ds.rows) channelIds.add(Number(r.stream_id));
    }
    if (channelIds.size) await bulkAddSubscriptions(db, info.id, [...channelIds], [id], { when: dateJoined, actingUserId: null });
    await addNewUserHistory(db, info.id, id, [...channelIds], { realmCreation: opts.realmCreation ?? false, now });
  }

  const user: CreatedUser = {
    id,
    email,
    deliveryEmail,
    fullName: opts.fullName,
    role,
    isBot,
    botType,
    isActive: true,
    realmId: info.id,
    dateJoined,
    apiKey,
    systemGroups,
  };
  if (opts.isActive === false) {
    await deactivateUser(db, id, { when: opts.deactivatedAt ?? dateJoined, actingUserId: opts.actingUserId ?? null });
    user.isActive = false;
  }
  return user;
}

/** Django's BaseUserManager.normalize_email: lowercase the domain part. */
function normalizeEmail(email: string): string {
  const at = email.lastIndexOf("@");
  if (at < 0) return email;
  return email.slice(0, at) + "@" + email.slice(at + 1).toLowerCase();
}

/**
 * Before Zulip 12 (0798): one personal Recipient (type 1) per user, userprofile.recipient_id
 * pointing at it, and the user's Subscription to it (Subscription model defaults, is_user_active
 * from the user), as create_user and bulk_create_users wrote them. Recipients are made in the
 * order given.
 */
export async function createPersonalRecipients(db: Queryable, users: { id: number; isActive: boolean }[]): Promise<Map<number, number>> {
  const recipients = await insertRows(
    db,
    "zerver_recipient",
    users.map((u) => ({ type_id: u.id, type: RecipientType.PERSONAL })),
  );
  const byUser = new Map(users.map((u, i) => [u.id, Number(recipients[i].id)]));
  await db.query(
    `UPDATE zerver_userprofile u SET recipient_id = x.rid
       FROM unnest($1::int[], $2::int[]) AS x(uid, rid) WHERE u.id = x.uid`,
    [[...byUser.keys()], [...byUser.values()]],
  );
  await insertRows(
    db,
    "zerver_subscription",
    users.map((u) => subscriptionValues(byUser.get(u.id)!, u.id, u.isActive)),
    null,
  );
  return byUser;
}

/**
 * do_deactivate_user's database part for one user (deactivate-user.ts deactivateUserInTx, the
 * one deactivation implementation): is_active=false, subscriptions' is_user_active=false,
 * subscriber counts decremented, scheduled emails cleared, invitations revoked, USER_DEACTIVATED
 * audit with ROLE_COUNT. Bots and sessions are the caller's business.
 */
export async function deactivateUser(db: Queryable, userId: number, opts: { when?: Date; actingUserId?: number | null } = {}): Promise<void> {
  await deactivateUserInTx(db, userId, { now: opts.when ?? new Date(), actingUserId: opts.actingUserId ?? null });
}

/**
 * add_new_user_history (Zulip 12): UserMessage rows for the newest 1000 messages of the channels
 * the user just joined whose history they can access, plus the organization's tracked onboarding
 * messages (OnboardingUserMessage). Rows are "historical" unless the user created the realm.
 * Without tracked onboarding messages all but the newest 20 are marked read; with them, every
 * message that is not an onboarding message is read and starred onboarding messages are starred.
 */
async function addNewUserHistory(
  db: Queryable,
  realmId: number,
  userId: number,
  channelIds: number[],
  opts: { realmCreation: boolean; now: Date },
): Promise<void> {
  const recent = channelIds.length
    ? (
        await db.query(
          `SELECT m.id FROM zerver_message m JOIN zerver_stream s ON s.recipient_id = m.recipient_id
            WHERE m.realm_id = $1 AND s.id = ANY($2::bigint[]) AND s.history_public_to_subscribers
            ORDER BY m.id DESC LIMIT 1000`,
          [realmId, channelIds],
        )
      ).rows.map((r) => Number(r.id))
    : [];
  const tracked = new Map<number, number>(
    (await db.query(`SELECT message_id, flags FROM zerver_onboardingusermessage WHERE realm_id = $1`, [realmId])).rows.map((r) => [
      Number(r.message_id),
      Number(r.flags),
    ]),
  );
  const history = new Set([...recent, ...tracked.keys()]);
  if (history.size === 0) return;
  const already = new Set(
    (await db.query(`SELECT message_id FROM zerver_usermessage WHERE user_profile_id = $1 AND message_id = ANY($2::bigint[])`, [userId, recent])).rows.map(
      (r) => Number(r.message_id),
    ),
  );
  const ids = [...history].filter((m) => !already.has(m)).sort((a, b) => a - b);
  const older = tracked.size ? new Set<number>() : new Set(ids.slice(0, Math.max(0, ids.length - 20)));
  const ONBOARDING_STARRED = 4;
  await insertRows(
    db,
    "zerver_usermessage",
    ids.map((mid) => {
      let flags = opts.realmCreation ? 0 : UserMessageFlag.HISTORICAL;
      if (tracked.size) {
        if (!tracked.has(mid)) flags |= UserMessageFlag.READ;
        else if (tracked.get(mid)! & ONBOARDING_STARRED) flags |= UserMessageFlag.STARRED;
      } else if (older.has(mid)) {
        flags |= UserMessageFlag.READ;
      }
      return { flags, message_id: mid, user_profile_id: userId };
    }),
    null,
  );
}

// ---------------------------------------------------------------------------------------------
// manage.py create_user

/** What create_user and create_realm say they did not do. */
export const NOT_DONE_WELCOME_DM =
  "Welcome Bot's onboarding direct message to the new user (Zulip sends it on sign-up; zulip-manage does not write Welcome Bot's onboarding messages)";
export const NOT_DONE_ACCOUNT_EMAIL = 'the "account registered" email Zulip queues for the new user (zulip-manage does not send it)';

/** zerver_userprofile.full_name is a varchar(100) (MAX_NAME_LENGTH); Zulip's command does no other check. */
export function checkFullName(name: string): string {
  if ([...name].length > MAX_NAME_LENGTH) throw new CommandError("Name too long!");
  return name;
}

/** Whether the realm has a user with this address (delivery or display email, any case). */
export async function userAlreadyExists(q: Queryable, realmId: number, email: string): Promise<boolean> {
  const { rows } = await q.query("SELECT 1 FROM zerver_userprofile WHERE realm_id = $1 AND (upper(delivery_email) = upper($2) OR upper(email) = upper($2))", [
    realmId,
    pyStrip(email),
  ]);
  return rows.length > 0;
}

/** The names of the channels the user is subscribed to, sorted. */
async function subscribedChannelNames(q: Queryable, userId: number): Promise<string[]> {
  const { rows } = await q.query(
    `SELECT s.name FROM zerver_subscription sub JOIN zerver_recipient r ON r.id = sub.recipient_id AND r.type = $2
       JOIN zerver_stream s ON s.id = r.type_id WHERE sub.user_profile_id = $1 ORDER BY s.name`,
    [userId, RecipientType.STREAM],
  );
  return rows.map((r) => r.name as string);
}

export interface NewUserOutcome {
  user: CreatedUser;
  /** The new zerver_userprofile row. */
  row: UserProfile;
  steps: NewHumanUserSteps;
  signup: NoticeResult;
  /** Events that could not be sent, with the reason. */
  eventsNotSent: string[];
  subscribedChannels: string[];
  auditLogIds: number[];
  /** What could not be done about the new user's Jdenticon picture (avatar.ts writeJdenticonAvatar). */
  avatarNotDone: string[];
}

/**
 * manage.py create_user: one transaction with do_create_user (a member, tos_version "-1"),
 * process_new_human_user's rows, their events in Zulip's order (user-creation-events.ts), the
 * signup announcement, and flush_user_profile. Refused when the address is taken (checked again
 * inside the transaction, and the unique index's violation reported the same way).
 */
export async function doCreateUser(
  db: Db,
  realm: { id: number; string_id: string },
  req: { email: string; fullName: string; passwordHash: string | null; tosVersion: string; roleCountBaseline?: Promise<RoleCountBaseline | null> },
  opts: { urls: NewUserUrls; notify: Notify; featureLevel: number; settings: ZulipSettings; deployDir: string; cache?: CacheInvalidation },
): Promise<NewUserOutcome> {
  const { urls, notify } = opts;
  const created = await notify.events.tx(db, async (q) => {
    if (await userAlreadyExists(q, realm.id, req.email)) throw new CommandError("User already exists.");
    let user: CreatedUser;
    try {
      user = await createUser(q, realm.id, {
        email: req.email,
        fullName: req.fullName,
        role: ROLES.MEMBER,
        tosVersion: req.tosVersion,
        passwordHash: req.passwordHash,
        externalHost: urls.externalHost,
        realmHosts: urls.realmHosts,
        fakeEmailDomain: urls.fakeEmailDomain,
        ...(req.roleCountBaseline ? { roleCountBaseline: req.roleCountBaseline } : {}),
      });
    } catch (e: any) {
      if (e?.code === "23505") throw new CommandError("User already exists.");
      throw e;
    }
    const steps = await processNewHumanUserRows(q, user.id, urls);
    // do_create_user's and process_new_human_user's events, in Zulip's order (user-creation-events.ts).
    const systemGroups = await getSystemGroups(q, realm.id);
    const eventsNotSent = await sendUserCreationEvents(q, notify, user.id, {
      featureLevel: opts.featureLevel,
      avatar: readAvatarSettings(opts.settings),
      systemGroupIds: user.systemGroups.map((name) => systemGroups[name]),
      channelIds: await defaultChannelIds(q, realm.id),
    });
    const signup = await sendSignupAnnouncement(q, user.id, { events: { notify, featureLevel: opts.featureLevel, settings: opts.settings } });
    const subscribedChannels = await subscribedChannelNames(q, user.id);
    const { rows: urow } = await q.query("SELECT * FROM zerver_userprofile WHERE id = $1", [user.id]);
    const row = urow[0] as UserProfile;
    await opts.cache?.userChanged(q, row, null);
    return { user, row, steps, signup, eventsNotSent, subscribedChannels, auditLogIds: await auditLogIdsOfUser(q, user.id) };
  });
  opts.cache?.changeCommitted();
  // The Jdenticon picture of a 12.x user, written after the commit (avatar.ts).
  const avatarNotDone = await writeJdenticonAvatar(db, opts.settings, opts.deployDir, created.user.id);
  return { ...created, avatarNotDone };
}
