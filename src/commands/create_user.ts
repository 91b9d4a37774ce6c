// create_user: manage.py create_user (get_create_user_params, then do_create_user(email,
// password, realm, full_name, tos_version="-1", acting_user=None)).
//
// One transaction writes what do_create_user and process_new_human_user write for a user who
// signs up without an invitation (src/zulip/actions/create-user.ts createUser + onboarding.ts processNewHumanUserRows): the
// UserProfile with the organization's default settings, USER_CREATED {"10": ROLE_COUNT}
// (acting user = the new user, as Zulip records it), the system-group membership(s) with their
// 703 rows, subscriptions to the default channels (301 rows, subscriber counts) with recent
// channel history, other PreregistrationUsers of the address revoked, invitation reminders to it
// removed, the welcome ScheduledEmails with their unsubscribe confirmation, the
// visibility_policy_banner OnboardingStep, and — when the organization has a signup
// announcements channel and this is not its first user — Notification Bot's "@_**Name|id**
// joined this organization." message (English organizations only; otherwise a note says it was
// not written). Not done, and said so: Welcome Bot's onboarding direct message and the "account
// registered" email Zulip queues.
//
// Works on Zulip 10.x, 11.x and 12.x databases with that release's rows (the columns its catalog
// has; before 12.0 also the personal recipient with the user's subscription to it, and the
// USER_CREATED role counts without the workplace-user keys). A database with a required column
// zulip-manage does not know is refused (exit 3) before anything is written.
//
// --password-file (stripped) or --password (with Zulip's warning) sets a password, hashed as the
// server would (Argon2 in production) after Zulip's strength check; otherwise the password is
// unusable. Missing <email> / <full name> are asked for on stdin, like manage.py's input().
//
// --json: src/schemas/create_user.ts (README: --json output): the user object (null in a dry
// run) with password "set"/"unusable" and its system groups, scheduled_emails[].scheduled_at, the
// audit rows the creation wrote.
import { addCreateUserArguments, addEventsOption, addFlushCacheOption, addRequiredRealmOption, getCreateUserParams } from "../cli/options.js";
import { CacheInvalidation, cacheReportJson } from "../zulip/cache.js";
import { roleCountBaselineBeside } from "../zulip/audit.js";
import { defineCommand } from "../cli/command.js";
import { checkFullName, doCreateUser, NOT_DONE_ACCOUNT_EMAIL, NOT_DONE_WELCOME_DM, userAlreadyExists } from "../zulip/actions/create-user.js";
import { creationSchemaProblem } from "../zulip/actions/creation-schema.js";
import { serverUrls } from "../zulip/actions/onboarding.js";
import { CommandError, EnvironmentError } from "../lib/errors.js";
import { getRealm } from "../zulip/lookup.js";
import { TOS_VERSION_BEFORE_FIRST_LOGIN } from "../zulip/models.js";
import { hashNewPassword } from "../zulip/password.js";
import { defaultChannelNames } from "../zulip/realms.js";
import { EventDelivery, eventsReportJson, featureLevel } from "../services/events.js";
import { realmJson, userJson } from "../cli/json-objects.js";
import { utcTimestamp } from "../cli/json-contract.js";
import type { CreateUserBody } from "../schemas/create_user.js";

export default defineCommand({
  name: "create_user",
  description:
    "Create a new Zulip user via the command line.\n\n" +
    "Prompts the user for <email> and <full name> if not specified.\n\n" +
    "We recommend the Zulip API (https://zulip.com/api/create-user) instead of this tool for most use cases.\n\n" +
    "If the server has Terms of Service configured, the user will be prompted to accept the Terms of Service " +
    "the first time they login.",
  examples: [
    'zulip-manage create_user -r zulip new@example.com "New Person"',
    'zulip-manage create_user -r zulip new@example.com "New Person" --password-file /root/pw.txt',
    'zulip-manage create_user -r 2 new@example.com "New Person" --dry-run',
  ],
  configure: (cmd) =>
    addEventsOption(
      addFlushCacheOption(
        addRequiredRealmOption(
          addCreateUserArguments(cmd.usage("[options] -r REALM [<email>] [<full name>]")),
          "The name of the existing realm to which to add the user.",
        ).option("--dry-run", "check everything, show what would be created, and create nothing"),
      ),
    ),
  async run(ctx, args, opts) {
    const out = ctx.out;
    const dryRun = Boolean(opts.dryRun);
    // ROLE_COUNT's count of the realm's users, read beside (see roleCountsAfterChange); by the
    // address on the command line, or once it was asked for.
    const baselineFor = (email: string) => (dryRun ? undefined : roleCountBaselineBeside(ctx, opts.realm, email, { absentUser: true }));
    let roleCountBaseline = args[0] !== undefined ? baselineFor(args[0]) : undefined;
    const db = await ctx.db();
    const realm = (await getRealm(db, opts.realm))!;
    const params = await getCreateUserParams(ctx, args, opts);
    roleCountBaseline ??= baselineFor(params.email);
    checkFullName(params.fullName);
    const problem = await creationSchemaProblem(db);
    if (problem) throw new EnvironmentError(problem);
    if (await userAlreadyExists(db, realm.id, params.email)) throw new CommandError("User already exists.");
    const settings = ctx.config().settings;
    const passwordHash = await hashNewPassword(settings, params.password);
    if (params.password === null && !out.json) out.err("User will be created with a disabled password.");

    const urls = serverUrls(settings, realm.string_id);
    const result: CreateUserBody = {
      dry_run: dryRun,
      realm: realmJson(settings, realm),
      user: null,
      subscribed_channels: [],
      scheduled_emails: [],
      signup_announcement: null,
      not_done: [NOT_DONE_WELCOME_DM, NOT_DONE_ACCOUNT_EMAIL],
      audit_log_ids: [],
      cache: null,
      events: null,
    };
    const finish = () => {
      out.jsonBody<CreateUserBody>(result);
      return 0;
    };
    if (dryRun) {
      result.subscribed_channels = await defaultChannelNames(db, realm.id);
      out.line(
        `Would create ${params.email} ("${params.fullName}") in ${realm.string_id === "" ? "the root-domain organization" : realm.string_id}, subscribed to ${result.subscribed_channels.join(", ") || "no channels"}.`,
      );
      out.line("(dry run: nothing was changed)");
      return finish();
    }

    const inval = new CacheInvalidation(ctx, opts.flushCache);
    inval.prepare();
    const events = new EventDelivery(ctx, opts.events);
    const level = featureLevel(ctx.paths, db);
    const notify = { events, realm: { id: Number(realm.id), string_id: realm.string_id }, what: `the creation of ${params.email}`, featureLevel: level };
    const created = await doCreateUser(
      db,
      realm,
      {
        email: params.email,
        fullName: params.fullName,
        passwordHash,
        tosVersion: TOS_VERSION_BEFORE_FIRST_LOGIN,
        ...(roleCountBaseline ? { roleCountBaseline } : {}),
      },
      { urls, notify, featureLevel: level, settings, deployDir: ctx.paths.deployDir, cache: inval },
    );
    result.not_done.push(...created.avatarNotDone);
    result.cache = cacheReportJson(await inval.commit());
    result.events = eventsReportJson(await events.commit());
    const u = created.user;
    result.user = { ...userJson(created.row), password: passwordHash ? "set" : "unusable", system_groups: u.systemGroups };
    result.audit_log_ids = created.auditLogIds;
    result.subscribed_channels = created.subscribedChannels;
    result.scheduled_emails = (created.steps.welcomeEmails?.scheduled ?? []).map((s) => ({
      id: s.id,
      template: s.template,
      scheduled_at: utcTimestamp(s.scheduledAt),
    }));
    if (created.signup.messageId !== null) result.signup_announcement = { message_id: created.signup.messageId, channel: created.signup.channel! };
    if (created.signup.notWritten) result.not_done.push(created.signup.notWritten);
    for (const e of created.eventsNotSent) result.not_done.push(`not sent: ${e}`);
    for (const e of created.signup.eventsNotSent) result.not_done.push(`not sent: ${e}`);
    for (const n of result.not_done) out.line(`Note: not done: ${n}.`);
    return finish();
  },
});
