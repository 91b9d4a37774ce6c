import { type Static, Type } from "@sinclair/typebox";
import { AuditLogIds, CacheReport, Change, DryRunField, EventsReport, Id, Nullable, Obj, OutcomeFields, Realm, User } from "./shared.js";
import { ROLE_API_NAMES, ROLE_IDS } from "../zulip/roles.js";

const RoleName = Type.Union(ROLE_API_NAMES.map((r) => Type.Literal(r)));
const RoleId = Type.Union(ROLE_IDS.map((r) => Type.Literal(r)));
/** A group-setting value as Zulip's API gives it: a named group's id, or an anonymous group. */
export const GroupSettingValue = Type.Union([Id, Obj({ direct_members: Type.Array(Id), direct_subgroups: Type.Array(Id) })]);

export const RoleResult = Obj({
  user: User,
  role: Nullable(Change(RoleName)),
  role_id: Nullable(Change(RoleId)),
  groups_removed: Type.Array(Type.String(), { description: "direct system-group memberships removed (role changes)" }),
  groups_added: Type.Array(Type.String()),
  flag: Nullable(Obj({ name: Type.String(), old: Type.Boolean(), new: Type.Boolean() }, "a permission flag's change")),
  setting: Nullable(
    Obj(
      { name: Type.String(), value: Change(GroupSettingValue), text: Change(Type.String({ description: "the setting as the web app shows it" })) },
      "is_billing_admin on Zulip 10+: the realm setting can_manage_billing_group's change",
    ),
  ),
  message: Nullable(Type.String({ description: "what manage.py prints for this user" })),
  audit_log_ids: AuditLogIds,
  ...OutcomeFields,
});
export const ChangeUserRoleBody = Obj({
  ...DryRunField,
  realm: Realm,
  target: Type.String({
    description: "what was asked: a role name (owner, administrator, moderator, member, guest) or a permission (can_forge_sender, …, is_billing_admin)",
  }),
  grant: Type.Boolean({ description: "false with --revoke" }),
  results: Type.Array(RoleResult, { description: "one per user, in user id order: done, would_do, or refused" }),
  cache: Nullable(CacheReport),
  events: Nullable(EventsReport),
});
export type ChangeUserRoleBody = Static<typeof ChangeUserRoleBody>;
export const bodies = [ChangeUserRoleBody];
export const description =
  "Users' roles or permissions changed. A refused user is status refused; then the document has exit_code 1 and error (the user's message, or with -u how many could not be changed).";
