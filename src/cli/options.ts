// The options several commands share, declared once: manage.py's -r/--realm and -u/--users /
// -a/--all-users, and our --flush-cache and --events. Each helper returns the command it was
// given with the option's type added (@commander-js/extra-typings), so that a command's
// configure() is one chain and its run() receives typed options.
import { type Command, type OptionValues, Option } from "@commander-js/extra-typings";
import { FLUSH_MODES } from "../zulip/cache.js";
import { REALM_HELP } from "../zulip/lookup.js";
import { EVENTS_MODES } from "../services/events.js";

/** manage.py's -r/--realm (optional, as in ZulipBaseCommand.add_realm_args). */
export function addRealmOption<A extends unknown[], O extends OptionValues>(cmd: Command<A, O>, help: string = REALM_HELP) {
  return cmd.option("-r, --realm <realm>", help);
}

/** manage.py's -r/--realm with required=True. */
export function addRequiredRealmOption<A extends unknown[], O extends OptionValues>(cmd: Command<A, O>, help: string = REALM_HELP) {
  return cmd.requiredOption("-r, --realm <realm>", help);
}

/** manage.py's -u/--users and -a/--all-users (ZulipBaseCommand.add_user_list_args). */
export function addUserListOptions<A extends unknown[], O extends OptionValues>(cmd: Command<A, O>, help: { users?: string; all?: string } = {}) {
  return cmd
    .option("-u, --users <emails>", help.users ?? "A comma-separated list of email addresses.")
    .option("-a, --all-users", help.all ?? "All users in realm.");
}

/** --flush-cache=keys|all|none on a write command (see src/zulip/cache.ts). */
export function addFlushCacheOption<A extends unknown[], O extends OptionValues>(cmd: Command<A, O>) {
  return cmd.addOption(
    new Option(
      "--flush-cache <mode>",
      "after writing, update the Zulip server's memcached: 'keys' deletes exactly the cached entries the change affects " +
        "(what Zulip does itself), 'all' flushes the whole cache (safe; Zulip refills it), 'none' leaves it alone",
    )
      .choices(FLUSH_MODES)
      .default("keys" as const),
  );
}

/** --events=auto|rabbitmq|http|none on a write command (see src/services/events.ts). */
export function addEventsOption<A extends unknown[], O extends OptionValues>(cmd: Command<A, O>) {
  return cmd.addOption(
    new Option(
      "--events <transport>",
      "after writing, tell open browsers and apps (Zulip's real-time events) and Zulip's queue workers: 'rabbitmq' publishes " +
        "to RabbitMQ as Zulip does, 'http' posts the events to Tornado directly, 'auto' uses RabbitMQ and falls back to " +
        "Tornado, 'none' sends nothing (clients update when they reload)",
    )
      .choices(EVENTS_MODES)
      .default("auto" as const),
  );
}
