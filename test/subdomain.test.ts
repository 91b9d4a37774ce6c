// Subdomain validation: Zulip's check_subdomain_available order and messages, the reserved
// name lists (with the plural rule and the server's own special subdomains), and the lookup of
// taken subdomains in a real Zulip 12 database (whose first organization uses the root domain).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  checkSubdomainAvailable,
  GENERIC_RESERVED_SUBDOMAINS,
  isReservedSubdomain,
  SUBDOMAIN_ERRORS,
  SubdomainError,
  subdomainProblem,
  subdomainSettings,
  ZULIP_RESERVED_SUBDOMAINS,
} from "../src/zulip/subdomain.js";
import { createDatabase, type TestDatabase } from "./helpers/pg.js";

const free = { taken: false, rootDomainTaken: false };

function problem(s: string, state = free, opts = {}): string | null {
  return subdomainProblem(s, state, opts)?.message ?? null;
}

describe("subdomainProblem (check_subdomain_available without the database)", () => {
  it("accepts ordinary subdomains", () => {
    for (const s of ["abc", "my-org", "a1b2", "x".repeat(40), "0rg"]) expect(problem(s), s).toBeNull();
  });

  it("refuses with Zulip's messages, in Zulip's order", () => {
    expect(problem("-abc")).toBe(SUBDOMAIN_ERRORS.extremalDash);
    expect(problem("abc-")).toBe(SUBDOMAIN_ERRORS.extremalDash);
    // the dash check comes before the character check
    expect(problem("-ABC")).toBe("Subdomain cannot start or end with a '-'.");
    expect(problem("Abc")).toBe("Subdomain can only have lowercase letters, numbers, and '-'s.");
    expect(problem("a_b_c")).toBe(SUBDOMAIN_ERRORS.badCharacter);
    expect(problem("a.bc")).toBe(SUBDOMAIN_ERRORS.badCharacter);
    expect(problem("éab")).toBe(SUBDOMAIN_ERRORS.badCharacter);
    expect(problem("abc\n")).toBe(SUBDOMAIN_ERRORS.badCharacter);
    // characters before length: "A" is a bad character, "ab" too short
    expect(problem("A")).toBe(SUBDOMAIN_ERRORS.badCharacter);
    expect(problem("ab")).toBe("Subdomain needs to have length 3 or greater.");
    // length before availability and reservation
    expect(problem("ab", { taken: true, rootDomainTaken: false })).toBe(SUBDOMAIN_ERRORS.tooShort);
    expect(problem("api", { taken: true, rootDomainTaken: false })).toBe("Subdomain already in use. Please choose a different one.");
    expect(problem("api")).toBe("Subdomain reserved. Please choose a different one.");
    expect(problem("x".repeat(41))).toBe("Ensure this value has at most 40 characters (it has 41).");
  });

  it("carries the override hint for reserved names only", () => {
    const e = subdomainProblem("help", free, {});
    expect(e).toBeInstanceOf(SubdomainError);
    expect(e!.problem).toBe("reserved");
    expect(e!.hint).toBe("Pass --allow-reserved-subdomain to override");
    expect(subdomainProblem("ab", free, {})!.hint).toBeUndefined();
    expect(problem("help", free, { allowReserved: true })).toBeNull();
  });

  it("treats the root domain ('') as available only when unused and without a landing page", () => {
    expect(problem("")).toBeNull();
    expect(problem("", { taken: true, rootDomainTaken: true })).toBe(SUBDOMAIN_ERRORS.unavailable);
    expect(problem("", free, { rootDomainLandingPage: true })).toBe(SUBDOMAIN_ERRORS.unavailable);
  });
});

describe("isReservedSubdomain", () => {
  it("knows both lists and the trailing-s plural rule", () => {
    expect(ZULIP_RESERVED_SUBDOMAINS.has("zulip")).toBe(true);
    expect(GENERIC_RESERVED_SUBDOMAINS.has("www")).toBe(true);
    for (const s of ["zulip", "zulips", "streams", "auth", "www", "admins", "s", "ss", "your-org", "onboarding", "hello"]) {
      expect(isReservedSubdomain(s), s).toBe(true);
    }
    for (const s of ["zulipchat", "acmecorp", "mycompany", "sss", "engineer", "wwws0"]) expect(isReservedSubdomain(s), s).toBe(false);
    expect(ZULIP_RESERVED_SUBDOMAINS.size).toBe(86);
    expect(GENERIC_RESERVED_SUBDOMAINS.size).toBe(238);
  });

  it("reserves the server's social-auth and self-hosting subdomains and Zulip Cloud's names", () => {
    expect(isReservedSubdomain("login-here")).toBe(false);
    expect(isReservedSubdomain("login-here", { socialAuthSubdomain: "login-here" })).toBe(true);
    expect(isReservedSubdomain("selfhost", { selfHostingManagementSubdomain: "selfhost" })).toBe(true);
    expect(isReservedSubdomain("myzulipteam")).toBe(false);
    expect(isReservedSubdomain("myzulipteam", { corporateEnabled: true })).toBe(true);
    expect(isReservedSubdomain("kandrax", { corporateEnabled: true })).toBe(true);
  });

  it("reads the settings from settings.py values", () => {
    const file: Record<string, unknown> = { SOCIAL_AUTH_SUBDOMAIN: "auth2", CORPORATE_ENABLED: true };
    const s = subdomainSettings({
      get: () => true,
      fileValue: (name: string, fallback: unknown) => (name in file ? file[name] : fallback),
    });
    expect(s).toEqual({ socialAuthSubdomain: "auth2", selfHostingManagementSubdomain: null, corporateEnabled: true, rootDomainLandingPage: true });
  });
});

describe("checkSubdomainAvailable against a real Zulip 12 database", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createDatabase({ template: "zulip12_fresh" });
  });
  afterAll(async () => {
    await db?.drop();
  });

  const check = async (s: string, opts = {}) => {
    try {
      await checkSubdomainAvailable(db.client, s, opts);
      return null;
    } catch (e) {
      if (e instanceof SubdomainError) return e.message;
      throw e;
    }
  };

  it("finds the subdomains in use, including the root domain and the system realm", async () => {
    // The fresh install's organization lives on the root domain.
    expect((await db.query("SELECT string_id FROM zerver_realm ORDER BY id")).map((r) => r.string_id)).toEqual(["zulipinternal", ""]);
    expect(await check("")).toBe(SUBDOMAIN_ERRORS.unavailable);
    expect(await check("zulipinternal")).toBe(SUBDOMAIN_ERRORS.unavailable);
    expect(await check("fresh-org")).toBeNull();
  });

  it("counts deactivated realms (redirect placeholders) as taken", async () => {
    await db.query("UPDATE zerver_realm SET string_id = 'oldname', deactivated = true WHERE id = 2");
    try {
      expect(await check("oldname")).toBe(SUBDOMAIN_ERRORS.unavailable);
      expect(await check("")).toBeNull();
      expect(await check("", { rootDomainLandingPage: true })).toBe(SUBDOMAIN_ERRORS.unavailable);
    } finally {
      await db.query("UPDATE zerver_realm SET string_id = '', deactivated = false WHERE id = 2");
    }
  });
});
