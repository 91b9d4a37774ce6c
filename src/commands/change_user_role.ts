// change_user_role: change a user's role (owner, admin, moderator, member, guest) or one of the
// special permission flags, writing exactly what Zulip's do_change_user_role /
// do_change_can_forge_sender / do_change_can_create_users / do_change_can_change_user_emails
// write, then deleting the memcached entries Zulip would delete.
//
// Per user, one transaction: the user row is locked (SELECT ... FOR NO KEY UPDATE, the lock
// Zulip's select_for_update(no_key=True) takes: it blocks every other writer of the row but not
// inserts elsewhere that merely reference it) and re-read, and the checks are repeated on the
// locked row, so two concurrent invocations never both apply the same change.
//
// Role change rows: zerver_userprofile.role; RealmAuditLog 105 with extra_data
// {"1": old, "2": new, "10": ROLE_COUNT after the change}; the direct membership moves from the
// old role's system group to the new one with a 704 and a 703 row (same event_time); when
// "member" is the old or new role, role:fullmembers is recomputed for the user with the realm's
// waiting period (704/703 rows). Permission flags: the column and a 108 row with
// {"1": old, "2": new, "property": "<flag>"}. is_billing_admin: before Zulip 10.0 the column, no
// audit row (as Zulip's billing code did); since 10.0 (the column is gone) the user is added to
// or removed from the realm setting can_manage_billing_group the way the web app's settings
// page does it (src/zulip/group-settings.ts: the anonymous group with the user and the current group,
// the REALM_PROPERTY_CHANGED row, back to the named group when only it is left).
//
// Speed on large realms: ROLE_COUNT is Zulip's count of the realm's active users by role, a
// pass over every user row of the realm (tens of milliseconds at 50,000 users). For a single
// user it is read on a second connection while this one connects, looks the user up and locks
// it, then adjusted for the change (src/zulip/audit.ts countsAfterChange): the same numbers Zulip
// counts inside its transaction, used only when that read saw the user exactly as the locked
// row shows it; otherwise, and with -u, the count is taken inside the transaction. The
// memcached connection is opened while the transaction runs (CacheInvalidation.prepare).
//
// --json: src/schemas/change_user_role.ts (README: --json output): one result per user (in user
// id order) with role and role_id as {old, new}, a permission flag as flag {name, old, new}, the
// is_billing_admin setting change as setting {name, value: {old, new}, text: {old, new}}; status
// done, would_do or refused. A refused user makes the whole document exit_code 1 with error:
// the user's message (one user), or how many could not be changed (-u).
import { addEventsOption, addFlushCacheOption, addRequiredRealmOption } from "../cli/options.js";
import { type RoleCountBaseline, roleCountBaselineBeside } from "../zulip/audit.js";
import { CacheInvalidation, type CacheReport, cacheReportJson } from "../zulip/cache.js";
import { defineCommand } from "../cli/command.js";
import { EventDelivery, type EventReport, eventsReportJson, featureLevel } from "../services/events.js";
import type { Context } from "../cli/context.js";
import type { Db } from "../db/db.js";
import { CommandError, UsageError } from "../lib/errors.js";
import { getRealm, getUser, getUsers, type Realm, type UserProfile } from "../zulip/lookup.js";
import { BILLING_SETTING, REALM_GROUP_SETTING_CONFIG } from "../zulip/group-settings.js";
import { changeBillingPermission } from "../zulip/actions/change-billing-permission.js";
import { ROLE_NAMES, ROLES } from "../zulip/roles.js";
import { doChangeUserRole, planUserRoleChange, type Tracked, tracked } from "../zulip/actions/change-user-role.js";
import {
  billingAdminMode,
  checkPermissionChange,
  doChangeUserPermission,
  isPermissionFlag,
  type PermissionFlag,
  permissionFlagSupported,
} from "../zulip/actions/change-user-permission.js";
import { outcome } from "../cli/json-contract.js";
import { realmJson, userJson } from "../cli/json-objects.js";
import type { ChangeUserRoleBody } from "../schemas/change_user_role.js";

/** manage.py's choices, in its order. */
export const ROLE_CHOICES = ["owner", "admin", "moderator", "member", "guest", "can_forge_sender", "can_create_users", "can_change_user_emails"];
/** Accepted in addition: the pre-10.0 billing flag the Zulip docs still mention. */
const EXTRA_CHOICES = ["is_billing_admin"];

const USER_ROLE_MAP: Record<string, number> = {
  owner: ROLES.REALM_OWNER,
  admin: ROLES.REALM_ADMINISTRATOR,
  moderator: ROLES.MODERATOR,
  member: ROLES.MEMBER,
  guest: ROLES.GUEST,
};

/** The flags whose success manage.py prints (can_forge_sender; is_billing_admin, our addition). */
const PRINTS_SUCCESS: ReadonlySet<PermissionFlag> = new Set(["can_forge_sender", "is_billing_admin"]);

type RoleResultJson = ChangeUserRoleBody["results"][number];

/** One user's result as it is built (the --json result, plus what the text output needs). */
interface UserResult extends Omit<RoleResultJson, "ok" | "status" | "error"> {
  ok: boolean;
  changed: boolean;
  error: string | null;
}

function roleChange(oldRole: number, newRole: number): Pick<UserResult, "role" | "role_id"> {
  return {
    role: { old: roleApi(oldRole) as RoleResultJson["user"]["role"], new: roleApi(newRole) as RoleResultJson["user"]["role"] },
    role_id: { old: oldRole as RoleResultJson["user"]["role_id"], new: newRole as RoleResultJson["user"]["role_id"] },
  };
}

function resultJson(r: UserResult, dryRun: boolean): RoleResultJson {
  const { ok: _ok, changed: _changed, error, ...rest } = r;
  return { ...rest, ...outcome(error !== null ? "refused" : dryRun ? "would_do" : "done", error) };
}

function roleName(role: number): string {
  return ROLE_NAMES[role]?.printed ?? String(role);
}

function roleApi(role: number): string {
  return ROLE_NAMES[role]?.api ?? String(role);
}

function quoteChoices(choices: string[]): string {
  return choices.map((c) => `'${c}'`).join(", ");
}

export default defineCommand({
  name: "change_user_role",
  description:
    "Change role of an existing user in their (own) Realm.\n\nONLY perform this on customer request from an authorized person.\n\n" +
    "Valid values of <new_role>: owner, admin, moderator, member, guest (roles); can_forge_sender, can_create_users, " +
    "can_change_user_emails (permissions, granted, or removed with --revoke); is_billing_admin (access to plans and " +
    "billing: on Zulip 10 and newer the user is added to, or with --revoke removed from, the organization setting " +
    '"Who can manage plans and billing", as an administrator does it in the web app).',
  examples: [
    "zulip-manage change_user_role -r zulip iago@zulip.com admin",
    "zulip-manage change_user_role -r zulip -u iago@zulip.com,hamlet@zulip.com moderator --dry-run",
    "zulip-manage change_user_role -r zulip hamlet@zulip.com can_forge_sender --revoke",
    "zulip-manage change_user_role -r zulip hamlet@zulip.com is_billing_admin",
    "zulip-manage change_user_role -r zulip hamlet@zulip.com is_billing_admin --revoke --dry-run",
  ],
  configure: (cmd) =>
    addEventsOption(
      addFlushCacheOption(
        addRequiredRealmOption(
          cmd
            .usage("[options] -r REALM <email> <new_role>\n       zulip-manage change_user_role [options] -r REALM -u EMAILS <new_role>")
            .argument("[email]", "email of user to change role")
            .argument("[new_role]", `new role of the user; choose from ${ROLE_CHOICES.join(", ")}`)
            .option("--revoke", "Remove can_forge_sender or can_create_users permission."),
        )
          .option("-u, --users <emails>", "A comma-separated list of email addresses, instead of <email>: each user is changed in its own transaction")
          .option("--dry-run", "show what would change, and change nothing"),
      ),
    ),
  async run(ctx, args, opts) {
    // Arguments, checked the way argparse would (usage errors, exit 2).
    const multi = opts.users !== undefined;
    let email: string | undefined;
    let requested: string | undefined;
    if (multi) {
      if (args[1] !== undefined) throw new UsageError("argument -u/--users: not allowed with argument <email>");
      requested = args[0];
      if (requested === undefined) throw new UsageError("the following arguments are required: <new_role>");
    } else {
      [email, requested] = args;
      if (email === undefined) throw new UsageError("the following arguments are required: <email>, <new_role>");
      if (requested === undefined) throw new UsageError("the following arguments are required: <new_role>");
    }
    if (!ROLE_CHOICES.includes(requested) && !EXTRA_CHOICES.includes(requested)) {
      throw new UsageError(`argument <new_role>: invalid choice: '${requested}' (choose from ${quoteChoices(ROLE_CHOICES)})`);
    }
    const grant = !opts.revoke;
    const dryRun = Boolean(opts.dryRun);
    const inval = new CacheInvalidation(ctx, opts.flushCache);
    const events = new EventDelivery(ctx, opts.events);
    // An explicit --flush-cache=all flushes even when nothing gets changed (a way to clear a
    // cache left stale earlier), and also when the command fails.
    let cacheApplied = false;
    try {
      return await main(ctx, {
        multi,
        email,
        requested,
        grant,
        dryRun,
        realmOption: opts.realm,
        users: opts.users,
        inval,
        events,
        applied: () => (cacheApplied = true),
      });
    } finally {
      if (!dryRun && !cacheApplied) {
        await inval.commit();
        await events.commit();
      }
    }
  },
});

interface MainArgs {
  multi: boolean;
  email: string | undefined;
  requested: string;
  grant: boolean;
  dryRun: boolean;
  /** -r */
  realmOption: string;
  /** -u */
  users: string | undefined;
  inval: CacheInvalidation;
  events: EventDelivery;
  /** Called once the cache invalidation (and event delivery) has been applied. */
  applied(): void;
}

async function main(ctx: Context, a: MainArgs): Promise<number> {
  const { multi, email, requested, grant, dryRun, inval, events } = a;
  const out = ctx.out;
  const isRole = requested in USER_ROLE_MAP;
  // The one slow read of a role change is Zulip's count of the realm's users by role (tens of
  // milliseconds in a realm of 50,000): for a single user, it is read on a second connection
  // while this one connects, looks the user up and locks it (see countsAfterChange).
  const baseline = tracked(isRole && !multi && grant && !dryRun ? roleCountBaselineBeside(ctx, a.realmOption, email!) : Promise.resolve(null));
  const db = await ctx.db();
  const realm = (await getRealm(db, a.realmOption))!;

  if (requested === "can_change_user_emails" && !(await permissionFlagSupported(db, requested))) {
    throw new UsageError(`argument <new_role>: invalid choice: '${requested}' (choose from ${quoteChoices(ROLE_CHOICES.filter((c) => c !== requested))})`);
  }
  // Zulip 10 replaced the is_billing_admin flag by the realm setting can_manage_billing_group:
  // there the user is added to / removed from that setting as the web app does it.
  const billingMode = requested === "is_billing_admin" ? await billingAdminMode(db) : null;
  const billingSetting = billingMode === "setting";
  if (requested === "is_billing_admin" && billingMode === null) {
    throw new CommandError('This Zulip server has neither the is_billing_admin permission nor the "Who can manage plans and billing" setting.');
  }

  const users = multi ? await getUsers(db, { users: a.users }, realm) : [await getUser(db, email!, realm)];

  const results: UserResult[] = [];
  for (const u of users) {
    const result: UserResult = {
      user: userJson(u),
      role: null,
      role_id: null,
      groups_removed: [],
      groups_added: [],
      flag: null,
      setting: null,
      ok: false,
      changed: false,
      error: null,
      message: null,
      audit_log_ids: [],
    };
    results.push(result);
    try {
      if (isRole) await changeRole(ctx, db, inval, events, realm, u, USER_ROLE_MAP[requested], grant, dryRun, result, baseline);
      else if (billingSetting) await changeBilling(db, inval, events, realm, u, grant, dryRun, result);
      else if (isPermissionFlag(requested)) await changeFlag(db, inval, u, requested, grant, dryRun, result);
      result.ok = true;
    } catch (e) {
      if (!(e instanceof CommandError)) throw e;
      result.error = e.message;
    }
    // Per-user output as it happens.
    if (result.ok) {
      if (result.message !== null && (multi || dryRun || isRole || (isPermissionFlag(requested) && PRINTS_SUCCESS.has(requested)))) out.line(result.message);
    } else if (multi) {
      out.err(`${result.user.delivery_email}: ${result.error}`);
    }
  }

  let cache: CacheReport | null = null;
  let delivery: EventReport | null = null;
  if (!dryRun) {
    a.applied();
    cache = await inval.commit();
    delivery = await events.commit();
  }

  const failed = results.filter((r) => !r.ok);
  if (dryRun && !out.json) out.line("(dry run: nothing was changed)");
  const summary = `${failed.length} of ${results.length} users could not be changed.`;
  out.jsonBody<ChangeUserRoleBody>(
    {
      dry_run: dryRun,
      realm: realmJson(ctx.config().settings, realm),
      target: requested in USER_ROLE_MAP ? roleApi(USER_ROLE_MAP[requested]) : requested,
      grant,
      results: results.map((r) => resultJson(r, dryRun)),
      cache: cacheReportJson(cache),
      events: eventsReportJson(delivery),
    },
    failed.length === 0 ? undefined : { error: multi ? summary : failed[0].error!, error_code: "refused" },
  );
  if (failed.length === 0) return 0;
  if (!multi) {
    if (out.json) {
      out.err(failed[0].error!);
      return 1;
    }
    throw new CommandError(failed[0].error!);
  }
  out.err(summary);
  return 1;
}

async function changeRole(
  ctx: Context,
  db: Db,
  inval: CacheInvalidation,
  events: EventDelivery,
  realm: Realm,
  u: UserProfile,
  newRole: number,
  grant: boolean,
  dryRun: boolean,
  result: UserResult,
  baseline: Tracked<RoleCountBaseline | null>,
): Promise<void> {
  Object.assign(result, roleChange(Number(u.role), newRole));
  if (!grant) throw new CommandError("Revoke not supported with this permission; please specify new role.");
  if (newRole === Number(u.role)) throw new CommandError("User already has this role.");
  if (dryRun) {
    const plan = await planUserRoleChange(db, realm, u, newRole);
    result.groups_removed = plan.removed;
    result.groups_added = plan.added;
    result.message =
      `Would change role for ${u.delivery_email} from ${roleName(Number(u.role))} to ${roleName(newRole)}` +
      ` (direct group membership: remove ${plan.removed.join(", ") || "none"}; add ${plan.added.join(", ") || "none"}).`;
    return;
  }
  inval.prepare();
  const notify = {
    events,
    realm: { id: realm.id, string_id: realm.string_id },
    what: `the new role of ${u.delivery_email}`,
    featureLevel: featureLevel(ctx.paths, db),
  };
  const { oldRole, moves } = await doChangeUserRole(db, realm, u.id, newRole, { baseline, notify, cache: inval });
  Object.assign(result, roleChange(oldRole, newRole));
  if (moves === null) throw new CommandError("User already has this role.");
  result.changed = true;
  result.groups_removed = moves.removed;
  result.groups_added = moves.added;
  result.audit_log_ids = moves.auditIds;
  result.message = `Role for ${u.delivery_email} changed from ${roleName(oldRole)} to ${roleName(newRole)}.`;
}

async function changeFlag(
  db: Db,
  inval: CacheInvalidation,
  u: UserProfile,
  flag: PermissionFlag,
  grant: boolean,
  dryRun: boolean,
  result: UserResult,
): Promise<void> {
  const check = (current: boolean) => {
    result.flag = { name: flag, old: current, new: grant };
    checkPermissionChange(flag, current, grant);
  };
  check(Boolean(u[flag]));
  const granted = grant ? "have" : "not have";
  if (dryRun) {
    result.message = `Would change ${u.delivery_email} to ${granted} ${flag} permission.`;
    return;
  }
  inval.prepare();
  const r = await doChangeUserPermission(db, u.id, flag, grant, { cache: inval });
  check(r.old);
  result.changed = true;
  result.audit_log_ids = r.auditLogIds;
  result.message = `${u.delivery_email} changed to ${granted} ${flag} permission.`;
}

/**
 * is_billing_admin on Zulip 10+: the user added to (or, with --revoke, removed from) the realm
 * setting "Who can manage plans and billing" (src/zulip/actions/change-billing-permission.ts changeBillingPermission).
 */
async function changeBilling(
  db: Db,
  inval: CacheInvalidation,
  events: EventDelivery,
  realm: Realm,
  u: UserProfile,
  grant: boolean,
  dryRun: boolean,
  result: UserResult,
): Promise<void> {
  const o = await changeBillingPermission(db, Number(realm.id), u.id, grant, {
    dryRun,
    cache: inval,
    events,
    what: `the billing permission of ${u.delivery_email}`,
  });
  result.flag = { name: "is_billing_admin", old: !grant, new: grant };
  result.setting = { name: BILLING_SETTING, value: { old: o.before, new: o.after }, text: { old: o.beforeText, new: o.afterText } };
  const label = REALM_GROUP_SETTING_CONFIG[BILLING_SETTING].label;
  const setting = `"${label}" ${dryRun ? "is" : "was"}: ${o.beforeText}; ${dryRun ? "would be" : "now"}: ${o.afterText}`;
  const granted = grant ? "have" : "not have";
  if (dryRun) {
    result.message = `Would change ${u.delivery_email} to ${granted} is_billing_admin permission (${setting}).`;
    return;
  }
  result.changed = true;
  if (o.change) result.audit_log_ids = [o.change.auditLogId];
  result.message = `${u.delivery_email} changed to ${granted} is_billing_admin permission (${setting}).`;
  if (o.stillThrough.length) {
    result.message += ` Note: they can still manage plans and billing through the group ${o.stillThrough.map((n) => `'${n}'`).join(", ")}.`;
  }
}
