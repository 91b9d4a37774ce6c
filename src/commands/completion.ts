// completion: print a bash or zsh completion script for zulip-manage (not a manage.py command).
//
//   source <(zulip-manage completion bash)
//   zulip-manage completion zsh > "${fpath[1]}/_zulip-manage"
//
// The script completes command names, each command's options, option values with fixed choices,
// file/directory names for path options, and realm string ids after -r/--realm. For the realm
// ids the script runs `zulip-manage completion --realms` (hidden): one query on zerver_realm,
// printing the non-empty string ids one per line (the root-domain realm's id is the empty
// string, which cannot be completed). With --realms and --json it prints the realm objects
// ({"realms": [{"id", "string_id", "name", "url"}, ...]}, after the envelope).
import { Argument, Option } from "@commander-js/extra-typings";
import { version } from "../lib/version.js";
import { defineCommand } from "../cli/command.js";
import { bashScript, completionCommands, zshScript } from "../cli/completion.js";
import { UsageError } from "../lib/errors.js";
import { realmJson } from "../cli/json-objects.js";
import { realmsWithSubdomain } from "../zulip/realms.js";
import type { CompletionRealmsBody, CompletionScriptBody } from "../schemas/completion.js";

export const SHELLS = ["bash", "zsh"] as const;

export default defineCommand({
  name: "completion",
  description:
    "Print a shell completion script for zulip-manage: command names, options, option values and realm ids.\n\n" +
    "bash:  source <(zulip-manage completion bash)       (or save it in /etc/bash_completion.d/zulip-manage)\n" +
    'zsh:   source <(zulip-manage completion zsh)        (after compinit; or save it as "${fpath[1]}/_zulip-manage")',
  examples: [
    "source <(zulip-manage completion bash)",
    "zulip-manage completion bash > /etc/bash_completion.d/zulip-manage",
    'zulip-manage completion zsh > "${fpath[1]}/_zulip-manage"',
  ],
  configure: (cmd) =>
    cmd
      .addArgument(new Argument("[shell]", "the shell to print the script for").choices(SHELLS))
      .addOption(new Option("--realms", "print the realm string ids, one per line (used by the scripts)").hideHelp()),
  async run(ctx, args, opts) {
    const out = ctx.out;
    if (opts.realms) {
      if (args[0] !== undefined) throw new UsageError("argument --realms: not allowed with argument <shell>");
      const db = await ctx.db();
      const rows = await realmsWithSubdomain(db);
      const ids = rows.map((r) => r.string_id);
      if (out.json) {
        const settings = ctx.config().settings;
        out.jsonBody<CompletionRealmsBody>({ realms: rows.map((r) => realmJson(settings, r)) });
      } else if (ids.length) out.write(ids.join("\n") + "\n");
      return;
    }
    const shell = args[0];
    if (shell === undefined) throw new UsageError("the following arguments are required: <shell> (bash or zsh)");
    const spec = { program: "zulip-manage", version: version(), commands: await completionCommands() };
    const script = shell === "zsh" ? zshScript(spec) : bashScript(spec);
    if (out.json) out.jsonBody<CompletionScriptBody>({ shell: shell === "zsh" ? "zsh" : "bash", script });
    else out.write(script);
  },
});
