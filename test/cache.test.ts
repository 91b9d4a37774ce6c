// The cache-coherence layer (src/zulip/cache.ts) and its memcached client (src/services/memcached.ts),
// against a real memcached with SASL; and change_user_role's cache effects through the CLI.
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  cacheKeys,
  CacheInvalidation,
  decodeCacheKeyPrefixesValue,
  decodePickledStringList,
  deploymentCachePrefixes,
  flushRealmKeys,
  flushUserProfileKeys,
  userProfileCacheKeys,
  validCacheKey,
} from "../src/zulip/cache.js";
import { MemcachedClient, MemcachedError, parseMemcachedLocation, parseMemcachedLocations } from "../src/services/memcached.js";
import { resolvePaths } from "../src/config/paths.js";
import { loadConfig } from "../src/config/config.js";
import { createUser } from "../src/zulip/actions/create-user.js";
import { runCli } from "./helpers/cli.js";
import { makeConfDir, newCachePrefix, type ConfDir } from "./helpers/confdir.js";
import { startMemcached, type MemcachedInstance } from "./helpers/memcached.js";
import { REPO_ROOT, type TestDatabase } from "./helpers/pg.js";
import { freePort, makeTempDir, removeDirSync } from "./helpers/services.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";

const sha1 = (s: string) => crypto.createHash("sha1").update(s, "utf8").digest("hex");

// Pickles of Python lists made with CPython's pickle.dumps (hex), for the prefix-list decoder.
const PICKLES = {
  p0: "286c70300a5630313233343536373839616263646566303132333435363738396162636465663a0a70310a615666656463626139383736353433323130666564636261393837363534333231303a0a70320a612e",
  p2: "80025d710028582100000030313233343536373839616263646566303132333435363738396162636465663a7101582100000066656463626139383736353433323130666564636261393837363534333231303a7102652e",
  p4: "8004954d000000000000005d94288c2130313233343536373839616263646566303132333435363738396162636465663a948c2166656463626139383736353433323130666564636261393837363534333231303a94652e",
  p5: "8005954d000000000000005d94288c2130313233343536373839616263646566303132333435363738396162636465663a948c2166656463626139383736353433323130666564636261393837363534333231303a94652e",
  single4: "80049528000000000000005d948c2130313233343536373839616263646566303132333435363738396162636465663a94612e",
  tuple4: "8004950d000000000000008c026162948c0263649486942e",
  dict4: "8004950a000000000000007d948c0161944b01732e",
  // zlib.compress(pickle.dumps([4 prefixes], protocol=4))
  zlib4: "789c6b60993a95010262a768f4281a181a199b989a995b58262625a7a4a6a1f3ada6f4282612002035490400484d3201603525550f00cd7736cb",
};
const A = "0123456789abcdef0123456789abcdef:";
const B = "fedcba9876543210fedcba9876543210:";

/** A pickle (protocol 4) of a list of str, built by hand the way CPython writes it. */
function pickleList(items: string[]): Buffer {
  const body: Buffer[] = [Buffer.from([0x5d, 0x94])];
  if (items.length > 1) body.push(Buffer.from([0x28]));
  for (const it of items) {
    const b = Buffer.from(it, "utf8");
    body.push(Buffer.from([0x8c, b.length]), b, Buffer.from([0x94]));
  }
  body.push(Buffer.from([items.length > 1 ? 0x65 : 0x61, 0x2e]));
  const frame = Buffer.concat(body);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(frame.length));
  return Buffer.concat([Buffer.from([0x80, 0x04, 0x95]), len, frame]);
}

describe("cache keys (zerver/lib/cache.py)", () => {
  const user = { id: 8, realm_id: 2, email: "user8@zulip.example.net", delivery_email: " Test@Test.com ", api_key: "KEY123", is_bot: false };

  it("formats the user profile keys like Zulip", () => {
    expect(userProfileCacheKeys(user)).toEqual([
      "user_profile_by_id:8",
      "user_profile_narrow_by_id:8",
      "user_profile_by_api_key:KEY123",
      `user_profile:${sha1("user8@zulip.example.net")}:2`,
      `user_profile_by_delivery_email:${sha1("Test@Test.com")}:2`,
    ]);
  });

  it("adds the cross-realm bot keys only for the system bots", () => {
    const bot = { id: 6, realm_id: 1, email: "notification-bot@zulip.com", delivery_email: "notification-bot@zulip.com", api_key: "k", is_bot: true };
    const keys = userProfileCacheKeys(bot);
    const sorted = ["emailgateway@zulip.com", "notification-bot@zulip.com", "welcome-bot@zulip.com"].join(",");
    expect(keys).toContain(`bot_profile:${sha1("notification-bot@zulip.com")}`);
    expect(keys).toContain(`get_cross_realm_dicts:${sha1(sorted)}`);
    expect(userProfileCacheKeys({ ...bot, email: "other-bot@zulip.com" })).toHaveLength(5);
    expect(userProfileCacheKeys({ ...bot, is_bot: false })).toHaveLength(5);
  });

  it("validates keys like validate_cache_key", () => {
    expect(validCacheKey(":1:" + A + "user_profile_by_id:1")).toBe(true);
    expect(validCacheKey("has space")).toBe(false);
    expect(validCacheKey("é")).toBe(false);
    expect(validCacheKey("x".repeat(251))).toBe(false);
  });
});

describe("pickled prefix lists", () => {
  it.each(["p0", "p2", "p4", "p5"] as const)("decodes CPython protocol %s", (k) => {
    expect(decodePickledStringList(Buffer.from(PICKLES[k], "hex"))).toEqual([A, B]);
  });

  it("decodes one-element lists and tuples, rejects other types", () => {
    expect(decodePickledStringList(Buffer.from(PICKLES.single4, "hex"))).toEqual([A]);
    expect(decodePickledStringList(Buffer.from(PICKLES.tuple4, "hex"))).toEqual(["ab", "cd"]);
    expect(() => decodePickledStringList(Buffer.from(PICKLES.dict4, "hex"))).toThrow();
    expect(() => decodePickledStringList(Buffer.from("80049528", "hex"))).toThrow();
  });

  it("reads python-binary-memcached values by flags (pickle, zlib-compressed, plain)", () => {
    expect(decodeCacheKeyPrefixesValue(1, Buffer.from(PICKLES.p4, "hex"))).toEqual([A, B]);
    expect(decodeCacheKeyPrefixesValue(1 | 8, Buffer.from(PICKLES.zlib4, "hex"))).toEqual([
      A,
      "a".repeat(32) + ":",
      "b".repeat(32) + ":",
      "c".repeat(32) + ":",
    ]);
    expect(decodeCacheKeyPrefixesValue(0, Buffer.from("plain"))).toBeNull();
    expect(decodeCacheKeyPrefixesValue(1, Buffer.from("garbage"))).toBeNull();
    expect(decodePickledStringList(pickleList([A, B]))).toEqual([A, B]);
  });
});

describe("deployment prefixes", () => {
  it("reads the current deployment and its siblings, following symlinks", () => {
    const root = makeTempDir("prefixes", { serviceOwned: false });
    try {
      const deps = path.join(root, "deployments");
      const mk = (name: string, prefix: string | null, zerver = true) => {
        fs.mkdirSync(path.join(deps, name, "var"), { recursive: true });
        if (zerver) fs.mkdirSync(path.join(deps, name, "zerver"));
        if (prefix !== null) fs.writeFileSync(path.join(deps, name, "var", "remote_cache_prefix"), prefix + "\n");
      };
      const p1 = newCachePrefix();
      const p2 = newCachePrefix();
      mk("2026-01-01-00-00-00", p1);
      mk("2026-02-01-00-00-00", p2);
      mk("2026-03-01-00-00-00", "short");
      mk("lock", null, false);
      fs.symlinkSync("2026-02-01-00-00-00", path.join(deps, "current"));
      const r = deploymentCachePrefixes(path.join(deps, "current"));
      expect(r.prefixes.sort()).toEqual([p1, p2].sort());
      expect(r.problems.join("\n")).toMatch(/2026-03-01.*does not hold a cache key prefix/);
      // A lone deploy dir (no deployments dir around it) still works.
      const alone = deploymentCachePrefixes(path.join(root, "nowhere", "current"));
      expect(alone.prefixes).toEqual([]);
    } finally {
      removeDirSync(root);
    }
  });
});

describe("memcached client (binary protocol, SASL PLAIN)", () => {
  let mc: MemcachedInstance;
  let plain: MemcachedInstance;
  beforeAll(async () => {
    mc = await startMemcached();
    plain = await startMemcached({ password: null });
  });
  afterAll(async () => {
    await mc?.stop();
    await plain?.stop();
  });

  it("parses memcached locations", () => {
    expect(parseMemcachedLocation("127.0.0.1:11211")).toEqual({ host: "127.0.0.1", port: 11211 });
    expect(parseMemcachedLocation("cache.local")).toEqual({ host: "cache.local", port: 11211 });
    expect(parseMemcachedLocation("[::1]:2000")).toEqual({ host: "::1", port: 2000 });
    expect(parseMemcachedLocation("/run/memcached.sock")).toEqual({ path: "/run/memcached.sock" });
    expect(parseMemcachedLocation("unix:/run/m.sock")).toEqual({ path: "/run/m.sock" });
    expect(parseMemcachedLocations("a:1;b:2")).toHaveLength(2);
    expect(() => parseMemcachedLocation("a:notaport")).toThrow(MemcachedError);
  });

  it("authenticates and gets, sets, deletes, multi-deletes and flushes", async () => {
    const c = await MemcachedClient.connect({ host: mc.host, port: mc.port }, { username: mc.username!, password: mc.password! });
    try {
      expect(await c.version()).toMatch(/^\d+\.\d+/);
      await c.set("k1", "v1", { flags: 5 });
      expect(await c.get("k1")).toEqual({ flags: 5, value: Buffer.from("v1") });
      expect(await c.get("nope")).toBeNull();
      expect(await c.delete("k1")).toBe(true);
      expect(await c.delete("k1")).toBe(false);
      const keys = Array.from({ length: 2500 }, (_, i) => `many:${i}`);
      for (const k of keys.filter((_, i) => i % 3 === 0)) await c.set(k, "x");
      const r = await c.deleteMany(keys, 1000);
      expect(r.deleted.sort()).toEqual(keys.filter((_, i) => i % 3 === 0).sort());
      expect(r.missing).toHaveLength(keys.length - r.deleted.length);
      // The harness's independent client sees the same state.
      const h = await mc.connect();
      await h.set("f1", "1");
      await c.flushAll();
      expect(await h.get("f1")).toBeNull();
      await h.close();
    } finally {
      await c.close();
    }
  });

  it("refuses wrong credentials and unauthenticated use of a SASL server", async () => {
    await expect(MemcachedClient.connect({ host: mc.host, port: mc.port }, { username: "zulip@localhost", password: "wrong" })).rejects.toThrow(
      /rejected SASL authentication/,
    );
    const c = await MemcachedClient.connect({ host: mc.host, port: mc.port });
    try {
      await expect(c.get("x")).rejects.toThrow(/authentication/);
    } finally {
      await c.close();
    }
  });

  it("works without SASL, also when credentials are configured", async () => {
    const c = await MemcachedClient.connect({ host: plain.host, port: plain.port }, { username: "zulip@localhost", password: "anything" });
    try {
      await c.set("a", "b");
      expect((await c.get("a"))?.value.toString()).toBe("b");
    } finally {
      await c.close();
    }
  });

  it("fails fast and clearly when nothing listens", async () => {
    const port = await freePort();
    const t = Date.now();
    await expect(MemcachedClient.connect({ host: "127.0.0.1", port }, { connectTimeoutMs: 1000 })).rejects.toThrow(
      /cannot connect to memcached at 127\.0\.0\.1/,
    );
    expect(Date.now() - t).toBeLessThan(3000);
  });

  it("times out on a server that never answers", async () => {
    const net = await import("node:net");
    const silent = net.createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
    const port = (silent.address() as any).port;
    try {
      const c = await MemcachedClient.connect({ host: "127.0.0.1", port }, { timeoutMs: 300 });
      const t = Date.now();
      await expect(c.get("x")).rejects.toThrow(/did not answer/);
      expect(Date.now() - t).toBeLessThan(2000);
      c.destroy();
      await expect(MemcachedClient.connect({ host: "127.0.0.1", port }, { username: "u", password: "p", connectTimeoutMs: 300 })).rejects.toThrow(
        /did not answer/,
      );
    } finally {
      silent.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The coherence layer end to end: CacheInvalidation directly, and change_user_role via the CLI.

describe("cache invalidation after change_user_role", () => {
  let db: TestDatabase;
  let mc: MemcachedInstance;
  let conf: ConfDir;
  let userId: number;
  let memberEmail: string;
  /** A prefix only listed in memcached's own `cache_key_prefixes` entry. */
  const listedOnly = newCachePrefix();

  let copy: ServerCopy;

  beforeAll(async () => {
    copy = await startServerCopy({ template: "zulip12_fresh", conf: { extraDeployments: 2 } });
    ({ db, mc, conf } = copy);
    await db.client.query("BEGIN");
    const u = await createUser(db.client, 2, { email: "member@test.com", fullName: "Member", role: 400, externalHost: "zulip.example.net" });
    await db.client.query("COMMIT");
    userId = u.id;
    memberEmail = u.deliveryEmail;
  });
  afterAll(() => copy?.stop());

  async function userRow(id: number) {
    return (await db.query("SELECT id, realm_id, email, delivery_email, api_key, is_bot, role FROM zerver_userprofile WHERE id = $1", [id]))[0] as any;
  }

  /** Keys a role change of `u` must flush (by hand, from the Zulip source). */
  function roleChangeKeys(u: any): string[] {
    return [
      `user_profile_by_id:${u.id}`,
      `user_profile_narrow_by_id:${u.id}`,
      `user_profile_by_api_key:${u.api_key}`,
      `user_profile:${sha1(u.email)}:${u.realm_id}`,
      `user_profile_by_delivery_email:${sha1(u.delivery_email)}:${u.realm_id}`,
      `realm_user_dicts:${u.realm_id}`,
      `active_non_guest_user_ids:${u.realm_id}`,
    ];
  }

  function unrelatedKeys(u: any): string[] {
    return [
      `active_user_ids:${u.realm_id}`, // only is_active changes flush it
      `bot_dicts_in_realm:${u.realm_id}`,
      `realm_system_groups:${u.realm_id}`,
      `user_profile_by_id:8`,
      `realm_user_dicts:1`,
      `display_recipient_dict:1`,
      `single_user_display_recipient:${u.id}`,
    ];
  }

  async function prefill(keys: string[]): Promise<void> {
    const c = await mc.connect();
    try {
      for (const k of keys) await c.set(k, "cached");
    } finally {
      await c.close();
    }
  }

  async function present(keys: string[]): Promise<Set<string>> {
    const c = await mc.connect();
    const out = new Set<string>();
    try {
      for (const k of keys) if ((await c.get(k)) !== null) out.add(k);
    } finally {
      await c.close();
    }
    return out;
  }

  async function storePrefixList(prefixes: string[]): Promise<void> {
    const c = await mc.connect();
    try {
      await c.set(":1:cache_key_prefixes", pickleList(prefixes), { flags: 1 });
    } finally {
      await c.close();
    }
  }

  it("deletes exactly the keys Zulip deletes, for every deployment prefix", async () => {
    const u = await userRow(userId);
    const prefixes = [...conf.cachePrefixes, listedOnly];
    expect(conf.cachePrefixes).toHaveLength(3);
    const wrap = (p: string, k: string) => `:1:${p}${k}`;
    const mustGo = prefixes.flatMap((p) => roleChangeKeys(u).map((k) => wrap(p, k)));
    const mustStay = [
      ...prefixes.flatMap((p) => unrelatedKeys(u).map((k) => wrap(p, k))),
      // Same key, foreign prefix; the bare (unwrapped) key; another Django key.
      ...roleChangeKeys(u).map((k) => wrap(newCachePrefix(), k)),
      ...roleChangeKeys(u).map((k) => conf.cachePrefixes[0] + k),
      ":1:django.contrib.sessions.cached_dbabc",
    ];
    await prefill([...mustGo, ...mustStay]);
    await storePrefixList([conf.cachePrefixes[0], listedOnly]);

    const r = await runCli(["change_user_role", "-r", "2", memberEmail, "moderator"], { confDir: conf, db });
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(`Role for ${memberEmail} changed from Member to Moderator.`);
    expect(r.exitCode).toBe(0);

    const left = await present([...mustGo, ...mustStay]);
    expect(mustGo.filter((k) => left.has(k))).toEqual([]);
    expect(mustStay.filter((k) => !left.has(k))).toEqual([]);
    expect((await present([":1:cache_key_prefixes"])).size).toBe(1);
  });

  it("permission flags flush the user keys but not the realm lists", async () => {
    const u = await userRow(userId);
    const p = conf.cachePrefixes[0];
    const userKeys = roleChangeKeys(u)
      .slice(0, 5)
      .map((k) => `:1:${p}${k}`);
    const realmKeys = [`realm_user_dicts:2`, `active_non_guest_user_ids:2`].map((k) => `:1:${p}${k}`);
    await prefill([...userKeys, ...realmKeys]);
    const r = await runCli(["change_user_role", "-r", "2", memberEmail, "can_create_users", "--json"], { confDir: conf, db });
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.cache).toMatchObject({ mode: "keys", ok: true, skipped: false, keys_deleted: 5 });
    const left = await present([...userKeys, ...realmKeys]);
    expect([...left].sort()).toEqual([...realmKeys].sort());
  });

  it("a refused change touches nothing in the cache", async () => {
    const u = await userRow(userId);
    const keys = roleChangeKeys(u).map((k) => `:1:${conf.cachePrefixes[0]}${k}`);
    await prefill(keys);
    const r = await runCli(["change_user_role", "-r", "2", memberEmail, "moderator"], { confDir: conf, db });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe("User already has this role.");
    expect((await present(keys)).size).toBe(keys.length);
  });

  it("--flush-cache=all flushes everything", async () => {
    const keys = [":1:" + conf.cachePrefixes[0] + "user_profile_by_id:1", "completely:unrelated"];
    await prefill(keys);
    const r = await runCli(["change_user_role", "-r", "2", memberEmail, "member", "--flush-cache=all"], { confDir: conf, db });
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toBe("");
    expect((await present(keys)).size).toBe(0);
    // Explicitly asked for: also when the change itself is refused (a way to clear the cache later).
    await prefill(keys);
    const again = await runCli(["change_user_role", "-r", "2", memberEmail, "member", "--flush-cache=all"], { confDir: conf, db });
    expect(again.exitCode).toBe(1);
    expect((await present(keys)).size).toBe(0);
  });

  it("--flush-cache=all flushes in every write command, also when it had nothing to change (logout_all_users)", async () => {
    const keys = [":1:" + conf.cachePrefixes[0] + "user_profile_by_id:1", "completely:unrelated"];
    await prefill(keys);
    // Deactivated users of this realm have no sessions here: nothing to delete, nothing committed.
    const r = await runCli(["logout_all_users", "-r", "2", "--deactivated-only", "--flush-cache=all", "--json"], { confDir: conf, db });
    expect(r.exitCode, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.sessions_deleted_count).toBe(0);
    expect(doc.cache).toMatchObject({ mode: "all", ok: true, skipped: false, flushed_all: true });
    expect((await present(keys)).size).toBe(0);
    // A dry run never touches the cache.
    await prefill(keys);
    const dry = await runCli(["logout_all_users", "-r", "2", "--flush-cache=all", "--dry-run"], { confDir: conf, db });
    expect(dry.exitCode, dry.stderr).toBe(0);
    expect((await present(keys)).size).toBe(keys.length);
  });

  it("--flush-cache=none leaves the cache alone", async () => {
    const u = await userRow(userId);
    const keys = roleChangeKeys(u).map((k) => `:1:${conf.cachePrefixes[0]}${k}`);
    await prefill(keys);
    const r = await runCli(["change_user_role", "-r", "2", memberEmail, "guest", "--flush-cache=none"], { confDir: conf, db });
    expect(r.exitCode).toBe(0);
    expect((await present(keys)).size).toBe(keys.length);
  });

  it("memcached down: the change stands, a warning names what is stale and the remedy, exit 0", async () => {
    const port = await freePort();
    const down = makeConfDir({ db: { name: db.name }, memcached: { location: `127.0.0.1:${port}`, password: "x" } });
    try {
      const before = (await userRow(userId)).role;
      const target = before === 300 ? "member" : "moderator";
      const t = Date.now();
      const r = await runCli(["change_user_role", "-r", "2", memberEmail, target], { confDir: down, db });
      expect(Date.now() - t).toBeLessThan(10_000);
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toMatch(/^Role for member@test\.com changed from /);
      expect((await userRow(userId)).role).toBe(target === "member" ? 400 : 300);
      expect(r.stderr).toContain("the database change is committed");
      expect(r.stderr).toContain(`127.0.0.1:${port}`);
      expect(r.stderr).toContain(`user ${memberEmail} (id ${userId})`);
      expect(r.stderr).toContain("--flush-cache=all");
      expect(r.stderr).toContain("scripts/setup/flush-memcached");
      expect(r.stderr).toMatch(/restart/);
    } finally {
      down.cleanup();
    }
  });

  it("wrong memcached password: warning, exit 0", async () => {
    const bad = makeConfDir({ db: { name: db.name }, memcached: { location: mc.location, password: "not-the-password" } });
    try {
      const r = await runCli(["change_user_role", "-r", "2", memberEmail, "can_forge_sender"], { confDir: bad, db });
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toBe(`${memberEmail} changed to have can_forge_sender permission.`);
      expect(r.stderr).toMatch(/rejected SASL authentication as 'zulip@localhost'/);
    } finally {
      bad.cleanup();
    }
  });

  it("no memcached_password secret: connects without SASL (fails against a SASL server, with a warning)", async () => {
    const noauth = makeConfDir({ db: { name: db.name }, memcached: { location: mc.location, password: null } });
    try {
      const r = await runCli(["change_user_role", "-r", "2", memberEmail, "can_forge_sender", "--revoke"], { confDir: noauth, db });
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toMatch(/memcached at 127\.0\.0\.1:\d+ could not be updated/);
      expect(r.stderr).not.toMatch(/SASL as/);
    } finally {
      noauth.cleanup();
    }
  });

  it("CacheInvalidation: realm keys, Django keys, and nothing to do without a committed change", async () => {
    const paths = resolvePaths(conf.dir, { ...process.env, ...conf.env });
    const warnings: string[] = [];
    const ctx = { config: () => loadConfig(paths), paths, env: { ...process.env, ...conf.env }, out: { warn: (t: string) => warnings.push(t) } };
    const inval = new CacheInvalidation(ctx);
    const realm = (await db.query("SELECT id, string_id, deactivated FROM zerver_realm WHERE id = 2"))[0] as any;
    await inval.realmChanged(db.client, { ...realm, deactivated: true }, ["deactivated"]);
    inval.addDjangoKeys(["django.contrib.sessions.cached_dbSESSION1"]);
    expect((await inval.commit()).skipped).toBe(true); // nothing committed yet
    const p = conf.cachePrefixes[1];
    const expected = [
      ...(
        (await db.query("SELECT id, realm_id, email, delivery_email, api_key, is_bot FROM zerver_userprofile WHERE realm_id = 2 AND is_active")) as any[]
      ).flatMap((u) => userProfileCacheKeys(u)),
      cacheKeys.realmUserDicts(2),
      cacheKeys.activeUserIds(2),
      cacheKeys.botDictsInRealm(2),
      cacheKeys.realmAlertWords(2),
      cacheKeys.realmAlertWordsAutomaton(2),
      cacheKeys.activeNonGuestUserIds(2),
      `realm_rendered_description:${realm.string_id}`,
      `realm_text_description:${realm.string_id}`,
    ].map((k) => `:1:${p}${k}`);
    await prefill([...expected, ":1:django.contrib.sessions.cached_dbSESSION1"]);
    inval.changeCommitted();
    const rep = await inval.commit();
    expect(warnings).toEqual([]);
    expect(rep.ok).toBe(true);
    expect((await present([...expected, ":1:django.contrib.sessions.cached_dbSESSION1"])).size).toBe(0);
  });

  /** A TCP relay to memcached whose connections the test can cut. */
  async function relay(): Promise<{ location: string; open: () => number; accepted: () => number; cut: () => void; close: () => Promise<void> }> {
    const sockets = new Set<net.Socket>();
    let accepted = 0;
    const server = net.createServer((client) => {
      accepted++;
      const upstream = net.connect(mc.port, mc.host);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on("close", () => sockets.delete(s));
        s.on("error", () => undefined);
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as net.AddressInfo).port;
    return {
      location: `127.0.0.1:${port}`,
      open: () => sockets.size / 2,
      accepted: () => accepted,
      cut: () => {
        for (const s of sockets) s.destroy();
      },
      close: () => new Promise<void>((r) => server.close(() => r())),
    };
  }

  /** A CacheInvalidation whose memcached is reached through the relay, and the role-change keys of the test user, cached. */
  async function invalidationVia(r: { location: string }) {
    const env = { ...process.env, ...conf.env, ZULIP_MANAGE_MEMCACHED_LOCATION: r.location };
    const paths = resolvePaths(conf.dir, env);
    const warnings: string[] = [];
    const inval = new CacheInvalidation({ config: () => loadConfig(paths), paths, env, out: { warn: (t: string) => warnings.push(t) } });
    const u = await userRow(userId);
    const keys = roleChangeKeys(u).map((k) => `:1:${conf.cachePrefixes[0]}${k}`);
    await prefill(keys);
    return { inval, warnings, u, keys };
  }

  async function until(cond: () => boolean): Promise<void> {
    for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(cond()).toBe(true);
  }

  it("prepare() connects while the database work goes on; commit() uses that connection", async () => {
    const r = await relay();
    try {
      const { inval, warnings, u, keys } = await invalidationVia(r);
      inval.prepare();
      await until(() => r.accepted() === 1);
      await inval.userChanged(db.client, u, ["role"]);
      inval.changeCommitted();
      const rep = await inval.commit();
      expect(warnings).toEqual([]);
      expect(rep.ok).toBe(true);
      expect(r.accepted()).toBe(1); // no second connection
      expect((await present(keys)).size).toBe(0);
      await until(() => r.open() === 0); // and it is closed afterwards
    } finally {
      await r.close();
    }
  });

  it("an early connection that was dropped before commit(): the deletes go through a new one", async () => {
    const r = await relay();
    try {
      const { inval, warnings, u, keys } = await invalidationVia(r);
      await inval.userChanged(db.client, u, ["role"]); // prepares
      await until(() => r.open() === 1);
      r.cut(); // e.g. memcached restarted while the transaction ran
      inval.changeCommitted();
      const rep = await inval.commit();
      expect(warnings).toEqual([]);
      expect(rep.ok).toBe(true);
      expect(r.accepted()).toBe(2);
      expect((await present(keys)).size).toBe(0);
    } finally {
      await r.close();
    }
  });

  it("a prepared connection never used (a command that ends early) does not keep the process alive", async () => {
    const r = await relay();
    try {
      const lib = (f: string) => JSON.stringify(pathToFileURL(path.join(REPO_ROOT, "dist", f)).href);
      const script = `
        import { CacheInvalidation } from ${lib("zulip/cache.js")};
        import { loadConfig } from ${lib("config/config.js")};
        import { resolvePaths } from ${lib("config/paths.js")};
        const paths = resolvePaths(process.env.ZULIP_CONF_DIR, process.env);
        const inval = new CacheInvalidation({ config: () => loadConfig(paths), paths, env: process.env, out: { warn() {} } });
        inval.prepare();
        await new Promise((resolve) => setTimeout(resolve, 300));
        console.log("done");`;
      const child = await execa(process.execPath, ["--input-type=module", "-e", script], {
        env: { ...process.env, ...conf.env, ZULIP_MANAGE_MEMCACHED_LOCATION: r.location },
        timeout: 20_000,
        reject: false,
      });
      expect(child.timedOut).toBe(false);
      expect(child.stderr).toBe("");
      expect(child.stdout).toBe("done");
      expect(child.exitCode).toBe(0);
      expect(r.accepted()).toBe(1); // it did connect
    } finally {
      await r.close();
    }
  });

  it("guard(): writes that fail after a commit still get that commit's keys deleted; before any commit, nothing", async () => {
    const r = await relay();
    try {
      const { inval, warnings, u, keys } = await invalidationVia(r);
      await expect(
        inval.guard(async () => {
          await inval.userChanged(db.client, u, ["role"]);
          throw new Error("failed before the commit");
        }),
      ).rejects.toThrow("failed before the commit");
      expect((await present(keys)).size).toBe(keys.length);
      await expect(
        inval.guard(async () => {
          await inval.userChanged(db.client, u, ["role"]);
          inval.changeCommitted();
          throw new Error("failed after the commit");
        }),
      ).rejects.toThrow("failed after the commit");
      expect(warnings).toEqual([]);
      expect((await present(keys)).size).toBe(0);
    } finally {
      await r.close();
    }
  });

  it("prepare() without a committed change: the early connection is closed, nothing deleted", async () => {
    const r = await relay();
    try {
      const { inval, u, keys } = await invalidationVia(r);
      await inval.userChanged(db.client, u, ["role"]);
      await until(() => r.open() === 1);
      expect((await inval.commit()).skipped).toBe(true); // rolled back: nothing committed
      await until(() => r.open() === 0);
      expect((await present(keys)).size).toBe(keys.length);
    } finally {
      await r.close();
    }
  });

  it("flushUserProfileKeys follows flush_user_profile's update_fields rules", async () => {
    const u = { ...(await userRow(userId)), is_bot: false };
    const base = userProfileCacheKeys(u);
    expect(await flushUserProfileKeys(db.client, u, ["can_forge_sender"])).toEqual(base);
    expect(await flushUserProfileKeys(db.client, u, ["role"])).toEqual([...base, "realm_user_dicts:2", "active_non_guest_user_ids:2"]);
    expect(await flushUserProfileKeys(db.client, u, ["is_active"])).toEqual([
      ...base,
      "realm_user_dicts:2",
      "active_user_ids:2",
      "active_non_guest_user_ids:2",
    ]);
    const subs = (await db.query("SELECT DISTINCT recipient_id FROM zerver_subscription WHERE user_profile_id = $1 ORDER BY 1", [u.id])).map(
      (r: any) => `display_recipient_dict:${r.recipient_id}`,
    );
    expect(subs.length).toBeGreaterThan(0);
    expect(await flushUserProfileKeys(db.client, u, ["full_name"])).toEqual([...base, "realm_user_dicts:2", ...subs, `single_user_display_recipient:${u.id}`]);
    const bot = { ...u, is_bot: true };
    expect(await flushUserProfileKeys(db.client, bot, ["api_key"])).toContain("bot_dicts_in_realm:2");
    expect(await flushUserProfileKeys(db.client, bot, ["role"])).not.toContain("bot_dicts_in_realm:2");
    const before = { ...u, api_key: "OLDKEY" };
    expect(await flushUserProfileKeys(db.client, u, ["api_key"], { before })).toContain("user_profile_by_api_key:OLDKEY");
    // A realm rename also clears the descriptions under the old subdomain.
    const rk = await flushRealmKeys(db.client, { id: 2, string_id: "new", deactivated: false }, ["string_id"], { oldStringId: "old" });
    expect(rk).toContain("realm_text_description:old");
    expect(rk).toContain("realm_rendered_description:new");
  });
});
