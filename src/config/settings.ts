/**
 * Zulip's effective settings, computed the way a Zulip server does:
 *
 *   zproject/default_settings.py   (defaults, some derived from EXTERNAL_HOST)
 *   → /etc/zulip/settings.py        (`from .prod_settings import *`: the file wins)
 *   → zproject/computed_settings.py (values Zulip always derives itself; for
 *                                    those, an assignment in settings.py has no effect)
 *
 * with secrets from zulip-secrets.conf and PRODUCTION from zulip.conf.
 *
 * Strictness is lazy: nothing is guessed, but nothing fails early either. A
 * setting whose final value cannot be known from literal assignments (its last
 * assignment is `get_secret(...)`, an f-string, a call; it is assigned inside
 * an `if`/`try` block; it is modified later; a `from x import *` or `exec` could
 * redefine it) throws `ConfigError` only when some code reads it, so a command
 * that does not need it still works. Derived settings throw for the setting
 * they depend on (reading ROOT_DOMAIN_URI when EXTERNAL_HOST is unreadable
 * names EXTERNAL_HOST).
 *
 * Use `settings.NAME` (a getter) or `settings.get("NAME")`;
 * `settings.problem(name)` reports without throwing. `settings.sources[name]` says where each value came from.
 */
import { pyRepr } from "../lib/pyformat.js";
import type { IniData } from "./ini.js";
import { type PyAssignments, type PyValue, type UntrustedReason, untrustedReason } from "./pysettings.js";

/** A configuration problem the user must fix; the CLI exits with `exitCode` (3). */
export class ConfigError extends Error {
  readonly exitCode = 3;
  readonly errorCode = "config_invalid" as const;
  readonly setting?: string;
  readonly file?: string;
  readonly line?: number;
  constructor(message: string, details: { setting?: string; file?: string; line?: number } = {}) {
    super(message);
    this.name = "ConfigError";
    if (details.setting !== undefined) this.setting = details.setting;
    if (details.file !== undefined) this.file = details.file;
    if (details.line !== undefined) this.line = details.line;
  }
}

/** zerver/lib/remote_server.py AnalyticsDataUploadLevel (an IntEnum). */
export const AnalyticsDataUploadLevel = { NONE: 0, BASIC: 1, BILLING: 2, ALL: 3 } as const;
export type AnalyticsDataUploadLevel = (typeof AnalyticsDataUploadLevel)[keyof typeof AnalyticsDataUploadLevel];

export const EMAIL_BACKENDS = {
  smtp: "django.core.mail.backends.smtp.EmailBackend",
  dummy: "django.core.mail.backends.dummy.EmailBackend",
  devLog: "zproject.email_backends.EmailLogBackEnd",
} as const;

export interface ZulipSettingValues {
  /** zulip.conf has `[machine] deploy_type` (else Zulip runs as a development server). */
  PRODUCTION: boolean;
  EXTERNAL_HOST: string;
  EXTERNAL_HOST_WITHOUT_PORT: string;
  ZULIP_ADMINISTRATOR: string;
  EXTERNAL_URI_SCHEME: string;
  ROOT_DOMAIN_URI: string;
  INSTALLATION_NAME: string;
  REALM_HOSTS: Record<string, string>;
  ROOT_DOMAIN_LANDING_PAGE: boolean;
  OPEN_REALM_CREATION: boolean;
  NOREPLY_EMAIL_ADDRESS: string;
  ADD_TOKENS_TO_NOREPLY_ADDRESS: boolean;
  TOKENIZED_NOREPLY_EMAIL_ADDRESS: string;
  /**
   * The domain of placeholder addresses (user<id>@…, deleteduser<id>@…) when the realm's host
   * cannot form one (get_fake_email_domain, zerver/models/realms.py): settings.py's value as
   * written — "" and all, which get_fake_email_domain then refuses — else deport(EXTERNAL_HOST)
   * (default_settings.py, computed before settings.py is applied).
   */
  FAKE_EMAIL_DOMAIN: string;
  EMAIL_HOST: string | null;
  EMAIL_HOST_USER: string;
  /** Secret `email_password`. */
  EMAIL_HOST_PASSWORD: string | null;
  EMAIL_PORT: number;
  EMAIL_USE_TLS: boolean;
  EMAIL_USE_SSL: boolean;
  EMAIL_TIMEOUT: number;
  EMAIL_ALWAYS_ENQUEUED: boolean;
  EMAIL_BACKEND: string;
  WARN_NO_EMAIL: boolean;
  DEFAULT_FROM_EMAIL: string;
  REMOTE_POSTGRES_HOST: string;
  /** "" when unset; an integer in settings.py is returned as its decimal string. */
  REMOTE_POSTGRES_PORT: string;
  REMOTE_POSTGRES_SSLMODE: string;
  MEMCACHED_LOCATION: string;
  MEMCACHED_USERNAME: string | null;
  MEMCACHED_PASSWORD: string | null;
  REDIS_HOST: string;
  REDIS_PORT: number;
  REDIS_PASSWORD: string | null;
  RABBITMQ_HOST: string;
  RABBITMQ_PORT: number;
  RABBITMQ_VHOST: string;
  RABBITMQ_USERNAME: string;
  RABBITMQ_PASSWORD: string | null;
  RABBITMQ_USE_TLS: boolean;
  ZULIP_SERVICES_URL: string | null;
  ZULIP_SERVICE_PUSH_NOTIFICATIONS: boolean;
  ZULIP_SERVICE_SUBMIT_USAGE_STATISTICS: boolean;
  ZULIP_SERVICE_SECURITY_ALERTS: boolean;
  /** Legacy setting as written (translated into the ZULIP_SERVICE_* values when those are untouched). */
  PUSH_NOTIFICATION_BOUNCER_URL: string | null;
  /** Legacy setting as written. */
  SUBMIT_USAGE_STATISTICS: boolean;
  ANALYTICS_DATA_UPLOAD_LEVEL: AnalyticsDataUploadLevel;
  CONFIRMATION_LINK_DEFAULT_VALIDITY_DAYS: number;
  INVITATION_LINK_VALIDITY_DAYS: number;
  CAN_CREATE_REALM_LINK_VALIDITY_DAYS: number;
  /** Older name of CAN_CREATE_REALM_LINK_VALIDITY_DAYS; always the same value here. */
  REALM_CREATION_LINK_VALIDITY_DAYS: number;
  SYSTEM_BOT_REALM: string;
  TIME_ZONE: string;
  PASSWORD_RESET_TIMEOUT: number;
  /** As configured (Zulip appends its internal ZulipDummyBackend at runtime; not included). */
  AUTHENTICATION_BACKENDS: string[];
  /** Mandatory secrets: reading one that is missing throws `Mandatory secret "..." is not set`. */
  SECRET_KEY: string;
  SHARED_SECRET: string;
  AVATAR_SALT: string;
  ZULIP_ORG_ID: string | null;
  ZULIP_ORG_KEY: string | null;
}

export type SettingName = keyof ZulipSettingValues;

/**
 * Where a value came from: the settings file, Zulip's default, Zulip's
 * derivation from other values/secrets/zulip.conf, or a caller override.
 */
export type SettingSource = "file" | "default" | "derived" | "override";

export interface ZulipSettings extends Readonly<ZulipSettingValues> {
  readonly settingsPath: string;
  /** Where each setting's value comes from (never throws; see the module comment). */
  readonly sources: Readonly<Record<SettingName, SettingSource>>;
  /** Settings assigned in the file that Zulip recomputes anyway (the file's value has no effect). */
  readonly ignoredFileSettings: readonly SettingName[];
  /** The parsed settings file. */
  readonly parsed: PyAssignments;
  /** The value of a setting; throws ConfigError if it cannot be read safely. */
  get<K extends SettingName>(name: K): ZulipSettingValues[K];
  /**
   * Any other setting from the file by name (literal value), or `fallback` when
   * the file does not set it. Throws ConfigError like `get`.
   */
  fileValue(name: string, fallback: PyValue): PyValue;
  /** The ConfigError reading `name` would throw, or null if it can be read. */
  problem(name: SettingName): ConfigError | null;
}

export interface ComputeSettingsOptions {
  /** Path of the settings file, for messages (normally /etc/zulip/settings.py). */
  settingsPath: string;
  /**
   * Values used instead of the file's (as if the file assigned these literals),
   * e.g. from a command-line option; lets users bypass a non-literal assignment.
   */
  overrides?: Record<string, PyValue>;
  /** How to tell the user to override a setting; default: "pass --setting NAME=VALUE". */
  overrideHint?: (name: string) => string;
}

export const SETTING_NAMES: readonly SettingName[] = [
  "PRODUCTION",
  "EXTERNAL_HOST",
  "EXTERNAL_HOST_WITHOUT_PORT",
  "ZULIP_ADMINISTRATOR",
  "EXTERNAL_URI_SCHEME",
  "ROOT_DOMAIN_URI",
  "INSTALLATION_NAME",
  "REALM_HOSTS",
  "ROOT_DOMAIN_LANDING_PAGE",
  "OPEN_REALM_CREATION",
  "NOREPLY_EMAIL_ADDRESS",
  "ADD_TOKENS_TO_NOREPLY_ADDRESS",
  "TOKENIZED_NOREPLY_EMAIL_ADDRESS",
  "FAKE_EMAIL_DOMAIN",
  "EMAIL_HOST",
  "EMAIL_HOST_USER",
  "EMAIL_HOST_PASSWORD",
  "EMAIL_PORT",
  "EMAIL_USE_TLS",
  "EMAIL_USE_SSL",
  "EMAIL_TIMEOUT",
  "EMAIL_ALWAYS_ENQUEUED",
  "EMAIL_BACKEND",
  "WARN_NO_EMAIL",
  "DEFAULT_FROM_EMAIL",
  "REMOTE_POSTGRES_HOST",
  "REMOTE_POSTGRES_PORT",
  "REMOTE_POSTGRES_SSLMODE",
  "MEMCACHED_LOCATION",
  "MEMCACHED_USERNAME",
  "MEMCACHED_PASSWORD",
  "REDIS_HOST",
  "REDIS_PORT",
  "REDIS_PASSWORD",
  "RABBITMQ_HOST",
  "RABBITMQ_PORT",
  "RABBITMQ_VHOST",
  "RABBITMQ_USERNAME",
  "RABBITMQ_PASSWORD",
  "RABBITMQ_USE_TLS",
  "ZULIP_SERVICES_URL",
  "ZULIP_SERVICE_PUSH_NOTIFICATIONS",
  "ZULIP_SERVICE_SUBMIT_USAGE_STATISTICS",
  "ZULIP_SERVICE_SECURITY_ALERTS",
  "PUSH_NOTIFICATION_BOUNCER_URL",
  "SUBMIT_USAGE_STATISTICS",
  "ANALYTICS_DATA_UPLOAD_LEVEL",
  "CONFIRMATION_LINK_DEFAULT_VALIDITY_DAYS",
  "INVITATION_LINK_VALIDITY_DAYS",
  "CAN_CREATE_REALM_LINK_VALIDITY_DAYS",
  "REALM_CREATION_LINK_VALIDITY_DAYS",
  "SYSTEM_BOT_REALM",
  "TIME_ZONE",
  "PASSWORD_RESET_TIMEOUT",
  "AUTHENTICATION_BACKENDS",
  "SECRET_KEY",
  "SHARED_SECRET",
  "AVATAR_SALT",
  "ZULIP_ORG_ID",
  "ZULIP_ORG_KEY",
];

/** Settings Zulip's computed_settings.py always assigns itself: a value in settings.py is ignored. */
const COMPUTED_ONLY: ReadonlySet<SettingName> = new Set<SettingName>([
  "PRODUCTION",
  "ROOT_DOMAIN_URI",
  "EMAIL_HOST_PASSWORD",
  "EMAIL_TIMEOUT",
  "DEFAULT_FROM_EMAIL",
  "MEMCACHED_PASSWORD",
  "REDIS_PASSWORD",
  "RABBITMQ_PASSWORD",
  "ANALYTICS_DATA_UPLOAD_LEVEL",
  "TIME_ZONE",
  "SECRET_KEY",
  "SHARED_SECRET",
  "AVATAR_SALT",
  "ZULIP_ORG_ID",
  "ZULIP_ORG_KEY",
]);

/** Django's default for PASSWORD_RESET_TIMEOUT (3 days, in seconds); Zulip does not change it. */
const DJANGO_PASSWORD_RESET_TIMEOUT = 60 * 60 * 24 * 3;

interface Resolved<T> {
  value: T;
  source: SettingSource;
}

interface FileValue {
  value: PyValue;
  line: number | null; // null for overrides
  source: "file" | "override";
}

/** Python truthiness of a literal. */
function pyTruthy(v: PyValue): boolean {
  if (v === null || v === false || v === 0 || v === "") return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === "object") return Object.keys(v).length > 0;
  return true;
}

function compact(source: string, max = 100): string {
  const s = source
    .replace(/\s+/g, " ")
    .replace(/([([{]) /g, "$1")
    .replace(/ ([)\]}])/g, "$1")
    .trim();
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/**
 * scripts/lib/zulip_tools.py deport(): the host of "host[:port]", lower-cased
 * (urllib's SplitResult.hostname); IPv6 literals keep their brackets.
 */
export function deport(netloc: string): string {
  let host = netloc;
  const at = host.lastIndexOf("@");
  if (at >= 0) host = host.slice(at + 1);
  if (host.startsWith("[")) {
    const close = host.indexOf("]");
    host = close >= 0 ? host.slice(1, close) : host.slice(1);
  } else {
    const colon = host.indexOf(":");
    if (colon >= 0) host = host.slice(0, colon);
  }
  host = host.toLowerCase();
  return host.includes(":") ? `[${host}]` : host;
}

/**
 * Compute Zulip's effective settings from the parsed settings file, the
 * `[secrets]` section of zulip-secrets.conf and zulip.conf.
 */
export function computeSettings(parsed: PyAssignments, secrets: Map<string, string>, zulipConf: IniData, opts: ComputeSettingsOptions): ZulipSettings {
  const path = opts.settingsPath;
  const overrides = opts.overrides ?? {};
  const hint = opts.overrideHint ?? ((name: string) => `pass --setting ${name}=VALUE`);

  const secret = (key: string): string | null => secrets.get(key.toLowerCase()) ?? null;

  function untrustedError(name: string, r: UntrustedReason): ConfigError {
    let why: string;
    switch (r.kind) {
      case "not-literal":
        why = `it is not a literal (${compact(r.source)})`;
        break;
      case "conditional":
        why = "it is assigned inside an indented block (if/try/for/with or a function), " + "so its value depends on code zulip-manage does not run";
        break;
      case "mutated":
        why = `it is modified by \`${compact(r.source)}\``;
        break;
      case "star-import":
      case "dynamic":
        why = `\`${compact(r.source)}\` may redefine it`;
        break;
    }
    return new ConfigError(
      `Cannot safely read ${name} from ${path} line ${r.line}: ${why}. ` +
        `Set it to a plain value (a quoted string, number, True/False/None, or a list/dict of those), or ${hint(name)}.`,
      { setting: name, file: path, line: r.line },
    );
  }

  /** The file's literal value for `name` (or an override), undefined if not set; throws if untrusted. */
  function fromFile(name: string): FileValue | undefined {
    if (Object.hasOwn(overrides, name)) return { value: overrides[name]!, line: null, source: "override" };
    const why = untrustedReason(parsed, name);
    if (why) throw untrustedError(name, why);
    const a = parsed.assignments[name];
    if (!a) return undefined;
    if (!a.ok) throw untrustedError(name, { kind: "not-literal", line: a.line, source: a.source });
    return { value: a.value, line: a.line, source: "file" };
  }

  function typeError(name: string, fv: FileValue, expected: string): ConfigError {
    const where = fv.line === null ? "the override" : `${path} line ${fv.line}`;
    return new ConfigError(`Cannot use ${name} from ${where}: expected ${expected}, but it is ${pyRepr(fv.value)}.`, {
      setting: name,
      file: path,
      ...(fv.line === null ? {} : { line: fv.line }),
    });
  }

  type Conv<T> = (name: string, fv: FileValue) => T;
  const asStr: Conv<string> = (n, fv) => {
    if (typeof fv.value !== "string") throw typeError(n, fv, "a string");
    return fv.value;
  };
  const asStrOrNull: Conv<string | null> = (n, fv) => {
    if (fv.value !== null && typeof fv.value !== "string") throw typeError(n, fv, "a string or None");
    return fv.value;
  };
  const asBool: Conv<boolean> = (_n, fv) => pyTruthy(fv.value);
  const asBoolOrNull: Conv<boolean | null> = (_n, fv) => (fv.value === null ? null : pyTruthy(fv.value));
  const asInt: Conv<number> = (n, fv) => {
    if (typeof fv.value !== "number" || !Number.isInteger(fv.value)) throw typeError(n, fv, "an integer");
    return fv.value;
  };
  const asNumber: Conv<number> = (n, fv) => {
    if (typeof fv.value !== "number" || !Number.isFinite(fv.value)) throw typeError(n, fv, "a number");
    return fv.value;
  };
  const asPort: Conv<string> = (n, fv) => {
    if (typeof fv.value === "string") return fv.value;
    if (typeof fv.value === "number" && Number.isInteger(fv.value)) return String(fv.value);
    throw typeError(n, fv, "a port number or string");
  };
  const asStrDict: Conv<Record<string, string>> = (n, fv) => {
    const v = fv.value;
    if (v === null || typeof v !== "object" || Array.isArray(v) || Object.values(v).some((x) => typeof x !== "string")) {
      throw typeError(n, fv, "a dict of strings");
    }
    return { ...(v as Record<string, string>) };
  };
  const asStrList: Conv<string[]> = (n, fv) => {
    const v = fv.value;
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw typeError(n, fv, "a tuple or list of strings");
    return [...(v as string[])];
  };

  /** The file's value if set, else the default (a constant, or derived from other settings). */
  function fileOr<T>(name: string, conv: Conv<T>, fallback: () => Resolved<T>): Resolved<T> {
    const fv = fromFile(name);
    if (fv === undefined) return fallback();
    return { value: conv(name, fv), source: fv.source };
  }
  const dflt =
    <T>(value: T) =>
    (): Resolved<T> => ({ value, source: "default" });
  const derived = <T>(value: T): Resolved<T> => ({ value, source: "derived" });

  function required(name: string): Resolved<string> {
    return fileOr(name, asStr, () => {
      throw new ConfigError(`${name} is not set in ${path}; Zulip requires it.`, { setting: name, file: path });
    });
  }
  function mandatorySecret(key: string): Resolved<string> {
    const v = secret(key);
    if (v === null) throw new ConfigError(`Mandatory secret "${key}" is not set`, { setting: key.toUpperCase() });
    return derived(v);
  }

  const v = <K extends SettingName>(name: K): ZulipSettingValues[K] => resolve(name).value;

  function services(): {
    url: Resolved<string | null>;
    push: Resolved<boolean>;
    usage: Resolved<boolean>;
    alerts: Resolved<boolean>;
    level: Resolved<AnalyticsDataUploadLevel>;
  } {
    let push = fileOr("ZULIP_SERVICE_PUSH_NOTIFICATIONS", asBool, dflt(false));
    let usage: Resolved<boolean | null> = fileOr("ZULIP_SERVICE_SUBMIT_USAGE_STATISTICS", asBoolOrNull, dflt(null));
    const alerts = fileOr("ZULIP_SERVICE_SECURITY_ALERTS", asBool, dflt(false));
    let url = fileOr("ZULIP_SERVICES_URL", asStrOrNull, dflt<string | null>("https://push.zulipchat.com"));
    if (!push.value && usage.value === null && !alerts.value) {
      // None of the modern settings is configured: translate the legacy ones.
      const legacyUrl = v("PUSH_NOTIFICATION_BOUNCER_URL");
      if (legacyUrl !== null) {
        url = derived(legacyUrl);
        push = derived(true);
        usage = derived(v("SUBMIT_USAGE_STATISTICS"));
      }
    }
    const usageFinal: Resolved<boolean> = usage.value === null ? derived(push.value) : { value: usage.value, source: usage.source };
    let level: AnalyticsDataUploadLevel = AnalyticsDataUploadLevel.NONE;
    if (alerts.value) level = AnalyticsDataUploadLevel.BASIC;
    if (push.value) level = AnalyticsDataUploadLevel.BILLING;
    if (usageFinal.value) level = AnalyticsDataUploadLevel.ALL;
    return { url, push, usage: usageFinal, alerts, level: derived(level) };
  }

  function realmCreationDays(): Resolved<number> {
    return fileOr("CAN_CREATE_REALM_LINK_VALIDITY_DAYS", asNumber, () => fileOr("REALM_CREATION_LINK_VALIDITY_DAYS", asNumber, dflt(7)));
  }

  function emailBackend(): { backend: Resolved<string>; warn: boolean } {
    const configured = fileOr("EMAIL_BACKEND", asStrOrNull, dflt<string | null>(null));
    if (configured.value !== null) return { backend: { value: configured.value, source: configured.source }, warn: false };
    if (!v("PRODUCTION")) return { backend: derived(EMAIL_BACKENDS.devLog), warn: false };
    const host = v("EMAIL_HOST");
    if (host === null || host === "") return { backend: derived(EMAIL_BACKENDS.dummy), warn: true };
    return { backend: derived(EMAIL_BACKENDS.smtp), warn: false };
  }

  const resolvers: { [K in SettingName]: () => Resolved<ZulipSettingValues[K]> } = {
    PRODUCTION: () => derived(zulipConf.get("machine")?.has("deploy_type") ?? false),
    EXTERNAL_HOST: () => required("EXTERNAL_HOST"),
    EXTERNAL_HOST_WITHOUT_PORT: () => fileOr("EXTERNAL_HOST_WITHOUT_PORT", asStr, () => derived(deport(v("EXTERNAL_HOST")))),
    ZULIP_ADMINISTRATOR: () => required("ZULIP_ADMINISTRATOR"),
    EXTERNAL_URI_SCHEME: () => fileOr("EXTERNAL_URI_SCHEME", asStr, dflt("https://")),
    ROOT_DOMAIN_URI: () => derived(v("EXTERNAL_URI_SCHEME") + v("EXTERNAL_HOST")),
    INSTALLATION_NAME: () => fileOr("INSTALLATION_NAME", asStr, () => derived(v("EXTERNAL_HOST"))),
    REALM_HOSTS: () => fileOr("REALM_HOSTS", asStrDict, () => ({ value: {}, source: "default" })),
    ROOT_DOMAIN_LANDING_PAGE: () => fileOr("ROOT_DOMAIN_LANDING_PAGE", asBool, dflt(false)),
    OPEN_REALM_CREATION: () => fileOr("OPEN_REALM_CREATION", asBool, dflt(false)),
    // default_settings.py derives these from deport(EXTERNAL_HOST) before settings.py is applied.
    NOREPLY_EMAIL_ADDRESS: () => fileOr("NOREPLY_EMAIL_ADDRESS", asStr, () => derived(`noreply@${deport(v("EXTERNAL_HOST"))}`)),
    ADD_TOKENS_TO_NOREPLY_ADDRESS: () => fileOr("ADD_TOKENS_TO_NOREPLY_ADDRESS", asBool, dflt(true)),
    TOKENIZED_NOREPLY_EMAIL_ADDRESS: () => fileOr("TOKENIZED_NOREPLY_EMAIL_ADDRESS", asStr, () => derived(`noreply-{token}@${deport(v("EXTERNAL_HOST"))}`)),
    FAKE_EMAIL_DOMAIN: () => fileOr("FAKE_EMAIL_DOMAIN", asStr, () => derived(deport(v("EXTERNAL_HOST")))),
    EMAIL_HOST: () => fileOr("EMAIL_HOST", asStrOrNull, dflt<string | null>(null)),
    EMAIL_HOST_USER: () => fileOr("EMAIL_HOST_USER", asStr, dflt("")),
    EMAIL_HOST_PASSWORD: () => derived(secret("email_password")),
    EMAIL_PORT: () => fileOr("EMAIL_PORT", asInt, dflt(25)),
    EMAIL_USE_TLS: () => fileOr("EMAIL_USE_TLS", asBool, dflt(false)),
    EMAIL_USE_SSL: () => fileOr("EMAIL_USE_SSL", asBool, dflt(false)),
    EMAIL_TIMEOUT: () => ({ value: 15, source: "default" }),
    EMAIL_ALWAYS_ENQUEUED: () => fileOr("EMAIL_ALWAYS_ENQUEUED", asBool, dflt(false)),
    EMAIL_BACKEND: () => emailBackend().backend,
    WARN_NO_EMAIL: () => {
      if (emailBackend().warn) return derived(true);
      return fileOr("WARN_NO_EMAIL", asBool, dflt(false));
    },
    DEFAULT_FROM_EMAIL: () => derived(v("ZULIP_ADMINISTRATOR")),
    REMOTE_POSTGRES_HOST: () => fileOr("REMOTE_POSTGRES_HOST", asStr, dflt("")),
    REMOTE_POSTGRES_PORT: () => fileOr("REMOTE_POSTGRES_PORT", asPort, dflt("")),
    REMOTE_POSTGRES_SSLMODE: () => fileOr("REMOTE_POSTGRES_SSLMODE", asStr, dflt("")),
    MEMCACHED_LOCATION: () => fileOr("MEMCACHED_LOCATION", asStr, dflt("127.0.0.1:11211")),
    MEMCACHED_USERNAME: () => fileOr("MEMCACHED_USERNAME", asStrOrNull, () => derived(secret("memcached_password") === null ? null : "zulip@localhost")),
    MEMCACHED_PASSWORD: () => derived(secret("memcached_password")),
    REDIS_HOST: () => fileOr("REDIS_HOST", asStr, dflt("127.0.0.1")),
    REDIS_PORT: () => fileOr("REDIS_PORT", asInt, dflt(6379)),
    REDIS_PASSWORD: () => derived(secret("redis_password")),
    RABBITMQ_HOST: () => fileOr("RABBITMQ_HOST", asStr, dflt("127.0.0.1")),
    RABBITMQ_PORT: () => fileOr("RABBITMQ_PORT", asInt, dflt(5672)),
    RABBITMQ_VHOST: () => fileOr("RABBITMQ_VHOST", asStr, dflt("/")),
    RABBITMQ_USERNAME: () => fileOr("RABBITMQ_USERNAME", asStr, dflt("zulip")),
    RABBITMQ_PASSWORD: () => derived(secret("rabbitmq_password")),
    RABBITMQ_USE_TLS: () => fileOr("RABBITMQ_USE_TLS", asBool, dflt(false)),
    ZULIP_SERVICES_URL: () => services().url,
    ZULIP_SERVICE_PUSH_NOTIFICATIONS: () => services().push,
    ZULIP_SERVICE_SUBMIT_USAGE_STATISTICS: () => services().usage,
    ZULIP_SERVICE_SECURITY_ALERTS: () => services().alerts,
    PUSH_NOTIFICATION_BOUNCER_URL: () => fileOr("PUSH_NOTIFICATION_BOUNCER_URL", asStrOrNull, dflt<string | null>(null)),
    SUBMIT_USAGE_STATISTICS: () => fileOr("SUBMIT_USAGE_STATISTICS", asBool, dflt(true)),
    ANALYTICS_DATA_UPLOAD_LEVEL: () => services().level,
    CONFIRMATION_LINK_DEFAULT_VALIDITY_DAYS: () => fileOr("CONFIRMATION_LINK_DEFAULT_VALIDITY_DAYS", asNumber, dflt(1)),
    INVITATION_LINK_VALIDITY_DAYS: () => fileOr("INVITATION_LINK_VALIDITY_DAYS", asNumber, dflt(10)),
    CAN_CREATE_REALM_LINK_VALIDITY_DAYS: realmCreationDays,
    REALM_CREATION_LINK_VALIDITY_DAYS: realmCreationDays,
    SYSTEM_BOT_REALM: () => fileOr("SYSTEM_BOT_REALM", asStr, dflt("zulipinternal")),
    TIME_ZONE: () => ({ value: "UTC", source: "default" }),
    PASSWORD_RESET_TIMEOUT: () => fileOr("PASSWORD_RESET_TIMEOUT", asNumber, dflt(DJANGO_PASSWORD_RESET_TIMEOUT)),
    // Zulip's default_settings.py has no default; the settings template (and so every
    // installed server) enables the email/password backend only.
    AUTHENTICATION_BACKENDS: () => fileOr("AUTHENTICATION_BACKENDS", asStrList, () => ({ value: ["zproject.backends.EmailAuthBackend"], source: "default" })),
    SECRET_KEY: () => mandatorySecret("secret_key"),
    SHARED_SECRET: () => mandatorySecret("shared_secret"),
    AVATAR_SALT: () => mandatorySecret("avatar_salt"),
    ZULIP_ORG_ID: () => derived(secret("zulip_org_id")),
    ZULIP_ORG_KEY: () => derived(secret("zulip_org_key")),
  };

  function resolve<K extends SettingName>(name: K): Resolved<ZulipSettingValues[K]> {
    const r = resolvers[name];
    if (!r) throw new ConfigError(`Unknown setting ${String(name)}.`, { setting: String(name) });
    return r();
  }

  const mentionedInFile = (name: string): boolean =>
    Object.hasOwn(parsed.assignments, name) || parsed.conditional.some((c) => c.name === name) || parsed.mutations.some((m) => m.name === name);

  const sources = {} as Record<SettingName, SettingSource>;
  for (const name of SETTING_NAMES) {
    try {
      sources[name] = resolve(name).source;
    } catch {
      sources[name] = mentionedInFile(name) ? "file" : "default";
    }
  }
  const ignoredFileSettings = SETTING_NAMES.filter((n) => COMPUTED_ONLY.has(n) && mentionedInFile(n));

  const settings = {
    settingsPath: path,
    sources: Object.freeze(sources),
    ignoredFileSettings: Object.freeze(ignoredFileSettings),
    parsed,
    get<K extends SettingName>(name: K): ZulipSettingValues[K] {
      return resolve(name).value;
    },
    fileValue(name: string, fallback: PyValue): PyValue {
      const fv = fromFile(name);
      return fv === undefined ? fallback : fv.value;
    },
    problem(name: SettingName): ConfigError | null {
      try {
        resolve(name);
        return null;
      } catch (e) {
        if (e instanceof ConfigError) return e;
        throw e;
      }
    },
  };
  for (const name of SETTING_NAMES) {
    Object.defineProperty(settings, name, { get: () => resolve(name).value, enumerable: true });
  }
  return settings as unknown as ZulipSettings;
}

/** Zulip's `realm.host`. */
export function realmHost(settings: ZulipSettings, stringId: string): string {
  // Each setting is read only when the rule needs it (a REALM_HOSTS that cannot be read does not
  // stop the root-domain realm).
  return realmHostFor(
    stringId,
    () => settings.get("EXTERNAL_HOST"),
    () => settings.get("REALM_HOSTS"),
  );
}

type Lazy<T> = T | (() => T);
const force = <T>(v: Lazy<T>): T => (typeof v === "function" ? (v as () => T)() : v);

/** realm.host from EXTERNAL_HOST and REALM_HOSTS: the root domain, a REALM_HOSTS entry, or <subdomain>.EXTERNAL_HOST. */
export function realmHostFor(stringId: string, externalHost: Lazy<string>, realmHosts: Lazy<Record<string, string>> = {}): string {
  if (stringId === "") return force(externalHost);
  const hosts = force(realmHosts);
  if (Object.hasOwn(hosts, stringId)) return hosts[stringId]!;
  return `${stringId}.${force(externalHost)}`;
}

/** Zulip's `realm.url` (older releases: `realm.uri`), without a trailing slash. */
export function realmUrl(settings: ZulipSettings, stringId: string): string {
  return settings.get("EXTERNAL_URI_SCHEME") + realmHost(settings, stringId);
}

export interface SettingsProblem {
  setting: string;
  message: string;
}

/**
 * manage.py's check_config(): the settings that must differ from the template's
 * placeholder (REQUIRED_SETTINGS in computed_settings.py), in Zulip's order.
 * Returns every problem instead of stopping at the first; an unreadable
 * setting is reported with its ConfigError message.
 */
export function checkRequiredSettings(settings: ZulipSettings): SettingsProblem[] {
  const required: [SettingName, (value: unknown) => boolean][] = [
    ["EXTERNAL_HOST", (x) => x === "zulip.example.com"],
    ["ZULIP_ADMINISTRATOR", (x) => x === "zulip-admin@example.com"],
    ["SECRET_KEY", (x) => x === ""],
    ["AUTHENTICATION_BACKENDS", (x) => Array.isArray(x) && x.length === 0],
  ];
  const problems: SettingsProblem[] = [];
  for (const [name, isPlaceholder] of required) {
    let value: unknown;
    try {
      value = settings.get(name);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      // A missing EXTERNAL_HOST/ZULIP_ADMINISTRATOR gets check_config's own message.
      if (/ is not set in /.test(e.message)) {
        problems.push({ setting: name, message: `Error: You must set ${name} in ${settings.settingsPath}.` });
      } else {
        problems.push({ setting: name, message: e.message });
      }
      continue;
    }
    if (isPlaceholder(value)) {
      problems.push({ setting: name, message: `Error: You must set ${name} in ${settings.settingsPath}.` });
    }
  }
  return problems;
}
