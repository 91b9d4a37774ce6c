import { defineCommand } from "../cli/command.js";
import { createRealmCreationLink } from "../zulip/confirmation.js";
import { utcTimestamp } from "../cli/json-contract.js";
import type { GenerateRealmCreationLinkBody } from "../schemas/generate_realm_creation_link.js";

// Django's SUCCESS style and the raw codes Zulip's command embeds in its text.
const SUCCESS = "\x1b[32;1m";
const RESET = "\x1b[0m";
const BRIGHT = "\x1b[1;92m";

export default defineCommand({
  name: "generate_realm_creation_link",
  description:
    "Outputs a randomly generated, 1-time-use link for Organization creation. " +
    "Whoever visits the link can create a new organization on this server, regardless of whether " +
    "settings.OPEN_REALM_CREATION is enabled. The link would expire automatically after " +
    "settings.CAN_CREATE_REALM_LINK_VALIDITY_DAYS (REALM_CREATION_LINK_VALIDITY_DAYS before Zulip 11; default 7).",
  examples: ["zulip-manage generate_realm_creation_link", "zulip-manage generate_realm_creation_link --json"],
  async run(ctx) {
    const settings = ctx.config().settings;
    const rootDomainUri = settings.get("ROOT_DOMAIN_URI");
    const validityDays = settings.get("CAN_CREATE_REALM_LINK_VALIDITY_DAYS");
    // connect() refuses a database without Zulip's schema with manage.py's message (exit 3).
    const db = await ctx.db();
    const link = await db.tx(() => createRealmCreationLink(db, { rootDomainUri, validityDays }));
    const out = ctx.out;
    if (out.json) {
      out.jsonBody<GenerateRealmCreationLinkBody>({ dry_run: false, url: link.url, key: link.key, expires_at: utcTimestamp(link.expiresAt) });
      return;
    }
    if (out.color) {
      // Exactly what manage.py writes to a terminal.
      out.line(`${SUCCESS}Please visit the following secure single-use link to register your ${RESET}`);
      out.line(`${SUCCESS}new Zulip organization:${RESET}${RESET}`);
      out.line("");
      out.line(`${SUCCESS}    ${BRIGHT}${link.url}${RESET}${RESET}`);
      out.line("");
    } else {
      // manage.py prints its escape codes even into pipes and cron mail; we do not.
      out.line("Please visit the following secure single-use link to register your ");
      out.line("new Zulip organization:");
      out.line("");
      out.line(`    ${link.url}`);
      out.line("");
    }
  },
});
