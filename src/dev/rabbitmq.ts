// Throwaway RabbitMQ brokers (Debian's rabbitmq-server) for the tests (test/helpers/rabbitmq.ts)
// and the benchmarks (bench/rabbitmq.mjs, from dist/dev/): a private Erlang node with its own
// epmd on a free port, AMQP and distribution ports on 127.0.0.1, the Mnesia database, logs,
// configuration and Erlang cookie (HOME) in a directory of the caller's, run as an unprivileged
// user when we are root. Never the system service. Development tooling: nothing in the CLI uses it.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import amqp from "amqplib";
import { chownTree, findExecutable, freePort, type RunAsUser, type ServerProcess, spawnServer, stopServer, waitFor } from "./sandbox.js";

/** Debian's own server script (not /usr/sbin's wrapper, which insists on running as rabbitmq). */
const DEFAULT_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server";

export interface RabbitBinaries {
  server: string;
  epmd: string;
}

function erlangBin(name: string): string | null {
  const base = "/usr/lib/erlang";
  try {
    for (const d of fs
      .readdirSync(base)
      .filter((x) => x.startsWith("erts-"))
      .sort()
      .reverse()) {
      const p = path.join(base, d, "bin", name);
      if (fs.existsSync(p)) return p;
    }
  } catch {
    /* not installed */
  }
  return findExecutable(name, ["/usr/bin", "/usr/local/bin"]);
}

/** rabbitmq-server (`server`, default Debian's) and Erlang's epmd, or null when either is missing. */
export function findRabbitMQ(server: string = DEFAULT_SERVER): RabbitBinaries | null {
  const epmd = erlangBin("epmd");
  return fs.existsSync(server) && epmd ? { server, epmd } : null;
}

/** rabbit_password_hashing_sha256: base64(salt(4) + sha256(salt + password)). */
function passwordHash(password: string): string {
  const salt = crypto.randomBytes(4);
  const hash = crypto
    .createHash("sha256")
    .update(Buffer.concat([salt, Buffer.from(password, "utf8")]))
    .digest();
  return Buffer.concat([salt, hash]).toString("base64");
}

export interface StartBrokerOptions {
  bins: RabbitBinaries;
  /** An existing directory for the broker's files (the caller removes it after stop()). */
  dir: string;
  /** OS user the broker runs as (null: the current user); the directory is chowned to it. */
  runAs: RunAsUser | null;
  /** The Erlang node's name: `<nodeName>@localhost`. */
  nodeName: string;
  username: string;
  password: string;
  /** Virtual hosts made at boot, each with full permissions for `username`. */
  vhosts: string[];
  /** How to spawn epmd and the broker (default: spawnServer() as runAs). */
  spawn?: (cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; logFile: string }) => ServerProcess;
  /** How long the broker may take to accept connections (default 90 s). */
  timeoutMs?: number;
}

export interface Broker {
  host: string;
  port: number;
  username: string;
  password: string;
  vhosts: string[];
  logFile: string;
  /** The broker (the Erlang VM). */
  server: ServerProcess;
  /** An AMQP connection to a virtual host (default "/"). */
  connect(vhost?: string): Promise<amqp.ChannelModel>;
  /** Kill the broker and its epmd (nothing to save). Idempotent; leaves the directory. */
  stop(): Promise<void>;
}

/** Start a broker; it accepts AMQP connections when this resolves. On failure both processes are stopped. */
export async function startBroker(opts: StartBrokerOptions): Promise<Broker> {
  const { dir, runAs, username, password } = opts;
  const spawnChild = opts.spawn ?? ((cmd, args, o) => spawnServer(cmd, args, { ...o, runAs }));
  const [port, distPort, epmdPort] = [await freePort(), await freePort(), await freePort()];
  const files = {
    conf: path.join(dir, "rabbitmq.conf"),
    advanced: path.join(dir, "advanced.config"),
    plugins: path.join(dir, "enabled_plugins"),
    envConf: path.join(dir, "rabbitmq-env.conf"),
    defs: path.join(dir, "definitions.json"),
  };
  fs.writeFileSync(
    files.conf,
    [
      `listeners.tcp.1 = 127.0.0.1:${port}`,
      "loopback_users = none",
      `load_definitions = ${files.defs}`,
      "log.console = false",
      "log.file.level = warning",
      // A test or benchmark machine may be short of disk; never block publishers over it.
      "disk_free_limit.absolute = 1",
      "",
    ].join("\n"),
  );
  fs.writeFileSync(
    files.defs,
    JSON.stringify({
      users: [{ name: username, password_hash: passwordHash(password), hashing_algorithm: "rabbit_password_hashing_sha256", tags: "administrator" }],
      vhosts: opts.vhosts.map((name) => ({ name })),
      permissions: opts.vhosts.map((vhost) => ({ user: username, vhost, configure: ".*", write: ".*", read: ".*" })),
    }),
  );
  fs.writeFileSync(files.advanced, "[].\n");
  fs.writeFileSync(files.plugins, "[].\n");
  fs.writeFileSync(files.envConf, "");
  const logFile = path.join(dir, "rabbitmq.log");
  fs.writeFileSync(logFile, "");
  for (const f of [...Object.values(files), logFile]) fs.chmodSync(f, 0o644);
  chownTree(dir, runAs, true);
  const env: NodeJS.ProcessEnv = {
    PATH: "/usr/bin:/bin:/usr/sbin:/sbin",
    LANG: "C.UTF-8",
    HOME: dir,
    ERL_EPMD_PORT: String(epmdPort),
    ERL_EPMD_ADDRESS: "127.0.0.1",
    RABBITMQ_NODENAME: `${opts.nodeName}@localhost`,
    RABBITMQ_NODE_IP_ADDRESS: "127.0.0.1",
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_CONFIG_FILE: files.conf,
    RABBITMQ_ADVANCED_CONFIG_FILE: files.advanced,
    RABBITMQ_ENABLED_PLUGINS_FILE: files.plugins,
    RABBITMQ_CONF_ENV_FILE: files.envConf,
    RABBITMQ_MNESIA_BASE: path.join(dir, "mnesia"),
    RABBITMQ_LOG_BASE: path.join(dir, "log"),
    RABBITMQ_PID_FILE: path.join(dir, "rabbitmq.pid"),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: "-kernel inet_dist_use_interface {127,0,0,1}",
    // The script then execs the Erlang VM instead of keeping a shell in front of it, so the VM
    // is the process we started (and gets a parent-death signal the spawn hook may set).
    NOTIFY_SOCKET: path.join(dir, "no-systemd"),
  };
  const connect = (vhost = "/") => amqp.connect({ protocol: "amqp", hostname: "127.0.0.1", port, username, password, vhost, heartbeat: 0 }, { timeout: 1000 });
  const started: ServerProcess[] = [];
  const stopAll = async () => {
    // The broker first, then its epmd.
    for (const svc of [...started].reverse()) await stopServer(svc, "SIGKILL", svc === started[0] ? 2000 : 5000);
  };
  try {
    started.push(spawnChild(opts.bins.epmd, ["-port", String(epmdPort), "-address", "127.0.0.1"], { cwd: dir, env, logFile }));
    const server = spawnChild(opts.bins.server, [], { cwd: dir, env, logFile });
    started.push(server);
    await waitFor(
      "rabbitmq startup",
      async () => {
        try {
          await (await connect()).close();
          return true;
        } catch {
          return false;
        }
      },
      { service: server, timeoutMs: opts.timeoutMs ?? 90_000, intervalMs: 200 },
    );
    for (const svc of started) svc.child.unref();
    let stopped = false;
    return {
      host: "127.0.0.1",
      port,
      username,
      password,
      vhosts: opts.vhosts,
      logFile,
      server,
      connect,
      async stop() {
        if (stopped) return;
        stopped = true;
        await stopAll();
      },
    };
  } catch (e) {
    await stopAll();
    let tail = "";
    try {
      tail = fs.readFileSync(logFile, "utf8").slice(-2000);
    } catch {
      /* no log */
    }
    throw new Error(`RabbitMQ did not start: ${e instanceof Error ? e.message : String(e)}\n${tail}`);
  }
}
