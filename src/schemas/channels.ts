// Shapes shared by the channel commands' schemas (add_users_to_streams, remove_users_from_stream,
// create_stream, unarchive_channel).
import { Type } from "@sinclair/typebox";
import { Id, Obj, OutcomeFields, User } from "./shared.js";

/** A channel (zerver_stream): its id and name. */
export const Channel = Obj({ id: Id, name: Type.String() }, "a channel");
/** One user's subscription outcome: done (changed), would_do (dry run), unchanged (already so). */
export const SubscriptionResult = Obj({ user: User, ...OutcomeFields }, "a user's subscription outcome");
