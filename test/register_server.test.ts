// register_server against a local fake of the Mobile Push Notification Service that speaks the
// real protocol (zilencer/urls.py + views.py: paths, form vs JSON bodies, HTTP Basic auth,
// validation rules and error codes) and records everything it receives; a real PostgreSQL
// database (Zulip 12 fresh install) and a real Redis for the registration transfer.
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { httpRequest, proxyFor, PushServiceClient, readZulipVersion, TransportError } from "../src/services/push-service.js";
import { RedisClient as ZmRedis, RedisError } from "../src/services/redis.js";
import { CLI_BIN, cliBuilt, cliEnv } from "./helpers/cli.js";
import { type ConfDir, defaultSecrets, makeConfDir } from "./helpers/confdir.js";
import { createDatabase, prepareTemplate, type TemplateName, type TestDatabase } from "./helpers/pg.js";
import { QueueReader, rabbitSettings, sortedUsers } from "./helpers/rabbitmq.js";
import { type RedisClient, type RedisInstance, startRedis } from "./helpers/redis.js";
import { schemaErrors } from "./helpers/json-schema.js";
import { requireTool } from "./helpers/tools.js";

const SYNCED_BILLING_EVENTS = [101, 102, 103, 104, 105, 201, 202, 229];
const TRANSFER_KEY = "self_hosting_domain_transfer_challenge_verify";
const HOSTNAME = "chat.example.org";
const CONTACT = "admin@example.org";
const ORG_ID = "6cbd8d5c-7e5b-4b70-9a8e-0e4a1f4e2d11";
const ORG_KEY = "k".repeat(20) + "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefgh"; // 64 chars
const OTHER_ID = "0f0e0d0c-1234-4abc-8def-0123456789ab";
const isRoot = process.getuid?.() === 0;

// ---------------------------------------------------------------------------------------------
// The fake service

interface Registration {
  uuid: string;
  hostname: string;
  contact_email: string;
  api_key: string;
  deactivated: boolean;
  last_realmauditlog_id: number;
  last_version?: string | null;
  last_merge_base?: string | null;
  last_api_feature_level?: number | null;
  realms: Map<string, Record<string, unknown>>;
}

interface Received {
  method: string;
  path: string;
  contentType: string | undefined;
  userAgent: string | undefined;
  auth: { role: string; key: string } | null;
  body: string;
  form?: Record<string, string>;
  json?: unknown;
}

type Override = { status: number; body: string; contentType?: string } | "hang" | "close";

const REALM_FIELDS = [
  "id",
  "host",
  "url",
  "name",
  "org_type",
  "date_created",
  "deactivated",
  "is_system_bot_realm",
  "authentication_methods",
  "uuid",
  "uuid_owner_secret",
];
const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const ALNUM64 = /^[A-Za-z0-9]{64}$/;

class FakePushService {
  readonly servers = new Map<string, Registration>();
  readonly received: Received[] = [];
  /** Per realm uuid: what the service answers about push notifications. */
  readonly pushStatus = new Map<string, { can_push: boolean; expected_end_timestamp: number | null }>();
  /** Answer the next request(s) to a path with this instead of the real behaviour. */
  readonly overrides = new Map<string, Override>();
  redis: RedisClient | null = null;
  private issued = new Map<string, { secret: string; at: number }>();
  private server!: http.Server;
  private sockets = new Set<net.Socket>();
  url = "";

  static async start(): Promise<FakePushService> {
    const f = new FakePushService();
    f.server = http.createServer((req, res) => void f.handle(req, res));
    f.server.on("connection", (s) => {
      f.sockets.add(s);
      s.on("close", () => f.sockets.delete(s));
    });
    await new Promise<void>((r) => f.server.listen(0, "127.0.0.1", r));
    f.url = `http://127.0.0.1:${(f.server.address() as net.AddressInfo).port}`;
    return f;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  register(r: Partial<Registration> & { uuid: string; api_key: string; hostname?: string }): Registration {
    const reg: Registration = {
      hostname: HOSTNAME,
      contact_email: CONTACT,
      deactivated: false,
      last_realmauditlog_id: 0,
      realms: new Map(),
      ...r,
    };
    this.servers.set(reg.uuid, reg);
    return reg;
  }

  paths(): string[] {
    return this.received.map((r) => `${r.method} ${r.path}`);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    const url = new URL(req.url ?? "/", "http://x");
    const contentType = req.headers["content-type"];
    let auth: Received["auth"] = null;
    const h = req.headers.authorization;
    if (h?.startsWith("Basic ")) {
      const decoded = Buffer.from(h.slice(6), "base64").toString("utf8");
      const i = decoded.indexOf(":");
      auth = { role: decoded.slice(0, i), key: decoded.slice(i + 1) };
    }
    const rec: Received = { method: req.method ?? "", path: url.pathname, contentType, userAgent: req.headers["user-agent"], auth, body };
    if (contentType?.startsWith("application/x-www-form-urlencoded")) rec.form = Object.fromEntries(new URLSearchParams(body));
    if (contentType?.startsWith("application/json")) rec.json = JSON.parse(body);
    this.received.push(rec);

    const override = this.overrides.get(url.pathname);
    if (override) {
      this.overrides.delete(url.pathname);
      if (override === "hang") return; // never answer
      if (override === "close") {
        req.socket.destroy();
        return;
      }
      res.writeHead(override.status, { "Content-Type": override.contentType ?? "application/json" });
      res.end(override.body);
      return;
    }
    const send = (status: number, data: Record<string, unknown>) => {
      res.writeHead(status, { "Content-Type": "application/json" });
      res.end(JSON.stringify(data));
    };
    const ok = (data: Record<string, unknown> = {}) => send(200, { result: "success", msg: "", ...data });
    const err = (msg: string, code = "BAD_REQUEST", status = 400, extra: Record<string, unknown> = {}) =>
      send(status, { result: "error", msg, code, ...extra });
    try {
      const p = url.pathname;
      if (p === "/api/v1/remotes/server/register") return this.registerView(req, rec, ok, err);
      if (p === "/api/v1/remotes/server/register/transfer") return this.transferView(req, rec, ok, err);
      if (p === "/api/v1/remotes/server/register/verify_challenge") return await this.verifyView(rec, ok, err);
      if (p.startsWith("/api/v1/remotes/")) {
        // authenticated_remote_server_view
        if (!auth) return err("Missing authorization header", "UNAUTHORIZED", 401);
        if (auth.role.includes("@")) return err("Must validate with valid Zulip server API key");
        const server = this.servers.get(auth.role);
        if (!server) {
          return err(`Zulip server auth failure: ${auth.role} is not registered -- did you run \`manage.py register_server\`?`, "UNAUTHORIZED", 401);
        }
        if (server.api_key !== auth.key) return err(`Zulip server auth failure: key does not match role ${auth.role}`, "UNAUTHORIZED", 401);
        if (server.deactivated) {
          return err("The mobile push notification service registration for your server has been deactivated", "UNAUTHORIZED", 401);
        }
        if (p === "/api/v1/remotes/server/deactivate" && req.method === "POST") {
          server.deactivated = true;
          return ok();
        }
        if (p === "/api/v1/remotes/server/analytics/status" && req.method === "GET") {
          return ok({ last_realm_count_id: 0, last_installation_count_id: 0, last_realmauditlog_id: server.last_realmauditlog_id });
        }
        if (p === "/api/v1/remotes/server/analytics" && req.method === "POST") return this.analyticsView(server, rec, ok, err);
      }
      return err("Not found", "BAD_REQUEST", 404);
    } catch (e: any) {
      res.writeHead(500, { "Content-Type": "text/plain" });
      res.end(`fake service crashed: ${e?.stack ?? e}`);
    }
  }

  private requireForm(req: http.IncomingMessage, rec: Received, names: string[], err: (m: string, c?: string) => void): Record<string, string> | null {
    if (req.method !== "POST") {
      err("This endpoint requires HTTP POST");
      return null;
    }
    const form = rec.form ?? {};
    for (const n of names) {
      if (form[n] === undefined) {
        err(`Missing '${n}' argument`, "REQUEST_VARIABLE_MISSING");
        return null;
      }
    }
    return form;
  }

  private validHostname(hostname: string): boolean {
    return /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::\d{1,5})?$/.test(hostname);
  }

  private registerView(req: http.IncomingMessage, rec: Received, ok: (d?: any) => void, err: (m: string, c?: string, s?: number, x?: any) => void): void {
    if (rec.auth) return err("register is unauthenticated: credentials belong in the form body");
    const f = this.requireForm(req, rec, ["zulip_org_id", "zulip_org_key", "hostname", "contact_email"], err);
    if (!f) return;
    if (f.zulip_org_id.length !== 36) return err("zulip_org_id is not length 36");
    if (f.zulip_org_key.length !== 64) return err("zulip_org_key is not length 64");
    if (f.new_org_key !== undefined && f.new_org_key.length !== 64) return err("new_org_key is not length 64");
    if (f.hostname.length > 128) return err("hostname is too long");
    if (!this.validHostname(f.hostname)) return err(`${f.hostname} is not a valid hostname`);
    if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(f.contact_email)) return err("Enter a valid email address.");
    const domain = f.contact_email.split("@")[1]!.toLowerCase();
    if (domain === "mailinator.com") return err("Please use your real email address.");
    if (domain === "example.com") return err("Invalid email address.");
    if (domain.endsWith(".nomx")) return err(`${domain} is invalid because it does not have any MX records`);
    if (!UUID4.test(f.zulip_org_id)) return err("Invalid UUID");
    const existing = this.servers.get(f.zulip_org_id);
    if (existing) {
      if (existing.api_key !== f.zulip_org_key) return err(`Zulip server auth failure: key does not match role ${f.zulip_org_id}`, "INVALID_ZULIP_SERVER");
      if (existing.deactivated) {
        return err("The mobile push notification service registration for your server has been deactivated", "REALM_DEACTIVATED", 401);
      }
    }
    if (!existing && [...this.servers.values()].some((s) => s.hostname === f.hostname)) {
      return err(`A server with hostname ${f.hostname} already exists`, "HOSTNAME_ALREADY_IN_USE_BOUNCER_ERROR", 400, { hostname: f.hostname });
    }
    if (!existing) {
      this.register({ uuid: f.zulip_org_id, api_key: f.zulip_org_key, hostname: f.hostname, contact_email: f.contact_email });
      return ok({ created: true });
    }
    existing.hostname = f.hostname;
    existing.contact_email = f.contact_email;
    if (f.new_org_key !== undefined) existing.api_key = f.new_org_key;
    return ok({ created: false });
  }

  private transferView(req: http.IncomingMessage, rec: Received, ok: (d?: any) => void, err: (m: string) => void): void {
    const f = this.requireForm(req, rec, ["hostname"], err);
    if (!f) return;
    if (!this.validHostname(f.hostname)) return err(`${f.hostname} is not a valid hostname`);
    if (![...this.servers.values()].some((s) => s.hostname === f.hostname)) return err(`${f.hostname} not yet registered`);
    const secret = crypto.randomBytes(24).toString("hex");
    this.issued.set(f.hostname, { secret, at: Date.now() });
    ok({ verification_secret: secret });
  }

  /** The service fetches https://<hostname>/api/v1/zulip-services/verify/<token>/ from the Zulip
   * server, which answers from Redis; here we read that Redis key directly, like the view does. */
  private async verifyView(rec: Received, ok: (d?: any) => void, err: (m: string, c?: string) => void): Promise<void> {
    const f = rec.form ?? {};
    if (f.hostname === undefined) return err("Missing 'hostname' argument", "REQUEST_VARIABLE_MISSING");
    if (f.access_token === undefined) return err("Missing 'access_token' argument", "REQUEST_VARIABLE_MISSING");
    const server = [...this.servers.values()].find((s) => s.hostname === f.hostname);
    if (!server) return err("Registration not found for this hostname");
    const stored = this.redis ? await this.redis.get(TRANSFER_KEY) : null;
    const data = stored ? JSON.parse(stored) : null;
    if (!data || data.access_token !== f.access_token) return err("The host reported it has no verification secret.");
    const issued = this.issued.get(f.hostname);
    if (!issued || issued.secret !== data.verification_secret || Date.now() - issued.at > 10_000) {
      return err("The verification secret is invalid");
    }
    const newKey = Array.from(crypto.randomBytes(64), (b) => "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[b % 62]).join("");
    server.api_key = newKey;
    ok({ zulip_org_id: server.uuid, zulip_org_key: newKey });
  }

  private analyticsView(server: Registration, rec: Received, ok: (d?: any) => void, err: (m: string) => void): void {
    const f = rec.form ?? {};
    for (const n of ["realm_counts", "installation_counts"]) if (f[n] === undefined) return err(`Missing '${n}' argument`);
    const parse = (n: string) => (f[n] === undefined ? undefined : JSON.parse(f[n]!));
    const auditRows = parse("realmauditlog_rows") as any[] | undefined;
    const realms = parse("realms") as any[] | undefined;
    let last = server.last_realmauditlog_id;
    for (const row of auditRows ?? []) {
      if (!SYNCED_BILLING_EVENTS.includes(row.event_type)) return err("Invalid event type.");
      if (row.id <= last) return err("Data is out of order.");
      last = row.id;
    }
    for (const realm of realms ?? []) {
      const keys = Object.keys(realm);
      const extra = keys.filter((k) => !REALM_FIELDS.includes(k));
      if (extra.length) return err(`realms: extra field ${extra[0]}`);
      for (const k of ["id", "host", "url", "date_created", "deactivated", "uuid", "uuid_owner_secret"]) {
        if (!keys.includes(k)) return err(`realms: missing field ${k}`);
      }
      if (!UUID4.test(realm.uuid)) return err("realms: invalid uuid");
      if (![0, 10, 20, 30, 35, 40, 50, 60, 70, 80, 90, 100, 1000].includes(realm.org_type ?? 0)) return err("Not a valid org_type value");
    }
    server.last_realmauditlog_id = last;
    server.last_version = parse("version") ?? null;
    server.last_merge_base = parse("merge_base") ?? null;
    server.last_api_feature_level = parse("api_feature_level") ?? null;
    const answer: Record<string, unknown> = {};
    for (const realm of realms ?? []) {
      server.realms.set(realm.uuid, realm);
      answer[realm.uuid] = this.pushStatus.get(realm.uuid) ?? { can_push: true, expected_end_timestamp: null };
    }
    ok({ realms: answer });
  }
}

// ---------------------------------------------------------------------------------------------
// Configuration directory (harness makeConfDir) and the CLI run with the harness environment

interface Env {
  conf: ConfDir;
  confDir: string;
  deployDir: string;
  secretsPath: string;
  /** zulip-secrets.conf as written, comments included. */
  secretsText: string;
}

interface ConfOptions {
  servicesUrl?: string | null;
  /** ZULIP_SERVICE_PUSH_NOTIFICATIONS; null: not set at all. */
  push?: boolean | null;
  secrets?: Record<string, string | null>;
  extraSettings?: string;
  redis?: RedisInstance;
}

function makeEnv(svc: FakePushService, opts: ConfOptions = {}): Env {
  const servicesUrl = opts.servicesUrl === undefined ? svc.url : opts.servicesUrl;
  const lines: string[] = [];
  if (opts.push !== null) lines.push(`ZULIP_SERVICE_PUSH_NOTIFICATIONS = ${opts.push === false ? "False" : "True"}`);
  if (servicesUrl === null) lines.push("ZULIP_SERVICES_URL = None");
  else lines.push(`ZULIP_SERVICES_URL = "${servicesUrl}"`);
  if (opts.extraSettings) lines.push(opts.extraSettings);
  // The secrets file with comments and a blank line, to see that updates keep them.
  const secrets: Record<string, string | null> = {
    ...defaultSecrets(),
    zulip_org_key: ORG_KEY,
    zulip_org_id: ORG_ID,
    redis_password: opts.redis?.password ?? null,
    // The run's RabbitMQ (settings.py points at this file's vhost), for the realm update events.
    rabbitmq_password: rabbitSettings().password,
    ...opts.secrets,
  };
  let secretsText = "# Secrets for this Zulip server\n[secrets]\n";
  for (const [k, v] of Object.entries(secrets)) if (v !== null) secretsText += `${k} = ${v}\n`;
  secretsText += "\n# keep this comment\n";
  const conf = makeConfDir({
    externalHost: HOSTNAME,
    administrator: CONTACT,
    extraSettings: lines.join("\n"),
    redis: opts.redis,
    secrets: secretsText,
  });
  fs.writeFileSync(path.join(conf.deployDir, "version.py"), 'ZULIP_VERSION = "12.2"\nAPI_FEATURE_LEVEL = 417\n');
  fs.writeFileSync(path.join(conf.deployDir, "zulip-git-version"), "12.2\n12.2\n");
  return { conf, confDir: conf.dir, deployDir: conf.deployDir, secretsPath: conf.secretsPath, secretsText };
}

interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** The CLI with the harness's environment (cliEnv), keeping final newlines to compare output exactly. */
async function runCli(e: Env, args: string[], opts: { env?: Record<string, string | undefined>; input?: string } = {}): Promise<RunResult> {
  const t0 = Date.now();
  const r = await execa(process.execPath, [CLI_BIN, ...args], {
    env: cliEnv({ confDir: e.conf, db, env: opts.env }),
    extendEnv: false,
    reject: false,
    input: opts.input ?? "",
    stripFinalNewline: false,
    timeout: 45_000,
  });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), ms: Date.now() - t0 };
}

async function propertyAudits(db: TestDatabase): Promise<any[]> {
  return db.query(
    "SELECT id, realm_id, acting_user_id, extra_data FROM zerver_realmauditlog WHERE event_type = 207 AND extra_data->>'property' LIKE 'push_notifications%' ORDER BY id",
  );
}

// ---------------------------------------------------------------------------------------------

let redis: RedisInstance;
let redisClient: RedisClient;
let db: TestDatabase;
let svc: FakePushService;
const envs: Env[] = [];

beforeAll(async () => {
  if (!cliBuilt()) throw new Error("run `npm run build` before the CLI tests");
  await prepareTemplate("zulip12_fresh");
  redis = await startRedis();
  redisClient = await redis.connect();
}, 120_000);

afterAll(async () => {
  await redisClient?.close();
  await redis?.stop();
});

beforeEach(async () => {
  db = await createDatabase({ template: "zulip12_fresh" });
  svc = await FakePushService.start();
  svc.redis = redisClient;
});

afterEach(async () => {
  await svc.stop();
  await db.drop();
  for (const e of envs.splice(0)) e.conf.cleanup();
});

function setup(opts: ConfOptions = {}): Env {
  const e = makeEnv(svc, opts);
  envs.push(e);
  return e;
}

const NO_CACHE = ["--flush-cache", "none"];

describe("register_server: registration", () => {
  it("registers a new server: form POST without auth, then the data upload with Basic auth, then stores push status", async () => {
    const e = setup();
    const realms = await db.query(
      "SELECT id, string_id, uuid::text AS uuid, uuid_owner_secret, name, org_type, deactivated, EXTRACT(EPOCH FROM date_created)::float8 AS created FROM zerver_realm ORDER BY id",
    );
    const synced = await db.query(
      "SELECT id, realm_id, event_type, backfilled, extra_data, EXTRACT(EPOCH FROM event_time)::float8 AS t FROM zerver_realmauditlog WHERE event_type = ANY($1) ORDER BY id",
      [SYNCED_BILLING_EVENTS],
    );
    expect(synced.length).toBeGreaterThan(0);
    const auditsBefore = await propertyAudits(db);

    const r = await runCli(e, ["register_server", "--agree-to-terms-of-service", ...NO_CACHE]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toBe(
      "This command registers your server for the Mobile Push Notifications Service.\n" +
        "Doing so will share basic metadata with the service's maintainers:\n\n" +
        `* This server's configured hostname: ${HOSTNAME}\n` +
        `* This server's configured contact email address: ${CONTACT}\n` +
        "* Metadata about each organization hosted by the server; see:\n\n" +
        "    <https://zulip.com/doc-permalinks/basic-metadata>\n\n" +
        "Use of this service is governed by the Zulip Terms of Service:\n\n" +
        "    <https://zulip.com/policies/terms>\n\n" +
        "Your server is now registered for the Mobile Push Notification Service!\n" +
        "Return to the documentation for next steps.\n",
    );
    expect(svc.paths()).toEqual([
      "POST /api/v1/remotes/server/register",
      "GET /api/v1/remotes/server/analytics/status",
      "POST /api/v1/remotes/server/analytics",
    ]);
    const [reg, status, upload] = svc.received;
    expect(reg!.auth).toBeNull();
    expect(reg!.contentType).toBe("application/x-www-form-urlencoded");
    expect(reg!.userAgent).toBe("ZulipServer/12.2");
    expect(reg!.form).toEqual({ zulip_org_id: ORG_ID, zulip_org_key: ORG_KEY, hostname: HOSTNAME, contact_email: CONTACT });
    expect(status!.auth).toEqual({ role: ORG_ID, key: ORG_KEY });
    expect(status!.body).toBe("");
    expect(upload!.auth).toEqual({ role: ORG_ID, key: ORG_KEY });
    expect(upload!.contentType).toBe("application/x-www-form-urlencoded");
    const form = upload!.form!;
    expect(Object.keys(form)).toEqual(["realm_counts", "installation_counts", "realmauditlog_rows", "realms", "version", "merge_base", "api_feature_level"]);
    expect(form.realm_counts).toBe("[]");
    expect(form.installation_counts).toBe("[]");
    expect(JSON.parse(form.version!)).toBe("12.2");
    expect(JSON.parse(form.merge_base!)).toBe("12.2");
    expect(JSON.parse(form.api_feature_level!)).toBe(417);

    const sentRows = JSON.parse(form.realmauditlog_rows!);
    expect(sentRows.map((x: any) => x.id)).toEqual(synced.map((x) => Number(x.id)));
    expect(Object.keys(sentRows[0])).toEqual(["id", "realm", "event_time", "backfilled", "extra_data", "event_type"]);
    for (const [i, row] of sentRows.entries()) {
      expect(row.realm).toBe(synced[i]!.realm_id);
      expect(row.event_type).toBe(synced[i]!.event_type);
      expect(row.extra_data).toEqual(synced[i]!.extra_data);
      expect(row.event_time).toBeCloseTo(synced[i]!.t, 5);
    }

    const sentRealms = JSON.parse(form.realms!);
    expect(sentRealms.map((x: any) => Object.keys(x))).toEqual(realms.map(() => REALM_FIELDS));
    expect(sentRealms.map((x: any) => x.uuid)).toEqual(realms.map((x) => x.uuid));
    expect(sentRealms.map((x: any) => x.uuid_owner_secret)).toEqual(realms.map((x) => x.uuid_owner_secret));
    const internal = sentRealms.find((x: any) => x.is_system_bot_realm);
    expect(internal).toMatchObject({ host: `zulipinternal.${HOSTNAME}`, url: `https://zulipinternal.${HOSTNAME}`, deactivated: false });
    const root = sentRealms.find((x: any) => x.id === realms.find((y) => y.string_id === "")!.id);
    expect(root).toMatchObject({ host: HOSTNAME, url: `https://${HOSTNAME}`, is_system_bot_realm: false });
    // Only the server-enabled backend (EmailAuthBackend) is listed, as authentication_methods_dict() does.
    for (const x of sentRealms) expect(Object.keys(x.authentication_methods)).toEqual(["Email"]);
    expect(root.date_created).toBeCloseTo(realms.find((y) => y.string_id === "")!.created, 5);

    // The service answered can_push=true for every realm: stored with one audit row each.
    const after = await db.query("SELECT id, push_notifications_enabled, push_notifications_enabled_end_timestamp FROM zerver_realm ORDER BY id");
    expect(after.every((x) => x.push_notifications_enabled === true && x.push_notifications_enabled_end_timestamp === null)).toBe(true);
    const audits = (await propertyAudits(db)).slice(auditsBefore.length);
    expect(audits.map((a) => [a.realm_id, a.acting_user_id, a.extra_data])).toEqual(
      realms.map((x) => [x.id, null, { "1": false, "2": true, property: "push_notifications_enabled" }]),
    );
    // The service now has the registration; the secrets file is untouched.
    expect(svc.servers.get(ORG_ID)).toMatchObject({ hostname: HOSTNAME, contact_email: CONTACT, api_key: ORG_KEY, last_version: "12.2" });
    expect(fs.readFileSync(e.secretsPath, "utf8")).toBe(e.secretsText);
    expect(r.stdout + r.stderr).not.toContain(ORG_KEY);
  });

  it("re-registers an existing server: updated message, only new audit rows sent, changed push status stored once", async () => {
    const e = setup();
    svc.register({ uuid: ORG_ID, api_key: ORG_KEY, contact_email: "old@example.org" });
    const first = await runCli(e, ["register_server", "--agree-to-terms-of-service", ...NO_CACHE]);
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stdout).toContain("Mobile Push Notification Service registration successfully updated!\n");
    expect(first.stdout).not.toContain("now registered");
    expect(svc.servers.get(ORG_ID)!.contact_email).toBe(CONTACT);
    const lastAcked = svc.servers.get(ORG_ID)!.last_realmauditlog_id;
    expect(lastAcked).toBeGreaterThan(0);

    // A new billing event and a changed answer for one realm.
    const [root] = await db.query("SELECT id, uuid::text AS uuid FROM zerver_realm WHERE string_id = ''");
    await db.query(
      'INSERT INTO zerver_realmauditlog (event_time, backfilled, extra_data, event_type, realm_id) VALUES (now(), false, \'{"10": {"11": {"100": 1}, "12": 0}}\', 105, $1)',
      [root!.id],
    );
    const [{ max: newId }] = await db.query("SELECT max(id)::int AS max FROM zerver_realmauditlog");
    svc.pushStatus.set(root!.uuid, { can_push: false, expected_end_timestamp: 1900000000 });
    const auditsBefore = (await propertyAudits(db)).length;
    svc.received.length = 0;

    const second = await runCli(e, ["register_server", "--agree-to-terms-of-service", ...NO_CACHE]);
    expect(second.exitCode, second.stderr).toBe(0);
    const upload = svc.received.find((x) => x.path === "/api/v1/remotes/server/analytics")!;
    expect(JSON.parse(upload.form!.realmauditlog_rows!).map((x: any) => x.id)).toEqual([newId]);
    const [stored] = await db.query(
      "SELECT push_notifications_enabled, EXTRACT(EPOCH FROM push_notifications_enabled_end_timestamp)::int AS ts FROM zerver_realm WHERE id = $1",
      [root!.id],
    );
    expect(stored).toEqual({ push_notifications_enabled: false, ts: 1900000000 });
    const audits = (await propertyAudits(db)).slice(auditsBefore);
    expect(audits.map((a) => [a.realm_id, a.extra_data])).toEqual([
      [root!.id, { "1": true, "2": false, property: "push_notifications_enabled" }],
      [root!.id, { "1": null, "2": 1900000000, property: "push_notifications_enabled_end_timestamp" }],
    ]);

    // Nothing changes the third time: no new audit rows.
    const third = await runCli(e, ["register_server", "--agree-to-terms-of-service", ...NO_CACHE]);
    expect(third.exitCode, third.stderr).toBe(0);
    expect((await propertyAudits(db)).length).toBe(auditsBefore + 2);
  });

  it("reports what was sent and answered with --json, without any secret", async () => {
    const e = setup();
    const r = await runCli(e, ["register_server", "--agree-to-terms-of-service", "--json", ...NO_CACHE]);
    expect(r.exitCode, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(schemaErrors("register_server", doc)).toBeNull();
    expect(doc).toMatchObject({ ok: true, exit_code: 0, action: "register", created: true, hostname: HOSTNAME, contact_email: CONTACT, secrets_updated: [] });
    expect(doc.requests.map((x: any) => `${x.method} ${x.path} ${x.status}`)).toEqual([
      "POST /api/v1/remotes/server/register 200",
      "GET /api/v1/remotes/server/analytics/status 200",
      "POST /api/v1/remotes/server/analytics 200",
    ]);
    expect(doc.requests[0].sent).toEqual({ zulip_org_id: ORG_ID, zulip_org_key: "(secret, not shown)", hostname: HOSTNAME, contact_email: CONTACT });
    expect(doc.requests[0].answer).toEqual({ result: "success", msg: "", created: true });
    expect(doc.requests[2].sent.realms.every((x: any) => x.uuid_owner_secret === "(secret, not shown)")).toBe(true);
    const changed = doc.server_data.realm_changes.flatMap((c: any) =>
      [c.push_notifications_enabled, c.push_notifications_enabled_end_at].filter((x) => x !== null),
    );
    expect(changed).toHaveLength(2);
    for (const c of doc.server_data.realm_changes) expect(Object.keys(c.realm)).toEqual(["id", "string_id", "name", "url"]);
    const secrets = (await db.query("SELECT uuid_owner_secret FROM zerver_realm")).map((x) => x.uuid_owner_secret);
    for (const s of [ORG_KEY, ...secrets]) expect(r.stdout).not.toContain(s);
  });
});

describe.each(["zulip12_fresh", "zulip11_fresh", "zulip10_fresh"] as TemplateName[])("register_server: realm update events on %s", (template) => {
  let reader: QueueReader;
  beforeAll(async () => {
    reader = await QueueReader.open();
  });
  afterAll(async () => {
    await reader?.close();
  });
  const activeIds = async (realmId: number) =>
    (await db.query("SELECT id FROM zerver_userprofile WHERE realm_id = $1 AND is_active ORDER BY id", [realmId])).map((r: any) => Number(r.id));
  const update = (property: string, value: unknown) => ({ type: "realm", op: "update", property, value });

  it("sends do_set_realm_property's and do_set_push_notifications_enabled_end_timestamp's updates for what changed, to each realm's active users", async () => {
    await db.drop();
    db = await createDatabase({ template });
    await reader.purge("notify_tornado", "deferred_work");
    const e = setup();
    const realms = await db.query("SELECT id, uuid::text AS uuid, string_id FROM zerver_realm ORDER BY id");
    expect(realms.length).toBe(2);

    // First upload: every realm can push now (was false): one push_notifications_enabled update each.
    const first = await runCli(e, ["register_server", "--agree-to-terms-of-service", "--json", ...NO_CACHE]);
    expect(first.exitCode, first.stderr).toBe(0);
    const expected = [];
    for (const r of realms) expected.push({ event: update("push_notifications_enabled", true), users: await activeIds(Number(r.id)) });
    expect(sortedUsers(await reader.drain())).toEqual(expected);
    expect(JSON.parse(first.stdout).server_data.events).toMatchObject({ transport: "rabbitmq", published: 2, jobs: 0, ok: true });

    // One realm loses push with an end date: both properties, in Zulip's order.
    const root = realms.find((r) => r.string_id === "")!;
    svc.pushStatus.set(root.uuid, { can_push: false, expected_end_timestamp: 1900000000 });
    const second = await runCli(e, ["register_server", "--agree-to-terms-of-service", ...NO_CACHE]);
    expect(second.exitCode, second.stderr).toBe(0);
    const users = await activeIds(Number(root.id));
    expect(users.length).toBeGreaterThan(0);
    expect(sortedUsers(await reader.drain())).toEqual([
      { event: update("push_notifications_enabled", false), users },
      { event: update("push_notifications_enabled_end_timestamp", 1900000000), users },
    ]);

    // The end date goes away: only that property.
    svc.pushStatus.set(root.uuid, { can_push: false, expected_end_timestamp: null });
    expect((await runCli(e, ["register_server", "--agree-to-terms-of-service", ...NO_CACHE])).exitCode).toBe(0);
    expect(sortedUsers(await reader.drain())).toEqual([{ event: update("push_notifications_enabled_end_timestamp", null), users }]);

    // Nothing changed: nothing sent, and "events" null.
    const same = await runCli(e, ["register_server", "--agree-to-terms-of-service", "--json", ...NO_CACHE]);
    expect(same.exitCode).toBe(0);
    expect(JSON.parse(same.stdout).server_data.events).toBeNull();
    expect(await reader.drain()).toEqual([]);
    expect(await reader.drain("deferred_work")).toEqual([]);
  });

  it("maybe_mark_pushes_disabled after a 4xx: the same update for every realm that could push", async () => {
    await db.drop();
    db = await createDatabase({ template });
    await reader.purge("notify_tornado");
    const e = setup({ redis });
    svc.overrides.set("/api/v1/remotes/server/analytics/status", {
      status: 401,
      body: JSON.stringify({ result: "error", msg: "nope", code: "UNAUTHORIZED" }),
    });
    const [internal] = await db.query("SELECT id FROM zerver_realm WHERE string_id = 'zulipinternal'");
    await db.query("UPDATE zerver_realm SET push_notifications_enabled = true WHERE id = $1", [internal.id]);
    await redisClient.del("push_notifications_recently_working_ts");
    const r = await runCli(e, ["register_server", "--agree-to-terms-of-service", ...NO_CACHE]);
    expect(r.exitCode).toBe(1);
    expect(sortedUsers(await reader.drain())).toEqual([{ event: update("push_notifications_enabled", false), users: await activeIds(Number(internal.id)) }]);
  });
});

describe("register_server: --rotate-key", () => {
  it("sends new_org_key, stores it in place (mode and other lines kept) and uploads with the new key", async () => {
    const e = setup();
    svc.register({ uuid: ORG_ID, api_key: ORG_KEY });
    const r = await runCli(e, ["register_server", "--rotate-key", ...NO_CACHE]);
    expect(r.exitCode, r.stderr).toBe(0);
    const reg = svc.received[0]!;
    expect(reg.path).toBe("/api/v1/remotes/server/register");
    const newKey = reg.form!.new_org_key!;
    expect(newKey).toMatch(ALNUM64);
    expect(newKey).not.toBe(ORG_KEY);
    expect(svc.servers.get(ORG_ID)!.api_key).toBe(newKey);
    // The secrets file: only zulip_org_key changed; mode kept.
    expect(fs.readFileSync(e.secretsPath, "utf8")).toBe(e.secretsText.replace(`zulip_org_key = ${ORG_KEY}`, `zulip_org_key = ${newKey}`));
    expect(fs.statSync(e.secretsPath).mode & 0o7777).toBe(0o640);
    // The upload authenticated with the new key (the old one no longer works).
    expect(svc.received.slice(1).map((x) => x.auth)).toEqual([
      { role: ORG_ID, key: newKey },
      { role: ORG_ID, key: newKey },
    ]);
    expect(r.stdout).toContain(`Success! Updating ${e.secretsPath} with the new key...\n`);
    expect(r.stdout).toMatch(/registration successfully updated!\n$/);
    expect(r.stdout).not.toContain("Do you want to agree");
    expect(r.stdout + r.stderr).not.toContain(newKey);
  });

  it.skipIf(!isRoot)(
    "refuses before contacting the service when the secrets file is not writable (CLI running as another user; needs root to switch users)",
    async () => {
      const e = setup();
      svc.register({ uuid: ORG_ID, api_key: ORG_KEY });
      // The CLI switches from root to the owner of the deployment directory ('nobody'), which can
      // read but not write the root-owned secrets file.
      fs.chownSync(e.deployDir, 65534, 65534);
      fs.chmodSync(e.secretsPath, 0o644);
      const r = await runCli(e, ["register_server", "--rotate-key", ...NO_CACHE], { env: { ZULIP_MANAGE_ALLOW_ROOT: "" } });
      expect(r.stderr).toContain("running as 'nobody'");
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(`${e.secretsPath} is not writable by the current user.`);
      expect(svc.received).toEqual([]);
      expect(fs.readFileSync(e.secretsPath, "utf8")).toBe(e.secretsText);
    },
  );

  it("refuses before contacting the service when the secrets file's directory is read-only", async () => {
    const e = setup();
    svc.register({ uuid: ORG_ID, api_key: ORG_KEY });
    // Root may write anywhere: as root the CLI switches to the deployment's owner ('nobody'),
    // who owns the secrets file too but cannot replace it in its read-only directory.
    if (isRoot) for (const p of [e.deployDir, e.confDir, e.secretsPath]) fs.chownSync(p, 65534, 65534);
    fs.chmodSync(e.confDir, 0o555);
    const r = await runCli(e, ["register_server", "--rotate-key", ...NO_CACHE], isRoot ? { env: { ZULIP_MANAGE_ALLOW_ROOT: "" } } : {});
    fs.chmodSync(e.confDir, 0o755);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`${e.secretsPath} is not writable by the current user.`);
    expect(svc.received).toEqual([]);
  });
});

describe("register_server: --deactivate", () => {
  it("POSTs an empty JSON object with Basic auth", async () => {
    const e = setup();
    svc.register({ uuid: ORG_ID, api_key: ORG_KEY });
    const r = await runCli(e, ["register_server", "--deactivate"]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toBe("Mobile Push Notification Service registration successfully deactivated!\n");
    expect(svc.received.length).toBe(1);
    const [req] = svc.received;
    expect(req).toMatchObject({
      method: "POST",
      path: "/api/v1/remotes/server/deactivate",
      contentType: "application/json",
      body: "{}",
      auth: { role: ORG_ID, key: ORG_KEY },
      userAgent: "ZulipServer/12.2",
    });
    expect(svc.servers.get(ORG_ID)!.deactivated).toBe(true);
  });

  it("--json: the contract document, on success and on the service's refusal", async () => {
    const e = setup();
    const refused = await runCli(e, ["register_server", "--deactivate", "--json"]);
    expect(refused.exitCode).toBe(1);
    const failed = JSON.parse(refused.stdout);
    expect(schemaErrors("register_server", failed)).toBeNull();
    expect(failed).toMatchObject({ ok: false, exit_code: 1, action: "deactivate" });
    expect(failed.error).toContain("is not registered");
    expect(failed.requests[0]).toMatchObject({ path: "/api/v1/remotes/server/deactivate" });
    svc.register({ uuid: ORG_ID, api_key: ORG_KEY });
    const j = await runCli(e, ["register_server", "--deactivate", "--json"]);
    expect(j.exitCode, j.stderr).toBe(0);
    const doc = JSON.parse(j.stdout);
    expect(schemaErrors("register_server", doc)).toBeNull();
    expect(doc).toMatchObject({ ok: true, action: "deactivate", hostname: null, server_data: null, created: null });
    expect(doc.requests.map((x: any) => `${x.method} ${x.path} ${x.status}`)).toEqual(["POST /api/v1/remotes/server/deactivate 200"]);
  });

  it("reports the service's auth failure for an unregistered server", async () => {
    const e = setup();
    const r = await runCli(e, ["register_server", "--deactivate"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe(`Zulip server auth failure: ${ORG_ID} is not registered -- did you run \`manage.py register_server\`?\n`);
  });

  it("cannot be combined with --rotate-key (usage error)", async () => {
    const e = setup();
    const r = await runCli(e, ["register_server", "--deactivate", "--rotate-key"]);
    expect(r.exitCode).toBe(2);
    expect(svc.received).toEqual([]);
  });
});

describe("register_server: --registration-transfer", () => {
  it("answers the challenge through Redis, stores the new credentials, then updates the registration", async () => {
    const e = setup({ redis });
    // An old installation registered this hostname under another id.
    svc.register({ uuid: OTHER_ID, api_key: "o".repeat(64) });
    const r = await runCli(e, ["register_server", "--registration-transfer", "--agree-to-terms-of-service", ...NO_CACHE]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(svc.paths()).toEqual([
      "POST /api/v1/remotes/server/register/transfer",
      "POST /api/v1/remotes/server/register/verify_challenge",
      "POST /api/v1/remotes/server/register",
      "GET /api/v1/remotes/server/analytics/status",
      "POST /api/v1/remotes/server/analytics",
    ]);
    const [transfer, verify, reg] = svc.received;
    expect(transfer!.form).toEqual({ hostname: HOSTNAME });
    expect(verify!.form!.hostname).toBe(HOSTNAME);
    expect(verify!.form!.access_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const newKey = svc.servers.get(OTHER_ID)!.api_key;
    expect(newKey).toMatch(ALNUM64);
    // Stored, keeping everything else in the file.
    const expected = e.secretsText
      .replace(`zulip_org_key = ${ORG_KEY}`, `zulip_org_key = ${newKey}`)
      .replace(`zulip_org_id = ${ORG_ID}`, `zulip_org_id = ${OTHER_ID}`);
    expect(fs.readFileSync(e.secretsPath, "utf8")).toBe(expected);
    expect(fs.statSync(e.secretsPath).mode & 0o7777).toBe(0o640);
    // The registration update and the upload used the transferred credentials.
    expect(reg!.form).toMatchObject({ zulip_org_id: OTHER_ID, zulip_org_key: newKey });
    expect(svc.received[3]!.auth).toEqual({ role: OTHER_ID, key: newKey });
    // The challenge in Redis expires within 10 seconds.
    const ttl = await redisClient.ttl(TRANSFER_KEY);
    expect(ttl === -2 || (ttl > 0 && ttl <= 10)).toBe(true);
    expect(r.stdout).toContain(
      "Received a verification secret from the service. Preparing to serve it at the verification URL.\n" +
        "Sending ACK to the service and awaiting completion of verification...\n" +
        "Success! Updating secrets file with received credentials.\n" +
        "Mobile Push Notification Service registration successfully transferred.\n\n" +
        "Proceeding to update the registration with current metadata...\n" +
        "Mobile Push Notification Service registration successfully updated!\n\n" +
        `Make sure to restart the server next by running ${path.join(e.deployDir, "scripts", "restart-server")} so that the new credentials are reloaded.\n`,
    );
    expect(r.stdout + r.stderr).not.toContain(newKey);
  });

  it("stops before contacting the service when Redis cannot be reached", async () => {
    const e = setup({ redis, extraSettings: "REDIS_PORT = 1" });
    svc.register({ uuid: OTHER_ID, api_key: "o".repeat(64) });
    const r = await runCli(e, ["register_server", "--registration-transfer", "--agree-to-terms-of-service", ...NO_CACHE]);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/cannot connect to Redis at 127\.0\.0\.1:1/);
    expect(svc.received).toEqual([]);
  });

  it("reports the service's refusal when the challenge is not served (wrong Redis password)", async () => {
    const e = setup({ redis, secrets: { redis_password: "wrong" } });
    const r = await runCli(e, ["register_server", "--registration-transfer", "--agree-to-terms-of-service", ...NO_CACHE]);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toContain("refused the password (redis_password)");
    expect(r.stderr).not.toContain("wrong");
    expect(svc.received).toEqual([]);
  });
});

describe("register_server: errors", () => {
  it("network error", async () => {
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const e = setup({ servicesUrl: `http://127.0.0.1:${port}` });
    const r = await runCli(e, ["register_server", "--agree-to-terms-of-service", ...NO_CACHE]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr.split("\n")[0]).toBe(`Network error connecting to push notifications service (http://127.0.0.1:${port})`);
    expect(r.stderr).toContain("ECONNREFUSED");
  });

  it("hostname already in use: the explanatory box on stdout, exit 1", async () => {
    const e = setup();
    svc.register({ uuid: OTHER_ID, api_key: "o".repeat(64) });
    const r = await runCli(e, ["register_server", "--agree-to-terms-of-service", ...NO_CACHE]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toContain(
      "--------------------------------\n" +
        "The hostname is already in use by another server. If you control the hostname \n" +
        "and want to transfer the registration to this server, you can run manage.py register_server \n" +
        "with the --registration-transfer flag.\n" +
        "Note that this will invalidate old credentials if another server is still using them.\n\n" +
        "For more information, see: \n\n" +
        "<https://zulip.com/doc-permalinks/registration-transfer>\n",
    );
    expect(r.stderr).toBe("\n");
    expect(svc.paths()).toEqual(["POST /api/v1/remotes/server/register"]);
  });

  it("other service errors: the service's message", async () => {
    const e = setup({ extraSettings: "ZULIP_ADMINISTRATOR = 'someone@example.com'" });
    const r = await runCli(e, ["register_server", "--agree-to-terms-of-service", ...NO_CACHE]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe('Error received from the push notification service: "Invalid email address."\n');

    const e2 = setup();
    svc.register({ uuid: ORG_ID, api_key: "w".repeat(64) });
    const r2 = await runCli(e2, ["register_server", "--agree-to-terms-of-service", ...NO_CACHE]);
    expect(r2.exitCode).toBe(1);
    expect(r2.stderr).toBe(`Error received from the push notification service: "Zulip server auth failure: key does not match role ${ORG_ID}"\n`);
  });

  it("an HTML error page is reported like requests' HTTPError", async () => {
    const e = setup();
    svc.overrides.set("/api/v1/remotes/server/register", { status: 502, body: "<html>bad gateway</html>", contentType: "text/html" });
    const r = await runCli(e, ["register_server", "--agree-to-terms-of-service", ...NO_CACHE]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe(`502 Server Error: Bad Gateway for url: ${svc.url}/api/v1/remotes/server/register\n`);
  });

  it("a service that never answers times out instead of hanging", async () => {
    const e = setup();
    svc.overrides.set("/api/v1/remotes/server/register", "hang");
    const r = await runCli(e, ["register_server", "--agree-to-terms-of-service", "--timeout", "1", ...NO_CACHE]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`Network error connecting to push notifications service (${svc.url})`);
    expect(r.stderr).toContain("ReadTimeout: no answer within 1 s");
    expect(r.ms).toBeLessThan(15_000);
  });

  it("a failing data upload after registering is an error (5xx: push status left alone)", async () => {
    const e = setup();
    svc.overrides.set("/api/v1/remotes/server/analytics/status", { status: 503, body: "unavailable", contentType: "text/plain" });
    await db.query("UPDATE zerver_realm SET push_notifications_enabled = true");
    const r = await runCli(e, ["register_server", "--agree-to-terms-of-service", ...NO_CACHE]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe("Received 503 from push notification bouncer\n");
    const rows = await db.query("SELECT push_notifications_enabled FROM zerver_realm");
    expect(rows.every((x) => x.push_notifications_enabled)).toBe(true);
  });

  it("a 4xx from the status call marks push notifications disabled unless they worked recently (Redis)", async () => {
    const e = setup({ redis });
    svc.overrides.set("/api/v1/remotes/server/analytics/status", {
      status: 401,
      body: JSON.stringify({ result: "error", msg: "Zulip server auth failure: key does not match role x", code: "UNAUTHORIZED" }),
    });
    await db.query("UPDATE zerver_realm SET push_notifications_enabled = true");
    await redisClient.del("push_notifications_recently_working_ts");
    const r = await runCli(e, ["register_server", "--agree-to-terms-of-service", ...NO_CACHE]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe("Zulip server auth failure: key does not match role x\n");
    const rows = await db.query("SELECT push_notifications_enabled FROM zerver_realm");
    expect(rows.every((x) => !x.push_notifications_enabled)).toBe(true);

    // Recently working: left alone.
    await db.query("UPDATE zerver_realm SET push_notifications_enabled = true");
    await redisClient.set("push_notifications_recently_working_ts", String(Date.now() / 1000 - 60));
    svc.overrides.set("/api/v1/remotes/server/analytics/status", {
      status: 401,
      body: JSON.stringify({ result: "error", msg: "nope", code: "UNAUTHORIZED" }),
    });
    const r2 = await runCli(e, ["register_server", "--agree-to-terms-of-service", ...NO_CACHE]);
    expect(r2.exitCode).toBe(1);
    expect((await db.query("SELECT push_notifications_enabled FROM zerver_realm")).every((x) => x.push_notifications_enabled)).toBe(true);
    await redisClient.del("push_notifications_recently_working_ts");
  });

  it("--json on an error: the document says what failed", async () => {
    const e = setup();
    svc.register({ uuid: OTHER_ID, api_key: "o".repeat(64) });
    const r = await runCli(e, ["register_server", "--agree-to-terms-of-service", "--json", ...NO_CACHE]);
    expect(r.exitCode).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(schemaErrors("register_server", doc)).toBeNull();
    expect(doc).toMatchObject({ ok: false, exit_code: 1, error_code: "refused", action: "register", created: null, server_data: null });
    expect(doc.error).toContain("--registration-transfer");
    expect(doc.requests[0]).toMatchObject({ path: "/api/v1/remotes/server/register", status: 400 });
    expect(doc.requests[0].answer.code).toBe("HOSTNAME_ALREADY_IN_USE_BOUNCER_ERROR");
  });
});

describe("register_server: pre-checks and the Terms of Service question", () => {
  it("without a terminal and without --agree-to-terms-of-service: exit 1 naming the flag, nothing sent", async () => {
    const e = setup();
    const r = await runCli(e, ["register_server", ...NO_CACHE]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("standard input is not a terminal");
    expect(r.stderr).toContain("--agree-to-terms-of-service");
    expect(svc.received).toEqual([]);
  });

  it("on a terminal, answering 'n' registers nothing; answering Enter registers", async () => {
    const e = setup();
    const run = (answer: string) => {
      const cmd = [process.execPath, CLI_BIN, "register_server", ...NO_CACHE].map((x) => `'${x}'`).join(" ");
      return execa(requireTool("script"), ["-qec", `sleep 0.1; ${cmd}`, "/dev/null"], {
        env: { ...cliEnv({ confDir: e.conf, db }), TERM: "dumb" },
        extendEnv: false,
        reject: false,
        input: answer,
        timeout: 30_000,
      });
    };
    const no = await run("n\r");
    expect(no.exitCode).toBe(0);
    expect(String(no.stdout)).toContain("Do you want to agree to the Zulip Terms of Service and proceed?");
    expect(svc.received).toEqual([]);
    const yes = await run("\r");
    expect(yes.exitCode, String(yes.stdout)).toBe(0);
    expect(String(yes.stdout)).toContain("Your server is now registered");
    expect(svc.paths()[0]).toBe("POST /api/v1/remotes/server/register");
  });

  it("missing secrets, unset URL, push disabled: Zulip's messages", async () => {
    const cases: [ConfOptions, string][] = [
      [{ secrets: { zulip_org_id: null } }, "Missing zulip_org_id; run scripts/setup/generate_secrets.py to generate.\n"],
      [{ secrets: { zulip_org_key: null } }, "Missing zulip_org_key; run scripts/setup/generate_secrets.py to generate.\n"],
      [{ servicesUrl: null }, "ZULIP_SERVICES_URL is not set; was the default incorrectly overridden in /etc/zulip/settings.py?\n"],
      [{ push: false }, "Please set ZULIP_SERVICE_PUSH_NOTIFICATIONS to True in /etc/zulip/settings.py\n"],
    ];
    for (const [opts, message] of cases) {
      const e = setup(opts);
      const r = await runCli(e, ["register_server", "--agree-to-terms-of-service", ...NO_CACHE]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toBe(message);
    }
    expect(svc.received).toEqual([]);
  });

  it("legacy PUSH_NOTIFICATION_BOUNCER_URL enables push and is the service URL", async () => {
    const e = setup({ push: null, servicesUrl: null, extraSettings: `PUSH_NOTIFICATION_BOUNCER_URL = "${svc.url}"` });
    // Only the legacy setting: no ZULIP_SERVICE_* / ZULIP_SERVICES_URL lines at all.
    const settings = fs.readFileSync(e.conf.settingsPath, "utf8").replace(/^ZULIP_SERVICES_URL = None$/m, "");
    fs.writeFileSync(e.conf.settingsPath, settings);
    expect(settings).not.toMatch(/^ZULIP_SERVICE/m);
    const r = await runCli(e, ["register_server", "--agree-to-terms-of-service", ...NO_CACHE]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(svc.paths()[0]).toBe("POST /api/v1/remotes/server/register");
  });
});

describe("register_server: cache", () => {
  it("an unreachable memcached only warns: the push status is stored", async () => {
    const e = setup({ extraSettings: 'MEMCACHED_LOCATION = "127.0.0.1:1"' });
    const r = await runCli(e, ["register_server", "--agree-to-terms-of-service"]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/Warning: the database change is committed, but memcached .* could not be updated/);
    const rows = await db.query("SELECT push_notifications_enabled FROM zerver_realm");
    expect(rows.every((x) => x.push_notifications_enabled)).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// The library pieces the command is built from

/** A tiny HTTP proxy: absolute-form requests are forwarded, CONNECT opens a tunnel. */
async function startProxy(opts: { refuseConnect?: boolean } = {}) {
  const seen: { method: string; url: string; role: string | undefined }[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method ?? "", url: req.url ?? "", role: req.headers["x-smokescreen-role"] as string | undefined });
    const target = new URL(req.url ?? "");
    const fwd = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: target.pathname + target.search, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    req.pipe(fwd);
  });
  server.on("connect", (req, socket) => {
    seen.push({ method: "CONNECT", url: req.url ?? "", role: req.headers["x-smokescreen-role"] as string | undefined });
    if (opts.refuseConnect) {
      socket.end("HTTP/1.1 403 Forbidden\r\n\r\n");
      return;
    }
    const [host, port] = (req.url ?? "").split(":");
    const up = net.connect(Number(port), host, () => {
      socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      up.pipe(socket);
      socket.pipe(up);
    });
    up.on("error", () => socket.destroy());
    socket.on("error", () => up.destroy());
  });
  const sockets = new Set<net.Socket>();
  server.on("connection", (sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  const close = () =>
    new Promise<void>((r) => {
      for (const sock of sockets) sock.destroy();
      server.close(() => r());
    });
  return { port, seen, close };
}

describe("push-service library", () => {
  const version = { version: "12.2", mergeBase: "12.2", apiFeatureLevel: 417 };

  it("proxyFor: environment first (with no_proxy), then an explicit zulip.conf [http_proxy]", () => {
    const url = new URL("https://push.zulipchat.com/api/v1/remotes/server/register");
    const none = () => undefined;
    expect(proxyFor(url, {}, none)).toBeNull();
    expect(proxyFor(url, { https_proxy: "http://proxy.local:3128" }, none)).toMatchObject({ host: "proxy.local", port: 3128 });
    expect(proxyFor(url, { HTTPS_PROXY: "proxy.local:8080" }, none)).toMatchObject({ host: "proxy.local", port: 8080 });
    expect(proxyFor(url, { http_proxy: "http://only-http:1" }, none)).toBeNull();
    expect(proxyFor(url, { https_proxy: "http://p:1", no_proxy: "zulipchat.com" }, none)).toBeNull();
    expect(proxyFor(url, { https_proxy: "http://p:1", no_proxy: ".zulipchat.com" }, none)).toBeNull();
    expect(proxyFor(url, { https_proxy: "http://p:1", no_proxy: "example.com,*" }, none)).toBeNull();
    expect(proxyFor(url, { https_proxy: "http://p:1", no_proxy: "chat.com" }, none)).toMatchObject({ host: "p" });
    const conf = (s: string, k: string) => (s === "http_proxy" ? ({ host: "smokescreen", port: "4750" } as any)[k] : undefined);
    expect(proxyFor(url, {}, conf)).toMatchObject({ host: "smokescreen", port: 4750, origin: "zulip.conf [http_proxy]" });
    const emptyHost = (s: string, k: string) => (s === "http_proxy" ? ({ host: "", port: "4750" } as any)[k] : undefined);
    expect(proxyFor(url, {}, emptyHost)).toBeNull();
  });

  it("goes through an HTTP proxy with Zulip's Smokescreen role header", async () => {
    const proxy = await startProxy();
    try {
      const client = new PushServiceClient({
        servicesUrl: svc.url,
        orgId: ORG_ID,
        orgKey: ORG_KEY,
        version,
        proxy: () => ({ host: "127.0.0.1", port: proxy.port, origin: "test" }),
      });
      const answer = await client.postPublic("/api/v1/remotes/server/register", {
        zulip_org_id: ORG_ID,
        zulip_org_key: ORG_KEY,
        hostname: HOSTNAME,
        contact_email: CONTACT,
      });
      expect(answer).toEqual({ result: "success", msg: "", created: true });
      expect(proxy.seen).toEqual([{ method: "POST", url: `${svc.url}/api/v1/remotes/server/register`, role: "push_bouncer" }]);
      expect(svc.received[0]!.form!.hostname).toBe(HOSTNAME);
    } finally {
      await proxy.close();
    }
  });

  it("tunnels https through CONNECT (TLS is verified end to end) and reports a refusing proxy", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "zm-tls-"));
    const gen = await execa(
      requireTool("openssl"),
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "k.pem", "-out", "c.pem", "-days", "1", "-subj", "/CN=localhost"],
      { cwd: dir, reject: false },
    );
    expect(gen.exitCode, String(gen.stderr)).toBe(0);
    const https = await import("node:https");
    const tlsServer = https.createServer({ key: fs.readFileSync(path.join(dir, "k.pem")), cert: fs.readFileSync(path.join(dir, "c.pem")) }, (_req, res) =>
      res.end("{}"),
    );
    const tlsSockets = new Set<net.Socket>();
    tlsServer.on("connection", (sock: net.Socket) => {
      tlsSockets.add(sock);
      sock.on("close", () => tlsSockets.delete(sock));
    });
    await new Promise<void>((r) => tlsServer.listen(0, "127.0.0.1", r));
    const tlsPort = (tlsServer.address() as net.AddressInfo).port;
    const proxy = await startProxy();
    const refusing = await startProxy({ refuseConnect: true });
    try {
      const url = new URL(`https://localhost:${tlsPort}/api/v1/remotes/server/analytics/status`);
      const viaProxy = httpRequest({
        method: "GET",
        url,
        headers: {},
        timeoutMs: 5000,
        proxy: { host: "127.0.0.1", port: proxy.port, origin: "test" },
        proxyRole: "push_bouncer",
      });
      // The self-signed certificate is rejected: TLS ran inside the tunnel, to the real server.
      await expect(viaProxy).rejects.toMatchObject({ pyName: "SSLError" });
      expect(proxy.seen).toEqual([{ method: "CONNECT", url: `localhost:${tlsPort}`, role: "push_bouncer" }]);
      const refused = httpRequest({
        method: "GET",
        url,
        headers: {},
        timeoutMs: 5000,
        proxy: { host: "127.0.0.1", port: refusing.port, origin: "zulip.conf [http_proxy]" },
      });
      await expect(refused).rejects.toMatchObject({ pyName: "ProxyError" });
      await expect(refused).rejects.toThrow(/refused the tunnel: HTTP 403/);
    } finally {
      await proxy.close();
      await refusing.close();
      for (const sock of tlsSockets) sock.destroy();
      await new Promise<void>((r) => tlsServer.close(() => r()));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a connection that accepts but never answers hits the deadline", async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const t0 = Date.now();
      const p = httpRequest({ method: "GET", url: new URL(`http://127.0.0.1:${port}/`), headers: {}, timeoutMs: 300 });
      await expect(p).rejects.toBeInstanceOf(TransportError);
      await expect(p).rejects.toMatchObject({ pyName: "ReadTimeout" });
      expect(Date.now() - t0).toBeLessThan(3000);
    } finally {
      silent.close();
    }
  });

  it("send(): Zulip's error classes for 5xx, INVALID_ZULIP_SERVER, other 4xx, unexpected status", async () => {
    const client = new PushServiceClient({ servicesUrl: svc.url, orgId: ORG_ID, orgKey: ORG_KEY, version });
    const cases: [Override, string, string][] = [
      [{ status: 500, body: "x", contentType: "text/plain" }, "server", "Received 500 from push notification bouncer"],
      [
        { status: 400, body: JSON.stringify({ result: "error", msg: "bad key", code: "INVALID_ZULIP_SERVER" }) },
        "invalid_server",
        "Push notifications bouncer error: bad key",
      ],
      [{ status: 400, body: JSON.stringify({ result: "error", msg: "Data is out of order.", code: "BAD_REQUEST" }) }, "client", "Data is out of order."],
      [{ status: 204, body: "" }, "unexpected_status", "Push notification bouncer returned unexpected status code 204"],
      [{ status: 200, body: "<html>", contentType: "text/html" }, "bad_response", "is not JSON"],
    ];
    for (const [override, kind, message] of cases) {
      svc.overrides.set("/api/v1/remotes/server/analytics/status", override);
      const p = client.send("GET", "server/analytics/status", {});
      await expect(p).rejects.toMatchObject({ kind });
      await expect(p).rejects.toThrow(message);
    }
    // Every exchange was recorded, with the Basic credentials never part of the record.
    expect(client.exchanges.length).toBe(cases.length);
    expect(JSON.stringify(client.exchanges)).not.toContain(ORG_KEY);
  });

  it("readZulipVersion: version.py, overridden by zulip-git-version when present", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "zm-ver-"));
    try {
      expect(readZulipVersion(dir)).toEqual({ version: null, mergeBase: null, apiFeatureLevel: null });
      fs.writeFileSync(path.join(dir, "version.py"), 'import os\n\nZULIP_VERSION = "12.2"\n\nAPI_FEATURE_LEVEL = 421\n');
      expect(readZulipVersion(dir)).toEqual({ version: "12.2", mergeBase: "", apiFeatureLevel: 421 });
      fs.writeFileSync(path.join(dir, "zulip-git-version"), "12.2-3-gabcdef\n12.2\n");
      expect(readZulipVersion(dir)).toEqual({ version: "12.2-3-gabcdef", mergeBase: "12.2", apiFeatureLevel: 421 });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("redis library", () => {
  it("authenticates, sets with an expiry, and never shows the password", async () => {
    const c = await ZmRedis.connect({ host: redis.host, port: redis.port, password: redis.password });
    try {
      await c.set("zm-test-key", JSON.stringify({ a: 1 }), { ex: 10 });
      expect(await c.get("zm-test-key")).toBe('{"a":1}');
      const ttl = await redisClient.ttl("zm-test-key");
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(10);
      expect(await c.del("zm-test-key")).toBe(1);
    } finally {
      c.close();
    }
    const wrong = ZmRedis.connect({ host: redis.host, port: redis.port, password: "not-the-password-123" });
    await expect(wrong).rejects.toBeInstanceOf(RedisError);
    await expect(wrong).rejects.toThrow(/refused the password/);
    await expect(wrong).rejects.not.toThrow(/not-the-password-123/);
    const none = ZmRedis.connect({ host: redis.host, port: redis.port }).then((c2) => c2.get("x").finally(() => c2.close()));
    await expect(none).rejects.toThrow(/NOAUTH|Authentication required/);
  });

  it("a server that never answers fails within the deadline", async () => {
    const silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const port = (silent.address() as net.AddressInfo).port;
    try {
      const t0 = Date.now();
      await expect(ZmRedis.connect({ host: "127.0.0.1", port, password: "pw", timeoutMs: 300 })).rejects.toThrow(/did not answer AUTH/);
      expect(Date.now() - t0).toBeLessThan(3000);
    } finally {
      silent.close();
    }
  });
});

// do_create_realm enqueues "register_realm_with_push_bouncer" when the server uses the push
// notification service; its worker runs send_server_data_to_push_bouncer(consider_usage_statistics=False):
// the analytics status request, then the upload with every realm, the new one included.
describe("create_realm reports the new organization to the push notification service", () => {
  // Zulip's own path: the push_bouncer_update_for_realm jobs, run by its deferred_work worker.
  it("queues do_create_realm's and do_create_user's push_bouncer_update_for_realm jobs and sends nothing itself", async () => {
    const reader = await QueueReader.open();
    try {
      await reader.purge("notify_tornado", "deferred_work");
      const e = setup();
      svc.register({ uuid: ORG_ID, api_key: ORG_KEY });
      const r = await runCli(e, ["create_realm", "Org queued", "--string-id", "queued", "boss@queued.example.org", "Boss", ...NO_CACHE, "--json"]);
      expect(r.exitCode, r.stderr).toBe(0);
      const [realm] = await db.query("SELECT id FROM zerver_realm WHERE string_id = 'queued'");
      expect(await reader.drain("deferred_work")).toEqual([
        { type: "push_bouncer_update_for_realm", realm_id: realm.id },
        { type: "push_bouncer_update_for_realm", realm_id: realm.id },
      ]);
      expect(svc.received).toEqual([]);
      expect(JSON.parse(r.stdout).push_service).toBeNull();
    } finally {
      await reader.close();
    }
  });

  // When the jobs cannot be queued (here --events=none; RabbitMQ down likewise), the report is sent from here.
  const create = (e: Env, sub: string) =>
    runCli(e, ["create_realm", `Org ${sub}`, "--string-id", sub, `boss@${sub}.example.org`, "Boss", ...NO_CACHE, "--events=none", "--json"]);

  it("sends the status request and the upload with the new realm, and stores its push status", async () => {
    const e = setup();
    svc.register({ uuid: ORG_ID, api_key: ORG_KEY });
    const r = await create(e, "widgetco");
    expect(r.exitCode, r.stderr).toBe(0);
    expect(svc.paths()).toEqual(["GET /api/v1/remotes/server/analytics/status", "POST /api/v1/remotes/server/analytics"]);
    const [realm] = await db.query("SELECT id, uuid::text AS uuid, push_notifications_enabled FROM zerver_realm WHERE string_id = 'widgetco'");
    const sent = JSON.parse(svc.received[1]!.form!.realms!);
    expect(sent.map((x: any) => x.id)).toContain(realm.id);
    expect(sent.find((x: any) => x.id === realm.id)).toMatchObject({ uuid: realm.uuid, name: "Org widgetco", is_system_bot_realm: false });
    expect(svc.received[1]!.form!.realm_counts).toBe("[]");
    expect(realm.push_notifications_enabled).toBe(true); // the fake service answers can_push: true
    const doc = JSON.parse(r.stdout);
    expect(schemaErrors("create_realm", doc)).toBeNull();
    expect(doc.push_service).toMatchObject({ ok: true, warning: null });
    expect(doc.push_service.server_data.realms_sent_count).toBe(sent.length);
  });

  it("without ZULIP_SERVICE_PUSH_NOTIFICATIONS: nothing is sent", async () => {
    const e = setup({ push: false });
    const r = await create(e, "quiet");
    expect(r.exitCode, r.stderr).toBe(0);
    expect(svc.received).toEqual([]);
    expect(JSON.parse(r.stdout).push_service).toBeNull();
  });

  it("a failing service leaves the organization created: a warning, exit 0", async () => {
    const e = setup();
    svc.register({ uuid: ORG_ID, api_key: ORG_KEY });
    svc.overrides.set("/api/v1/remotes/server/analytics/status", { status: 503, body: "unavailable", contentType: "text/plain" });
    const r = await create(e, "stormy");
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain(
      "Warning: could not report the change to the Mobile Push Notification Service (Received 503 from push notification bouncer). " +
        "Everything else was done; run `zulip-manage register_server` to report it later.",
    );
    expect(await db.query("SELECT 1 FROM zerver_realm WHERE string_id = 'stormy'")).toHaveLength(1);
    expect(JSON.parse(r.stdout).push_service).toMatchObject({ ok: false, warning: "Received 503 from push notification bouncer" });
  });
});
