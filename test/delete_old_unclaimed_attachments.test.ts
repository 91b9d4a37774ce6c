// delete_old_unclaimed_attachments through the built CLI against real Zulip databases, with
// files in a LOCAL_UPLOADS_DIR: Zulip's rules (zerver/tests/test_upload.py's
// test_delete_old_unclaimed_attachments* cases: unclaimed + old goes; claimed by a message, a
// scheduled message or an archived message stays; new stays; an Attachment/ArchivedAttachment
// pair goes together only when neither is claimed), the ImageAttachment row and thumbnails going
// with the file, the dry run, -C, the cron lock, and S3 refusal.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pathIdOfStoredFile, thumbnailPaths } from "../src/zulip/actions/attachments.js";
import { createChannel } from "../src/zulip/actions/create-channel.js";
import { createUser } from "../src/zulip/actions/create-user.js";
import { sendMessage } from "../src/zulip/actions/message-send.js";
import { runCli, type CliResult } from "./helpers/cli.js";
import { makeConfDir, type ConfDir } from "./helpers/confdir.js";
import { createDatabase, type TemplateName, type TestDatabase } from "./helpers/pg.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";
import { requireTool } from "./helpers/tools.js";

const REALM = 2;
const HOST = "zulip.example.net";
const THUMBS = [
  { extension: "webp", max_width: 840, max_height: 560, animated: false, content_type: "image/webp", width: 840, height: 400, byte_size: 9 },
  { extension: "webp", max_width: 840, max_height: 560, animated: true, content_type: "image/webp", width: 840, height: 400, byte_size: 9 },
];

interface World {
  uploads: string;
  iago: number;
  message: number;
  ids: Record<string, number>;
  paths: Record<string, string>;
}

async function buildWorld(db: TestDatabase, uploads: string): Promise<World> {
  const c = db.client;
  await c.query("BEGIN");
  const iago = (await createUser(c, REALM, { email: "iago@zulip.example.net", fullName: "Iago", externalHost: HOST })).id;
  const channel = (await createChannel(c, REALM, { name: "uploads", creatorId: iago, subscribers: [iago] })).id;
  const message = (await sendMessage(c, { senderId: iago, to: { channelId: channel, topic: "t" }, content: "with a file" })).id;
  const ids: Record<string, number> = {};
  const paths: Record<string, string> = {};
  const file = (name: string, rel: string) => {
    paths[name] = rel;
    fs.mkdirSync(path.dirname(path.join(uploads, "files", rel)), { recursive: true });
    fs.writeFileSync(path.join(uploads, "files", rel), `contents of ${name}`);
  };
  const attachment = async (table: "zerver_attachment" | "zerver_archivedattachment", name: string, weeksOld: number, id?: number) => {
    const rel = `${REALM}/${name.length.toString(16)}/${name}-token/${name}.png`;
    if (!paths[name]) file(name, rel);
    const cols = "file_name, path_id, create_time, size, content_type, is_realm_public, is_web_public, owner_id, realm_id";
    const vals = "$1, $2, now() - make_interval(weeks => $3::int) - interval '1 hour', 20, 'image/png', true, false, $4, $5";
    const params = [`${name}.png`, rel, weeksOld, iago, REALM];
    const { rows } = id
      ? await c.query(`INSERT INTO ${table} (id, ${cols}) VALUES ($6, ${vals}) RETURNING id`, [...params, id])
      : await c.query(`INSERT INTO ${table} (${cols}) VALUES (${vals}) RETURNING id`, params);
    return Number(rows[0].id);
  };
  // 1. old, unclaimed, an image with two thumbnails: goes, with its ImageAttachment and thumbnails.
  ids.old = await attachment("zerver_attachment", "old", 6);
  await c.query(
    `INSERT INTO zerver_imageattachment (path_id, original_width_px, original_height_px, frames, thumbnail_metadata, realm_id, content_type)
     VALUES ($1, 1000, 500, 2, $2, $3, 'image/png')`,
    [paths.old, JSON.stringify(THUMBS), REALM],
  );
  for (const t of thumbnailPaths(paths.old!, THUMBS)) {
    fs.mkdirSync(path.dirname(path.join(uploads, "files", t)), { recursive: true });
    fs.writeFileSync(path.join(uploads, "files", t), "thumb");
  }
  // 2. old, claimed by a message: stays.
  ids.claimed = await attachment("zerver_attachment", "claimed", 6);
  await c.query("INSERT INTO zerver_attachment_messages (attachment_id, message_id) VALUES ($1, $2)", [ids.claimed, message]);
  // 3. recent, unclaimed: stays.
  ids.recent = await attachment("zerver_attachment", "recent", 1);
  // 4. old, claimed by a scheduled message only: stays.
  ids.scheduled = await attachment("zerver_attachment", "scheduled", 6);
  const sm = await c.query(
    `INSERT INTO zerver_scheduledmessage (subject, content, rendered_content, scheduled_timestamp, read_by_sender, delivered, has_attachment, failed,
                                          delivery_type, realm_id, recipient_id, sender_id, sending_client_id, stream_id, request_timestamp)
     SELECT 't', 'later', '<p>later</p>', now() + interval '1 day', true, false, true, false, 1, $1, recipient_id, sender_id, sending_client_id, NULL, now()
       FROM zerver_message WHERE id = $2 RETURNING id`,
    [REALM, message],
  );
  await c.query("INSERT INTO zerver_attachment_scheduled_messages (attachment_id, scheduledmessage_id) VALUES ($1, $2)", [ids.scheduled, sm.rows[0].id]);
  // An archive transaction with one archived message (a copy of the message above).
  const tx = await c.query(
    "INSERT INTO zerver_archivetransaction (timestamp, restored, type, realm_id, protect_from_deletion) VALUES (now(), false, 1, $1, false) RETURNING id",
    [REALM],
  );
  const archivedMessage = Number(
    (
      await c.query(
        `INSERT INTO zerver_archivedmessage (id, type, subject, content, rendered_content, rendered_content_version, date_sent, last_edit_time, edit_history,
                                             has_attachment, has_image, has_link, sender_id, archive_transaction_id, sending_client_id, realm_id, recipient_id, is_channel_message)
         SELECT id + 100000, type, subject, content, rendered_content, rendered_content_version, date_sent, last_edit_time, edit_history,
                true, has_image, has_link, sender_id, $2, sending_client_id, realm_id, recipient_id, is_channel_message
           FROM zerver_message WHERE id = $1 RETURNING id`,
        [message, tx.rows[0].id],
      )
    ).rows[0].id,
  );
  // 5. Attachment without messages whose ArchivedAttachment twin has an archived message: both stay.
  ids.halfArchived = await attachment("zerver_attachment", "halfarchived", 6);
  await attachment("zerver_archivedattachment", "halfarchived", 6, ids.halfArchived);
  await c.query("INSERT INTO zerver_archivedattachment_messages (archivedattachment_id, archivedmessage_id) VALUES ($1, $2)", [
    ids.halfArchived,
    archivedMessage,
  ]);
  // 6. ArchivedAttachment only, old, unclaimed: goes.
  ids.archivedOnly = await attachment("zerver_archivedattachment", "archivedonly", 6, 900001);
  // 7. Attachment and ArchivedAttachment twins, both unclaimed and old: both rows go, the file once.
  ids.pair = await attachment("zerver_attachment", "pair", 6);
  await attachment("zerver_archivedattachment", "pair", 6, ids.pair);
  // 8. ArchivedAttachment twin unclaimed, but its Attachment is claimed by a message: both stay.
  ids.liveClaimed = await attachment("zerver_attachment", "liveclaimed", 6);
  await attachment("zerver_archivedattachment", "liveclaimed", 6, ids.liveClaimed);
  await c.query("INSERT INTO zerver_attachment_messages (attachment_id, message_id) VALUES ($1, $2)", [ids.liveClaimed, message]);
  await c.query("COMMIT");
  return { uploads, iago, message, ids, paths };
}

function exists(w: World, rel: string): boolean {
  return fs.existsSync(path.join(w.uploads, "files", rel));
}

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "zm-unclaimed-test-"));
});
afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe.each(["zulip12_fresh", "zulip11_fresh", "zulip10_fresh"] as TemplateName[])("delete_old_unclaimed_attachments on %s", (template) => {
  let copy: ServerCopy;
  let db: TestDatabase;
  let w: World;
  let lockDir: string;
  const cli = (args: string[]): Promise<CliResult> =>
    runCli(["delete_old_unclaimed_attachments", ...args], { db, confDir: copy.conf, env: { ZULIP_LOCK_DIR: lockDir } });
  const cacheKey = (key: string) => `:1:${copy.conf.cachePrefix}${key}`;
  const rows = async (table: string) => (await db.query<{ id: string }>(`SELECT id FROM ${table} ORDER BY id`)).map((r) => Number(r.id));

  beforeAll(async () => {
    const root = fs.mkdtempSync(path.join(tmp, `${template}-`));
    lockDir = path.join(root, "locks");
    copy = await startServerCopy({ template, externalHost: HOST, client: true, extraSettings: `LOCAL_UPLOADS_DIR = '${path.join(root, "uploads")}'\n` });
    db = copy.db;
    w = await buildWorld(db, path.join(root, "uploads"));
  }, 120_000);
  afterAll(() => copy?.stop());

  it("dry run: lists what would go, as manage.py prints it, exits 1, deletes nothing", async () => {
    const before = [await rows("zerver_attachment"), await rows("zerver_archivedattachment")];
    const r = await cli([]);
    expect(r.exitCode).toBe(1);
    const lines = r.stdout.split("\n");
    expect(lines[0]).toBe("Deleting unclaimed attached files older than 5 weeks");
    const listed = lines.filter((l) => l.startsWith("* ")).map((l) => l.replace(/ created at .*/, ""));
    expect(listed).toEqual(["* old.png", "* pair.png", "* pair.png", "* archivedonly.png"]); // each table in id order
    expect(lines.find((l) => l.startsWith("* old.png"))).toMatch(/^\* old\.png created at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?\+00:00$/);
    expect(r.stderr).toBe("This was a dry run. Pass -f to actually delete.");
    expect([await rows("zerver_attachment"), await rows("zerver_archivedattachment")]).toEqual(before);
    expect(exists(w, w.paths.old!)).toBe(true);
  });

  it("--weeks moves the cutoff (nothing is older than 7 weeks)", async () => {
    const r = await cli(["--weeks", "7", "--json"]);
    expect(r.exitCode).toBe(1);
    const d = JSON.parse(r.stdout);
    expect(d).toMatchObject({
      ok: false,
      exit_code: 1,
      error: "This was a dry run. Pass -f to actually delete.",
      dry_run: true,
      weeks: 7,
      attachments: [],
      archived_attachments: [],
    });
  });

  it("refuses to run while Zulip's cron job holds the lock", async () => {
    fs.mkdirSync(lockDir, { recursive: true });
    const lockFile = path.join(lockDir, "delete_old_unclaimed_attachments.lock");
    const holder: ChildProcess = spawn(requireTool("flock"), [lockFile, "sh", "-c", "echo held; exec cat >/dev/null"], { stdio: ["pipe", "pipe", "inherit"] });
    await new Promise<void>((resolve) => holder.stdout!.once("data", () => resolve()));
    try {
      const r = await cli(["-f"]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toBe(`Lock ${lockFile} is unavailable; exiting.`);
      expect(await rows("zerver_attachment")).toContain(w.ids.old);
    } finally {
      holder.stdin!.end();
      await new Promise((resolve) => holder.once("close", resolve));
    }
  });

  it("-f deletes exactly the unclaimed old rows, their ImageAttachment, the files and thumbnails", async () => {
    // Attachment's post_delete flushes the owner's realm's used-upload-space entry.
    await copy.client!.set(cacheKey(`realm_used_upload_space:${REALM}`), Buffer.from("cached"));
    const r = await cli(["-f"]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    expect(await copy.client!.get(cacheKey(`realm_used_upload_space:${REALM}`))).toBeNull();
    const lines = r.stdout.split("\n");
    expect(lines).toContain("Unclaimed files deleted.");
    expect(lines[lines.length - 1]).toBe("Deleted 2 unclaimed attachments and 2 archived ones older than 5 weeks, 5 files removed.");
    const att = await rows("zerver_attachment");
    const arch = await rows("zerver_archivedattachment");
    for (const gone of [w.ids.old, w.ids.pair]) expect(att).not.toContain(gone);
    for (const kept of [w.ids.claimed, w.ids.recent, w.ids.scheduled, w.ids.halfArchived, w.ids.liveClaimed]) expect(att).toContain(kept);
    for (const gone of [w.ids.archivedOnly, w.ids.pair]) expect(arch).not.toContain(gone);
    for (const kept of [w.ids.halfArchived, w.ids.liveClaimed]) expect(arch).toContain(kept);
    expect(await db.query("SELECT 1 FROM zerver_imageattachment WHERE path_id = $1", [w.paths.old])).toEqual([]);
    for (const gone of ["old", "pair", "archivedonly"]) expect(exists(w, w.paths[gone]!)).toBe(false);
    for (const t of thumbnailPaths(w.paths.old!, THUMBS)) expect(exists(w, t)).toBe(false);
    for (const kept of ["claimed", "recent", "scheduled", "halfarchived", "liveclaimed"]) expect(exists(w, w.paths[kept]!)).toBe(true);
    // delete_local_file removes the directories it emptied.
    expect(fs.existsSync(path.join(w.uploads, "files", path.dirname(w.paths.old!)))).toBe(false);
    expect(fs.existsSync(path.join(w.uploads, "files", "thumbnail"))).toBe(false);
    // A second run finds nothing.
    const again = await cli(["-f", "--json"]);
    expect(JSON.parse(again.stdout)).toMatchObject({
      attachments: [],
      archived_attachments: [],
      deleted: { attachments_count: 0, archived_attachments_count: 0 },
    });
  });

  it("-C lists, then with -f removes, files without a database row older than five minutes", async () => {
    const strayOld = `${REALM}/aa/stray/lost.bin`;
    const strayNew = `${REALM}/aa/stray/fresh.bin`;
    const strayThumb = `thumbnail/${REALM}/bb/nothing/x.png/840x560.webp`;
    const knownThumb = `thumbnail/${w.paths.claimed}/840x560.webp`;
    for (const rel of [strayOld, strayNew, strayThumb, knownThumb]) {
      fs.mkdirSync(path.dirname(path.join(w.uploads, "files", rel)), { recursive: true });
      fs.writeFileSync(path.join(w.uploads, "files", rel), "x");
    }
    const old = new Date(Date.now() - 3600_000);
    for (const rel of [strayOld, strayThumb, knownThumb]) fs.utimesSync(path.join(w.uploads, "files", rel), old, old);
    const dry = await cli(["-C"]);
    expect(dry.exitCode).toBe(1);
    const listed = dry.stdout
      .split("\n")
      .filter((l) => / modified at /.test(l))
      .map((l) => l.replace(/ modified at .*/, ""));
    expect(listed.sort()).toEqual([`* ${strayOld}`, `* ${strayThumb}`].sort());
    expect(dry.stdout).toMatch(/Removing extra files in storage black-end older than \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00/);
    expect(exists(w, strayOld)).toBe(true);
    const real = await cli(["-C", "-f", "--quiet"]);
    expect(real.exitCode, real.stderr).toBe(0);
    expect(real.stdout).toBe("");
    expect(exists(w, strayOld)).toBe(false);
    expect(exists(w, strayThumb)).toBe(false);
    expect(exists(w, strayNew)).toBe(true);
    expect(exists(w, knownThumb)).toBe(true);
  });
});

describe("delete_old_unclaimed_attachments with S3 storage", () => {
  let db: TestDatabase;
  let conf: ConfDir;
  beforeAll(async () => {
    db = await createDatabase({ template: "zulip12_fresh" });
    conf = makeConfDir({ db: { name: db.name }, externalHost: HOST });
  }, 120_000);
  afterAll(async () => {
    await db?.drop();
    conf?.cleanup();
  });

  it("lists in a dry run, but refuses -f and -C clearly", async () => {
    const env = { ZULIP_LOCK_DIR: path.join(tmp, "s3-locks") };
    const dry = await runCli(["delete_old_unclaimed_attachments"], { db, confDir: conf, env });
    expect(dry.exitCode).toBe(1);
    expect(dry.stderr).toBe("This was a dry run. Pass -f to actually delete.");
    for (const flag of ["-f", "-C"]) {
      const r = await runCli(["delete_old_unclaimed_attachments", flag], { db, confDir: conf, env });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/^Uploaded files are stored in S3 \(LOCAL_UPLOADS_DIR is not set\); zulip-manage deletes only local files\./);
    }
  });
});

describe("stored file names", () => {
  it("thumbnail paths are get_image_thumbnail_path's, and map back to their path_id", () => {
    expect(thumbnailPaths("2/ab/tok/a.png", THUMBS)).toEqual(["thumbnail/2/ab/tok/a.png/840x560.webp", "thumbnail/2/ab/tok/a.png/840x560-anim.webp"]);
    expect(pathIdOfStoredFile("thumbnail/2/ab/tok/a.png/840x560-anim.webp")).toBe("2/ab/tok/a.png");
    expect(pathIdOfStoredFile("2/ab/tok/a.png")).toBe("2/ab/tok/a.png");
  });
});
