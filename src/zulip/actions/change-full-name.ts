// do_change_full_name (zerver/actions/user_settings.py) with the check_full_name it is given a
// name by (zerver/lib/users.py), as the web app's "change name" and the API run them, for
// bulk_change_user_name.
//
// check_full_name: the name stripped; at most 100 characters (UserProfile.MAX_NAME_LENGTH);
// not empty; no unprintable character (check_string_is_printable: categories Cc and Cs and the
// 66 non-characters) and none of * ` \ > " @ (NAME_INVALID_CHARS); not ending in "|<digits>"
// (checked on the raw name, as Zulip does); and, when the organization requires unique names,
// no other user of the realm (active or not, bots included) with the same name after NFKC
// normalization and case folding.
//
// do_change_full_name: nothing when the name is unchanged; else the column, a
// USER_FULL_NAME_CHANGED (124) row {"1": old, "2": new} with no acting user (manage.py passes
// None), the realm_user update event {"person": {"user_id", "full_name"}} to the users who can
// see the user, and for bots the realm_bot update event to bot_owner_user_ids (not sent from
// Zulip 12.0, API feature level 474). The user is saved with update_fields=["full_name"]:
// flush_user_profile deletes the user's profile keys, the realm user dicts, the display
// recipients of the user's subscriptions and the bot dicts for bots. doChangeFullName runs it in
// its own transaction with the user row locked (lockUserRow) and the name checked again there.
import { AuditLogEventType, insertAuditLog, NEW_VALUE, OLD_VALUE } from "../audit.js";
import type { CacheInvalidation, CacheUser } from "../cache.js";
import type { Db, Queryable } from "../../db/db.js";
import { CommandError } from "../../lib/errors.js";
import { pyStrip } from "../../lib/pyformat.js";
import { type EventDelivery, FL, type Notify } from "../../services/events.js";
import { userIdsWhoCanAccessUser } from "../audiences.js";
import { lockUserRow, type RealmRef, type UserProfile } from "../lookup.js";
import { botOwnerUserIds } from "../events/user-events.js";
import { MAX_NAME_LENGTH } from "../models.js";

const NAME_INVALID_CHARS = ["*", "`", "\\", ">", '"', "@"];

function isNonCharacter(cp: number): boolean {
  return (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe;
}

/** check_string_is_printable: 1-based position of the first unprintable character, or null. */
function unprintablePosition(s: string): number | null {
  let i = 0;
  for (const ch of s) {
    i++;
    if (/\p{Cc}|\p{Cs}/u.test(ch) || isNonCharacter(ch.codePointAt(0)!)) return i;
  }
  return null;
}

/** unicodedata.normalize("NFKC", s).casefold() (full case folding approximated by upper-then-lower). */
function foldName(s: string): string {
  return s.normalize("NFKC").toUpperCase().toLowerCase();
}

/**
 * check_full_name(raw, user_profile=user, realm=realm): the name to store, or a CommandError
 * with Zulip's message.
 */
export async function checkFullName(q: Queryable, raw: string, user: { id: number; realm_id: number }): Promise<string> {
  const name = pyStrip(raw);
  if ([...name].length > MAX_NAME_LENGTH) throw new CommandError("Name too long!");
  if (name.length === 0) throw new CommandError("Name must not be empty!");
  if (unprintablePosition(name) !== null || NAME_INVALID_CHARS.some((c) => name.includes(c))) throw new CommandError("Invalid characters in name!");
  // Python's \d is any Unicode decimal digit, and $ also matches before a final newline.
  if (/\|\p{Nd}+$/u.test(raw.replace(/\n$/, ""))) throw new CommandError("Invalid format!");
  const { rows } = await q.query(`SELECT (to_jsonb(r) ->> 'require_unique_names')::boolean AS unique FROM zerver_realm r WHERE id = $1`, [user.realm_id]);
  if (rows[0]?.unique) {
    const folded = foldName(name);
    const { rows: others } = await q.query("SELECT full_name FROM zerver_userprofile WHERE realm_id = $1 AND id <> $2", [user.realm_id, user.id]);
    if (others.some((o) => foldName(o.full_name) === folded)) throw new CommandError("Unique names required in this organization.");
  }
  return name;
}

export interface NameChange {
  oldName: string;
  newName: string;
  /** False when the name was already that (Zulip writes nothing then). */
  changed: boolean;
  auditLogId: number | null;
}

/**
 * do_change_full_name(user, name, acting_user=None) on a locked user row, inside the caller's
 * transaction. `featureLevel` decides the realm_bot event.
 */
async function changeFullName(
  q: Queryable,
  user: UserProfile,
  name: string,
  opts: { notify?: Notify; featureLevel?: number; cache?: CacheInvalidation; now?: Date } = {},
): Promise<NameChange> {
  const oldName = user.full_name;
  if (oldName === name) return { oldName, newName: name, changed: false, auditLogId: null };
  await q.query("UPDATE zerver_userprofile SET full_name = $2 WHERE id = $1", [user.id, name]);
  const [auditLogId] = await insertAuditLog(q, [
    {
      realmId: user.realm_id,
      eventType: AuditLogEventType.USER_FULL_NAME_CHANGED,
      eventTime: opts.now ?? new Date(),
      actingUserId: null,
      modifiedUserId: user.id,
      extraData: { [OLD_VALUE]: oldName, [NEW_VALUE]: name },
    },
  ]);
  const n = opts.notify;
  if (n) {
    const payload = { user_id: user.id, full_name: name };
    n.events.send(n.realm, { type: "realm_user", op: "update", person: payload }, await userIdsWhoCanAccessUser(q, user), n.what);
    if (user.is_bot && (opts.featureLevel ?? 0) < FL.NO_REALM_BOT_UPDATES && user.bot_owner_id !== null) {
      n.events.send(n.realm, { type: "realm_bot", op: "update", bot: payload }, await botOwnerUserIds(q, user), n.what);
    }
  }
  await opts.cache?.userChanged(q, { ...user, full_name: name } as UserProfile & CacheUser, ["full_name"]);
  return { oldName, newName: name, changed: true, auditLogId };
}

/**
 * do_change_full_name(user, check_full_name(raw), acting_user=None) in its own transaction: the
 * row locked, the name checked against it (CommandError with Zulip's message), the change
 * written, events staged (due on COMMIT), the cache change marked committed.
 */
export async function doChangeFullName(
  db: Db,
  userId: number,
  raw: string,
  opts: { realm: RealmRef; events: EventDelivery; featureLevel: number; cache: CacheInvalidation },
): Promise<NameChange> {
  const notify = (u: UserProfile): Notify => ({ events: opts.events, realm: opts.realm, what: `the new name of ${u.delivery_email}` });
  const change = await opts.events.tx(db, async (q) => {
    const locked = await lockUserRow(q, userId, { missing: "The user was deleted while this command ran." });
    const name = await checkFullName(q, raw, locked);
    return changeFullName(q, locked, name, { notify: notify(locked), featureLevel: opts.featureLevel, cache: opts.cache });
  });
  if (change.changed) opts.cache.changeCommitted();
  return change;
}
