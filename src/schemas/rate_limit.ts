import { type Static, Type } from "@sinclair/typebox";
import { CacheReport, Change, DryRunField, DurationMs, Extend, Nullable, Obj, OutcomeFields, User } from "./shared.js";

export const RateLimitResult = Obj({
  user: Extend(User, { is_bot: Type.Boolean() }),
  key: Nullable(Type.String({ description: "the Redis block key (null for set-limits)" })),
  blocked: Nullable(Type.Boolean({ description: "whether the user is blocked after the operation (null for set-limits)" })),
  block_remaining_ms: Nullable(DurationMs),
  rate_limits: Change(Type.String({ description: 'UserProfile.rate_limits, "<seconds>:<requests>,…" or "" for the server\'s defaults' })),
  ...OutcomeFields,
});
export const RateLimitBody = Obj({
  ...DryRunField,
  operation: Type.Union(["block", "unblock", "show", "set-limits"].map((o) => Type.Literal(o))),
  domain: Type.String({ description: "the rate-limiting domain (-d)" }),
  block_duration_ms: DurationMs,
  results: Type.Array(RateLimitResult, { description: "the user, then with -b their bots" }),
  redis_server: Nullable(Type.String({ description: "host:port (null for set-limits)" })),
  cache: Nullable(CacheReport),
});
export type RateLimitBody = Static<typeof RateLimitBody>;
export const bodies = [RateLimitBody];
export const description =
  "A user's (and with -b their bots') API block in Redis, or their stored rate limits. block_remaining_ms is null when not blocked or when the block has no expiry.";
