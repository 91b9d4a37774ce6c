import { addRequiredRealmOption } from "../cli/options.js";
import { defineCommand } from "../cli/command.js";
import { CommandError } from "../lib/errors.js";
import { getRealm } from "../zulip/lookup.js";
import { realmJson, userJson } from "../cli/json-objects.js";
import { ROLES } from "../zulip/roles.js";
import { adminUsersAndBots } from "../zulip/realms.js";
import type { ShowAdminsBody } from "../schemas/show_admins.js";

export default defineCommand({
  name: "show_admins",
  description: "Show the owners and administrators in an organization.",
  examples: ["zulip-manage show_admins -r ''", "zulip-manage show_admins -r engineering --json"],
  configure: (cmd) => addRequiredRealmOption(cmd),
  async run(ctx, _args, opts) {
    const db = await ctx.db();
    const realm = (await getRealm(db, opts.realm))!;
    // realm.get_admin_users_and_bots(): active, role owner or administrator, bots included.
    const rows = await adminUsersAndBots(db, realm.id);
    if (rows.length === 0) throw new CommandError("There are no admins for this realm!");
    const isHumanOwner = (u: { role: number; is_bot: boolean }) => u.role === ROLES.REALM_OWNER && !u.is_bot;
    if (ctx.out.json) {
      ctx.out.jsonBody<ShowAdminsBody>({
        realm: realmJson(ctx.config().settings, realm),
        administrators: rows.map((u) => ({ ...userJson(u), is_bot: Boolean(u.is_bot) })),
      });
      return;
    }
    ctx.out.line("Administrators:\n");
    for (const u of rows) ctx.out.line(`  ${u.delivery_email} (${u.full_name})${isHumanOwner(u) ? " [owner]" : ""}`);
    ctx.out.line('\nYou can use the "change_user_role" management command to adjust roles.');
  },
});
