// zulip-manage's own version, from package.json (next to dist/ in a checkout or an installed
// package, whether this runs from dist/lib/ or from the bundle in dist/bundle/).
import fs from "node:fs";

/** The package version, from the nearest package.json above this file (dist/ or dist/bundle/). */
export function version(): string {
  for (const rel of ["../package.json", "../../package.json"]) {
    try {
      const pkg = JSON.parse(fs.readFileSync(new URL(rel, import.meta.url), "utf8"));
      if (pkg.name === "zulip-manage") return pkg.version;
    } catch {
      /* try the next level */
    }
  }
  return "unknown";
}
