// create_realm: manage.py create_realm (check_subdomain_available, get_create_user_params,
// do_create_realm(string_id, name), then do_create_user(..., role=owner, realm_creation=True,
// tos_version="-1", acting_user=None)).
//
// One transaction writes everything do_create_realm and do_create_user write (src/zulip/actions/create-realm.ts, create-user.ts,
// checked row by row against a real Zulip 12.2 install and the Zulip 11 / 10 test databases): the
// realm with all its settings, its REALM_CREATED row (acting user set to the owner),
// RealmUserDefault, the eight system groups with their subgroup chain and audit rows, the
// permission-group settings, authentication methods, PresenceSequence, the three default channels
// with their DefaultStream rows; then the owner (role owner, in role:owners, subscribed to the
// default channels), the welcome ScheduledEmails (including onboarding_team_to_zulip for the
// creator) with the unsubscribe confirmation, and the visibility_policy_banner OnboardingStep.
// Works on Zulip 10.x, 11.x and 12.x databases, writing that release's rows: the columns the
// catalog has (with the release's Python defaults, e.g. giphy_rating / mandatory_topics before
// 12.0 / 11.0), the owner's personal recipient and its subscription before 12.0, #general as
// the new-channel and Zulip-update announcement channel before 12.0, and the release's Zulip
// update level. A database with a required column zulip-manage does not know is refused (exit 3)
// before anything is written. Not written, and said so: Welcome Bot's onboarding messages in the
// new channels (with their OnboardingUserMessage rows) and its direct message to the owner, and
// the queued "account registered" email.
//
// Events (after the commit; src/services/events.ts), in Zulip's order: do_create_realm's (with the push
// notification service, a push_bouncer_update_for_realm job; a `stream` `create` per default
// channel, addressed to the new realm's non-guests — nobody yet, published with an empty user
// list as Zulip does), then do_create_user's for the owner (the job again; `user_group`
// `add_members` of role:owners to the realm's active users, i.e. the owner). Not sent: the
// owner's `realm_user` `add` (Zulip sends it to the owner alone, who has no open client yet): its
// person object carries the avatar URL, which for 12.x's default avatar source ("J") could not be
// checked against Zulip's source; it belongs with create_user's person builder. No message
// events: the messages Zulip posts on realm creation are not written (see above), and
// process_new_human_user's peer_add has no peers to go to.
//
// --json: src/schemas/create_realm.ts (README: --json output). A dry run has its own body: the
// organization does not exist yet, so realm.id and the channels' ids are null and owner is null.
// audit_log_ids are every row written for the new organization (and for the system bot realm
// when it was created first).
import { addCreateUserArguments, addEventsOption, addFlushCacheOption, getCreateUserParams } from "../cli/options.js";
import { CacheInvalidation, cacheReportJson } from "../zulip/cache.js";
import { defineCommand } from "../cli/command.js";
import { EventDelivery, eventsReportJson, featureLevel } from "../services/events.js";
import { checkNewRealm, defaultRealmChannelNames, doCreateRealm, NOT_DONE_ONBOARDING_MESSAGES } from "../zulip/actions/create-realm.js";
import { checkFullName, NOT_DONE_ACCOUNT_EMAIL, NOT_DONE_WELCOME_DM } from "../zulip/actions/create-user.js";
import { creationSchemaProblem } from "../zulip/actions/creation-schema.js";
import { serverUrls } from "../zulip/actions/onboarding.js";
import { checkServerInitialization } from "../zulip/actions/server-initialization.js";
import { ROLES } from "../zulip/roles.js";
import { hashNewPassword } from "../zulip/password.js";
import { EnvironmentError } from "../lib/errors.js";
import { realmJson, serverDataReportJson, userJson } from "../cli/json-objects.js";
import { utcTimestamp } from "../cli/json-contract.js";
import type { CreateRealmBody, CreateRealmDryRunBody } from "../schemas/create_realm.js";
import { requireSubdomainAvailable, subdomainSettings } from "../zulip/subdomain.js";

export default defineCommand({
  name: "create_realm",
  description:
    "Create a new Zulip organization (realm) via the command line.\n\n" +
    "We recommend `zulip-manage generate_realm_creation_link` for most users, for several reasons:\n\n" +
    "* Has a more user-friendly web flow for account creation.\n" +
    "* Manages passwords in a more natural way.\n" +
    "* Automatically logs the user in during account creation.\n\n" +
    "This management command is available as an alternative for situations where one wants to script the " +
    "realm creation process.\n\n" +
    "Since every Zulip realm must have an owner, this command creates the initial organization owner user for " +
    "the new realm, using the same workflow as `zulip-manage create_user`.",
  examples: [
    'zulip-manage create_realm "Acme Corp" --string-id acme boss@acme.com "Boss Person" --password-file /root/pw.txt',
    'zulip-manage create_realm "Our Team" boss@example.com "Boss Person"    # on the root domain',
    'zulip-manage create_realm "Acme Corp" --string-id acme boss@acme.com "Boss" --dry-run',
  ],
  configure: (cmd) =>
    addEventsOption(
      addFlushCacheOption(
        addCreateUserArguments(
          cmd
            .usage("[options] <realm_name> [--string-id ID] [<email>] [<full name>]")
            .argument("<realm_name>", "Name for the new organization")
            .option("--string-id <string_id>", "Subdomain for the new organization. Empty if root domain.", "")
            .option("--allow-reserved-subdomain", "Allow use of reserved subdomains"),
        ).option("--dry-run", "check everything, show what would be created, and create nothing"),
      ),
    ),
  async run(ctx, args, opts) {
    const out = ctx.out;
    const dryRun = Boolean(opts.dryRun);
    const [realmName, ...userArgs] = args;
    const stringId = opts.stringId ?? "";
    const settings = ctx.config().settings;
    const db = await ctx.db();
    const subOpts = { ...subdomainSettings(settings), allowReserved: Boolean(opts.allowReservedSubdomain) };
    await requireSubdomainAvailable(db, stringId, subOpts);
    const params = await getCreateUserParams(ctx, userArgs, opts);
    checkFullName(params.fullName);
    checkNewRealm(realmName, stringId, subOpts);
    const problem = await creationSchemaProblem(db);
    if (problem) throw new EnvironmentError(problem);
    // do_create_realm: `if not server_initialized(): create_internal_realm()` — on a database
    // without any realm, the system bot realm and its bots are created first (here in the same
    // transaction); a database that has realms but not the system bot realm is refused.
    const systemBotRealm: string = settings.get("SYSTEM_BOT_REALM");
    const { initialize } = await checkServerInitialization(db, systemBotRealm);
    const passwordHash = await hashNewPassword(settings, params.password);
    if (params.password === null && !out.json) out.err("User will be created with a disabled password.");
    const urls = serverUrls(settings, stringId);

    const notDone = [NOT_DONE_ONBOARDING_MESSAGES, NOT_DONE_WELCOME_DM, NOT_DONE_ACCOUNT_EMAIL];
    if (dryRun) {
      if (initialize) out.line(`Would first create the system bot realm '${systemBotRealm}' and its bots (this server has no organization yet).`);
      out.line(`Would create the organization "${realmName}" at ${urls.realmUrl} with the owner ${params.email} ("${params.fullName}").`);
      out.line("(dry run: nothing was changed)");
      out.jsonBody<CreateRealmDryRunBody>({
        dry_run: true,
        realm: { id: null, string_id: stringId, name: realmName, url: urls.realmUrl },
        owner: null,
        channels: defaultRealmChannelNames().map((name) => ({ id: null, name })),
        not_done: notDone,
        scheduled_emails: [],
        audit_log_ids: [],
        system_bot_realm_created: null,
        push_service: null,
        cache: null,
        events: null,
      });
      return 0;
    }
    const inval = new CacheInvalidation(ctx, opts.flushCache);
    if (initialize) out.err("Server not yet initialized. Creating the internal realm first.");
    const events = new EventDelivery(ctx, opts.events);
    const created = await doCreateRealm(
      db,
      { stringId, name: realmName, owner: { email: params.email, fullName: params.fullName, passwordHash }, initialize, systemBotRealm },
      { urls, events, featureLevel: featureLevel(ctx.paths, db), settings, deployDir: ctx.paths.deployDir, cache: inval },
    );
    notDone.push(...created.avatarNotDone);
    const cache = cacheReportJson(await inval.commit())!;
    const delivery = await events.commit();
    const result: CreateRealmBody = {
      dry_run: false,
      realm: realmJson(settings, { id: created.realm.id, string_id: stringId, name: realmName }),
      owner: {
        ...userJson({
          id: created.owner.id,
          email: created.owner.email,
          delivery_email: created.owner.deliveryEmail,
          full_name: created.owner.fullName,
          realm_id: created.realm.id,
          role: ROLES.REALM_OWNER,
        }),
        password: passwordHash ? "set" : "unusable",
      },
      channels: created.realm.channels.map((c) => ({ id: c.id, name: c.name })),
      not_done: notDone,
      scheduled_emails: (created.steps.welcomeEmails?.scheduled ?? []).map((s) => ({
        id: s.id,
        template: s.template,
        scheduled_at: utcTimestamp(s.scheduledAt),
      })),
      audit_log_ids: created.auditLogIds,
      system_bot_realm_created: created.systemRealm && {
        ...realmJson(settings, { id: created.systemRealm.id, string_id: systemBotRealm, name: created.systemRealm.name }),
        bots_count: created.systemRealm.bots,
      },
      push_service: null,
      cache,
      events: eventsReportJson(delivery)!,
    };
    // With the push notification service in use, Zulip reports the new realm to it through the
    // deferred_work push_bouncer_update_for_realm jobs staged above (maybe_enqueue_audit_log_upload,
    // from do_create_realm and do_create_user): its worker runs send_server_data_to_push_bouncer.
    // Only when those jobs could not be queued (RabbitMQ unreachable, --events=none) is the report
    // sent from here instead (see reportServerData), so that it is never lost nor sent twice.
    const reportQueued = events.enabled && !delivery.undelivered.includes("deferred_work: push_bouncer_update_for_realm");
    if (settings.get("ZULIP_SERVICE_PUSH_NOTIFICATIONS") && !reportQueued) {
      const { reportServerData } = await import("../zulip/actions/remote-server.js");
      result.push_service = serverDataReportJson(settings, await reportServerData(ctx, db, opts.flushCache, opts.events, (t) => out.warn(t)));
    }
    for (const e of created.eventsNotSent) result.not_done.push(`not sent: ${e}`);
    for (const n of result.not_done) out.line(`Note: not done: ${n}.`);
    out.jsonBody<CreateRealmBody>(result);
    return 0;
  },
});
