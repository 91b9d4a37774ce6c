// Every published --json schema, by command name (plus "error", the error document). The build
// writes them as dist/json-schema/<name>.schema.json (scripts/json-schemas.mjs), which
// `zulip-manage help <command> --json-schema` prints; the tests validate documents against them.
import type { TObject, TSchema } from "@sinclair/typebox";
import { commandSchema, errorSchema } from "./shared.js";
import * as completion from "./completion.js";
import * as dbshell from "./dbshell.js";
import * as archive_messages from "./archive_messages.js";
import * as delete_old_unclaimed_attachments from "./delete_old_unclaimed_attachments.js";
import * as backup from "./backup.js";
import * as unarchive_channel from "./unarchive_channel.js";
import * as realm_domain from "./realm_domain.js";
import * as remove_users_from_stream from "./remove_users_from_stream.js";
import * as add_users_to_streams from "./add_users_to_streams.js";
import * as create_stream from "./create_stream.js";
import * as register_server from "./register_server.js";
import * as change_realm_subdomain from "./change_realm_subdomain.js";
import * as reactivate_realm from "./reactivate_realm.js";
import * as deactivate_realm from "./deactivate_realm.js";
import * as create_realm from "./create_realm.js";
import * as delete_user from "./delete_user.js";
import * as change_user_role from "./change_user_role.js";
import * as create_user from "./create_user.js";
import * as logout_all_users from "./logout_all_users.js";
import * as bulk_change_user_name from "./bulk_change_user_name.js";
import * as soft_deactivate_users from "./soft_deactivate_users.js";
import * as rate_limit from "./rate_limit.js";
import * as change_password from "./change_password.js";
import * as change_user_email from "./change_user_email.js";
import * as reactivate_user from "./reactivate_user.js";
import * as deactivate_user from "./deactivate_user.js";
import * as doctor from "./doctor.js";
import * as export_single_user from "./export_single_user.js";
import * as generate_realm_creation_link from "./generate_realm_creation_link.js";
import * as list_realms from "./list_realms.js";
import * as reset_authentication_attempt_count from "./reset_authentication_attempt_count.js";
import * as send_custom_email from "./send_custom_email.js";
import * as send_password_reset_email from "./send_password_reset_email.js";
import * as send_realm_reactivation_email from "./send_realm_reactivation_email.js";
import * as send_test_email from "./send_test_email.js";
import * as show_admins from "./show_admins.js";

const COMMAND_SCHEMAS: Record<string, { bodies: TObject[]; description: string }> = {
  completion,
  dbshell,
  archive_messages,
  delete_old_unclaimed_attachments,
  backup,
  unarchive_channel,
  realm_domain,
  remove_users_from_stream,
  add_users_to_streams,
  create_stream,
  register_server,
  change_realm_subdomain,
  reactivate_realm,
  deactivate_realm,
  create_realm,
  delete_user,
  change_user_role,
  create_user,
  logout_all_users,
  bulk_change_user_name,
  soft_deactivate_users,
  rate_limit,
  change_password,
  change_user_email,
  reactivate_user,
  deactivate_user,
  doctor,
  export_single_user,
  generate_realm_creation_link,
  list_realms,
  reset_authentication_attempt_count,
  send_custom_email,
  send_password_reset_email,
  send_realm_reactivation_email,
  send_test_email,
  show_admins,
};

/** The published schemas: each command's, and "error". */
export function allSchemas(): Record<string, TSchema> {
  const out: Record<string, TSchema> = { error: errorSchema() };
  for (const [name, m] of Object.entries(COMMAND_SCHEMAS)) out[name] = commandSchema(name, m.bodies, m.description);
  return out;
}
