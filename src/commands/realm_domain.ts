// realm_domain: manage.py realm_domain — list an organization's allowed email domains
// (--op show, the default), add one (--op add [--allow-subdomains]) or remove one (--op remove),
// as the organization settings page does it (src/zulip/actions/realm-domains.ts: Zulip's do_add_realm_domain /
// do_remove_realm_domain with their audit rows, events and the emails-restricted side effect).
//
// --json: src/schemas/realm_domain.ts (README: --json output): --op show has its own body.
import { addEventsOption, addFlushCacheOption, addRequiredRealmOption } from "../cli/options.js";
import { CacheInvalidation, cacheReportJson } from "../zulip/cache.js";
import { defineCommand } from "../cli/command.js";
import { CommandError, UsageError } from "../lib/errors.js";
import { EventDelivery, eventsReportJson } from "../services/events.js";
import { realmJson } from "../cli/json-objects.js";
import type { RealmDomainChangeBody, RealmDomainShowBody } from "../schemas/realm_domain.js";
import { getRealm } from "../zulip/lookup.js";
import { doChangeRealmDomain, domainProblem, normalizeDomain, planRealmDomainChange, realmDomains } from "../zulip/actions/realm-domains.js";

const OPS = ["show", "add", "remove"];

function describe(d: { domain: string; allow_subdomains: boolean }): string {
  return `${d.domain} (subdomains ${d.allow_subdomains ? "allowed" : "not allowed"})`;
}

export default defineCommand({
  name: "realm_domain",
  description:
    "Manage domains for the specified realm\n\n" +
    'The domains are the ones "Restrict email addresses of new users" (emails_restricted_to_domains) allows. ' +
    "Adding and removing write Zulip's audit log entries and notify open browsers, as the organization settings page does; " +
    "removing the last domain turns the restriction off, as Zulip does.",
  examples: [
    "zulip-manage realm_domain -r zulip",
    "zulip-manage realm_domain -r zulip --op add --allow-subdomains example.com",
    "zulip-manage realm_domain -r zulip --op remove example.com --dry-run",
  ],
  configure: (cmd) =>
    addEventsOption(
      addFlushCacheOption(
        addRequiredRealmOption(
          cmd
            .usage("[options] -r REALM [--op show|add|remove] [--allow-subdomains] [<domain>]")
            .argument("[domain]", "domain to add or remove")
            .option("--op <op>", "What operation to do (add, show, remove).", "show")
            .option("--allow-subdomains", "Whether subdomains are allowed or not."),
        ).option("--dry-run", "show what would change, and change nothing"),
      ),
    ),
  async run(ctx, args, opts) {
    const out = ctx.out;
    const op = String(opts.op);
    if (!OPS.includes(op)) throw new CommandError(`Unknown operation '${op}': use --op show, add or remove.`);
    const [domainArg] = args;
    if (op !== "show" && domainArg === undefined) throw new UsageError(`the following arguments are required: <domain> (with --op ${op})`);
    const db = await ctx.db();
    const realm = (await getRealm(db, opts.realm))!;
    const realmRef = { id: Number(realm.id), string_id: realm.string_id };
    if (op === "show") {
      const domains = await realmDomains(db, realmRef.id);
      out.line(`Domains for ${realm.string_id}:`);
      for (const d of domains) out.line(describe(d));
      out.jsonBody<RealmDomainShowBody>({ op: "show", realm: realmJson(ctx.config().settings, realm), domains });
      return 0;
    }
    const domain = normalizeDomain(domainArg!);
    const problem = domainProblem(domain);
    if (problem) throw new CommandError(problem);
    const allowSubdomains = Boolean(opts.allowSubdomains);
    const dryRun = Boolean(opts.dryRun);
    const restricted = Boolean(realm.emails_restricted_to_domains);
    const doc: RealmDomainChangeBody = {
      dry_run: dryRun,
      op: op as "add" | "remove",
      realm: realmJson(ctx.config().settings, realm),
      domain,
      allow_subdomains: allowSubdomains,
      audit_log_ids: [],
      emails_restricted_to_domains: { old: restricted, new: restricted },
      domains: [],
      cache: null,
      events: null,
    };
    const liftRestriction = (lifted: boolean) => {
      if (lifted) doc.emails_restricted_to_domains = { old: true, new: false };
    };
    if (dryRun) {
      const plan = await planRealmDomainChange(db, realmRef.id, doc.op, domain, allowSubdomains, restricted);
      doc.domains = plan.domains;
      doc.allow_subdomains = plan.changed.allow_subdomains;
      liftRestriction(plan.restrictionLifted);
      if (op === "add") {
        out.line(`Would add ${describe(plan.changed)} to ${realm.string_id}.`);
      } else {
        out.line(`Would remove ${describe(plan.changed)} from ${realm.string_id}.`);
        if (doc.emails_restricted_to_domains.old && !doc.emails_restricted_to_domains.new) {
          out.line("It is the last domain: new users' email addresses would no longer be restricted to the organization's domains.");
        }
      }
      out.line("(dry run: nothing was changed)");
      out.jsonBody<RealmDomainChangeBody>(doc);
      return 0;
    }
    const inval = new CacheInvalidation(ctx, opts.flushCache);
    const events = new EventDelivery(ctx, opts.events);
    const notify = { events, realm: realmRef, what: `the domain change of ${realm.string_id}` };
    inval.prepare();
    try {
      const r = await doChangeRealmDomain(db, realmRef.id, doc.op, domain, allowSubdomains, { notify, cache: inval });
      doc.audit_log_ids = r.auditLogIds;
      doc.domains = r.domains;
      liftRestriction(r.restrictionLifted);
      doc.allow_subdomains = r.changed.allow_subdomains;
    } finally {
      doc.cache = cacheReportJson(await inval.commit());
      doc.events = eventsReportJson(await events.commit());
    }
    if (op === "add") out.line(`Added ${describe({ domain, allow_subdomains: allowSubdomains })} to ${realm.string_id}.`);
    else {
      out.line(`Removed ${domain} from ${realm.string_id}.`);
      if (doc.emails_restricted_to_domains.old && !doc.emails_restricted_to_domains.new) {
        out.line("It was the last domain: new users' email addresses are no longer restricted to the organization's domains.");
      }
    }
    out.jsonBody<RealmDomainChangeBody>(doc);
    return 0;
  },
});
