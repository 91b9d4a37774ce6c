// The V8 code cache (scripts/loader.cjs → dist/bundle/load.cjs), with the machine's Node: the
// build's cache is used by the Node build that wrote it and by no other (a cache whose key names
// another Node, other flags or NODE_OPTIONS is never handed to V8); another Node writes its own
// under $XDG_CACHE_HOME (or ~/.cache)/zulip-manage, atomically, and uses it afterwards; a cache
// V8 rejects is replaced; cache directories that cannot or must not be written (missing, /proc,
// a file, another user's, writable by others, read-only) never fail a command and get nothing.
// Each test runs a copy of the build (bin/, dist/bundle/, package.json) in a temp dir, so that
// the checkout's own build is never touched. test/node-versions.test.ts runs real other Nodes.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI_ENTRY, cliEnv } from "./helpers/cli.js";
import { REPO_ROOT } from "./helpers/pg.js";
import { isRoot, makeTempDir, serviceUser } from "./helpers/services.js";

const DEBUG = { ZULIP_MANAGE_DEBUG_CODE_CACHE: "1" };
const CACHE_NAME = /^[0-9a-f]{16}\.cache$/;

let tmp: string;
let n = 0;

beforeAll(() => {
  tmp = makeTempDir("code-cache", { serviceOwned: false });
});
afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

interface Copy {
  root: string;
  bin: string;
  shipped: string;
  /** A fresh directory for XDG_CACHE_HOME. */
  xdg: string;
}

/**
 * A copy of the build. shipped: "keep" (the build's cache as it is), "remove", or "foreign" (its
 * key rewritten to name another Node release, as if another Node had written it).
 */
function copyBuild(shipped: "keep" | "remove" | "foreign" = "keep", parent = tmp): Copy {
  const root = path.join(parent, `copy${++n}`);
  fs.mkdirSync(path.join(root, "dist"), { recursive: true });
  fs.cpSync(path.join(REPO_ROOT, "bin"), path.join(root, "bin"), { recursive: true });
  fs.cpSync(path.dirname(CLI_ENTRY), path.join(root, "dist", "bundle"), { recursive: true });
  fs.copyFileSync(path.join(REPO_ROOT, "package.json"), path.join(root, "package.json"));
  const cache = path.join(root, "dist", "bundle", "cli.cjs.cache");
  if (shipped === "remove") fs.rmSync(cache);
  if (shipped === "foreign") {
    const data = fs.readFileSync(cache);
    const ours = `"node":"${process.versions.node}"`;
    const at = data.indexOf(ours);
    expect(at).toBeGreaterThan(0);
    // Same length, so V8's data is untouched: only the key says "another Node".
    const other = `"node":"${process.versions.node.replace(/\d+$/, (p) => String(Number(p) === 0 ? 1 : Number(p) - 1).padStart(p.length, "0"))}"`;
    expect(other.length).toBe(ours.length);
    data.write(other, at, "latin1");
    fs.writeFileSync(cache, data);
  }
  const xdg = path.join(root, "xdg");
  fs.mkdirSync(xdg, { mode: 0o700 });
  return { root, bin: path.join(root, "bin", "zulip-manage"), shipped: cache, xdg };
}

function run(c: Copy, args: string[], env: Record<string, string | undefined> = {}, opts: { nodeArgs?: string[]; uid?: number; gid?: number } = {}) {
  return execa(process.execPath, [...(opts.nodeArgs ?? []), c.bin, ...args], {
    env: cliEnv({ env: { XDG_CACHE_HOME: c.xdg, ...DEBUG, ...env } }),
    extendEnv: false,
    reject: false,
    stdin: "ignore",
    timeout: 30_000,
    ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.gid } : {}),
  });
}

/** A user's home directory, from /etc/passwd. */
function homeOf(uid: number): string {
  const line = fs
    .readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.split(":")[2] === String(uid));
  return line!.split(":")[5];
}

const userCaches = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => CACHE_NAME.test(f)) : []);

describe("the build's code cache", () => {
  it("is used by the Node build that wrote it, and no user cache is written", async () => {
    const c = copyBuild();
    const r = await run(c, ["help"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("list_realms");
    expect(r.stderr).toBe(`zulip-manage: code cache: ${c.shipped}; not needed`);
    expect(fs.readdirSync(c.xdg)).toEqual([]);
    // Its header names this Node exactly.
    const header = fs.readFileSync(c.shipped).subarray(0, 8192).toString("latin1").split("\n");
    expect(header[0]).toBe("zulip-manage code cache 1");
    const key = JSON.parse(header[1]);
    expect(key).toMatchObject({
      versions: process.versions,
      arch: process.arch,
      platform: process.platform,
      execPath: process.execPath,
      execArgv: [],
      nodeOptions: "",
    });
    expect(key.binary.size).toBe(fs.statSync(process.execPath).size);
    expect(header[2]).toBe("full");
  });

  it("written by another Node (its key names another release) is ignored: this Node writes and then uses its own", async () => {
    const c = copyBuild("foreign");
    const before = fs.readFileSync(c.shipped);
    const mine = path.join(c.xdg, "zulip-manage");
    const r = await run(c, ["help"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("list_realms");
    expect(r.stderr).toMatch(new RegExp(`^zulip-manage: code cache: none; wrote ${mine}/[0-9a-f]{16}\\.cache \\(help only\\)$`));
    const [file] = userCaches(mine);
    expect(fs.statSync(path.join(mine, file)).mode & 0o777).toBe(0o600);
    expect(fs.statSync(mine).mode & 0o777).toBe(0o700);
    const again = await run(c, ["help"]);
    expect(again.stderr).toBe(`zulip-manage: code cache: ${path.join(mine, file)} (help only); not needed`);
    // A command compiles more than help: its run replaces the help-only cache, once.
    const cmd = await run(c, ["list_realms", "--conf-dir", path.join(c.root, "no-such-dir")]);
    expect(cmd.exitCode).toBe(3);
    expect(cmd.stderr).toContain(`code cache: ${path.join(mine, file)} (help only); wrote ${path.join(mine, file)}`);
    const third = await run(c, ["list_realms", "--conf-dir", path.join(c.root, "no-such-dir")]);
    expect(third.stderr).toContain(`code cache: ${path.join(mine, file)}; not needed`);
    expect(userCaches(mine)).toEqual([file]);
    expect(fs.readdirSync(mine)).toEqual([file]);
    expect(fs.readFileSync(c.shipped).equals(before)).toBe(true);
  });

  it("is not used with Node flags or NODE_OPTIONS the build did not have", async () => {
    const c = copyBuild();
    const withOptions = await run(c, ["help"], { NODE_OPTIONS: "--no-deprecation" });
    expect(withOptions.exitCode).toBe(0);
    expect(withOptions.stderr).toMatch(/^zulip-manage: code cache: none; wrote \S+\.cache \(help only\)$/);
    const withFlag = await run(c, ["help"], {}, { nodeArgs: ["--no-deprecation"] });
    expect(withFlag.exitCode).toBe(0);
    expect(withFlag.stderr).toMatch(/^zulip-manage: code cache: none; wrote \S+\.cache \(help only\)$/);
    // Two more keys, two more files; the plain run still uses the build's cache.
    expect(userCaches(path.join(c.xdg, "zulip-manage"))).toHaveLength(2);
    expect((await run(c, ["help"])).stderr).toBe(`zulip-manage: code cache: ${c.shipped}; not needed`);
  });
});

describe("the user's code cache", () => {
  /** A copy without the build's cache, with a user cache written by one help run. */
  async function withUserCache(): Promise<Copy & { file: string }> {
    const c = copyBuild("remove");
    const r = await run(c, ["help"]);
    expect(r.exitCode).toBe(0);
    const [name] = userCaches(path.join(c.xdg, "zulip-manage"));
    return { ...c, file: path.join(c.xdg, "zulip-manage", name) };
  }

  it("rejected by V8 (right key, damaged data): compiled from source, and replaced", async () => {
    const c = await withUserCache();
    const data = fs.readFileSync(c.file);
    const head = data.indexOf("\nhelp\n") + 6;
    fs.writeFileSync(c.file, Buffer.concat([data.subarray(0, head), Buffer.alloc(data.length - head, 0x5a)]), { mode: 0o600 });
    const r = await run(c, ["help"]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("list_realms");
    expect(r.stderr).toBe(`zulip-manage: code cache: ${c.file} (rejected by V8); wrote ${c.file} (help only)`);
    expect((await run(c, ["help"])).stderr).toBe(`zulip-manage: code cache: ${c.file} (help only); not needed`);
  });

  it("is not read when someone else could have written it (writable by others, a symbolic link, another owner)", async () => {
    const c = await withUserCache();
    const good = fs.readFileSync(c.file);
    fs.chmodSync(c.file, 0o666);
    const r = await run(c, ["help"]);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toBe(`zulip-manage: code cache: none; wrote ${c.file} (help only)`);
    expect(fs.statSync(c.file).mode & 0o777).toBe(0o600);

    const elsewhere = path.join(c.root, "planted.cache");
    fs.writeFileSync(elsewhere, good, { mode: 0o600 });
    fs.rmSync(c.file);
    fs.symlinkSync(elsewhere, c.file);
    const viaLink = await run(c, ["help"]);
    expect(viaLink.stderr).toBe(`zulip-manage: code cache: none; wrote ${c.file} (help only)`);
    expect(fs.lstatSync(c.file).isFile()).toBe(true);

    const other = serviceUser();
    if (other) {
      fs.chownSync(c.file, other.uid, other.gid);
      const foreign = await run(c, ["help"]);
      expect(foreign.stderr).toBe(`zulip-manage: code cache: none; wrote ${c.file} (help only)`);
      expect(fs.statSync(c.file).uid).toBe(process.getuid!());
    }
  });

  it("goes to ~/.cache/zulip-manage without XDG_CACHE_HOME (and when it is relative, as the XDG spec says)", async () => {
    const c = copyBuild("remove");
    const home = path.join(c.root, "home");
    fs.mkdirSync(home, { mode: 0o700 });
    const r = await run(c, ["help"], { HOME: home, XDG_CACHE_HOME: undefined });
    expect(r.stderr).toMatch(new RegExp(`^zulip-manage: code cache: none; wrote ${home}/\\.cache/zulip-manage/[0-9a-f]{16}\\.cache \\(help only\\)$`));
    expect(fs.statSync(path.join(home, ".cache")).mode & 0o777).toBe(0o700);
    const rel = await run(c, ["help"], { HOME: home, XDG_CACHE_HOME: "relative/cache" });
    expect(rel.stderr).toMatch(new RegExp(`^zulip-manage: code cache: ${home}/\\.cache/zulip-manage/[0-9a-f]{16}\\.cache \\(help only\\); not needed$`));
  });

  it("keeps the newest six cache files and removes temporary files older than an hour", async () => {
    const c = copyBuild("remove");
    const dir = path.join(c.xdg, "zulip-manage");
    fs.mkdirSync(dir, { mode: 0o700 });
    const old = Date.now() / 1000 - 86400;
    for (let i = 0; i < 8; i++) {
      const f = path.join(dir, `${String(i).repeat(16)}.cache`);
      fs.writeFileSync(f, "old", { mode: 0o600 });
      fs.utimesSync(f, old + i, old + i);
    }
    fs.writeFileSync(path.join(dir, ".stale.cache.1.1.tmp"), "x");
    fs.utimesSync(path.join(dir, ".stale.cache.1.1.tmp"), old, old);
    fs.writeFileSync(path.join(dir, ".fresh.cache.1.1.tmp"), "x");
    const r = await run(c, ["help"]);
    expect(r.exitCode).toBe(0);
    const [, written] = /wrote \S+\/([0-9a-f]{16}\.cache)/.exec(r.stderr)!;
    expect(userCaches(dir).sort()).toEqual([written, ...["3", "4", "5", "6", "7"].map((d) => `${d.repeat(16)}.cache`)].sort());
    expect(fs.existsSync(path.join(dir, ".stale.cache.1.1.tmp"))).toBe(false);
    expect(fs.existsSync(path.join(dir, ".fresh.cache.1.1.tmp"))).toBe(true);
  });

  it("is written once, whole, when several first runs end at the same time", async () => {
    const c = copyBuild("remove");
    const runs = await Promise.all(Array.from({ length: 4 }, () => run(c, ["help"])));
    for (const r of runs) {
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toContain("list_realms");
    }
    const dir = path.join(c.xdg, "zulip-manage");
    expect(fs.readdirSync(dir).filter((f) => !CACHE_NAME.test(f))).toEqual([]);
    const [name] = userCaches(dir);
    expect((await run(c, ["help"])).stderr).toBe(`zulip-manage: code cache: ${path.join(dir, name)} (help only); not needed`);
  });
});

describe("a run started as root that switches to the Zulip user", () => {
  it.runIf(isRoot())("writes that user's cache as that user, and later root runs leave it alone", async () => {
    const other = serviceUser()!;
    const parent = fs.mkdtempSync(path.join(os.tmpdir(), "zm-code-cache-"));
    try {
      fs.chmodSync(parent, 0o755);
      const c = copyBuild("remove", parent);
      // The deployment directory's owner is who root switches to (src/cli/runas.ts).
      const deploy = path.join(c.root, "deploy");
      fs.mkdirSync(deploy);
      fs.chownSync(deploy, other.uid, other.gid);
      fs.chownSync(c.xdg, other.uid, other.gid);
      const env = {
        ZULIP_MANAGE_ALLOW_ROOT: undefined,
        ZULIP_DEPLOY_DIR: deploy,
        ZULIP_CONF_DIR: path.join(c.root, "conf"),
        ZULIP_LOG_DIR: path.join(c.root, "log"),
      };
      const mine = path.join(c.xdg, "zulip-manage");
      const first = await run(c, ["completion", "bash"], env);
      expect(first.exitCode, first.stderr).toBe(0);
      expect(first.stdout).toContain("complete -F");
      expect(first.stderr).toMatch(new RegExp(`code cache: none; wrote ${mine}/[0-9a-f]{16}\\.cache$`));
      const [name] = userCaches(mine);
      const file = path.join(mine, name);
      expect([fs.statSync(file).uid, fs.statSync(mine).uid]).toEqual([other.uid, other.uid]);
      const before = fs.statSync(file);
      // Root cannot use it (not root's own), and does not rewrite it on every run either.
      const again = await run(c, ["completion", "bash"], env);
      expect(again.exitCode).toBe(0);
      expect(again.stderr).toMatch(new RegExp(`code cache: none; ${file} is there already$`));
      expect(fs.statSync(file).ino).toBe(before.ino);
      // Without XDG_CACHE_HOME: the switched user's HOME, not root's (nobody's does not exist).
      const home = await run(c, ["completion", "bash"], { ...env, XDG_CACHE_HOME: undefined, HOME: "/root" });
      expect(home.exitCode).toBe(0);
      const where = homeOf(other.uid);
      expect(home.stderr).toMatch(new RegExp(`code cache: none; (cannot use|wrote|cannot create) ${where}/\\.cache`));
    } finally {
      fs.rmSync(parent, { recursive: true, force: true });
    }
  });
});

describe("a cache directory that cannot or must not be written", () => {
  const noCache = async (c: Copy, env: Record<string, string | undefined>, why: RegExp, opts: { uid?: number; gid?: number } = {}) => {
    const r = await run(c, ["help"], env, opts);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain("list_realms");
    const [, reason] = /^zulip-manage: code cache: none; (.*)$/.exec(r.stderr) ?? [undefined, r.stderr];
    expect(reason).toMatch(why);
    return r;
  };

  it("no HOME and no XDG_CACHE_HOME, a HOME that does not exist, a path under /proc, a file: the command runs, nothing is written", async () => {
    const c = copyBuild("remove");
    await noCache(c, { HOME: undefined, XDG_CACHE_HOME: undefined }, /^no cache directory/);
    await noCache(c, { HOME: path.join(c.root, "gone"), XDG_CACHE_HOME: undefined }, /^cannot use .*gone\/\.cache\/zulip-manage: ENOENT$/);
    // A recursive mkdir spins forever on such paths; the loader never makes one.
    await noCache(c, { XDG_CACHE_HOME: "/proc/1/zm/x" }, /^cannot (create|use) /);
    await noCache(c, { XDG_CACHE_HOME: "/dev/null" }, /^(cannot create \/dev\/null\/zulip-manage|\/dev\/null belongs to another user)$/);
  });

  it("a directory of another user's: not written into (no root-owned files in someone else's home)", async () => {
    const other = serviceUser();
    const c = copyBuild("remove");
    const theirs = path.join(c.root, "theirs");
    fs.mkdirSync(theirs, { mode: 0o755 });
    if (other) {
      fs.chownSync(theirs, other.uid, other.gid);
      await noCache(c, { XDG_CACHE_HOME: theirs }, /belongs to another user$/);
      // Their home without a ~/.cache: none is made for them.
      await noCache(c, { HOME: theirs, XDG_CACHE_HOME: undefined }, /belongs to another user$/);
      expect(fs.readdirSync(theirs)).toEqual([]);
    } else {
      // Not root: a directory of another user's is one we cannot write into.
      fs.chmodSync(theirs, 0o555);
      await noCache(c, { XDG_CACHE_HOME: theirs }, /^cannot create /);
    }
  });

  it("our zulip-manage directory writable by others: not used", async () => {
    const c = copyBuild("remove");
    const dir = path.join(c.xdg, "zulip-manage");
    fs.mkdirSync(dir);
    fs.chmodSync(dir, 0o777);
    await noCache(c, {}, /is not a directory of ours that only we can write$/);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it("a read-only cache directory: the command runs, nothing is written", async () => {
    const other = serviceUser();
    // Root can write anywhere: then the CLI runs as the unprivileged user, from a copy it can
    // reach (a directory of its own under the system's temp dir), in a cache dir of theirs.
    const parent = fs.mkdtempSync(path.join(os.tmpdir(), "zm-code-cache-"));
    try {
      fs.chmodSync(parent, 0o755);
      const c = copyBuild("remove", parent);
      const dir = path.join(c.xdg, "zulip-manage");
      fs.mkdirSync(dir, { mode: 0o700 });
      if (isRoot() && other) {
        fs.chownSync(c.xdg, other.uid, other.gid);
        fs.chownSync(dir, other.uid, other.gid);
        fs.chmodSync(dir, 0o500);
        await noCache(c, {}, /^cannot write in .*: EACCES$/, { uid: other.uid, gid: other.gid });
      } else {
        fs.chmodSync(dir, 0o500);
        await noCache(c, {}, /^cannot write in .*: EACCES$/);
      }
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      fs.rmSync(parent, { recursive: true, force: true });
    }
  });
});
