// Where a Zulip server keeps things. Every path can be overridden for docker, tests and unusual
// installs: --conf-dir / ZULIP_CONF_DIR, ZULIP_DEPLOY_DIR, ZULIP_LOG_DIR.
import path from "node:path";

export interface Paths {
  confDir: string;
  settingsPath: string;
  zulipConfPath: string;
  secretsPath: string;
  deployDir: string;
  logDir: string;
  /** settings.LOCKFILE_DIRECTORY of a production server: the cron commands' flock files. */
  lockDir: string;
}

export function resolvePaths(confDirFlag?: string, env: NodeJS.ProcessEnv = process.env): Paths {
  const confDir = confDirFlag || env.ZULIP_CONF_DIR || "/etc/zulip";
  return {
    confDir,
    settingsPath: path.join(confDir, "settings.py"),
    zulipConfPath: path.join(confDir, "zulip.conf"),
    secretsPath: path.join(confDir, "zulip-secrets.conf"),
    deployDir: env.ZULIP_DEPLOY_DIR || "/home/zulip/deployments/current",
    logDir: env.ZULIP_LOG_DIR || "/var/log/zulip",
    lockDir: env.ZULIP_LOCK_DIR || "/srv/zulip-locks",
  };
}
