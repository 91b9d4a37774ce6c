// rate_limit: manage.py rate_limit — manually block a user (and with -b their bots) from the
// API for some seconds, or lift the block, in Zulip's Redis exactly as RateLimitedUser +
// RedisRateLimiterBackend do (key "ratelimit:RateLimitedUser:<id>:<domain>:block": SET 1 +
// EXPIRE <seconds>; unblock: DEL). Two additions: `show` (the block and its remaining time, and
// the user's stored rate_limits override) and `set-limits --limits RULES` (store the override
// UserProfile.rate_limits, "<seconds>:<requests>,..." or "" for the server's defaults; applies
// to the api_by_user domain, as Zulip reads it).
//
// --json: src/schemas/rate_limit.ts (README: --json output): one result per user (the user,
// then with -b their bots) with status done (unchanged when set-limits found the same limits,
// would_do in a dry run); rate_limits as {old, new}; the block's remaining time in ms.
import { addFlushCacheOption, addRealmOption, pythonInt } from "../cli/options.js";
import { CacheInvalidation, cacheReportJson } from "../zulip/cache.js";
import { defineCommand } from "../cli/command.js";
import { CommandError, EnvironmentError, errorMessage, UsageError } from "../lib/errors.js";
import { botsOwnedBy, getRealm, getUser, getUserByApiKey, type UserProfile } from "../zulip/lookup.js";
import { blockAccess, blockState, parseRateLimits, setRateLimits, unblockAccess } from "../zulip/rate-limit.js";
import { outcome } from "../cli/json-contract.js";
import { userJson } from "../cli/json-objects.js";
import type { RateLimitBody } from "../schemas/rate_limit.js";
import { connectZulipRedis, RedisError, zulipRedisOptions } from "../services/redis.js";

const OPERATIONS = ["block", "unblock", "show", "set-limits"];

export default defineCommand({
  name: "rate_limit",
  description:
    "Manually block or unblock a user from accessing the API\n\n" +
    "Operations: block, unblock (as manage.py); show (whether the user is blocked, for how long, and their stored " +
    'rate limits) and set-limits --limits RULES (the user\'s own API rate limits, e.g. "60:200,3600:2000" for 200 ' +
    'requests a minute and 2000 an hour; "" returns to the server\'s defaults).',
  examples: [
    "zulip-manage rate_limit -e spammer@example.com -s 3600 block",
    "zulip-manage rate_limit -e owner@example.com -b unblock",
    "zulip-manage rate_limit -e bot@example.com show",
    "zulip-manage rate_limit -e bot@example.com --limits 60:600 set-limits",
  ],
  configure: (cmd) =>
    addFlushCacheOption(
      addRealmOption(
        cmd
          .usage("[options] (-e EMAIL | -a API_KEY) [-s SECONDS] [-d DOMAIN] [-b] <operation>")
          .argument("[operation]", "operation to perform (block or unblock; also show, set-limits)")
          .option("-e, --email <email>", "Email account of user.")
          .option("-a, --api-key <api_key>", "API key of user.")
          .option("-s, --seconds <seconds>", "Seconds to block for.", "60")
          .option("-d, --domain <domain>", "Rate-limiting domain. Defaults to 'api_by_user'.", "api_by_user")
          .option("-b, --all-bots", "Whether or not to also block all bots for this user.")
          .option("--limits <rules>", 'with set-limits: the user\'s rate limits, "<seconds>:<requests>,..." ("" = the server\'s defaults)'),
      ).option("--dry-run", "with set-limits: show what would change, and change nothing"),
    ),
  async run(ctx, args, opts) {
    const out = ctx.out;
    const operation = args[0];
    if (operation === undefined) throw new UsageError("the following arguments are required: <operation>");
    if (!OPERATIONS.includes(operation)) {
      throw new UsageError(`argument <operation>: invalid choice: '${operation}' (choose from ${OPERATIONS.map((o) => `'${o}'`).join(", ")})`);
    }
    const seconds = pythonInt(String(opts.seconds));
    if (seconds === null || !Number.isSafeInteger(seconds)) throw new UsageError(`argument -s/--seconds: invalid int value: '${opts.seconds}'`);
    if ((!opts.apiKey && !opts.email) || (opts.apiKey && opts.email)) throw new CommandError("Please enter either an email or API key to manage");
    let limits: string | null = null;
    if (operation === "set-limits") {
      if (opts.limits === undefined) throw new UsageError('set-limits needs --limits RULES ("" for the server\'s defaults)');
      limits = String(opts.limits).trim();
      try {
        parseRateLimits(limits);
      } catch (e) {
        throw new CommandError(`Invalid --limits: ${errorMessage(e)}.`);
      }
      if (opts.domain !== "api_by_user") out.warn(`Note: stored rate limits apply to the api_by_user domain only, not '${opts.domain}'.`);
    } else if (opts.limits !== undefined) {
      throw new UsageError("--limits is only used with set-limits");
    }
    const domain = String(opts.domain);
    const db = await ctx.db();
    const realm = await getRealm(db, opts.realm);
    let user: UserProfile;
    if (opts.email) user = await getUser(db, opts.email, realm);
    else {
      // Exactly one of -e and -a was given (checked above).
      const found = await getUserByApiKey(db, opts.apiKey ?? "");
      if (!found) throw new CommandError(`Unable to get user profile for API key ${opts.apiKey}`);
      user = found;
    }
    const users = [user, ...(opts.allBots ? await botsOwnedBy(db, user.id) : [])];
    const results = users.map((u) => ({
      id: Number(u.id),
      email: u.delivery_email,
      is_bot: Boolean(u.is_bot),
      json: {
        user: { ...userJson(u), is_bot: Boolean(u.is_bot) },
        key: null,
        blocked: null,
        block_remaining_ms: null,
        rate_limits: { old: String(u.rate_limits ?? ""), new: String(u.rate_limits ?? "") },
        ...outcome(opts.dryRun ? "would_do" : "done"),
      } as RateLimitBody["results"][number],
    }));
    const doc: RateLimitBody = {
      dry_run: Boolean(opts.dryRun),
      operation: operation as RateLimitBody["operation"],
      domain,
      block_duration_ms: seconds * 1000,
      results: results.map((r) => r.json),
      redis_server: null,
      cache: null,
    };

    if (operation === "set-limits") {
      const inval = new CacheInvalidation(ctx, opts.flushCache);
      try {
        for (const r of results) {
          const current = r.json.rate_limits.old;
          if (opts.dryRun) {
            out.line(`Would set the rate limits of User ID: ${r.id} (${r.email}) from ${JSON.stringify(current)} to ${JSON.stringify(limits)}`);
            r.json.rate_limits = { old: current, new: limits! };
            if (current === limits) Object.assign(r.json, outcome("unchanged"));
            continue;
          }
          inval.prepare();
          const c = await setRateLimits(db, r.id, limits!, { cache: inval });
          r.json.rate_limits = { old: c.old, new: limits! };
          if (!c.changed) Object.assign(r.json, outcome("unchanged"));
          out.line(
            c.changed
              ? `Rate limits of User ID: ${r.id} (${r.email}): ${JSON.stringify(c.old)} -> ${JSON.stringify(limits)}`
              : `Rate limits of User ID: ${r.id} (${r.email}) are already ${JSON.stringify(limits)}`,
          );
        }
      } finally {
        if (!opts.dryRun) doc.cache = cacheReportJson(await inval.commit());
      }
      if (opts.dryRun) out.line("(dry run: nothing was changed)");
      out.jsonBody<RateLimitBody>(doc);
      return 0;
    }

    const config = ctx.config();
    const options = zulipRedisOptions(config.settings, (n) => config.secret(n));
    const server = `${options.host}:${options.port}`;
    doc.redis_server = server;
    const redis = await connectZulipRedis(options);
    try {
      for (const r of results) {
        if (operation !== "show") out.line(`Applying operation to User ID: ${r.id}: ${operation}`);
        if (operation === "block") await blockAccess(redis, r.id, domain, seconds);
        else if (operation === "unblock") await unblockAccess(redis, r.id, domain);
        const state = await blockState(redis, r.id, domain);
        r.json.key = state.key;
        r.json.blocked = state.blocked;
        r.json.block_remaining_ms = state.ttl !== null && state.ttl >= 0 ? state.ttl * 1000 : null;
        if (operation === "show") {
          const block = state.blocked ? `blocked for ${state.ttl === -1 ? "ever (no expiry)" : `${state.ttl} more seconds`}` : "not blocked";
          const rules = r.json.rate_limits.new;
          out.line(
            `User ID: ${r.id} (${r.email}${r.is_bot ? ", bot" : ""}): ${domain} ${block}; rate limits: ${rules === "" ? "the server's defaults" : rules}`,
          );
        }
      }
    } catch (e) {
      if (e instanceof RedisError) throw new EnvironmentError(`Redis at ${server}: ${e.message}`);
      throw e;
    } finally {
      redis.close();
    }
    out.jsonBody<RateLimitBody>(doc);
    return 0;
  },
});
