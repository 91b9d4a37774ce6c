import { type Static, Type } from "@sinclair/typebox";
import { AuditLogIds, CacheReport, Change, DryRunField, EventsReport, Nullable, Obj, Realm } from "./shared.js";

export const RealmDomain = Obj({ domain: Type.String(), allow_subdomains: Type.Boolean() }, "an allowed email domain (zerver_realmdomain)");
/** --op show */
export const RealmDomainShowBody = Obj({ op: Type.Literal("show"), realm: Realm, domains: Type.Array(RealmDomain) }, "--op show: the domains");
/** --op add / remove */
export const RealmDomainChangeBody = Obj(
  {
    ...DryRunField,
    op: Type.Union([Type.Literal("add"), Type.Literal("remove")]),
    realm: Realm,
    domain: Type.String({ description: "stripped and lower-cased" }),
    allow_subdomains: Type.Boolean(),
    audit_log_ids: AuditLogIds,
    emails_restricted_to_domains: Change(Type.Boolean({ description: "removing the last domain turns the restriction off, as Zulip does" })),
    domains: Type.Array(RealmDomain, { description: "the domains afterwards" }),
    cache: Nullable(CacheReport),
    events: Nullable(EventsReport),
  },
  "--op add / remove: the domain added or removed",
);
export type RealmDomainShowBody = Static<typeof RealmDomainShowBody>;
export type RealmDomainChangeBody = Static<typeof RealmDomainChangeBody>;
export const bodies = [RealmDomainShowBody, RealmDomainChangeBody];
export const description = "An organization's allowed email domains: listed, added or removed.";
