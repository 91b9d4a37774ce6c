// rate_limit through the built CLI against a real Redis (with requirepass, like Zulip's) and
// Zulip 12 / 11 / 10 databases: block / unblock write exactly RateLimitedUser's block key
// (SET 1 + EXPIRE, DEL) for the user and with -b their bots; manage.py's lines and messages;
// show; set-limits stores UserProfile.rate_limits (Zulip's "<seconds>:<requests>" format) and
// deletes the user's cached profile; an unreachable Redis is exit 3.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, type CliResult } from "./helpers/cli.js";
import { makeConfDir, type ConfDir } from "./helpers/confdir.js";
import { type MemcachedClient } from "./helpers/memcached.js";
import { type TestDatabase } from "./helpers/pg.js";
import { type RedisClient, type RedisInstance } from "./helpers/redis.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";
import { changedTables, snapshot } from "./helpers/snapshot.js";
import { addUser, TEST_REALM, type TestUser } from "./helpers/users.js";

describe.each(["zulip12_fresh", "zulip11_fresh", "zulip10_fresh"] as const)("rate_limit on %s", (template) => {
  let db: TestDatabase;
  let redis: RedisInstance;
  let rc: RedisClient;
  let mcc: MemcachedClient;
  let conf: ConfDir;
  let owner: TestUser, bot: TestUser, oldBot: TestUser;
  const cli = (args: string[], c: ConfDir = conf): Promise<CliResult> => runCli(["rate_limit", ...args], { confDir: c, db });
  const blockKey = (id: number, domain = "api_by_user") => `ratelimit:RateLimitedUser:${id}:${domain}:block`;

  let copy: ServerCopy;

  beforeAll(async () => {
    copy = await startServerCopy({ template, redis: true, client: true });
    ({ db, conf } = copy);
    redis = copy.redis!;
    rc = await redis.connect();
    mcc = copy.client!;
    owner = await addUser(db, { role: 400, name: "owner" });
    bot = await addUser(db, { role: 400, bot: true, botOwnerId: owner.id, name: "bot" });
    oldBot = await addUser(db, { role: 400, bot: true, botOwnerId: owner.id, active: false, name: "oldbot" });
  }, 120_000);
  afterAll(async () => {
    await rc?.close();
    await copy?.stop();
  });

  it("block: SET + EXPIRE of RateLimitedUser's block key, for the user and (-b) all their bots", async () => {
    await rc.flushall();
    const r = await cli(["-r", String(TEST_REALM), "-e", owner.email, "-s", "3600", "-b", "block"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout.split("\n")).toEqual([owner.id, bot.id, oldBot.id].map((id) => `Applying operation to User ID: ${id}: block`));
    expect(await rc.keys()).toEqual([blockKey(owner.id), blockKey(bot.id), blockKey(oldBot.id)].sort());
    for (const id of [owner.id, bot.id, oldBot.id]) {
      expect(await rc.get(blockKey(id))).toBe("1");
      const ttl = await rc.ttl(blockKey(id));
      expect(ttl).toBeGreaterThan(3590);
      expect(ttl).toBeLessThanOrEqual(3600);
    }
    const shown = await cli(["-e", owner.email, "show"]);
    expect(shown.stdout).toMatch(
      new RegExp(`^User ID: ${owner.id} \\(${owner.email}\\): api_by_user blocked for \\d+ more seconds; rate limits: the server's defaults$`),
    );
  });

  it("unblock by API key, in another domain, and manage.py's refusals", async () => {
    await rc.flushall();
    const [{ api_key }] = await db.query("SELECT api_key FROM zerver_userprofile WHERE id = $1", [bot.id]);
    expect((await cli(["-a", api_key, "-d", "api_by_ip", "block"])).exitCode).toBe(0);
    expect(await rc.keys()).toEqual([blockKey(bot.id, "api_by_ip")]);
    const r = await cli(["-a", api_key, "-d", "api_by_ip", "unblock", "--json"]);
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      ok: true,
      operation: "unblock",
      domain: "api_by_ip",
      results: [{ user: { id: bot.id }, blocked: false, block_remaining_ms: null, key: blockKey(bot.id, "api_by_ip"), status: "done" }],
    });
    expect(await rc.keys()).toEqual([]);
    const neither = await cli(["block"]);
    expect([neither.exitCode, neither.stderr]).toEqual([1, "Please enter either an email or API key to manage"]);
    const both = await cli(["-e", owner.email, "-a", api_key, "block"]);
    expect([both.exitCode, both.stderr]).toEqual([1, "Please enter either an email or API key to manage"]);
    const unknown = await cli(["-a", "nope", "block"]);
    expect([unknown.exitCode, unknown.stderr]).toEqual([1, "Unable to get user profile for API key nope"]);
    expect((await cli(["-e", owner.email, "freeze"])).exitCode).toBe(2);
    expect((await cli(["-e", owner.email, "-s", "soon", "block"])).exitCode).toBe(2);
    // -s 0: Redis drops the key at once (EXPIRE 0), as it does for manage.py.
    expect((await cli(["-e", owner.email, "-s", "0", "block"])).exitCode).toBe(0);
    expect(await rc.keys()).toEqual([]);
  });

  it("set-limits stores the user's rate_limits and deletes the cached profile; invalid rules are refused", async () => {
    const key = `:1:${conf.cachePrefix}user_profile_by_id:${owner.id}`;
    await mcc.set(key, "cached");
    const before = await snapshot(db);
    const r = await cli(["-e", owner.email, "--limits", "60:200,3600:2000", "set-limits"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(`Rate limits of User ID: ${owner.id} (${owner.email}): "" -> "60:200,3600:2000"`);
    expect(changedTables(before, await snapshot(db))).toEqual(["zerver_userprofile"]);
    expect((await db.query("SELECT rate_limits FROM zerver_userprofile WHERE id = $1", [owner.id]))[0].rate_limits).toBe("60:200,3600:2000");
    expect(await mcc.getString(key)).toBeNull();
    const shown = await cli(["-e", owner.email, "show"]);
    expect(shown.stdout).toBe(`User ID: ${owner.id} (${owner.email}): api_by_user not blocked; rate limits: 60:200,3600:2000`);

    const same = await snapshot(db, true);
    for (const bad of ["60", "60:0", "a:b", "60:200,", "x".repeat(101)]) {
      const b = await cli(["-e", owner.email, "--limits", bad, "set-limits"]);
      expect(b.exitCode).toBe(1);
      expect(b.stderr).toContain("Invalid --limits");
    }
    const dry = await cli(["-e", owner.email, "--limits", "", "set-limits", "--dry-run"]);
    expect(dry.exitCode).toBe(0);
    expect(changedTables(same, await snapshot(db, true))).toEqual([]);
    expect((await cli(["-e", owner.email, "--limits", "", "set-limits"])).exitCode).toBe(0);
    expect((await db.query("SELECT rate_limits FROM zerver_userprofile WHERE id = $1", [owner.id]))[0].rate_limits).toBe("");
  });

  it("an unreachable Redis is an environment error (exit 3)", async () => {
    const down = makeConfDir({ db: { name: db.name }, redis: { host: "127.0.0.1", port: 1, password: null } });
    try {
      const r = await cli(["-e", owner.email, "block"], down);
      expect(r.exitCode).toBe(3);
    } finally {
      down.cleanup();
    }
  });
});
