// Real-time event delivery (src/services/events.ts, rabbitmq.ts, tornado.ts, sharding.ts) through the
// built CLI against the run's real RabbitMQ, with change_user_role as the writing command:
// what reaches the notify queues (bodies, order, recipients, AMQP properties), nothing for dry
// runs and refused commands, --events=none, Tornado sharding, the HTTP fallback against a local
// server enforcing Tornado's notify_tornado contract, RabbitMQ down and wrong credentials, a
// broker that closes the channel, and the --json report.
import http from "node:http";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.js";
import { makeConfDir, type ConfDir, type MakeConfDirOptions } from "./helpers/confdir.js";
import { claimVhost, QueueReader, rabbitSettings, sortedUsers } from "./helpers/rabbitmq.js";
import { startServerCopy, type ServerCopy } from "./helpers/server-copy.js";
import { CLOSED_PORT, freePort } from "./helpers/services.js";
import { addUser, groupIds, TEST_REALM } from "./helpers/users.js";

const HOST = "zulip.example.net";

let server: ServerCopy;
let reader: QueueReader;
let groups: Record<string, number>;

async function activeIds(): Promise<number[]> {
  return (await server.db.query("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active ORDER BY id", [TEST_REALM])).map((r: any) => Number(r.id));
}

/** The events change_user_role sends for member -> moderator on a realm without channel changes. */
async function memberToModerator(userId: number) {
  const all = await activeIds();
  return [
    { event: { type: "realm_user", op: "update", person: { user_id: userId, role: 300 } }, users: all },
    { event: { type: "user_group", op: "remove_members", group_id: groups["role:members"], user_ids: [userId] }, users: all },
    { event: { type: "user_group", op: "add_members", group_id: groups["role:moderators"], user_ids: [userId] }, users: all },
    { event: { type: "user_group", op: "remove_members", group_id: groups["role:fullmembers"], user_ids: [userId] }, users: all },
  ];
}

function conf(extra: MakeConfDirOptions = {}): ConfDir {
  return makeConfDir({ db: { name: server.db.name }, memcached: { location: server.mc.location, password: server.mc.password }, externalHost: HOST, ...extra });
}

beforeAll(async () => {
  server = await startServerCopy({ template: "zulip12_fresh", externalHost: HOST });
  reader = await QueueReader.open();
  groups = await groupIds(server.db);
});

afterAll(async () => {
  await reader?.close();
  await server?.stop();
});

beforeEach(async () => {
  await reader.purge("notify_tornado", "deferred_work");
});

describe("delivery through RabbitMQ", () => {
  it("publishes exactly Zulip's events, in order, persistent, through the default exchange", async () => {
    const u = await addUser(server.db, { role: 400 });
    const r = await runCli(["change_user_role", "-r", String(TEST_REALM), u.email, "moderator", "--json"], { confDir: server.conf, db: server.db });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const raw = await reader.drainRaw("notify_tornado");
    expect(sortedUsers(raw.map((m) => m.body))).toEqual(await memberToModerator(u.id));
    for (const m of raw) {
      expect(m.exchange).toBe("");
      expect(m.routingKey).toBe("notify_tornado");
      expect(m.properties.deliveryMode).toBe(2);
      expect(m.properties.contentType).toBeUndefined();
      expect(m.properties.contentEncoding).toBeUndefined();
      expect(m.properties.priority).toBeUndefined();
      expect(m.properties.messageId).toBeUndefined();
      expect(m.properties.expiration).toBeUndefined();
    }
    const doc = JSON.parse(r.stdout);
    expect(doc.events).toEqual({ mode: "auto", transport: "rabbitmq", published: 4, jobs: 0, ok: true, skipped: false, undelivered: [], warning: null });
    // No push notification service configured: no audit-log upload job.
    expect(await reader.drain("deferred_work")).toEqual([]);
  });

  it("sends nothing for a dry run, a refused change, or --events=none", async () => {
    const u = await addUser(server.db, { role: 400 });
    const dry = await runCli(["change_user_role", "-r", String(TEST_REALM), u.email, "admin", "--dry-run", "--json"], { confDir: server.conf, db: server.db });
    expect(dry.exitCode).toBe(0);
    expect(JSON.parse(dry.stdout).events).toBeNull();
    const refused = await runCli(["change_user_role", "-r", String(TEST_REALM), u.email, "member"], { confDir: server.conf, db: server.db });
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain("User already has this role.");
    const none = await runCli(["change_user_role", "-r", String(TEST_REALM), u.email, "moderator", "--events=none", "--json"], {
      confDir: server.conf,
      db: server.db,
    });
    expect(none.exitCode).toBe(0);
    expect(JSON.parse(none.stdout).events).toMatchObject({ mode: "none", transport: "none", published: 0, ok: true, skipped: true });
    expect((await server.db.query("SELECT role FROM zerver_userprofile WHERE id = $1", [u.id]))[0].role).toBe(300);
    expect(await reader.drain()).toEqual([]);
  });

  it("queues the audit-log upload job when the push notification service is used", async () => {
    const c = conf({ extraSettings: "ZULIP_SERVICE_PUSH_NOTIFICATIONS = True" });
    try {
      const u = await addUser(server.db, { role: 400 });
      const r = await runCli(["change_user_role", "-r", String(TEST_REALM), u.email, "moderator", "--json"], { confDir: c, db: server.db });
      expect(r.exitCode).toBe(0);
      expect(await reader.drain("deferred_work")).toEqual([{ type: "push_bouncer_update_for_realm", realm_id: TEST_REALM }]);
      expect(sortedUsers(await reader.drain())).toEqual(await memberToModerator(u.id));
      expect(JSON.parse(r.stdout).events).toMatchObject({ published: 4, jobs: 1, ok: true });
    } finally {
      c.cleanup();
    }
  });
});

describe("Tornado sharding", () => {
  it("splits recipients by user id over the realm's ports, one notify_tornado_port_<port> queue each", async () => {
    const c = conf({ zulipConf: `[machine]\ndeploy_type = production\n\n[tornado_sharding]\n9800 = other.${HOST}\n9801_9802 = zulip\n` });
    const fs = await import("node:fs");
    fs.writeFileSync(`${c.dir}/sharding.json`, JSON.stringify({ shard_map: { [HOST]: [9801, 9802], [`other.${HOST}`]: 9800 }, shard_regexes: [] }));
    try {
      await reader.purge("notify_tornado_port_9800", "notify_tornado_port_9801", "notify_tornado_port_9802");
      const u = await addUser(server.db, { role: 400 });
      const r = await runCli(["change_user_role", "-r", String(TEST_REALM), u.email, "moderator"], { confDir: c, db: server.db });
      expect(r.stderr).toBe("");
      const expected = await memberToModerator(u.id);
      for (const [port, rest] of [
        [9801, 0],
        [9802, 1],
      ] as const) {
        const got = sortedUsers(await reader.drain(`notify_tornado_port_${port}`));
        expect(got).toEqual(expected.map((e) => ({ event: e.event, users: e.users.filter((id) => id % 2 === rest) })));
      }
      expect(await reader.drain("notify_tornado_port_9800")).toEqual([]);
      expect(await reader.drain("notify_tornado")).toEqual([]);
    } finally {
      c.cleanup();
    }
  });

  it("uses a regex shard (matched at the start of the host) and the first port otherwise", async () => {
    const c = conf({ zulipConf: `[machine]\ndeploy_type = production\n\n[tornado_sharding]\n9800 = other\n9801_regex = ^zul\n` });
    const fs = await import("node:fs");
    fs.writeFileSync(`${c.dir}/sharding.json`, JSON.stringify({ shard_map: { [`other.${HOST}`]: 9800 }, shard_regexes: [["zul", 9801]] }));
    try {
      await reader.purge("notify_tornado_port_9800", "notify_tornado_port_9801");
      const u = await addUser(server.db, { role: 400 });
      expect((await runCli(["change_user_role", "-r", String(TEST_REALM), u.email, "moderator"], { confDir: c, db: server.db })).exitCode).toBe(0);
      expect(sortedUsers(await reader.drain("notify_tornado_port_9801"))).toEqual(await memberToModerator(u.id));
      expect(await reader.drain("notify_tornado_port_9800")).toEqual([]);
    } finally {
      c.cleanup();
    }
  });
});

/** A stand-in Tornado: enforces views.notify's contract and records what it was given. */
async function fakeTornado(secret: string) {
  const port = await freePort();
  const received: any[] = [];
  const refused: string[] = [];
  const srv = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const deny = (why: string) => {
        refused.push(why);
        res.writeHead(401, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ result: "error", msg: "Access denied", code: "UNAUTHORIZED" }));
      };
      if (req.method !== "POST") return deny("method");
      if (req.url !== "/api/internal/notify_tornado") return deny("path");
      if (req.socket.remoteAddress !== "127.0.0.1" && req.socket.remoteAddress !== "::ffff:127.0.0.1") return deny("address");
      if (!String(req.headers["content-type"]).startsWith("application/x-www-form-urlencoded")) return deny("content-type");
      if (req.headers["x-real-ip"] || req.headers["x-forwarded-for"]) return deny("proxy headers");
      const form = new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
      if (form.get("secret") !== secret) return deny("secret");
      const data = JSON.parse(form.get("data") ?? "null");
      if (data === null || typeof data !== "object" || Array.isArray(data)) return deny("data");
      received.push(data);
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ result: "success", msg: "" }));
    });
  });
  await new Promise<void>((r) => srv.listen(port, "127.0.0.1", r));
  return { port, received, refused, close: () => new Promise<void>((r) => srv.close(() => r())) };
}

describe("the HTTP fallback and failures", () => {
  // A port chosen free here was once handed to one of the fake Tornados before the CLI connected.
  const closedPort = CLOSED_PORT;

  const downRabbit = () => ({ ...rabbitSettings(), port: closedPort });

  it("posts the events to Tornado when RabbitMQ cannot be reached, and says so", async () => {
    const secret = "s3cret-" + Date.now();
    const tornado = await fakeTornado(secret);
    // One Tornado process, on the fake's port: [tornado_sharding] with that port only.
    const c = conf({
      rabbitmq: downRabbit(),
      secrets: { shared_secret: secret },
      zulipConf: `[machine]\ndeploy_type = production\n\n[tornado_sharding]\n${tornado.port} = zulip\n`,
    });
    try {
      const u = await addUser(server.db, { role: 400 });
      const r = await runCli(["change_user_role", "-r", String(TEST_REALM), u.email, "moderator", "--json"], { confDir: c, db: server.db });
      expect(r.exitCode).toBe(0);
      expect(tornado.refused).toEqual([]);
      expect(sortedUsers(tornado.received)).toEqual(await memberToModerator(u.id));
      expect(r.stderr).toMatch(
        /^Warning: RabbitMQ could not be used \(cannot connect to RabbitMQ at 127\.0\.0\.1:\d+: ECONNREFUSED .*RABBITMQ_HOST, RABBITMQ_PORT.*\); the real-time events went to Tornado over HTTP instead\.$/,
      );
      expect(JSON.parse(r.stdout).events).toMatchObject({ transport: "http", published: 4, ok: true, undelivered: [] });
      // --events=http goes there directly, without trying RabbitMQ.
      const again = await runCli(["change_user_role", "-r", String(TEST_REALM), u.email, "admin", "--events=http"], { confDir: c, db: server.db });
      expect(again.exitCode).toBe(0);
      expect(again.stderr).toBe("");
      expect(tornado.received.length).toBe(7);
    } finally {
      await tornado.close();
      c.cleanup();
    }
  });

  it("Tornado refuses a wrong shared secret: warning, exit 0, the change committed", async () => {
    const tornado = await fakeTornado("the-real-secret");
    const c = conf({ rabbitmq: downRabbit(), secrets: { shared_secret: "a-wrong-secret" } });
    (await import("node:fs")).writeFileSync(c.zulipConfPath, `[machine]\ndeploy_type = production\n\n[tornado_sharding]\n${tornado.port} = zulip\n`);
    try {
      const u = await addUser(server.db, { role: 400 });
      const r = await runCli(["change_user_role", "-r", String(TEST_REALM), u.email, "moderator", "--json"], { confDir: c, db: server.db });
      expect(r.exitCode).toBe(0);
      expect(tornado.refused).toEqual(["secret"]);
      expect(r.stderr).toContain("answered HTTP 401: Access denied");
      expect(JSON.parse(r.stdout).events).toMatchObject({ ok: false, published: 0 });
    } finally {
      await tornado.close();
      c.cleanup();
    }
  });

  it("neither RabbitMQ nor Tornado: one warning naming what clients miss, exit 0, rows committed", async () => {
    const tornadoPort = await freePort();
    const c = conf({ rabbitmq: downRabbit() });
    (await import("node:fs")).writeFileSync(c.zulipConfPath, `[machine]\ndeploy_type = production\n\n[tornado_sharding]\n${tornadoPort} = zulip\n`);
    try {
      const u = await addUser(server.db, { role: 400 });
      const r = await runCli(["change_user_role", "-r", String(TEST_REALM), u.email, "moderator", "--json"], { confDir: c, db: server.db });
      expect(r.exitCode).toBe(0);
      expect((await server.db.query("SELECT role FROM zerver_userprofile WHERE id = $1", [u.id]))[0].role).toBe(300);
      const lines = r.stderr.split("\n");
      expect(lines[0]).toMatch(
        /^Warning: the database change is committed, but 4 real-time events could not be delivered \(RabbitMQ: cannot connect .*; Tornado: nothing listens at http:\/\/127\.0\.0\.1:\d+ \(Tornado not running there\)\)\.$/,
      );
      expect(lines[1]).toBe(`Open browsers and apps will not show the new role of ${u.email} until they reload.`);
      expect(lines.length).toBe(2);
      const doc = JSON.parse(r.stdout);
      expect(doc.ok).toBe(true);
      expect(doc.events).toMatchObject({
        transport: "none",
        published: 0,
        ok: false,
        undelivered: ["realm_user/update", "user_group/remove_members", "user_group/add_members", "user_group/remove_members"],
      });
      expect(doc.events.warning).toBe(r.stderr);
    } finally {
      c.cleanup();
    }
  });

  it("wrong RabbitMQ credentials: a warning that names the settings", async () => {
    const c = conf({ rabbitmq: { ...rabbitSettings(), password: "not-the-password" } });
    try {
      const u = await addUser(server.db, { role: 400 });
      const r = await runCli(["change_user_role", "-r", String(TEST_REALM), u.email, "moderator", "--events=rabbitmq"], { confDir: c, db: server.db });
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toContain(
        "RabbitMQ refused the login of user 'zulip' (check RABBITMQ_USERNAME in settings.py and the rabbitmq_password secret in zulip-secrets.conf)",
      );
      expect(r.stderr).toContain(`Open browsers and apps will not show the new role of ${u.email} until they reload.`);
      expect(await reader.drain()).toEqual([]);
    } finally {
      c.cleanup();
    }
  });

  it("an unknown virtual host: a warning that names RABBITMQ_VHOST", async () => {
    const c = conf({ rabbitmq: { ...rabbitSettings(), vhost: "no-such-vhost" } });
    try {
      const u = await addUser(server.db, { role: 400 });
      const r = await runCli(["change_user_role", "-r", String(TEST_REALM), u.email, "moderator", "--events=rabbitmq"], { confDir: c, db: server.db });
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toContain("check RABBITMQ_VHOST in settings.py");
    } finally {
      c.cleanup();
    }
  });

  describe("a queue declared with other flags (the broker closes the channel)", () => {
    afterEach(async () => {
      await reader.deleteQueue("notify_tornado");
      await reader.declare("notify_tornado");
    });
    it("warns and exits 0 instead of crashing", async () => {
      await reader.deleteQueue("notify_tornado");
      const other = await QueueReader.open();
      // A non-durable queue of the same name: Zulip's durable declare is refused.
      await (other as any).ch.assertQueue("notify_tornado", { durable: false });
      await other.close();
      const u = await addUser(server.db, { role: 400 });
      const r = await runCli(["change_user_role", "-r", String(TEST_REALM), u.email, "moderator", "--events=rabbitmq", "--json"], {
        confDir: server.conf,
        db: server.db,
      });
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toContain("PRECONDITION_FAILED");
      expect(JSON.parse(r.stdout).events).toMatchObject({ ok: false, published: 0 });
    });
  });
});

describe("each test file has its own vhost", () => {
  it("claims one and reuses it", () => {
    expect(claimVhost()).toBe(server.conf.rabbitmqVhost);
  });
});
