// create_user: manage.py create_user (get_create_user_params, then do_create_user(email,
// password, realm, full_name, tos_version="-1", acting_user=None)).
//
// One transaction writes what do_create_user and process_new_human_user write for a user who
// signs up without an invitation (src/zulip/actions/create.ts createUser + processNewHumanUserRows): the
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
import { addEventsOption, addFlushCacheOption, addRequiredRealmOption } from "../cli/options.js";
import { CacheInvalidation, type CacheUser } from "../zulip/cache.js";
import { type Context } from "../cli/context.js";
import { roleCountBaselineBeside } from "../zulip/audit.js";
import { defineUntypedCommand } from "../cli/command.js";
import { auditLogIdsOfUser, createUser, creationSchemaProblem, getSystemGroups, processNewHumanUserRows, Role, type ServerUrls } from "../zulip/actions/create.js";
import { validateEmailAddress } from "../zulip/email-address.js";
import type { Queryable } from "../db/db.js";
import { CommandError, EnvironmentError } from "../lib/errors.js";
import { READ_LIMITS, readOptionFile } from "../lib/files.js";
import { getRealm, type Realm } from "../zulip/lookup.js";
import { checkPasswordStrength, djangoPasswordHash, passwordRules, PASSWORD_TOO_WEAK } from "../zulip/password.js";
import { cacheJson } from "../zulip/actions/realm-lifecycle.js";
import { realmUrl } from "../config/settings.js";
import { sendSignupAnnouncement } from "../zulip/actions/channels.js";
import { EventDelivery, eventsReportJson, featureLevel } from "../services/events.js";
import { readAvatarSettings, writeJdenticonAvatar } from "../zulip/avatar.js";
import { sendUserCreationEvents } from "../zulip/events/user-creation-events.js";
import type { Command } from "@commander-js/extra-typings";
import { realmJson, userJson } from "../cli/json-objects.js";
import { utcTimestamp } from "../cli/json-contract.js";
import type { CreateUserBody } from "../schemas/create_user.js";

/** UserProfile.TOS_VERSION_BEFORE_FIRST_LOGIN */
export const TOS_VERSION_BEFORE_FIRST_LOGIN = "-1";

export const NOT_DONE_WELCOME_DM = "Welcome Bot's onboarding direct message to the new user (Zulip sends it on sign-up; zulip-manage does not write Welcome Bot's onboarding messages)";
export const NOT_DONE_ACCOUNT_EMAIL = "the \"account registered\" email Zulip queues for the new user (zulip-manage does not send it)";

/** add_create_user_args */
export function addCreateUserArguments(cmd: Command<any[], any, any>): void {
  cmd.argument("[email]", "Email address for the new user");
  cmd.argument("[full_name]", "Full name for the new user");
  cmd.option(
    "--password <password>",
    "Password for the new user. Recommended only in a development environment.\n\n" +
      "Sending passwords via command-line arguments is insecure, since it can be snooped by any process running on the " +
      "server via `ps -ef` or reading bash history. Prefer --password-file.",
  );
  cmd.option("--password-file <file>", "File containing a password for the new user.");
}

/** Longest answer read from standard input (an email address or a name), in bytes. */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * Reads lines from stdin the way Python's input() does (prompt on stdout, or stderr with
 * --json). A line longer than MAX_ANSWER_BYTES (e.g. stdin is /dev/zero) ends the command
 * instead of growing until the process runs out of memory.
 */
class LineReader {
  private started = false;
  private pending = "";
  private lines: string[] = [];
  private waiting: ((line: string | null) => void)[] = [];
  private closed = false;
  private tooLong = false;

  private readonly onData = (chunk: Buffer | string): void => {
    this.pending += chunk.toString();
    let nl: number;
    while ((nl = this.pending.indexOf("\n")) >= 0) {
      this.deliver(this.pending.slice(0, nl).replace(/\r$/, ""));
      this.pending = this.pending.slice(nl + 1);
    }
    if (Buffer.byteLength(this.pending) > MAX_ANSWER_BYTES) {
      this.tooLong = true;
      this.pending = "";
      this.end();
    }
  };

  private readonly onEnd = (): void => {
    if (this.pending !== "") this.deliver(this.pending);
    this.pending = "";
    this.end();
  };

  private deliver(line: string): void {
    const w = this.waiting.shift();
    if (w) w(line);
    else this.lines.push(line);
  }

  private end(): void {
    this.closed = true;
    this.close();
    for (const w of this.waiting.splice(0)) w(null);
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    process.stdin.on("data", this.onData);
    process.stdin.on("end", this.onEnd);
    process.stdin.on("error", this.onEnd);
  }

  async ask(prompt: string, json: boolean): Promise<string> {
    (json ? process.stderr : process.stdout).write(prompt);
    this.start();
    const line = this.lines.length ? this.lines.shift()! : this.closed ? null : await new Promise<string | null>((r) => this.waiting.push(r));
    if (line === null && this.tooLong) {
      throw new CommandError(`The answer to "${prompt.trim()}" on standard input is longer than ${MAX_ANSWER_BYTES / 1024} KiB; refusing to read it.`);
    }
    if (line === null) throw new CommandError(`No answer to "${prompt.trim()}": standard input ended. Pass the value as an argument instead.`);
    return line;
  }

  close(): void {
    if (!this.started) return;
    process.stdin.off("data", this.onData);
    process.stdin.off("end", this.onEnd);
    process.stdin.off("error", this.onEnd);
    process.stdin.pause();
    process.stdin.destroy();
  }
}

export interface CreateUserParams {
  email: string;
  fullName: string;
  /** null = an unusable password */
  password: string | null;
}

/** ZulipBaseCommand.get_create_user_params */
export async function getCreateUserParams(ctx: Context, args: (string | undefined)[], opts: Record<string, any>): Promise<CreateUserParams> {
  const reader = new LineReader();
  try {
    const email = args[0] ?? (await reader.ask("Email: ", ctx.out.json));
    // Django's validate_email, the one validator every command uses (change_user_email too).
    if (validateEmailAddress(email) !== null) throw new CommandError("Invalid email address.");
    const fullName = args[1] ?? (await reader.ask("Full name: ", ctx.out.json));
    let password: string | null = null;
    if (opts.passwordFile !== undefined) {
      password = readOptionFile(opts.passwordFile, READ_LIMITS.password, "the password file").trim();
    } else if (opts.password !== undefined) {
      ctx.out.warn("WARNING: Passing password on the command line is insecure; prefer --password-file.");
      password = opts.password;
    }
    return { email, fullName, password };
  } finally {
    reader.close();
  }
}

/** zerver_userprofile.full_name is a varchar(100); Zulip's command does no other check. */
export function checkFullName(name: string): string {
  if ([...name].length > 100) throw new CommandError("Name too long!");
  return name;
}

/** The password hash set_password() stores, after check_password_strength (null: unusable). */
export async function hashNewPassword(ctx: Context, password: string | null): Promise<string | null> {
  if (password === null) return null;
  const settings = ctx.config().settings;
  const rules = { ...passwordRules(settings), maxLength: Number.POSITIVE_INFINITY };
  const verdict = await checkPasswordStrength(password, rules);
  if (!verdict.ok) throw new CommandError(verdict.reason ?? PASSWORD_TOO_WEAK);
  return djangoPasswordHash(password, settings.get("PRODUCTION"));
}

/** The URLs and settings Zulip's common_context and fake emails use. */
export function serverUrls(ctx: Context, stringId: string): ServerUrls & { realmHosts: Record<string, string>; fakeEmailDomain: string } {
  const s = ctx.config().settings;
  const fileValue = (name: string, fallback: unknown) => {
    try {
      return s.fileValue(name, fallback as any);
    } catch {
      return fallback;
    }
  };
  const sender = fileValue("WELCOME_EMAIL_SENDER", null) as any;
  const fake = fileValue("FAKE_EMAIL_DOMAIN", null);
  return {
    realmUrl: realmUrl(s, stringId),
    rootDomainUrl: s.get("ROOT_DOMAIN_URI"),
    externalUriScheme: s.get("EXTERNAL_URI_SCHEME"),
    externalHost: s.get("EXTERNAL_HOST"),
    corporateEnabled: fileValue("CORPORATE_ENABLED", false) === true,
    welcomeEmailSender: sender && typeof sender === "object" && typeof sender.name === "string" && typeof sender.email === "string" ? sender : null,
    realmHosts: s.get("REALM_HOSTS"),
    fakeEmailDomain: typeof fake === "string" ? fake : s.get("EXTERNAL_HOST_WITHOUT_PORT"),
  };
}

export async function userAlreadyExists(q: Queryable, realmId: number, email: string): Promise<boolean> {
  const { rows } = await q.query(
    "SELECT 1 FROM zerver_userprofile WHERE realm_id = $1 AND (upper(delivery_email) = upper($2) OR upper(email) = upper($2))",
    [realmId, email.trim()],
  );
  return rows.length > 0;
}

export default defineUntypedCommand({
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
  configure(cmd) {
    cmd.usage("[options] -r REALM [<email>] [<full name>]");
    addCreateUserArguments(cmd);
    addRequiredRealmOption(cmd, "The name of the existing realm to which to add the user.");
    cmd.option("--dry-run", "check everything, show what would be created, and create nothing");
    addFlushCacheOption(cmd);
    addEventsOption(cmd);
  },
  async run(ctx, args, opts) {
    const out = ctx.out;
    const dryRun = Boolean(opts.dryRun);
    // ROLE_COUNT's count of the realm's users, read beside (see roleCountsAfterChange); by the
    // address on the command line, or once it was asked for.
    const baselineFor = (email: string) => (dryRun ? undefined : roleCountBaselineBeside(ctx, opts.realm, email, { absentUser: true }));
    let roleCountBaseline = args[0] !== undefined ? baselineFor(args[0]) : undefined;
    const db = await ctx.db();
    const realm = (await getRealm(db, opts.realm)) as Realm;
    const params = await getCreateUserParams(ctx, args, opts);
    roleCountBaseline ??= baselineFor(params.email);
    checkFullName(params.fullName);
    const problem = await creationSchemaProblem(db);
    if (problem) throw new EnvironmentError(problem);
    if (await userAlreadyExists(db, realm.id, params.email)) throw new CommandError("User already exists.");
    const passwordHash = await hashNewPassword(ctx, params.password);
    if (params.password === null && !out.json) out.err("User will be created with a disabled password.");

    const urls = serverUrls(ctx, realm.string_id);
    const result: CreateUserBody = {
      dry_run: dryRun,
      realm: realmJson(ctx.config().settings, realm),
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
      const { rows } = await db.query(
        "SELECT s.name FROM zerver_defaultstream d JOIN zerver_stream s ON s.id = d.stream_id WHERE d.realm_id = $1 ORDER BY s.name",
        [realm.id],
      );
      result.subscribed_channels = rows.map((r) => r.name);
      out.line(`Would create ${params.email} ("${params.fullName}") in ${realm.string_id === "" ? "the root-domain organization" : realm.string_id}, subscribed to ${result.subscribed_channels.join(", ") || "no channels"}.`);
      out.line("(dry run: nothing was changed)");
      return finish();
    }

    const inval = new CacheInvalidation(ctx, opts.flushCache);
    inval.prepare();
    const events = new EventDelivery(ctx, opts.events);
    const level = featureLevel(ctx.paths, db);
    const notify = { events, realm: { id: Number(realm.id), string_id: realm.string_id }, what: `the creation of ${params.email}`, featureLevel: level };
    const created = await events.tx(db, async (q) => {
      if (await userAlreadyExists(q, realm.id, params.email)) throw new CommandError("User already exists.");
      let user;
      try {
        user = await createUser(q, realm.id, {
          email: params.email,
          fullName: params.fullName,
          role: Role.MEMBER,
          tosVersion: TOS_VERSION_BEFORE_FIRST_LOGIN,
          passwordHash,
          externalHost: urls.externalHost,
          realmHosts: urls.realmHosts,
          fakeEmailDomain: urls.fakeEmailDomain,
          roleCountBaseline,
        });
      } catch (e: any) {
        if (e?.code === "23505") throw new CommandError("User already exists.");
        throw e;
      }
      const steps = await processNewHumanUserRows(q, user.id, urls);
      // do_create_user's and process_new_human_user's events, in Zulip's order (user-creation-events.ts).
      const systemGroups = await getSystemGroups(q, realm.id);
      const { rows: ds } = await q.query("SELECT stream_id FROM zerver_defaultstream WHERE realm_id = $1", [realm.id]);
      const eventsNotSent = await sendUserCreationEvents(q, notify, user.id, {
        featureLevel: level,
        avatar: readAvatarSettings(ctx.config().settings),
        systemGroupIds: user.systemGroups.map((name) => systemGroups[name]),
        channelIds: ds.map((r) => Number(r.stream_id)),
      });
      const signup = await sendSignupAnnouncement(q, user.id, { events: { notify, featureLevel: level, settings: ctx.config().settings } });
      const { rows: subs } = await q.query(
        `SELECT s.name FROM zerver_subscription sub JOIN zerver_recipient r ON r.id = sub.recipient_id AND r.type = 2
           JOIN zerver_stream s ON s.id = r.type_id WHERE sub.user_profile_id = $1 ORDER BY s.name`,
        [user.id],
      );
      const { rows: urow } = await q.query("SELECT * FROM zerver_userprofile WHERE id = $1", [user.id]);
      await inval.userChanged(q, urow[0] as CacheUser & Record<string, any>, null);
      return { user, row: urow[0], steps, signup, eventsNotSent, subs: subs.map((r) => r.name as string), auditLogIds: await auditLogIdsOfUser(q, user.id) };
    });
    inval.changeCommitted();
    result.not_done.push(...(await writeJdenticonAvatar(db, ctx.config().settings, ctx.paths.deployDir, created.user.id)));
    result.cache = cacheJson(await inval.commit());
    result.events = eventsReportJson(await events.commit());
    const u = created.user;
    result.user = { ...userJson(created.row), password: passwordHash ? "set" : "unusable", system_groups: u.systemGroups };
    result.audit_log_ids = created.auditLogIds;
    result.subscribed_channels = created.subs;
    result.scheduled_emails = (created.steps.welcomeEmails?.scheduled ?? []).map((s) => ({ id: s.id, template: s.template, scheduled_at: utcTimestamp(s.scheduledAt) }));
    if (created.signup.messageId !== null) result.signup_announcement = { message_id: created.signup.messageId, channel: created.signup.channel! };
    if (created.signup.notWritten) result.not_done.push(created.signup.notWritten);
    for (const e of created.eventsNotSent) result.not_done.push(`not sent: ${e}`);
    for (const e of created.signup.eventsNotSent) result.not_done.push(`not sent: ${e}`);
    for (const n of result.not_done) out.line(`Note: not done: ${n}.`);
    return finish();
  },
});
