// The command registry: names, groups and one-line summaries, without loading any command
// module (so `zulip-manage help` and `--version` stay fast). Each entry's module is imported
// only when that command runs.
import type { CommandEntry } from "../lib/command.js";

export const COMMANDS: CommandEntry[] = [
  { name: "list_realms", group: "Organizations", summary: "List the organizations (realms) on this server, optionally with all their settings", load: () => import("./list_realms.js") },
  { name: "show_admins", group: "Organizations", summary: "Show the owners and administrators of an organization", load: () => import("./show_admins.js") },
  { name: "change_user_role", group: "Users", summary: "Change a user's role (owner, admin, moderator, member, guest) or special permissions", writes: true, load: () => import("./change_user_role.js") },
  { name: "register_server", group: "Push notifications", summary: "Register this server for the Mobile Push Notification Service (or rotate its key, transfer or deactivate it)", writes: true, load: () => import("./register_server.js") },
  { name: "generate_realm_creation_link", group: "Email and links", summary: "Print a single-use link for creating a new organization", writes: true, load: () => import("./generate_realm_creation_link.js") },
  { name: "send_password_reset_email", group: "Email and links", summary: "Email password reset links to users, a whole organization or the entire server", load: () => import("./send_password_reset_email.js") },
  { name: "send_test_email", group: "Email and links", summary: "Check outgoing email: send test messages from the support and noreply addresses", load: () => import("./send_test_email.js") },
];

export function findCommand(name: string): CommandEntry | undefined {
  return COMMANDS.find((c) => c.name === name);
}
