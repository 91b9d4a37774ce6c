// register_server: register this server with the Mobile Push Notification Service (or update,
// rotate the key of, transfer or deactivate its registration), like
// zerver/management/commands/register_server.py, then upload the server data the service expects
// (send_server_data_to_push_bouncer without usage statistics) and store the per-realm
// push_notifications_enabled answers the way Zulip does.
//
// Differences from manage.py, on purpose:
//  - without a terminal and without --agree-to-terms-of-service we stop (exit 1) and say which
//    flag to pass, instead of waiting on input();
//  - --rotate-key and --registration-transfer check that zulip-secrets.conf can be updated
//    before anything is sent, and the secrets file is replaced atomically (not via crudini);
//  - --rotate-key stores the new key right after the service accepted it, and the data upload
//    that follows authenticates with the new key (manage.py uploads with the old key, which the
//    service has just invalidated, and only then writes the new one);
//  - the database and (for a transfer) Redis are connected to before the service is contacted;
//  - a stuck service cannot hang the command: every request has a deadline (--timeout).
import { addEventsOption, addFlushCacheOption } from "../cli/options.js";
import path from "node:path";
import { Option } from "commander";
import { insertAuditLog, AuditLogEventType, NEW_VALUE, OLD_VALUE, SYNCED_BILLING_EVENTS } from "../zulip/audit.js";
import { authenticationMethodsDict } from "../zulip/auth-backends.js";
import { CacheInvalidation, cacheReportJson } from "../zulip/cache.js";
import { utcTimestamp } from "../cli/json-contract.js";
import { realmJson } from "../cli/json-objects.js";
import type { RealmPushChangeJson, RegisterServerBody, ServerDataJson } from "../schemas/register_server.js";
import { defineUntypedCommand } from "../cli/command.js";
import { activeUserIds, EventDelivery, eventsReportJson } from "../services/events.js";
import type { Context } from "../cli/context.js";
import type { Db, Queryable } from "../db/db.js";
import { CommandError, UsageError } from "../lib/errors.js";
import { askYesNo } from "../cli/prompt.js";
import { HIDDEN, HostnameInUseError, proxyFor, PushServiceClient, PushServiceError, readZulipVersion, type ZulipVersionInfo } from "../services/push-service.js";
import { connectZulipRedis, RedisClient, zulipRedisOptions } from "../services/redis.js";
import { checkSecretsWritable, updateSecretsFile } from "../config/secrets-file.js";
import { AnalyticsDataUploadLevel, checkRequiredSettings, realmHost, realmUrl, type ZulipSettings } from "../config/settings.js";
import { crypto } from "../lib/builtins.js";
import { getRandomString } from "../lib/random.js";

export const TRANSFER_CHALLENGE_REDIS_KEY = "self_hosting_domain_transfer_challenge_verify";
export const PUSH_RECENTLY_WORKING_REDIS_KEY = "push_notifications_recently_working_ts";
const MAX_CLIENT_BATCH_SIZE = 10000;
const TOS_QUESTION = "Do you want to agree to the Zulip Terms of Service and proceed?";

/** Python's secrets.token_urlsafe(32). */
export function tokenUrlsafe(nbytes = 32): string {
  return crypto().randomBytes(nbytes).toString("base64url");
}

function notice(hostname: string, contactEmail: string): string {
  return (
    "This command registers your server for the Mobile Push Notifications Service.\n" +
    "Doing so will share basic metadata with the service's maintainers:\n\n" +
    `* This server's configured hostname: ${hostname}\n` +
    `* This server's configured contact email address: ${contactEmail}\n` +
    "* Metadata about each organization hosted by the server; see:\n\n" +
    "    <https://zulip.com/doc-permalinks/basic-metadata>\n\n" +
    "Use of this service is governed by the Zulip Terms of Service:\n\n" +
    "    <https://zulip.com/policies/terms>\n"
  );
}

// ---------------------------------------------------------------------------------------------
// The server data upload (zerver/lib/remote_server.py send_server_data_to_push_bouncer)

interface RealmRow {
  id: number;
  string_id: string;
  name: string;
  org_type: number;
  deactivated: boolean;
  uuid: string;
  uuid_owner_secret: string;
  date_created: number;
}

/** get_realms_info_for_push_bouncer(): every realm, ordered by id, in RealmDataForAnalytics' field order. */
export async function realmsInfoForPushService(q: Queryable, settings: ZulipSettings): Promise<Record<string, unknown>[]> {
  const { rows } = await q.query(
    `SELECT id, string_id, name, org_type, deactivated, uuid::text AS uuid, uuid_owner_secret,
            EXTRACT(EPOCH FROM date_created)::float8 AS date_created
       FROM zerver_realm ORDER BY id`,
  );
  const methods = await q.query("SELECT realm_id, name FROM zerver_realmauthenticationmethod");
  const byRealm = new Map<number, Set<string>>();
  for (const m of methods.rows) {
    const id = Number(m.realm_id);
    if (!byRealm.has(id)) byRealm.set(id, new Set());
    byRealm.get(id)!.add(m.name);
  }
  const backends = settings.get("AUTHENTICATION_BACKENDS");
  const systemBotRealm = settings.get("SYSTEM_BOT_REALM");
  return (rows as RealmRow[]).map((r) => ({
    id: Number(r.id),
    host: realmHost(settings, r.string_id),
    url: realmUrl(settings, r.string_id),
    name: r.name,
    org_type: Number(r.org_type),
    date_created: Number(r.date_created),
    deactivated: r.deactivated,
    is_system_bot_realm: r.string_id === systemBotRealm,
    authentication_methods: authenticationMethodsDict(backends, byRealm.get(Number(r.id)) ?? new Set()),
    uuid: r.uuid,
    uuid_owner_secret: r.uuid_owner_secret,
  }));
}

/** build_analytics_data()'s audit log part: SYNCED_BILLING_EVENTS rows after the last acknowledged id. */
export async function auditRowsForPushService(q: Queryable, afterId: number): Promise<Record<string, unknown>[]> {
  const { rows } = await q.query(
    `SELECT id, realm_id, EXTRACT(EPOCH FROM event_time)::float8 AS event_time, backfilled, extra_data, event_type
       FROM zerver_realmauditlog
      WHERE event_type = ANY($1::smallint[]) AND id > $2
      ORDER BY id LIMIT ${MAX_CLIENT_BATCH_SIZE}`,
    [SYNCED_BILLING_EVENTS, afterId],
  );
  return rows.map((r) => ({
    id: Number(r.id),
    realm: Number(r.realm_id),
    event_time: Number(r.event_time),
    backfilled: r.backfilled,
    extra_data: r.extra_data,
    event_type: Number(r.event_type),
  }));
}

type RealmPushChange = RealmPushChangeJson;

/** A push_notifications_enabled_end_timestamp (Unix seconds) as RFC 3339. */
function endAt(ts: number | null): string | null {
  return ts === null ? null : utcTimestamp(new Date(ts * 1000));
}

export type ServerDataResult = ServerDataJson;

interface UploadDeps {
  ctx: Context;
  db: Db;
  settings: ZulipSettings;
  client: PushServiceClient;
  version: ZulipVersionInfo;
  flushCache: string | undefined;
  /** --events */
  events: string | undefined;
  redisOptions: () => ReturnType<typeof zulipRedisOptions>;
  warn: (text: string) => void;
}

/**
 * Zulip's do_set_realm_property(realm, "push_notifications_enabled", …) and
 * do_set_push_notifications_enabled_end_timestamp(): update only what changes, one
 * REALM_PROPERTY_CHANGED audit row per changed property, acting user none. All realms in one
 * transaction; the cached realm data of changed realms is invalidated after COMMIT, then the
 * realm update events are sent.
 *
 * Events, as those functions send them (zerver/actions/realm_settings.py; the same in the 10.x,
 * 11.x and main versions read), each to active_user_ids(realm): do_set_realm_property stages
 * {"type": "realm", "op": "update", "property": "push_notifications_enabled", "value": <bool>}
 * before its audit row; do_set_push_notifications_enabled_end_timestamp stages
 * {"type": "realm", "op": "update", "property": "push_notifications_enabled_end_timestamp",
 * "value": <int seconds> | null} after its own. Nothing for a property that did not change, and
 * no queue job (neither calls maybe_enqueue_audit_log_upload).
 */
async function storePushStatus(
  deps: UploadDeps,
  wanted: { uuid?: string; realmId?: number; canPush: boolean; endTimestamp: number | null }[],
  result: ServerDataResult,
): Promise<void> {
  if (wanted.length === 0) return;
  const inval = new CacheInvalidation(deps.ctx, deps.flushCache);
  const events = new EventDelivery(deps.ctx, deps.events);
  const changes: RealmPushChange[] = [];
  await events.tx(deps.db, async (q) => {
    for (const w of wanted) {
      const { rows } = await q.query(
        `SELECT id, string_id, name, deactivated, push_notifications_enabled,
                EXTRACT(EPOCH FROM push_notifications_enabled_end_timestamp)::float8 AS end_ts
           FROM zerver_realm WHERE ${w.uuid !== undefined ? "uuid = $1::uuid" : "id = $1"} FOR UPDATE`,
        [w.uuid !== undefined ? w.uuid : w.realmId],
      );
      const realm = rows[0];
      if (!realm) {
        // The database was rebuilt or the realm hard-deleted after talking to the service.
        if (w.uuid !== undefined) {
          result.unknown_realm_uuids.push(w.uuid);
          deps.warn(`Received unexpected realm UUID from bouncer ${w.uuid}`);
        }
        continue;
      }
      const fields: string[] = [];
      const change: RealmPushChange = { realm: realmJson(deps.settings, realm), push_notifications_enabled: null, push_notifications_enabled_end_at: null };
      const now = new Date();
      const notify = { events, realm: { id: Number(realm.id), string_id: realm.string_id }, what: `the push notification status of ${realm.string_id || "the root-domain organization"}` };
      const send = async (property: "push_notifications_enabled" | "push_notifications_enabled_end_timestamp", value: boolean | number | null) =>
        events.send(notify.realm, { type: "realm", op: "update", property, value }, await activeUserIds(q, Number(realm.id)), notify.what);
      if (realm.push_notifications_enabled !== w.canPush) {
        await q.query("UPDATE zerver_realm SET push_notifications_enabled = $2 WHERE id = $1", [realm.id, w.canPush]);
        await send("push_notifications_enabled", w.canPush);
        await insertAuditLog(q, [
          {
            realmId: realm.id,
            eventType: AuditLogEventType.REALM_PROPERTY_CHANGED,
            eventTime: now,
            actingUserId: null,
            extraData: { [OLD_VALUE]: realm.push_notifications_enabled, [NEW_VALUE]: w.canPush, property: "push_notifications_enabled" },
          },
        ]);
        change.push_notifications_enabled = { old: realm.push_notifications_enabled, new: w.canPush };
        fields.push("push_notifications_enabled");
      }
      // datetime_to_timestamp(): int(dt.timestamp()).
      const oldTs = realm.end_ts === null ? null : Math.trunc(Number(realm.end_ts));
      if (oldTs !== w.endTimestamp) {
        await q.query(
          "UPDATE zerver_realm SET push_notifications_enabled_end_timestamp = CASE WHEN $2::float8 IS NULL THEN NULL ELSE to_timestamp($2::float8) END WHERE id = $1",
          [realm.id, w.endTimestamp],
        );
        await insertAuditLog(q, [
          {
            realmId: realm.id,
            eventType: AuditLogEventType.REALM_PROPERTY_CHANGED,
            eventTime: new Date(),
            actingUserId: null,
            extraData: { [OLD_VALUE]: oldTs, [NEW_VALUE]: w.endTimestamp, property: "push_notifications_enabled_end_timestamp" },
          },
        ]);
        await send("push_notifications_enabled_end_timestamp", w.endTimestamp);
        change.push_notifications_enabled_end_at = { old: endAt(oldTs), new: endAt(w.endTimestamp) };
        fields.push("push_notifications_enabled_end_timestamp");
      }
      if (fields.length) changes.push(change);
      if (fields.length) await inval.realmChanged(q, { id: realm.id, string_id: realm.string_id, deactivated: realm.deactivated }, fields);
    }
  });
  if (changes.length) inval.changeCommitted();
  result.realm_changes.push(...changes);
  result.cache = cacheReportJson(await inval.commit());
  const delivery = await events.commit();
  if (!delivery.skipped) result.events = eventsReportJson(delivery);
}

/**
 * maybe_mark_pushes_disabled(): after a failed status request (other than a 5xx), unless push
 * notifications were observed working within the last hour (a Redis timestamp the Zulip server
 * keeps), mark every realm as unable to push.
 */
async function maybeMarkPushesDisabled(deps: UploadDeps, e: PushServiceError, result: ServerDataResult): Promise<void> {
  // Zulip calls it for the JsonableError family (network errors, 4xx with a message) and for
  // undecodable answers, but returns at once for 5xx; credential errors (INVALID_ZULIP_SERVER),
  // PUSH_NOTIFICATIONS_DISALLOWED and unexpected status codes are other exception classes that
  // propagate without it.
  if (!["network", "client", "bad_response"].includes(e.kind) || e.code === "PUSH_NOTIFICATIONS_DISALLOWED") return;
  let redis: RedisClient | undefined;
  try {
    redis = await RedisClient.connect({ ...deps.redisOptions(), timeoutMs: 3000 });
    const ts = await redis.get(PUSH_RECENTLY_WORKING_REDIS_KEY);
    if (ts !== null && Date.now() / 1000 - Number(ts) < 60 * 60) return;
  } catch (err: any) {
    deps.warn(
      `Warning: could not check in Redis whether push notifications were working recently (${err?.message ?? err}); ` +
        "the organizations' push notification status was left unchanged.",
    );
    return;
  } finally {
    redis?.close();
  }
  const { rows } = await deps.db.query("SELECT id, string_id, name FROM zerver_realm WHERE push_notifications_enabled ORDER BY id");
  await storePushStatus(
    deps,
    rows.map((r) => ({ realmId: Number(r.id), canPush: false, endTimestamp: null })),
    result,
  );
  result.marked_push_disabled = rows.map((r) => realmJson(deps.settings, r));
}

/** send_server_data_to_push_bouncer(consider_usage_statistics=False, raise_on_error=True). */
export async function sendServerData(deps: UploadDeps): Promise<ServerDataResult> {
  const result: ServerDataResult = {
    last_acknowledged: { realm_count_id: 0, installation_count_id: 0, realmauditlog_id: 0 },
    realms_sent_count: 0,
    realmauditlog_rows_sent_count: 0,
    realm_changes: [],
    unknown_realm_uuids: [],
    marked_push_disabled: [],
    cache: null,
    events: null,
  };
  let status: any;
  try {
    status = await deps.client.send("GET", "server/analytics/status", {});
  } catch (e) {
    if (e instanceof PushServiceError) await maybeMarkPushesDisabled(deps, e, result);
    throw e;
  }
  for (const k of ["last_realm_count_id", "last_installation_count_id", "last_realmauditlog_id"]) {
    if (typeof status?.[k] !== "number") {
      throw new PushServiceError(`The push notification service's analytics status answer has no ${k}.`, "bad_response");
    }
  }
  result.last_acknowledged = {
    realm_count_id: status.last_realm_count_id,
    installation_count_id: status.last_installation_count_id,
    realmauditlog_id: status.last_realmauditlog_id,
  };

  const level = deps.settings.get("ANALYTICS_DATA_UPLOAD_LEVEL");
  const auditRows = level >= AnalyticsDataUploadLevel.BILLING ? await auditRowsForPushService(deps.db, status.last_realmauditlog_id) : [];
  const realms = await realmsInfoForPushService(deps.db, deps.settings);
  result.realms_sent_count = realms.length;
  result.realmauditlog_rows_sent_count = auditRows.length;

  const v = deps.version;
  const form = {
    realm_counts: "[]",
    installation_counts: "[]",
    realmauditlog_rows: JSON.stringify(auditRows),
    realms: JSON.stringify(realms),
    version: v.version === null ? null : JSON.stringify(v.version),
    merge_base: v.mergeBase === null ? null : JSON.stringify(v.mergeBase),
    api_feature_level: v.apiFeatureLevel === null ? null : JSON.stringify(v.apiFeatureLevel),
  };
  const summary = {
    realm_counts: [],
    installation_counts: [],
    realmauditlog_rows: {
      count: auditRows.length,
      first_id: auditRows.length ? auditRows[0]!.id : null,
      last_id: auditRows.length ? auditRows[auditRows.length - 1]!.id : null,
    },
    realms: realms.map((r) => ({ ...r, uuid_owner_secret: HIDDEN })),
    version: v.version,
    merge_base: v.mergeBase,
    api_feature_level: v.apiFeatureLevel,
  };
  const response = await deps.client.send("POST", "server/analytics", form, { summary });
  const answered = response?.realms;
  if (!answered || typeof answered !== "object" || Array.isArray(answered)) {
    throw new PushServiceError("The push notification service's answer to the data upload has no realms.", "bad_response");
  }
  const wanted: { uuid: string; canPush: boolean; endTimestamp: number | null }[] = [];
  for (const [uuid, data] of Object.entries(answered as Record<string, any>)) {
    const canPush = data?.can_push;
    const end = data?.expected_end_timestamp ?? null;
    if (typeof canPush !== "boolean" || (end !== null && !Number.isInteger(end))) {
      deps.warn(`Warning: ignoring the service's malformed push status for realm ${uuid}: ${JSON.stringify(data)}`);
      continue;
    }
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(uuid)) {
      result.unknown_realm_uuids.push(uuid);
      deps.warn(`Received unexpected realm UUID from bouncer ${uuid}`);
      continue;
    }
    wanted.push({ uuid, canPush, endTimestamp: end });
  }
  await storePushStatus(deps, wanted, result);
  return result;
}

/** What reportServerData() did, for a command's --json document. */
export interface ServerDataReport {
  ok: boolean;
  warning: string | null;
  server_data: ServerDataResult | null;
}

/**
 * What the deferred_work queue job do_create_realm enqueues when the server uses the push
 * notification service ends up doing: "register_realm_with_push_bouncer"
 * (enqueue_register_realm_with_push_bouncer_if_needed, zerver/lib/remote_server.py) in older
 * code, and on main by 12.0 "push_bouncer_update_for_realm" (maybe_enqueue_audit_log_upload,
 * called inside do_create_realm's transaction and queued on commit; do_create_user calls it too).
 * Either way the worker runs send_server_data_to_push_bouncer(consider_usage_statistics=False)
 * — the analytics status request, then the upload with every realm and the new audit rows — and
 * only logs a failure. Done here right after the command's commit; a failure is a warning (the
 * committed change stands) naming register_server as the way to report later.
 */
export async function reportServerData(
  ctx: Context,
  db: Db,
  flushCache: string | undefined,
  events: string | undefined,
  warn: (text: string) => void,
): Promise<ServerDataReport> {
  const config = ctx.config();
  const settings = config.settings;
  try {
    const servicesUrl = settings.get("ZULIP_SERVICES_URL");
    const orgId = config.secret("zulip_org_id");
    const orgKey = config.secret("zulip_org_key");
    if (!servicesUrl) throw new CommandError("ZULIP_SERVICES_URL is not set");
    if (!orgId || !orgKey) throw new CommandError("zulip_org_id / zulip_org_key are missing from zulip-secrets.conf");
    const client = new PushServiceClient({
      servicesUrl,
      orgId,
      orgKey,
      version: readZulipVersion(ctx.paths.deployDir),
      proxy: (url) => proxyFor(url, ctx.env, (sec, k) => config.conf(sec, k)),
    });
    const serverData = await sendServerData({
      ctx,
      db,
      settings,
      client,
      version: readZulipVersion(ctx.paths.deployDir),
      flushCache,
      events,
      redisOptions: () => zulipRedisOptions(settings, (n) => config.secret(n)),
      warn,
    });
    return { ok: true, warning: null, server_data: serverData };
  } catch (e: any) {
    const error = String(e?.message ?? e);
    warn(
      `Warning: could not report the change to the Mobile Push Notification Service (${error}). ` +
        "Everything else was done; run `zulip-manage register_server` to report it later.",
    );
    return { ok: false, warning: error, server_data: null };
  }
}

// ---------------------------------------------------------------------------------------------
// The command

export default defineUntypedCommand({
  name: "register_server",
  description:
    "Register a remote Zulip server for push notifications.\n\n" +
    "Registers this server with the Mobile Push Notification Service at ZULIP_SERVICES_URL (or updates its " +
    "registration), uploads the metadata the service needs, and stores each organization's push notification " +
    "status. Requires ZULIP_SERVICE_PUSH_NOTIFICATIONS = True in /etc/zulip/settings.py. Without a terminal, " +
    "pass --agree-to-terms-of-service.",
  examples: [
    "zulip-manage register_server",
    "zulip-manage register_server --agree-to-terms-of-service",
    "zulip-manage register_server --rotate-key",
    "zulip-manage register_server --registration-transfer",
    "zulip-manage register_server --deactivate",
  ],
  configure(cmd) {
    cmd.option("--agree-to-terms-of-service", "Agree to the Zulipchat Terms of Service: https://zulip.com/policies/terms.");
    cmd.addOption(
      new Option("--rotate-key", "Automatically rotate your server's zulip_org_key").conflicts(["registrationTransfer", "deactivate"]),
    );
    cmd.addOption(
      new Option(
        "--registration-transfer",
        "If your server uses a publicly verifiable SSL certificate for a hostname that is already registered " +
          "for Zulip services, transfers the registration to this server by changing the zulip_org_key secret " +
          "for that registration and saving the updated secret in /etc/zulip/zulip-secrets.conf.",
      ).conflicts(["deactivate"]),
    );
    cmd.option("--deactivate", "Deregister the server; this will stop mobile push notifications");
    cmd.option(
      "--timeout <seconds>",
      "give up on a request to the service after this many seconds (default: Zulip's 15, and 90 for the data upload)",
    );
    addFlushCacheOption(cmd);
    addEventsOption(cmd);
  },
  async run(ctx, _args, opts) {
    const out = ctx.out;
    const config = ctx.config();
    const settings = config.settings;
    const secretsPath = ctx.paths.secretsPath;

    let timeoutMs: number | undefined;
    if (opts.timeout !== undefined) {
      const t = Number(opts.timeout);
      if (!Number.isFinite(t) || t <= 0) throw new UsageError(`argument --timeout: invalid positive number: '${opts.timeout}'`);
      timeoutMs = Math.round(t * 1000);
    }

    // Pre-checks, in manage.py's order.
    const problems = checkRequiredSettings(settings);
    if (problems.length) throw new CommandError(problems[0]!.message);
    const orgId = config.secret("zulip_org_id");
    const orgKey = config.secret("zulip_org_key");
    if (!orgId) throw new CommandError("Missing zulip_org_id; run scripts/setup/generate_secrets.py to generate.");
    if (!orgKey) throw new CommandError("Missing zulip_org_key; run scripts/setup/generate_secrets.py to generate.");
    const servicesUrl = settings.get("ZULIP_SERVICES_URL");
    if (!servicesUrl) {
      throw new CommandError("ZULIP_SERVICES_URL is not set; was the default incorrectly overridden in /etc/zulip/settings.py?");
    }
    if (!settings.get("ZULIP_SERVICE_PUSH_NOTIFICATIONS")) {
      throw new CommandError("Please set ZULIP_SERVICE_PUSH_NOTIFICATIONS to True in /etc/zulip/settings.py");
    }

    const version = readZulipVersion(ctx.paths.deployDir);
    const client = new PushServiceClient({
      servicesUrl,
      orgId,
      orgKey,
      version,
      timeoutMs,
      proxy: (url) => proxyFor(url, ctx.env, (s, k) => config.conf(s, k)),
    });
    const action = opts.deactivate ? "deactivate" : opts.rotateKey ? "rotate_key" : opts.registrationTransfer ? "registration_transfer" : "register";
    const doc: RegisterServerBody = {
      dry_run: false,
      action,
      services_url: servicesUrl,
      hostname: null,
      contact_email: null,
      agreed_to_terms_of_service: null,
      created: null,
      secrets_updated: [],
      server_data: null,
      restart_required: false,
      requests: [],
    };
    const warn = (text: string) => out.warn(text);

    // The document, also on failure (the runner adds the error from what was thrown).
    const finish = (extra: Partial<RegisterServerBody>) => {
      Object.assign(doc, extra);
      doc.requests = client.exchanges.map((x) => ({
        method: x.method,
        path: x.path,
        sent: x.sent ?? null,
        status: x.status ?? null,
        answer: x.answer ?? null,
        error: x.error ?? null,
      }));
      out.jsonBody<RegisterServerBody>(doc);
    };
    const fail = (e: any): never => {
      if (out.json) {
        finish({});
        if (e instanceof HostnameInUseError) throw new CommandError(e.box);
      } else if (e instanceof HostnameInUseError) {
        out.line(e.box);
      }
      throw e;
    };

    if (opts.deactivate) {
      try {
        await client.sendJson("POST", "server/deactivate", {});
      } catch (e) {
        fail(e);
      }
      out.line("Mobile Push Notification Service registration successfully deactivated!");
      finish({});
      return;
    }

    const hostname = settings.get("EXTERNAL_HOST");
    const contactEmail = settings.get("ZULIP_ADMINISTRATOR");
    const request: Record<string, string> = {
      zulip_org_id: orgId,
      zulip_org_key: orgKey,
      hostname,
      contact_email: contactEmail,
    };
    if (opts.rotateKey || opts.registrationTransfer) {
      // Both store what the service sends back: refuse now rather than lose it later.
      try {
        checkSecretsWritable(secretsPath);
      } catch (e) {
        fail(e);
      }
    }
    if (opts.rotateKey) request.new_org_key = getRandomString(64);
    Object.assign(doc, { hostname, contact_email: contactEmail });

    // Connect to everything we will need before the service changes anything.
    let db: Db;
    let redis: RedisClient | undefined;
    try {
      db = await ctx.db();
      if (opts.registrationTransfer) redis = await connectZulipRedis(zulipRedisOptions(settings, (n) => config.secret(n)));
    } catch (e) {
      fail(e);
    }

    try {
      // print() of a text that already ends with a newline: a blank line follows.
      out.write(notice(hostname, contactEmail) + "\n");

      if (!opts.agreeToTermsOfService && !opts.rotateKey) {
        const agreed = await askYesNo(TOS_QUESTION, {
          defaultYes: true,
          flag: "--agree-to-terms-of-service",
          what: "whether you agree to the Zulip Terms of Service (https://zulip.com/policies/terms)",
          output: out.json ? process.stderr : process.stdout,
        });
        out.line();
        if (!agreed) {
          // Like manage.py: the "n" answer speaks for itself.
          finish({ agreed_to_terms_of_service: false });
          return;
        }
      }

      const secretsUpdated: string[] = [];
      if (opts.registrationTransfer) {
        const transfer = await client.postPublic("/api/v1/remotes/server/register/transfer", { hostname });
        const verificationSecret = transfer?.verification_secret;
        if (typeof verificationSecret !== "string") {
          throw new PushServiceError("The push notification service's transfer answer has no verification_secret.", "bad_response");
        }
        out.line("Received a verification secret from the service. Preparing to serve it at the verification URL.");
        // prepare_for_registration_transfer_challenge(): the running Zulip server serves this
        // at https://<hostname>/api/v1/zulip-services/verify/<access_token>/ for 10 seconds.
        const accessToken = tokenUrlsafe(32);
        await redis!.set(
          TRANSFER_CHALLENGE_REDIS_KEY,
          JSON.stringify({ verification_secret: verificationSecret, access_token: accessToken }),
          { ex: 10 },
        );
        out.line("Sending ACK to the service and awaiting completion of verification...");
        const verified = await client.postPublic("/api/v1/remotes/server/register/verify_challenge", {
          hostname,
          access_token: accessToken,
        });
        const newId = verified?.zulip_org_id;
        const newKey = verified?.zulip_org_key;
        if (typeof newId !== "string" || typeof newKey !== "string") {
          throw new PushServiceError("The push notification service's verification answer has no zulip_org_id/zulip_org_key.", "bad_response");
        }
        out.line("Success! Updating secrets file with received credentials.");
        try {
          updateSecretsFile(secretsPath, { zulip_org_id: newId, zulip_org_key: newKey });
        } catch (e: any) {
          throw new CommandError(
            `${e?.message ?? e}\nThe service has already issued new credentials for ${hostname}; ` +
              "fix the problem and run register_server --registration-transfer again to get a fresh key.",
          );
        }
        secretsUpdated.push("zulip_org_id", "zulip_org_key");
        out.line("Mobile Push Notification Service registration successfully transferred.");
        request.zulip_org_id = newId;
        request.zulip_org_key = newKey;
        client.setCredentials(newId, newKey);
        out.line();
        out.line("Proceeding to update the registration with current metadata...");
      }

      const response = await client.postPublic("/api/v1/remotes/server/register", request);
      if (typeof response?.created !== "boolean") {
        throw new PushServiceError("The push notification service's registration answer has no 'created' field.", "bad_response");
      }
      const created: boolean = response.created;

      if (!created && opts.rotateKey) {
        // The service now only accepts the new key: store it before anything else can fail.
        out.line(`Success! Updating ${secretsPath} with the new key...`);
        try {
          updateSecretsFile(secretsPath, { zulip_org_key: request.new_org_key! });
        } catch (e: any) {
          throw new CommandError(
            `${e?.message ?? e}\nThe service has already switched this server to a new zulip_org_key that could not be saved. ` +
              "Fix the problem, then recover the registration with register_server --registration-transfer.",
          );
        }
        secretsUpdated.push("zulip_org_key");
        client.setCredentials(request.zulip_org_id!, request.new_org_key!);
      }

      const upload = await sendServerData({
        ctx,
        db: db!,
        settings,
        client,
        version,
        flushCache: opts.flushCache,
        events: opts.events,
        redisOptions: () => zulipRedisOptions(settings, (n) => config.secret(n)),
        warn,
      });

      if (created) {
        out.line("Your server is now registered for the Mobile Push Notification Service!\nReturn to the documentation for next steps.");
      } else {
        out.line("Mobile Push Notification Service registration successfully updated!");
      }
      const restartHint = Boolean(opts.registrationTransfer);
      if (restartHint) {
        out.line();
        out.line(
          `Make sure to restart the server next by running ${path.join(ctx.paths.deployDir, "scripts", "restart-server")} ` +
            "so that the new credentials are reloaded.",
        );
      }
      finish({
        agreed_to_terms_of_service: opts.rotateKey && !opts.agreeToTermsOfService ? null : true,
        created,
        secrets_updated: secretsUpdated,
        server_data: upload,
        restart_required: restartHint,
      });
    } catch (e) {
      fail(e);
    } finally {
      redis?.close();
    }
  },
});
