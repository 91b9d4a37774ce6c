// Whether createRealm / createUser (with their channels, groups, subscriptions and audit rows)
// can write this database as its Zulip release would: the commands that create realms and users
// ask first, and refuse before anything is written when they cannot.
import type { Queryable } from "../../db/db.js";
import { auditLogRow } from "../audit.js";
import { subscriptionValues } from "../models.js";
import type { RandomSource } from "../../lib/random.js";
import { ROLES } from "../roles.js";
import { missingRequired } from "../rows.js";
import { prefetchTableShapes, requiredColumns, tableColumns } from "../../db/db.js";
import { REALM_USER_DEFAULT_OVERRIDES, USER_SETTING_DEFAULTS } from "../user-settings.js";
import { STREAM_GROUP_SETTING_DEFAULTS, channelRowValues } from "./create-channel.js";
import { isRealmGroupSettingColumn, REALM_GROUP_SETTING_DEFAULTS, realmRowValues, systemGroupValues } from "./create-realm.js";
import { userAccountValues } from "./create-user.js";

/** The tables creationSchemaProblem checks, i.e. those that creating realms and users writes. */
const CREATION_TABLES = [
  "zerver_realm",
  "zerver_realmuserdefault",
  "zerver_userprofile",
  "zerver_usergroup",
  "zerver_namedusergroup",
  "zerver_realmauditlog",
  "zerver_stream",
  "zerver_recipient",
  "zerver_subscription",
  "zerver_defaultstream",
  "zerver_realmauthenticationmethod",
  "zerver_presencesequence",
  "zerver_usergroupmembership",
  "zerver_groupgroupmembership",
  "zerver_usermessage",
];

/**
 * Why createRealm / createUser (with their channels, groups, subscriptions and audit rows) cannot
 * write this database as its Zulip release would (null when they can), decided from the catalog:
 * a NOT NULL column without a database default that this code has no value for, or a realm
 * group setting whose default it does not know. Zulip 10.x, 11.x and 12.x databases pass.
 */
export async function creationSchemaProblem(db: Queryable): Promise<string | null> {
  await prefetchTableShapes(db, CREATION_TABLES);
  const epoch = new Date(0);
  const fixed: RandomSource = { alnum: (n) => "x".repeat(n), uuid: () => "00000000-0000-4000-8000-000000000000" };
  const realmGroupCols = [...(await tableColumns(db, "zerver_realm"))].filter(isRealmGroupSettingColumn);
  const rudCols = await tableColumns(db, "zerver_realmuserdefault");
  const account = userAccountValues({
    id: 0,
    password: "",
    dateJoined: epoch,
    deliveryEmail: "",
    email: "",
    fullName: "",
    tosVersion: null,
    apiKey: "",
    uuid: "",
    botType: null,
    role: ROLES.MEMBER,
    isMirrorDummy: false,
    canForgeSender: false,
    canCreateUsers: false,
    timezone: "",
    avatarSource: "G",
    botOwnerId: null,
    realmId: 0,
  });
  const channel = channelRowValues({
    name: "",
    when: epoch,
    description: "",
    renderedDescription: "",
    inviteOnly: false,
    historyPublic: true,
    isWebPublic: false,
    messageRetentionDays: null,
    creatorId: null,
    realmId: 0,
  });
  const supplied: [string, string[]][] = [
    ["zerver_realm", [...Object.keys(realmRowValues({ stringId: "" }, { name: "", internal: false, dateCreated: epoch, random: fixed })), ...realmGroupCols]],
    ["zerver_realmuserdefault", [...Object.keys(USER_SETTING_DEFAULTS), ...Object.keys(REALM_USER_DEFAULT_OVERRIDES), "realm_id"]],
    // Humans also get every setting RealmUserDefault has (copy_default_settings).
    ["zerver_userprofile", [...Object.keys(USER_SETTING_DEFAULTS), ...rudCols, "default_language", ...Object.keys(account)]],
    ["zerver_usergroup", ["realm_id"]],
    ["zerver_namedusergroup", Object.keys(systemGroupValues(0, "", "", 0, 0))],
    ["zerver_realmauditlog", Object.keys(auditLogRow({ realmId: 0, eventType: 0, eventTime: epoch }))],
    ["zerver_stream", [...Object.keys(channel), ...Object.keys(STREAM_GROUP_SETTING_DEFAULTS)]],
    ["zerver_recipient", ["type_id", "type"]],
    ["zerver_subscription", Object.keys(subscriptionValues(0, 0, true))],
    ["zerver_defaultstream", ["realm_id", "stream_id"]],
    ["zerver_realmauthenticationmethod", ["name", "realm_id"]],
    ["zerver_presencesequence", ["last_update_id", "realm_id"]],
    ["zerver_usergroupmembership", ["user_group_id", "user_profile_id"]],
    ["zerver_groupgroupmembership", ["supergroup_id", "subgroup_id"]],
    ["zerver_usermessage", ["flags", "message_id", "user_profile_id"]],
  ];
  const problems: string[] = [];
  for (const [table, keys] of supplied) problems.push(...missingRequired(table, await requiredColumns(db, table), keys));
  const unknownGroups = realmGroupCols.filter((c) => !REALM_GROUP_SETTING_DEFAULTS[c]).map((c) => `zerver_realm.${c} (group setting)`);
  problems.push(...unknownGroups);
  if (!problems.length) return null;
  return (
    "Creating organizations and users is not supported on this database: zulip-manage does not know the value this " +
    `Zulip release would give ${problems.join(", ")}. Use the Zulip server's own manage.py.`
  );
}
