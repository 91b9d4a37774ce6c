// Which Tornado process(es) serve a realm, and which RabbitMQ queue feeds each: the facts of
// zerver/tornado/sharding.py, scripts/lib/zulip_tools.py (get_tornado_ports) and
// scripts/lib/sharding.py, read from the same files a Zulip server reads.
//
//  * TORNADO_PORTS: every key of zulip.conf's [tornado_sharding] section, a trailing "_regex"
//    removed, split on "_", each piece an int; sorted and de-duplicated; [9800] when the section
//    is missing or empty. TORNADO_PROCESSES = its length.
//  * /etc/zulip/sharding.json (written by scripts/refresh-sharding-and-restart from that
//    section): {"shard_map": {host: port | [ports]}, "shard_regexes": [[regex, port | [ports]]]};
//    a file without "shard_map" is the map itself (older format).
//  * get_realm_tornado_ports(realm): realm.host exactly in shard_map, else the first regex that
//    matches at the start of the host (Python re.match, case-insensitive), else
//    [TORNADO_PORTS[0]].
//  * get_user_id_tornado_port(ports, id) = ports[id % len(ports)].
//  * notify_tornado_queue_name(port) = "notify_tornado" when TORNADO_PROCESSES == 1, else
//    "notify_tornado_port_<port>" — a test on the server-wide process count, not the realm's.
import fs from "node:fs";
import path from "node:path";
import type { Config } from "./config.js";
import { realmHost } from "./settings.js";

const DEFAULT_TORNADO_PORT = 9800;

export interface TornadoSharding {
  /** settings.TORNADO_PORTS. */
  ports: number[];
  shardMap: Map<string, number[]>;
  shardRegexes: Array<{ regex: RegExp; source: string; ports: number[] }>;
  /** Problems reading sharding.json (the defaults are used instead). */
  problems: string[];
}

/** get_tornado_ports(): the ports of zulip.conf's [tornado_sharding] section. */
function tornadoPortsFromConf(config: Config): number[] {
  const section = config.zulipConf.get("tornado_sharding");
  const ports = new Set<number>();
  for (const key of section?.keys() ?? []) {
    for (const piece of key.replace(/_regex$/, "").split("_")) {
      const n = Number.parseInt(piece, 10);
      if (Number.isFinite(n) && String(n) === piece.trim()) ports.add(n);
    }
  }
  return ports.size ? [...ports].sort((a, b) => a - b) : [DEFAULT_TORNADO_PORT];
}

function asPorts(v: unknown): number[] | null {
  if (typeof v === "number" && Number.isInteger(v)) return [v];
  if (Array.isArray(v) && v.length > 0 && v.every((p) => typeof p === "number" && Number.isInteger(p))) return v as number[];
  return null;
}

/** A Python regular expression as a JS one, for the subset sharding regexes use. */
function pyRegex(source: string): RegExp {
  // re.match anchors at the start only; (?i) inline flags are not valid JS, the i flag is set anyway.
  return new RegExp(`^(?:${source.replace(/^\(\?i\)/, "")})`, "i");
}

/** The sharding configuration of the server (zulip.conf + sharding.json). */
export function readTornadoSharding(config: Config): TornadoSharding {
  const sharding: TornadoSharding = { ports: tornadoPortsFromConf(config), shardMap: new Map(), shardRegexes: [], problems: [] };
  const file = path.join(config.paths.confDir, "sharding.json");
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e: any) {
    if (e?.code !== "ENOENT") sharding.problems.push(`cannot read ${file}: ${e?.code ?? e?.message ?? e}`);
    return sharding;
  }
  let data: any;
  try {
    data = JSON.parse(text);
  } catch (e: any) {
    sharding.problems.push(`${file} is not valid JSON: ${e?.message ?? e}`);
    return sharding;
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    sharding.problems.push(`${file} does not hold a JSON object`);
    return sharding;
  }
  const map = "shard_map" in data ? data.shard_map : data;
  for (const [host, v] of Object.entries(map ?? {})) {
    const ports = asPorts(v);
    if (ports) sharding.shardMap.set(host, ports);
    else sharding.problems.push(`${file}: shard_map entry for ${host} is not a port or a list of ports`);
  }
  for (const entry of Array.isArray(data.shard_regexes) ? data.shard_regexes : []) {
    const ports = Array.isArray(entry) ? asPorts(entry[1]) : null;
    if (!ports || typeof entry[0] !== "string") {
      sharding.problems.push(`${file}: a shard_regexes entry is not [regex, port(s)]`);
      continue;
    }
    try {
      sharding.shardRegexes.push({ regex: pyRegex(entry[0]), source: entry[0], ports });
    } catch {
      sharding.problems.push(`${file}: shard regex ${JSON.stringify(entry[0])} is not one this tool can read`);
    }
  }
  return sharding;
}

/** get_realm_tornado_ports() for a realm host. */
export function realmTornadoPorts(sharding: TornadoSharding, host: string): number[] {
  const exact = sharding.shardMap.get(host);
  if (exact) return exact;
  for (const r of sharding.shardRegexes) if (r.regex.test(host)) return r.ports;
  return [sharding.ports[0] ?? DEFAULT_TORNADO_PORT];
}

/** realm.host for a realm's string_id (EXTERNAL_HOST, REALM_HOSTS or <subdomain>.EXTERNAL_HOST). */
export function hostOfRealm(config: Config, stringId: string): string {
  return realmHost(config.settings, stringId);
}

/** get_user_id_tornado_port(). */
export function userTornadoPort(ports: number[], userId: number): number {
  return ports[userId % ports.length];
}

/** notify_tornado_queue_name(). */
export function notifyQueueName(sharding: TornadoSharding, port: number): string {
  return sharding.ports.length === 1 ? "notify_tornado" : `notify_tornado_port_${port}`;
}

/** Every notify queue a Tornado of this server consumes (for doctor). */
export function allNotifyQueues(sharding: TornadoSharding): Array<{ port: number; queue: string }> {
  return sharding.ports.map((port) => ({ port, queue: notifyQueueName(sharding, port) }));
}

/** settings.MOBILE_NOTIFICATIONS_SHARDS: int(get_config("application_server", "mobile_notification_shards", "1")). */
export function mobileNotificationShards(config: Config): number {
  const n = Number.parseInt(config.conf("application_server", "mobile_notification_shards") ?? "1", 10);
  return Number.isInteger(n) && n > 0 ? n : 1;
}
