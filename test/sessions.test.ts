// src/zulip/sessions.ts: finding and deleting a user's Django sessions (plain and compressed
// session_data, built here the way Django's signing.dumps builds it), with the cached copies.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CacheInvalidation } from "../src/zulip/cache.js";
import { loadConfig } from "../src/config/config.js";
import { resolvePaths } from "../src/config/paths.js";
import { decodeSessionData, deleteUserSessions, findUserSessions, sessionUserId, verifySessionData } from "../src/zulip/sessions.js";
import { type ConfDir } from "./helpers/confdir.js";
import { type MemcachedInstance } from "./helpers/memcached.js";
import { type TestDatabase } from "./helpers/pg.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";
// Django's signing.dumps(obj, salt=..., serializer=JSONSerializer, compress=True), in test code.
import { addSession, signSessionData as djangoSessionData } from "./helpers/sessions.js";

const b64 = (b: Buffer) => b.toString("base64url"); // urlsafe, no padding (Django's b64_encode + strip "=")

const SECRET = "k3y-" + "x".repeat(46);
const small = (uid: string | number) => ({ _auth_user_id: uid, h: "9f" });
// Long, repetitive content compresses: the "." form.
const big = (uid: string) => ({ ...small(uid), blob: "zulip ".repeat(200), realm: "x".repeat(100) });

describe("session_data decoding", () => {
  it("reads the compressed session of the real Zulip 12.2 fresh install", () => {
    const real =
      ".eJxVi0sOwiAQQO_C2jQOzCC4NJ7CDWH4hKq1TSkLNd5dTbrQ7fs8hfNtKa7VNLs-ir0wYvPL2IdLun3FY5rHcwpLt6Landq1n45tGO6Htfpbi6_l88XIrAzZDKgQMpAHicnLhKylURI4GDLRk0UiztbYrHLawRa1JE1WvN6WYTVV:1wHjch:P2fbJzfFCrjbIyfBK8gMOO3KiT5IxdXQlT73EYM1yQI";
    const s = decodeSessionData(real);
    expect(s?._auth_user_id).toBe("8");
    expect(s?._auth_user_backend).toBe("zproject.backends.ZulipDummyBackend"); // logged in right after realm creation
    expect(sessionUserId(s)).toBe(8);
  });

  it("reads plain and compressed data built the Django way, and checks signatures", () => {
    const plain = djangoSessionData(small("42"), SECRET);
    const packed = djangoSessionData(big("43"), SECRET);
    expect(plain.startsWith(".")).toBe(false);
    expect(packed.startsWith(".")).toBe(true);
    expect(sessionUserId(decodeSessionData(plain))).toBe(42);
    expect(sessionUserId(decodeSessionData(packed))).toBe(43);
    expect(decodeSessionData(packed)?.blob).toBe("zulip ".repeat(200));
    expect(verifySessionData(plain, SECRET)).toBe(true);
    expect(verifySessionData(packed, SECRET)).toBe(true);
    expect(verifySessionData(plain, "other-secret")).toBe(false);
    const tampered = djangoSessionData(small("1"), SECRET).replace(/^[^:]+/, b64(Buffer.from(JSON.stringify(small("2")))));
    expect(sessionUserId(decodeSessionData(tampered))).toBe(2);
    expect(verifySessionData(tampered, SECRET)).toBe(false);
  });

  it("tolerates odd values", () => {
    expect(sessionUserId(decodeSessionData(djangoSessionData(small(7), SECRET)))).toBe(7);
    expect(sessionUserId(decodeSessionData(djangoSessionData({ other: 1 }, SECRET)))).toBeNull();
    expect(sessionUserId(decodeSessionData(djangoSessionData(small("abc"), SECRET)))).toBeNull();
    expect(decodeSessionData("garbage")).toBeNull();
    expect(decodeSessionData("not*base64:abc:def")).toBeNull();
    expect(decodeSessionData(".AAAA:abc:def")).toBeNull(); // "." but not zlib
    // Pre-Django-3.1 format (base64 of "hash:json"): Django 4+ no longer reads it either.
    expect(decodeSessionData(Buffer.from(`abc:${JSON.stringify(small("5"))}`).toString("base64"))).toBeNull();
  });
});

describe("finding and deleting a user's sessions", () => {
  let db: TestDatabase;
  let mc: MemcachedInstance;
  let conf: ConfDir;
  const future = new Date(Date.now() + 7 * 86400_000);
  const past = new Date(Date.now() - 86400_000);

  let copy: ServerCopy;

  beforeAll(async () => {
    copy = await startServerCopy({ template: "zulip12_fresh" });
    ({ db, mc, conf } = copy);
    const rows: [string, string, Date][] = [
      ["s8plain0000000000000000000000000", djangoSessionData(small("8"), SECRET), future],
      ["s8packed000000000000000000000000", djangoSessionData(big("8"), SECRET), future],
      ["s8expired00000000000000000000000", djangoSessionData(small("8"), SECRET), past],
      ["s8forged00000000000000000000000", djangoSessionData(small("8"), "not-the-secret"), future],
      ["s1bot0000000000000000000000000000", djangoSessionData(small("1"), SECRET), future],
      ["s80000000000000000000000000000000", djangoSessionData(small("80"), SECRET), future],
      ["anonymous00000000000000000000000", djangoSessionData({ csrf: "x" }, SECRET), future],
      ["garbage000000000000000000000000000", "this is not a session", future],
    ];
    for (const [k, d, e] of rows) await addSession(db, null, SECRET, { key: k, sessionData: d, expires: e });
  });
  afterAll(() => copy?.stop());

  it("finds sessions by decoded user id (the fixture's own session included)", async () => {
    const all = await findUserSessions(db.client, [8]);
    expect(all.map((s) => s.sessionKey).sort()).toEqual(
      [
        "s8expired00000000000000000000000",
        "s8forged00000000000000000000000",
        "s8packed000000000000000000000000",
        "s8plain0000000000000000000000000",
        "slwockrc3tuo977bg7ztp6jja1slvl1a",
      ].sort(),
    );
    expect(all.every((s) => s.userId === 8)).toBe(true);
    const live = await findUserSessions(db.client, [8], { unexpiredOnly: true });
    expect(live.map((s) => s.sessionKey)).not.toContain("s8expired00000000000000000000000");
    const signed = await findUserSessions(db.client, [8], { secretKey: SECRET });
    expect(signed.map((s) => s.sessionKey)).not.toContain("s8forged00000000000000000000000");
    expect((await findUserSessions(db.client, [1, 80])).map((s) => s.userId).sort((a, b) => a - b)).toEqual([1, 80]);
    expect(await findUserSessions(db.client, [])).toEqual([]);
  });

  it("deletes them and their cached copies (after commit), leaving other sessions alone", async () => {
    const paths = resolvePaths(conf.dir, { ...process.env, ...conf.env });
    const warnings: string[] = [];
    const ctx = { config: () => loadConfig(paths), paths, env: { ...process.env, ...conf.env }, out: { warn: (t: string) => warnings.push(t) } };
    const inval = new CacheInvalidation(ctx);
    const cached = (k: string) => `:1:django.contrib.sessions.cached_db${k}`;
    const keys8 = (await findUserSessions(db.client, [8])).map((s) => s.sessionKey);
    const others = ["s1bot0000000000000000000000000000", "s80000000000000000000000000000000", "anonymous00000000000000000000000"];
    const c = await mc.connect();
    for (const k of [...keys8, ...others]) await c.set(cached(k), "session");

    await db.client.query("BEGIN");
    const deleted = await deleteUserSessions(db.client, [8], inval);
    await db.client.query("COMMIT");
    inval.changeCommitted();
    expect(deleted.map((s) => s.sessionKey).sort()).toEqual([...keys8].sort());
    // Still cached until the invalidation is applied.
    expect(await c.has(cached(keys8[0]))).toBe(true);
    const rep = await inval.commit();
    expect(warnings).toEqual([]);
    expect(rep.keysDeleted).toBe(keys8.length);
    for (const k of keys8) expect(await c.has(cached(k))).toBe(false);
    for (const k of others) expect(await c.has(cached(k))).toBe(true);
    await c.close();

    const left = (await db.query("SELECT session_key FROM django_session ORDER BY 1")).map((r: any) => r.session_key);
    expect(left).toEqual([...others, "garbage000000000000000000000000000"].sort());
    expect(await deleteUserSessions(db.client, [8])).toEqual([]);
  });
});
