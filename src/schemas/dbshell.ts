import { type Static, Type } from "@sinclair/typebox";
import { Obj } from "./shared.js";

export const DbshellBody = Obj({
  command: Type.Array(Type.String(), { description: "psql and its arguments" }),
  connection: Type.String(),
  env: Type.Record(Type.String(), Type.String(), { description: 'libpq\'s environment for psql; PGPASSWORD is shown as "(secret, not shown)"' }),
});
export type DbshellBody = Static<typeof DbshellBody>;
export const bodies = [DbshellBody];
export const description = "What dbshell would run (with --json, psql is not started).";
