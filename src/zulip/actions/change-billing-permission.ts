// change_user_role's is_billing_admin on Zulip 10+ (src/commands/change_user_role.ts): one user
// added to or removed from the realm's "Who can manage plans and billing" group setting
// (can_manage_billing_group) as an administrator does it in the web app — update_realm's
// do_change_realm_permission_group_setting, in one transaction with the realm row locked. The
// setting's model (values, anonymous groups, the request the web app would send) is
// src/zulip/group-settings.ts.
import type { Queryable } from "../../db/db.js";
import { CommandError } from "../../lib/errors.js";
import type { EventDelivery } from "../../services/events.js";
import type { CacheInvalidation } from "../cache.js";
import {
  BILLING_SETTING,
  billingPermissionRequest,
  changeRealmGroupSetting,
  describeGroupSettingValue,
  groupDisplayName,
  type GroupSettingChange,
  groupsContainingUser,
  type GroupSettingValue,
  isAnonymous,
  namedGroups,
  parseGroupSettingValue,
  readRealmGroupSetting,
} from "../group-settings.js";
import { lockUserRow } from "../lookup.js";
import { lockRealm } from "../realms.js";

const DELETED = "The user was deleted while this command ran; nothing was changed.";

export interface BillingPermissionOutcome {
  before: GroupSettingValue;
  after: GroupSettingValue;
  beforeText: string;
  afterText: string;
  change: GroupSettingChange | null;
  /** Groups through which the user still has the permission after a revoke. */
  stillThrough: string[];
}

/**
 * Grant or revoke one user's billing permission: one transaction, the realm row locked
 * (update_realm's changes are serialized by it here), the setting re-read under the lock.
 * With dryRun nothing is written (and nothing locked).
 */
export async function changeBillingPermission(
  db: { tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> } & Queryable,
  realmId: number,
  userId: number,
  grant: boolean,
  opts: { dryRun?: boolean; cache?: CacheInvalidation; events?: EventDelivery; what?: string } = {},
): Promise<BillingPermissionOutcome> {
  const work = async (q: Queryable, write: boolean): Promise<BillingPermissionOutcome> => {
    const locked = write ? await lockRealm(q, realmId, { columns: "id, string_id, deactivated" }) : null;
    const user = write
      ? await lockUserRow(q, userId, { missing: DELETED })
      : (await q.query("SELECT * FROM zerver_userprofile WHERE id = $1", [userId])).rows[0];
    if (!user) throw new CommandError(DELETED);
    const current = await readRealmGroupSetting(q, realmId, BILLING_SETTING);
    const requested = await billingPermissionRequest(q, current, { ...user, role: Number(user.role) }, grant);
    let change: GroupSettingChange | null = null;
    let after: GroupSettingValue = await parseGroupSettingValue(q, realmId, requested);
    if (locked) {
      const realm = locked;
      const notify = opts.events ? { events: opts.events, realm: { id: realmId, string_id: realm.string_id }, what: opts.what } : undefined;
      change = await changeRealmGroupSetting(q, realmId, current, requested, { notify });
      if (change) {
        after = change.newValue;
        // realm.save(update_fields=[setting]) -> flush_realm
        await opts.cache?.realmChanged(q, { id: Number(realm.id), string_id: realm.string_id, deactivated: realm.deactivated }, [BILLING_SETTING]);
      }
    }
    const subgroups = isAnonymous(after) ? after.direct_subgroups : [after];
    const through = grant ? [] : await groupsContainingUser(q, userId, subgroups);
    return {
      before: current.value,
      after,
      beforeText: await describeGroupSettingValue(q, current.value),
      afterText: await describeGroupSettingValue(q, after),
      change,
      stillThrough: [...(await namedGroups(q, through)).values()].map(groupDisplayName),
    };
  };
  if (opts.dryRun) return work(db, false);
  opts.cache?.prepare();
  opts.events?.prepare();
  let outcome: BillingPermissionOutcome;
  try {
    outcome = await db.tx((q) => work(q, true));
  } catch (e) {
    opts.events?.discard();
    throw e;
  }
  opts.events?.committed();
  if (outcome.change) opts.cache?.changeCommitted();
  return outcome;
}
