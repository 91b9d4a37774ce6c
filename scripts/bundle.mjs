// Bundle the compiled CLI (dist/) into a few ES module chunks under dist/bundle/ so that a
// command loads one or two files instead of ~60 small modules: node's module resolution and
// compilation dominate a CLI's start-up. Dynamic import() boundaries (each command, pg, mail,
// prompts) stay separate chunks, so heavy code still loads only when a command needs it.
import { build } from "esbuild";
import { renameSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const finalDir = path.join(root, "dist", "bundle");
// Build next to the final directory and swap it in only when the build succeeded, so a failed
// or concurrent build never leaves a half-written bundle behind.
const outdir = `${finalDir}.tmp-${process.pid}`;
rmSync(outdir, { recursive: true, force: true });
try {
  await build({
  entryPoints: [path.join(root, "dist", "cli.js")],
  outdir,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  minifySyntax: true,
  minifyWhitespace: true,
  legalComments: "none",
  logLevel: "warning",
  // Optional native/edge variants pg looks for at run time; never needed here.
  external: ["pg-native", "cloudflare:sockets"],
  // CommonJS dependencies bundled into ES modules still call require() for Node built-ins.
  banner: { js: "import { createRequire as __zmCreateRequire } from 'node:module'; const require = __zmCreateRequire(import.meta.url);" },
  });
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
