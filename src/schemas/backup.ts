import { type Static, Type } from "@sinclair/typebox";
import { Count, DurationMs, Nullable, Obj, OutcomeFields } from "./shared.js";

export const BackupBody = Obj({
  path: Type.String({ description: "the tarball written" }),
  size_bytes: Count,
  duration_ms: DurationMs,
  zulip_version: Nullable(Type.String()),
  os_version: Type.String(),
  postgres_version: Type.Integer({ description: "server_version_num" }),
  database: Obj({
    included: Type.Boolean(),
    pg_dump: Nullable(Type.String()),
    pg_dump_version: Nullable(Type.String()),
    jobs: Count,
    size_bytes: Count,
  }),
  settings: Obj({ dir: Type.String() }),
  uploads: Obj({ included: Type.Boolean(), dir: Nullable(Type.String()), reason: Nullable(Type.String({ description: "why not included" })) }),
  older_backups: Type.Array(Obj({ path: Type.String(), ...OutcomeFields }), {
    description: "--keep: older backups removed (done) or that could not be removed (failed, a warning; the backup stands)",
  }),
  members: Type.Array(Type.String(), { description: "the tarball's members" }),
});
export type BackupBody = Static<typeof BackupBody>;
export const bodies = [BackupBody];
export const description = "A backup tarball written.";
