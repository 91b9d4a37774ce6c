// Seed builder for tests, the demo sandbox and benchmarks: a whole Zulip server's worth of
// realms, users in every role, channels, channel messages and DMs, written with the
// Zulip-faithful primitives of src/zulip/actions (create-realm, create-user, create-channel,
// message-send). Deterministic for a given spec (seed number + `now`).
//
// Like those, nothing here BEGINs or COMMITs: run it inside the caller's transaction.
//
//   await db.tx((q) => seedServer(q, DEMO_SPEC));
//   await db.tx((q) => seedBulkUsers(q, realmId, 100_000, { externalHost }));
import { type Queryable, tableColumns } from "../db/db.js";
import { SeededRandom } from "../lib/random.js";
import { getOrCreateClient } from "../zulip/clients.js";
import { AuditLogEventType, roleCountSnapshot } from "../zulip/audit.js";
import { getSystemGroups, isProvisionalMember, ROLES_IN_SYSTEM_GROUP, SystemGroups, systemGroupNameForRole } from "../zulip/groups.js";
import { BotType, EmailAddressVisibility, MessageType, OrgType, SYSTEM_BOT_REALM, UserMessageFlag } from "../zulip/models.js";
import { ROLE_IDS, ROLES } from "../zulip/roles.js";
import { STREAM_ASSIGNMENT_COLORS } from "../zulip/actions/bulk-add-subscriptions.js";
import { createChannel, type CreatedChannel } from "../zulip/actions/create-channel.js";
import { createRealm, type CreatedRealm } from "../zulip/actions/create-realm.js";
import { createUser, deactivateUser, fakeEmailDomain, type CreatedUser } from "../zulip/actions/create-user.js";
import { sendMessage } from "../zulip/actions/message-send.js";
import { createSystemBots } from "../zulip/actions/server-initialization.js";
import { quoteIdent } from "../db/sql.js";
import { deport, realmHostFor } from "../config/settings.js";
import { escapeMessageHtml } from "../zulip/templates/html.js";

// ---------------------------------------------------------------------------------------------
// Spec

export type SeedUserKind = "owner" | "admin" | "moderator" | "member" | "newMember" | "guest" | "bot";

export interface SeedUserSpec {
  fullName: string;
  /** Default: derived from the name and the realm's email domain. */
  email?: string;
  kind: SeedUserKind;
  /** Create, then deactivate. */
  deactivated?: boolean;
  /** Bots: 1 generic (default) or 2 incoming webhook. */
  botType?: number;
  passwordHash?: string;
}

export interface SeedUserCounts {
  owners?: number;
  admins?: number;
  moderators?: number;
  members?: number;
  /** Members that joined within the waiting period (not in role:fullmembers). */
  newMembers?: number;
  guests?: number;
  bots?: number;
  /** Extra users (members, guests and a bot, in turn) that are deactivated after joining. */
  deactivated?: number;
}

export interface SeedChannelSpec {
  name: string;
  description?: string;
  inviteOnly?: boolean;
  /** Who is subscribed: everyone (incl. guests), members (no guests), staff (moderators and up). */
  subscribers?: "everyone" | "members" | "staff";
  /** Channel messages to generate. */
  messages?: number;
  topics?: string[];
}

export interface SeedRealmSpec {
  stringId: string;
  name: string;
  description?: string;
  orgType?: number;
  /** RealmUserDefault.email_address_visibility (default: Zulip's per org type). */
  emailAddressVisibility?: number;
  waitingPeriodThreshold?: number;
  inviteRequired?: boolean;
  /** Domain of generated delivery emails (default "<string_id>.example.com" / "example.com"). */
  emailDomain?: string;
  /** Users created first (the first owner creates the realm). */
  users?: SeedUserSpec[];
  /** Generated users, on top of `users`. */
  counts?: SeedUserCounts;
  channels?: SeedChannelSpec[];
  /** Messages in the three default channels (spread over topics). */
  defaultChannelMessages?: number;
  directMessages?: number;
  groupDirectMessages?: number;
  /** Extra members created with the fast bulk path (seedBulkUsers). */
  bulkUsers?: number;
}

export interface SeedSpec {
  /** PRNG seed; same seed + same `now` ⇒ same rows (ids, names, keys, timestamps). */
  seed?: number;
  /** EXTERNAL_HOST the realms live under (for hosts and fake emails). */
  externalHost?: string;
  /** The "current time" the data is built around (default: now). */
  now?: Date;
  /** Days between the server's installation and `now` (default 400). */
  ageDays?: number;
  realms: SeedRealmSpec[];
}

export interface SeededUser extends CreatedUser {
  kind: SeedUserKind;
}

export interface SeededRealm {
  realm: CreatedRealm;
  host: string;
  users: SeededUser[];
  /** All channels, default ones first. */
  channels: CreatedChannel[];
  messages: number;
  bulkUsers: number;
}

export interface SeedResult {
  externalHost: string;
  systemRealm: CreatedRealm;
  systemBots: Record<string, number>;
  realms: SeededRealm[];
}

/** The demo server: zulipinternal, a root-domain organization and one subdomain organization. */
export const DEMO_SPEC: SeedSpec = {
  seed: 12,
  externalHost: "zulip.example.net",
  realms: [
    {
      stringId: "",
      name: "Acme Corporation",
      description: "Everything Acme, in one place.",
      orgType: OrgType.UNSPECIFIED, // email visibility: admins only ⇒ fake display emails
      waitingPeriodThreshold: 3,
      emailDomain: "acme.example.com",
      users: [
        { fullName: "Olivia Owner", email: "olivia@acme.example.com", kind: "owner" },
        { fullName: "Aaron Admin", email: "aaron@acme.example.com", kind: "admin" },
        { fullName: "Mia Moderator", email: "mia@acme.example.com", kind: "moderator" },
        { fullName: "Max Member", email: "max@acme.example.com", kind: "member" },
        { fullName: "Nora Newcomer", email: "nora@acme.example.com", kind: "newMember" },
        { fullName: "Gus Guest", email: "gus@acme.example.com", kind: "guest" },
        { fullName: "Dora Departed", email: "dora@acme.example.com", kind: "member", deactivated: true },
        { fullName: "Deploy Bot", email: "deploy-bot@zulip.example.net", kind: "bot", botType: BotType.INCOMING_WEBHOOK },
      ],
      counts: { owners: 1, admins: 2, moderators: 2, members: 14, newMembers: 3, guests: 3, bots: 2, deactivated: 3 },
      channels: [
        { name: "announce", description: "Company-wide announcements", subscribers: "everyone", messages: 6, topics: ["all hands", "office"] },
        { name: "engineering", description: "Build, ship, repeat", subscribers: "members", messages: 10, topics: ["releases", "ci", "reviews"] },
        { name: "design", description: "Pixels and prototypes", subscribers: "members", messages: 5, topics: ["mockups"] },
        {
          name: "leadership",
          description: "Private: owners, admins and moderators",
          inviteOnly: true,
          subscribers: "staff",
          messages: 4,
          topics: ["planning"],
        },
      ],
      defaultChannelMessages: 8,
      directMessages: 8,
      groupDirectMessages: 3,
    },
    {
      stringId: "lab",
      name: "Research Lab",
      orgType: OrgType.RESEARCH,
      emailAddressVisibility: EmailAddressVisibility.EVERYONE,
      waitingPeriodThreshold: 0,
      emailDomain: "lab.example.org",
      counts: { owners: 1, admins: 1, moderators: 1, members: 8, guests: 2, bots: 1, deactivated: 2 },
      channels: [
        { name: "experiments", description: "Lab notebook", subscribers: "members", messages: 6, topics: ["run 1", "run 2"] },
        { name: "journal club", subscribers: "everyone", messages: 4, topics: ["this week"] },
      ],
      defaultChannelMessages: 4,
      directMessages: 4,
      groupDirectMessages: 1,
    },
  ],
};

// ---------------------------------------------------------------------------------------------
// Names and text

const FIRST_NAMES = [
  "Ada",
  "Ben",
  "Chloe",
  "Dev",
  "Elena",
  "Farid",
  "Grace",
  "Hiro",
  "Ines",
  "Jonas",
  "Kavya",
  "Liam",
  "Maya",
  "Niko",
  "Omar",
  "Priya",
  "Quinn",
  "Rosa",
  "Sami",
  "Tara",
  "Umar",
  "Vera",
  "Wei",
  "Xenia",
  "Yusuf",
  "Zoe",
  "Amara",
  "Bruno",
  "Carmen",
  "Dmitri",
  "Emeka",
  "Freya",
  "Goran",
  "Hana",
  "Ivan",
  "Jade",
  "Kofi",
  "Lena",
  "Mateo",
  "Nadia",
];
const LAST_NAMES = [
  "Abbott",
  "Bianchi",
  "Chen",
  "Dubois",
  "Eriksen",
  "Fischer",
  "Garcia",
  "Haddad",
  "Ito",
  "Jensen",
  "Kowalski",
  "Lopez",
  "Müller",
  "Nakamura",
  "Okafor",
  "Petrov",
  "Quispe",
  "Rossi",
  "Singh",
  "Tanaka",
  "Ueda",
  "Varga",
  "Wang",
  "Xu",
  "Yilmaz",
  "Zhang",
  "Andersson",
  "Bakker",
  "Costa",
  "Demir",
];
const TIMEZONES = ["", "UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "America/Sao_Paulo", "Asia/Tokyo", "Africa/Lagos"];
const SENTENCES = [
  "Sounds good to me.",
  "I pushed a fix for that this morning.",
  "Can we move this to tomorrow's meeting?",
  "The numbers look much better after the last change.",
  "Thanks, that answers my question!",
  "Who owns the follow-up here?",
  "I'll write up a summary and share it later today.",
  "Let's keep this topic for the discussion, please.",
  "Heads up: the staging server restarts at noon.",
  "Great work, everyone.",
  "I disagree, but happy to try it for a week.",
  "Is there a ticket for this yet?",
];
const BOT_NAMES = ["Alert", "Build", "Calendar", "Digest", "Echo", "Feed", "GitHub", "Helper"];

function slug(s: string): string {
  return s
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, ".")
    .replace(/^\.|\.$/g, "");
}

// ---------------------------------------------------------------------------------------------
// seedServer

const DAY = 86400_000;

const KIND_ROLE: Record<SeedUserKind, number> = {
  owner: ROLES.REALM_OWNER,
  admin: ROLES.REALM_ADMINISTRATOR,
  moderator: ROLES.MODERATOR,
  member: ROLES.MEMBER,
  newMember: ROLES.MEMBER,
  guest: ROLES.GUEST,
  bot: ROLES.MEMBER,
};

/**
 * Build a server: zulipinternal with its system bots, then each realm of the spec with its
 * users (every role, provisional members, guests, bots, deactivated users), channels, channel
 * messages and DMs. Runs inside the caller's transaction.
 */
export async function seedServer(db: Queryable, spec: SeedSpec = DEMO_SPEC): Promise<SeedResult> {
  const rng = new SeededRandom(spec.seed ?? 1);
  const externalHost = spec.externalHost ?? "zulip.example.net";
  const now = spec.now ?? new Date();
  const installed = new Date(now.getTime() - (spec.ageDays ?? 400) * DAY);

  let systemRealm: CreatedRealm;
  const existingSystem = await db.query(`SELECT id FROM zerver_realm WHERE string_id = $1`, [SYSTEM_BOT_REALM]);
  if (existingSystem.rows.length) {
    const id = Number(existingSystem.rows[0].id);
    systemRealm = {
      id,
      stringId: SYSTEM_BOT_REALM,
      name: "System bot realm",
      dateCreated: installed,
      internal: true,
      groups: await getSystemGroups(db, id),
      channels: [],
    };
  } else {
    systemRealm = await createRealm(db, { stringId: SYSTEM_BOT_REALM, dateCreated: installed, random: rng });
  }
  const systemBots = await createSystemBots(db, systemRealm, { dateJoined: installed, random: rng });

  const realms: SeededRealm[] = [];
  for (const [i, rs] of spec.realms.entries()) {
    realms.push(await seedRealm(db, rs, { rng, externalHost, now, created: new Date(installed.getTime() + (i + 1) * 60_000) }));
  }
  return { externalHost, systemRealm, systemBots, realms };
}

interface PlannedUser extends SeedUserSpec {
  email: string;
  dateJoined: Date;
  deactivatedAt?: Date;
  timezone: string;
}

type TimelineEvent =
  | { at: Date; type: "join"; user: PlannedUser }
  | { at: Date; type: "deactivate"; user: PlannedUser }
  | { at: Date; type: "channelMessage"; channel: string; topic: string }
  | { at: Date; type: "dm"; size: number; turns: number };

/**
 * One realm, simulated on a timeline so that every row is what Zulip would have written at that
 * moment: users join (and get default + invited channels, with history rows for earlier
 * messages), users are deactivated, messages are sent by people who were there at the time.
 */
async function seedRealm(db: Queryable, rs: SeedRealmSpec, ctx: { rng: SeededRandom; externalHost: string; now: Date; created: Date }): Promise<SeededRealm> {
  const { rng, externalHost, now, created: realmCreated } = ctx;
  const host = realmHostFor(rs.stringId, externalHost);
  const botDomain = host.split(":")[0];
  const domain = rs.emailDomain ?? (rs.stringId ? `${rs.stringId}.example.com` : "example.com");
  const threshold = rs.waitingPeriodThreshold ?? 0;
  const ageMs = now.getTime() - realmCreated.getTime();

  // ---- Plan the users.
  const planned: PlannedUser[] = [];
  const usedEmails = new Set<string>();
  const usedNames = new Set<string>();
  const joinedAt = (kind: SeedUserKind): Date => {
    if (kind === "newMember" && threshold > 0) {
      return new Date(now.getTime() - 60_000 - rng.int(Math.max(1, threshold * DAY - 3600_000)));
    }
    // Established users joined after the realm existed and before the waiting period ended.
    const latest = Math.max(ageMs - (threshold + 1) * DAY, DAY);
    return new Date(realmCreated.getTime() + 3600_000 + rng.int(Math.max(1, latest - 3600_000)));
  };
  const addPlanned = (u: SeedUserSpec & { email: string }) => {
    const email = u.email.toLowerCase();
    usedEmails.add(email);
    usedNames.add(u.fullName);
    const dateJoined = joinedAt(u.kind);
    planned.push({
      ...u,
      email,
      dateJoined,
      deactivatedAt: u.deactivated ? new Date(dateJoined.getTime() + 60_000 + rng.int(Math.max(1, now.getTime() - dateJoined.getTime() - 120_000))) : undefined,
      timezone: u.kind === "bot" ? "" : rng.pick(TIMEZONES),
    });
  };
  const freshName = (): string => {
    for (let attempt = 0; ; attempt++) {
      const name = `${rng.pick(FIRST_NAMES)} ${rng.pick(LAST_NAMES)}${attempt > 50 ? ` ${attempt}` : ""}`;
      if (!usedNames.has(name)) return name;
    }
  };
  const freshEmail = (base: string, atDomain: string): string => {
    let email = `${base}@${atDomain}`.toLowerCase();
    for (let n = 2; usedEmails.has(email); n++) email = `${base}${n}@${atDomain}`.toLowerCase();
    return email;
  };
  const botEmail = (botName: string) => freshEmail(`${slug(botName).replace(/\.bot$/, "")}-bot`, botDomain);
  for (const u of rs.users ?? []) {
    addPlanned({ ...u, email: u.email ?? (u.kind === "bot" ? botEmail(u.fullName) : freshEmail(slug(u.fullName), domain)) });
  }
  const c = rs.counts ?? {};
  const generated: [SeedUserKind, number][] = [
    ["owner", c.owners ?? 0],
    ["admin", c.admins ?? 0],
    ["moderator", c.moderators ?? 0],
    ["member", c.members ?? 0],
    ["newMember", c.newMembers ?? 0],
    ["guest", c.guests ?? 0],
  ];
  for (const [kind, n] of generated) {
    for (let k = 0; k < n; k++) {
      const fullName = freshName();
      addPlanned({ fullName, kind, email: freshEmail(slug(fullName), domain) });
    }
  }
  for (let k = 0; k < (c.bots ?? 0); k++) {
    const fullName = `${BOT_NAMES[k % BOT_NAMES.length]} Bot`;
    addPlanned({ fullName, kind: "bot", botType: k % 2 === 0 ? BotType.DEFAULT : BotType.INCOMING_WEBHOOK, email: botEmail(fullName) });
  }
  for (let k = 0; k < (c.deactivated ?? 0); k++) {
    const kind = (["member", "guest", "bot"] as const)[k % 3];
    const fullName = kind === "bot" ? `${BOT_NAMES[(k + 3) % BOT_NAMES.length]} Bot` : freshName();
    addPlanned({ fullName, kind, deactivated: true, email: kind === "bot" ? botEmail(fullName) : freshEmail(slug(fullName), domain) });
  }
  const creator = planned.find((u) => u.kind === "owner");
  if (!creator) throw new Error(`seed: realm '${rs.stringId}' needs at least one owner`);
  creator.dateJoined = realmCreated;

  // ---- The realm, its creator and the channels the creator sets up right away.
  const realm = await createRealm(db, {
    stringId: rs.stringId,
    name: rs.name,
    description: rs.description,
    orgType: rs.orgType,
    emailAddressVisibility: rs.emailAddressVisibility,
    waitingPeriodThreshold: threshold,
    inviteRequired: rs.inviteRequired,
    dateCreated: realmCreated,
    random: rng,
  });
  const users: SeededUser[] = [];
  const byEmail = new Map<string, SeededUser>();
  const join = async (u: PlannedUser, channelIds: number[]) => {
    let botOwnerId: number | null = null;
    if (u.kind === "bot") {
      const candidates = users.filter((h) => !h.isBot && h.isActive && h.role !== ROLES.GUEST);
      botOwnerId = candidates.length ? rng.pick(candidates).id : users[0].id;
    }
    const created = await createUser(db, realm, {
      email: u.email,
      fullName: u.fullName,
      role: KIND_ROLE[u.kind],
      botType: u.kind === "bot" ? (u.botType ?? BotType.DEFAULT) : null,
      botOwnerId,
      dateJoined: u.dateJoined,
      passwordHash: u.passwordHash,
      timezone: u.timezone,
      externalHost,
      realmCreation: u === creator,
      actingUserId: u.kind === "bot" ? botOwnerId : undefined,
      channelIds,
      now,
      random: rng,
    });
    const seeded: SeededUser = { ...created, kind: u.kind };
    users.push(seeded);
    byEmail.set(u.email, seeded);
    return seeded;
  };
  const creatorUser = await join(creator, []);

  const channels: CreatedChannel[] = [...realm.channels];
  const customChannels: { spec: SeedChannelSpec; channel: CreatedChannel }[] = [];
  for (const [i, ch] of (rs.channels ?? []).entries()) {
    const channel = await createChannel(db, realm, {
      name: ch.name,
      description: ch.description,
      inviteOnly: ch.inviteOnly,
      creatorId: creatorUser.id,
      subscribers: [creatorUser.id],
      dateCreated: new Date(realmCreated.getTime() + (10 + i) * 60_000),
    });
    channels.push(channel);
    customChannels.push({ spec: ch, channel });
  }
  const channelsFor = (role: number, isBot: boolean): number[] =>
    isBot
      ? []
      : customChannels
          .filter(({ spec }) => {
            const who = spec.subscribers ?? "members";
            return who === "everyone" || (who === "members" ? role !== ROLES.GUEST : role <= ROLES.MODERATOR);
          })
          .map(({ channel }) => channel.id);

  // ---- The timeline.
  const events: TimelineEvent[] = [];
  for (const u of planned) {
    if (u !== creator) events.push({ at: u.dateJoined, type: "join", user: u });
    if (u.deactivatedAt) events.push({ at: u.deactivatedAt, type: "deactivate", user: u });
  }
  const window = Math.min(14 * DAY, ageMs - 3600_000);
  const recentTime = () => new Date(now.getTime() - 300_000 - rng.int(Math.max(1, window - 300_000)));
  for (let k = 0; k < (rs.defaultChannelMessages ?? 0) && realm.channels.length; k++) {
    events.push({
      at: recentTime(),
      type: "channelMessage",
      channel: realm.channels[k % realm.channels.length].name,
      topic: rng.pick(["greetings", "questions", "random"]),
    });
  }
  for (const { spec } of customChannels) {
    for (let k = 0; k < (spec.messages ?? 0); k++) {
      events.push({ at: recentTime(), type: "channelMessage", channel: spec.name, topic: rng.pick(spec.topics ?? ["general chat"]) });
    }
  }
  for (let k = 0; k < (rs.directMessages ?? 0); k++) events.push({ at: recentTime(), type: "dm", size: 2, turns: 1 });
  for (let k = 0; k < (rs.groupDirectMessages ?? 0); k++) events.push({ at: recentTime(), type: "dm", size: 3 + rng.int(2), turns: 3 });
  events.sort((a, b) => a.at.getTime() - b.at.getTime());

  await getOrCreateClient(db, "website");
  const channelByName = new Map(channels.map((ch) => [ch.name, ch]));
  const subscribersOf = async (channelId: number): Promise<SeededUser[]> => {
    const ids = new Set(
      (
        await db.query(
          `SELECT sub.user_profile_id AS id FROM zerver_subscription sub JOIN zerver_stream s ON s.recipient_id = sub.recipient_id
            WHERE s.id = $1 AND sub.active AND sub.is_user_active`,
          [channelId],
        )
      ).rows.map((r) => Number(r.id)),
    );
    return users.filter((u) => ids.has(u.id) && !u.isBot);
  };
  let messages = 0;
  const send = async (at: Date, senderId: number, to: { channelId: number; topic: string } | { userIds: number[] }, mention?: SeededUser) => {
    const sentence = rng.pick(SENTENCES);
    const content = mention ? `@**${mention.fullName}** ${sentence}` : sentence;
    const rendered = mention
      ? `<p><span class="user-mention" data-user-id="${mention.id}">@${escapeMessageHtml(mention.fullName)}</span> ${escapeMessageHtml(sentence)}</p>`
      : undefined;
    const sent = await sendMessage(db, {
      senderId,
      to,
      content,
      renderedContent: rendered,
      mentionedUserIds: mention ? [mention.id] : undefined,
      dateSent: at,
    });
    messages++;
    // Older messages have mostly been read by their recipients by now.
    if (now.getTime() - at.getTime() > 2 * DAY) {
      await db.query(
        `UPDATE zerver_usermessage SET flags = flags | 1
          WHERE message_id = $1 AND user_profile_id <> $2 AND (hashtext(user_profile_id::text || ':' || $1::text) & 3) <> 0`,
        [sent.id, senderId],
      );
    }
  };
  for (const ev of events) {
    if (ev.type === "join") {
      await join(ev.user, channelsFor(KIND_ROLE[ev.user.kind], ev.user.kind === "bot"));
    } else if (ev.type === "deactivate") {
      const u = byEmail.get(ev.user.email)!;
      await deactivateUser(db, u.id, { when: ev.at, actingUserId: u.isBot ? null : creatorUser.id });
      u.isActive = false;
    } else if (ev.type === "channelMessage") {
      const channel = channelByName.get(ev.channel)!;
      const senders = (await subscribersOf(channel.id)).filter((u) => u.isActive);
      if (!senders.length) continue;
      const sender = rng.pick(senders);
      const others = senders.filter((u) => u.id !== sender.id);
      const mention = others.length && rng.int(6) === 0 ? rng.pick(others) : undefined;
      await send(ev.at, sender.id, { channelId: channel.id, topic: ev.topic }, mention);
    } else {
      const active = users.filter((u) => !u.isBot && u.isActive);
      if (active.length < ev.size) continue;
      const group = rng.shuffle(active).slice(0, ev.size);
      for (let turn = 0; turn < ev.turns; turn++) {
        const sender = group[turn % group.length];
        await send(new Date(ev.at.getTime() + turn * 90_000), sender.id, { userIds: group.filter((u) => u.id !== sender.id).map((u) => u.id) });
      }
    }
  }

  let bulkUsers = 0;
  if (rs.bulkUsers) {
    const r = await seedBulkUsers(db, realm.id, rs.bulkUsers, { externalHost, dateJoined: now, now, seed: rng.int(1 << 30) });
    bulkUsers = r.count;
  }
  return { realm, host, users, channels, messages, bulkUsers };
}

// ---------------------------------------------------------------------------------------------
// Fast bulk paths (benchmarks)

export interface BulkUsersOptions {
  /** Role of all the users (default member). */
  role?: number;
  externalHost?: string;
  /** Fake-email domain when the host cannot be used. */
  fakeEmailDomain?: string;
  /** Delivery emails are <prefix><n>@<domain>. */
  emailPrefix?: string;
  emailDomain?: string;
  /** Full names are "<namePrefix> <n>". */
  namePrefix?: string;
  dateJoined?: Date;
  now?: Date;
  /** Subscribe the users to the realm's default channels (default true). */
  defaultChannels?: boolean;
  /** Makes emails, keys and uuids deterministic; default random. */
  seed?: number;
}

/**
 * Create `count` users in one realm with set-based SQL (a handful of INSERT … SELECT statements,
 * independent of count): the same rows createUser writes — settings copied from
 * RealmUserDefault, fake display emails, USER_CREATED audits with incrementing ROLE_COUNT
 * snapshots, system-group memberships with 703 audits, default-channel subscriptions with 301
 * audits and subscriber counts. (No history UserMessage rows for existing messages.)
 * Runs inside the caller's transaction.
 */
export async function seedBulkUsers(
  db: Queryable,
  realmId: number,
  count: number,
  opts: BulkUsersOptions = {},
): Promise<{ firstId: number; lastId: number; count: number }> {
  if (count <= 0) return { firstId: 0, lastId: -1, count: 0 };
  const role = opts.role ?? ROLES.MEMBER;
  const realm = (await db.query(`SELECT * FROM zerver_realm WHERE id = $1`, [realmId])).rows[0];
  if (!realm) throw new Error(`realm ${realmId} does not exist`);
  const groups = await getSystemGroups(db, realmId);
  const rud = (await db.query(`SELECT * FROM zerver_realmuserdefault WHERE realm_id = $1`, [realmId])).rows[0];
  const visibility = Number(rud.email_address_visibility);
  const dateJoined = opts.dateJoined ?? new Date();
  const now = opts.now ?? new Date(Math.max(Date.now(), dateJoined.getTime()));
  const nonce = opts.seed !== undefined ? `s${opts.seed}` : `r${Date.now()}${Math.random()}`;
  const host = opts.externalHost ? realmHostFor(realm.string_id, opts.externalHost) : "";
  let fakeDomain: string | null = null;
  if (visibility !== EmailAddressVisibility.EVERYONE) {
    if (!host && !opts.fakeEmailDomain) throw new Error("seedBulkUsers: externalHost is needed for fake display emails");
    fakeDomain = opts.fakeEmailDomain ?? fakeEmailDomain(host, deport(opts.externalHost!));
  }
  const emailDomain = opts.emailDomain ?? (realm.string_id ? `${realm.string_id}.example.com` : "example.com");
  const prefix = opts.emailPrefix ?? "bulk";
  const namePrefix = opts.namePrefix ?? "Bulk User";

  // Settings columns copied from RealmUserDefault (as createUser does).
  const upCols = await tableColumns(db, "zerver_userprofile");
  const skip = new Set(["id", "realm_id", "default_language", "enable_login_emails", "allow_private_data_export"]);
  const settingCols = Object.keys(rud).filter((k) => !skip.has(k) && upCols.has(k));

  // The ROLE_COUNT state before these users exist.
  const before = { ...((await roleCountSnapshot(db, realmId)) as { "10": { "11": Record<string, number>; "12": number } })["10"] };
  await db.query(`DROP TABLE IF EXISTS pg_temp.zm_bulk_users`);
  await db.query(`CREATE TEMP TABLE zm_bulk_users (id int PRIMARY KEY, n int NOT NULL)`);
  await db.query(
    `INSERT INTO zm_bulk_users (id, n)
       SELECT nextval(pg_get_serial_sequence('zerver_userprofile', 'id'))::int, g FROM generate_series(1, $1::int) g ORDER BY g`,
    [count],
  );
  // Avoid email collisions with earlier bulk runs: continue the numbering.
  const startRow = await db.query(`SELECT count(*)::int AS n FROM zerver_userprofile WHERE realm_id = $1 AND delivery_email LIKE $2`, [
    realmId,
    `${prefix}%@${emailDomain}`,
  ]);
  const offset = startRow.rows[0].n as number;

  const identity: Record<string, string> = {
    id: "b.id",
    password: `'!' || substr(md5($4 || b.id || 'p') || md5($4 || b.id || 'q'), 1, 40)`,
    last_login: "$3::timestamptz",
    is_superuser: "false",
    delivery_email: `$5 || (b.n + $8)::text || '@' || $6`,
    email: `CASE WHEN $7::text = '' THEN $5 || (b.n + $8)::text || '@' || $6 ELSE 'user' || b.id || '@' || $7 END`,
    full_name: `$9 || ' ' || (b.n + $8)::text`,
    date_joined: "$3::timestamptz",
    tos_version: "NULL",
    api_key: `substr(md5($4 || b.id || 'k'), 1, 32)`,
    uuid: `md5($4 || b.id || 'u')::uuid`,
    is_staff: "false",
    is_active: "true",
    is_bot: "false",
    bot_type: "NULL",
    role: "$2::smallint",
    long_term_idle: "false",
    last_active_message_id: "NULL",
    is_mirror_dummy: "false",
    can_forge_sender: "false",
    can_create_users: "false",
    last_reminder: "NULL",
    rate_limits: "''",
    default_all_public_streams: "false",
    timezone: "''",
    avatar_source: `${literal(realm.default_avatar_source ?? "G")}`,
    avatar_version: "1",
    avatar_hash: "NULL",
    bot_owner_id: "NULL",
    realm_id: "$1::int",
    default_events_register_stream_id: "NULL",
    default_sending_stream_id: "NULL",
    allow_private_data_export: "false",
    can_change_user_emails: "false",
    default_language: literal(realm.default_language ?? "en"),
    enable_login_emails: "true",
    is_imported_stub: "false",
    third_party_api_state: `'{}'::jsonb`,
    is_deleted: "false",
  };
  const cols = [...settingCols.map((c) => [c, `r.${quoteIdent(c)}`] as const), ...Object.entries(identity).filter(([c]) => upCols.has(c))];
  await db.query(
    `INSERT INTO zerver_userprofile (${cols.map(([c]) => quoteIdent(c)).join(", ")})
     SELECT ${cols.map(([, e]) => e).join(", ")}
       FROM zm_bulk_users b CROSS JOIN (SELECT * FROM zerver_realmuserdefault WHERE realm_id = $1) r
      ORDER BY b.id`,
    [realmId, role, dateJoined, nonce, prefix, emailDomain, fakeDomain ?? "", offset, namePrefix],
  );

  // USER_CREATED with ROLE_COUNT snapshots: the state before plus the n users created so far.
  const counts = { ...before["11"] };
  const wg = (await db.query(`SELECT name, is_system_group FROM zerver_namedusergroup WHERE usergroup_ptr_id = $1`, [realm.workplace_users_group_id]))
    .rows[0] as { name: string; is_system_group: boolean } | undefined;
  const provisional = isProvisionalMember(role, dateJoined, Number(realm.waiting_period_threshold), now);
  let newAreWorkplace: boolean;
  if (wg?.is_system_group && wg.name === SystemGroups.FULL_MEMBERS) {
    newAreWorkplace = role === ROLES.MEMBER ? !provisional : role !== ROLES.GUEST;
  } else if (wg?.is_system_group) {
    newAreWorkplace = (ROLES_IN_SYSTEM_GROUP[wg.name] ?? []).includes(role);
  } else {
    newAreWorkplace = false; // an anonymous/user-defined group: the new users are not in it
  }
  const before11 = counts;
  const k = (key: string) => `'${key}', ${before11[key]} + CASE WHEN $3::text = '${key}' THEN b.n ELSE 0 END`;
  const wk = newAreWorkplace ? "workplace_users" : "non_workplace_users";
  const roleKeys = ROLE_IDS.map(String);
  await db.query(
    `INSERT INTO zerver_realmauditlog (event_time, backfilled, extra_data, event_type, event_last_message_id,
                                      acting_user_id, modified_user_id, realm_id, modified_stream_id,
                                      modified_user_group_id, scrubbed)
     SELECT $2::timestamptz, false,
            jsonb_build_object('10', jsonb_build_object('11', jsonb_build_object(
              ${[...roleKeys, "workplace_users", "non_workplace_users"]
                .map((key) => (key === wk ? `'${key}', ${before11[key]} + b.n` : roleKeys.includes(key) ? k(key) : `'${key}', ${before11[key]}`))
                .join(", ")}), '12', ${before["12"]})),
            ${AuditLogEventType.USER_CREATED}, NULL, b.id, b.id, $1::int, NULL, NULL, false
       FROM zm_bulk_users b ORDER BY b.id`,
    [realmId, dateJoined, String(role)],
  );

  // System-group memberships (+ role:fullmembers for members past the waiting period).
  const roleGroup = groups[systemGroupNameForRole(role)];
  const memberGroups = [roleGroup];
  if (role === ROLES.MEMBER && !provisional) {
    memberGroups.push(groups[SystemGroups.FULL_MEMBERS]);
  }
  for (const gid of memberGroups) {
    await db.query(`INSERT INTO zerver_usergroupmembership (user_group_id, user_profile_id) SELECT $1::bigint, b.id FROM zm_bulk_users b ORDER BY b.id`, [gid]);
  }
  await db.query(
    `INSERT INTO zerver_realmauditlog (event_time, backfilled, extra_data, event_type, acting_user_id, modified_user_id,
                                      realm_id, modified_user_group_id, scrubbed)
     SELECT $2::timestamptz, false, '{}'::jsonb, ${AuditLogEventType.USER_GROUP_DIRECT_USER_MEMBERSHIP_ADDED}, b.id, b.id, $1::int, g.gid, false
       FROM zm_bulk_users b CROSS JOIN unnest($3::bigint[]) WITH ORDINALITY AS g(gid, o) ORDER BY b.id, g.o`,
    [realmId, dateJoined, memberGroups],
  );

  if (opts.defaultChannels ?? true) {
    const ds = (
      await db.query(
        `SELECT s.id, s.recipient_id FROM zerver_defaultstream d JOIN zerver_stream s ON s.id = d.stream_id
          WHERE d.realm_id = $1 ORDER BY s.recipient_id`,
        [realmId],
      )
    ).rows;
    if (ds.length) {
      const streamIds = ds.map((r) => Number(r.id));
      const recipientIds = ds.map((r) => Number(r.recipient_id));
      const colors = recipientIds.map((rid, i) =>
        i < STREAM_ASSIGNMENT_COLORS.length ? STREAM_ASSIGNMENT_COLORS[i] : STREAM_ASSIGNMENT_COLORS[rid % STREAM_ASSIGNMENT_COLORS.length],
      );
      await db.query(
        `INSERT INTO zerver_subscription (active, is_user_active, is_muted, color, pin_to_top, desktop_notifications,
                                         audible_notifications, push_notifications, email_notifications,
                                         wildcard_mentions_notify, recipient_id, user_profile_id)
         SELECT true, true, false, c.color, false, NULL, NULL, NULL, NULL, NULL, c.rid, b.id
           FROM zm_bulk_users b CROSS JOIN unnest($1::int[], $2::text[]) WITH ORDINALITY AS c(rid, color, o)
          ORDER BY b.id, c.o`,
        [recipientIds, colors],
      );
      const last = await db.query(`SELECT coalesce(max(id), -1) AS id FROM zerver_message`);
      await db.query(
        `INSERT INTO zerver_realmauditlog (event_time, backfilled, extra_data, event_type, event_last_message_id,
                                          acting_user_id, modified_user_id, realm_id, modified_stream_id, scrubbed)
         SELECT $2::timestamptz, false, '{}'::jsonb, ${AuditLogEventType.SUBSCRIPTION_CREATED}, $4::int, NULL, b.id, $1::int, s.sid, false
           FROM zm_bulk_users b CROSS JOIN unnest($3::bigint[]) WITH ORDINALITY AS s(sid, o) ORDER BY b.id, s.o`,
        [realmId, dateJoined, streamIds, Number(last.rows[0].id)],
      );
      await db.query(`UPDATE zerver_stream SET subscriber_count = subscriber_count + $2 WHERE id = ANY($1::bigint[])`, [streamIds, count]);
    }
  }
  const range = await db.query(`SELECT min(id) AS a, max(id) AS b FROM zm_bulk_users`);
  await db.query(`DROP TABLE pg_temp.zm_bulk_users`);
  return { firstId: Number(range.rows[0].a), lastId: Number(range.rows[0].b), count };
}

export interface BulkMessagesOptions {
  channelId: number;
  count: number;
  /** Senders to rotate through (default: the channel's active human subscribers). */
  senderIds?: number[];
  topics?: string[];
  /** First message's date_sent; later ones follow every `intervalSeconds` (default 60). */
  start?: Date;
  intervalSeconds?: number;
  client?: string;
}

/**
 * Insert `count` channel messages with set-based SQL, plus one UserMessage row per active
 * subscriber (not long-term idle) per message; the sender's own row is read.
 */
export async function seedBulkMessages(db: Queryable, opts: BulkMessagesOptions): Promise<{ firstId: number; lastId: number; userMessages: number }> {
  const s = (await db.query(`SELECT id, realm_id, recipient_id FROM zerver_stream WHERE id = $1`, [opts.channelId])).rows[0];
  if (!s) throw new Error(`channel ${opts.channelId} does not exist`);
  const subscribers = (
    await db.query(
      `SELECT u.id, u.is_bot FROM zerver_subscription sub JOIN zerver_userprofile u ON u.id = sub.user_profile_id
        WHERE sub.recipient_id = $1 AND sub.active AND sub.is_user_active ORDER BY u.id`,
      [s.recipient_id],
    )
  ).rows;
  const senders = opts.senderIds ?? subscribers.filter((r) => !r.is_bot).map((r) => Number(r.id));
  if (!senders.length) throw new Error(`channel ${opts.channelId} has no senders`);
  const clientId = await getOrCreateClient(db, opts.client ?? "website");
  const topics = opts.topics ?? ["bulk topic 1", "bulk topic 2", "bulk topic 3"];
  const start = opts.start ?? new Date(Date.now() - opts.count * (opts.intervalSeconds ?? 60) * 1000);
  // Only the id range comes back: RETURNING a million ids to the client (and spreading them
  // into Math.min) does not scale.
  const ins = await db.query(
    `WITH inserted AS (INSERT INTO zerver_message (type, subject, content, rendered_content, rendered_content_version, date_sent,
                                last_edit_time, edit_history, has_attachment, has_image, has_link, search_tsvector,
                                sender_id, sending_client_id, realm_id, recipient_id, is_channel_message)
     SELECT ${MessageType.NORMAL}, ($1::text[])[1 + (g % cardinality($1::text[]))], 'Bulk message ' || g, '<p>Bulk message ' || g || '</p>', 1,
            $2::timestamptz + make_interval(secs => g * $3::double precision), NULL, NULL, false, false, false, NULL,
            ($4::int[])[1 + (g % cardinality($4::int[]))], $5::int, $6::int, $7::int, true
       FROM generate_series(0, $8::int - 1) g ORDER BY g
     RETURNING id)
     SELECT min(id) AS first_id, max(id) AS last_id, count(*)::int AS n FROM inserted`,
    [topics, start, opts.intervalSeconds ?? 60, senders, clientId, Number(s.realm_id), Number(s.recipient_id), opts.count],
  );
  if (!ins.rows[0].n) return { firstId: 0, lastId: -1, userMessages: 0 };
  const firstId = Number(ins.rows[0].first_id);
  const lastId = Number(ins.rows[0].last_id);
  const um = await db.query(
    `INSERT INTO zerver_usermessage (flags, message_id, user_profile_id)
     SELECT CASE WHEN m.sender_id = u.id THEN ${UserMessageFlag.READ} ELSE 0 END, m.id, u.id
       FROM zerver_message m
       JOIN zerver_subscription sub ON sub.recipient_id = m.recipient_id AND sub.active AND sub.is_user_active
       JOIN zerver_userprofile u ON u.id = sub.user_profile_id AND NOT u.long_term_idle
      WHERE m.id BETWEEN $1 AND $2 AND m.recipient_id = $3
      ORDER BY m.id, u.id`,
    [firstId, lastId, Number(s.recipient_id)],
  );
  await db.query(`UPDATE zerver_stream SET first_message_id = $2 WHERE id = $1 AND first_message_id IS NULL`, [s.id, firstId]);
  return { firstId, lastId, userMessages: um.rowCount ?? 0 };
}

function literal(s: string): string {
  return "'" + String(s).replace(/'/g, "''") + "'";
}
