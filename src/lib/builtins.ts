// Node built-in modules that only some paths of a command need, loaded on first use instead of
// when the CLI starts: loading node:crypto and node:zlib costs a few milliseconds each on a
// small machine, which every command would otherwise pay before it even connects to the
// database (a write command first needs them while it waits for PostgreSQL anyway).
import { createRequire } from "node:module";

type Crypto = typeof import("node:crypto");
type Zlib = typeof import("node:zlib");

const load = createRequire(import.meta.url);
let cryptoModule: Crypto | undefined;
let zlibModule: Zlib | undefined;

export function crypto(): Crypto {
  return (cryptoModule ??= load("node:crypto") as Crypto);
}

export function zlib(): Zlib {
  return (zlibModule ??= load("node:zlib") as Zlib);
}
