// export_single_user through the built CLI against a real Zulip 12 database: the files
// do_export_user writes (user.json, messages-NNNNNN.json, uploads/avatars/emoji with their
// records.json), their JSON shapes and layout, the tarball's entries and bytes, and the refusal
// of a non-empty output directory. The library is also driven directly with tiny chunks to
// check message-file numbering, and its JSON writer is compared with Python's json module.
// (The 1,000,000-message memory/time check is bench/export.mjs, not a test.)
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createChannel } from "../src/zulip/actions/create-channel.js";
import { createUser } from "../src/zulip/actions/create-user.js";
import { sendMessage } from "../src/zulip/actions/message-send.js";
import { Db } from "../src/db/db.js";
import { exportSingleUser, PyFloat, pyJson, userAvatarBasePath, writeTarGz } from "../src/zulip/actions/export.js";
import { flagsList, UserMessageFlag } from "../src/zulip/models.js";
import { runCli, type CliResult } from "./helpers/cli.js";
import { type ConfDir } from "./helpers/confdir.js";
import { type TestDatabase } from "./helpers/pg.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";
import { requirePython } from "./helpers/tools.js";

const REALM = 2;
const HOST = "zulip.example.net";
const SALT = "test-avatar-salt";

/** The python3 the cross-checks run (the test fails, saying what to install, without it). */
const python = (): string => requirePython();

interface World {
  iago: number;
  hamlet: number;
  othello: number;
  channel: number;
  channelName: string;
  sent: number[];
  dm: number;
  group: number;
  self: number;
  hamletInChannel: number;
  reactedTo: number;
  attachments: { path: string; bytes: Buffer }[];
  emoji: string;
  avatarFile: string;
}

async function buildWorld(db: TestDatabase, uploads: string): Promise<World> {
  const c = db.client;
  await c.query("BEGIN");
  const mk = (email: string, fullName: string) => createUser(c, REALM, { email, fullName, externalHost: HOST });
  const iago = (await mk("iago@zulip.example.net", "Iago")).id;
  const hamlet = (await mk("hamlet@zulip.example.net", "Hamlet")).id;
  const othello = (await mk("othello@zulip.example.net", "Aaron Othello")).id;
  const channelName = "export tests";
  const channel = (await createChannel(c, REALM, { name: channelName, creatorId: iago, subscribers: [iago, hamlet, othello] })).id;
  const send = async (senderId: number, to: any, content: string) => (await sendMessage(c, { senderId, to, content })).id;
  const sent = [
    await send(iago, { channelId: channel, topic: "plans" }, "first from iago"),
    await send(iago, { channelId: channel, topic: "plans" }, 'ünïcödé and "quotes" and \u0007 bell'),
  ];
  const hamletInChannel = await send(hamlet, { channelId: channel, topic: "plans" }, "hamlet speaks, nobody reacts");
  const reactedTo = await send(othello, { channelId: channel, topic: "plans" }, "othello speaks, iago reacts");
  const dm = await send(hamlet, { userIds: [iago] }, "a DM for iago");
  const group = await send(othello, { userIds: [iago, hamlet] }, "a group DM");
  const self = await send(iago, { userIds: [iago] }, "a note to myself");
  await c.query(
    "INSERT INTO zerver_reaction (emoji_name, reaction_type, emoji_code, message_id, user_profile_id) VALUES ('tada', 'unicode_emoji', '1f389', $1, $2)",
    [reactedTo, iago],
  );
  await c.query("UPDATE zerver_usermessage SET flags = flags | 2 WHERE message_id = $1 AND user_profile_id = $2", [sent[0], iago]); // starred
  await c.query("INSERT INTO zerver_alertword (word, user_profile_id, realm_id) VALUES ('lunch', $1, $2)", [iago, REALM]);
  // Rows of the tables whose export depends on the release.
  await c.query(
    "INSERT INTO zerver_submessage (msg_type, content, message_id, sender_id) VALUES ('widget', '{\"type\": \"vote\"}', $1, $2), ('widget', '{}', $1, $3)",
    [sent[0], iago, hamlet],
  );
  await c.query("INSERT INTO zerver_savedsnippet (title, content, date_created, realm_id, user_profile_id) VALUES ('hi', 'Hello!', now(), $2, $1)", [
    iago,
    REALM,
  ]);
  await c.query("INSERT INTO zerver_navigationview (fragment, is_pinned, name, user_id) VALUES ('inbox', true, NULL, $1)", [iago]);
  await c.query(
    "INSERT INTO zerver_externalauthid (date_created, external_auth_method_name, external_auth_id, realm_id, user_id) VALUES (now(), 'saml', 'iago-42', $2, $1)",
    [iago, REALM],
  );
  // Files in LOCAL_UPLOADS_DIR: two attachments, a custom emoji, an uploaded avatar.
  const attachments: World["attachments"] = [];
  for (const name of ["notes.txt", "a-rather-long-file-name-".repeat(4) + "that-needs-a-long-tar-header.pdf"]) {
    const rel = `${REALM}/4e/${crypto.randomBytes(12).toString("hex")}/${name}`;
    const bytes = crypto.randomBytes(700 + attachments.length * 5000);
    fs.mkdirSync(path.dirname(path.join(uploads, "files", rel)), { recursive: true });
    fs.writeFileSync(path.join(uploads, "files", rel), bytes);
    await c.query(
      `INSERT INTO zerver_attachment (file_name, path_id, create_time, size, content_type, is_realm_public, is_web_public, owner_id, realm_id)
       VALUES ($1, $2, now(), $3, NULL, true, false, $4, $5)`,
      [name, rel, bytes.length, iago, REALM],
    );
    attachments.push({ path: rel, bytes });
  }
  await c.query("INSERT INTO zerver_attachment_messages (attachment_id, message_id) SELECT id, $1 FROM zerver_attachment WHERE owner_id = $2", [sent[0], iago]);
  const emoji = `${REALM}/emoji/images/42.png`;
  fs.mkdirSync(path.dirname(path.join(uploads, "avatars", emoji)), { recursive: true });
  fs.writeFileSync(path.join(uploads, "avatars", emoji), "png!");
  fs.writeFileSync(path.join(uploads, "avatars", emoji + ".original"), "original png!");
  await c.query(
    "INSERT INTO zerver_realmemoji (name, file_name, is_animated, deactivated, author_id, realm_id) VALUES ('party', '42.png', false, false, $1, $2)",
    [iago, REALM],
  );
  await c.query("UPDATE zerver_userprofile SET avatar_source = 'U', avatar_version = 3 WHERE id = $1", [iago]);
  const avatarFile = `${userAvatarBasePath(iago, 3, REALM, SALT)}.png`;
  fs.mkdirSync(path.dirname(path.join(uploads, "avatars", avatarFile)), { recursive: true });
  fs.writeFileSync(path.join(uploads, "avatars", avatarFile), "avatar!");
  await c.query("COMMIT");
  return { iago, hamlet, othello, channel, channelName, sent, dm, group, self, hamletInChannel, reactedTo, attachments, emoji, avatarFile };
}

let db: TestDatabase;
let conf: ConfDir;
let w: World;
let tmp: string;
let uploads: string;
const cli = (args: string[]): Promise<CliResult> => runCli(args, { db, confDir: conf });

let copy: ServerCopy;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "zm-export-test-"));
  uploads = path.join(tmp, "uploads");
  copy = await startServerCopy({
    template: "zulip12_fresh",
    memcached: false,
    externalHost: HOST,
    extraSettings: `LOCAL_UPLOADS_DIR = '${uploads}'\n`,
    conf: { secrets: { avatar_salt: SALT } },
  });
  ({ db, conf } = copy);
  w = await buildWorld(db, uploads);
}, 120_000);

afterAll(async () => {
  await copy?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function readJson(file: string): any {
  return JSON.parse(fs.readFileSync(file, "utf8"));
}

describe("export_single_user", () => {
  let out: string;
  let result: CliResult;
  let user: any;
  let messages: any[];
  beforeAll(async () => {
    out = path.join(tmp, "iago-export");
    result = await cli(["export_single_user", "-r", String(REALM), "iago@zulip.example.net", "--output", out]);
    user = readJson(path.join(out, "user.json"));
    messages = readJson(path.join(out, "messages-000001.json")).zerver_message;
  }, 60_000);

  it("prints what manage.py prints", () => {
    expect(result.stderr).toBe("");
    expect(result.exitCode).toBe(0);
    expect(result.stdout.split("\n")).toEqual([
      "Exporting user iago@zulip.example.net",
      `Finished exporting to ${out}; tarring`,
      `Tarball written to ${out}.tar.gz`,
    ]);
  });

  it("writes the files do_export_user writes, all valid JSON laid out like orjson's OPT_INDENT_2", () => {
    const files: string[] = [];
    const walk = (d: string, rel = "") => {
      for (const n of fs.readdirSync(d).sort()) {
        const p = path.join(d, n);
        if (fs.statSync(p).isDirectory()) walk(p, path.join(rel, n));
        else files.push(path.join(rel, n));
      }
    };
    walk(out);
    expect(files.filter((f) => !f.startsWith("uploads/2/") && !f.startsWith("avatars/2/") && !f.startsWith("emoji/2/"))).toEqual([
      "avatars/records.json",
      "emoji/records.json",
      "messages-000001.json",
      "uploads/records.json",
      "user.json",
    ]);
    for (const f of files.filter((x) => x.endsWith(".json"))) {
      const text = fs.readFileSync(path.join(out, f), "utf8");
      const parsed = JSON.parse(text);
      expect(text.endsWith("\n")).toBe(false);
      if (Array.isArray(parsed) && parsed.length === 0) expect(text).toBe("[]");
      else expect(text.split("\n")[1]).toMatch(/^ {2}\S/);
    }
  });

  it("exports the user's rows in user.json, table by table as Zulip's config walks them", async () => {
    expect(Object.keys(user)).toEqual([
      "zerver_userprofile",
      "zerver_subscription",
      "zerver_recipient",
      "zerver_stream",
      "analytics_usercount",
      "zerver_realmauditlog",
      "zerver_reaction",
      "zerver_submessage",
      "zerver_alertword",
      "zerver_customprofilefieldvalue",
      "zerver_muteduser",
      "zerver_navigationview",
      "zerver_onboardingstep",
      "zerver_savedsnippet",
      "zerver_useractivity",
      "zerver_useractivityinterval",
      "zerver_userpresence",
      "zerver_userstatus",
      "zerver_usertopic",
      "zerver_externalauthid",
    ]);
    // 12.x exports the user's submessages; 11.x/12.x navigation views and external auth ids.
    expect(user.zerver_submessage.map((r: any) => [r.sender, r.message, r.msg_type])).toEqual([[w.iago, w.sent[0], "widget"]]);
    expect(user.zerver_savedsnippet.map((r: any) => [r.user_profile, r.title])).toEqual([[w.iago, "hi"]]);
    expect(user.zerver_navigationview.map((r: any) => [r.user, r.fragment])).toEqual([[w.iago, "inbox"]]);
    expect(user.zerver_externalauthid.map((r: any) => [r.user, r.external_auth_id])).toEqual([[w.iago, "iago-42"]]);
    const [u] = user.zerver_userprofile;
    expect(u.id).toBe(w.iago);
    expect(u.delivery_email).toBe("iago@zulip.example.net");
    for (const secret of ["api_key", "password", "uuid"]) expect(u).not.toHaveProperty(secret);
    expect(u.realm).toBe(REALM);
    expect(u).not.toHaveProperty("realm_id");
    expect(u.bot_owner).toBeNull();
    expect(u.groups).toEqual([]);
    expect(u.user_permissions).toEqual([]);
    const joined = (await db.query("SELECT extract(epoch FROM date_joined)::float8 AS t FROM zerver_userprofile WHERE id = $1", [w.iago]))[0].t;
    expect(u.date_joined).toBeCloseTo(joined, 5);
    // Subscriptions, and the recipients and channels they point at.
    const subs = await db.query("SELECT id, recipient_id FROM zerver_subscription WHERE user_profile_id = $1 ORDER BY id", [w.iago]);
    expect(user.zerver_subscription.map((s: any) => s.id)).toEqual(subs.map((s: any) => Number(s.id)));
    expect(Object.keys(user.zerver_subscription[0]).slice(0, 4)).toEqual(["id", "user_profile", "recipient", "active"]);
    expect(user.zerver_recipient.map((r: any) => r.id).sort((a: number, b: number) => a - b)).toEqual(
      [...new Set(subs.map((s: any) => Number(s.recipient_id)))].sort((a, b) => a - b),
    );
    expect(Object.keys(user.zerver_recipient[0])).toEqual(["id", "type_id", "type"]);
    const stream = user.zerver_stream.find((s: any) => s.id === w.channel);
    expect(stream.name).toBe(w.channelName);
    expect(stream).not.toHaveProperty("email_token");
    expect(stream.creator).toBe(w.iago);
    // Audit rows about or by the user; reactions; alert words.
    const audit = await db.query("SELECT id FROM zerver_realmauditlog WHERE modified_user_id = $1 OR acting_user_id = $1 ORDER BY id", [w.iago]);
    expect(user.zerver_realmauditlog.map((r: any) => r.id)).toEqual(audit.map((r: any) => Number(r.id)));
    expect(typeof user.zerver_realmauditlog[0].extra_data).toBe("object");
    expect(user.zerver_reaction).toHaveLength(1);
    expect(user.zerver_reaction[0]).toMatchObject({ user_profile: w.iago, message: w.reactedTo, emoji_name: "tada" });
    expect(user.zerver_alertword.map((a: any) => a.word)).toEqual(["lunch"]);
    for (const rows of Object.values(user) as any[][]) {
      const ids = rows.map((r) => r.id);
      expect(ids).toEqual([...ids].sort((a, b) => a - b));
    }
  });

  it("writes datetimes as Python floats", () => {
    const text = fs.readFileSync(path.join(out, "user.json"), "utf8");
    const m = /"date_joined": ([^,\n]+)/.exec(text)!;
    expect(m[1]).toMatch(/^\d{10}\.\d+$/);
  });

  it("exports the messages the user sent, received as DMs or reacted to, with their flags", () => {
    const ids = messages.map((m) => m.id);
    expect(ids).toEqual([...w.sent, w.reactedTo, w.dm, w.group, w.self].sort((a, b) => a - b));
    expect(ids).not.toContain(w.hamletInChannel);
    const first = messages.find((m) => m.id === w.sent[0]);
    expect(Object.keys(first)).toEqual([
      "id",
      "sender",
      "recipient",
      "realm",
      "type",
      "subject",
      "content",
      "rendered_content",
      "rendered_content_version",
      "date_sent",
      "sending_client",
      "last_edit_time",
      "edit_history",
      "has_attachment",
      "has_image",
      "has_link",
      "is_channel_message",
      "search_tsvector",
      "flags",
      "flags_mask",
      "sending_client_name",
      "recipient_name",
    ]);
    expect(first).toMatchObject({
      sender: w.iago,
      subject: "plans",
      content: "first from iago",
      sending_client_name: "website",
      recipient_name: w.channelName,
    });
    expect(first.flags).toEqual(["read", "starred"]);
    expect(first.flags_mask).toBe(3);
    expect(messages.find((m) => m.id === w.sent[1]).content).toBe('ünïcödé and "quotes" and \u0007 bell');
    const dm = messages.find((m) => m.id === w.dm);
    expect(dm.recipient_name).toBe("Hamlet, Iago");
    expect(dm.flags).toEqual([]); // is_private is not an API flag
    expect(dm.flags_mask & 2048).toBe(2048);
    expect(messages.find((m) => m.id === w.group).recipient_name).toBe("Aaron Othello, Hamlet, Iago");
    expect(messages.find((m) => m.id === w.self).recipient_name).toBe("Iago");
    expect(messages.find((m) => m.id === w.reactedTo).recipient_name).toBe(w.channelName);
  });

  it("copies the user's uploads, avatar and custom emoji with their records", () => {
    const records = readJson(path.join(out, "uploads", "records.json"));
    expect(records.map((r: any) => r.path)).toEqual(w.attachments.map((a) => a.path).sort());
    for (const a of w.attachments) {
      expect(fs.readFileSync(path.join(out, "uploads", a.path))).toEqual(a.bytes);
      const r = records.find((x: any) => x.path === a.path);
      expect(r).toMatchObject({ realm_id: REALM, user_profile_id: w.iago, s3_path: a.path, size: a.bytes.length, content_type: null });
      expect(Object.keys(r)).toEqual(["realm_id", "user_profile_id", "user_profile_email", "s3_path", "path", "size", "last_modified", "content_type"]);
    }
    const avatars = readJson(path.join(out, "avatars", "records.json"));
    expect(avatars.map((r: any) => r.path)).toEqual([w.avatarFile]);
    expect(fs.readFileSync(path.join(out, "avatars", w.avatarFile), "utf8")).toBe("avatar!");
    const emoji = readJson(path.join(out, "emoji", "records.json"));
    // The image and its ".original", one record each (export_emoji_from_local).
    expect(emoji).toEqual([
      { realm_id: REALM, author: w.iago, path: w.emoji, s3_path: w.emoji, file_name: "42.png", name: "party", deactivated: false },
      { realm_id: REALM, author: w.iago, path: `${w.emoji}.original`, s3_path: `${w.emoji}.original`, file_name: "42.png", name: "party", deactivated: false },
    ]);
    expect(fs.readFileSync(path.join(out, "emoji", `${w.emoji}.original`), "utf8")).toBe("original png!");
  });

  it("writes a tarball of the directory (tar -czf <dir>.tar.gz -C <parent> <basename>)", () => {
    const listing = execFileSync("tar", ["-tzf", `${out}.tar.gz`], { encoding: "utf8" })
      .trim()
      .split("\n");
    expect(listing[0]).toBe("iago-export/");
    for (const f of [
      "user.json",
      "messages-000001.json",
      "uploads/records.json",
      "avatars/records.json",
      "emoji/records.json",
      ...w.attachments.map((a) => `uploads/${a.path}`),
    ]) {
      expect(listing).toContain(`iago-export/${f}`);
    }
    const x = fs.mkdtempSync(path.join(tmp, "untar-"));
    execFileSync("tar", ["-xzf", `${out}.tar.gz`, "-C", x]);
    for (const f of ["user.json", "messages-000001.json", `uploads/${w.attachments[1].path}`]) {
      expect(fs.readFileSync(path.join(x, "iago-export", f))).toEqual(fs.readFileSync(path.join(out, f)));
    }
  });

  it("refuses a non-empty output directory with manage.py's message, writing nothing", async () => {
    const busy = path.join(tmp, "busy");
    fs.mkdirSync(busy);
    fs.writeFileSync(path.join(busy, "keep.txt"), "mine");
    const r = await cli(["export_single_user", "iago@zulip.example.net", "--output", busy]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe(`Refusing to overwrite nonempty directory: ${busy}. Aborting...`);
    expect(r.stdout).toBe("");
    expect(fs.readdirSync(busy)).toEqual(["keep.txt"]);
    expect(fs.existsSync(`${busy}.tar.gz`)).toBe(false);
  });

  it("uses a new zulip-export-* temp directory without --output, and reports in JSON", async () => {
    const r = await runCli(["export_single_user", "hamlet@zulip.example.net", "--json"], { db, confDir: conf, env: { TMPDIR: tmp } });
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(path.dirname(doc.output_dir)).toBe(fs.realpathSync(tmp));
    expect(path.basename(doc.output_dir)).toMatch(/^zulip-export-/);
    expect(doc.tarball).toBe(`${doc.output_dir}.tar.gz`);
    expect(doc.user).toMatchObject({ id: w.hamlet, delivery_email: "hamlet@zulip.example.net" });
    expect(doc.messages_count).toBe(3);
    expect(doc.files).toContain("user.json");
    expect(fs.statSync(doc.tarball).size).toBe(doc.tarball_bytes);
  });

  it("uses manage.py's lookup messages", async () => {
    const r = await cli(["export_single_user", "nobody@example.com", "--output", path.join(tmp, "never")]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe("This Zulip server does not contain a user with email 'nobody@example.com'");
    expect(fs.existsSync(path.join(tmp, "never"))).toBe(false);
  });
});

describe("export library", () => {
  it("numbers message files by chunks of candidate ids, reading through the cursor in small fetches", async () => {
    const dir = fs.mkdtempSync(path.join(tmp, "chunks-"));
    const r = await exportSingleUser(new Db(db.client as any, {} as any), w.iago, {
      outputDir: dir,
      localUploadsDir: null,
      avatarSalt: null,
      chunkSize: 2,
      fetchSize: 3,
    });
    expect(r.messages).toBe(6);
    expect(r.messageFiles).toBe(3);
    const all = [1, 2, 3].flatMap((n) => readJson(path.join(dir, `messages-00000${n}.json`)).zerver_message.map((m: any) => m.id));
    expect(all).toEqual([...w.sent, w.reactedTo, w.dm, w.group, w.self].sort((a, b) => a - b));
    expect(r.warnings.join(" ")).toContain("S3");
    // The transaction is closed again.
    expect((await db.query("SELECT 1 AS ok"))[0].ok).toBe(1);
  });

  it("maps the UserMessage bit field to API flag names", () => {
    expect(flagsList(0)).toEqual([]);
    expect(flagsList(1 | 8 | 2048 | 4096)).toEqual(["read", "mentioned"]);
    expect(UserMessageFlag).toEqual({
      READ: 1,
      STARRED: 2,
      MENTIONED: 8,
      HAS_ALERT_WORD: 512,
      HISTORICAL: 1024,
      IS_PRIVATE: 2048,
      ACTIVE_MOBILE_PUSH_NOTIFICATION: 4096,
    });
  });

  it("lays out JSON exactly as Python does (indent 2, float repr)", () => {
    const script = `
import json, sys
v = {"t": [1700000000.0, 1714315261.67, 0.5, 123456789.123456, 1e16], "s": "\\u00e9\\u0007\\"\\\\", "n": None, "b": [True, False], "e": [], "o": {}, "i": 42}
sys.stdout.write(json.dumps(v, indent=2, ensure_ascii=False))`;
    const expected = execFileSync(python()!, ["-c", script], { encoding: "utf8" });
    const ours = pyJson({
      t: [new PyFloat(1700000000), new PyFloat(1714315261.67), new PyFloat(0.5), new PyFloat(123456789.123456), new PyFloat(1e16)],
      s: 'é\u0007"\\',
      n: null,
      b: [true, false],
      e: [],
      o: {},
      i: 42,
    });
    expect(ours).toBe(expected);
  });

  it("writes long names into the tarball (ustar prefix, PAX header)", async () => {
    const dir = fs.mkdtempSync(path.join(tmp, "tarnames-"));
    const deep = path.join(dir, "a".repeat(90), "b".repeat(90));
    fs.mkdirSync(deep, { recursive: true });
    fs.writeFileSync(path.join(deep, "short.txt"), "x");
    fs.writeFileSync(path.join(dir, "n".repeat(150) + ".txt"), "y".repeat(1000));
    const entries = await writeTarGz(dir, `${dir}.tar.gz`);
    const listing = execFileSync("tar", ["-tzf", `${dir}.tar.gz`], { encoding: "utf8" })
      .trim()
      .split("\n");
    expect(listing).toEqual(entries);
    expect(listing).toContain(`${path.basename(dir)}/${"a".repeat(90)}/${"b".repeat(90)}/short.txt`);
    expect(listing).toContain(`${path.basename(dir)}/${"n".repeat(150)}.txt`);
  });
});

// The table list of user.json grows by release (zerver/lib/export.py): 10.x has no
// NavigationView / ExternalAuthID in its config, and only 12.x exports submessages. Before
// 12.0 a 1:1 DM goes to the recipient's personal recipient, which only the recipient is
// subscribed to: its recipient_name is that user's name alone (12.x: both names, as the DM
// is a two-person group).
describe.each([
  ["zulip10_fresh", ["zerver_savedsnippet"], ["zerver_submessage", "zerver_navigationview", "zerver_externalauthid"]],
  ["zulip11_fresh", ["zerver_savedsnippet", "zerver_navigationview", "zerver_externalauthid"], ["zerver_submessage"]],
] as const)("export_single_user on %s", (template, present, absent) => {
  let odb: TestDatabase;
  let oconf: ConfDir;
  let ow: World;
  let otmp: string;
  beforeAll(async () => {
    otmp = fs.mkdtempSync(path.join(os.tmpdir(), "zm-export-old-"));
    const up = path.join(otmp, "uploads");
    ({ db: odb, conf: oconf } = await startServerCopy({
      template,
      memcached: false,
      externalHost: HOST,
      extraSettings: `LOCAL_UPLOADS_DIR = '${up}'\n`,
      conf: { secrets: { avatar_salt: SALT } },
    }));
    ow = await buildWorld(odb, up);
  }, 120_000);
  afterAll(async () => {
    await odb?.drop();
    oconf?.cleanup();
    if (otmp) fs.rmSync(otmp, { recursive: true, force: true });
  });
  it("writes that release's tables, and names a 1:1 DM after its recipient", async () => {
    const out = path.join(otmp, "iago");
    const r = await runCli(["export_single_user", "-r", String(REALM), "iago@zulip.example.net", "--output", out], { db: odb, confDir: oconf });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const user = readJson(path.join(out, "user.json"));
    for (const t of present) expect(user[t], t).toHaveLength(1);
    for (const t of absent) expect(user, t).not.toHaveProperty(t);
    const messages = readJson(path.join(out, "messages-000001.json")).zerver_message;
    expect(messages.find((m: any) => m.id === ow.dm).recipient_name).toBe("Iago");
    expect(messages.find((m: any) => m.id === ow.group).recipient_name).toBe("Aaron Othello, Hamlet, Iago");
    // test_message_data: a message to oneself is named after oneself.
    expect(messages.find((m: any) => m.id === ow.self).recipient_name).toBe("Iago");
  });
});
