// The command registry: names, groups and one-line summaries, without loading any command
// module (so `zulip-manage help` and `--version` stay fast). Each entry's module is imported
// only when that command runs.
import type { CommandEntry } from "../cli/command.js";

export const COMMANDS: CommandEntry[] = [
  {
    name: "list_realms",
    group: "Organizations",
    summary: "List the organizations (realms) on this server, optionally with all their settings",
    load: () => import("./list_realms.js"),
  },
  { name: "show_admins", group: "Organizations", summary: "Show the owners and administrators of an organization", load: () => import("./show_admins.js") },
  {
    name: "create_realm",
    group: "Organizations",
    summary: "Create an organization and its first owner, as Zulip's do_create_realm and do_create_user do",
    load: () => import("./create_realm.js"),
  },
  {
    name: "deactivate_realm",
    group: "Organizations",
    summary: "Deactivate an organization (log everyone out, optionally email its owners)",
    load: () => import("./deactivate_realm.js"),
  },
  { name: "reactivate_realm", group: "Organizations", summary: "Reactivate a deactivated organization", load: () => import("./reactivate_realm.js") },
  {
    name: "send_realm_reactivation_email",
    group: "Organizations",
    summary: "Email a deactivated organization's administrators a link that reactivates it",
    load: () => import("./send_realm_reactivation_email.js"),
  },
  {
    name: "change_realm_subdomain",
    group: "Organizations",
    summary: "Move an organization to a new subdomain, leaving a redirect at the old one",
    load: () => import("./change_realm_subdomain.js"),
  },
  {
    name: "realm_domain",
    group: "Organizations",
    summary: "List, add or remove the email domains an organization can restrict new users to",
    load: () => import("./realm_domain.js"),
  },
  { name: "create_stream", group: "Organizations", summary: "Create a public channel with Zulip's default settings", load: () => import("./create_stream.js") },
  {
    name: "add_users_to_streams",
    group: "Organizations",
    summary: "Subscribe users to channels, creating channels that do not exist",
    load: () => import("./add_users_to_streams.js"),
  },
  {
    name: "remove_users_from_stream",
    group: "Organizations",
    summary: "Unsubscribe users from a channel",
    load: () => import("./remove_users_from_stream.js"),
  },
  {
    name: "unarchive_channel",
    group: "Organizations",
    summary: "Reactivate an archived channel, optionally under a new name",
    load: () => import("./unarchive_channel.js"),
  },
  { name: "create_user", group: "Users", summary: "Create a user in an organization, as Zulip's do_create_user does", load: () => import("./create_user.js") },
  {
    name: "change_user_role",
    group: "Users",
    summary: "Change a user's role (owner, admin, moderator, member, guest) or special permissions",
    load: () => import("./change_user_role.js"),
  },
  {
    name: "deactivate_user",
    group: "Users",
    summary: "Deactivate a user and their bots and log them out (dry run unless -f)",
    load: () => import("./deactivate_user.js"),
  },
  {
    name: "reactivate_user",
    group: "Users",
    summary: "Reactivate a deactivated user (not in manage.py; what the web UI's Reactivate does)",
    load: () => import("./reactivate_user.js"),
  },
  {
    name: "soft_deactivate_users",
    group: "Users",
    summary: "Soft-deactivate idle users (or the ones named) and catch them up, or soft-reactivate users, as Zulip's daily job does",
    load: () => import("./soft_deactivate_users.js"),
  },
  {
    name: "bulk_change_user_name",
    group: "Users",
    summary: 'Rename many users from a file of "<email>,<new name>" lines, with Zulip\'s name checks',
    load: () => import("./bulk_change_user_name.js"),
  },
  { name: "change_user_email", group: "Users", summary: "Change a user's email address", load: () => import("./change_user_email.js") },
  {
    name: "change_password",
    group: "Users",
    summary: "Set a user's password (asked on the terminal or read from a file)",
    load: () => import("./change_password.js"),
  },
  {
    name: "logout_all_users",
    group: "Users",
    summary: "Log users out of their browser sessions (a realm, deactivated users, or everyone), optionally rotating API keys",
    load: () => import("./logout_all_users.js"),
  },
  {
    name: "reset_authentication_attempt_count",
    group: "Users",
    summary: "Let a user locked out by too many failed logins try again (clears the Redis rate limit)",
    load: () => import("./reset_authentication_attempt_count.js"),
  },
  {
    name: "rate_limit",
    group: "Users",
    summary: "Block or unblock a user (and their bots) from the API in Redis; show or set a user's own API rate limits",
    load: () => import("./rate_limit.js"),
  },
  {
    name: "delete_user",
    group: "Users",
    summary: 'Delete users as Zulip does: their messages, activity and account data, leaving a "Deleted User <id>" placeholder (dry run unless -f)',
    load: () => import("./delete_user.js"),
  },
  {
    name: "export_single_user",
    group: "Users",
    summary: "Export one user's data and message history to a directory and a .tar.gz, as Zulip does",
    load: () => import("./export_single_user.js"),
  },
  {
    name: "register_server",
    group: "Push notifications",
    summary: "Register this server for the Mobile Push Notification Service (or rotate its key, transfer or deactivate it)",
    load: () => import("./register_server.js"),
  },
  {
    name: "generate_realm_creation_link",
    group: "Email and links",
    summary: "Print a single-use link for creating a new organization",
    load: () => import("./generate_realm_creation_link.js"),
  },
  {
    name: "send_password_reset_email",
    group: "Email and links",
    summary: "Email password reset links to users, a whole organization or the entire server",
    load: () => import("./send_password_reset_email.js"),
  },
  {
    name: "send_test_email",
    noDb: true,
    group: "Email and links",
    summary: "Check outgoing email: send test messages from the support and noreply addresses",
    load: () => import("./send_test_email.js"),
  },
  {
    name: "send_custom_email",
    group: "Email and links",
    summary: "Email a Markdown document with Zulip branding to users, a realm or the whole server",
    load: () => import("./send_custom_email.js"),
  },
  {
    name: "doctor",
    group: "Maintenance",
    summary: "Check the configuration, secrets, database, memcached, Redis, SMTP and push settings zulip-manage depends on",
    load: () => import("./doctor.js"),
  },
  {
    name: "backup",
    group: "Maintenance",
    summary: "Back up the database, /etc/zulip and local uploads into a tarball Zulip's restore-backup restores",
    load: () => import("./backup.js"),
  },
  {
    name: "delete_old_unclaimed_attachments",
    group: "Maintenance",
    summary: "Delete uploaded files no message references, older than --weeks (dry run unless -f)",
    load: () => import("./delete_old_unclaimed_attachments.js"),
  },
  {
    name: "archive_messages",
    group: "Maintenance",
    summary: "Apply the message retention policies: archive expired messages and delete old archived data, as Zulip's cron job does",
    load: () => import("./archive_messages.js"),
  },
  {
    name: "dbshell",
    noDb: true,
    group: "Maintenance",
    summary: "Start psql on the Zulip database with zulip-manage's connection settings",
    load: () => import("./dbshell.js"),
  },
  {
    name: "completion",
    noDb: true,
    helper: true,
    group: "Maintenance",
    summary: "Print a bash or zsh completion script (commands, options, realm ids)",
    load: () => import("./completion.js"),
  },
];

export function findCommand(name: string): CommandEntry | undefined {
  return COMMANDS.find((c) => c.name === name);
}
