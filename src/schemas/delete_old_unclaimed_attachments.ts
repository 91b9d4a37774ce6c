import { type Static, Type } from "@sinclair/typebox";
import { CacheReport, Count, DryRunField, Id, Nullable, Obj, Timestamp } from "./shared.js";

export const UnclaimedAttachment = Obj({ id: Id, file_name: Type.String(), path_id: Type.String(), created_at: Timestamp, size_bytes: Count });
export const FileRemoval = Obj(
  {
    deleted: Type.Array(Type.String()),
    missing: Type.Array(Type.String(), { description: "already gone" }),
    failed: Type.Array(Obj({ path: Type.String(), error: Type.String() }), { description: "could not be removed (warned)" }),
  },
  "files removed from local storage (paths relative to it)",
);
export const DeleteOldUnclaimedAttachmentsBody = Obj({
  ...DryRunField,
  weeks: Type.Integer(),
  attachments: Type.Array(UnclaimedAttachment),
  archived_attachments: Type.Array(UnclaimedAttachment),
  deleted: Nullable(
    Obj(
      {
        attachments_count: Count,
        archived_attachments_count: Count,
        image_attachments_count: Count,
        skipped_count: Count,
        files: FileRemoval,
      },
      "with -f: what was deleted (rows claimed meanwhile are skipped)",
    ),
  ),
  storage_cleanup: Nullable(
    Obj(
      {
        cutoff_at: Timestamp,
        files: Type.Array(Obj({ path: Type.String(), modified_at: Timestamp }), { description: "files in storage without a database row" }),
        removed: FileRemoval,
      },
      "with -C",
    ),
  ),
  cache: Nullable(CacheReport),
});
export type DeleteOldUnclaimedAttachmentsBody = Static<typeof DeleteOldUnclaimedAttachmentsBody>;
export const bodies = [DeleteOldUnclaimedAttachmentsBody];
export const description = "Old unclaimed uploads: listed (a dry run without -f, which exits 1 with manage.py's message, error_code refused) or deleted.";
