// The atomic zulip-secrets.conf rewrite (src/config/secrets-file.ts): content, order, comments,
// mode, owner, symlinks, refusal when not writable, and failures that must leave the old file.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { checkSecretsWritable, secretsNotWritableReason, updateSecretsFile } from "../src/config/secrets-file.js";
import { REPO_ROOT } from "./helpers/pg.js";
import { reachableCopy } from "../src/dev/sandbox.js";

const ORIGINAL = [
  "# Zulip secrets — managed by hand",
  "[secrets]",
  "avatar_salt = 0123abcd",
  "; a semicolon comment",
  "zulip_org_id=1f2e3d4c-0000-4000-8000-000000000001",
  "zulip_org_key   =   OLDKEYoldkey",
  "",
  "rabbitmq_password = rabbit",
  "",
  "[other]",
  "zulip_org_key = not-this-one",
  "",
].join("\n");

const isRoot = process.getuid?.() === 0;
let dir: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "zm-secrets-"));
  fs.chmodSync(dir, 0o755);
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function write(name: string, text: string, mode = 0o640): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  fs.chmodSync(p, mode);
  return p;
}

function leftovers(): string[] {
  return fs.readdirSync(dir).filter((f) => f.endsWith(".tmp"));
}

describe("updateSecretsFile", () => {
  it("rewrites only the changed key, keeping every other byte, and reports what changed", () => {
    const file = write("zulip-secrets.conf", ORIGINAL);
    const inoBefore = fs.statSync(file).ino;
    const r = updateSecretsFile(file, { zulip_org_key: "NEWKEY123", zulip_org_id: "1f2e3d4c-0000-4000-8000-000000000001" });
    expect(r.written).toBe(true);
    expect(r.changed).toEqual(["zulip_org_key"]);
    const text = fs.readFileSync(file, "utf8");
    expect(text).toBe(ORIGINAL.replace("zulip_org_key   =   OLDKEYoldkey", "zulip_org_key   =   NEWKEY123"));
    // The [other] section's key of the same name is untouched.
    expect(text).toContain("zulip_org_key = not-this-one");
    // Replaced by rename: a new inode, and no temporary file left behind.
    expect(fs.statSync(file).ino).not.toBe(inoBefore);
    expect(leftovers()).toEqual([]);
  });

  it("appends a new key at the end of [secrets] and leaves an unchanged file alone", () => {
    const file = write("zulip-secrets.conf", ORIGINAL);
    updateSecretsFile(file, { redis_password: "r3d1s" });
    const lines = fs.readFileSync(file, "utf8").split("\n");
    expect(lines.indexOf("redis_password = r3d1s")).toBe(lines.indexOf("rabbitmq_password = rabbit") + 1);
    const ino = fs.statSync(file).ino;
    const mtime = fs.statSync(file).mtimeMs;
    const r = updateSecretsFile(file, { redis_password: "r3d1s" });
    expect(r).toMatchObject({ written: false, changed: [] });
    expect(fs.statSync(file).ino).toBe(ino);
    expect(fs.statSync(file).mtimeMs).toBe(mtime);
  });

  it("keeps CRLF line endings and a missing final newline", () => {
    const crlf = "[secrets]\r\nzulip_org_key = a\r\nother = b";
    const file = write("s.conf", crlf);
    updateSecretsFile(file, { zulip_org_key: "z", new_one: "n" });
    expect(fs.readFileSync(file, "utf8")).toBe("[secrets]\r\nzulip_org_key = z\r\nother = b\r\nnew_one = n");
  });

  it("keeps the mode", () => {
    for (const mode of [0o640, 0o600, 0o660]) {
      const file = write(`m${mode}.conf`, ORIGINAL, mode);
      updateSecretsFile(file, { zulip_org_key: `K${mode}` });
      expect(fs.statSync(file).mode & 0o7777).toBe(mode);
    }
  });

  it.skipIf(!isRoot)("keeps the owner and group when run as root (needs root: only root can give a file another owner)", () => {
    const file = write("zulip-secrets.conf", ORIGINAL);
    fs.chownSync(file, 65534, 65534);
    updateSecretsFile(file, { zulip_org_key: "rootwrites" });
    const st = fs.statSync(file);
    expect([st.uid, st.gid]).toEqual([65534, 65534]);
    expect(st.mode & 0o7777).toBe(0o640);
    expect(fs.readFileSync(file, "utf8")).toContain("zulip_org_key   =   rootwrites");
  });

  it("follows a symbolic link: the link stays and its target is updated", () => {
    const real = write("real-secrets.conf", ORIGINAL);
    const link = path.join(dir, "zulip-secrets.conf");
    fs.symlinkSync(real, link);
    updateSecretsFile(link, { zulip_org_key: "vialink" });
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect(fs.readFileSync(real, "utf8")).toContain("zulip_org_key   =   vialink");
  });

  it("creates the file with mode 0640 and a [secrets] section when it does not exist", () => {
    const file = path.join(dir, "new-secrets.conf");
    updateSecretsFile(file, { zulip_org_id: "abc" });
    expect(fs.readFileSync(file, "utf8")).toBe("[secrets]\nzulip_org_id = abc\n");
    expect(fs.statSync(file).mode & 0o7777).toBe(0o640);
  });

  for (const step of ["afterTempWrite", "beforeRename"] as const) {
    it(`leaves the old file intact when the write fails (${step})`, () => {
      const file = write("zulip-secrets.conf", ORIGINAL);
      const before = fs.statSync(file);
      let tempSeen = "";
      expect(() =>
        updateSecretsFile(
          file,
          { zulip_org_key: "SHOULD-NOT-APPEAR" },
          {
            hooks: {
              [step]: (tmp: string) => {
                tempSeen = tmp;
                // The temporary file is complete, private to the owner, in the same directory.
                expect(path.dirname(tmp)).toBe(dir);
                expect(fs.readFileSync(tmp, "utf8")).toContain("SHOULD-NOT-APPEAR");
                expect(fs.statSync(tmp).mode & 0o077 & ~0o040).toBe(0);
                throw new Error("simulated crash");
              },
            },
          },
        ),
      ).toThrow(/left unchanged/);
      expect(tempSeen).not.toBe("");
      expect(fs.readFileSync(file, "utf8")).toBe(ORIGINAL);
      const after = fs.statSync(file);
      expect(after.ino).toBe(before.ino);
      expect(after.mode).toBe(before.mode);
      expect(leftovers()).toEqual([]);
    });
  }

  it("never puts a value in its error messages", () => {
    const file = write("zulip-secrets.conf", ORIGINAL);
    let message = "";
    try {
      updateSecretsFile(file, { zulip_org_key: "TOPSECRET\nINJECTED = 1" });
    } catch (e: any) {
      message = e.message;
    }
    expect(message).toMatch(/Cannot update/);
    expect(message).not.toContain("TOPSECRET");
    expect(fs.readFileSync(file, "utf8")).toBe(ORIGINAL);
  });
});

describe("checkSecretsWritable", () => {
  it("accepts a file we own in a directory we can write", () => {
    const file = write("zulip-secrets.conf", ORIGINAL);
    expect(secretsNotWritableReason(file)).toBeNull();
    expect(() => checkSecretsWritable(file)).not.toThrow();
  });

  it("refuses a directory entry that is not a regular file", () => {
    const sub = path.join(dir, "zulip-secrets.conf");
    fs.mkdirSync(sub);
    expect(() => checkSecretsWritable(sub)).toThrow(`${sub} is not writable by the current user.`);
  });

  // Root bypasses file permissions, so the unprivileged cases run in a child process as 'nobody'
  // (or directly when the tests do not run as root), against the built library.
  // The clone may be in a directory only its owner can enter: then 'nobody' gets a readable copy.
  const built = path.join(reachableCopy(path.join(REPO_ROOT, "dist"), isRoot ? { name: "nobody", uid: 65534, gid: 65534 } : null), "config", "secrets-file.js");
  const runAsOther = (script: string): { status: number | null; stdout: string; stderr: string } => {
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
      ...(isRoot ? { uid: 65534, gid: 65534 } : {}),
      timeout: 20_000,
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it.skipIf(!fs.existsSync(built))("refuses, before writing anything, when the directory is not writable (as another user)", () => {
    // A directory owned by root (or by us when not root) and read-only for everyone else,
    // holding a secrets file the unprivileged user may write but not replace.
    const ro = path.join(dir, "ro");
    fs.mkdirSync(ro, { mode: 0o755 });
    const file = path.join(ro, "zulip-secrets.conf");
    fs.writeFileSync(file, ORIGINAL, { mode: 0o666 });
    fs.chmodSync(file, 0o666);
    if (isRoot) fs.chownSync(file, 65534, 65534);
    else fs.chmodSync(ro, 0o555);
    const script = `
      import { checkSecretsWritable, updateSecretsFile } from ${JSON.stringify(built)};
      let check = "ok", update = "ok";
      try { checkSecretsWritable(${JSON.stringify(file)}); } catch (e) { check = e.message; }
      try { updateSecretsFile(${JSON.stringify(file)}, { zulip_org_key: "X" }); } catch (e) { update = e.message; }
      process.stdout.write(JSON.stringify({ check, update }));`;
    const r = runAsOther(script);
    fs.chmodSync(ro, 0o755);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.check).toContain(`${file} is not writable by the current user.`);
    expect(out.check).toMatch(/directory .* is not writable/);
    expect(out.update).toMatch(/left unchanged|not writable/);
    expect(fs.readFileSync(file, "utf8")).toBe(ORIGINAL);
  });

  it.skipIf(!fs.existsSync(built) || !isRoot)(
    "refuses a file owned by another user even in a writable directory (needs root: makes a file owned by root and runs as nobody)",
    () => {
      const open = path.join(dir, "open");
      fs.mkdirSync(open);
      fs.chmodSync(open, 0o777);
      const file = path.join(open, "zulip-secrets.conf");
      fs.writeFileSync(file, ORIGINAL);
      fs.chmodSync(file, 0o666); // writable by all, but owned by root: nobody cannot keep the owner
      const script = `
      import { checkSecretsWritable } from ${JSON.stringify(built)};
      try { checkSecretsWritable(${JSON.stringify(file)}); process.stdout.write("accepted"); }
      catch (e) { process.stdout.write(e.message); }`;
      const r = runAsOther(script);
      expect(r.stdout).toContain("is not writable by the current user.");
      expect(r.stdout).toContain("belongs to root");
      expect(fs.readFileSync(file, "utf8")).toBe(ORIGINAL);
    },
  );
});

describe("updateSecretsFile on a file that is a mount point", () => {
  // Whether this (root) process may bind-mount: probed once with two scratch files.
  const canMount = ((): boolean => {
    if (!isRoot) return false;
    const probe = fs.mkdtempSync(path.join(os.tmpdir(), "zm-mount-probe-"));
    try {
      fs.writeFileSync(path.join(probe, "a"), "");
      fs.writeFileSync(path.join(probe, "b"), "");
      if (spawnSync("mount", ["--bind", path.join(probe, "a"), path.join(probe, "b")]).status !== 0) return false;
      spawnSync("umount", [path.join(probe, "b")]);
      return true;
    } catch {
      return false;
    } finally {
      fs.rmSync(probe, { recursive: true, force: true });
    }
  })();
  it.skipIf(!canMount)("rewrites a bind-mounted file in place (it cannot be renamed over)", () => {
    const outside = path.join(dir, "outside.conf");
    fs.writeFileSync(outside, ORIGINAL);
    fs.chmodSync(outside, 0o640);
    const file = path.join(dir, "zulip-secrets.conf");
    fs.writeFileSync(file, "");
    expect(spawnSync("mount", ["--bind", outside, file]).status).toBe(0);
    try {
      const ino = fs.statSync(file).ino;
      const r = updateSecretsFile(file, { zulip_org_key: "MOUNTED" });
      expect(r).toMatchObject({ written: true, inPlace: true, changed: ["zulip_org_key"] });
      expect(fs.statSync(file).ino).toBe(ino);
      expect(fs.readFileSync(outside, "utf8")).toBe(ORIGINAL.replace("OLDKEYoldkey", "MOUNTED"));
      expect(fs.statSync(outside).mode & 0o7777).toBe(0o640);
      expect(leftovers()).toEqual([]);
    } finally {
      spawnSync("umount", [file]);
    }
  });
});
