// The --json contract's shared parts, defined once as JSON Schema with TypeBox; the TypeScript
// types the commands use are derived from them (Static<>). Only `help <command> --json-schema`
// (through the JSON files the build writes, scripts/json-schemas.mjs) and the tests load these
// modules: the commands import their types only (`import type`), so TypeBox never runs when a
// command does. The runtime half (envelope, builders) is src/cli/json-contract.ts.
import { type Static, type TObject, type TProperties, type TSchema, Type } from "@sinclair/typebox";
import { SCHEMA_VERSION, STATUSES, type StatusJson } from "../cli/json-contract.js";
import { ROLE_API_NAMES, ROLE_IDS } from "../zulip/roles.js";

/** RFC 3339 in UTC with "Z", fractional seconds optional (e.g. 2026-05-02T12:00:00.000Z). */
const TIMESTAMP_PATTERN = "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?Z$";
export const Timestamp = Type.String({ pattern: TIMESTAMP_PATTERN, description: "RFC 3339 timestamp in UTC, ending in Z" });
export const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
export const Id = Type.Integer({ minimum: 0 });
export const Count = Type.Integer({ minimum: 0 });
export const DurationMs = Type.Number({ minimum: 0, description: "a duration in milliseconds" });

/** An object with exactly these properties (no others). */
export const Obj = <P extends TProperties>(props: P, description?: string) =>
  Type.Object(props, { additionalProperties: false, ...(description ? { description } : {}) });

/** A shared object with command-specific keys after its own (every shared key keeps its meaning). */
export const Extend = <P extends TProperties, Q extends TProperties>(base: TObject<P>, props: Q, description?: string) =>
  Obj({ ...base.properties, ...props } as P & Q, description);

/** The one realm object. */
export const Realm = Obj(
  {
    id: Id,
    string_id: Type.String({ description: 'the subdomain; "" for the root domain\'s organization' }),
    name: Type.String(),
    url: Type.String({ description: "the organization's URL, e.g. https://zulip.example.com" }),
  },
  "an organization (realm)",
);
export type RealmJson = Static<typeof Realm>;

/** The one user object. */
export const User = Obj(
  {
    id: Id,
    email: Type.String({ description: "Zulip's `email` (the address shown to others; may be a user<id>@… placeholder)" }),
    delivery_email: Type.String({ description: "the address email is delivered to" }),
    full_name: Type.String(),
    realm_id: Id,
    role: Type.Union(
      ROLE_API_NAMES.map((r) => Type.Literal(r)),
      { description: "Zulip's role name" },
    ),
    role_id: Type.Union(
      ROLE_IDS.map((r) => Type.Literal(r)),
      { description: "zerver_userprofile.role" },
    ),
  },
  "a user",
);
export type UserJson = Static<typeof User>;

/** The one status vocabulary of per-item outcomes (src/cli/json-contract.ts STATUSES). */
const Status = Type.Union(
  (Object.keys(STATUSES) as StatusJson[]).map((s) => Type.Literal(s)),
  { description: "done | would_do | unchanged | skipped | warning | refused | failed | not_attempted" },
);
/** The outcome members every per-item result has. */
export const OutcomeFields = { ok: Type.Boolean(), status: Status, error: Nullable(Type.String()) };

/** The RealmAuditLog rows written, always an array (empty in a dry run or when nothing was written). */
export const AuditLogIds = Type.Array(Id, { description: "ids of the zerver_realmauditlog rows written" });

/** A change of one field, under the field's name. */
export const Change = <T extends TSchema>(t: T) => Obj({ old: t, new: t }, "a change: the value before and after");

/**
 * A service report: a follow-up after the commit (memcached `cache`, real-time `events`), always
 * {ok, warning, …the service's own members}. `ok: false` means the follow-up failed and `warning`
 * says what is stale; the committed change stands (exit 0). A report is null where the service
 * was not involved (a dry run).
 */
const ServiceReportFields = {
  ok: Type.Boolean({ description: "whether the service did what was asked" }),
  warning: Nullable(Type.String({ description: "what is stale when ok is false" })),
};
export const ServiceReport = <P extends TProperties>(props: P, description: string) => Obj({ ...ServiceReportFields, ...props }, description);
export const CacheReport = ServiceReport(
  {
    skipped: Type.Boolean({ description: "nothing needed doing (nothing changed, or mode none)" }),
    mode: Type.Union([Type.Literal("keys"), Type.Literal("all"), Type.Literal("none")]),
    server: Type.String(),
    prefixes: Count,
    keys_sent: Count,
    keys_deleted: Count,
    flushed_all: Type.Boolean(),
  },
  "the memcached report of a write command",
);
export const EventsReport = ServiceReport(
  {
    mode: Type.Union([Type.Literal("auto"), Type.Literal("rabbitmq"), Type.Literal("http"), Type.Literal("none")], { description: "--events" }),
    transport: Type.Union([Type.Literal("rabbitmq"), Type.Literal("http"), Type.Literal("rabbitmq+http"), Type.Literal("none")], {
      description: "how the events were delivered: RabbitMQ's notify_tornado queues, Tornado's HTTP endpoint, both (fell back part-way), or none",
    }),
    published: Count,
    jobs: Count,
    skipped: Type.Boolean({ description: "nothing was due (no change committed, or --events=none)" }),
    undelivered: Type.Array(Type.String(), { description: 'events ("realm_user/update") and jobs ("deferred_work: clear_push_device_tokens") not delivered' }),
  },
  "the real-time events report of a write command",
);

/** error_code values are snake_case names; the README lists them. */
const ErrorCodeSchema = Type.String({ pattern: "^[a-z][a-z0-9_]*$", description: "a stable machine-readable name of the error (README: error codes)" });

const EnvelopeFields = {
  ok: Type.Boolean({ description: "true exactly when exit_code is 0" }),
  exit_code: Type.Union([Type.Literal(0), Type.Literal(1), Type.Literal(2), Type.Literal(3)], { description: "the process's exit status" }),
  error: Nullable(Type.String({ description: "what went wrong; null on success" })),
  error_code: Nullable(ErrorCodeSchema),
  schema_version: Type.Literal(SCHEMA_VERSION),
};
export const DryRunField = { dry_run: Type.Boolean({ description: "true when nothing was written (a dry run)" }) };

/** The document of any failure before a command produced its own (refusal, usage, environment). */
const ErrorDocument = Obj(
  {
    ok: Type.Literal(false),
    exit_code: Type.Union([Type.Literal(1), Type.Literal(2), Type.Literal(3)]),
    error: Type.String(),
    error_code: ErrorCodeSchema,
    schema_version: Type.Literal(SCHEMA_VERSION),
  },
  "a failure before the command produced its document",
);

/**
 * A command's published schema: its document (envelope + one of its bodies), or the error
 * document of a failure before the command produced its own.
 */
export function commandSchema(name: string, bodies: TObject | TObject[], description: string) {
  const variants = [bodies].flat().map((body) => {
    for (const k of Object.keys(EnvelopeFields)) if (k in body.properties) throw new Error(`${name}: the body may not define ${k}`);
    return Obj({ ...EnvelopeFields, ...body.properties }, body.description ?? description);
  });
  return Type.Union([...variants, ErrorDocument], {
    $schema: "http://json-schema.org/draft-07/schema#",
    $id: `urn:zulip-manage:json-schema:${name}`,
    title: `zulip-manage ${name} --json`,
    description,
  });
}

export function errorSchema() {
  return Type.Union([ErrorDocument], {
    $schema: "http://json-schema.org/draft-07/schema#",
    $id: "urn:zulip-manage:json-schema:error",
    title: "zulip-manage --json error document (any command, also before a command is known)",
  });
}
