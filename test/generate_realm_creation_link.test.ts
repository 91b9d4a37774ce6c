// generate_realm_creation_link against real databases: Zulip 12/11 (RealmCreationStatus +
// Confirmation type 11) and Zulip 10 (confirmation_realmcreationkey), expiry from both setting
// names, output without escape codes when piped, JSON, and a database without Zulip's schema.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { realmCreationUrl } from "../src/zulip/confirmation.js";
import { base32Encode, generateKey } from "../src/lib/random.js";
import { cliBin, makeTempDir, runCli, writeConfDir } from "./email-support.js";
import { createDatabase, type TemplateName, type TestDatabase } from "./helpers/pg.js";
import { requireTool } from "./helpers/tools.js";

const HOST = "chat.example.net";
const DAY = 86_400_000;
// 24 characters of lowercase RFC 4648 base32
const KEY = /^[a-z2-7]{24}$/;

describe("confirmation keys", () => {
  it("encodes base32 like Python's b32encode", () => {
    const vectors: [string, string][] = [
      ["", ""],
      ["f", "MY======"],
      ["fo", "MZXQ===="],
      ["foo", "MZXW6==="],
      ["foob", "MZXW6YQ="],
      ["fooba", "MZXW6YTB"],
      ["foobar", "MZXW6YTBOI======"],
    ];
    for (const [input, out] of vectors) expect(base32Encode(Buffer.from(input))).toBe(out);
  });

  it("generates 24 lowercase base32 characters from 15 random bytes", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const k = generateKey();
      expect(k).toMatch(KEY);
      seen.add(k);
    }
    expect(seen.size).toBe(500);
    expect(generateKey(() => new Uint8Array(15).fill(0xff))).toBe("7".repeat(24));
    expect(generateKey(() => Buffer.from("000000000000000"))).toBe(base32Encode(Buffer.from("000000000000000")).toLowerCase());
  });

  it("joins the URL like urljoin(ROOT_DOMAIN_URI, '/new/<key>')", () => {
    expect(realmCreationUrl("https://chat.example.net", "abc")).toBe("https://chat.example.net/new/abc");
    expect(realmCreationUrl("http://localhost:9991", "abc")).toBe("http://localhost:9991/new/abc");
    expect(realmCreationUrl("https://chat.example.net/", "abc")).toBe("https://chat.example.net/new/abc");
  });
});

describe("generate_realm_creation_link", () => {
  let tmp: string;
  const dbs: TestDatabase[] = [];

  beforeAll(() => {
    tmp = makeTempDir("realmlink");
  });
  afterAll(async () => {
    for (const d of dbs) await d.drop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function db(template: TemplateName | { name: string; base: TemplateName; sql: string }): Promise<TestDatabase> {
    const d = await createDatabase({ template });
    dbs.push(d);
    return d;
  }

  let confCounter = 0;
  function conf(settings: string[] = []): string {
    return writeConfDir(path.join(tmp, `conf${++confCounter}`), { externalHost: HOST, settings });
  }

  const run = (d: TestDatabase, confDir: string, args: string[] = []) =>
    runCli(["generate_realm_creation_link", "--conf-dir", confDir, ...args], {
      ...d.env,
      ZULIP_LOG_DIR: tmp,
      ZULIP_DEPLOY_DIR: path.join(tmp, "nodeploy"),
    });

  function keyFrom(stdout: string): string {
    const m = new RegExp(`^    https://${HOST.replace(/\./g, "\\.")}/new/([a-z2-7]+)$`, "m").exec(stdout);
    expect(m, stdout).toBeTruthy();
    return m![1];
  }

  async function statusLink(d: TestDatabase, key: string) {
    const rows = await d.query(
      `SELECT c.*, ct.app_label, ct.model, s.status, s.presume_email_valid, s.date_created
         FROM confirmation_confirmation c
         JOIN django_content_type ct ON ct.id = c.content_type_id
         JOIN zerver_realmcreationstatus s ON s.id = c.object_id
        WHERE c.confirmation_key = $1`,
      [key],
    );
    expect(rows).toHaveLength(1);
    return rows[0];
  }

  it("writes a RealmCreationStatus and a type-11 confirmation on Zulip 12, printing manage.py's lines without escape codes", async () => {
    const d = await db("zulip12_fresh");
    const before = Date.now();
    const r = await run(d, conf());
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const key = keyFrom(r.stdout);
    expect(key).toMatch(KEY);
    expect(r.stdout).toBe(
      "Please visit the following secure single-use link to register your \n" + "new Zulip organization:\n" + "\n" + `    https://${HOST}/new/${key}\n` + "\n",
    );
    expect(r.stdout).not.toContain("\x1b");

    const row = await statusLink(d, key);
    expect(Number(row.type)).toBe(11);
    expect([row.app_label, row.model]).toEqual(["zerver", "realmcreationstatus"]);
    expect(row.realm_id).toBeNull();
    expect(Number(row.status)).toBe(0);
    expect(row.presume_email_valid).toBe(true);
    expect(row.date_sent.getTime()).toBe(row.date_created.getTime());
    expect(row.date_sent.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(row.expiry_date.getTime() - row.date_sent.getTime()).toBe(7 * DAY);

    // A second link is a second, different key.
    const again = keyFrom((await run(d, conf())).stdout);
    expect(again).not.toBe(key);
    expect((await d.query("SELECT count(*)::int AS n FROM zerver_realmcreationstatus"))[0].n).toBe(
      (await d.query("SELECT count(*)::int AS n FROM confirmation_confirmation WHERE type = 11"))[0].n,
    );
  });

  it("looks the content type up instead of assuming its id", async () => {
    const d = await db({
      name: "realmlink_moved_ct",
      base: "zulip12_fresh",
      sql: `SET search_path TO zulip, public;
        BEGIN;
        SET CONSTRAINTS ALL DEFERRED;
        CREATE TEMP TABLE old_ct AS SELECT id FROM django_content_type WHERE app_label = 'zerver' AND model = 'realmcreationstatus';
        UPDATE auth_permission SET content_type_id = 4242 WHERE content_type_id IN (SELECT id FROM old_ct);
        UPDATE confirmation_confirmation SET content_type_id = 4242 WHERE content_type_id IN (SELECT id FROM old_ct);
        UPDATE django_content_type SET id = 4242 WHERE id IN (SELECT id FROM old_ct);
        COMMIT;`,
    });
    const key = keyFrom((await run(d, conf())).stdout);
    const rows = await d.query("SELECT content_type_id FROM confirmation_confirmation WHERE confirmation_key = $1", [key]);
    expect(rows.map((x) => Number(x.content_type_id))).toEqual([4242]);
  });

  it("takes the validity from CAN_CREATE_REALM_LINK_VALIDITY_DAYS, or the older REALM_CREATION_LINK_VALIDITY_DAYS", async () => {
    const d = await db("zulip12_fresh");
    const k3 = keyFrom((await run(d, conf(["CAN_CREATE_REALM_LINK_VALIDITY_DAYS = 3"]))).stdout);
    const r3 = await statusLink(d, k3);
    expect(r3.expiry_date.getTime() - r3.date_sent.getTime()).toBe(3 * DAY);
    const k5 = keyFrom((await run(d, conf(["REALM_CREATION_LINK_VALIDITY_DAYS = 5"]))).stdout);
    const r5 = await statusLink(d, k5);
    expect(r5.expiry_date.getTime() - r5.date_sent.getTime()).toBe(5 * DAY);
  });

  it("--json gives url, key and expiry", async () => {
    const d = await db("zulip12_fresh");
    const r = await run(d, conf(["CAN_CREATE_REALM_LINK_VALIDITY_DAYS = 2"]), ["--json"]);
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(Object.keys(doc).sort()).toEqual(["dry_run", "error", "error_code", "exit_code", "expires_at", "key", "ok", "schema_version", "url"]);
    expect(doc.key).toMatch(KEY);
    expect(doc.url).toBe(`https://${HOST}/new/${doc.key}`);
    const row = await statusLink(d, doc.key);
    expect(new Date(doc.expires_at).getTime()).toBe(row.expiry_date.getTime());
    expect(row.expiry_date.getTime() - row.date_sent.getTime()).toBe(2 * DAY);
  });

  it("uses the same storage on Zulip 11", async () => {
    const d = await db("zulip11_fresh");
    const key = keyFrom((await run(d, conf())).stdout);
    const row = await statusLink(d, key);
    expect(Number(row.type)).toBe(11);
  });

  it("writes confirmation_realmcreationkey on Zulip 10", async () => {
    const d = await db("zulip10_fresh");
    const confirmations = (await d.query("SELECT count(*)::int AS n FROM confirmation_confirmation"))[0].n;
    const before = Date.now();
    const r = await run(d, conf(["REALM_CREATION_LINK_VALIDITY_DAYS = 4"]), ["--json"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.url).toBe(`https://${HOST}/new/${doc.key}`);
    const rows = await d.query("SELECT * FROM confirmation_realmcreationkey WHERE creation_key = $1", [doc.key]);
    expect(rows).toHaveLength(1);
    expect(rows[0].presume_email_valid).toBe(true);
    expect(rows[0].date_created.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(new Date(doc.expires_at).getTime() - rows[0].date_created.getTime()).toBe(4 * DAY);
    expect((await d.query("SELECT count(*)::int AS n FROM confirmation_confirmation"))[0].n).toBe(confirmations);

    const text = await run(d, conf());
    expect(text.stdout).toMatch(new RegExp(`^    https://chat\\.example\\.net/new/[a-z2-7]{24}$`, "m"));
    expect(text.stdout).not.toContain("\x1b");
  });

  it("exits 3 with manage.py's message on a database without Zulip's schema", async () => {
    const d = await db("empty");
    const r = await run(d, conf());
    expect(r.exitCode).toBe(3);
    expect(r.stderr.split("\n")[0]).toBe("The Zulip database does not appear to exist. Have you run initialize-database?");
    expect(r.stdout).toBe("");
  });

  it("colours the output like manage.py on a terminal", async () => {
    const d = await db("zulip12_fresh");
    const confDir = conf();
    const cmd = [process.execPath, await cliBin(), "generate_realm_creation_link", "--conf-dir", confDir].map((a) => `'${a}'`).join(" ");
    const out = execFileSync(requireTool("script"), ["-qec", cmd, "/dev/null"], {
      env: { ...process.env, ...d.env, NO_COLOR: "", ZULIP_MANAGE_ALLOW_ROOT: "1", ZULIP_LOG_DIR: tmp, ZULIP_DEPLOY_DIR: path.join(tmp, "nodeploy") },
      encoding: "utf8",
    }).replace(/\r\n/g, "\n");
    const m = /\/new\/([a-z2-7]{24})/.exec(out);
    expect(m).toBeTruthy();
    expect(out).toBe(
      "\x1b[32;1mPlease visit the following secure single-use link to register your \x1b[0m\n" +
        "\x1b[32;1mnew Zulip organization:\x1b[0m\x1b[0m\n" +
        "\n" +
        `\x1b[32;1m    \x1b[1;92mhttps://${HOST}/new/${m![1]}\x1b[0m\x1b[0m\n` +
        "\n",
    );
  });
});
