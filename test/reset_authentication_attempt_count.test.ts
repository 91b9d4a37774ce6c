// reset_authentication_attempt_count through the built CLI against a real Redis (with
// requirepass, like Zulip's): exactly the three rate-limit keys of the username go, verbatim
// (case-sensitive); help + "Please enter a username" without -u; an unreachable or
// wrongly-authenticated Redis is an environment error.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { authenticationAttemptEntity, rateLimitKeys } from "../src/zulip/rate-limit.js";
import { runCli } from "./helpers/cli.js";
import { makeConfDir, type ConfDir } from "./helpers/confdir.js";
import { type RedisClient, type RedisInstance, startRedis } from "./helpers/redis.js";

let redis: RedisInstance;
let rc: RedisClient;
let conf: ConfDir;

beforeAll(async () => {
  redis = await startRedis();
  rc = await redis.connect();
  conf = makeConfDir({ redis: { host: redis.host, port: redis.port, password: redis.password } });
}, 120_000);
afterAll(async () => {
  await rc?.close();
  await redis?.stop();
  conf?.cleanup();
});

const keysOf = (u: string) => ["list", "zset", "block"].map((t) => `ratelimit:RateLimitedAuthenticationByUsername:${u}:${t}`);

describe("reset_authentication_attempt_count", () => {
  it("Zulip's key names", () => {
    expect(rateLimitKeys(authenticationAttemptEntity("iago@zulip.com"))).toEqual(keysOf("iago@zulip.com"));
  });

  it("deletes the username's list, zset and block keys and nothing else; prints nothing", async () => {
    await rc.flushall();
    await rc.command(["RPUSH", keysOf("iago@zulip.com")[0], "1700000000.1"]);
    await rc.command(["ZADD", keysOf("iago@zulip.com")[1], "1700000000.1", "1700000000.1"]);
    await rc.set(keysOf("iago@zulip.com")[2], "1", { ex: 3600 });
    for (const k of keysOf("Iago@zulip.com")) await rc.set(k, "1");
    await rc.set("ratelimit:RateLimitedUser:10:api_by_user:block", "1");
    const r = await runCli(["reset_authentication_attempt_count", "-u", "iago@zulip.com"], { confDir: conf });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("");
    expect(await rc.keys("*")).toEqual([...keysOf("Iago@zulip.com"), "ratelimit:RateLimitedUser:10:api_by_user:block"].sort());
  });

  it("--json reports the keys and how many existed", async () => {
    const r = await runCli(["reset_authentication_attempt_count", "--username", "Iago@zulip.com", "--json"], { confDir: conf });
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      ok: true,
      exit_code: 0,
      error: null,
      error_code: null,
      schema_version: 1,
      username: "Iago@zulip.com",
      redis_server: `127.0.0.1:${redis.port}`,
      keys: keysOf("Iago@zulip.com"),
      keys_deleted_count: 3,
    });
    const again = await runCli(["reset_authentication_attempt_count", "--username", "Iago@zulip.com", "--json"], { confDir: conf });
    expect(JSON.parse(again.stdout).keys_deleted_count).toBe(0);
  });

  it("without -u: the help on stdout, then manage.py's error", async () => {
    const r = await runCli(["reset_authentication_attempt_count"], { confDir: conf });
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toContain("Reset the rate limit for authentication attempts for username.");
    expect(r.stdout).toContain("-u, --username <username>");
    expect(r.stderr).toBe("Please enter a username");
  });

  it("a wrong redis_password or an unreachable server: exit 3 with a hint", async () => {
    const wrong = makeConfDir({ redis: { host: redis.host, port: redis.port, password: "not-the-password" } });
    try {
      const r = await runCli(["reset_authentication_attempt_count", "-u", "x@y.z"], { confDir: wrong });
      expect(r.exitCode).toBe(3);
      expect(r.stderr).toContain("refused the password (redis_password)");
    } finally {
      wrong.cleanup();
    }
    const down = makeConfDir({ redis: { host: "127.0.0.1", port: 1, password: null } });
    try {
      const r = await runCli(["reset_authentication_attempt_count", "-u", "x@y.z"], { confDir: down });
      expect(r.exitCode).toBe(3);
      expect(r.stderr).toContain("cannot connect to Redis at 127.0.0.1:1");
    } finally {
      down.cleanup();
    }
  });
});
