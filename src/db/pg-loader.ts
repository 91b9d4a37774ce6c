// Loading the `pg` module, once. The CLI starts this import as soon as it knows the command
// needs the database, so reading and compiling pg overlaps with argument parsing and reading
// /etc/zulip instead of following them.

type PgModule = (typeof import("pg"))["default"];
let loading: Promise<PgModule> | undefined;

export function loadPg(): Promise<PgModule> {
  if (!loading) {
    // pg probes for the Cloudflare Workers runtime on import; on Node 20 (no global navigator)
    // that probe constructs a fetch Response, which loads all of undici: ~25 ms of start-up.
    // Node 21+ defines navigator.userAgent = "Node.js/<major>"; give Node 20 the same answer.
    if (typeof (globalThis as any).navigator === "undefined") {
      Object.defineProperty(globalThis, "navigator", {
        value: { userAgent: `Node.js/${process.versions.node.split(".")[0]}` },
        configurable: true,
        writable: true,
      });
    }
    loading = import("pg").then((m) => {
      const pg = m.default;
      // bigint (int8) ids fit in a JS number for any real server.
      pg.types.setTypeParser(20, (v: string) => Number(v));
      return pg;
    });
    // A failed prefetch is reported by whoever awaits it, not as an unhandled rejection.
    loading.catch(() => undefined);
  }
  return loading;
}
