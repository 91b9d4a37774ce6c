// zerver/lib/server_initialization.py: whether the server is initialized (has any realm), and
// create_internal_realm's bots (settings.INTERNAL_BOTS). The system bot realm itself
// ("zulipinternal") is created by do_create_realm when the server has no realm yet
// (create-realm.ts createInternalRealm).
import { AuditLogEventType, auditLogRow, insertAuditLogRow, NEW_VALUE, OLD_VALUE } from "../audit.js";
import type { Queryable } from "../../db/db.js";
import { EnvironmentError } from "../../lib/errors.js";
import { cryptoRandom, type RandomSource } from "../../lib/random.js";
import { getSystemGroups, isProvisionalMember, SystemGroups } from "../groups.js";
import { realmIdOf, type RealmIdOrRef } from "../lookup.js";
import { BotType, SystemBots } from "../models.js";
import { unusablePassword } from "../password.js";
import { ROLES } from "../roles.js";
import { hasPersonalRecipients, insertRows, nextId, type Row } from "../rows.js";
import { USER_SETTING_DEFAULTS } from "../user-settings.js";
import { createPersonalRecipients, loadRealm, userAccountValues } from "./create-user.js";

/**
 * settings.INTERNAL_BOTS (models.ts SystemBots), in the order bulk_create_users creates them
 * (sorted by email); create_internal_realm lets the email gateway forge senders.
 */
const SYSTEM_BOTS = Object.values(SystemBots)
  .map((b) => ({ ...b, canForgeSender: b === SystemBots.EMAIL_GATEWAY_BOT }))
  .sort((a, b) => (a.email < b.email ? -1 : a.email > b.email ? 1 : 0));

/**
 * create_internal_realm's bots: bulk_create_users into zulipinternal (101 audits with empty
 * extra_data, role:members + role:fullmembers memberships with 703 audits), each bot owning
 * itself with avatar_source 'U', then can_forge_sender for the email gateway (108 audit).
 * Idempotent: bots that exist are skipped.
 */
export async function createSystemBots(
  db: Queryable,
  systemRealm: RealmIdOrRef,
  opts: { dateJoined?: Date; random?: RandomSource } = {},
): Promise<Record<string, number>> {
  const random = opts.random ?? cryptoRandom;
  const info = await loadRealm(db, realmIdOf(systemRealm));
  const groups = await getSystemGroups(db, info.id);
  const when = opts.dateJoined ?? new Date();
  const out: Record<string, number> = {};
  const existing = await db.query(`SELECT id, email FROM zerver_userprofile WHERE realm_id = $1`, [info.id]);
  const have = new Map(existing.rows.map((r) => [r.email as string, Number(r.id)]));
  const toCreate = SYSTEM_BOTS.filter((b) => !have.has(b.email));
  const rows: Row[] = [];
  for (const b of toCreate) {
    const id = await nextId(db, "zerver_userprofile");
    rows.push({
      ...USER_SETTING_DEFAULTS,
      default_language: info.defaultLanguage,
      ...userAccountValues({
        id,
        password: unusablePassword(random),
        dateJoined: when,
        deliveryEmail: b.email,
        email: b.email,
        fullName: b.fullName,
        tosVersion: null,
        apiKey: random.alnum(32),
        uuid: random.uuid(),
        botType: BotType.DEFAULT,
        role: ROLES.MEMBER,
        isMirrorDummy: false,
        canForgeSender: false,
        canCreateUsers: false,
        timezone: "",
        avatarSource: "U",
        botOwnerId: id,
        realmId: info.id,
      }),
    });
  }
  await insertRows(db, "zerver_userprofile", rows, null);
  await insertRows(
    db,
    "zerver_realmauditlog",
    rows.map((r) => auditLogRow({ realmId: info.id, eventType: AuditLogEventType.USER_CREATED, eventTime: when, modifiedUserId: r.id as number })),
    null,
  );
  if (rows.length && (await hasPersonalRecipients(db))) {
    await createPersonalRecipients(
      db,
      rows.map((r) => ({ id: r.id as number, isActive: true })),
    );
  }
  const provisional = isProvisionalMember(ROLES.MEMBER, when, info.waitingPeriodThreshold, when);
  const memberships: Row[] = [];
  for (const r of rows) {
    memberships.push({ user_group_id: groups[SystemGroups.MEMBERS], user_profile_id: r.id });
    if (!provisional) memberships.push({ user_group_id: groups[SystemGroups.FULL_MEMBERS], user_profile_id: r.id });
  }
  await insertRows(db, "zerver_usergroupmembership", memberships, null);
  await insertRows(
    db,
    "zerver_realmauditlog",
    memberships.map((m) =>
      auditLogRow({
        realmId: info.id,
        eventType: AuditLogEventType.USER_GROUP_DIRECT_USER_MEMBERSHIP_ADDED,
        eventTime: when,
        modifiedUserId: m.user_profile_id as number,
        modifiedUserGroupId: m.user_group_id as number,
      }),
    ),
    null,
  );
  for (const r of rows) have.set(r.email as string, r.id as number);
  for (const b of SYSTEM_BOTS) {
    const id = have.get(b.email)!;
    out[b.email] = id;
    if (b.canForgeSender && toCreate.includes(b)) {
      await db.query(`UPDATE zerver_userprofile SET can_forge_sender = true WHERE id = $1`, [id]);
      await insertAuditLogRow(db, {
        realmId: info.id,
        eventType: AuditLogEventType.USER_SPECIAL_PERMISSION_CHANGED,
        eventTime: when,
        modifiedUserId: id,
        extraData: { [OLD_VALUE]: false, [NEW_VALUE]: true, property: "can_forge_sender" },
      });
    }
  }
  return out;
}

/** server_initialized(): whether the server has any organization at all. */
async function serverInitialized(q: Queryable): Promise<boolean> {
  const { rows } = await q.query("SELECT 1 FROM zerver_realm LIMIT 1");
  return rows.length > 0;
}

/**
 * do_create_realm's `if not server_initialized(): create_internal_realm()`: on a database without
 * any realm the system bot realm and its bots are to be created first (initialize). A database
 * that has realms but not the system bot realm is refused: Zulip would go on without it and fail
 * later.
 */
export async function checkServerInitialization(q: Queryable, systemBotRealm: string): Promise<{ initialize: boolean }> {
  const initialize = !(await serverInitialized(q));
  const { rows: sys } = await q.query("SELECT id FROM zerver_realm WHERE string_id = $1", [systemBotRealm]);
  if (!sys.length && !initialize) {
    throw new EnvironmentError(
      `This server has no system bot realm ('${systemBotRealm}'); it was never initialized. Run the Zulip installer's initialize-database first.`,
    );
  }
  return { initialize };
}
