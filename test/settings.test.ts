// Unit tests for Zulip's effective settings (defaults, derivations, lazy strictness); no database.
import { describe, expect, it } from "vitest";
import { parseIni } from "../src/config/ini.js";
import { parsePySettings } from "../src/config/pysettings.js";
import {
  AnalyticsDataUploadLevel,
  checkRequiredSettings,
  computeSettings,
  ConfigError,
  deport,
  EMAIL_BACKENDS,
  realmHost,
  realmUrl,
  SETTING_NAMES,
  type ComputeSettingsOptions,
  type ZulipSettings,
} from "../src/config/settings.js";

const PATH = "/etc/zulip/settings.py";
const PROD_CONF = "[machine]\npuppet_classes = zulip::profile::standalone\ndeploy_type = production\n";
const BASE = "EXTERNAL_HOST = 'chat.example.org'\nZULIP_ADMINISTRATOR = 'admin@example.org'\n";
const SECRETS = "[secrets]\nsecret_key = sk\nshared_secret = ss\navatar_salt = as\nrabbitmq_password = rp\n";

function make(settingsPy: string, opts: { secrets?: string; conf?: string; options?: Partial<ComputeSettingsOptions> } = {}): ZulipSettings {
  const secretsIni = parseIni(opts.secrets ?? SECRETS);
  return computeSettings(parsePySettings(settingsPy), secretsIni.get("secrets") ?? new Map(), parseIni(opts.conf ?? PROD_CONF), {
    settingsPath: PATH,
    ...opts.options,
  });
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("defaults (a minimal production settings.py)", () => {
  const s = make(BASE);

  it("required values come from the file", () => {
    expect(s.EXTERNAL_HOST).toBe("chat.example.org");
    expect(s.ZULIP_ADMINISTRATOR).toBe("admin@example.org");
    expect(s.PRODUCTION).toBe(true);
    expect(s.sources.EXTERNAL_HOST).toBe("file");
    expect(s.sources.PRODUCTION).toBe("derived");
  });

  it("matches Zulip's default_settings/computed_settings values", () => {
    expect({
      EXTERNAL_URI_SCHEME: s.EXTERNAL_URI_SCHEME,
      ROOT_DOMAIN_URI: s.ROOT_DOMAIN_URI,
      INSTALLATION_NAME: s.INSTALLATION_NAME,
      REALM_HOSTS: s.REALM_HOSTS,
      ROOT_DOMAIN_LANDING_PAGE: s.ROOT_DOMAIN_LANDING_PAGE,
      OPEN_REALM_CREATION: s.OPEN_REALM_CREATION,
      NOREPLY_EMAIL_ADDRESS: s.NOREPLY_EMAIL_ADDRESS,
      ADD_TOKENS_TO_NOREPLY_ADDRESS: s.ADD_TOKENS_TO_NOREPLY_ADDRESS,
      TOKENIZED_NOREPLY_EMAIL_ADDRESS: s.TOKENIZED_NOREPLY_EMAIL_ADDRESS,
      EMAIL_HOST: s.EMAIL_HOST,
      EMAIL_HOST_USER: s.EMAIL_HOST_USER,
      EMAIL_HOST_PASSWORD: s.EMAIL_HOST_PASSWORD,
      EMAIL_PORT: s.EMAIL_PORT,
      EMAIL_USE_TLS: s.EMAIL_USE_TLS,
      EMAIL_USE_SSL: s.EMAIL_USE_SSL,
      EMAIL_TIMEOUT: s.EMAIL_TIMEOUT,
      EMAIL_ALWAYS_ENQUEUED: s.EMAIL_ALWAYS_ENQUEUED,
      EMAIL_BACKEND: s.EMAIL_BACKEND,
      WARN_NO_EMAIL: s.WARN_NO_EMAIL,
      DEFAULT_FROM_EMAIL: s.DEFAULT_FROM_EMAIL,
      REMOTE_POSTGRES_HOST: s.REMOTE_POSTGRES_HOST,
      REMOTE_POSTGRES_PORT: s.REMOTE_POSTGRES_PORT,
      REMOTE_POSTGRES_SSLMODE: s.REMOTE_POSTGRES_SSLMODE,
      MEMCACHED_LOCATION: s.MEMCACHED_LOCATION,
      MEMCACHED_USERNAME: s.MEMCACHED_USERNAME,
      REDIS_HOST: s.REDIS_HOST,
      REDIS_PORT: s.REDIS_PORT,
      REDIS_PASSWORD: s.REDIS_PASSWORD,
      RABBITMQ_HOST: s.RABBITMQ_HOST,
      RABBITMQ_PORT: s.RABBITMQ_PORT,
      RABBITMQ_VHOST: s.RABBITMQ_VHOST,
      RABBITMQ_USERNAME: s.RABBITMQ_USERNAME,
      RABBITMQ_PASSWORD: s.RABBITMQ_PASSWORD,
      RABBITMQ_USE_TLS: s.RABBITMQ_USE_TLS,
      ZULIP_SERVICES_URL: s.ZULIP_SERVICES_URL,
      ZULIP_SERVICE_PUSH_NOTIFICATIONS: s.ZULIP_SERVICE_PUSH_NOTIFICATIONS,
      ZULIP_SERVICE_SUBMIT_USAGE_STATISTICS: s.ZULIP_SERVICE_SUBMIT_USAGE_STATISTICS,
      ZULIP_SERVICE_SECURITY_ALERTS: s.ZULIP_SERVICE_SECURITY_ALERTS,
      PUSH_NOTIFICATION_BOUNCER_URL: s.PUSH_NOTIFICATION_BOUNCER_URL,
      ANALYTICS_DATA_UPLOAD_LEVEL: s.ANALYTICS_DATA_UPLOAD_LEVEL,
      CONFIRMATION_LINK_DEFAULT_VALIDITY_DAYS: s.CONFIRMATION_LINK_DEFAULT_VALIDITY_DAYS,
      INVITATION_LINK_VALIDITY_DAYS: s.INVITATION_LINK_VALIDITY_DAYS,
      CAN_CREATE_REALM_LINK_VALIDITY_DAYS: s.CAN_CREATE_REALM_LINK_VALIDITY_DAYS,
      REALM_CREATION_LINK_VALIDITY_DAYS: s.REALM_CREATION_LINK_VALIDITY_DAYS,
      SYSTEM_BOT_REALM: s.SYSTEM_BOT_REALM,
      TIME_ZONE: s.TIME_ZONE,
      PASSWORD_RESET_TIMEOUT: s.PASSWORD_RESET_TIMEOUT,
      AUTHENTICATION_BACKENDS: s.AUTHENTICATION_BACKENDS,
      SECRET_KEY: s.SECRET_KEY,
      ZULIP_ORG_ID: s.ZULIP_ORG_ID,
    }).toEqual({
      EXTERNAL_URI_SCHEME: "https://",
      ROOT_DOMAIN_URI: "https://chat.example.org",
      INSTALLATION_NAME: "chat.example.org",
      REALM_HOSTS: {},
      ROOT_DOMAIN_LANDING_PAGE: false,
      OPEN_REALM_CREATION: false,
      NOREPLY_EMAIL_ADDRESS: "noreply@chat.example.org",
      ADD_TOKENS_TO_NOREPLY_ADDRESS: true,
      TOKENIZED_NOREPLY_EMAIL_ADDRESS: "noreply-{token}@chat.example.org",
      EMAIL_HOST: null,
      EMAIL_HOST_USER: "",
      EMAIL_HOST_PASSWORD: null,
      EMAIL_PORT: 25,
      EMAIL_USE_TLS: false,
      EMAIL_USE_SSL: false,
      EMAIL_TIMEOUT: 15,
      EMAIL_ALWAYS_ENQUEUED: false,
      EMAIL_BACKEND: EMAIL_BACKENDS.dummy,
      WARN_NO_EMAIL: true,
      DEFAULT_FROM_EMAIL: "admin@example.org",
      REMOTE_POSTGRES_HOST: "",
      REMOTE_POSTGRES_PORT: "",
      REMOTE_POSTGRES_SSLMODE: "",
      MEMCACHED_LOCATION: "127.0.0.1:11211",
      MEMCACHED_USERNAME: null,
      REDIS_HOST: "127.0.0.1",
      REDIS_PORT: 6379,
      REDIS_PASSWORD: null,
      RABBITMQ_HOST: "127.0.0.1",
      RABBITMQ_PORT: 5672,
      RABBITMQ_VHOST: "/",
      RABBITMQ_USERNAME: "zulip",
      RABBITMQ_PASSWORD: "rp",
      RABBITMQ_USE_TLS: false,
      ZULIP_SERVICES_URL: "https://push.zulipchat.com",
      ZULIP_SERVICE_PUSH_NOTIFICATIONS: false,
      ZULIP_SERVICE_SUBMIT_USAGE_STATISTICS: false,
      ZULIP_SERVICE_SECURITY_ALERTS: false,
      PUSH_NOTIFICATION_BOUNCER_URL: null,
      ANALYTICS_DATA_UPLOAD_LEVEL: AnalyticsDataUploadLevel.NONE,
      CONFIRMATION_LINK_DEFAULT_VALIDITY_DAYS: 1,
      INVITATION_LINK_VALIDITY_DAYS: 10,
      CAN_CREATE_REALM_LINK_VALIDITY_DAYS: 7,
      REALM_CREATION_LINK_VALIDITY_DAYS: 7,
      SYSTEM_BOT_REALM: "zulipinternal",
      TIME_ZONE: "UTC",
      PASSWORD_RESET_TIMEOUT: 259200,
      AUTHENTICATION_BACKENDS: ["zproject.backends.EmailAuthBackend"],
      SECRET_KEY: "sk",
      ZULIP_ORG_ID: null,
    });
  });

  it("reports sources for every setting without throwing", () => {
    expect(Object.keys(s.sources).sort()).toEqual([...SETTING_NAMES].sort());
    expect(s.sources.EMAIL_PORT).toBe("default");
    expect(s.sources.NOREPLY_EMAIL_ADDRESS).toBe("derived");
    expect(s.sources.EMAIL_BACKEND).toBe("derived");
    expect(s.sources.SECRET_KEY).toBe("derived");
    expect(s.ignoredFileSettings).toEqual([]);
  });

  it("get() and the getters agree", () => {
    expect(s.get("EMAIL_PORT")).toBe(25);
    expect(Object.keys(s)).toEqual(expect.arrayContaining(["EXTERNAL_HOST", "get", "sources"]));
  });
});

describe("values from the file", () => {
  const s = make(
    BASE +
      [
        "EXTERNAL_URI_SCHEME = 'http://'",
        "INSTALLATION_NAME = 'Example Chat'",
        "REALM_HOSTS = {'sales': 'sales.example.net'}",
        "NOREPLY_EMAIL_ADDRESS = 'no-reply@example.org'",
        "ADD_TOKENS_TO_NOREPLY_ADDRESS = False",
        "EMAIL_HOST = 'smtp.example.org'",
        "EMAIL_HOST_USER = 'mailer'",
        "EMAIL_PORT = 587",
        "EMAIL_USE_TLS = True",
        "EMAIL_TIMEOUT = 99",
        "DEFAULT_FROM_EMAIL = 'ignored@example.org'",
        "TIME_ZONE = 'Europe/Paris'",
        "REMOTE_POSTGRES_HOST = 'db1,db2'",
        "REMOTE_POSTGRES_PORT = 5433",
        "REMOTE_POSTGRES_SSLMODE = 'require'",
        "MEMCACHED_LOCATION = '10.0.0.5:11211'",
        "REDIS_HOST = 'redis.internal'",
        "REDIS_PORT = 6380",
        "RABBITMQ_HOST = 'mq.internal'",
        "RABBITMQ_PORT = 5671",
        "RABBITMQ_VHOST = '/zulip'",
        "RABBITMQ_USERNAME = 'zmq'",
        "RABBITMQ_USE_TLS = True",
        "CONFIRMATION_LINK_DEFAULT_VALIDITY_DAYS = 2",
        "INVITATION_LINK_VALIDITY_DAYS = 14",
        "SYSTEM_BOT_REALM = 'internal'",
        "PASSWORD_RESET_TIMEOUT = 3600",
        "AUTHENTICATION_BACKENDS: tuple[str, ...] = ('zproject.backends.EmailAuthBackend', 'zproject.backends.SAMLAuthBackend')",
      ].join("\n"),
    { secrets: SECRETS + "email_password = mailpw\nredis_password = rpw\nmemcached_password = mpw\nzulip_org_id = uuid\nzulip_org_key = key\n" },
  );

  it("file values win over defaults", () => {
    expect(s.ROOT_DOMAIN_URI).toBe("http://chat.example.org");
    expect(s.INSTALLATION_NAME).toBe("Example Chat");
    expect(s.REALM_HOSTS).toEqual({ sales: "sales.example.net" });
    expect(s.NOREPLY_EMAIL_ADDRESS).toBe("no-reply@example.org");
    expect(s.ADD_TOKENS_TO_NOREPLY_ADDRESS).toBe(false);
    expect(s.EMAIL_HOST).toBe("smtp.example.org");
    expect(s.EMAIL_HOST_USER).toBe("mailer");
    expect(s.EMAIL_PORT).toBe(587);
    expect(s.EMAIL_USE_TLS).toBe(true);
    expect(s.EMAIL_BACKEND).toBe(EMAIL_BACKENDS.smtp);
    expect(s.WARN_NO_EMAIL).toBe(false);
    expect(s.REMOTE_POSTGRES_HOST).toBe("db1,db2");
    expect(s.REMOTE_POSTGRES_PORT).toBe("5433");
    expect(s.REMOTE_POSTGRES_SSLMODE).toBe("require");
    expect(s.MEMCACHED_LOCATION).toBe("10.0.0.5:11211");
    expect([s.REDIS_HOST, s.REDIS_PORT]).toEqual(["redis.internal", 6380]);
    expect([s.RABBITMQ_HOST, s.RABBITMQ_PORT, s.RABBITMQ_VHOST, s.RABBITMQ_USERNAME, s.RABBITMQ_USE_TLS]).toEqual(["mq.internal", 5671, "/zulip", "zmq", true]);
    expect([s.CONFIRMATION_LINK_DEFAULT_VALIDITY_DAYS, s.INVITATION_LINK_VALIDITY_DAYS]).toEqual([2, 14]);
    expect(s.SYSTEM_BOT_REALM).toBe("internal");
    expect(s.PASSWORD_RESET_TIMEOUT).toBe(3600);
    expect(s.AUTHENTICATION_BACKENDS).toEqual(["zproject.backends.EmailAuthBackend", "zproject.backends.SAMLAuthBackend"]);
    expect(s.sources.EMAIL_PORT).toBe("file");
    expect(s.sources.AUTHENTICATION_BACKENDS).toBe("file");
  });

  it("secrets feed the password settings and MEMCACHED_USERNAME", () => {
    expect(s.EMAIL_HOST_PASSWORD).toBe("mailpw");
    expect(s.REDIS_PASSWORD).toBe("rpw");
    expect(s.MEMCACHED_PASSWORD).toBe("mpw");
    expect(s.MEMCACHED_USERNAME).toBe("zulip@localhost");
    expect(s.sources.MEMCACHED_USERNAME).toBe("derived");
    expect([s.ZULIP_ORG_ID, s.ZULIP_ORG_KEY]).toEqual(["uuid", "key"]);
  });

  it("settings Zulip always computes itself ignore the file (and are reported)", () => {
    expect(s.EMAIL_TIMEOUT).toBe(15);
    expect(s.DEFAULT_FROM_EMAIL).toBe("admin@example.org");
    expect(s.TIME_ZONE).toBe("UTC");
    expect(s.ignoredFileSettings).toEqual(["EMAIL_TIMEOUT", "DEFAULT_FROM_EMAIL", "TIME_ZONE"]);
  });

  it("MEMCACHED_USERNAME can be set (or cleared) in the file", () => {
    expect(make(BASE + "MEMCACHED_USERNAME = None", { secrets: SECRETS + "memcached_password = x\n" }).MEMCACHED_USERNAME).toBeNull();
    expect(make(BASE + "MEMCACHED_USERNAME = 'me'").MEMCACHED_USERNAME).toBe("me");
  });

  it("fileValue reads any other literal setting", () => {
    const t = make(BASE + "LOCAL_UPLOADS_DIR = '/home/zulip/uploads'\nMAX_FILE_UPLOAD_SIZE = 25");
    expect(t.fileValue("LOCAL_UPLOADS_DIR", null)).toBe("/home/zulip/uploads");
    expect(t.fileValue("MAX_FILE_UPLOAD_SIZE", 100)).toBe(25);
    expect(t.fileValue("S3_AUTH_UPLOADS_BUCKET", "")).toBe("");
  });
});

describe("derived host values", () => {
  it("strips the port and lower-cases the host for the noreply addresses (deport)", () => {
    const s = make("EXTERNAL_HOST = 'Chat.Example.org:8443'\nZULIP_ADMINISTRATOR = 'a@b.c'");
    expect(s.EXTERNAL_HOST_WITHOUT_PORT).toBe("chat.example.org");
    expect(s.NOREPLY_EMAIL_ADDRESS).toBe("noreply@chat.example.org");
    expect(s.TOKENIZED_NOREPLY_EMAIL_ADDRESS).toBe("noreply-{token}@chat.example.org");
    expect(s.ROOT_DOMAIN_URI).toBe("https://Chat.Example.org:8443");
    expect(s.INSTALLATION_NAME).toBe("Chat.Example.org:8443");
  });

  it("FAKE_EMAIL_DOMAIN: settings.py's value as written (even empty), else deport(EXTERNAL_HOST) like default_settings.py", () => {
    const dflt = make("EXTERNAL_HOST = 'Chat.Example.org:8443'\nZULIP_ADMINISTRATOR = 'a@b.c'");
    expect(dflt.FAKE_EMAIL_DOMAIN).toBe("chat.example.org");
    expect(dflt.sources.FAKE_EMAIL_DOMAIN).toBe("derived");
    // default_settings.py computes it from EXTERNAL_HOST, not from a settings.py EXTERNAL_HOST_WITHOUT_PORT.
    const own = make("EXTERNAL_HOST = 'chat.example.org:8443'\nEXTERNAL_HOST_WITHOUT_PORT = 'other.example'\nZULIP_ADMINISTRATOR = 'a@b.c'");
    expect(own.FAKE_EMAIL_DOMAIN).toBe("chat.example.org");
    const set = make(`${BASE}FAKE_EMAIL_DOMAIN = 'fake.example.net'\n`);
    expect([set.FAKE_EMAIL_DOMAIN, set.sources.FAKE_EMAIL_DOMAIN]).toEqual(["fake.example.net", "file"]);
    // An empty value is a value: get_fake_email_domain refuses it ("bot@" is no address).
    const empty = make(`${BASE}FAKE_EMAIL_DOMAIN = ''\n`);
    expect([empty.FAKE_EMAIL_DOMAIN, empty.sources.FAKE_EMAIL_DOMAIN]).toEqual(["", "file"]);
  });

  it("deport handles IPv6 literals and user info like urllib", () => {
    expect(deport("[::1]:9991")).toBe("[::1]");
    expect(deport("[FE80::1]")).toBe("[fe80::1]");
    expect(deport("user@host:80")).toBe("host");
    expect(deport("localhost")).toBe("localhost");
  });
});

describe("email backend selection (computed_settings.py)", () => {
  it("an explicit EMAIL_BACKEND wins", () => {
    const s = make(BASE + "EMAIL_BACKEND = 'django.core.mail.backends.console.EmailBackend'");
    expect(s.EMAIL_BACKEND).toBe("django.core.mail.backends.console.EmailBackend");
    expect(s.sources.EMAIL_BACKEND).toBe("file");
    expect(s.WARN_NO_EMAIL).toBe(false);
  });

  it("no EMAIL_HOST (or an empty one) in production: dummy backend and WARN_NO_EMAIL", () => {
    for (const extra of ["", "EMAIL_HOST = ''", "EMAIL_HOST = None"]) {
      const s = make(BASE + extra);
      expect(s.EMAIL_BACKEND).toBe(EMAIL_BACKENDS.dummy);
      expect(s.WARN_NO_EMAIL).toBe(true);
    }
  });

  it("a development server (no deploy_type in zulip.conf) logs emails", () => {
    const s = make(BASE + "EMAIL_HOST = 'smtp.example.org'", { conf: "[machine]\npuppet_classes = x\n" });
    expect(s.PRODUCTION).toBe(false);
    expect(s.EMAIL_BACKEND).toBe(EMAIL_BACKENDS.devLog);
    expect(make(BASE, { conf: "" }).PRODUCTION).toBe(false);
  });
});

describe("Zulip services (push notifications) and the legacy settings", () => {
  const level = (extra: string) => {
    const s = make(BASE + extra);
    return {
      url: s.ZULIP_SERVICES_URL,
      push: s.ZULIP_SERVICE_PUSH_NOTIFICATIONS,
      usage: s.ZULIP_SERVICE_SUBMIT_USAGE_STATISTICS,
      alerts: s.ZULIP_SERVICE_SECURITY_ALERTS,
      level: s.ANALYTICS_DATA_UPLOAD_LEVEL,
    };
  };
  const DEFAULT_URL = "https://push.zulipchat.com";

  it("push notifications enable usage statistics unless switched off", () => {
    expect(level("ZULIP_SERVICE_PUSH_NOTIFICATIONS = True")).toEqual({ url: DEFAULT_URL, push: true, usage: true, alerts: false, level: 3 });
    expect(level("ZULIP_SERVICE_PUSH_NOTIFICATIONS = True\nZULIP_SERVICE_SUBMIT_USAGE_STATISTICS = False")).toEqual({
      url: DEFAULT_URL,
      push: true,
      usage: false,
      alerts: false,
      level: AnalyticsDataUploadLevel.BILLING,
    });
  });

  it("security alerts alone upload basic metadata; usage statistics alone upload everything", () => {
    expect(level("ZULIP_SERVICE_SECURITY_ALERTS = True").level).toBe(AnalyticsDataUploadLevel.BASIC);
    expect(level("ZULIP_SERVICE_SUBMIT_USAGE_STATISTICS = True")).toMatchObject({ push: false, usage: true, level: 3 });
    expect(level("ZULIP_SERVICES_URL = 'https://push.example.net'\nZULIP_SERVICE_PUSH_NOTIFICATIONS = True").url).toBe("https://push.example.net");
  });

  it("a legacy PUSH_NOTIFICATION_BOUNCER_URL alone is translated", () => {
    const legacy = "PUSH_NOTIFICATION_BOUNCER_URL = 'https://push.zulipchat.com'";
    expect(level(legacy)).toEqual({ url: "https://push.zulipchat.com", push: true, usage: true, alerts: false, level: 3 });
    expect(level(legacy + "\nSUBMIT_USAGE_STATISTICS = False")).toEqual({
      url: "https://push.zulipchat.com",
      push: true,
      usage: false,
      alerts: false,
      level: AnalyticsDataUploadLevel.BILLING,
    });
    const s = make(BASE + "PUSH_NOTIFICATION_BOUNCER_URL = 'https://bouncer.example.net'");
    expect(s.ZULIP_SERVICES_URL).toBe("https://bouncer.example.net");
    expect(s.sources.ZULIP_SERVICES_URL).toBe("derived");
    expect(s.sources.ZULIP_SERVICE_PUSH_NOTIFICATIONS).toBe("derived");
    expect(s.PUSH_NOTIFICATION_BOUNCER_URL).toBe("https://bouncer.example.net");
  });

  it("the legacy URL is ignored once a modern ZULIP_SERVICE_* setting is enabled", () => {
    const legacy = "PUSH_NOTIFICATION_BOUNCER_URL = 'https://old.example.net'\n";
    expect(level(legacy + "ZULIP_SERVICE_SECURITY_ALERTS = True")).toEqual({
      url: DEFAULT_URL,
      push: false,
      usage: false,
      alerts: true,
      level: AnalyticsDataUploadLevel.BASIC,
    });
    expect(level(legacy + "ZULIP_SERVICE_SUBMIT_USAGE_STATISTICS = False")).toMatchObject({ url: DEFAULT_URL, push: false, level: 0 });
    // An explicit False equals the default, so (as in Python) the legacy URL still applies.
    expect(level(legacy + "ZULIP_SERVICE_PUSH_NOTIFICATIONS = False")).toMatchObject({ url: "https://old.example.net", push: true });
  });

  it("the legacy setting is not read when a modern one already decides", () => {
    const s = make(BASE + "ZULIP_SERVICE_PUSH_NOTIFICATIONS = True\nPUSH_NOTIFICATION_BOUNCER_URL = get_secret('x')");
    expect(s.ZULIP_SERVICES_URL).toBe(DEFAULT_URL);
    expect(() => s.PUSH_NOTIFICATION_BOUNCER_URL).toThrow(ConfigError);
  });
});

describe("realm creation link validity (renamed setting)", () => {
  it("honours the older REALM_CREATION_LINK_VALIDITY_DAYS name", () => {
    const s = make(BASE + "REALM_CREATION_LINK_VALIDITY_DAYS = 3");
    expect(s.CAN_CREATE_REALM_LINK_VALIDITY_DAYS).toBe(3);
    expect(s.REALM_CREATION_LINK_VALIDITY_DAYS).toBe(3);
    expect(s.sources.CAN_CREATE_REALM_LINK_VALIDITY_DAYS).toBe("file");
  });

  it("the new name wins over the old one", () => {
    const s = make(BASE + "CAN_CREATE_REALM_LINK_VALIDITY_DAYS = 2\nREALM_CREATION_LINK_VALIDITY_DAYS = 5");
    expect(s.CAN_CREATE_REALM_LINK_VALIDITY_DAYS).toBe(2);
    expect(s.REALM_CREATION_LINK_VALIDITY_DAYS).toBe(2);
  });
});

describe("lazy strictness", () => {
  const text = [
    "EXTERNAL_HOST = 'chat.example.org'", // 1
    "ZULIP_ADMINISTRATOR = 'admin@example.org'", // 2
    'EMAIL_HOST = get_secret("x")', // 3
    "if os.environ.get('X'):", // 4
    "    EMAIL_PORT = 465", // 5
    "REALM_HOSTS = {}", // 6
    "REALM_HOSTS['x'] = 'x.example.net'", // 7
  ].join("\n");
  const s = make(text);

  it("unreadable settings do not break reading the others", () => {
    expect(s.EXTERNAL_HOST).toBe("chat.example.org");
    expect(s.ROOT_DOMAIN_URI).toBe("https://chat.example.org");
    expect(s.REDIS_PORT).toBe(6379);
  });

  it("a non-literal value throws a ConfigError naming the setting, file and line", () => {
    const e = configError(() => s.EMAIL_HOST);
    expect(e.message).toBe(
      'Cannot safely read EMAIL_HOST from /etc/zulip/settings.py line 3: it is not a literal (get_secret("x")). ' +
        "Set it to a plain value (a quoted string, number, True/False/None, or a list/dict of those), or pass --setting EMAIL_HOST=VALUE.",
    );
    expect(e).toMatchObject({ setting: "EMAIL_HOST", file: PATH, line: 3, exitCode: 3 });
    expect(configError(() => s.get("EMAIL_HOST")).message).toBe(e.message);
    expect(configError(() => s.get("EMAIL_HOST")).message).toBe(e.message);
    expect(s.problem("EMAIL_HOST")?.message).toBe(e.message);
    expect(s.problem("EXTERNAL_HOST")).toBeNull();
    expect(s.sources.EMAIL_HOST).toBe("file");
  });

  it("derived settings fail naming the setting they depend on", () => {
    const e = configError(() => s.EMAIL_BACKEND);
    expect(e.setting).toBe("EMAIL_HOST");
    expect(e.line).toBe(3);
  });

  it("a setting assigned inside an if block cannot be trusted", () => {
    const e = configError(() => s.EMAIL_PORT);
    expect(e.message).toMatch(/^Cannot safely read EMAIL_PORT from \/etc\/zulip\/settings\.py line 5: it is assigned inside an indented block/);
    expect(s.sources.EMAIL_PORT).toBe("file");
  });

  it("a setting modified after its assignment cannot be trusted", () => {
    const e = configError(() => s.REALM_HOSTS);
    expect(e.message).toMatch(/line 7: it is modified by `REALM_HOSTS\['x'\] = 'x.example.net'`/);
    expect(() => realmHost(s, "x")).toThrow(ConfigError);
    expect(realmHost(s, "")).toBe("chat.example.org");
  });

  it("a star import or exec after the defaults makes every file-controlled default unreadable", () => {
    const t = make(BASE + "from .more_settings import *\n");
    expect(configError(() => t.EMAIL_PORT).message).toMatch(/line 3: `from \.more_settings import \*` may redefine it/);
    expect(t.TIME_ZONE).toBe("UTC"); // computed by Zulip itself, unaffected
    expect(t.SECRET_KEY).toBe("sk");
    expect(configError(() => make(BASE + "exec(open('/etc/zulip/extra.py').read())").EMAIL_HOST).message).toMatch(
      /line 3: `exec\(open\('\/etc\/zulip\/extra\.py'\)\.read\(\)\)` may redefine it/,
    );
  });

  it("overrides replace the file's value, and the hint is configurable", () => {
    const t = make(text, {
      options: { overrides: { EMAIL_HOST: "smtp.override.org", EMAIL_PORT: 2525 }, overrideHint: (n) => `set ZM_${n}` },
    });
    expect(t.EMAIL_HOST).toBe("smtp.override.org");
    expect(t.EMAIL_PORT).toBe(2525);
    expect(t.sources.EMAIL_HOST).toBe("override");
    expect(t.EMAIL_BACKEND).toBe(EMAIL_BACKENDS.smtp);
    expect(configError(() => t.REALM_HOSTS).message).toMatch(/, or set ZM_REALM_HOSTS\.$/);
    expect(configError(() => make(BASE, { options: { overrides: { EMAIL_PORT: "x" } } }).EMAIL_PORT).message).toBe(
      "Cannot use EMAIL_PORT from the override: expected an integer, but it is 'x'.",
    );
  });

  it("a value of the wrong type is reported, not coerced", () => {
    const t = make(BASE + "EMAIL_PORT = '587'\nREALM_HOSTS = ['a']\nAUTHENTICATION_BACKENDS = 'x'\nEXTERNAL_URI_SCHEME = None");
    expect(configError(() => t.EMAIL_PORT).message).toBe("Cannot use EMAIL_PORT from /etc/zulip/settings.py line 3: expected an integer, but it is '587'.");
    expect(configError(() => t.REALM_HOSTS).message).toMatch(/expected a dict of strings, but it is \['a'\]/);
    expect(configError(() => t.AUTHENTICATION_BACKENDS).message).toMatch(/expected a tuple or list of strings/);
    expect(configError(() => t.EXTERNAL_URI_SCHEME).message).toMatch(/line 6: expected a string, but it is None/);
  });

  it("boolean settings use Python truthiness", () => {
    const t = make(BASE + "EMAIL_USE_TLS = 1\nEMAIL_USE_SSL = ''\nOPEN_REALM_CREATION = ['x']");
    expect([t.EMAIL_USE_TLS, t.EMAIL_USE_SSL, t.OPEN_REALM_CREATION]).toEqual([true, false, true]);
  });

  it("missing required settings and mandatory secrets", () => {
    const t = make("ZULIP_ADMINISTRATOR = 'a@b.c'", { secrets: "[secrets]\nshared_secret = x\n" });
    expect(configError(() => t.EXTERNAL_HOST).message).toBe("EXTERNAL_HOST is not set in /etc/zulip/settings.py; Zulip requires it.");
    expect(configError(() => t.SECRET_KEY).message).toBe('Mandatory secret "secret_key" is not set');
    expect(t.SHARED_SECRET).toBe("x");
    expect(t.ZULIP_ADMINISTRATOR).toBe("a@b.c");
  });
});

describe("checkRequiredSettings (manage.py check_config)", () => {
  it("no problems for a configured server", () => {
    expect(checkRequiredSettings(make(BASE))).toEqual([]);
  });

  it("the template's placeholders are reported in Zulip's order", () => {
    const s = make('EXTERNAL_HOST = "zulip.example.com"\nZULIP_ADMINISTRATOR = "zulip-admin@example.com"\nAUTHENTICATION_BACKENDS = ()', {
      secrets: "[secrets]\nsecret_key =\n",
    });
    expect(checkRequiredSettings(s)).toEqual([
      { setting: "EXTERNAL_HOST", message: "Error: You must set EXTERNAL_HOST in /etc/zulip/settings.py." },
      { setting: "ZULIP_ADMINISTRATOR", message: "Error: You must set ZULIP_ADMINISTRATOR in /etc/zulip/settings.py." },
      { setting: "SECRET_KEY", message: "Error: You must set SECRET_KEY in /etc/zulip/settings.py." },
      { setting: "AUTHENTICATION_BACKENDS", message: "Error: You must set AUTHENTICATION_BACKENDS in /etc/zulip/settings.py." },
    ]);
  });

  it("missing and unreadable settings are problems too, never exceptions", () => {
    const s = make('ZULIP_ADMINISTRATOR = get_secret("admin")', { secrets: "[secrets]\n" });
    expect(checkRequiredSettings(s)).toEqual([
      { setting: "EXTERNAL_HOST", message: "Error: You must set EXTERNAL_HOST in /etc/zulip/settings.py." },
      {
        setting: "ZULIP_ADMINISTRATOR",
        message: expect.stringMatching(/^Cannot safely read ZULIP_ADMINISTRATOR from \/etc\/zulip\/settings\.py line 1: it is not a literal/),
      },
      { setting: "SECRET_KEY", message: 'Mandatory secret "secret_key" is not set' },
    ]);
  });
});

describe("realmHost / realmUrl", () => {
  const s = make(BASE + "REALM_HOSTS = {'sales': 'sales.example.net'}");

  it("root realm, REALM_HOSTS entries and subdomains", () => {
    expect(realmHost(s, "")).toBe("chat.example.org");
    expect(realmUrl(s, "")).toBe("https://chat.example.org");
    expect(realmHost(s, "sales")).toBe("sales.example.net");
    expect(realmUrl(s, "sales")).toBe("https://sales.example.net");
    expect(realmUrl(s, "lab")).toBe("https://lab.chat.example.org");
  });

  it("never picks up Object prototype members as REALM_HOSTS entries", () => {
    expect(realmHost(s, "constructor")).toBe("constructor.chat.example.org");
    expect(realmHost(s, "__proto__")).toBe("__proto__.chat.example.org");
  });

  it("uses the configured scheme and keeps the port", () => {
    const t = make("EXTERNAL_HOST = 'localhost:9991'\nZULIP_ADMINISTRATOR = 'a@b.c'\nEXTERNAL_URI_SCHEME = 'http://'");
    expect(realmUrl(t, "zulip")).toBe("http://zulip.localhost:9991");
  });
});

describe("a full production-style file", () => {
  it("reads what it can and refuses only what it cannot", () => {
    const text = `from typing import Any
from .config import get_secret

EXTERNAL_HOST = 'chat.example.org'
ZULIP_ADMINISTRATOR = 'admin@example.org'
ZULIP_SERVICE_PUSH_NOTIFICATIONS = True

EMAIL_HOST = "smtp.example.org"
EMAIL_HOST_USER = "zulip@example.org"
EMAIL_PORT = 587
EMAIL_USE_TLS = True

AUTHENTICATION_BACKENDS: tuple[str, ...] = (
    "zproject.backends.EmailAuthBackend",  # Email and password
    "zproject.backends.ZulipLDAPAuthBackend",  # LDAP
)

import ldap
from django_auth_ldap.config import (
    LDAPSearch,
    LDAPSearchUnion,
)
AUTH_LDAP_SERVER_URI = "ldaps://ldap.example.org"
AUTH_LDAP_USER_SEARCH = LDAPSearch(
    "ou=users,dc=example,dc=org", ldap.SCOPE_SUBTREE, "(uid=%(user)s)"
)
AUTH_LDAP_USER_ATTR_MAP = {
    "full_name": "cn",
}
`;
    const s = make(text);
    expect(checkRequiredSettings(s)).toEqual([]);
    expect(s.AUTHENTICATION_BACKENDS).toEqual(["zproject.backends.EmailAuthBackend", "zproject.backends.ZulipLDAPAuthBackend"]);
    expect(s.EMAIL_BACKEND).toBe(EMAIL_BACKENDS.smtp);
    expect(s.ANALYTICS_DATA_UPLOAD_LEVEL).toBe(AnalyticsDataUploadLevel.ALL);
    expect(s.fileValue("AUTH_LDAP_USER_ATTR_MAP", {})).toEqual({ full_name: "cn" });
    expect(configError(() => s.fileValue("AUTH_LDAP_USER_SEARCH", null)).message).toMatch(
      /^Cannot safely read AUTH_LDAP_USER_SEARCH from \/etc\/zulip\/settings\.py line 24: it is not a literal \(LDAPSearch\("ou=users,dc=example,dc=org", ldap\.SCOPE_SUBTREE, "\(uid=%\(user\)s\)"\)\)/,
    );
    // Every setting in the table can be read from this file.
    for (const name of SETTING_NAMES) expect(s.problem(name), name).toBeNull();
  });
});
