// Jdenticon profile pictures of new users (Zulip 12: realm.default_avatar_source "J"): Zulip's
// generate_and_upload_jdenticon_avatar runs the deployment's own generator
// (webpack-bundles/jdenticon.js) with the key "<realm uuid>:<user id>" at 100 and 500 pixels and
// stores the PNGs where the user's avatar URL points (LOCAL_UPLOADS_DIR/avatars/<realm>/<hash>.png
// and -medium.png). The deployment here has a stand-in generator that prints its arguments, so
// the test sees exactly how it was run and where its output went. Without a generator, or with
// the S3 backend, the image is not written and the command says so; Zulip 11 and 10 create
// Gravatar users (nothing to write).
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "./helpers/cli.js";
import type { TemplateName } from "./helpers/pg.js";
import { makeTempDir } from "./helpers/services.js";
import { startServerCopy, type ServerCopy } from "./helpers/server-copy.js";
import { TEST_REALM } from "./helpers/users.js";

const HOST = "zulip.example.net";
const STAND_IN = `process.stdout.write("PNG " + JSON.stringify(process.argv.slice(2)));\n`;

function uploadsDir(): string {
  const dir = makeTempDir("uploads", { serviceOwned: true });
  fs.chmodSync(dir, 0o777);
  return dir;
}

describe("Zulip 12: create_user and create_realm write the Jdenticon picture with the deployment's generator", () => {
  let server: ServerCopy;
  let uploads: string;
  beforeAll(async () => {
    uploads = uploadsDir();
    server = await startServerCopy({ template: "zulip12_fresh", externalHost: HOST, extraSettings: `LOCAL_UPLOADS_DIR = "${uploads}"\n` });
    const bundle = path.join(server.conf.deployDir, "prod-static", "serve", "webpack-bundles");
    fs.mkdirSync(bundle, { recursive: true });
    fs.writeFileSync(path.join(bundle, "jdenticon.js"), STAND_IN, { mode: 0o644 });
  });
  afterAll(async () => {
    await server?.stop();
  });

  const expectPictures = async (userId: number) => {
    const [u] = await server.db.query(
      "SELECT u.avatar_source, u.avatar_version, r.uuid FROM zerver_userprofile u JOIN zerver_realm r ON r.id = u.realm_id WHERE u.id = $1",
      [userId],
    );
    expect(u.avatar_source).toBe("J");
    const [realm] = await server.db.query("SELECT realm_id FROM zerver_userprofile WHERE id = $1", [userId]);
    const hash = crypto.createHash("sha256").update(`${userId}:${u.avatar_version}:${server.conf.secrets.avatar_salt}`).digest("hex").slice(0, 40);
    const base = path.join(uploads, "avatars", String(realm.realm_id), hash);
    const args = (size: number) =>
      `PNG ${JSON.stringify([`${u.uuid}:${userId}`, "-s", String(size), "-p", "0", "--lightness-color", "0.3,0.7", "--lightness-grayscale", "0.3,0.7"])}`;
    expect(fs.readFileSync(`${base}.png`, "utf8")).toBe(args(100));
    expect(fs.readFileSync(`${base}-medium.png`, "utf8")).toBe(args(500));
  };

  it("create_user: the new user's picture at the avatar URL's path; nothing reported missing about it", async () => {
    const r = await runCli(["create_user", "-r", String(TEST_REALM), "jd@test.example", "Jay Dee", "--json"], { confDir: server.conf, db: server.db });
    expect({ exit: r.exitCode, stderr: r.stderr }).toEqual({ exit: 0, stderr: "" });
    const doc = JSON.parse(r.stdout);
    expect(doc.not_done.filter((n: string) => n.includes("Jdenticon"))).toEqual([]);
    await expectPictures(doc.user.id);
  });

  it("create_user --dry-run writes no picture", async () => {
    const before = fs.existsSync(path.join(uploads, "avatars")) ? fs.readdirSync(path.join(uploads, "avatars"), { recursive: true }).length : 0;
    const r = await runCli(["create_user", "-r", String(TEST_REALM), "dry@test.example", "Dry Run", "--dry-run"], { confDir: server.conf, db: server.db });
    expect(r.exitCode).toBe(0);
    expect(fs.readdirSync(path.join(uploads, "avatars"), { recursive: true }).length).toBe(before);
  });

  it("create_realm: the owner's picture", async () => {
    const r = await runCli(["create_realm", "Jd Realm", "--string-id", "jdrealm", "owner@jd.example", "Owner Jd", "--json"], {
      confDir: server.conf,
      db: server.db,
    });
    expect({ exit: r.exitCode, stderr: r.stderr }).toEqual({ exit: 0, stderr: "" });
    const doc = JSON.parse(r.stdout);
    expect(doc.not_done.filter((n: string) => n.includes("Jdenticon"))).toEqual([]);
    await expectPictures(doc.owner.id);
  });
});

describe("Zulip 12: no picture when it cannot be written as Zulip writes it", () => {
  it("no generator in the deployment: the command says the picture was not generated", async () => {
    const uploads = uploadsDir();
    const server = await startServerCopy({ template: "zulip12_fresh", externalHost: HOST, extraSettings: `LOCAL_UPLOADS_DIR = "${uploads}"\n` });
    try {
      const r = await runCli(["create_user", "-r", String(TEST_REALM), "nogen@test.example", "No Gen", "--json"], { confDir: server.conf, db: server.db });
      expect(r.exitCode).toBe(0);
      const doc = JSON.parse(r.stdout);
      expect(doc.not_done).toContain(
        `the Jdenticon profile picture of user ${doc.user.id} (shown as a broken image until it exists): Zulip's generator (webpack-bundles/jdenticon.js) was not found in ${server.conf.deployDir}`,
      );
      expect(fs.existsSync(path.join(uploads, "avatars"))).toBe(false);
    } finally {
      await server.stop();
    }
  });

  it("the S3 backend (no LOCAL_UPLOADS_DIR): the command says so", async () => {
    const server = await startServerCopy({ template: "zulip12_fresh", externalHost: HOST });
    try {
      const r = await runCli(["create_user", "-r", String(TEST_REALM), "s3@test.example", "Ess Three", "--json"], { confDir: server.conf, db: server.db });
      expect(r.exitCode).toBe(0);
      const doc = JSON.parse(r.stdout);
      expect(doc.not_done).toContain(
        `the Jdenticon profile picture of user ${doc.user.id} (shown as a broken image until it exists): avatars are stored in S3 (LOCAL_UPLOADS_DIR is not set), which zulip-manage does not write to`,
      );
    } finally {
      await server.stop();
    }
  });
});

describe.each(["zulip11_fresh", "zulip10_fresh"] as TemplateName[])("%s: Gravatar users, nothing to write", (template) => {
  it("create_user writes no picture and reports nothing about it", async () => {
    const uploads = uploadsDir();
    const server = await startServerCopy({ template, externalHost: HOST, extraSettings: `LOCAL_UPLOADS_DIR = "${uploads}"\n` });
    try {
      const r = await runCli(["create_user", "-r", String(TEST_REALM), "grav@test.example", "Grav Atar", "--json"], { confDir: server.conf, db: server.db });
      expect(r.exitCode).toBe(0);
      const doc = JSON.parse(r.stdout);
      const [u] = await server.db.query("SELECT avatar_source FROM zerver_userprofile WHERE id = $1", [doc.user.id]);
      expect(u.avatar_source).toBe("G");
      expect(doc.not_done.filter((n: string) => n.includes("Jdenticon"))).toEqual([]);
      expect(fs.existsSync(path.join(uploads, "avatars"))).toBe(false);
    } finally {
      await server.stop();
    }
  });
});
