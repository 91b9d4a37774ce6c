// change_password: set a user's password, as manage.py's change_password does, writing what
// Zulip's do_change_password (zerver/actions/user_settings.py) writes
// (src/zulip/actions/change-password.ts).
//
// The password is asked twice on the terminal without echo ("Password: ", "Password (again): ",
// three tries, an empty answer aborts, as manage.py does), or read from --password-file FILE
// (surrounding whitespace stripped, as Zulip's create_user does with its --password-file; "-"
// reads standard input). It is never accepted on the command line. It must pass Zulip's
// strength rule (UserProfile.set_password → check_password_strength: PASSWORD_MIN_LENGTH,
// zxcvbn's PASSWORD_MIN_GUESSES; and the forms' PASSWORD_MAX_LENGTH); manage.py would crash with
// a traceback on a weak password, this asks again (or fails with the reason).
//
// The hash is Django's: on a production server (zulip.conf has [machine] deploy_type) Argon2id in
// Argon2PasswordHasher's exact format and parameters, "argon2$argon2id$v=19$m=102400,t=2,p=8$…",
// so the server accepts it and never needs to rehash it; on a development server PBKDF2
// (src/zulip/password.ts). In one transaction the user row is locked, its password column set, and
// a 122 (USER_PASSWORD_CHANGED) audit row written with the user as acting and modified user (as
// do_change_password writes it — manage.py's own command skips that row). After COMMIT the
// cached user objects are deleted, which also ends the user's other login sessions (Django
// checks each session's password-derived hash), and, as do_change_password does, the failed
// login attempts counted in Redis for the user's email are forgotten (best effort: a warning if
// Redis cannot be reached).
//
// --json: src/schemas/change_password.ts (README: --json output); prompts, if any, go to stderr.
// rate_limit is the Redis follow-up as a service report (ok false and a warning when Redis could
// not be reached; the password stays changed, exit 0).
import { addFlushCacheOption, addRequiredRealmOption } from "../cli/options.js";
import { CacheInvalidation, cacheReportJson } from "../zulip/cache.js";
import { defineCommand } from "../cli/command.js";
import { CommandError, UsageError } from "../lib/errors.js";
import { READ_LIMITS, readOptionFile } from "../lib/files.js";
import { getRealm, getUser } from "../zulip/lookup.js";
import { checkPasswordStrength, passwordRules } from "../zulip/password.js";
import { askNewPassword } from "../cli/prompt.js";
import { doChangePassword } from "../zulip/actions/change-password.js";
import { realmJsonById, userJson } from "../cli/json-objects.js";
import type { ChangePasswordBody } from "../schemas/change_password.js";

function readPasswordFile(file: string): string {
  const password = readOptionFile(file, READ_LIMITS.password, "the password file").trim();
  if (password === "") throw new CommandError(`The password file ${file === "-" ? "(standard input)" : file} is empty.`);
  return password;
}

export default defineCommand({
  name: "change_password",
  description:
    "Change a user's password.\n\n" +
    "Asks for the new password twice on the terminal, or reads it from --password-file. " +
    "The password must pass the server's strength rule (PASSWORD_MIN_LENGTH, PASSWORD_MIN_GUESSES). " +
    "The user's other login sessions end.",
  examples: [
    "zulip-manage change_password -r zulip iago@zulip.com",
    "zulip-manage change_password -r zulip iago@zulip.com --password-file /root/new-password.txt",
    "pass show zulip/iago | zulip-manage change_password -r zulip iago@zulip.com --password-file -",
  ],
  configure: (cmd) =>
    addFlushCacheOption(
      addRequiredRealmOption(cmd.usage("[options] -r REALM <email>").argument("[email]", "email of the user whose password to change"))
        .option("--password-file <file>", "read the new password from this file ('-': standard input) instead of asking")
        .option("--password <password>", "not supported: a password on the command line is visible to other users of the machine"),
    ),
  async run(ctx, args, opts) {
    const [email] = args;
    if (email === undefined) throw new UsageError("the following arguments are required: <email>");
    if (opts.password !== undefined) {
      throw new UsageError(
        "argument --password: passwords are not accepted on the command line (other users can see them); use --password-file FILE, or '-' to read standard input",
      );
    }
    const out = ctx.out;
    const config = ctx.config();
    const rules = passwordRules(config.settings);
    const db = await ctx.db();
    const realm = (await getRealm(db, opts.realm))!;
    const user = await getUser(db, email, realm);
    // str(UserProfile): "<email> <Realm: <string_id> <id>>"
    const label = `${user.email} <Realm: ${realm.string_id} ${realm.id}>`;

    const say = (t: string) => (out.json ? out.err(t) : out.line(t));
    say(`Changing password for user '${label}'`);

    let password: string;
    if (opts.passwordFile !== undefined) {
      password = readPasswordFile(opts.passwordFile);
      const verdict = checkPasswordStrength(password, rules);
      if (!verdict.ok) throw new CommandError(verdict.reason!);
    } else {
      password = await askNewPassword({
        output: out.json ? process.stderr : process.stdout,
        validate: (p) => {
          const verdict = checkPasswordStrength(p, rules);
          return verdict.ok ? null : verdict.reason!;
        },
        label,
        say,
        complain: (t) => out.err(t),
      });
    }

    const inval = new CacheInvalidation(ctx, opts.flushCache);
    const change = await doChangePassword(db, user, password, { config, cache: inval });
    const cache = await inval.commit();

    const rateLimit: ChangePasswordBody["rate_limit"] = { ok: true, warning: null, keys_deleted_count: 0 };
    if (change.rateLimit.ok) rateLimit.keys_deleted_count = change.rateLimit.keysDeleted;
    else {
      rateLimit.ok = false;
      rateLimit.warning =
        `Warning: the password is changed, but the failed login attempts of ${user.delivery_email} could not be reset in Redis: ${change.rateLimit.error}. ` +
        `If the user is locked out, run: zulip-manage reset_authentication_attempt_count -u ${user.delivery_email}`;
      out.warn(rateLimit.warning);
    }

    out.line(`Password changed successfully for user '${label}'`);
    out.jsonBody<ChangePasswordBody>({
      dry_run: false,
      realm: await realmJsonById(db, config.settings, user.realm_id),
      user: userJson(user),
      hasher: change.hasher,
      audit_log_ids: change.auditLogIds,
      rate_limit: rateLimit,
      cache: cacheReportJson(cache),
    });
  },
});
