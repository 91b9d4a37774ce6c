// Organization subdomain (realm string_id) validation with Zulip's rules and messages:
// zerver/forms.py check_subdomain_available, zerver/lib/name_restrictions.py
// is_reserved_subdomain, and Realm.MAX_REALM_SUBDOMAIN_LENGTH.
import type { Queryable } from "../db/db.js";
import { CommandError } from "../lib/errors.js";

/** Realm.SUBDOMAIN_FOR_ROOT_DOMAIN */
const SUBDOMAIN_FOR_ROOT_DOMAIN = "";
/** Realm.MAX_REALM_SUBDOMAIN_LENGTH (the varchar(40) of zerver_realm.string_id). */
const MAX_REALM_SUBDOMAIN_LENGTH = 40;

/** check_subdomain_available's messages (English; manage.py prints them untranslated). */
export const SUBDOMAIN_ERRORS = {
  tooShort: "Subdomain needs to have length 3 or greater.",
  extremalDash: "Subdomain cannot start or end with a '-'.",
  badCharacter: "Subdomain can only have lowercase letters, numbers, and '-'s.",
  unavailable: "Subdomain already in use. Please choose a different one.",
  reserved: "Subdomain reserved. Please choose a different one.",
} as const;

/** name_restrictions.ZULIP_RESERVED_SUBDOMAINS */
export const ZULIP_RESERVED_SUBDOMAINS: ReadonlySet<string> = new Set([
  // Zulip terms
  "stream",
  "channel",
  "topic",
  "thread",
  "installation",
  "organization",
  "your-org",
  "realm",
  "team",
  "subdomain",
  "activity",
  "octopus",
  "acme",
  "push",
  // machines
  "zulipdev",
  "localhost",
  "staging",
  "prod",
  "production",
  "testing",
  "nagios",
  "nginx",
  "mg",
  "front-mail",
  // website pages
  "server",
  "client",
  "features",
  "integration",
  "bot",
  "blog",
  "history",
  "story",
  "stories",
  "testimonial",
  "compare",
  "for",
  "vs",
  // competitor pages
  "slack",
  "mattermost",
  "rocketchat",
  "irc",
  "twitter",
  "zephyr",
  "flowdock",
  "spark",
  "skype",
  "microsoft",
  "twist",
  "ryver",
  "matrix",
  "discord",
  "email",
  "usenet",
  // Zulip names
  "zulip",
  "tulip",
  "humbug",
  // platforms
  "plan9",
  "electron",
  "linux",
  "mac",
  "windows",
  "cli",
  "ubuntu",
  "android",
  "ios",
  // floss
  "contribute",
  "floss",
  "foss",
  "free",
  "opensource",
  "open",
  "code",
  "license",
  // internship programs
  "intern",
  "outreachy",
  "gsoc",
  "externship",
  // things that sound like security
  "auth",
  "authentication",
  "security",
  // tech blogs
  "engineering",
  "infrastructure",
  "tooling",
  "tools",
  "javascript",
  "python",
]);

/** name_restrictions.GENERIC_RESERVED_SUBDOMAINS */
export const GENERIC_RESERVED_SUBDOMAINS: ReadonlySet<string> = new Set([
  "about",
  "abuse",
  "account",
  "ad",
  "admanager",
  "admin",
  "admindashboard",
  "administrator",
  "adsense",
  "advice",
  "adword",
  "affiliate",
  "alpha",
  "anonymous",
  "api",
  "assets",
  "audio",
  "avatar",
  "badges",
  "beta",
  "billing",
  "biz",
  "blog",
  "board",
  "bookmark",
  "bot",
  "bugs",
  "buy",
  "cache",
  "calendar",
  "chat",
  "clients",
  "cname",
  "code",
  "comment",
  "communities",
  "community",
  "contact",
  "contributor",
  "control",
  "coppa",
  "copyright",
  "cpanel",
  "css",
  "cssproxy",
  "customer",
  "customise",
  "customize",
  "dashboard",
  "data",
  "demo",
  "deploy",
  "deployment",
  "desktop",
  "dev",
  "devel",
  "developer",
  "development",
  "discussion",
  "diversity",
  "dmca",
  "docs",
  "donate",
  "download",
  "e-mail",
  "email",
  "embed",
  "embedded",
  "example",
  "explore",
  "faq",
  "favorite",
  "favourites",
  "features",
  "feed",
  "feedback",
  "files",
  "forum",
  "friend",
  "ftp",
  "general",
  "gettingstarted",
  "gift",
  "git",
  "global",
  "graphs",
  "guide",
  "hack",
  "hello",
  "help",
  "home",
  "hostmaster",
  "https",
  "icon",
  "im",
  "image",
  "img",
  "inbox",
  "index",
  "investors",
  "invite",
  "invoice",
  "ios",
  "ipad",
  "iphone",
  "irc",
  "jabber",
  "jars",
  "jobs",
  "join",
  "js",
  "kb",
  "knowledgebase",
  "launchpad",
  "legal",
  "livejournal",
  "lj",
  "login",
  "logs",
  "m",
  "mail",
  "main",
  "manage",
  "map",
  "media",
  "memories",
  "memory",
  "merchandise",
  "messages",
  "mobile",
  "my",
  "mystore",
  "networks",
  "new",
  "newsite",
  "onboarding",
  "official",
  "ogg",
  "online",
  "order",
  "paid",
  "panel",
  "partner",
  "partnerpage",
  "pay",
  "payment",
  "picture",
  "policy",
  "pop",
  "popular",
  "portal",
  "post",
  "postmaster",
  "press",
  "pricing",
  "principles",
  "privacy",
  "private",
  "profile",
  "public",
  "question",
  "random",
  "redirect",
  "register",
  "registration",
  "resolver",
  "root",
  "rss",
  "s",
  "sandbox",
  "school",
  "search",
  "secure",
  "servers",
  "service",
  "setting",
  "shop",
  "shortcuts",
  "signin",
  "signup",
  "sitemap",
  "sitenews",
  "sites",
  "sms",
  "smtp",
  "sorry",
  "ssl",
  "staff",
  "stage",
  "staging",
  "stars",
  "stat",
  "static",
  "statistics",
  "status",
  "store",
  "style",
  "support",
  "surveys",
  "svn",
  "syn",
  "syndicated",
  "system",
  "tag",
  "talk",
  "team",
  "termsofservice",
  "test",
  "testers",
  "ticket",
  "tool",
  "tos",
  "trac",
  "translate",
  "update",
  "upgrade",
  "uploads",
  "use",
  "user",
  "username",
  "validation",
  "videos",
  "volunteer",
  "web",
  "webdisk",
  "webmail",
  "webmaster",
  "welcome",
  "whm",
  "whois",
  "wiki",
  "www",
  "www0",
  "www8",
  "www9",
  "xml",
  "xmpp",
  "xoxo",
]);

export interface SubdomainSettings {
  /** settings.SOCIAL_AUTH_SUBDOMAIN (default None). */
  socialAuthSubdomain?: string | null;
  /** settings.SELF_HOSTING_MANAGEMENT_SUBDOMAIN (default None). */
  selfHostingManagementSubdomain?: string | null;
  /** settings.CORPORATE_ENABLED (Zulip Cloud only; false on self-hosted servers). */
  corporateEnabled?: boolean;
  /** settings.ROOT_DOMAIN_LANDING_PAGE (default False). */
  rootDomainLandingPage?: boolean;
}

/** The subdomain settings a server's settings.py gives (literal values; Zulip's defaults otherwise). */
export function subdomainSettings(settings: {
  get(name: "ROOT_DOMAIN_LANDING_PAGE"): boolean;
  fileValue(name: string, fallback: any): any;
}): SubdomainSettings {
  const str = (name: string): string | null => {
    const v = settings.fileValue(name, null);
    return typeof v === "string" ? v : null;
  };
  const corporate = settings.fileValue("CORPORATE_ENABLED", false);
  return {
    socialAuthSubdomain: str("SOCIAL_AUTH_SUBDOMAIN"),
    selfHostingManagementSubdomain: str("SELF_HOSTING_MANAGEMENT_SUBDOMAIN"),
    corporateEnabled: corporate === true,
    rootDomainLandingPage: settings.get("ROOT_DOMAIN_LANDING_PAGE"),
  };
}

/** name_restrictions.is_reserved_subdomain */
export function isReservedSubdomain(subdomain: string, s: SubdomainSettings = {}): boolean {
  if (s.socialAuthSubdomain != null && subdomain === s.socialAuthSubdomain) return true;
  if (s.selfHostingManagementSubdomain != null && subdomain === s.selfHostingManagementSubdomain) return true;
  const singular = subdomain.endsWith("s") ? subdomain.slice(0, -1) : null;
  if (ZULIP_RESERVED_SUBDOMAINS.has(subdomain)) return true;
  if (singular !== null && ZULIP_RESERVED_SUBDOMAINS.has(singular)) return true;
  if (GENERIC_RESERVED_SUBDOMAINS.has(subdomain)) return true;
  if (singular !== null && GENERIC_RESERVED_SUBDOMAINS.has(singular)) return true;
  if (s.corporateEnabled && (subdomain.includes("zulip") || subdomain.includes("kandra"))) return true;
  return false;
}

export type SubdomainProblem = keyof typeof SUBDOMAIN_ERRORS | "tooLong";

/** Why a subdomain was refused, with the message manage.py prints. */
export class SubdomainError extends Error {
  constructor(
    readonly problem: SubdomainProblem,
    message: string,
    /** OverridableValidationError's hint (reserved names only). */
    readonly hint?: string,
  ) {
    super(message);
    this.name = "SubdomainError";
  }
}

/**
 * The checks of check_subdomain_available that need no database, in Zulip's order, plus the
 * varchar(40) limit Zulip leaves to the database (its web form reports it with Django's
 * max_length message). Returns null when the format is acceptable. `taken` is whether a realm
 * already has this string_id; `rootDomainTaken` whether one has ''.
 */
export function subdomainProblem(
  subdomain: string,
  state: { taken: boolean; rootDomainTaken: boolean },
  opts: SubdomainSettings & { allowReserved?: boolean } = {},
): SubdomainError | null {
  if (subdomain === SUBDOMAIN_FOR_ROOT_DOMAIN) {
    // is_root_domain_available()
    if (!opts.rootDomainLandingPage && !state.rootDomainTaken) return null;
    return new SubdomainError("unavailable", SUBDOMAIN_ERRORS.unavailable);
  }
  if (subdomain.startsWith("-") || subdomain.endsWith("-")) {
    return new SubdomainError("extremalDash", SUBDOMAIN_ERRORS.extremalDash);
  }
  if (!/^[a-z0-9-]*$/.test(subdomain)) return new SubdomainError("badCharacter", SUBDOMAIN_ERRORS.badCharacter);
  if (subdomain.length < 3) return new SubdomainError("tooShort", SUBDOMAIN_ERRORS.tooShort);
  if (state.taken) return new SubdomainError("unavailable", SUBDOMAIN_ERRORS.unavailable);
  if (isReservedSubdomain(subdomain, opts) && !opts.allowReserved) {
    return new SubdomainError("reserved", SUBDOMAIN_ERRORS.reserved, "Pass --allow-reserved-subdomain to override");
  }
  if (subdomain.length > MAX_REALM_SUBDOMAIN_LENGTH) {
    return new SubdomainError("tooLong", `Ensure this value has at most ${MAX_REALM_SUBDOMAIN_LENGTH} characters (it has ${subdomain.length}).`);
  }
  return null;
}

/**
 * check_subdomain_available(subdomain, allow_reserved_subdomain): looks up the realms and
 * throws a SubdomainError with Zulip's message when the subdomain cannot be used.
 */
export async function checkSubdomainAvailable(q: Queryable, subdomain: string, opts: SubdomainSettings & { allowReserved?: boolean } = {}): Promise<void> {
  const { rows } = await q.query(
    "SELECT EXISTS (SELECT 1 FROM zerver_realm WHERE string_id = $1) AS taken, EXISTS (SELECT 1 FROM zerver_realm WHERE string_id = '') AS root",
    [subdomain],
  );
  const problem = subdomainProblem(subdomain, { taken: rows[0].taken, rootDomainTaken: rows[0].root }, opts);
  if (problem) throw problem;
}

/** checkSubdomainAvailable for a command: a refusal is a CommandError with Zulip's message. */
export async function requireSubdomainAvailable(q: Queryable, subdomain: string, opts: SubdomainSettings & { allowReserved?: boolean } = {}): Promise<void> {
  try {
    await checkSubdomainAvailable(q, subdomain, opts);
  } catch (e) {
    if (e instanceof SubdomainError) throw new CommandError(e.message);
    throw e;
  }
}
