// Real-time events and queue-worker jobs, sent after the commit as Zulip's own actions send
// them (zerver/tornado/django_api.py send_event_on_commit, zerver/lib/queue.py
// queue_event_on_commit).
//
// An action adds, inside its transaction, each event Zulip's do_* function would send
// (`events.send(realm, event, users)`) and each job it would queue (`events.enqueue(queue,
// body)`), in Zulip's order. They are only staged: `committed()` (after COMMIT) makes them
// due, `discard()` (after ROLLBACK) drops them — `events.tx(db, fn)` does both around db.tx.
// `commit()` then delivers what is due:
//
//  * each event as {"event": …, "users": […]} to the Tornado that serves the realm: users split
//    by port (user_id % len(ports), see sharding.ts), one message per port, on the queue
//    notify_tornado (notify_tornado_port_<port> on a sharded server), through RabbitMQ
//    (rabbitmq.ts); jobs as their JSON body on their queue (deferred_work, …);
//  * when RabbitMQ cannot be used (--events=auto), events over Tornado's HTTP door
//    (tornado.ts) instead — jobs have no such door;
//  * never throwing: what cannot be delivered is reported in one warning that says what open
//    browsers and apps miss until they reload (and which jobs did not run), and the command
//    still exits 0, since its change is committed.
//
// The RabbitMQ connection is opened by prepare() while the transaction runs (like
// CacheInvalidation.prepare for memcached), so commit() only publishes.
//
// Events carry no "id" (Tornado numbers them per client queue). Internal flags that a
// Tornado strips before delivery (inaccessible_user, for_unarchiving, …) are the action's
// business: it adds them only for releases whose Tornado knows them (see featureLevel()).
import type { Config } from "../config/config.js";
import type { Db, Queryable } from "../db/db.js";
import type { Paths } from "../config/paths.js";
import { RabbitConnection, type RabbitError, rabbitTarget } from "./rabbitmq.js";
import { hostOfRealm, notifyQueueName, readTornadoSharding, realmTornadoPorts, type TornadoSharding, userTornadoPort } from "../config/sharding.js";
import { apiFeatureLevel } from "../db/zulip-versions.js";

export type EventsMode = "auto" | "rabbitmq" | "http" | "none";
export const EVENTS_MODES: EventsMode[] = ["auto", "rabbitmq", "http", "none"];

/** Whom an event goes to: user ids, or (message events) per-user dicts with an "id". */
export type Recipient = number | ({ id: number } & Record<string, unknown>);

/** What the sharding needs of a realm. */
export interface EventRealm {
  id: number;
  string_id: string;
}

export type ZulipEvent = { type: string } & Record<string, unknown>;

interface StagedEvent {
  kind: "event";
  realm: EventRealm;
  event: ZulipEvent;
  users: Recipient[];
  what: string;
}

interface StagedJob {
  kind: "job";
  queue: string;
  body: Record<string, unknown>;
  what: string;
}

type Staged = StagedEvent | StagedJob;

/** One AMQP message / HTTP post of a staged item. */
interface Part {
  queue: string;
  port: number | null;
  body: unknown;
  done: boolean;
}

export interface EventReport {
  mode: EventsMode;
  /** "rabbitmq", "http", "rabbitmq+http" (fell back part-way), "none" (nothing sent). */
  transport: "rabbitmq" | "http" | "rabbitmq+http" | "none";
  /** Events delivered (each counted once, however many Tornado ports it went to). */
  published: number;
  /** Queue-worker jobs queued. */
  jobs: number;
  /** Everything due was delivered. */
  ok: boolean;
  /** Nothing was due (no change committed, a dry run, or --events=none). */
  skipped: boolean;
  /** Events ("realm_user/update") and jobs ("deferred_work: clear_push_device_tokens") not delivered. */
  undelivered: string[];
  warning: string | null;
}

/** An EventReport as the "events" member of the --json documents. */
export function eventsReportJson(r: EventReport | null) {
  return (
    r && {
      mode: r.mode,
      transport: r.transport,
      published: r.published,
      jobs: r.jobs,
      ok: r.ok,
      skipped: r.skipped,
      undelivered: r.undelivered,
      warning: r.warning,
    }
  );
}

/** The delivery reports of several EventDelivery.commit() calls (a run that delivers batch after batch) as one. */
export function mergeEventReports(reports: EventReport[]): EventReport {
  const sent = reports.filter((r) => !r.skipped);
  const rabbit = sent.some((r) => r.transport === "rabbitmq" || r.transport === "rabbitmq+http");
  const http = sent.some((r) => r.transport === "http" || r.transport === "rabbitmq+http");
  const warnings = reports.map((r) => r.warning).filter((w): w is string => w !== null);
  return {
    mode: reports[0]!.mode,
    transport: rabbit && http ? "rabbitmq+http" : rabbit ? "rabbitmq" : http ? "http" : "none",
    published: reports.reduce((n, r) => n + r.published, 0),
    jobs: reports.reduce((n, r) => n + r.jobs, 0),
    ok: reports.every((r) => r.ok),
    skipped: reports.every((r) => r.skipped),
    undelivered: reports.flatMap((r) => r.undelivered),
    warning: warnings.length ? warnings.join("\n") : null,
  };
}

/** What EventDelivery needs from the command's Context. */
export interface EventContext {
  config(): Config;
  readonly paths: Paths;
  readonly out: { warn(text: string): void };
}

export interface EventDeliveryOptions {
  /** Connect timeouts (default 2000 ms). */
  timeoutMs?: number;
  /** The command's events follow a database change (the default); false: jobs of a command that writes nothing. */
  afterDatabaseChange?: boolean;
  warn?: (text: string) => void;
}

function label(item: Staged): string {
  if (item.kind === "job") return `${item.queue}: ${String(item.body.type ?? "job")}`;
  return item.event.op === undefined ? item.event.type : `${item.event.type}/${String(item.event.op)}`;
}

export class EventDelivery {
  readonly mode: EventsMode;
  private pending: Staged[] = [];
  private due: Staged[] = [];
  private early: Promise<RabbitConnection> | null = null;
  private shardingCache?: TornadoSharding;

  constructor(
    private readonly ctx: EventContext,
    mode: EventsMode | string | undefined = "auto",
    private readonly opts: EventDeliveryOptions = {},
  ) {
    if (mode !== undefined && !EVENTS_MODES.includes(mode as EventsMode)) throw new Error(`unknown --events transport '${mode}'`);
    this.mode = (mode ?? "auto") as EventsMode;
  }

  /** Whether anything will be sent at all (not --events=none). */
  get enabled(): boolean {
    return this.mode !== "none";
  }

  /**
   * Start connecting to RabbitMQ while the database work goes on. Call it when a change is
   * about to be written; harmless to call more than once, or not at all. Failures are
   * reported by commit().
   */
  prepare(): void {
    if (this.early || (this.mode !== "auto" && this.mode !== "rabbitmq")) return;
    let target;
    try {
      target = rabbitTarget(this.ctx.config());
    } catch {
      return;
    }
    const p = RabbitConnection.open(target, { timeoutMs: this.opts.timeoutMs }).then((c) => {
      // A command that ends without committing anything is not kept alive by it.
      c.unref();
      return c;
    });
    p.catch(() => undefined);
    this.early = p;
  }

  /** send_event_on_commit(realm, event, users): staged until committed(). */
  send(realm: EventRealm, event: ZulipEvent, users: Iterable<Recipient>, what?: string): void {
    if (!this.enabled) return;
    this.pending.push({ kind: "event", realm, event, users: [...users], what: what ?? "" });
  }

  /** queue_event_on_commit(queue, body): a job for Zulip's queue workers, staged until committed(). */
  enqueue(queue: string, body: Record<string, unknown>, what?: string): void {
    if (!this.enabled) return;
    this.pending.push({ kind: "job", queue, body, what: what ?? "" });
  }

  /** Call after COMMIT: what was staged becomes due. */
  committed(): void {
    this.due.push(...this.pending);
    this.pending = [];
  }

  /** Call after ROLLBACK: what was staged is dropped. */
  discard(): void {
    this.pending = [];
  }

  /** db.tx(fn) with committed() after COMMIT and discard() after ROLLBACK. */
  async tx<T>(db: Db, fn: (q: Queryable) => Promise<T>): Promise<T> {
    this.prepare();
    try {
      const r = await db.tx(fn);
      this.committed();
      return r;
    } catch (e) {
      this.discard();
      throw e;
    }
  }

  /**
   * Run a command's work; when it fails after a change was committed, deliver that change's
   * events (and jobs) before passing the error on, as CacheInvalidation.guard does for the
   * cache (nest it inside: events.guard(() => inval.guard(work)), so the cache goes first).
   */
  async guard<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (e) {
      if (this.due.length) await this.commit();
      throw e;
    }
  }

  /**
   * maybe_enqueue_audit_log_upload(realm) (zerver/lib/remote_server.py): when the server uses
   * the push notification service (uses_notification_bouncer(): ZULIP_SERVICE_PUSH_NOTIFICATIONS
   * is True), a deferred_work job that uploads the realm's new audit log rows to it.
   */
  auditLogUpload(realm: EventRealm): void {
    let uses = false;
    try {
      uses = this.ctx.config().settings.get("ZULIP_SERVICE_PUSH_NOTIFICATIONS") === true;
    } catch {
      /* unreadable settings: the commands that need them have said so already */
    }
    if (uses) {
      this.enqueue(
        "deferred_work",
        { type: "push_bouncer_update_for_realm", realm_id: realm.id },
        "the upload of the audit log to the push notification service",
      );
    }
  }

  /** Events and jobs due so far (tests, dry-run descriptions). */
  get staged(): ReadonlyArray<Readonly<Staged>> {
    return this.due;
  }

  private sharding(): TornadoSharding {
    this.shardingCache ??= readTornadoSharding(this.ctx.config());
    return this.shardingCache;
  }

  /**
   * The messages of one staged item: per Tornado port for events, one for a job. As send_event
   * (zerver/tornado/django_api.py) maps them: with one port, {port: list(users)} — published even
   * when the list is empty; with several, only the ports some recipient maps to (none for an
   * empty list).
   */
  private parts(item: Staged): Part[] {
    if (item.kind === "job") return [{ queue: item.queue, port: null, body: item.body, done: false }];
    const sharding = this.sharding();
    const ports = realmTornadoPorts(sharding, hostOfRealm(this.ctx.config(), item.realm.string_id));
    const byPort = new Map<number, Recipient[]>();
    if (ports.length === 1) byPort.set(ports[0], item.users);
    else {
      for (const u of item.users) {
        const port = userTornadoPort(ports, typeof u === "number" ? u : u.id);
        if (!byPort.has(port)) byPort.set(port, []);
        byPort.get(port)!.push(u);
      }
    }
    return [...byPort].map(([port, users]) => ({ queue: notifyQueueName(sharding, port), port, body: { event: item.event, users }, done: false }));
  }

  private warn(text: string): void {
    (this.opts.warn ?? ((t: string) => this.ctx.out.warn(t)))(text);
  }

  private async closeEarly(): Promise<void> {
    const early = this.early;
    this.early = null;
    if (early) await early.then((c) => c.close()).catch(() => undefined);
  }

  private report(partial: Partial<EventReport>): EventReport {
    return { mode: this.mode, transport: "none", published: 0, jobs: 0, ok: true, skipped: false, undelivered: [], warning: null, ...partial };
  }

  /** Deliver everything due (after COMMIT, after the cache update). Never throws. */
  async commit(): Promise<EventReport> {
    const items = this.due;
    this.due = [];
    this.pending = [];
    if (this.mode === "none" || items.length === 0) {
      await this.closeEarly();
      return this.report({ skipped: true });
    }
    // Connections opened in the background do not keep the process alive; this does meanwhile.
    const hold = setInterval(() => undefined, 60_000);
    try {
      return await this.deliver(items);
    } catch (e: any) {
      // Not expected (every step catches its own failures); never let it fail the command.
      const warning = `Warning: the database change is committed, but its real-time events could not be sent: ${e?.message ?? e}.`;
      this.warn(warning);
      return this.report({ ok: false, undelivered: items.map(label), warning });
    } finally {
      clearInterval(hold);
      await this.closeEarly();
    }
  }

  private async deliver(items: Staged[]): Promise<EventReport> {
    let sharding: TornadoSharding | null = null;
    let shardingProblem: string | null = null;
    try {
      sharding = this.sharding();
    } catch (e: any) {
      shardingProblem = e?.message ?? String(e);
    }
    const plans = items.map((item) => ({ item, parts: sharding ? this.parts(item) : [] }));
    let rabbitFailure: string | null = null;
    let httpFailure: string | null = null;
    let usedRabbit = false;
    let usedHttp = false;

    if (shardingProblem === null && (this.mode === "auto" || this.mode === "rabbitmq")) {
      let conn: RabbitConnection | null = null;
      try {
        conn = this.early ? await this.early : await RabbitConnection.open(rabbitTarget(this.ctx.config()), { timeoutMs: this.opts.timeoutMs });
        conn.ref();
      } catch (e: any) {
        rabbitFailure = (e as RabbitError)?.message ?? String(e);
      }
      if (conn) {
        // Every queue declared first (in order), then all messages published back to back, in
        // Zulip's order, and their confirms awaited together (one round trip, not one each).
        try {
          for (const plan of plans) for (const part of plan.parts) await conn.declare(part.queue);
          const pending = plans.flatMap((plan) =>
            plan.parts.map((part) =>
              conn!.publishJson(part.queue, part.body).then(() => {
                part.done = true;
                usedRabbit = true;
              }),
            ),
          );
          const settled = await Promise.allSettled(pending);
          const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
          if (failed) rabbitFailure = failed.reason?.message ?? String(failed.reason);
        } catch (e: any) {
          rabbitFailure = e?.message ?? String(e);
        } finally {
          if (!this.early) await conn.close();
        }
      }
    }

    if (shardingProblem === null && (this.mode === "http" || (this.mode === "auto" && rabbitFailure !== null))) {
      let secret: string | null = null;
      try {
        secret = this.ctx.config().settings.get("SHARED_SECRET");
      } catch (e: any) {
        httpFailure = `the shared_secret secret cannot be read: ${e?.message ?? e}`;
      }
      // node:http is loaded only when this fallback is taken.
      const { postNotifyTornado } = secret !== null ? await import("./tornado.js") : { postNotifyTornado: null };
      if (secret !== null && postNotifyTornado) {
        outer: for (const plan of plans) {
          if (plan.item.kind !== "event") continue;
          for (const part of plan.parts) {
            if (part.done) continue;
            try {
              await postNotifyTornado(part.port!, part.body, secret, this.opts.timeoutMs);
              part.done = true;
              usedHttp = true;
            } catch (e: any) {
              httpFailure = e?.message ?? String(e);
              break outer;
            }
          }
        }
      }
    }

    // An event with no recipients on a sharded server has no part: Zulip's send_event publishes
    // nothing for it (its port map is empty), so it is neither delivered nor missed.
    const nothingToSend = (p: (typeof plans)[number]) => sharding !== null && p.item.kind === "event" && p.parts.length === 0;
    const delivered = plans.filter((p) => p.parts.length > 0 && p.parts.every((x) => x.done));
    const missed = plans.filter((p) => !nothingToSend(p) && !(p.parts.length > 0 && p.parts.every((x) => x.done)));
    const published = delivered.filter((p) => p.item.kind === "event").length;
    const jobs = delivered.filter((p) => p.item.kind === "job").length;
    const transport = usedRabbit && usedHttp ? "rabbitmq+http" : usedRabbit ? "rabbitmq" : usedHttp ? "http" : "none";
    const reasons: string[] = [];
    if (shardingProblem) reasons.push(`the Tornado sharding configuration cannot be read: ${shardingProblem}`);
    if (rabbitFailure) reasons.push(`RabbitMQ: ${rabbitFailure}`);
    if (httpFailure) reasons.push(`Tornado: ${httpFailure}`);
    if (this.mode === "http" && plans.some((p) => p.item.kind === "job")) reasons.push("queue-worker jobs can only go through RabbitMQ (--events=http)");

    if (missed.length === 0) {
      // Everything arrived; say so if it took the fallback.
      const warning = rabbitFailure ? `Warning: RabbitMQ could not be used (${rabbitFailure}); the real-time events went to Tornado over HTTP instead.` : null;
      if (warning) this.warn(warning);
      return this.report({ transport, published, jobs, warning });
    }
    const missedEvents = missed.filter((p) => p.item.kind === "event");
    const missedJobs = missed.filter((p) => p.item.kind === "job");
    const what = `${describeCount(missedEvents.length, missedJobs.length)} could not be delivered (${reasons.join("; ") || "unknown reason"}).`;
    const lines = [this.opts.afterDatabaseChange === false ? `Warning: ${what}` : `Warning: the database change is committed, but ${what}`];
    if (missedEvents.length) {
      lines.push(`Open browsers and apps will not show ${whatList(missedEvents.map((p) => p.item))} until they reload.`);
    }
    if (missedJobs.length) {
      lines.push(`Zulip's queue workers were not asked to do: ${whatList(missedJobs.map((p) => p.item))}.`);
    }
    const warning = lines.join("\n");
    this.warn(warning);
    return this.report({ transport, published, jobs, ok: false, undelivered: missed.map((p) => label(p.item)), warning });
  }
}

function describeCount(events: number, jobs: number): string {
  const parts: string[] = [];
  if (events) parts.push(`${events} real-time event${events === 1 ? "" : "s"}`);
  if (jobs) parts.push(`${jobs} queue-worker job${jobs === 1 ? "" : "s"}`);
  return parts.join(" and ");
}

function whatList(items: Staged[]): string {
  const whats = [...new Set(items.map((i) => i.what || label(i)))];
  return whats.length <= 4 ? whats.join("; ") : `${whats.slice(0, 4).join("; ")}; and ${whats.length - 4} more`;
}

// ---------------------------------------------------------------------------------------------
// Release

/**
 * The server's API feature level (version.py's API_FEATURE_LEVEL, else the migrations'
 * bound), for the event differences between releases. Cached per database connection.
 */
const levelCache = new WeakMap<object, number>();
export function featureLevel(paths: Paths, db: Db | Queryable): number {
  const cached = levelCache.get(db);
  if (cached !== undefined) return cached;
  const n = (db as { zerverMigration?: number | null }).zerverMigration ?? null;
  const level = apiFeatureLevel(paths.deployDir, n).level;
  levelCache.set(db, level);
  return level;
}

/** Feature levels at which the events of the actions we implement changed (events.md §5). */
export const FL = {
  /** 11.0: peer_remove on user deactivation. */
  DEACTIVATION_PEER_REMOVE: 377,
  /** 11.0: archive/unarchive via is_archived updates and for_(un)archiving create/delete. */
  ARCHIVED_CHANNEL_EVENTS: 378,
  /** 12.0: deactivation peer_remove includes archived channels. */
  DEACTIVATION_PEER_REMOVE_ARCHIVED: 428,
  /** 12.0: messages deleted by the retention policy send delete_message events (zulip/zulip PR #35848). */
  RETENTION_DELETE_EVENTS: 452,
  /** 12.0: is_imported_stub in realm_user person objects. */
  IMPORTED_STUB: 433,
  /** 12.0: realm_bot update events no longer sent (api key, avatar, email, name, owner, is_active). */
  NO_REALM_BOT_UPDATES: 474,
} as const;

// ---------------------------------------------------------------------------------------------
// Where an action's events go (the builders are in src/zulip/events; who receives them, src/zulip/audiences.ts)

/** Where an action sends its events: the command's EventDelivery and the realm. */
export interface Notify {
  events: EventDelivery;
  realm: EventRealm;
  /** Text for the warning when delivery fails ("the new role of x@example.com"). */
  what?: string;
  /** The server's API feature level (featureLevel()), for actions whose events differ by release. */
  featureLevel?: number;
}
