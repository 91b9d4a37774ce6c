import { type Static, Type } from "@sinclair/typebox";
import { Obj, Realm } from "./shared.js";

export const CompletionScriptBody = Obj({ shell: Type.Union([Type.Literal("bash"), Type.Literal("zsh")]), script: Type.String() }, "completion <shell>");
export const CompletionRealmsBody = Obj({ realms: Type.Array(Realm, { description: "organizations with a non-empty string_id" }) }, "completion --realms");
export type CompletionScriptBody = Static<typeof CompletionScriptBody>;
export type CompletionRealmsBody = Static<typeof CompletionRealmsBody>;
export const bodies = [CompletionScriptBody, CompletionRealmsBody];
export const description = "A shell completion script, or (--realms) the organizations it completes.";
