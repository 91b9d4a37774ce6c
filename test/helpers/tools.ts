// The system programs (and python3 modules) the tests run, and the one way a test gets one:
// requireTool(name) returns its path, or fails with what to install. Nothing is skipped for a
// missing tool: `npm test` (and so .ci/run) first runs scripts/test-deps.sh, which installs every
// package named here (as root on Debian) or names the missing ones and stops. Call it where the
// tool is used (in the test or its beforeAll), not at module level, so one missing program fails
// only the tests that need it.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { findExecutable } from "./services.js";

interface Tool {
  /** The Debian/Ubuntu package that provides it (as in scripts/test-deps.sh). */
  pkg: string;
  /** Where to look before PATH. */
  dirs: string[];
  /** An environment variable that names the binary instead. */
  env?: string;
  /** What it is for, in the failure message. */
  what: string;
}

/** Debian's /usr/lib/postgresql/<version>/bin directories, newest first. */
function debianPgBinDirs(): string[] {
  try {
    return fs
      .readdirSync("/usr/lib/postgresql")
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a))
      .map((v) => path.join("/usr/lib/postgresql", v, "bin"));
  } catch {
    return [];
  }
}

const TOOLS = {
  python3: { pkg: "python3", dirs: ["/usr/bin"], what: "cross-checks against Python's own output" },
  zsh: { pkg: "zsh", dirs: ["/usr/bin", "/bin"], what: "the zsh completion tests" },
  bash: { pkg: "bash", dirs: ["/usr/bin", "/bin"], what: "the bash completion and shell tests" },
  script: { pkg: "bsdutils", dirs: ["/usr/bin", "/bin"], what: "running the CLI on a terminal" },
  openssl: { pkg: "openssl", dirs: ["/usr/bin"], what: "TLS test certificates" },
  psql: { pkg: "postgresql-client", dirs: debianPgBinDirs(), what: "dbshell and loading fixtures" },
  tar: { pkg: "tar", dirs: ["/usr/bin", "/bin"], what: "reading backups and exports" },
  flock: { pkg: "util-linux", dirs: ["/usr/bin"], what: "holding Zulip's cron locks" },
  unshare: { pkg: "util-linux", dirs: ["/usr/bin"], what: "a private full filesystem" },
  memcached: { pkg: "memcached", dirs: ["/usr/bin", "/usr/local/bin"], env: "ZM_TEST_MEMCACHED", what: "the test memcached" },
  saslpasswd2: { pkg: "sasl2-bin", dirs: ["/usr/sbin", "/usr/bin"], what: "memcached's SASL users" },
  "redis-server": { pkg: "redis-server", dirs: ["/usr/bin", "/usr/local/bin"], env: "ZM_TEST_REDIS", what: "the test Redis" },
} satisfies Record<string, Tool>;

export type ToolName = keyof typeof TOOLS;

/** The message for a missing package: what is missing, why, and the command that installs it. */
export function missingToolMessage(what: string, pkg: string, purpose: string): string {
  return (
    `${what} is not installed; the tests need it for ${purpose}. Install it (Debian/Ubuntu): apt-get install ${pkg}\n` +
    "(`npm test` run as root installs every test dependency itself: scripts/test-deps.sh)"
  );
}

const found = new Map<string, string>();

/** The path of a system program the tests need; throws, saying how to install it, when it is missing. */
export function requireTool(name: ToolName): string {
  const cached = found.get(name);
  if (cached) return cached;
  const tool: Tool = TOOLS[name];
  const fromEnv = tool.env ? process.env[tool.env] : undefined;
  const p = fromEnv || findExecutable(name, tool.dirs);
  if (!p) throw new Error(missingToolMessage(name, tool.pkg, tool.what));
  found.set(name, p);
  return p;
}

/**
 * A python3 that imports `modules` (Debian's python3-<module> packages: the libraries Zulip itself
 * uses, e.g. argon2, zxcvbn); throws, saying how to install what is missing.
 */
export function requirePython(modules: string[] = []): string {
  const py = requireTool("python3");
  const missing = modules.filter((m) => {
    try {
      execFileSync(py, ["-c", `import ${m}`], { stdio: "ignore" });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length) {
    const pkgs = missing.map((m) => `python3-${m}`);
    throw new Error(
      missingToolMessage(
        `The python3 module${missing.length > 1 ? "s" : ""} ${missing.join(", ")}`,
        pkgs.join(" "),
        "cross-checks against the libraries Zulip uses",
      ),
    );
  }
  return py;
}

/** Run a python3 snippet (with `modules` importable) and return its output without the final newline. */
export function runPython(script: string, args: string[] = [], modules: string[] = []): string {
  return execFileSync(requirePython(modules), ["-c", script, ...args], { encoding: "utf8", maxBuffer: 1 << 26 }).replace(/\n$/, "");
}

/**
 * A PostgreSQL client program (pg_dump, pg_restore) that works with a server of `major`: the
 * cluster's own bindir first, then Debian's /usr/lib/postgresql/<version>/bin of that version or
 * newer; throws, naming the package, when there is none.
 */
export function requirePgClientTool(name: "pg_dump" | "pg_restore", major: number, bindir?: string): string {
  const debian = debianPgBinDirs()
    .filter((d) => Number(path.basename(path.dirname(d))) >= major)
    .reverse();
  const p = [...(bindir ? [bindir] : []), ...debian].map((d) => path.join(d, name)).find((c) => fs.existsSync(c));
  if (!p) throw new Error(missingToolMessage(`${name} for PostgreSQL ${major} or newer`, `postgresql-client-${major}`, "backups of the test cluster"));
  return p;
}
