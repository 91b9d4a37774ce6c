// Copied into dist/bundle/load.cjs by scripts/bundle.mjs. Loads dist/bundle/cli.cjs like
// require() would, but through vm.Script with the code cache in cli.cjs.cache, so V8
// deserializes the compiled bundle instead of parsing 700 KB of JavaScript on every start.
// A cache that does not fit (another Node version, a rebuilt bundle) is rejected by V8 and the
// bundle is simply compiled from source.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");
const Module = require("node:module");

const BUNDLE = path.join(__dirname, "cli.cjs");
const CACHE = BUNDLE + ".cache";

/** Compile the bundle (with the cache if it fits); returns the vm.Script and its exports. */
function compile(cachedData) {
  // The bundle contains no import() (scripts/bundle.mjs turns them into require()), so no
  // dynamic-import callback is needed.
  // The bundle is pure ASCII (scripts/bundle.mjs makes sure), so reading it as Latin-1 gives
  // the same string as UTF-8, without the decoding (about 1.5 ms of 1 MB on a small machine).
  const source = fs.readFileSync(BUNDLE, "latin1");
  const script = new vm.Script(Module.wrap(source), { filename: BUNDLE, cachedData });
  const mod = { exports: {} };
  script.runInThisContext().call(mod.exports, mod.exports, Module.createRequire(BUNDLE), mod, BUNDLE, __dirname);
  return { script, exports: mod.exports };
}

exports.load = function load() {
  let cachedData;
  try {
    cachedData = fs.readFileSync(CACHE);
  } catch {
    cachedData = undefined;
  }
  return compile(cachedData).exports;
};

/** Build step: compile, exercise the common start-up path, and write the code cache. */
exports.writeCache = async function writeCache() {
  const { script, exports: cli } = compile(undefined);
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
  fs.writeFileSync(CACHE, script.createCachedData());
  return true;
};
