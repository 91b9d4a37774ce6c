// The CLI built with this machine's Node, run with official builds of other Node releases
// (issue 12): Zulip servers run the Node.js that Zulip's installer pins (20.12.2), and a build's
// V8 code cache once crashed every command there (V8 accepted the cache of another Node with the
// same V8 version). With each release (test/helpers/node-binaries.ts fetches them from npm):
// the build's code cache is left alone, the first run writes that Node's own cache in the user's
// cache directory, and later runs use it; `--help` of every command, and one real call of every
// command (test/helpers/smoke.ts) against a seeded database, give the expected output.
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { COMMANDS } from "../src/commands/index.js";
import { CLI_ENTRY, runCli } from "./helpers/cli.js";
import { OFFICIAL_NODE_VERSIONS, officialNode, officialNodeUnavailable } from "./helpers/node-binaries.js";
import { makeTempDir } from "./helpers/services.js";
import { runHelpCall, runSmokeCall, smokeCalls, startSmokeServer, type SmokeServer } from "./helpers/smoke.js";

const SHIPPED_CACHE = `${CLI_ENTRY}.cache`;
const unavailable = officialNodeUnavailable();

if (unavailable) {
  describe("official Node releases", () => {
    it(`are not run here: ${unavailable}; the build's code cache names this machine's platform and arch`, () => {
      console.warn(`test/node-versions.test.ts: official Node builds not run: ${unavailable}`);
      const header = fs.readFileSync(SHIPPED_CACHE).subarray(0, 4096).toString("latin1");
      expect(header).toContain(`"arch":"${process.arch}","platform":"${process.platform}"`);
    });
  });
} else {
  let server: SmokeServer;
  beforeAll(async () => {
    server = await startSmokeServer();
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
  });

  describe.each(OFFICIAL_NODE_VERSIONS)("Node %s (official build)", (version) => {
    let node: string;
    let cacheHome: string;
    const userCaches = () => fs.readdirSync(path.join(cacheHome, "zulip-manage")).filter((n) => n.endsWith(".cache"));

    beforeAll(async () => {
      node = await officialNode(version);
      cacheHome = makeTempDir(`node-${version}-cache`, { serviceOwned: false });
    }, 600_000);
    afterAll(() => {
      if (cacheHome) fs.rmSync(cacheHome, { recursive: true, force: true });
    });

    it("ignores the build's code cache, writes its own on the first run, uses it afterwards; --help of every command", async () => {
      const shippedBefore = fs.readFileSync(SHIPPED_CACHE);
      const env = { XDG_CACHE_HOME: cacheHome, ZULIP_MANAGE_DEBUG_CODE_CACHE: "1" };
      const first = await runCli(["help"], { node, env });
      expect(first.exitCode, first.stderr).toBe(0);
      expect(first.stdout).toContain("list_realms");
      const mine = path.join(cacheHome, "zulip-manage");
      expect(first.stderr).toMatch(new RegExp(`^zulip-manage: code cache: none; wrote ${mine}/[0-9a-f]{16}\\.cache \\(help only\\)$`));
      const [file] = userCaches();
      const st = fs.statSync(path.join(mine, file));
      expect(st.mode & 0o777).toBe(0o600);
      expect(fs.statSync(mine).mode & 0o777).toBe(0o700);
      // The file says which Node wrote it.
      expect(fs.readFileSync(path.join(mine, file)).subarray(0, 4096).toString("latin1")).toContain(`"node":"${version}"`);

      const second = await runCli(["help"], { node, env });
      expect(second.stderr).toBe(`zulip-manage: code cache: ${path.join(mine, file)} (help only); not needed`);
      for (const c of COMMANDS) expect(await runHelpCall(c.name, { node, env: { XDG_CACHE_HOME: cacheHome } })).toBeNull();
      expect(userCaches()).toEqual([file]);
      // The build's cache is for the machine's Node only, and stays as it was.
      expect(fs.readFileSync(SHIPPED_CACHE).equals(shippedBefore)).toBe(true);
    }, 300_000); // one --help per command: minutes on a loaded 2-core machine

    it("one call of every command against a seeded Zulip 12 database", async () => {
      const calls = smokeCalls(server, version);
      const problems: string[] = [];
      for (const call of calls) {
        const p = await runSmokeCall(call, server, { node, env: { XDG_CACHE_HOME: cacheHome } });
        if (p) problems.push(p);
      }
      expect(problems).toEqual([]);
      // The first command replaced the help-only cache with a full one, which later runs use.
      const r = await runCli(["list_realms"], {
        node,
        confDir: server.conf,
        db: server.db,
        env: { XDG_CACHE_HOME: cacheHome, ZULIP_MANAGE_DEBUG_CODE_CACHE: "1" },
      });
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toMatch(/^zulip-manage: code cache: \S+\/zulip-manage\/[0-9a-f]{16}\.cache; not needed$/);
    }, 300_000); // one call per command
  });
}
