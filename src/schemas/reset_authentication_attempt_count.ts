import { type Static, Type } from "@sinclair/typebox";
import { Count, Obj } from "./shared.js";

export const ResetAuthenticationAttemptCountBody = Obj({
  username: Type.String(),
  redis_server: Type.String({ description: "host:port" }),
  keys: Type.Array(Type.String(), { description: "the rate-limit keys deleted" }),
  keys_deleted_count: Count,
});
export type ResetAuthenticationAttemptCountBody = Static<typeof ResetAuthenticationAttemptCountBody>;
export const bodies = [ResetAuthenticationAttemptCountBody];
export const description = "The authentication rate-limit keys of a username, cleared in Redis.";
