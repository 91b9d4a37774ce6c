// Old unclaimed attachments, as Zulip finds and deletes them (delete_old_unclaimed_attachments):
//
// get_old_unclaimed_attachments (zerver/lib/attachments.py): an upload may have an Attachment
// row, an ArchivedAttachment row (same id), or both, depending on whether none, some or all of
// the messages linking to it were archived by message retention. A file is cleaned up if and only
// if nothing references it: an Attachment older than the cutoff with no messages, no scheduled
// messages and no archived messages through its ArchivedAttachment twin; an ArchivedAttachment
// older than the cutoff with no archived messages and whose Attachment twin (if any) has neither
// messages nor scheduled messages.
//
// do_delete_old_unclaimed_attachments (zerver/actions/uploads.py, Zulip 10-12): each Attachment
// row goes with its ImageAttachment row, then each ArchivedAttachment row (its ImageAttachment too
// unless the path was already removed); the stored files (the upload and its thumbnails,
// thumbnail/<path_id>/<format>) are deleted in batches of DELETE_BATCH_SIZE. Zulip deletes row by
// row in autocommit; here each batch of rows is one transaction that locks and re-checks them
// (a row claimed meanwhile is left alone), and its files are deleted after the commit. Local
// storage (LOCAL_UPLOADS_DIR/files) only: delete_local_file removes the file and then every
// directory above it that became empty, up to LOCAL_UPLOADS_DIR.
//
// No events are sent. Attachment's post_delete handler (flush_used_upload_space_cache) drops the
// realm_used_upload_space entry of each deleted Attachment's owner's realm; so do we after each
// batch commits (usedUploadSpaceKeys).
import fs from "node:fs";
import path from "node:path";
import { type CacheInvalidation, cacheKeys } from "../cache.js";
import type { Db, Queryable } from "../../db/db.js";
import { pyDatetimeFromPg } from "../../lib/pyformat.js";

const DELETE_BATCH_SIZE = 1000;
export const DEFAULT_WEEKS = 5;

/** settings.LOCAL_UPLOADS_DIR (the local upload backend), or null when it is unset or empty (uploads are in S3). */
export function localUploadsDir(settings: { fileValue(name: string, fallback: unknown): unknown }): string | null {
  const uploads = settings.fileValue("LOCAL_UPLOADS_DIR", null);
  return typeof uploads === "string" && uploads !== "" ? uploads : null;
}

export interface UnclaimedRow {
  id: number;
  file_name: string;
  path_id: string;
  /** str(create_time), e.g. "2024-01-02 03:04:05.123456+00:00". */
  create_time: string;
  size: number;
}

const UNCLAIMED_ATTACHMENT = `
      a.create_time < now() - make_interval(weeks => $1::int)
  AND NOT EXISTS (SELECT 1 FROM zerver_attachment_messages m WHERE m.attachment_id = a.id)
  AND NOT EXISTS (SELECT 1 FROM zerver_attachment_scheduled_messages s WHERE s.attachment_id = a.id)
  AND NOT EXISTS (SELECT 1 FROM zerver_archivedattachment_messages am WHERE am.archivedattachment_id = a.id)`;

const UNCLAIMED_ARCHIVED = `
      a.create_time < now() - make_interval(weeks => $1::int)
  AND NOT EXISTS (SELECT 1 FROM zerver_archivedattachment_messages am WHERE am.archivedattachment_id = a.id)
  AND NOT EXISTS (SELECT 1 FROM zerver_attachment_messages m WHERE m.attachment_id = a.id)
  AND NOT EXISTS (SELECT 1 FROM zerver_attachment_scheduled_messages s WHERE s.attachment_id = a.id)`;

const ROW_COLUMNS = "a.id, a.file_name, a.path_id, (a.create_time AT TIME ZONE 'UTC')::text || '+00' AS create_time, a.size";

function toRow(r: any): UnclaimedRow {
  return { id: Number(r.id), file_name: r.file_name, path_id: r.path_id, create_time: pyDatetimeFromPg(r.create_time), size: Number(r.size) };
}

/** get_old_unclaimed_attachments(weeks_ago), in id order. */
export async function getOldUnclaimedAttachments(q: Queryable, weeks: number): Promise<{ attachments: UnclaimedRow[]; archived: UnclaimedRow[] }> {
  const a = await q.query(`SELECT ${ROW_COLUMNS} FROM zerver_attachment a WHERE ${UNCLAIMED_ATTACHMENT} ORDER BY a.id`, [weeks]);
  const b = await q.query(`SELECT ${ROW_COLUMNS} FROM zerver_archivedattachment a WHERE ${UNCLAIMED_ARCHIVED} ORDER BY a.id`, [weeks]);
  return { attachments: a.rows.map(toRow), archived: b.rows.map(toRow) };
}

/** get_image_thumbnail_path for each stored thumbnail: thumbnail/<path_id>/<W>x<H>[-anim].<ext>. */
export function thumbnailPaths(pathId: string, metadata: unknown): string[] {
  if (!Array.isArray(metadata)) return [];
  return metadata
    .filter((t: any) => t && typeof t === "object")
    .map((t: any) => `thumbnail/${pathId}/${t.max_width}x${t.max_height}${t.animated ? "-anim" : ""}.${t.extension}`);
}

export interface LocalFileResult {
  deleted: string[];
  missing: string[];
  failed: { path: string; error: string }[];
}

/**
 * delete_local_file(type, path) for each path: refuse paths outside LOCAL_UPLOADS_DIR/<type>,
 * skip ones that are not files, remove, then rmdir each emptied parent up to LOCAL_UPLOADS_DIR.
 */
export function deleteLocalFiles(uploadsDir: string, paths: string[], into: LocalFileResult, type: "files" | "avatars" = "files"): void {
  const root = path.resolve(uploadsDir);
  const typeDir = path.join(root, type);
  for (const p of paths) {
    const full = path.normalize(path.join(typeDir, p));
    if (full !== typeDir && !full.startsWith(typeDir + path.sep)) {
      into.failed.push({ path: p, error: `outside LOCAL_UPLOADS_DIR/${type}; not touched` });
      continue;
    }
    let st: fs.Stats;
    try {
      st = fs.statSync(full);
    } catch {
      into.missing.push(p);
      continue;
    }
    if (!st.isFile()) {
      into.missing.push(p);
      continue;
    }
    try {
      fs.unlinkSync(full);
    } catch (e: any) {
      into.failed.push({ path: p, error: e.message });
      continue;
    }
    into.deleted.push(p);
    let dir = path.dirname(full);
    while (dir !== root && dir.startsWith(root)) {
      try {
        fs.rmdirSync(dir);
      } catch {
        break;
      }
      dir = path.dirname(dir);
    }
  }
}

export interface DeleteUnclaimedResult {
  attachments: number;
  archived_attachments: number;
  image_attachments: number;
  /** Rows listed but claimed (or gone) by the time their batch was locked: left alone. */
  skipped: number;
  files: LocalFileResult;
}

/** realm_used_upload_space:<owner's realm> of the Attachment rows `ids` (flush_used_upload_space_cache). */
export async function usedUploadSpaceKeys(q: Queryable, idsSql: string, params: unknown[] = []): Promise<string[]> {
  const { rows } = await q.query(
    `SELECT DISTINCT u.realm_id FROM zerver_attachment a JOIN zerver_userprofile u ON u.id = a.owner_id WHERE a.id IN (${idsSql}) ORDER BY 1`,
    params,
  );
  return rows.map((r: any) => cacheKeys.realmUsedUploadSpace(r.realm_id));
}

/** Lock the listed rows that are still unclaimed, delete them with their ImageAttachment rows; the storage paths to remove. */
async function deleteBatch(
  db: Db,
  table: "zerver_attachment" | "zerver_archivedattachment",
  ids: number[],
  weeks: number,
  alreadyRemoved: Set<string>,
  result: DeleteUnclaimedResult,
  inval: CacheInvalidation,
): Promise<string[]> {
  return db.tx(async (q) => {
    const cond = table === "zerver_attachment" ? UNCLAIMED_ATTACHMENT : UNCLAIMED_ARCHIVED;
    const { rows } = await q.query(`SELECT a.id, a.path_id FROM ${table} a WHERE a.id = ANY($2::bigint[]) AND ${cond} ORDER BY a.id FOR UPDATE`, [weeks, ids]);
    result.skipped += ids.length - rows.length;
    if (!rows.length) return [];
    const lockedIds = rows.map((r: any) => r.id);
    // Thumbnails of paths not removed earlier in this run (the Attachment pass removed those).
    const fresh = rows.map((r: any) => r.path_id as string).filter((p: string) => !alreadyRemoved.has(p));
    const images = await q.query("DELETE FROM zerver_imageattachment WHERE path_id = ANY($1::text[]) RETURNING path_id, thumbnail_metadata", [fresh]);
    result.image_attachments += images.rowCount ?? 0;
    const thumbs = new Map<string, unknown>(images.rows.map((r: any) => [r.path_id, r.thumbnail_metadata]));
    // Django's delete() also clears the many-to-many rows; the conditions above mean there are none.
    if (table === "zerver_attachment") {
      inval.addKeys(await usedUploadSpaceKeys(q, "SELECT unnest($1::bigint[])", [lockedIds]), "the organizations' used upload space");
      await q.query("DELETE FROM zerver_attachment_messages WHERE attachment_id = ANY($1::bigint[])", [lockedIds]);
      await q.query("DELETE FROM zerver_attachment_scheduled_messages WHERE attachment_id = ANY($1::bigint[])", [lockedIds]);
    } else {
      await q.query("DELETE FROM zerver_archivedattachment_messages WHERE archivedattachment_id = ANY($1::bigint[])", [lockedIds]);
    }
    const deleted = await q.query(`DELETE FROM ${table} WHERE id = ANY($1::bigint[])`, [lockedIds]);
    if (table === "zerver_attachment") result.attachments += deleted.rowCount ?? 0;
    else result.archived_attachments += deleted.rowCount ?? 0;
    const storage: string[] = [];
    for (const p of fresh) {
      storage.push(p, ...thumbnailPaths(p, thumbs.get(p)));
      alreadyRemoved.add(p);
    }
    return storage;
  });
}

/** do_delete_old_unclaimed_attachments for the listed rows, local storage in `uploadsDir`. */
export async function deleteOldUnclaimedAttachments(
  db: Db,
  weeks: number,
  listed: { attachments: UnclaimedRow[]; archived: UnclaimedRow[] },
  uploadsDir: string,
  inval: CacheInvalidation,
): Promise<DeleteUnclaimedResult> {
  const result: DeleteUnclaimedResult = {
    attachments: 0,
    archived_attachments: 0,
    image_attachments: 0,
    skipped: 0,
    files: { deleted: [], missing: [], failed: [] },
  };
  const alreadyRemoved = new Set<string>();
  for (const [table, rows] of [
    ["zerver_attachment", listed.attachments],
    ["zerver_archivedattachment", listed.archived],
  ] as const) {
    for (let i = 0; i < rows.length; i += DELETE_BATCH_SIZE) {
      const ids = rows.slice(i, i + DELETE_BATCH_SIZE).map((r) => r.id);
      const storage = await deleteBatch(db, table, ids, weeks, alreadyRemoved, result, inval);
      inval.changeCommitted();
      deleteLocalFiles(uploadsDir, storage, result.files);
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// -C/--clean-up-storage: files in storage without any database row

export interface StrayFile {
  path: string;
  /** str(modified_at). */
  modified_at: string;
}

/** str() of an aware UTC datetime with microseconds from a stat's mtime in nanoseconds. */
function pyDatetimeFromNs(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const micro = Number((ns / 1000n) % 1_000_000n);
  const iso = new Date(ms).toISOString(); // 2024-01-02T03:04:05.123Z
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}${micro ? "." + String(micro).padStart(6, "0") : ""}+00:00`;
}

/** all_message_attachments(include_thumbnails=True) of the local backend: every file under files/, relative, sorted. */
function* walkFiles(top: string, rel = ""): Generator<{ rel: string; mtimeNs: bigint }> {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(path.join(top, rel), { withFileTypes: true });
  } catch {
    return;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) yield* walkFiles(top, r);
    else if (e.isFile()) {
      try {
        yield { rel: r, mtimeNs: fs.statSync(path.join(top, r), { bigint: true }).mtimeNs };
      } catch {
        /* vanished */
      }
    }
  }
}

/** split_thumbnail_path's path_id, or the path itself for an upload. */
export function pathIdOfStoredFile(p: string): string {
  if (!p.startsWith("thumbnail/")) return p;
  const parts = p.split("/");
  parts.pop();
  return parts.slice(1).join("/");
}

/**
 * clean_attachment_upload_backend: files under LOCAL_UPLOADS_DIR/files (thumbnails included)
 * whose path_id has neither an Attachment nor an ArchivedAttachment row and which are older than
 * five minutes (uploads are written before their row). Deleted unless `dryRun`. Memory stays
 * bounded: paths are checked in batches.
 */
export async function cleanUpStorage(
  q: Queryable,
  uploadsDir: string,
  dryRun: boolean,
  now = Date.now(),
): Promise<{ cutoff: string; files: StrayFile[]; removed: LocalFileResult }> {
  const cutoffNs = BigInt(now - 5 * 60 * 1000) * 1_000_000n;
  const cutoff = pyDatetimeFromNs(cutoffNs).replace(" ", "T");
  const top = path.join(uploadsDir, "files");
  const files: StrayFile[] = [];
  const removed: LocalFileResult = { deleted: [], missing: [], failed: [] };
  let batch: { rel: string; mtimeNs: bigint }[] = [];
  const flush = async () => {
    if (!batch.length) return;
    const ids = [...new Set(batch.map((b) => pathIdOfStoredFile(b.rel)))];
    const { rows } = await q.query(
      `SELECT path_id FROM zerver_attachment WHERE path_id = ANY($1::text[])
       UNION SELECT path_id FROM zerver_archivedattachment WHERE path_id = ANY($1::text[])`,
      [ids],
    );
    const known = new Set(rows.map((r: any) => r.path_id as string));
    const stray: string[] = [];
    for (const b of batch) {
      if (known.has(pathIdOfStoredFile(b.rel)) || b.mtimeNs > cutoffNs) continue;
      files.push({ path: b.rel, modified_at: pyDatetimeFromNs(b.mtimeNs) });
      stray.push(b.rel);
    }
    if (!dryRun) deleteLocalFiles(uploadsDir, stray, removed);
    batch = [];
  };
  for (const f of walkFiles(top)) {
    batch.push(f);
    if (batch.length >= DELETE_BATCH_SIZE) await flush();
  }
  await flush();
  return { cutoff, files, removed };
}
