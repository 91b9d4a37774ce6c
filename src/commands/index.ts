// The command registry: names, groups and one-line summaries, without loading any command
// module (so `zulip-manage help` and `--version` stay fast). Each entry's module is imported
// only when that command runs.
import type { CommandEntry } from "../lib/command.js";

export const COMMANDS: CommandEntry[] = [
  { name: "list_realms", group: "Organizations", summary: "List the organizations (realms) on this server, optionally with all their settings", load: () => import("./list_realms.js") },
  { name: "show_admins", group: "Organizations", summary: "Show the owners and administrators of an organization", load: () => import("./show_admins.js") },
  { name: "change_user_role", group: "Users", summary: "Change a user's role (owner, admin, moderator, member, guest) or special permissions", writes: true, load: () => import("./change_user_role.js") },
  { name: "register_server", group: "Push notifications", summary: "Register this server for the Mobile Push Notification Service (or rotate its key, transfer or deactivate it)", writes: true, load: () => import("./register_server.js") },
];

export function findCommand(name: string): CommandEntry | undefined {
  return COMMANDS.find((c) => c.name === name);
}
