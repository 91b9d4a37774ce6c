import { type Static, Type } from "@sinclair/typebox";
import { Extend, Obj, Realm, User } from "./shared.js";

export const ShowAdminsBody = Obj({
  realm: Realm,
  administrators: Type.Array(Extend(User, { is_bot: Type.Boolean() }), { description: "active owners and administrators, bots included, by id" }),
});
export type ShowAdminsBody = Static<typeof ShowAdminsBody>;
export const bodies = [ShowAdminsBody];
export const description = "The owners and administrators of an organization.";
