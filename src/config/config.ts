// Loads /etc/zulip (settings.py, zulip.conf, zulip-secrets.conf) the way a Zulip server reads
// them. Commands never read these files themselves: they ask the Context for ctx.config().
import fs from "node:fs";
import { CliError, EnvironmentError } from "../lib/errors.js";
import { READ_LIMITS, readBounded } from "../lib/files.js";
import { parseIni } from "./ini.js";
import type { Paths } from "./paths.js";
import { parsePySettings, type PyValue } from "./pysettings.js";
import { computeSettings, type ZulipSettings } from "./settings.js";
import { currentUid, groupName, userById, userLabel } from "../lib/users.js";

export type IniData = Map<string, Map<string, string>>;

export class Config {
  private settingsCache?: ZulipSettings;

  constructor(
    readonly paths: Paths,
    readonly settingsText: string,
    readonly zulipConf: IniData,
    readonly secrets: Map<string, string>,
    /** Whether zulip-secrets.conf existed (it may legitimately be absent on dev machines). */
    readonly secretsFileFound: boolean,
    /** --setting NAME=VALUE overrides, used instead of the file's assignment. */
    readonly overrides: Record<string, PyValue> = {},
  ) {}

  /** settings.py with Zulip's defaults and derived values applied (parsed on first use). */
  get settings(): ZulipSettings {
    if (!this.settingsCache) {
      const parsed = parsePySettings(this.settingsText, { path: this.paths.settingsPath });
      this.settingsCache = computeSettings(parsed, this.secrets, this.zulipConf, {
        settingsPath: this.paths.settingsPath,
        overrides: this.overrides,
      });
    }
    return this.settingsCache;
  }

  secret(name: string): string | undefined {
    return this.secrets.get(name.toLowerCase());
  }

  conf(section: string, key: string): string | undefined {
    return this.zulipConf.get(section)?.get(key.toLowerCase());
  }
}

export function describeFile(file: string): string {
  try {
    const st = fs.statSync(file);
    const owner = userById(st.uid)?.name ?? String(st.uid);
    return `owner ${owner}:${groupName(st.gid)}, mode ${(st.mode & 0o7777).toString(8).padStart(4, "0")}`;
  } catch {
    return "owner and mode unknown";
  }
}

function whoAmI(): string {
  return userLabel(currentUid());
}

/** Read a config file; null when it does not exist and `optional`. Unreadable → exit 3 with a useful message. */
export function readConfigFile(file: string, what: string, optional: boolean): string | null {
  try {
    return readBounded(file, READ_LIMITS.config, what);
  } catch (e: any) {
    if (e instanceof CliError) throw e;
    if (e?.code === "ENOENT" || e?.code === "ENOTDIR") {
      if (optional) return null;
      throw new EnvironmentError(
        `Cannot read ${what} ${file}: the file does not exist.\n` +
          `Is this a Zulip server? Point zulip-manage at the Zulip configuration directory with --conf-dir DIR or ZULIP_CONF_DIR (default /etc/zulip).`,
        "config_unreadable",
      );
    }
    if (e?.code === "EACCES" || e?.code === "EPERM") {
      throw new EnvironmentError(
        `Cannot read ${what} ${file} (${describeFile(file)}) as user ${whoAmI()}: permission denied.\n` +
          `Run zulip-manage as the user that owns the Zulip installation, normally 'zulip':\n` +
          `  su zulip -c 'zulip-manage …'\n` +
          `  docker exec -u zulip <container> zulip-manage …`,
        "config_unreadable",
      );
    }
    throw new EnvironmentError(`Cannot read ${what} ${file}: ${e?.message ?? e}`, "config_unreadable");
  }
}

/** Parse --setting NAME=VALUE: VALUE is read as a Python literal when it is one, else as a string. */
export function parseSettingOverrides(items: string[] = []): Record<string, PyValue> {
  const out: Record<string, PyValue> = {};
  for (const item of items) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/s.exec(item);
    if (!m) throw new EnvironmentError(`--setting expects NAME=VALUE with an upper-case setting name, got '${item}'.`, "config_invalid");
    let value: PyValue = m[2];
    try {
      const parsed = parsePySettings(`${m[1]} = ${m[2]}\n`).assignments[m[1]];
      if (parsed?.ok) value = parsed.value;
    } catch {
      /* not a literal: keep the text */
    }
    out[m[1]] = value;
  }
  return out;
}

export function loadConfig(paths: Paths, overrides: Record<string, PyValue> = {}): Config {
  const settingsText = readConfigFile(paths.settingsPath, "the Zulip settings file", false) as string;
  const zulipConfText = readConfigFile(paths.zulipConfPath, "the Zulip server configuration", true);
  const secretsText = readConfigFile(paths.secretsPath, "the Zulip secrets file", true);
  const zulipConf = zulipConfText === null ? new Map() : parseIni(zulipConfText, { path: paths.zulipConfPath });
  const secretsIni = secretsText === null ? new Map() : parseIni(secretsText, { path: paths.secretsPath });
  const secrets: Map<string, string> = secretsIni.get("secrets") ?? new Map();
  return new Config(paths, settingsText, zulipConf, secrets, secretsText !== null, overrides);
}
