import { type Static, Type } from "@sinclair/typebox";
import { DryRunField, Obj, Timestamp } from "./shared.js";

export const GenerateRealmCreationLinkBody = Obj({ ...DryRunField, url: Type.String(), key: Type.String(), expires_at: Timestamp });
export type GenerateRealmCreationLinkBody = Static<typeof GenerateRealmCreationLinkBody>;
export const bodies = [GenerateRealmCreationLinkBody];
export const description = "A single-use organization creation link (dry_run is always false: the command has no dry run).";
