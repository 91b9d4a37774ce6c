// The shape every command module in src/commands/ exports, and the context it runs in.
import type { Command, OptionValues } from "@commander-js/extra-typings";
import type { Context } from "./context.js";

/**
 * A command module. configure() declares the arguments and options as one chain on the command
 * it is given and returns it; Args and Opts are inferred from that chain
 * (@commander-js/extra-typings), so run() receives them typed.
 */
export interface CommandModule<Args extends unknown[] = unknown[], Opts extends OptionValues = OptionValues> {
  /** Zulip's name for the command, e.g. "list_realms". */
  name: string;
  /** The help text manage.py shows (first paragraph) plus anything we add. */
  description: string;
  /** Example invocations shown at the end of --help. */
  examples: string[];
  /** Declare arguments and options on the commander Command, returning it. */
  configure?(cmd: Command): Command<Args, Opts>;
  /** Run the command. Throw CommandError/UsageError/EnvironmentError to fail. Return an exit code or nothing (0). */
  run(ctx: Context, args: Args, opts: Opts): Promise<number | void>;
}

export function defineCommand<Args extends unknown[], Opts extends OptionValues>(mod: CommandModule<Args, Opts>): CommandModule {
  return mod as unknown as CommandModule;
}

export type Group = "Organizations" | "Users" | "Email and links" | "Push notifications" | "Maintenance";
export const GROUP_ORDER: Group[] = ["Organizations", "Users", "Email and links", "Push notifications", "Maintenance"];

export interface CommandEntry {
  name: string;
  group: Group;
  summary: string;
  /** The command never opens the database (so `pg` is not preloaded for it). */
  noDb?: boolean;
  /**
   * A helper for the shell rather than an administrative action (completion): it is not logged
   * to manage.log, and as root with no Zulip user to switch to it runs as root instead of refusing.
   */
  helper?: boolean;
  load(): Promise<{ default: CommandModule }>;
}
