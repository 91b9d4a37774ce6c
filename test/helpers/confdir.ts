// A realistic /etc/zulip replica (settings.py, zulip.conf, zulip-secrets.conf) plus a deployment
// dir with var/remote_cache_prefix and a log dir, in a temp dir, for CLI tests.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { rabbitSettings, sharedRabbit } from "./rabbitmq.js";
import { makeTempDir, removeDirSync, track } from "./services.js";

export interface MakeConfDirOptions {
  /** Full settings.py text (default: installer-style file, see defaultSettings()). */
  settings?: string;
  /** Appended to settings.py (after the memcached/redis/extra lines below). */
  extraSettings?: string;
  /** Used by the default settings.py. */
  externalHost?: string;
  administrator?: string;
  /** Full zulip.conf text (default: [machine] deploy_type = production + [postgresql]). */
  zulipConf?: string;
  /**
   * Full zulip-secrets.conf text, or keys merged over freshly generated production secrets
   * (value null removes a key).
   */
  secrets?: string | Record<string, string | null>;
  /** Create the deployment dir with var/remote_cache_prefix (default true). */
  deployDir?: boolean;
  /** The current deployment's prefix (32 hex + ":"); default random. */
  cachePrefix?: string;
  /** Older deployment dirs next to the current one, each with its own prefix (default 0). */
  extraDeployments?: number;
  /** Point settings/secrets at a test memcached: MEMCACHED_LOCATION + memcached_password. */
  memcached?: { location: string; password: string | null };
  /** Point settings/secrets at a test Redis: REDIS_HOST/REDIS_PORT + redis_password. */
  redis?: { host: string; port: number; password: string | null };
  /**
   * Point settings/secrets at a RabbitMQ: RABBITMQ_HOST/_PORT/_VHOST + rabbitmq_password.
   * Default: this test file's vhost on the run's broker (see rabbitmq.ts); false: leave
   * settings.py without them (Zulip's defaults, 127.0.0.1:5672).
   */
  rabbitmq?: { host: string; port: number; vhost: string; password: string } | false;
  /** Adds [postgresql] database_name (and database_user) to the default zulip.conf. */
  db?: { name: string; user?: string };
}

export interface ConfDir {
  /** Temp root holding everything below. */
  root: string;
  /** The /etc/zulip replica (ZULIP_CONF_DIR). */
  dir: string;
  settingsPath: string;
  zulipConfPath: string;
  secretsPath: string;
  /** ".../deployments/current" (a symlink to the newest deployment); may not exist if deployDir:false. */
  deployDir: string;
  deploymentsDir: string;
  logDir: string;
  /** Current deployment's cache prefix ("<32 hex>:"), null without deploy dir. */
  cachePrefix: string | null;
  /** All deployments' prefixes, newest first. */
  cachePrefixes: string[];
  /** The RabbitMQ vhost settings.py points at (null: none configured). */
  rabbitmqVhost: string | null;
  /** Secrets as written (when given as a record / defaults). */
  secrets: Record<string, string>;
  env: { ZULIP_CONF_DIR: string; ZULIP_DEPLOY_DIR: string; ZULIP_LOG_DIR: string };
  /** Delete the temp root. Idempotent. */
  cleanup(): void;
}

const DEFAULT_EXTERNAL_HOST = "zulip.example.net";
const DEFAULT_ADMINISTRATOR = "admin@example.net";

/**
 * settings.py as the installer leaves it: the template with the two mandatory values filled in
 * single quotes (the template itself uses double quotes everywhere else).
 */
export function defaultSettings(externalHost = DEFAULT_EXTERNAL_HOST, administrator = DEFAULT_ADMINISTRATOR): string {
  return `# Zulip server settings for ${externalHost}.
#
# Settings the installer filled in are at the top; everything else is
# commented out and keeps Zulip's built-in default.  See the Zulip
# documentation for what each setting does.  After editing, restart the
# server with /home/zulip/deployments/current/scripts/restart-server.

from typing import Any

################
## Mandatory settings.

## The user-accessible Zulip hostname for this installation.
EXTERNAL_HOST = '${externalHost}'

## The address where Zulip sends server notifications.
ZULIP_ADMINISTRATOR = '${administrator}'

################
## Outgoing email (SMTP) settings.

# EMAIL_HOST = "smtp.example.com"
# EMAIL_HOST_USER = ""
# EMAIL_PORT = 587
# EMAIL_USE_TLS = True
# NOREPLY_EMAIL_ADDRESS = "noreply@" + EXTERNAL_HOST.split(":")[0]

################
## Authentication configuration.

AUTHENTICATION_BACKENDS: tuple[str, ...] = (
    "zproject.backends.EmailAuthBackend",  # Email and password; just requires SMTP setup
    # "zproject.backends.GoogleAuthBackend",  # Google auth
    # "zproject.backends.GitHubAuthBackend",  # GitHub auth
)

################
## Service configuration.

## Remote database server (default: local PostgreSQL over its Unix socket).
# REMOTE_POSTGRES_HOST = "dbserver.example.com"
# REMOTE_POSTGRES_PORT = "5432"
# REMOTE_POSTGRES_SSLMODE = "require"

## Memcached, RabbitMQ and Redis (default: on this machine).
# MEMCACHED_LOCATION = "127.0.0.1:11211"
# RABBITMQ_HOST = "127.0.0.1"
# REDIS_HOST = "127.0.0.1"
# REDIS_PORT = 6379

################
## Miscellaneous settings.

## Organization creation without a link from the server administrator.
# OPEN_REALM_CREATION = True

## Serve a landing page at the root domain instead of an organization.
# ROOT_DOMAIN_LANDING_PAGE = True

## Per-organization hostnames not under EXTERNAL_HOST.
# REALM_HOSTS = {
#     "example": "chat.example.com",
# }
`;
}

function defaultZulipConf(db?: { name: string; user?: string }): string {
  let s = `[machine]
puppet_classes = zulip::profile::standalone
deploy_type = production

[postgresql]
version = 15
`;
  if (db) {
    s += `database_name = ${db.name}\n`;
    if (db.user) s += `database_user = ${db.user}\n`;
  }
  return s;
}

function randomString(len: number, alphabet: string): string {
  let s = "";
  while (s.length < len) {
    for (const b of crypto.randomBytes(len)) {
      // Rejection sampling keeps the distribution uniform.
      if (b < 256 - (256 % alphabet.length)) s += alphabet[b % alphabet.length];
      if (s.length === len) break;
    }
  }
  return s;
}

const ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const DJANGO_SECRET_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789!@#$%^&*(-_=+)";

/** Secrets a standalone production install has after generate_secrets (fresh random values). */
export function defaultSecrets(): Record<string, string> {
  const hex = (): string => crypto.randomBytes(32).toString("hex");
  return {
    avatar_salt: hex(),
    rabbitmq_password: hex(),
    shared_secret: hex(),
    secret_key: randomString(50, DJANGO_SECRET_CHARS),
    camo_key: randomString(64, ALNUM),
    memcached_password: hex(),
    redis_password: hex(),
    zulip_org_key: randomString(64, ALNUM),
    zulip_org_id: crypto.randomUUID(),
  };
}

export function newCachePrefix(): string {
  return crypto.randomBytes(16).toString("hex") + ":";
}

function deploymentName(t: Date): string {
  const p = (n: number): string => String(n).padStart(2, "0");
  return `${t.getUTCFullYear()}-${p(t.getUTCMonth() + 1)}-${p(t.getUTCDate())}-${p(t.getUTCHours())}-${p(t.getUTCMinutes())}-${p(t.getUTCSeconds())}`;
}

export function makeConfDir(opts: MakeConfDirOptions = {}): ConfDir {
  const root = makeTempDir("conf", { serviceOwned: false });
  const untrack = track({ label: "confdir", pid: () => -1, signal: "SIGKILL", dir: root });
  fs.chmodSync(root, 0o755);
  const dir = path.join(root, "etc-zulip");
  const deploymentsDir = path.join(root, "deployments");
  const deployDir = path.join(deploymentsDir, "current");
  const logDir = path.join(root, "log");
  fs.mkdirSync(dir, { mode: 0o755 });
  fs.mkdirSync(logDir, { mode: 0o755 });

  // settings.py
  let settings = opts.settings ?? defaultSettings(opts.externalHost, opts.administrator);
  const extra: string[] = [];
  if (opts.memcached) extra.push(`MEMCACHED_LOCATION = "${opts.memcached.location}"`);
  if (opts.redis) extra.push(`REDIS_HOST = "${opts.redis.host}"`, `REDIS_PORT = ${opts.redis.port}`);
  const rabbitmq = opts.rabbitmq ?? (opts.rabbitmq === false || !sharedRabbit() ? false : rabbitSettings());
  if (rabbitmq) {
    extra.push(`RABBITMQ_HOST = "${rabbitmq.host}"`, `RABBITMQ_PORT = ${rabbitmq.port}`, `RABBITMQ_VHOST = ${JSON.stringify(rabbitmq.vhost)}`);
  }
  if (extra.length) settings += `${settings.endsWith("\n") ? "" : "\n"}\n${extra.join("\n")}\n`;
  if (opts.extraSettings) settings += `${settings.endsWith("\n") ? "" : "\n"}${opts.extraSettings}\n`;
  const settingsPath = path.join(dir, "settings.py");
  fs.writeFileSync(settingsPath, settings, { mode: 0o644 });

  // zulip.conf
  const zulipConfPath = path.join(dir, "zulip.conf");
  fs.writeFileSync(zulipConfPath, opts.zulipConf ?? defaultZulipConf(opts.db), { mode: 0o644 });

  // zulip-secrets.conf
  const secretsPath = path.join(dir, "zulip-secrets.conf");
  let secrets: Record<string, string> = {};
  if (typeof opts.secrets === "string") {
    fs.writeFileSync(secretsPath, opts.secrets, { mode: 0o640 });
  } else {
    const merged: Record<string, string | null> = { ...defaultSecrets() };
    if (opts.memcached) merged.memcached_password = opts.memcached.password;
    if (opts.redis) merged.redis_password = opts.redis.password;
    if (rabbitmq) merged.rabbitmq_password = rabbitmq.password;
    Object.assign(merged, opts.secrets ?? {});
    secrets = Object.fromEntries(Object.entries(merged).filter((e): e is [string, string] => e[1] !== null));
    const body = Object.entries(secrets)
      .map(([k, v]) => `${k} = ${v}\n`)
      .join("");
    fs.writeFileSync(secretsPath, `[secrets]\n${body}`, { mode: 0o640 });
  }
  fs.chmodSync(secretsPath, 0o640);

  // deployments/<timestamp>/var/remote_cache_prefix, newest = "current"
  const cachePrefixes: string[] = [];
  if (opts.deployDir !== false) {
    fs.mkdirSync(deploymentsDir, { mode: 0o755 });
    const now = Date.now();
    const n = 1 + (opts.extraDeployments ?? 0);
    let newest = "";
    for (let i = 0; i < n; i++) {
      const name = deploymentName(new Date(now - i * 86_400_000));
      const prefix = i === 0 && opts.cachePrefix ? opts.cachePrefix : newCachePrefix();
      fs.mkdirSync(path.join(deploymentsDir, name, "var"), { recursive: true });
      fs.writeFileSync(path.join(deploymentsDir, name, "var", "remote_cache_prefix"), `${prefix}\n`);
      cachePrefixes.push(prefix);
      if (i === 0) newest = name;
    }
    fs.symlinkSync(newest, deployDir);
  }

  let cleaned = false;
  return {
    root,
    dir,
    settingsPath,
    zulipConfPath,
    secretsPath,
    deployDir,
    deploymentsDir,
    logDir,
    cachePrefix: cachePrefixes[0] ?? null,
    cachePrefixes,
    secrets,
    rabbitmqVhost: rabbitmq ? rabbitmq.vhost : null,
    env: { ZULIP_CONF_DIR: dir, ZULIP_DEPLOY_DIR: deployDir, ZULIP_LOG_DIR: logDir },
    cleanup() {
      if (cleaned) return;
      cleaned = true;
      untrack();
      removeDirSync(root);
    },
  };
}
