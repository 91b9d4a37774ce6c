import { type Static, Type } from "@sinclair/typebox";
import { Count, DryRunField, DurationMs, Obj, Realm, User } from "./shared.js";

export const ExportSingleUserBody = Obj({
  ...DryRunField,
  user: User,
  realm: Realm,
  output_dir: Type.String(),
  tarball: Type.String(),
  tarball_bytes: Count,
  files: Type.Array(Type.String(), { description: "relative to output_dir" }),
  tables: Type.Record(Type.String(), Count, { description: "rows per table in user.json" }),
  messages_count: Count,
  message_files_count: Count,
  uploads_count: Count,
  avatars_count: Count,
  emoji_count: Count,
  warnings: Type.Array(Type.String()),
  duration_ms: DurationMs,
});
export type ExportSingleUserBody = Static<typeof ExportSingleUserBody>;
export const bodies = [ExportSingleUserBody];
export const description = "One user's export (dry_run is always false: the command has no dry run).";
