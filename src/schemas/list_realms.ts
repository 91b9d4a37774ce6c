import { type Static, Type } from "@sinclair/typebox";
import { Extend, Obj, Realm } from "./shared.js";

export const ListedRealm = Extend(Realm, { deactivated: Type.Boolean() }, "an organization, as list_realms lists it");
/** --all: every zerver_realm column under its Django attribute name (timestamps RFC 3339 with Z), plus url and authentication_methods. */
export const ListedRealmAll = Type.Object(
  { ...ListedRealm.properties, authentication_methods: Type.Record(Type.String(), Type.Boolean()) },
  { additionalProperties: true, description: "--all: every zerver_realm column under its Django attribute name, plus url and authentication_methods" },
);
export const ListRealmsBody = Obj({ realms: Type.Array(ListedRealm) }, "list_realms");
export const ListRealmsAllBody = Obj({ realms: Type.Array(ListedRealmAll) }, "list_realms --all");
export type ListRealmsBody = Static<typeof ListRealmsBody>;
export type ListRealmsAllBody = Static<typeof ListRealmsAllBody>;
export type ListedRealmAll = Static<typeof ListedRealmAll>;
export const bodies = [ListRealmsBody, ListRealmsAllBody];
export const description = "The organizations on this server (with --all, every setting of each).";
