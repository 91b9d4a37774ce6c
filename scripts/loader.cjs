// Copied into dist/bundle/load.cjs by scripts/bundle.mjs (which fills in BUNDLE_ID). Loads
// dist/bundle/cli.cjs like require() would, but through vm.Script with a V8 code cache, so V8
// deserializes the compiled bundle instead of parsing 1 MB of JavaScript on every start.
//
// A code cache is only ever given to the exact Node build that wrote it. V8 itself accepts a
// cache made by another Node release with the same V8 version (Node 20.20.2's cache on Node
// 20.12.2, say), and the code it restores then misbehaves: builtins such as Array.prototype.join
// or Promise.all come out as something else, and every command crashes. So each cache file
// starts with a header naming what it was made with (the cache key: process.versions, arch,
// platform, the node binary's path, size and modification time, the V8/Node flags from the
// command line and NODE_OPTIONS, and the bundle), and a cache whose header differs from this
// process's key is never handed to V8.
//
// Where the cache comes from:
// 1. dist/bundle/cli.cjs.cache, written by the build with the Node that built it;
// 2. otherwise a cache of this user's own, $XDG_CACHE_HOME/zulip-manage/<hash of the key>.cache
//    (default ~/.cache/zulip-manage/), which a run that had no usable cache writes when it ends,
//    atomically (a temporary file renamed into place). Writing never fails a command: a missing
//    or read-only home, HOME unset, a directory owned by someone else (root run through sudo
//    with another user's HOME) just mean no cache is written, after one failed mkdir or open,
//    before any cache data is made. Only files and directories owned by this user, and not
//    writable by anyone else, are read or written (a code cache is code that runs as us).
// ZULIP_MANAGE_DEBUG_CODE_CACHE=1 prints what happened on stderr when the process exits.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");
const Module = require("node:module");

const BUNDLE = path.join(__dirname, "cli.cjs");
const SHIPPED_CACHE = BUNDLE + ".cache";
/** A hash of cli.cjs, filled in by scripts/bundle.mjs. */
const BUNDLE_ID = "@@BUNDLE_ID@@";
const MAGIC = Buffer.from("zulip-manage code cache 1\n", "latin1");
/** How many per-user cache files (Node builds × zulip-manage builds) to keep. */
const KEEP_USER_CACHES = 6;

/** This process's cache key, as the bytes of one line of JSON (no raw newline in it). */
function cacheKey(sourceLength) {
  let binary = null;
  try {
    const st = fs.statSync(process.execPath);
    binary = { size: st.size, mtimeMs: st.mtimeMs };
  } catch {
    /* identified by path and versions only */
  }
  return Buffer.from(
    JSON.stringify({
      bundle: BUNDLE_ID,
      bundleLength: sourceLength,
      versions: process.versions,
      arch: process.arch,
      platform: process.platform,
      execPath: process.execPath,
      binary,
      execArgv: process.execArgv,
      nodeOptions: process.env.NODE_OPTIONS || "",
    }),
    "utf8",
  );
}

/**
 * A cache file: the magic line, the key line, a line saying what the run that wrote it covered
 * ("full": a command or the build's warm-up; "help": only help, which compiles far less of the
 * bundle), then V8's data.
 */
function cacheHeader(key, full) {
  return Buffer.concat([MAGIC, key, Buffer.from(full ? "\nfull\n" : "\nhelp\n")]);
}

/** Whether a cache file's header was written under `key`: true (full), false (help only), or undefined. */
function headerCoverage(head, key) {
  if (!head.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  if (!head.subarray(MAGIC.length, MAGIC.length + key.length).equals(key)) return undefined;
  const coverage = head.latin1Slice(MAGIC.length + key.length, MAGIC.length + key.length + 6);
  return coverage === "\nfull\n" ? true : coverage === "\nhelp\n" ? false : undefined;
}

/** Read from `fd` into buf[from, to); returns where it stopped. */
function readInto(fd, buf, from, to) {
  let off = from;
  while (off < to) {
    const n = fs.readSync(fd, buf, off, to - off, off);
    if (n === 0) break;
    off += n;
  }
  return off;
}

/**
 * { data, full } from the cache file `file` if it was written under `key`, else undefined. Only
 * the header is read when it is another key's (on a server whose Node is not the build's, the
 * build's cache is skipped on every start). A user cache must be a regular file of ours that
 * nobody else can write.
 */
function readCache(file, key, userCache) {
  let fd;
  try {
    fd = fs.openSync(file, userCache ? fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW : fs.constants.O_RDONLY);
  } catch {
    return undefined;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || (userCache && !ours(st))) return undefined;
    const headLength = MAGIC.length + key.length + 6;
    if (st.size <= headLength) return undefined;
    const buf = Buffer.allocUnsafe(st.size);
    if (readInto(fd, buf, 0, headLength) < headLength) return undefined;
    const full = headerCoverage(buf, key);
    if (full === undefined || readInto(fd, buf, headLength, st.size) < st.size) return undefined;
    return { data: buf.subarray(headLength), full };
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/** Whether this run goes beyond help (and so compiles what a command needs). */
function fullRun(args) {
  return args.length > 0 && args[0] !== "help" && !args[0].startsWith("-") && !args.includes("--help") && !args.includes("-h");
}

/** Whether a stat result belongs to this user and nobody else can write to it. */
function ours(st) {
  return typeof process.getuid === "function" && st.uid === process.getuid() && (st.mode & 0o022) === 0;
}

/** A 64-bit FNV-1a-style hash of `bytes` as 16 hex digits (a file name, not a security measure). */
function hashHex(bytes) {
  let h1 = 0x811c9dc5;
  let h2 = 0x050c5d1f;
  for (let i = 0; i < bytes.length; i++) {
    h1 = Math.imul(h1 ^ bytes[i], 0x01000193);
    h2 = Math.imul(h2 ^ bytes[i], 0x01000193) ^ (h1 >>> 15);
  }
  return (h1 >>> 0).toString(16).padStart(8, "0") + (h2 >>> 0).toString(16).padStart(8, "0");
}

/** The per-user cache directory from the current environment, or null (no usable HOME). */
function userCacheDir() {
  let base = process.env.XDG_CACHE_HOME;
  // The XDG spec: a relative XDG_CACHE_HOME is invalid and is ignored.
  if (!base || !path.isAbsolute(base)) {
    const home = process.env.HOME;
    if (!home || !path.isAbsolute(home)) return null;
    base = path.join(home, ".cache");
  }
  return path.join(base, "zulip-manage");
}

/** mkdir without recursion (a recursive mkdir can spin on paths like /proc/x); true if it exists now. */
function ensureDir(dir, mode) {
  try {
    fs.mkdirSync(dir, { mode });
  } catch (e) {
    if (e.code !== "EEXIST") return false;
  }
  return true;
}

/**
 * Write `script`'s code cache to `file` (a path in userCacheDir()), atomically. Returns null when
 * written, else why not. Never throws. The directories and the temporary file are made before
 * the cache data, so that a directory we cannot write costs a failed system call or two.
 */
function writeUserCache(script, file, key, full) {
  const dir = path.dirname(file);
  const base = path.dirname(dir);
  try {
    // Make ~/.cache only in a directory of our own (never a root-owned ~/.cache in another
    // user's home), and our directory only inside a base of our own.
    if (!fs.existsSync(base)) {
      if (fs.statSync(path.dirname(base)).uid !== process.getuid()) return `${path.dirname(base)} belongs to another user`;
      if (!ensureDir(base, 0o700)) return `cannot create ${base}`;
    }
    if (fs.statSync(base).uid !== process.getuid()) return `${base} belongs to another user`;
    if (!ensureDir(dir, 0o700)) return `cannot create ${dir}`;
    const st = fs.lstatSync(dir);
    if (!st.isDirectory() || !ours(st)) return `${dir} is not a directory of ours that only we can write`;
  } catch (e) {
    return `cannot use ${dir}: ${e.code ?? e}`;
  }
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  let fd;
  try {
    fd = fs.openSync(tmp, "wx", 0o600);
  } catch (e) {
    return `cannot write in ${dir}: ${e.code ?? e}`;
  }
  try {
    const data = script.createCachedData();
    fs.writeSync(fd, cacheHeader(key, full));
    fs.writeSync(fd, data);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) fs.closeSync(fd);
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* gone already */
    }
    return `cannot write ${file}: ${e.code ?? e}`;
  }
  prune(dir, file);
  return null;
}

/** Keep the newest KEEP_USER_CACHES cache files; remove temporary files older than an hour. */
function prune(dir, keep) {
  try {
    const now = Date.now();
    const caches = [];
    for (const name of fs.readdirSync(dir)) {
      const p = path.join(dir, name);
      if (/^[0-9a-f]{16}\.cache$/.test(name)) {
        if (p !== keep) caches.push({ p, mtime: fs.statSync(p).mtimeMs });
      } else if (/^\..*\.tmp$/.test(name) && now - fs.statSync(p).mtimeMs > 3600_000) {
        fs.unlinkSync(p);
      }
    }
    caches.sort((a, b) => b.mtime - a.mtime);
    for (const c of caches.slice(KEEP_USER_CACHES - 1)) fs.unlinkSync(c.p);
  } catch {
    /* another process pruned at the same time, or a file we may not remove: leave it */
  }
}

/** Compile the bundle (with `cachedData` if given); returns the vm.Script and the module's exports. */
function compile(source, cachedData) {
  // The bundle contains no import() (scripts/bundle.mjs turns them into require()), so no
  // dynamic-import callback is needed.
  const script = new vm.Script(Module.wrap(source), { filename: BUNDLE, cachedData });
  const mod = { exports: {} };
  script.runInThisContext().call(mod.exports, mod.exports, Module.createRequire(BUNDLE), mod, BUNDLE, __dirname);
  return { script, exports: mod.exports };
}

/** The bundle's source. */
function readBundle() {
  // The bundle is pure ASCII (scripts/bundle.mjs makes sure), so reading it as Latin-1 gives
  // the same string as UTF-8, without the decoding (about 1.5 ms of 1 MB on a small machine).
  return fs.readFileSync(BUNDLE, "latin1");
}

exports.load = function load() {
  const source = readBundle();
  const key = cacheKey(source.length);
  const debug = process.env.ZULIP_MANAGE_DEBUG_CODE_CACHE;
  const full = fullRun(process.argv.slice(2));
  let from = null;
  let cache = readCache(SHIPPED_CACHE, key, false);
  if (cache) from = SHIPPED_CACHE;
  let userFile = null;
  if (!cache) {
    const dir = userCacheDir();
    userFile = dir && path.join(dir, `${hashHex(key)}.cache`);
    cache = userFile ? readCache(userFile, key, true) : undefined;
    if (cache) from = userFile;
  }
  const loadUid = typeof process.getuid === "function" ? process.getuid() : -1;
  const { script, exports: cli } = compile(source, cache?.data);
  // Done with the cache if V8 took it, unless it came from a help run and this run does more.
  const used = cache !== undefined && !script.cachedDataRejected && (cache.full || !full);
  if (!used || debug) {
    process.once("exit", () => {
      try {
        afterRun();
      } catch {
        /* never let the cache fail a command */
      }
    });
    const afterRun = () => {
      let wrote = "not needed";
      if (!used) {
        // The environment as it is now: a run started as root may have switched to the Zulip
        // user (src/cli/runas.ts), with that user's HOME, and that user's cache may be there
        // already (root did not read it: not root's own).
        const dir = userCacheDir();
        const target = dir && path.join(dir, `${hashHex(key)}.cache`);
        const switched = loadUid !== (typeof process.getuid === "function" ? process.getuid() : -1);
        let there;
        if (!target) wrote = "no cache directory (neither XDG_CACHE_HOME nor HOME is set)";
        else if ((target !== userFile || switched) && (there = readCache(target, key, true)) && (there.full || !full)) wrote = `${target} is there already`;
        else wrote = writeUserCache(script, target, key, full) ?? `wrote ${target}${full ? "" : " (help only)"}`;
      }
      if (debug) {
        const state = from ? `${from}${script.cachedDataRejected ? " (rejected by V8)" : cache.full ? "" : " (help only)"}` : "none";
        process.stderr.write(`zulip-manage: code cache: ${state}; ${wrote}\n`);
      }
    };
  }
  return cli;
};

/** Build step: compile, exercise the common start-up path, and write the shipped code cache. */
exports.writeCache = async function writeCache() {
  const source = readBundle();
  const { script, exports: cli } = compile(source, undefined);
  // Run the paths every command takes (registry, help, commander, option parsing) so that their
  // functions are compiled and land in the cache too; their output is discarded.
  const write = process.stdout.write;
  process.stdout.write = () => true;
  try {
    await cli.run(["help"]);
    await cli.run(["list_realms", "--help"]);
    await cli.warmUp();
  } finally {
    process.stdout.write = write;
  }
  const tmp = `${SHIPPED_CACHE}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, Buffer.concat([cacheHeader(cacheKey(source.length), true), script.createCachedData()]));
  fs.renameSync(tmp, SHIPPED_CACHE);
};

// `node dist/bundle/load.cjs --write-cache` (scripts/bundle.mjs): run as a script of its own, so
// that the key it writes has the execArgv of a plain `node bin/zulip-manage` (none).
if (require.main === module && process.argv[2] === "--write-cache") {
  exports.writeCache().catch((e) => {
    process.stderr.write(`${e?.stack ?? e}\n`);
    process.exitCode = 1;
  });
}
