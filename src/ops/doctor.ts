// The checks behind `zulip-manage doctor`: everything the other commands depend on, each
// reported with what was found and, when it is not right, a concrete remedy.
//
// Required checks (doctor fails, exit 1, when one of them fails):
//   settings    /etc/zulip/settings.py found, readable, valid Python, EXTERNAL_HOST and
//               ZULIP_ADMINISTRATOR set (settings zulip-manage cannot read safely: warning)
//   zulip_conf  zulip.conf parses (missing: warning — Zulip then runs as a development server)
//   secrets     zulip-secrets.conf readable, with the mandatory secrets (secret_key,
//               shared_secret, avatar_salt); mode/owner other than 0640 zulip:zulip: warning
//   database    PostgreSQL reachable with the connection every command uses
//   schema      a Zulip database of a supported release (10.x–12.x; newer: warning)
//   memcached   reachable, SASL login accepted when configured (write commands delete the
//               cache entries they invalidate; without memcached those stay stale)
// Warnings only (they matter to some commands, not to zulip-manage as a whole):
//   redis       reachable with redis_password (rate-limit state)
//   rabbitmq    reachable, login accepted (RABBITMQ_* settings, rabbitmq_password), and each
//               Tornado notify queue exists and has a consumer (a running Tornado): write
//               commands publish their real-time events there
//   smtp        EMAIL_HOST configured; connect + EHLO (+ STARTTLS and login when configured),
//               no mail sent (the email commands)
//   push        ZULIP_SERVICES_URL and push notifications configured, server registered
//               (register_server)
// A check whose input is missing (no settings → no database check) is "skip".
import fs from "node:fs";
import { deploymentCachePrefixes, memcachedTarget } from "../zulip/cache.js";
import { Config, describeFile, readConfigFile } from "../config/config.js";
import type { Db } from "../db/db.js";
import { planConnection } from "../db/db.js";
import { emailConfigWarnings, emailSettings, EMAIL_DOCS_URL, Mailer } from "../services/email.js";
import { parseIni } from "../config/ini.js";
import { MemcachedClient } from "../services/memcached.js";
import type { Paths } from "../config/paths.js";
import { type PyValue } from "../config/pysettings.js";
import { RabbitConnection, rabbitTarget } from "../services/rabbitmq.js";
import { RedisClient, zulipRedisOptions } from "../services/redis.js";
import { allNotifyQueues, readTornadoSharding } from "../config/sharding.js";
import { checkRequiredSettings, EMAIL_BACKENDS, SETTING_NAMES, type SettingName } from "../config/settings.js";
import { groupName, userById, userByName } from "../lib/users.js";
import { isSupportedMigration, NEWER_THAN_SUPPORTED, releaseForMigration } from "../db/zulip-versions.js";
import { READ_LIMITS, readBounded } from "../lib/files.js";
import { withTimeout } from "../lib/timeout.js";

export type CheckStatus = "ok" | "warn" | "fail" | "skip";

export interface CheckResult {
  id: string;
  title: string;
  /** A failure of a required check makes doctor fail; others can only warn. */
  required: boolean;
  status: CheckStatus;
  /** One line: what was found. */
  summary: string;
  /** Further facts, one per line. */
  details: string[];
  /** What to do about a "fail" or "warn" (null when ok). */
  remedy: string | null;
  /** Wall time of the check, in milliseconds. */
  ms: number;
}

export interface DoctorReport {
  ok: boolean;
  requiredFailed: number;
  warnings: number;
  checks: CheckResult[];
}

export interface DoctorOptions {
  paths: Paths;
  env?: NodeJS.ProcessEnv;
  /** --setting NAME=VALUE overrides. */
  overrides?: Record<string, PyValue>;
  /** Network timeout per service (default 3000 ms). */
  timeoutMs?: number;
}

const CHECKS: readonly { id: string; title: string; required: boolean }[] = [
  { id: "settings", title: "Settings (settings.py)", required: true },
  { id: "zulip_conf", title: "Server config (zulip.conf)", required: true },
  { id: "secrets", title: "Secrets file", required: true },
  { id: "database", title: "Database connection", required: true },
  { id: "schema", title: "Zulip schema version", required: true },
  { id: "memcached", title: "Memcached", required: true },
  { id: "redis", title: "Redis", required: false },
  { id: "rabbitmq", title: "RabbitMQ (real-time events)", required: false },
  { id: "smtp", title: "Outgoing email (SMTP)", required: false },
  { id: "push", title: "Push notification service", required: false },
];

const MANDATORY_SECRETS = ["secret_key", "shared_secret", "avatar_salt"];
const GENERATE_SECRETS = "/home/zulip/deployments/current/scripts/setup/generate_secrets.py --production";

class Check {
  status: CheckStatus = "ok";
  summary = "";
  details: string[] = [];
  remedies: string[] = [];
  readonly started = Date.now();
  constructor(readonly id: string) {}

  ok(summary: string): this {
    if (!this.summary) this.summary = summary;
    else this.details.unshift(summary);
    return this;
  }
  /** Record a problem: the first one of the worst status becomes the summary line. */
  private problem(status: "warn" | "fail", text: string, remedy?: string): this {
    const rank = { ok: 0, skip: 0, warn: 1, fail: 2 };
    if (rank[status] > rank[this.status]) {
      if (this.summary) this.details.unshift(this.summary);
      this.summary = text;
      this.status = status;
    } else if (!this.summary) {
      this.summary = text;
    } else {
      this.details.push(text);
    }
    if (remedy) this.remedies.push(remedy);
    return this;
  }
  warn(text: string, remedy?: string): this {
    return this.problem("warn", text, remedy);
  }
  fail(text: string, remedy?: string): this {
    return this.problem("fail", text, remedy);
  }
  skip(summary: string): this {
    this.status = "skip";
    this.summary = summary;
    return this;
  }
  result(): CheckResult {
    const meta = CHECKS.find((c) => c.id === this.id)!;
    return {
      id: this.id,
      title: meta.title,
      required: meta.required,
      status: this.status,
      summary: this.summary,
      details: this.details,
      remedy: this.status === "ok" || this.status === "skip" || this.remedies.length === 0 ? null : [...new Set(this.remedies)].join("\n"),
      ms: Date.now() - this.started,
    };
  }
}

function errMessage(e: unknown): string {
  return String((e as Error)?.message ?? e);
}

function plural(n: number, word: string, pluralWord = `${word}s`): string {
  return `${n} ${n === 1 ? word : pluralWord}`;
}

/** The user a Zulip server runs as: the owner of the deployment directory, else 'zulip'. */
function zulipUser(deployDir: string): { name: string; uid: number; gid: number } | null {
  try {
    const st = fs.statSync(fs.realpathSync(deployDir));
    const owner = userById(st.uid);
    if (owner && owner.uid !== 0) return owner;
  } catch {
    /* no deployment here */
  }
  const z = userByName("zulip");
  return z ?? null;
}

// ---------------------------------------------------------------------------------------------
// Configuration files

interface LoadedFiles {
  settingsText: string | null;
  zulipConf: Map<string, Map<string, string>> | null;
  zulipConfFound: boolean;
  secrets: Map<string, string> | null;
  secretsFound: boolean;
  config: Config | null;
}

function checkSettingsFile(paths: Paths, overrides: Record<string, PyValue>, files: LoadedFiles): Check {
  const c = new Check("settings");
  let text: string | null;
  try {
    text = readConfigFile(paths.settingsPath, "the Zulip settings file", false);
  } catch (e) {
    const msg = errMessage(e);
    return /does not exist/.test(msg)
      ? c.fail(
          `${paths.settingsPath} not found`,
          `Point zulip-manage at the Zulip configuration directory with --conf-dir DIR or ZULIP_CONF_DIR=DIR (default /etc/zulip); ` +
            `on a Zulip server it holds settings.py, zulip.conf and zulip-secrets.conf.`,
        )
      : c.fail(msg.split("\n")[0], msg.split("\n").slice(1).join("\n") || undefined);
  }
  files.settingsText = text;
  // A placeholder Config (empty secrets/zulip.conf) is enough to parse and classify the settings;
  // the real one is built once the other files are read.
  const probe = new Config(paths, text!, files.zulipConf ?? new Map(), files.secrets ?? new Map(), files.secretsFound, overrides);
  let settings;
  try {
    settings = probe.settings;
  } catch (e) {
    const line = (e as { line?: number }).line;
    return c.fail(
      errMessage(e),
      `Fix ${paths.settingsPath}${line ? ` near line ${line}` : ""} (python3 -m py_compile ${paths.settingsPath} shows the same error), then restart Zulip.`,
    );
  }
  const sources = settings.sources;
  const fromFile = SETTING_NAMES.filter((n) => sources[n] === "file");
  const overridden = SETTING_NAMES.filter((n) => sources[n] === "override");
  const defaults = SETTING_NAMES.filter((n) => sources[n] === "default");
  const derived = SETTING_NAMES.filter((n) => sources[n] === "derived");
  c.ok(
    `${paths.settingsPath}: ${fromFile.length} of the ${SETTING_NAMES.length} settings zulip-manage uses come from the file, ` +
      `${defaults.length} are Zulip's defaults, ${derived.length} derived`,
  );
  c.details.push(`from settings.py: ${fromFile.join(", ") || "(none)"}`);
  if (overridden.length) c.details.push(`from --setting: ${overridden.join(", ")}`);
  c.details.push(`derived (secrets, zulip.conf, other settings): ${derived.join(", ") || "(none)"}`);

  for (const p of checkRequiredSettings(settings)) {
    if (p.setting === "SECRET_KEY") continue; // reported with the secrets file
    c.fail(p.message, `Set ${p.setting} in ${paths.settingsPath} (see the comments there), then restart Zulip.`);
  }
  const unreadable: string[] = [];
  for (const name of SETTING_NAMES) {
    if (sources[name] !== "file") continue;
    const problem = settings.problem(name as SettingName);
    if (problem && !/Mandatory secret/.test(problem.message)) unreadable.push(problem.message);
  }
  if (unreadable.length) {
    c.warn(
      `${plural(unreadable.length, "setting")} cannot be read safely; commands that need them stop with an error`,
      `Make those assignments plain literals in ${paths.settingsPath}, or pass --setting NAME=VALUE to zulip-manage.`,
    );
    c.details.push(...unreadable);
  }
  if (settings.ignoredFileSettings.length) {
    c.warn(
      `settings.py assigns ${settings.ignoredFileSettings.join(", ")}, which Zulip computes itself: the assignment has no effect`,
      `Remove those lines from ${paths.settingsPath} (secrets belong in zulip-secrets.conf).`,
    );
  }
  return c;
}

function checkZulipConf(paths: Paths, files: LoadedFiles): Check {
  const c = new Check("zulip_conf");
  let text: string | null;
  try {
    text = readConfigFile(paths.zulipConfPath, "the Zulip server configuration", true);
  } catch (e) {
    const msg = errMessage(e);
    return c.fail(msg.split("\n")[0], msg.split("\n").slice(1).join("\n") || undefined);
  }
  if (text === null) {
    files.zulipConf = new Map();
    return c.warn(
      `${paths.zulipConfPath} not found: settings are computed as on a development server (PRODUCTION = False)`,
      `On a production server this file exists ([machine] deploy_type = production); check --conf-dir / ZULIP_CONF_DIR.`,
    );
  }
  files.zulipConfFound = true;
  try {
    files.zulipConf = parseIni(text, { path: paths.zulipConfPath });
  } catch (e) {
    return c.fail(errMessage(e), `Fix the syntax of ${paths.zulipConfPath} (an INI file: [section] headers and key = value lines).`);
  }
  const conf = files.zulipConf;
  const deployType = conf.get("machine")?.get("deploy_type");
  const dbName = conf.get("postgresql")?.get("database_name");
  const dbUser = conf.get("postgresql")?.get("database_user");
  c.ok(
    `${paths.zulipConfPath}: ${deployType !== undefined ? `production server (deploy_type = ${deployType})` : "no [machine] deploy_type: development server"}`,
  );
  c.details.push(`database: ${dbName ?? "zulip"} as ${dbUser ?? "zulip"}${dbName || dbUser ? "" : " (defaults)"}`);
  if (deployType === undefined) {
    c.warn(
      `no [machine] deploy_type in ${paths.zulipConfPath}: Zulip (and zulip-manage) treat this as a development server`,
      `A production Zulip server has "deploy_type = production" in the [machine] section.`,
    );
  }
  return c;
}

function checkSecrets(paths: Paths, files: LoadedFiles): Check {
  const c = new Check("secrets");
  const file = paths.secretsPath;
  const production = files.zulipConf?.get("machine")?.has("deploy_type") ?? false;
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    files.secrets = new Map();
    const remedy = `Generate it as root: ${GENERATE_SECRETS}`;
    return production
      ? c.fail(`${file} not found (a production server cannot run without it)`, remedy)
      : c.warn(`${file} not found (development server: no secrets)`, remedy);
  }
  const mode = st.mode & 0o7777;
  const owner = userById(st.uid)?.name ?? String(st.uid);
  const group = groupName(st.gid);
  let text: string | null = null;
  try {
    text = readBounded(file, READ_LIMITS.config, "The secrets file");
  } catch (e: any) {
    files.secrets = new Map();
    if (e?.code === "EACCES" || e?.code === "EPERM") {
      return c.fail(
        `${file} (${describeFile(file)}) is not readable by this user`,
        `Run zulip-manage as the Zulip user ('zulip'): su zulip -c 'zulip-manage doctor' (as root it switches automatically).`,
      );
    }
    return c.fail(`cannot read ${file}: ${errMessage(e)}`);
  }
  let secrets: Map<string, string>;
  try {
    secrets = parseIni(text, { path: file }).get("secrets") ?? new Map();
  } catch (e) {
    files.secrets = new Map();
    return c.fail(errMessage(e), `Fix ${file}: a [secrets] section with "name = value" lines.`);
  }
  files.secrets = secrets;
  files.secretsFound = true;
  c.ok(`${file}: ${plural(secrets.size, "secret")}, owner ${owner}:${group}, mode ${mode.toString(8).padStart(4, "0")}`);
  const missing = MANDATORY_SECRETS.filter((k) => !secrets.has(k));
  if (missing.length) {
    c.fail(
      `mandatory ${missing.length === 1 ? "secret" : "secrets"} ${missing.map((m) => `"${m}"`).join(", ")} not set`,
      `Generate the missing secrets as root (existing values are kept): ${GENERATE_SECRETS}`,
    );
  }
  if (mode & 0o007) {
    c.warn(`${file} is accessible to every user on this machine (mode ${mode.toString(8).padStart(4, "0")})`, `Restrict it: chmod 640 ${file}`);
  }
  const zulip = zulipUser(paths.deployDir);
  if (zulip && st.uid !== zulip.uid && st.gid !== zulip.gid && (mode & 0o004) === 0) {
    c.warn(
      `the Zulip user '${zulip.name}' can neither own nor read ${file} through its group`,
      `Give it to the Zulip user: chown ${zulip.name}:${groupName(zulip.gid)} ${file} && chmod 640 ${file}`,
    );
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// Services

async function checkDatabase(config: Config, env: NodeJS.ProcessEnv): Promise<{ database: Check; schema: Check; db: Db | null }> {
  const database = new Check("database");
  const schema = new Check("schema");
  let plan;
  try {
    plan = planConnection(config, env);
  } catch (e) {
    database.fail(errMessage(e));
    schema.skip("no database connection");
    return { database, schema, db: null };
  }
  const { connect } = await import("../db/db.js");
  let db: Db;
  try {
    db = await connect(config, env);
  } catch (e) {
    const msg = errMessage(e);
    if (/^Cannot connect to the Zulip database/.test(msg)) {
      const [first, ...rest] = msg.split("\n");
      database.fail(first, rest.join("\n") || undefined);
      if (/password authentication failed|no password supplied/i.test(msg)) {
        database.remedies.unshift(
          "The database refused the password: check the postgres_password secret (and PGPASSWORD, if set) against the database role's password.",
        );
      } else if (/ECONNREFUSED|No such file|ENOENT/i.test(msg)) {
        database.remedies.unshift(`Start PostgreSQL (systemctl start postgresql) or fix the host/port: ${plan.describe}.`);
      }
      schema.skip("no database connection");
      return { database, schema, db: null };
    }
    // Connected, but not a (supported) Zulip database.
    database.ok(`connected: ${plan.describe}`);
    const [first, ...rest] = msg.split("\n");
    schema.fail(
      first,
      rest.join("\n") ||
        (/too old/.test(msg)
          ? "Upgrade the Zulip server to 10.0 or newer (zulip-manage supports Zulip 10, 11 and 12)."
          : "Check that zulip.conf [postgresql] database_name (or PGDATABASE) names the Zulip database."),
    );
    return { database, schema, db: null };
  }
  try {
    const { rows } = await db.query("SELECT current_setting('server_version') AS v, current_schemas(false) AS s, current_user AS u");
    database.ok(`connected: ${plan.describe}`);
    database.details.push(`PostgreSQL ${rows[0].v}, connected as ${rows[0].u}, search_path ${String(rows[0].s)}`);
    if (plan.password !== undefined) database.details.push("password authentication (postgres_password secret or PGPASSWORD)");
  } catch (e) {
    database.warn(`connected, but a test query failed: ${errMessage(e)}`);
  }
  const n = db.zerverMigration!;
  const series = releaseForMigration(n);
  let migrationName = String(n).padStart(4, "0");
  try {
    const { rows } = await db.query("SELECT name FROM django_migrations WHERE app = 'zerver' AND name LIKE $1 LIMIT 1", [`${migrationName}\\_%`]);
    if (rows[0]) migrationName = rows[0].name;
  } catch {
    /* keep the number */
  }
  if (isSupportedMigration(n)) {
    schema.ok(`Zulip ${series} (newest zerver migration ${migrationName}): supported`);
  } else if (series === NEWER_THAN_SUPPORTED) {
    schema.warn(
      `Zulip newer than 12.x (newest zerver migration ${migrationName}): commands detect the tables and columns they use, but this release was not tested`,
      "Upgrade zulip-manage to a version that knows this Zulip release.",
    );
  } else {
    schema.fail(`Zulip ${series} (newest zerver migration ${migrationName}): not supported`, "Upgrade the Zulip server to 10.0 or newer.");
  }
  try {
    const { rows } = await db.query(
      `SELECT (SELECT count(*) FROM zerver_realm) AS realms,
              (SELECT count(*) FROM zerver_userprofile WHERE is_active AND NOT is_bot) AS users`,
    );
    schema.details.push(`${plural(Number(rows[0].realms), "realm")}, ${plural(Number(rows[0].users), "active human user")}`);
  } catch (e) {
    schema.warn(`cannot count realms and users: ${errMessage(e)}`);
  }
  return { database, schema, db };
}

async function checkMemcached(config: Config, paths: Paths, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Check> {
  const c = new Check("memcached");
  let target;
  try {
    target = memcachedTarget(config, env);
  } catch (e) {
    return c.fail(errMessage(e), "Fix MEMCACHED_LOCATION in settings.py (host:port, or a socket path).");
  }
  const errors: string[] = [];
  const versions: string[] = [];
  for (const address of target.addresses) {
    let client: MemcachedClient | undefined;
    try {
      client = await MemcachedClient.connect(address, {
        username: target.username,
        password: target.password,
        connectTimeoutMs: timeoutMs,
        timeoutMs,
      });
      versions.push(await client.version());
      // An authenticated no-op round trip: SASL servers refuse data commands before login.
      await client.get(":1:zulip-manage-doctor-probe");
    } catch (e) {
      errors.push(errMessage(e));
    } finally {
      await client?.close().catch(() => undefined);
    }
  }
  if (errors.length) {
    const auth = errors.some((e) => /SASL|authenticat|Auth/i.test(e));
    c.fail(
      `${target.label}: ${errors.join("; ")}`,
      auth
        ? "The memcached_password secret must match the password memcached was set up with (/etc/sasl2/memcached-zulip-password " +
            "on a standard install); as root, /home/zulip/deployments/current/scripts/zulip-puppet-apply restores it."
        : `Start memcached (systemctl start memcached) or fix MEMCACHED_LOCATION in settings.py (now ${target.label.split(" (")[0]}).`,
    );
  } else {
    c.ok(`${target.label}: reachable (memcached ${versions.join(", ")})`);
    if (!target.username) {
      c.warn(
        "no SASL credentials configured (no memcached_password secret): fine only if memcached does not require a login",
        "Zulip's installer sets up SASL with a memcached_password secret; re-run zulip-puppet-apply if it is missing.",
      );
    }
  }
  const prefixes = deploymentCachePrefixes(paths.deployDir, env.ZULIP_DEPLOYMENTS_DIR);
  if (prefixes.prefixes.length) {
    c.details.push(`cache key ${prefixes.prefixes.length === 1 ? "prefix" : "prefixes"} from ${prefixes.sources.join(", ")}`);
  } else {
    c.warn(
      `no cache key prefix found (var/remote_cache_prefix under ${paths.deployDir}): write commands cannot delete exact cache keys`,
      `Set ZULIP_DEPLOY_DIR to the Zulip deployment (default /home/zulip/deployments/current), or use --flush-cache=all on write commands.`,
    );
  }
  return c;
}

async function checkRedis(config: Config, timeoutMs: number): Promise<Check> {
  const c = new Check("redis");
  let opts;
  try {
    opts = zulipRedisOptions(config.settings, (n) => config.secret(n));
  } catch (e) {
    return c.warn(errMessage(e), "Fix REDIS_HOST / REDIS_PORT in settings.py.");
  }
  let client: RedisClient | undefined;
  try {
    client = await RedisClient.connect({ ...opts, timeoutMs });
    const pong = await client.command(["PING"]);
    const info = await client.command(["INFO", "server"]).catch(() => null);
    const version = typeof info === "string" ? /redis_version:(\S+)/.exec(info)?.[1] : undefined;
    c.ok(`${opts.host}:${opts.port}: ${String(pong)}${version ? ` (Redis ${version})` : ""}${opts.password ? ", password accepted" : ""}`);
  } catch (e) {
    const msg = errMessage(e);
    c.warn(
      `${opts.host}:${opts.port}: ${msg}`,
      /password|AUTH|NOAUTH/i.test(msg)
        ? "The redis_password secret must match Redis' requirepass (/etc/redis/zuli-redis.conf on a standard install)."
        : "Start Redis (systemctl start redis-server) or fix REDIS_HOST / REDIS_PORT in settings.py.",
    );
  } finally {
    client?.close();
  }
  return c;
}

async function checkRabbitMQ(config: Config, timeoutMs: number): Promise<Check> {
  const c = new Check("rabbitmq");
  let target;
  let sharding;
  try {
    target = rabbitTarget(config);
    sharding = readTornadoSharding(config);
  } catch (e) {
    return c.warn(errMessage(e), "Fix the RABBITMQ_* settings in settings.py.");
  }
  let conn: RabbitConnection | undefined;
  try {
    conn = await RabbitConnection.open(target, { timeoutMs });
  } catch (e) {
    const msg = errMessage(e);
    const kind = (e as { kind?: string }).kind;
    return c.warn(
      `${target.label}: ${msg}`,
      kind === "auth"
        ? "The rabbitmq_password secret must be the password of RabbitMQ user RABBITMQ_USERNAME (on a standard install: /home/zulip/deployments/current/scripts/setup/configure-rabbitmq)."
        : kind === "vhost"
          ? "RABBITMQ_VHOST must name a virtual host the user may use (rabbitmqctl list_permissions -p <vhost>)."
          : "Start RabbitMQ (systemctl start rabbitmq-server) or fix RABBITMQ_HOST / RABBITMQ_PORT / RABBITMQ_USE_TLS in settings.py. " +
            "Until then write commands fall back to posting events to Tornado directly, and queue-worker jobs are not sent.",
    );
  }
  try {
    c.ok(`${target.label}: login accepted`);
    for (const p of sharding.problems) c.warn(p, "Regenerate it: /home/zulip/deployments/current/scripts/refresh-sharding-and-restart");
    for (const { port, queue } of allNotifyQueues(sharding)) {
      const info = await conn.inspect(queue);
      if (info === null) {
        c.warn(
          `queue ${queue} does not exist: the Tornado on port ${port} has never consumed from this RabbitMQ`,
          "Start the Zulip server (/home/zulip/deployments/current/scripts/restart-server); check RABBITMQ_* in settings.py point at the server's RabbitMQ.",
        );
      } else if (info.consumerCount === 0) {
        c.warn(
          `queue ${queue} has no consumer (${info.messageCount} message${info.messageCount === 1 ? "" : "s"} waiting): the Tornado on port ${port} is not running`,
          "Start the Zulip server (/home/zulip/deployments/current/scripts/restart-server); events published meanwhile wait in the queue.",
        );
      } else {
        c.ok(`queue ${queue}: ${info.consumerCount} consumer${info.consumerCount === 1 ? "" : "s"} (Tornado on port ${port}), ${info.messageCount} waiting`);
      }
    }
  } catch (e) {
    c.warn(`${target.label}: ${errMessage(e)}`);
  } finally {
    await conn.close();
  }
  return c;
}

async function checkSmtp(config: Config, timeoutMs: number): Promise<Check> {
  const c = new Check("smtp");
  let es;
  try {
    es = emailSettings(config);
  } catch (e) {
    return c.warn(errMessage(e), "Fix the email settings in settings.py.");
  }
  if (es.configuredBackend && es.configuredBackend !== EMAIL_BACKENDS.smtp) {
    return c.warn(
      `EMAIL_BACKEND is '${es.configuredBackend}': zulip-manage sends email only over SMTP`,
      `Configure SMTP (EMAIL_HOST and friends) as described in ${EMAIL_DOCS_URL}`,
    );
  }
  if (!es.host) {
    return c.warn(
      "not configured (no EMAIL_HOST): Zulip drops outgoing email, and zulip-manage's email commands refuse to run",
      `Set EMAIL_HOST, EMAIL_HOST_USER, EMAIL_PORT, EMAIL_USE_TLS in settings.py and the email_password secret, as described in ${EMAIL_DOCS_URL}`,
    );
  }
  const mode = es.useSsl ? "SSL" : es.useTls ? "STARTTLS" : "plain SMTP";
  const login = es.user && es.password ? `, login as ${es.user}` : "";
  const quick = { ...es, timeoutSeconds: Math.max(1, Math.ceil(timeoutMs / 1000)) };
  let mailer: Mailer | undefined;
  try {
    mailer = await Mailer.open(quick);
    await withTimeout(mailer.verify(), timeoutMs + 1000, `SMTP server ${es.host}:${es.port}: no answer within ${(timeoutMs + 1000) / 1000} s`);
    c.ok(`${es.host}:${es.port} (${mode}${login}): connected, EHLO accepted${login ? ", login accepted" : ""}; no mail sent`);
  } catch (e) {
    const msg = errMessage(e);
    c.warn(
      msg,
      /login|auth/i.test(msg)
        ? "Check EMAIL_HOST_USER in settings.py and the email_password secret in zulip-secrets.conf."
        : `Check EMAIL_HOST / EMAIL_PORT / EMAIL_USE_TLS / EMAIL_USE_SSL in settings.py (${EMAIL_DOCS_URL}), then test with: zulip-manage send_test_email <your address>`,
    );
  } finally {
    mailer?.close();
  }
  for (const w of emailConfigWarnings(es)) c.warn(w, 'Set the email_password secret, or set EMAIL_HOST_USER = "" to send without logging in.');
  c.details.push(`From addresses: support ${es.administrator}, noreply ${es.noreply}`);
  return c;
}

function checkPush(config: Config): Check {
  const c = new Check("push");
  const s = config.settings;
  let enabled: boolean;
  let url: string | null;
  try {
    enabled = s.get("ZULIP_SERVICE_PUSH_NOTIFICATIONS");
    url = s.get("ZULIP_SERVICES_URL");
  } catch (e) {
    return c.warn(errMessage(e), "Make ZULIP_SERVICE_PUSH_NOTIFICATIONS and ZULIP_SERVICES_URL plain values in settings.py.");
  }
  const source = s.sources.ZULIP_SERVICE_PUSH_NOTIFICATIONS;
  if (!enabled) {
    return c.skip(
      "mobile push notifications not enabled (ZULIP_SERVICE_PUSH_NOTIFICATIONS = False); to enable: set it to True in settings.py, then zulip-manage register_server",
    );
  }
  if (!url) {
    return c.warn(
      "push notifications are enabled but ZULIP_SERVICES_URL is None",
      'Set ZULIP_SERVICES_URL = "https://push.zulipchat.com" in settings.py (or remove the line to use that default).',
    );
  }
  let parsed: URL | null = null;
  try {
    parsed = new URL(url);
  } catch {
    parsed = null;
  }
  if (!parsed || !/^https?:$/.test(parsed.protocol)) {
    return c.warn(`ZULIP_SERVICES_URL = ${JSON.stringify(url)} is not an http(s) URL`, 'Set ZULIP_SERVICES_URL = "https://push.zulipchat.com" in settings.py.');
  }
  c.ok(`${url} (push notifications enabled${source === "derived" ? " through PUSH_NOTIFICATION_BOUNCER_URL" : ""})`);
  if (parsed.protocol !== "https:") c.warn(`${url} does not use https`, "Use the https URL of the push notification service.");
  if (source === "derived") {
    c.details.push("configured with the legacy PUSH_NOTIFICATION_BOUNCER_URL setting");
  }
  const orgId = config.secret("zulip_org_id");
  const orgKey = config.secret("zulip_org_key");
  if (!orgId || !orgKey) {
    c.warn(
      "this server is not registered (no zulip_org_id / zulip_org_key secret)",
      "Register it: zulip-manage register_server (as the Zulip user); see https://zulip.readthedocs.io/en/latest/production/mobile-push-notifications.html",
    );
  } else {
    c.details.push(`registered as zulip_org_id ${orgId}`);
  }
  return c;
}

// ---------------------------------------------------------------------------------------------

/** Run every check (network checks in parallel) and collect the report. Never throws. */
export async function runDoctor(opts: DoctorOptions): Promise<DoctorReport> {
  const env = opts.env ?? process.env;
  const timeoutMs = opts.timeoutMs ?? 3000;
  const files: LoadedFiles = {
    settingsText: null,
    zulipConf: null,
    zulipConfFound: false,
    secrets: null,
    secretsFound: false,
    config: null,
  };
  const zulipConf = checkZulipConf(opts.paths, files);
  const secrets = checkSecrets(opts.paths, files);
  const settings = checkSettingsFile(opts.paths, opts.overrides ?? {}, files);
  const results = new Map<string, Check>([
    ["settings", settings],
    ["zulip_conf", zulipConf],
    ["secrets", secrets],
  ]);

  // Even when settings.py has problems of its own (a placeholder value), the services can
  // still be checked as long as the file parses.
  let config: Config | null = null;
  if (files.settingsText !== null && zulipConf.status !== "fail") {
    try {
      const c = new Config(opts.paths, files.settingsText, files.zulipConf ?? new Map(), files.secrets ?? new Map(), files.secretsFound, opts.overrides ?? {});
      void c.settings;
      config = c;
    } catch {
      config = null;
    }
  }

  if (!config) {
    const why = "the configuration could not be loaded";
    for (const id of ["database", "schema", "memcached", "redis", "rabbitmq", "smtp", "push"]) results.set(id, new Check(id).skip(why));
  } else {
    const cfg = config;
    const guard = async (id: string, f: () => Promise<Check>): Promise<Check> => {
      try {
        return await f();
      } catch (e) {
        return new Check(id).fail(`internal error: ${errMessage(e)}`);
      }
    };
    const [db, memcached, redis, rabbitmq, smtp] = await Promise.all([
      checkDatabase(cfg, env).catch((e) => ({
        database: new Check("database").fail(`internal error: ${errMessage(e)}`),
        schema: new Check("schema").skip("no database connection"),
        db: null,
      })),
      guard("memcached", () => checkMemcached(cfg, opts.paths, env, timeoutMs)),
      guard("redis", () => checkRedis(cfg, timeoutMs)),
      guard("rabbitmq", () => checkRabbitMQ(cfg, timeoutMs)),
      guard("smtp", () => checkSmtp(cfg, timeoutMs)),
    ]);
    await db.db?.close();
    results.set("database", db.database);
    results.set("schema", db.schema);
    results.set("memcached", memcached);
    results.set("redis", redis);
    results.set("rabbitmq", rabbitmq);
    results.set("smtp", smtp);
    let push: Check;
    try {
      push = checkPush(cfg);
    } catch (e) {
      push = new Check("push").warn(`internal error: ${errMessage(e)}`);
    }
    results.set("push", push);
  }

  const checks = CHECKS.map((meta) => {
    const r = results.get(meta.id)!.result();
    // A non-required check never fails doctor: its failures are warnings.
    if (!meta.required && r.status === "fail") r.status = "warn";
    return r;
  });
  const requiredFailed = checks.filter((c) => c.required && c.status === "fail").length;
  const warnings = checks.filter((c) => c.status === "warn").length;
  return { ok: requiredFailed === 0, requiredFailed, warnings, checks };
}
