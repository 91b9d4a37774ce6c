// reset_authentication_attempt_count: forget the failed login attempts of a username, so a user
// locked out by the authentication rate limit can try again at once — manage.py's command, which
// runs RateLimitedAuthenticationByUsername(username).clear_history().
//
// It deletes the Redis keys ratelimit:RateLimitedAuthenticationByUsername:<username>:list, :zset
// and :block on Zulip's Redis server (REDIS_HOST / REDIS_PORT from settings.py, password
// `redis_password` from zulip-secrets.conf, database 0). The username is used exactly as given:
// it is what was typed into the login form (normally the email address; LDAP logins may use a
// plain username), and Redis keys are case-sensitive. Nothing is written to the database.
// Like manage.py it prints nothing on success; without -u it prints the help and fails with
// "Please enter a username". A Redis server that cannot be reached is an environment error
// (exit 3).
//
// --json: src/schemas/reset_authentication_attempt_count.ts (README: --json output).
import { defineCommand } from "../cli/command.js";
import { CommandError, EnvironmentError } from "../lib/errors.js";
import { clearAuthenticationAttempts } from "../zulip/rate-limit.js";
import { connectZulipRedis, RedisError, zulipRedisOptions } from "../services/redis.js";
import type { ResetAuthenticationAttemptCountBody } from "../schemas/reset_authentication_attempt_count.js";

export default defineCommand({
  name: "reset_authentication_attempt_count",
  description:
    "Reset the rate limit for authentication attempts for username.\n\n" +
    "The username is the one typed into the login form (usually the email address), matched exactly.",
  examples: ["zulip-manage reset_authentication_attempt_count -u iago@zulip.com"],
  configure: (cmd) => cmd.usage("[options] -u USERNAME").option("-u, --username <username>", "Username to reset the rate limit for."),
  async run(ctx, _args, opts) {
    const username = opts.username;
    if (!username) {
      ctx.printHelp();
      throw new CommandError("Please enter a username", "invalid_arguments");
    }
    const config = ctx.config();
    const options = zulipRedisOptions(config.settings, (n) => config.secret(n));
    const redis = await connectZulipRedis(options);
    try {
      let cleared;
      try {
        cleared = await clearAuthenticationAttempts(redis, username);
      } catch (e) {
        if (e instanceof RedisError) throw new EnvironmentError(`Could not reset the authentication attempts: ${e.message}`, "redis_unreachable");
        throw e;
      }
      ctx.out.jsonBody<ResetAuthenticationAttemptCountBody>({
        username,
        redis_server: `${options.host}:${options.port}`,
        keys: cleared.keys,
        keys_deleted_count: cleared.deleted,
      });
    } finally {
      redis.close();
    }
  },
});
