import { type Static, Type } from "@sinclair/typebox";
import { Count, DurationMs, Nullable, Obj, OutcomeFields } from "./shared.js";

export const DoctorCheck = Obj({
  id: Type.String({ description: "settings, zulip_conf, secrets, database, schema, memcached (required); redis, smtp, push" }),
  title: Type.String(),
  required: Type.Boolean(),
  ...OutcomeFields,
  summary: Type.String(),
  details: Type.Array(Type.String()),
  remedy: Nullable(Type.String()),
  duration_ms: DurationMs,
});
export const DoctorBody = Obj({ required_failed_count: Count, warning_count: Count, checks: Type.Array(DoctorCheck) });
export type DoctorBody = Static<typeof DoctorBody>;
export type DoctorCheck = Static<typeof DoctorCheck>;
export const bodies = [DoctorBody];
export const description = "The checks of everything zulip-manage depends on (status done, warning, failed or skipped).";
