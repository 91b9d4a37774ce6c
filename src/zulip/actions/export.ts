// A single user's data export, written the way Zulip's do_export_user writes it
// (zerver/lib/export.py: export_single_user / get_single_user_config,
// export_messages_single_user, export_uploads_and_avatars; the management command
// zerver/management/commands/export_single_user.py), and a streaming .tar.gz writer.
//
// Files in the output directory:
//   user.json                   the user's rows: zerver_userprofile (api_key, password and uuid
//                               left out; groups / user_permissions as id lists), then
//                               zerver_subscription, zerver_recipient, zerver_stream (no
//                               email_token), analytics_usercount, zerver_realmauditlog,
//                               zerver_reaction, zerver_submessage (12.x), zerver_alertword,
//                               zerver_customprofilefieldvalue, zerver_muteduser,
//                               zerver_navigationview (11.x+), zerver_onboardingstep,
//                               zerver_savedsnippet, zerver_useractivity,
//                               zerver_useractivityinterval, zerver_userpresence, zerver_userstatus,
//                               zerver_usertopic, zerver_externalauthid (11.x+) — each sorted by id
//   messages-000001.json, …     {"zerver_message": [...]}: every message the user sent, received
//                               as a DM / group DM, or reacted to, that has a UserMessage row for
//                               the user, in chunks of 1000 candidate ids; each message with
//                               "flags", "flags_mask", "sending_client_name", "recipient_name"
//   uploads/records.json (+ files), avatars/records.json (+ files), emoji/records.json (+ files)
//                               the user's attachments, avatar and custom emoji, copied from
//                               LOCAL_UPLOADS_DIR (S3 storage is not supported: the records are
//                               empty and a warning says so)
// Rows are serialized like Django's model_to_dict (foreign keys under the field name without
// "_id", in the table's column order — Zulip uses the model's field order), datetimes as UNIX
// timestamps (Python floats), and the JSON is laid out like orjson's OPT_INDENT_2.
//
// Memory stays flat: messages are read through a server-side cursor (DECLARE … CURSOR /
// FETCH), one chunk is serialized and written at a time, and the tarball is produced by
// streaming every file through zlib.
import { readAvatarSalt, userAvatarBasePath } from "../avatar.js";
import { localUploadsDir } from "./attachments.js";
import { CommandError } from "../../lib/errors.js";
import { mkdirPrivate } from "../../lib/files.js";
export { userAvatarBasePath };
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Db, Queryable } from "../../db/db.js";
import { catalogForeignKeys } from "../../db/ondelete.js";
import { quoteIdent } from "../../db/sql.js";
import { zlib } from "../../lib/builtins.js";
import { seriesAtLeast } from "../../db/zulip-versions.js";
import { databaseSeries } from "../rows.js";
import { flagsList, RecipientType } from "../models.js";

// ---------------------------------------------------------------------------------------------
// JSON as Zulip writes it (orjson, OPT_INDENT_2)

/** A Python float: serialized with Python's repr (1700000000.0, not 1700000000). */
export class PyFloat {
  constructor(readonly value: number) {}
  toString(): string {
    const v = this.value;
    if (!Number.isFinite(v)) return "null"; // orjson writes null for nan/inf
    // Python's repr: shortest round-trip digits, exponent form from 1e16 (two-digit exponent).
    if (Math.abs(v) >= 1e16) return v.toExponential().replace(/e([+-])(\d)$/, "e$10$2");
    const s = String(v);
    if (/e/.test(s)) return s.replace(/e([+-])(\d)$/, "e$10$2");
    return s.includes(".") ? s : s + ".0";
  }
}

function pyJsonInto(v: unknown, indent: string, out: string[]): void {
  if (v === null || v === undefined) {
    out.push("null");
  } else if (v instanceof PyFloat) {
    out.push(v.toString());
  } else if (typeof v === "string") {
    out.push(JSON.stringify(v));
  } else if (typeof v === "number") {
    out.push(Number.isFinite(v) ? String(v) : "null");
  } else if (typeof v === "boolean") {
    out.push(v ? "true" : "false");
  } else if (Array.isArray(v)) {
    if (v.length === 0) {
      out.push("[]");
      return;
    }
    const inner = indent + "  ";
    out.push("[\n");
    v.forEach((x, i) => {
      out.push(inner);
      pyJsonInto(x, inner, out);
      out.push(i < v.length - 1 ? ",\n" : "\n");
    });
    out.push(indent, "]");
  } else if (typeof v === "object") {
    const entries = Object.entries(v as Record<string, unknown>);
    if (entries.length === 0) {
      out.push("{}");
      return;
    }
    const inner = indent + "  ";
    out.push("{\n");
    entries.forEach(([k, x], i) => {
      out.push(inner, JSON.stringify(k), ": ");
      pyJsonInto(x, inner, out);
      out.push(i < entries.length - 1 ? ",\n" : "\n");
    });
    out.push(indent, "}");
  } else {
    out.push(JSON.stringify(String(v)));
  }
}

/** orjson.dumps(value, option=OPT_INDENT_2) for the values an export contains. */
export function pyJson(value: unknown): string {
  const out: string[] = [];
  pyJsonInto(value, "", out);
  return out.join("");
}

// ---------------------------------------------------------------------------------------------
// Rows as model_to_dict() gives them

/**
 * The field order of models whose definition we know (zerver/models/*.py): model_to_dict
 * follows it, while the table's column order follows the migrations. Other tables keep their
 * column order; unknown columns go last.
 */
const MODEL_FIELD_ORDER: Record<string, string[]> = {
  zerver_message: [
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
  ],
  zerver_subscription: [
    "id",
    "user_profile",
    "recipient",
    "active",
    "is_user_active",
    "is_muted",
    "color",
    "pin_to_top",
    "desktop_notifications",
    "audible_notifications",
    "push_notifications",
    "email_notifications",
    "wildcard_mentions_notify",
  ],
  zerver_recipient: ["id", "type_id", "type"],
  zerver_reaction: ["id", "user_profile", "emoji_name", "reaction_type", "emoji_code", "message"],
  zerver_usertopic: ["id", "user_profile", "stream", "recipient", "topic_name", "last_updated", "visibility_policy"],
  zerver_muteduser: ["id", "user_profile", "muted_user", "date_muted"],
  zerver_useractivity: ["id", "user_profile", "client", "query", "count", "last_visit"],
  zerver_useractivityinterval: ["id", "user_profile", "start", "end"],
};

function orderColumns(table: string, cols: ColumnInfo[]): ColumnInfo[] {
  const order = MODEL_FIELD_ORDER[table];
  if (!order) return cols;
  const rank = (c: ColumnInfo) => {
    const i = order.indexOf(c.key);
    return i < 0 ? order.length : i;
  };
  return cols
    .map((c, i) => ({ c, i }))
    .sort((a, b) => rank(a.c) - rank(b.c) || a.i - b.i)
    .map((x) => x.c);
}

interface ColumnInfo {
  name: string;
  /** Key in the exported dict (FK columns lose "_id"). */
  key: string;
  type: string;
}

type Row = Record<string, unknown>;

class RowReader {
  private columnsByTable = new Map<string, ColumnInfo[]>();
  private fkColumns?: Set<string>;

  constructor(private readonly q: Queryable) {}

  private async fks(): Promise<Set<string>> {
    if (!this.fkColumns) this.fkColumns = new Set((await catalogForeignKeys(this.q)).map((f) => `${f.table}.${f.column}`));
    return this.fkColumns;
  }

  async columns(table: string): Promise<ColumnInfo[]> {
    let cols = this.columnsByTable.get(table);
    if (!cols) {
      const fks = await this.fks();
      const { rows } = await this.q.query(
        `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
           FROM pg_catalog.pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
        [table],
      );
      cols = rows.map((r) => ({
        name: r.name as string,
        type: r.type as string,
        key: fks.has(`${table}.${r.name}`) && (r.name as string).endsWith("_id") ? (r.name as string).slice(0, -3) : (r.name as string),
      }));
      cols = orderColumns(table, cols);
      this.columnsByTable.set(table, cols);
    }
    return cols;
  }

  async exists(table: string): Promise<boolean> {
    return (await this.columns(table)).length > 0;
  }

  /** The SELECT list: datetimes as epoch text, JSON / UUID / tsvector as text. */
  selectList(cols: ColumnInfo[], alias = ""): string {
    const p = alias ? `${alias}.` : "";
    return cols
      .map((c) => {
        const as = quoteIdent(c.name);
        const ref = `${p}${as}`;
        if (c.type.startsWith("timestamp")) return `(extract(epoch FROM ${ref}))::text AS ${as}`;
        if (c.type === "json" || c.type === "jsonb" || c.type === "uuid" || c.type === "tsvector" || c.type === "numeric") return `${ref}::text AS ${as}`;
        if (c.type === "bytea") return `encode(${ref}, 'base64') AS ${as}`;
        return `${ref} AS ${as}`;
      })
      .join(", ");
  }

  convert(cols: ColumnInfo[], raw: Row, exclude: readonly string[] = []): Row {
    const out: Row = {};
    for (const c of cols) {
      if (exclude.includes(c.key) || exclude.includes(c.name)) continue;
      const v = raw[c.name];
      if (v === null || v === undefined) out[c.key] = null;
      else if (c.type.startsWith("timestamp")) out[c.key] = new PyFloat(Number(v));
      else if (c.type === "json" || c.type === "jsonb") out[c.key] = JSON.parse(String(v));
      else if (c.type === "numeric") out[c.key] = new PyFloat(Number(v));
      else out[c.key] = v;
    }
    return out;
  }

  /** Rows of `table` matching `where`, sorted by id, as dicts. */
  async rows(table: string, where: string, params: unknown[], exclude: readonly string[] = []): Promise<Row[]> {
    const cols = await this.columns(table);
    if (!cols.length) return [];
    const { rows } = await this.q.query(`SELECT ${this.selectList(cols)} FROM ${table} WHERE ${where} ORDER BY id`, params);
    return rows.map((r) => this.convert(cols, r, exclude));
  }
}

// ---------------------------------------------------------------------------------------------
// The export

export interface ExportUserOptions {
  outputDir: string;
  /** settings.LOCAL_UPLOADS_DIR (null: uploads are on S3, which we cannot read). */
  localUploadsDir: string | null;
  /** settings.AVATAR_SALT, for the avatar file names (null: avatars are skipped with a warning). */
  avatarSalt: string | null;
  /** Candidate message ids per messages-NNNNNN.json (Zulip: 1000). */
  chunkSize?: number;
  /** Rows per FETCH from the cursor. */
  fetchSize?: number;
  /** Called with each file written (relative path). */
  onFile?: (relativePath: string) => void;
}

export interface ExportUserResult {
  files: string[];
  tables: Record<string, number>;
  messages: number;
  messageFiles: number;
  uploads: number;
  avatars: number;
  emoji: number;
  warnings: string[];
}

/** EXCLUDED_USER_PROFILE_FIELDS */
const EXCLUDED_USER_PROFILE_FIELDS = ["api_key", "password", "uuid"];

/**
 * add_user_profile_child_configs(): (table, user column, first release whose export has it), in
 * Zulip's order. The list grows with the models: SavedSnippet (migration 0587, 10.0),
 * NavigationView (0709, 11.0) and ExternalAuthID (0729, 11.0) were added to it with their
 * models (zerver/lib/export.py). A table is exported when the database's release has it in
 * its list (a 10.x database never carries the 11.0 tables, but the release check keeps a
 * schema with extra tables from changing what a 10.x export contains).
 */
const USER_CHILD_TABLES: [string, string, string][] = [
  ["zerver_alertword", "user_profile_id", "10.x"],
  ["zerver_customprofilefieldvalue", "user_profile_id", "10.x"],
  ["zerver_muteduser", "user_profile_id", "10.x"],
  ["zerver_navigationview", "user_id", "11.x"],
  ["zerver_onboardingstep", "user_id", "10.x"],
  ["zerver_savedsnippet", "user_profile_id", "10.x"],
  ["zerver_useractivity", "user_profile_id", "10.x"],
  ["zerver_useractivityinterval", "user_profile_id", "10.x"],
  ["zerver_userpresence", "user_profile_id", "10.x"],
  ["zerver_userstatus", "user_profile_id", "10.x"],
  ["zerver_usertopic", "user_profile_id", "10.x"],
  ["zerver_externalauthid", "user_id", "11.x"],
];

/**
 * zerver_submessage joined the export in 12.0 (zulip/zulip PR #36988 "export: Export
 * zerver_submessage table", merged 2025-12, fixing #36150: polls and to-do lists lost on
 * import). In the single-user export we take the submessages the user sent, the way the
 * single-user config takes zerver_reaction (rows keyed by the user). Not checked against
 * 12.x's code line by line: the index we could read holds no 12.x export.py.
 */
const SUBMESSAGE_SINCE = "12.x";

// The export holds the user's private messages: every file and directory it writes, the
// tarball included, is for the owner's eyes only (whatever the umask).
const PRIVATE_FILE = 0o600;
const PRIVATE_DIR = 0o700;

async function writeJson(dir: string, rel: string, value: unknown, opts: ExportUserOptions, files: string[]): Promise<void> {
  const file = path.join(dir, rel);
  await fs.promises.mkdir(path.dirname(file), { recursive: true, mode: PRIVATE_DIR });
  await fs.promises.writeFile(file, pyJson(value), { mode: PRIVATE_FILE });
  files.push(rel);
  opts.onFile?.(rel);
}

/** do_export_user(user_profile, output_dir), inside one read-only REPEATABLE READ transaction. */
export async function exportSingleUser(db: Db, userId: number, opts: ExportUserOptions): Promise<ExportUserResult> {
  const result: ExportUserResult = { files: [], tables: {}, messages: 0, messageFiles: 0, uploads: 0, avatars: 0, emoji: 0, warnings: [] };
  await db.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY");
  try {
    const reader = new RowReader(db);
    const data = await userTables(db, reader, userId, await databaseSeries(db));
    for (const [t, rows] of Object.entries(data)) result.tables[t] = rows.length;
    await writeJson(opts.outputDir, "user.json", data, opts, result.files);
    const reactionMessageIds = (data.zerver_reaction ?? []).map((r) => Number(r.message));
    const m = await exportMessages(db, reader, userId, reactionMessageIds, opts, result.files);
    result.messages = m.messages;
    result.messageFiles = m.files;
    await exportUploadsAndAvatars(db, userId, opts, result);
    await db.query("COMMIT");
  } catch (e) {
    await db.query("ROLLBACK").catch(() => undefined);
    throw e;
  }
  return result;
}

/** export_single_user(): the tables of user.json, in the order Zulip's config walks them. */
async function userTables(q: Queryable, reader: RowReader, userId: number, series: string): Promise<Record<string, Row[]>> {
  const data: Record<string, Row[]> = {};
  const users = await reader.rows("zerver_userprofile", "id = $1", [userId], EXCLUDED_USER_PROFILE_FIELDS);
  for (const u of users) {
    // PermissionsMixin's many-to-many fields, as lists of ids.
    u.groups = (await q.query("SELECT group_id AS id FROM zerver_userprofile_groups WHERE userprofile_id = $1 ORDER BY id", [userId])).rows.map((r) =>
      Number(r.id),
    );
    u.user_permissions = (
      await q.query("SELECT permission_id AS id FROM zerver_userprofile_user_permissions WHERE userprofile_id = $1 ORDER BY id", [userId])
    ).rows.map((r) => Number(r.id));
  }
  data.zerver_userprofile = users;
  data.zerver_subscription = await reader.rows("zerver_subscription", "user_profile_id = $1", [userId]);
  const recipientIds = [...new Set(data.zerver_subscription.map((s) => Number(s.recipient)))];
  data.zerver_recipient = await reader.rows("zerver_recipient", "id = ANY ($1::int[])", [recipientIds]);
  const streamIds = data.zerver_recipient.filter((r) => Number(r.type) === RecipientType.STREAM).map((r) => Number(r.type_id));
  data.zerver_stream = await reader.rows("zerver_stream", "id = ANY ($1::bigint[])", [streamIds], ["email_token"]);
  if (await reader.exists("analytics_usercount")) data.analytics_usercount = await reader.rows("analytics_usercount", "user_id = $1", [userId]);
  data.zerver_realmauditlog = await reader.rows("zerver_realmauditlog", "modified_user_id = $1 OR acting_user_id = $1", [userId]);
  data.zerver_reaction = await reader.rows("zerver_reaction", "user_profile_id = $1", [userId]);
  if (seriesAtLeast(series, SUBMESSAGE_SINCE) && (await reader.exists("zerver_submessage"))) {
    data.zerver_submessage = await reader.rows("zerver_submessage", "sender_id = $1", [userId]);
  }
  for (const [table, column, since] of USER_CHILD_TABLES) {
    if (seriesAtLeast(series, since) && (await reader.exists(table))) data[table] = await reader.rows(table, `${column} = $1`, [userId]);
  }
  return data;
}

/** export_messages_single_user(): messages-NNNNNN.json through a server-side cursor. */
async function exportMessages(
  q: Queryable,
  reader: RowReader,
  userId: number,
  reactionMessageIds: number[],
  opts: ExportUserOptions,
  files: string[],
): Promise<{ messages: number; files: number }> {
  const chunkSize = opts.chunkSize ?? 1000;
  const fetchSize = opts.fetchSize ?? 1000;
  const user = (await q.query("SELECT realm_id FROM zerver_userprofile WHERE id = $1", [userId])).rows[0];
  const realmId = Number(user.realm_id);
  // Recipient.PERSONAL (10.x / 11.x) and DIRECT_MESSAGE_GROUP subscriptions.
  const mine = (
    await q.query(
      `SELECT s.recipient_id FROM zerver_subscription s JOIN zerver_recipient r ON r.id = s.recipient_id
        WHERE s.user_profile_id = $1 AND r.type IN ($2, $3) ORDER BY 1`,
      [userId, RecipientType.PERSONAL, RecipientType.DIRECT_MESSAGE_GROUP],
    )
  ).rows.map((r) => Number(r.recipient_id));
  const cols = await reader.columns("zerver_message");
  await q.query(
    `DECLARE zm_export_messages NO SCROLL CURSOR FOR
     WITH candidates AS (
       SELECT id FROM zerver_message WHERE realm_id = $2 AND sender_id = $1
       UNION SELECT id FROM zerver_message WHERE realm_id = $2 AND recipient_id = ANY ($3::int[])
       UNION SELECT message_id FROM unnest($4::int[]) AS r(message_id)
     )
     SELECT c.id AS zm_candidate, um.flags AS zm_flags, cl.name AS zm_client, ${reader.selectList(cols, "m")}
       FROM candidates c
       LEFT JOIN zerver_usermessage um ON um.message_id = c.id AND um.user_profile_id = $1
       LEFT JOIN zerver_message m ON m.id = c.id AND um.id IS NOT NULL
       LEFT JOIN zerver_client cl ON cl.id = m.sending_client_id
      ORDER BY c.id`.replace(
      /\$(\d)/g,
      (_, n) => ["", String(userId), String(realmId), `'{${mine.join(",")}}'`, `'{${reactionMessageIds.join(",")}}'`][Number(n)],
    ),
  );
  const names = new Map<number, string>();
  const recipientName = async (recipientId: number): Promise<string> => {
    let name = names.get(recipientId);
    if (name === undefined) {
      const r = (await q.query("SELECT type, type_id FROM zerver_recipient WHERE id = $1", [recipientId])).rows[0];
      if (r && Number(r.type) === RecipientType.STREAM) {
        name = String((await q.query("SELECT name FROM zerver_stream WHERE id = $1", [r.type_id])).rows[0]?.name ?? "");
      } else {
        const { rows } = await q.query(
          `SELECT u.full_name FROM zerver_userprofile u JOIN zerver_subscription s ON s.user_profile_id = u.id
            WHERE s.recipient_id = $1 ORDER BY u.full_name`,
          [recipientId],
        );
        name = rows.map((x) => x.full_name as string).join(", ");
      }
      if (names.size > 10000) names.clear();
      names.set(recipientId, name);
    }
    return name;
  };
  let fileNo = 0;
  let inChunk = 0;
  let messages: Row[] = [];
  let total = 0;
  const flush = async () => {
    fileNo++;
    await writeJson(opts.outputDir, `messages-${String(fileNo).padStart(6, "0")}.json`, { zerver_message: messages }, opts, files);
    total += messages.length;
    messages = [];
    inChunk = 0;
  };
  for (;;) {
    const { rows } = await q.query(`FETCH ${fetchSize} FROM zm_export_messages`);
    for (const raw of rows) {
      if (raw.zm_flags !== null && raw.zm_flags !== undefined && raw.id !== null) {
        const item = reader.convert(cols, raw);
        const mask = Number(raw.zm_flags);
        item.flags = flagsList(mask);
        item.flags_mask = mask;
        item.sending_client_name = raw.zm_client;
        item.recipient_name = await recipientName(Number(raw.recipient_id));
        messages.push(item);
      }
      if (++inChunk === chunkSize) await flush();
    }
    if (rows.length < fetchSize) break;
  }
  if (inChunk > 0) await flush();
  await q.query("CLOSE zm_export_messages");
  return { messages: total, files: fileNo };
}

async function copyWithStat(src: string, dst: string): Promise<fs.Stats> {
  await fs.promises.mkdir(path.dirname(dst), { recursive: true, mode: PRIVATE_DIR });
  await fs.promises.copyFile(src, dst);
  await fs.promises.chmod(dst, PRIVATE_FILE);
  const st = await fs.promises.stat(src);
  await fs.promises.utimes(dst, st.atime, st.mtime); // shutil.copy2 keeps the times
  return st;
}

/** export_uploads_and_avatars(realm, user=user): uploads/, avatars/, emoji/ with records.json. */
async function exportUploadsAndAvatars(q: Queryable, userId: number, opts: ExportUserOptions, result: ExportUserResult): Promise<void> {
  const out = opts.outputDir;
  for (const d of ["uploads", "avatars", "emoji"]) await fs.promises.mkdir(path.join(out, d), { recursive: true, mode: PRIVATE_DIR });
  const user = (await q.query("SELECT id, email, realm_id, avatar_source, avatar_version FROM zerver_userprofile WHERE id = $1", [userId])).rows[0];
  const uploads: Row[] = [];
  const avatars: Row[] = [];
  const emoji: Row[] = [];
  const attachments = (
    await q.query(
      `SELECT a.path_id, a.realm_id, u.id AS owner_id, u.email AS owner_email FROM zerver_attachment a JOIN zerver_userprofile u ON u.id = a.owner_id
        WHERE a.owner_id = $1 ORDER BY a.id`,
      [userId],
    )
  ).rows;
  const emojis = (
    await q.query("SELECT id, realm_id, author_id, file_name, name, deactivated FROM zerver_realmemoji WHERE author_id = $1 ORDER BY id", [userId])
  ).rows;
  if (opts.localUploadsDir === null) {
    if (attachments.length || emojis.length || user.avatar_source !== "G") {
      result.warnings.push(
        "Uploaded files are stored in S3 (LOCAL_UPLOADS_DIR is not set), which zulip-manage cannot read: " +
          `the export's uploads/, avatars/ and emoji/ records are empty (not copied: ${attachments.length} attachment(s), ` +
          `${emojis.length} custom emoji${user.avatar_source !== "G" ? ", the avatar" : ""}).`,
      );
    }
  } else {
    const filesDir = path.join(opts.localUploadsDir, "files");
    const avatarsDir = path.join(opts.localUploadsDir, "avatars");
    for (const a of attachments) {
      const rel = String(a.path_id);
      if (rel.includes("..")) {
        result.warnings.push(`Skipped attachment with a suspicious path: ${rel}`);
        continue;
      }
      try {
        const st = await copyWithStat(path.join(filesDir, rel), path.join(out, "uploads", rel));
        uploads.push({
          realm_id: Number(a.realm_id),
          user_profile_id: Number(a.owner_id),
          user_profile_email: a.owner_email,
          s3_path: rel,
          path: rel,
          size: st.size,
          last_modified: new PyFloat(st.mtimeMs / 1000),
          content_type: null,
        });
        result.files.push(path.join("uploads", rel));
      } catch (e: any) {
        result.warnings.push(`Attachment file missing, not exported: ${path.join(filesDir, rel)} (${e?.code ?? e})`);
      }
    }
    if (user.avatar_source !== "G") {
      if (opts.avatarSalt === null) {
        result.warnings.push("The avatar_salt secret is not readable; the user's avatar files were not exported.");
      } else {
        const base = userAvatarBasePath(Number(user.id), Number(user.avatar_version), Number(user.realm_id), opts.avatarSalt);
        const dir = path.join(avatarsDir, path.dirname(base));
        let names: string[] = [];
        try {
          names = (await fs.promises.readdir(dir)).filter((n) => n.startsWith(path.basename(base) + ".")).sort();
        } catch {
          names = [];
        }
        for (const n of names) {
          const rel = path.join(path.dirname(base), n);
          const st = await copyWithStat(path.join(avatarsDir, rel), path.join(out, "avatars", rel));
          avatars.push({
            realm_id: Number(user.realm_id),
            user_profile_id: Number(user.id),
            user_profile_email: user.email,
            s3_path: rel,
            path: rel,
            size: st.size,
            last_modified: new PyFloat(st.mtimeMs / 1000),
            content_type: null,
          });
          result.files.push(path.join("avatars", rel));
        }
      }
    }
    // export_emoji_from_local: each emoji's image and its ".original" (the upload as it came,
    // kept beside the resized one), one record each with the same fields.
    for (const e of emojis.flatMap((x) =>
      x.file_name === null
        ? []
        : [
            { ...x, suffix: "" },
            { ...x, suffix: ".original" },
          ],
    )) {
      const rel = `${e.realm_id}/emoji/images/${e.file_name}${e.suffix}`;
      try {
        await copyWithStat(path.join(avatarsDir, rel), path.join(out, "emoji", rel));
        emoji.push({
          realm_id: Number(e.realm_id),
          author: Number(e.author_id),
          path: rel,
          s3_path: rel,
          file_name: e.file_name,
          name: e.name,
          deactivated: Boolean(e.deactivated),
        });
        result.files.push(path.join("emoji", rel));
      } catch (err: any) {
        result.warnings.push(`Custom emoji file missing, not exported: ${path.join(avatarsDir, rel)} (${err?.code ?? err})`);
      }
    }
  }
  const byPath = (a: Row, b: Row) => (String(a.path) < String(b.path) ? -1 : String(a.path) > String(b.path) ? 1 : 0);
  await writeJson(out, "uploads/records.json", uploads.sort(byPath), opts, result.files);
  await writeJson(out, "avatars/records.json", avatars.sort(byPath), opts, result.files);
  await writeJson(out, "emoji/records.json", emoji.sort(byPath), opts, result.files);
  result.uploads = uploads.length;
  result.avatars = avatars.length;
  result.emoji = emoji.length;
}

// ---------------------------------------------------------------------------------------------
// tar -czf <dir>.tar.gz -C <parent> <basename>, streamed

const BLOCK = 512;

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, "0") + "\0";
}

function tarHeader(opts: { name: string; prefix?: string; mode: number; size: number; mtime: number; type: string; uid: number; gid: number }): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(opts.name, 0, 100, "utf8");
  h.write(octal(opts.mode, 8), 100, 8, "ascii");
  h.write(octal(opts.uid, 8), 108, 8, "ascii");
  h.write(octal(opts.gid, 8), 116, 8, "ascii");
  h.write(octal(opts.size, 12), 124, 12, "ascii");
  h.write(octal(Math.floor(opts.mtime), 12), 136, 12, "ascii");
  h.fill(" ", 148, 156);
  h.write(opts.type, 156, 1, "ascii");
  h.write("ustar\0", 257, 6, "ascii");
  h.write("00", 263, 2, "ascii");
  if (opts.prefix) h.write(opts.prefix, 345, 155, "utf8");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + " ", 148, 8, "ascii");
  return h;
}

function pad(size: number): Buffer {
  const rest = size % BLOCK;
  return rest ? Buffer.alloc(BLOCK - rest) : Buffer.alloc(0);
}

/** A PAX record "<len> path=<value>\n" (the length counts itself). */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

function headersFor(entryPath: string, stat: { mode: number; size: number; mtime: number; uid: number; gid: number }, type: string): Buffer[] {
  const bytes = Buffer.byteLength(entryPath);
  let name = entryPath;
  let prefix = "";
  const out: Buffer[] = [];
  if (bytes > 100) {
    // ustar: split at a "/" so that name ≤ 100 and prefix ≤ 155 bytes; otherwise a PAX header.
    let split = -1;
    for (let i = entryPath.length - 1; i > 0; i--) {
      if (entryPath[i] !== "/") continue;
      if (Buffer.byteLength(entryPath.slice(i + 1)) <= 100 && Buffer.byteLength(entryPath.slice(0, i)) <= 155) {
        split = i;
        break;
      }
    }
    if (split > 0) {
      prefix = entryPath.slice(0, split);
      name = entryPath.slice(split + 1);
    } else {
      const pax = Buffer.from(paxRecord("path", entryPath));
      out.push(
        tarHeader({ name: "PaxHeader/" + path.basename(entryPath).slice(0, 80), mode: 0o644, size: pax.length, mtime: stat.mtime, type: "x", uid: 0, gid: 0 }),
      );
      out.push(pax, pad(pax.length));
      name = Buffer.from(entryPath)
        .subarray(0, 100)
        .toString("utf8")
        .replace(/\uFFFD$/, "");
    }
  }
  out.push(tarHeader({ name, prefix, mode: stat.mode & 0o7777, size: type === "0" ? stat.size : 0, mtime: stat.mtime, type, uid: stat.uid, gid: stat.gid }));
  return out;
}

async function* tarStream(parent: string, base: string, entries: string[]): AsyncGenerator<Buffer> {
  async function* walk(rel: string): AsyncGenerator<Buffer> {
    const abs = path.join(parent, rel);
    const st = await fs.promises.lstat(abs);
    const meta = { mode: st.mode, size: st.size, mtime: st.mtimeMs / 1000, uid: st.uid, gid: st.gid };
    if (st.isDirectory()) {
      entries.push(rel + "/");
      for (const h of headersFor(rel + "/", meta, "5")) yield h;
      const children = (await fs.promises.readdir(abs)).sort();
      for (const c of children) yield* walk(path.posix.join(rel, c));
    } else if (st.isFile()) {
      entries.push(rel);
      for (const h of headersFor(rel, meta, "0")) yield h;
      let written = 0;
      for await (const chunk of fs.createReadStream(abs, { highWaterMark: 1 << 20 })) {
        const b = chunk as Buffer;
        written += b.length;
        if (written > st.size) throw new Error(`${abs} grew while it was being archived`);
        yield b;
      }
      if (written !== st.size) throw new Error(`${abs} changed size while it was being archived`);
      yield pad(st.size);
    }
    // Other file types (symlinks, sockets) are not part of an export.
  }
  yield* walk(base);
  yield Buffer.alloc(BLOCK * 2);
}

/**
 * `tar -czf <dir>.tar.gz -C <parent of dir> <basename of dir>`: a gzip-compressed ustar
 * archive (PAX headers for very long names), entries in name order, streamed to disk.
 * Returns the entry names.
 */
export async function writeTarGz(dir: string, tarballPath: string): Promise<string[]> {
  const abs = path.resolve(dir);
  const entries: string[] = [];
  const tmp = `${tarballPath}.partial-${process.pid}`;
  try {
    await pipeline(
      Readable.from(tarStream(path.dirname(abs), path.basename(abs), entries)),
      zlib().createGzip(),
      fs.createWriteStream(tmp, { mode: PRIVATE_FILE }),
    );
    await fs.promises.rename(tmp, tarballPath);
  } catch (e) {
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
  return entries;
}

// ---------------------------------------------------------------------------------------------
// manage.py export_single_user's output directory, and the settings the export reads

/** os.path.realpath(os.path.expanduser(p)): absolute, symlinks of the existing part resolved. */
function resolveOutputDir(p: string): string {
  let expanded = p;
  if (p === "~" || p.startsWith("~/")) expanded = path.join(os.homedir(), p.slice(1));
  const abs = path.resolve(expanded);
  const rest: string[] = [];
  let head = abs;
  for (;;) {
    try {
      return path.join(fs.realpathSync(head), ...rest.reverse());
    } catch {
      const parent = path.dirname(head);
      if (parent === head) return abs;
      rest.push(path.basename(head));
      head = parent;
    }
  }
}

/** manage.py's output directory handling (before anything is exported): --output, or a new zulip-export-XXXXXX in the temp directory. */
export function prepareOutputDir(option: string | undefined): string {
  if (option === undefined) return fs.mkdtempSync(path.join(os.tmpdir(), "zulip-export-"));
  const dir = resolveOutputDir(option);
  if (fs.existsSync(dir)) {
    if (!fs.statSync(dir).isDirectory()) throw new CommandError(`Refusing to overwrite ${dir}: it is not a directory. Aborting...`);
    if (fs.readdirSync(dir).length) throw new CommandError(`Refusing to overwrite nonempty directory: ${dir}. Aborting...`);
  } else {
    mkdirPrivate(dir);
  }
  return dir;
}

/** The settings exportSingleUser reads: LOCAL_UPLOADS_DIR and AVATAR_SALT. */
export function exportSettings(settings: {
  fileValue(name: string, fallback: unknown): unknown;
  get(name: "AVATAR_SALT"): string;
}): Pick<ExportUserOptions, "localUploadsDir" | "avatarSalt"> {
  return { localUploadsDir: localUploadsDir(settings), avatarSalt: readAvatarSalt(settings) };
}
