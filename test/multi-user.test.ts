// Several admins on one machine, and a clone in a directory only its owner can enter: per-user
// state paths, another user's leftovers never in the way, servers run as another user get a
// readable copy of binaries they cannot reach, and the test command names what it lacks.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isRoot, reachableBy, reachableCopy, userStateDir } from "../src/dev/sandbox.js";
import { REPO_ROOT } from "./helpers/pg.js";
import { TEMP_ROOT } from "./helpers/services.js";

const NOBODY = { name: "nobody", uid: 65534, gid: 65534 };
const uid = process.getuid!();
let tmp: string;

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "zm-multi-user-"));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Run fn with the given environment variables set (undefined: unset), restoring them after. */
function withEnv<T>(vars: Record<string, string | undefined>, fn: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(vars)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    return fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

describe("per-user state", () => {
  it("the harness's temp root and the state directory are keyed by the user id", () => {
    if (!process.env.ZM_TEST_TMPDIR) expect(path.basename(TEMP_ROOT)).toBe(`zulip-manage-test-${uid}`);
    const base = fs.mkdtempSync(path.join(tmp, "t-"));
    const dir = withEnv({ TMPDIR: base, XDG_RUNTIME_DIR: undefined }, () => userStateDir());
    expect(dir).toBe(path.join(base, `zulip-manage-${uid}`));
    const st = fs.statSync(dir);
    expect(st.uid).toBe(uid);
    expect(st.mode & 0o777).toBe(0o700);
  });

  it("prefers $XDG_RUNTIME_DIR", () => {
    const run = fs.mkdtempSync(path.join(tmp, "run-"));
    expect(withEnv({ XDG_RUNTIME_DIR: run }, () => userStateDir())).toBe(path.join(run, "zulip-manage"));
  });

  it.skipIf(!isRoot())("passes over a directory another user left at its path (needs root: makes a directory owned by nobody)", () => {
    const base = fs.mkdtempSync(path.join(tmp, "t-"));
    const squatted = path.join(base, `zulip-manage-${uid}`);
    fs.mkdirSync(squatted, { mode: 0o777 });
    fs.chownSync(squatted, NOBODY.uid, NOBODY.gid);
    const cache = fs.mkdtempSync(path.join(tmp, "cache-"));
    const dir = withEnv({ TMPDIR: base, XDG_RUNTIME_DIR: undefined, XDG_CACHE_HOME: cache }, () => userStateDir());
    expect(dir).toBe(path.join(cache, "zulip-manage"));
  });

  it("the demo keeps its state there: another user's file at the old shared path is not in the way", () => {
    const base = fs.mkdtempSync(path.join(tmp, "t-"));
    // The old shared state file, as another user would have left it (here: unreadable as a file).
    fs.mkdirSync(path.join(base, "zulip-manage-demo.json"));
    const r = spawnSync(process.execPath, [path.join(REPO_ROOT, "dist", "dev", "demo.js"), "--stop"], {
      env: { ...process.env, TMPDIR: base, XDG_RUNTIME_DIR: "" },
      encoding: "utf8",
    });
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("No demo sandbox is recorded; nothing to stop.\n");
    expect(r.status).toBe(0);
    expect(fs.statSync(path.join(base, `zulip-manage-${uid}`)).mode & 0o777).toBe(0o700);
  });
});

describe.skipIf(!isRoot())("a private checkout and a server run as another user (needs root: switches to nobody)", () => {
  const catAsNobody = (file: string) => spawnSync("cat", [file], { uid: NOBODY.uid, gid: NOBODY.gid, encoding: "utf8" });

  it("reachableCopy hands out a readable copy of what nobody cannot reach, once", () => {
    const priv = fs.mkdtempSync(path.join(tmp, "private-"));
    fs.chmodSync(priv, 0o700);
    const tree = path.join(priv, "tree");
    fs.mkdirSync(path.join(tree, "bin"), { recursive: true });
    fs.writeFileSync(path.join(tree, "bin", "tool"), "#!/bin/sh\necho ok\n", { mode: 0o700 });
    fs.symlinkSync("tool", path.join(tree, "bin", "alias"));
    expect(reachableBy(tree, NOBODY)).toBe(false);
    expect(catAsNobody(path.join(tree, "bin", "tool")).status).not.toBe(0);

    const copy = reachableCopy(tree, NOBODY, "tree");
    expect(copy).not.toBe(tree);
    expect(reachableBy(copy, NOBODY)).toBe(true);
    expect(catAsNobody(path.join(copy, "bin", "tool")).stdout).toBe("#!/bin/sh\necho ok\n");
    expect(fs.readlinkSync(path.join(copy, "bin", "alias"))).toBe("tool");
    const run = spawnSync(path.join(copy, "bin", "alias"), { uid: NOBODY.uid, gid: NOBODY.gid, encoding: "utf8" });
    expect(run.stdout).toBe("ok\n");
    // The same tree: the same copy; a changed tree: a new one.
    expect(reachableCopy(tree, NOBODY, "tree")).toBe(copy);
    fs.writeFileSync(path.join(tree, "bin", "tool"), "#!/bin/sh\necho changed\n");
    expect(reachableCopy(tree, NOBODY, "tree")).not.toBe(copy);
    // What nobody can reach already is used as it is.
    expect(reachableCopy(copy, NOBODY)).toBe(copy);
    expect(reachableCopy(tree, null)).toBe(tree);
  });
});

describe("the test command's system packages", () => {
  it("names exactly what is missing and how to install it, without installing (--check)", () => {
    const r = spawnSync("/bin/bash", [path.join(REPO_ROOT, "scripts", "test-deps.sh"), "--check"], {
      env: { PATH: path.join(tmp, "empty-path") },
      encoding: "utf8",
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("The tests need these system packages, which are missing:");
    // (the packages looked for on PATH; the others are found by absolute paths on this machine)
    for (const pkg of ["postgresql-client", "redis-server", "zsh", "bsdutils", "openssl"]) {
      expect(r.stderr).toContain(pkg);
    }
    expect(r.stderr).toMatch(/apt-get install --no-install-recommends .*redis-server/);
  });

  it("says nothing and succeeds when everything is there (as on this machine after npm test's own check)", () => {
    const r = spawnSync("bash", [path.join(REPO_ROOT, "scripts", "test-deps.sh"), "--check"], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });
});
