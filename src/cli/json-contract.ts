// The --json contract at run time: the envelope every document has, the one status vocabulary,
// and typed builders for the shared objects (realm, user, outcomes, timestamps). The schemas
// themselves, and the types derived from them, are in src/schemas/ (TypeBox); this module only
// imports their types, so a command never loads the schema library.
//
// Every document: {ok, exit_code, error, error_code, schema_version, …the command's body}.
// `ok` is true exactly when exit_code is 0, and then error and error_code are null. A command
// gives its body to ctx.out.jsonBody<Body>() (the Body type comes from its schema); the runner
// prints the document when the command ends, with the exit code it ended with, so exit_code is
// always the process's exit status. Failures before a body exist print the error document
// {ok: false, exit_code, error, error_code, schema_version}.
// This module imports nothing at run time (src/cli/main.ts uses it before any command loads); the
// builders of realm and user objects, which need settings and roles, are in json-objects.ts.
import type { ErrorCode } from "../lib/errors.js";

/** Bumped when a published document changes incompatibly (README: "Schema changes"). */
export const SCHEMA_VERSION = 1;

/** The one status vocabulary of per-item outcomes, with what each means (README lists it). */
export const STATUSES = {
  done: "carried out (email sent, change written, check passed)",
  would_do: "a dry run: would be carried out",
  unchanged: "nothing to do: already as asked",
  skipped: "deliberately not done (filtered out, or a prerequisite is missing)",
  warning: "done or checked, with a problem worth attention (the message is in error)",
  refused: "not attempted: refused (the message is in error); nothing changed",
  failed: "attempted and failed (the message is in error)",
  not_attempted: "not attempted because an earlier failure stopped the run",
} as const;
export type StatusJson = keyof typeof STATUSES;

/** Statuses whose `ok` is true. */
const OK_STATUSES: ReadonlySet<StatusJson> = new Set(["done", "would_do", "unchanged", "skipped", "warning"]);

export interface Envelope {
  ok: boolean;
  exit_code: 0 | 1 | 2 | 3;
  error: string | null;
  error_code: string | null;
  schema_version: typeof SCHEMA_VERSION;
}

export interface Failure {
  error: string;
  error_code: ErrorCode;
}

function exitCodeOf(code: number): Envelope["exit_code"] {
  return code === 0 || code === 2 || code === 3 ? code : 1;
}

/** The envelope for a command that ended with `exitCode`; a non-zero exit needs its failure. */
function envelope(exitCode: number, failure: Failure | null): Envelope {
  const exit_code = exitCodeOf(exitCode);
  if (exit_code === 0) return { ok: true, exit_code, error: null, error_code: null, schema_version: SCHEMA_VERSION };
  return {
    ok: false,
    exit_code,
    error: failure?.error ?? `the command ended with exit status ${exitCode}`,
    error_code: failure?.error_code ?? (exit_code === 2 ? "usage" : exit_code === 3 ? "environment" : "refused"),
    schema_version: SCHEMA_VERSION,
  };
}

/** A whole document: the envelope, then the body (the body cannot override the envelope). */
export function document(exitCode: number, failure: Failure | null, body: object | null): object {
  return { ...envelope(exitCode, failure), ...(body ?? {}), ...envelope(exitCode, failure) };
}

/** The JSON text of a document, as printed. */
export function documentText(doc: object): string {
  return JSON.stringify(doc, null, 2) + "\n";
}

/** Whether an argument list asks for --json (before a `--`), for errors before any parsing. */
export function argvWantsJson(argv: string[]): boolean {
  const end = argv.indexOf("--");
  return (end === -1 ? argv : argv.slice(0, end)).includes("--json");
}

/** The {ok, status, error} members of an outcome. */
export function outcome(status: StatusJson, error: string | null = null): { ok: boolean; status: StatusJson; error: string | null } {
  return { ok: OK_STATUSES.has(status), status, error };
}

/** A bulk email delivery's status (services/email.ts BulkStatus: sent, failed, not_sent) in the shared vocabulary. */
export function deliveryStatusJson(status: "sent" | "failed" | "not_sent"): StatusJson {
  return status === "sent" ? "done" : status === "failed" ? "failed" : "not_attempted";
}

/** A Date as RFC 3339 UTC with Z (millisecond precision). */
export function utcTimestamp(d: Date): string {
  return d.toISOString();
}

/**
 * A PostgreSQL timestamptz text (as PostgreSQL prints it in the UTC time zone, e.g.
 * "2025-01-02 03:04:05.123456+00") as RFC 3339 UTC with Z, keeping every fractional digit.
 */
export function utcTimestampFromPg(text: string): string {
  const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d+)?)(?:Z|([+-]\d{2})(?::?(\d{2}))?)$/.exec(text);
  if (m && (m[3] === undefined || (Number(m[3]) === 0 && Number(m[4] ?? 0) === 0))) return `${m[1]}T${m[2]}Z`;
  // Another offset (a session not in UTC): through Date (millisecond precision).
  const d = new Date(m ? `${m[1]}T${m[2]}${m[3]}:${m[4] ?? "00"}` : text);
  if (Number.isNaN(d.getTime())) throw new Error(`internal error: not a timestamp: ${text}`);
  return d.toISOString();
}

/** Milliseconds since a process.hrtime.bigint() reading, to 0.1 ms. */
export function msSince(start: bigint): number {
  return Math.round(Number(process.hrtime.bigint() - start) / 1e5) / 10;
}
