// This server's relationship with the Zulip Mobile Push Notification Service (the "push bouncer"
// at ZULIP_SERVICES_URL), as Zulip's zerver/management/commands/register_server.py (registration,
// key rotation, registration transfer, deactivation) and zerver/lib/remote_server.py
// (send_server_data_to_push_bouncer, and the realms' push notification status it stores) do it.
// The HTTP client is src/services/push-service.ts.
//
// Differences from Zulip, on purpose (register_server's):
//  - --rotate-key and --registration-transfer check that zulip-secrets.conf can be updated
//    before anything is sent, and the secrets file is replaced atomically (not via crudini);
//  - --rotate-key stores the new key right after the service accepted it, and the data upload
//    that follows authenticates with the new key (manage.py uploads with the old key, which the
//    service has just invalidated, and only then writes the new one).
import { insertAuditLog, AuditLogEventType, NEW_VALUE, OLD_VALUE, SYNCED_BILLING_EVENTS } from "../audit.js";
import { authenticationMethodsDict } from "../auth-backends.js";
import { CacheInvalidation, type CacheContext, cacheReportJson } from "../cache.js";
import type { Config } from "../../config/config.js";
import { updateSecretsFile } from "../../config/secrets-file.js";
import { AnalyticsDataUploadLevel, checkRequiredSettings, realmHost, realmUrl, type ZulipSettings } from "../../config/settings.js";
import type { Db, Queryable } from "../../db/db.js";
import { EventDelivery, type EventContext, eventsReportJson } from "../../services/events.js";
import { activeUserIds } from "../audiences.js";
import { HIDDEN, proxyFor, PushServiceClient, PushServiceError, readZulipVersion, type ZulipVersionInfo } from "../../services/push-service.js";
import { RedisClient, zulipRedisOptions } from "../../services/redis.js";
import { CommandError } from "../../lib/errors.js";
import { getRandomString, tokenUrlsafe } from "../../lib/random.js";
import type { RealmRef as LookupRealmRef } from "../lookup.js";
import { realmAuthenticationMethods } from "../realms.js";

const TRANSFER_CHALLENGE_REDIS_KEY = "self_hosting_domain_transfer_challenge_verify";
const PUSH_RECENTLY_WORKING_REDIS_KEY = "push_notifications_recently_working_ts";
const MAX_CLIENT_BATCH_SIZE = 10000;

/** What these actions need of the command's Context (the CLI's Context is one). */
export type PushServiceContext = CacheContext & EventContext & { readonly env: NodeJS.ProcessEnv };

/** A realm as the results name it: lookup.ts's RealmRef with its name. */
export interface RealmRef extends LookupRealmRef {
  name: string;
}

// ---------------------------------------------------------------------------------------------
// Settings and the client

export interface PushRegistrationSettings {
  servicesUrl: string;
  orgId: string;
  orgKey: string;
  /** EXTERNAL_HOST */
  hostname: string;
  /** ZULIP_ADMINISTRATOR */
  contactEmail: string;
}

/** register_server's pre-checks, in manage.py's order, and what registering sends. */
export function pushRegistrationSettings(config: Config): PushRegistrationSettings {
  const settings = config.settings;
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
  return { servicesUrl, orgId, orgKey, hostname: settings.get("EXTERNAL_HOST"), contactEmail: settings.get("ZULIP_ADMINISTRATOR") };
}

/** A client for the service with this server's credentials, its version and its proxy settings. */
export function pushServiceClient(
  ctx: { config(): Config; readonly env: NodeJS.ProcessEnv },
  creds: { servicesUrl: string; orgId: string; orgKey: string },
  version: ZulipVersionInfo,
  timeoutMs?: number,
): PushServiceClient {
  const config = ctx.config();
  return new PushServiceClient({
    servicesUrl: creds.servicesUrl,
    orgId: creds.orgId,
    orgKey: creds.orgKey,
    version,
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    proxy: (url) => proxyFor(url, ctx.env, (section, key) => config.conf(section, key)),
  });
}

// ---------------------------------------------------------------------------------------------
// Registration (register_server.py)

/** register_server --deactivate: POST server/deactivate. */
export async function deactivateServerRegistration(client: PushServiceClient): Promise<void> {
  await client.sendJson("POST", "server/deactivate", {});
}

/** The form register_server posts to server/register; with `rotateKey`, a new zulip_org_key (get_random_string(64)). */
export function registrationRequest(s: PushRegistrationSettings, opts: { rotateKey: boolean }): Record<string, string> {
  const request: Record<string, string> = {
    zulip_org_id: s.orgId,
    zulip_org_key: s.orgKey,
    hostname: s.hostname,
    contact_email: s.contactEmail,
  };
  if (opts.rotateKey) request.new_org_key = getRandomString(64);
  return request;
}

/**
 * register_server --registration-transfer: ask the service for a verification secret, serve it
 * (through Redis, where the running Zulip server answers the service's check), and receive new
 * credentials for the hostname; they are written to zulip-secrets.conf, put into `request` and
 * used by the client from now on. `say` prints register_server's progress lines.
 */
export async function transferRegistration(
  client: PushServiceClient,
  redis: RedisClient,
  request: Record<string, string>,
  secretsPath: string,
  say: (line: string) => void,
): Promise<void> {
  const hostname = request.hostname!;
  const transfer = await client.postPublic("/api/v1/remotes/server/register/transfer", { hostname });
  const verificationSecret = transfer?.verification_secret;
  if (typeof verificationSecret !== "string") {
    throw new PushServiceError("The push notification service's transfer answer has no verification_secret.", "bad_response");
  }
  say("Received a verification secret from the service. Preparing to serve it at the verification URL.");
  // prepare_for_registration_transfer_challenge(): the running Zulip server serves this
  // at https://<hostname>/api/v1/zulip-services/verify/<access_token>/ for 10 seconds.
  const accessToken = tokenUrlsafe(32);
  await redis.set(TRANSFER_CHALLENGE_REDIS_KEY, JSON.stringify({ verification_secret: verificationSecret, access_token: accessToken }), { ex: 10 });
  say("Sending ACK to the service and awaiting completion of verification...");
  const verified = await client.postPublic("/api/v1/remotes/server/register/verify_challenge", {
    hostname,
    access_token: accessToken,
  });
  const newId = verified?.zulip_org_id;
  const newKey = verified?.zulip_org_key;
  if (typeof newId !== "string" || typeof newKey !== "string") {
    throw new PushServiceError("The push notification service's verification answer has no zulip_org_id/zulip_org_key.", "bad_response");
  }
  say("Success! Updating secrets file with received credentials.");
  try {
    updateSecretsFile(secretsPath, { zulip_org_id: newId, zulip_org_key: newKey });
  } catch (e: any) {
    throw new CommandError(
      `${e?.message ?? e}\nThe service has already issued new credentials for ${hostname}; ` +
        "fix the problem and run register_server --registration-transfer again to get a fresh key.",
    );
  }
  request.zulip_org_id = newId;
  request.zulip_org_key = newKey;
  client.setCredentials(newId, newKey);
}

/** POST server/register; whether the registration was created (else updated). */
export async function registerServer(client: PushServiceClient, request: Record<string, string>): Promise<boolean> {
  const response = await client.postPublic("/api/v1/remotes/server/register", request);
  if (typeof response?.created !== "boolean") {
    throw new PushServiceError("The push notification service's registration answer has no 'created' field.", "bad_response");
  }
  return response.created;
}

/**
 * register_server --rotate-key after the service accepted the new key: it now only accepts the
 * new key, so it is stored before anything else can fail, and used by the client from now on.
 */
export function storeRotatedKey(client: PushServiceClient, request: Record<string, string>, secretsPath: string): void {
  try {
    updateSecretsFile(secretsPath, { zulip_org_key: request.new_org_key! });
  } catch (e: any) {
    throw new CommandError(
      `${e?.message ?? e}\nThe service has already switched this server to a new zulip_org_key that could not be saved. ` +
        "Fix the problem, then recover the registration with register_server --registration-transfer.",
    );
  }
  client.setCredentials(request.zulip_org_id!, request.new_org_key!);
}

// ---------------------------------------------------------------------------------------------
// The server data upload (zerver/lib/remote_server.py send_server_data_to_push_bouncer)

/** get_realms_info_for_push_bouncer(): every realm, ordered by id, in RealmDataForAnalytics' field order. */
async function realmsInfoForPushService(q: Queryable, settings: ZulipSettings): Promise<Record<string, unknown>[]> {
  const { rows } = await q.query(
    `SELECT id, string_id, name, org_type, deactivated, uuid::text AS uuid, uuid_owner_secret,
            EXTRACT(EPOCH FROM date_created)::float8 AS date_created
       FROM zerver_realm ORDER BY id`,
  );
  const byRealm = await realmAuthenticationMethods(q);
  const backends = settings.get("AUTHENTICATION_BACKENDS");
  const systemBotRealm = settings.get("SYSTEM_BOT_REALM");
  return rows.map((r) => ({
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
async function auditRowsForPushService(q: Queryable, afterId: number): Promise<Record<string, unknown>[]> {
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

/** A realm whose push notification status changed: old and new values (end timestamps in Unix seconds). */
export interface RealmPushChange {
  realm: RealmRef;
  pushNotificationsEnabled: { old: boolean; new: boolean } | null;
  pushNotificationsEnabledEndTimestamp: { old: number | null; new: number | null } | null;
}

/** What send_server_data_to_push_bouncer did. */
export interface ServerDataOutcome {
  /** The last rows the service had (its analytics status answer). */
  lastAcknowledged: { realmCountId: number; installationCountId: number; realmAuditLogId: number };
  realmsSent: number;
  realmAuditLogRowsSent: number;
  realmChanges: RealmPushChange[];
  /** Realm UUIDs the service answered for that this database does not have. */
  unknownRealmUuids: string[];
  /** Realms marked unable to push after the service could not be reached. */
  markedPushDisabled: RealmRef[];
  /** The --json "cache" report (cacheReportJson). */
  cache: ReturnType<typeof cacheReportJson>;
  /** The --json "events" report (eventsReportJson); null when no event had to be sent. */
  events: ReturnType<typeof eventsReportJson>;
}

export interface UploadDeps {
  ctx: PushServiceContext;
  db: Db;
  settings: ZulipSettings;
  client: PushServiceClient;
  version: ZulipVersionInfo;
  /** --flush-cache */
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
  result: ServerDataOutcome,
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
          result.unknownRealmUuids.push(w.uuid);
          deps.warn(`Received unexpected realm UUID from bouncer ${w.uuid}`);
        }
        continue;
      }
      const fields: string[] = [];
      const change: RealmPushChange = {
        realm: { id: Number(realm.id), string_id: realm.string_id, name: realm.name },
        pushNotificationsEnabled: null,
        pushNotificationsEnabledEndTimestamp: null,
      };
      const now = new Date();
      const notify = {
        events,
        realm: { id: Number(realm.id), string_id: realm.string_id },
        what: `the push notification status of ${realm.string_id || "the root-domain organization"}`,
      };
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
        change.pushNotificationsEnabled = { old: realm.push_notifications_enabled, new: w.canPush };
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
        change.pushNotificationsEnabledEndTimestamp = { old: oldTs, new: w.endTimestamp };
        fields.push("push_notifications_enabled_end_timestamp");
      }
      if (fields.length) changes.push(change);
      if (fields.length) await inval.realmChanged(q, { id: realm.id, string_id: realm.string_id, deactivated: realm.deactivated }, fields);
    }
  });
  if (changes.length) inval.changeCommitted();
  result.realmChanges.push(...changes);
  result.cache = cacheReportJson(await inval.commit());
  const delivery = await events.commit();
  if (!delivery.skipped) result.events = eventsReportJson(delivery);
}

/**
 * maybe_mark_pushes_disabled(): after a failed status request (other than a 5xx), unless push
 * notifications were observed working within the last hour (a Redis timestamp the Zulip server
 * keeps), mark every realm as unable to push.
 */
async function maybeMarkPushesDisabled(deps: UploadDeps, e: PushServiceError, result: ServerDataOutcome): Promise<void> {
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
  result.markedPushDisabled = rows.map((r) => ({ id: Number(r.id), string_id: r.string_id, name: r.name }));
}

/** send_server_data_to_push_bouncer(consider_usage_statistics=False, raise_on_error=True). */
export async function sendServerDataToPushBouncer(deps: UploadDeps): Promise<ServerDataOutcome> {
  const result: ServerDataOutcome = {
    lastAcknowledged: { realmCountId: 0, installationCountId: 0, realmAuditLogId: 0 },
    realmsSent: 0,
    realmAuditLogRowsSent: 0,
    realmChanges: [],
    unknownRealmUuids: [],
    markedPushDisabled: [],
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
  result.lastAcknowledged = {
    realmCountId: status.last_realm_count_id,
    installationCountId: status.last_installation_count_id,
    realmAuditLogId: status.last_realmauditlog_id,
  };

  const level = deps.settings.get("ANALYTICS_DATA_UPLOAD_LEVEL");
  const auditRows = level >= AnalyticsDataUploadLevel.BILLING ? await auditRowsForPushService(deps.db, status.last_realmauditlog_id) : [];
  const realms = await realmsInfoForPushService(deps.db, deps.settings);
  result.realmsSent = realms.length;
  result.realmAuditLogRowsSent = auditRows.length;

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
      result.unknownRealmUuids.push(uuid);
      deps.warn(`Received unexpected realm UUID from bouncer ${uuid}`);
      continue;
    }
    wanted.push({ uuid, canPush, endTimestamp: end });
  }
  await storePushStatus(deps, wanted, result);
  return result;
}

/** What reportServerData() did. */
export interface ServerDataReport {
  ok: boolean;
  warning: string | null;
  serverData: ServerDataOutcome | null;
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
  ctx: PushServiceContext,
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
    const client = pushServiceClient(ctx, { servicesUrl, orgId, orgKey }, readZulipVersion(ctx.paths.deployDir));
    const serverData = await sendServerDataToPushBouncer({
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
    return { ok: true, warning: null, serverData };
  } catch (e: any) {
    const error = String(e?.message ?? e);
    warn(
      `Warning: could not report the change to the Mobile Push Notification Service (${error}). ` +
        "Everything else was done; run `zulip-manage register_server` to report it later.",
    );
    return { ok: false, warning: error, serverData: null };
  }
}
