// HTTP client for the Zulip Mobile Push Notification Service (the "push bouncer" at
// ZULIP_SERVICES_URL), speaking the same protocol as Zulip's zerver/lib/remote_server.py and
// register_server.py:
//
//  - postPublic(): register_server's unauthenticated calls (server/register, register/transfer,
//    register/verify_challenge): form-encoded body, credentials (if any) inside the body. Errors
//    are reported the way register_server reports them (network error, the
//    HOSTNAME_ALREADY_IN_USE_BOUNCER_ERROR box, `Error received from the push notification
//    service: "<msg>"`, or the raw HTTP error for non-JSON answers).
//  - send()/sendJson(): send_to_push_bouncer: HTTP Basic auth (zulip_org_id:zulip_org_key),
//    form-encoded or JSON body, and its error classes (retry-later on network errors and 5xx,
//    `Push notifications bouncer error: <msg>` for INVALID_ZULIP_SERVER, the bare msg otherwise).
//
// Every request carries `User-Agent: ZulipServer/<version>` and has a hard deadline (Zulip: 15 s,
// 90 s for server/analytics), so nothing can hang. Proxies: like Python requests (which Zulip
// uses), the standard https_proxy/http_proxy/all_proxy/no_proxy environment variables are
// honoured; otherwise an explicitly configured [http_proxy] host/port in zulip.conf is used.
// Only node:http/https/net/tls are used: no extra dependency.
//
// Every exchange is recorded (method, path, what was sent and what came back) with secrets
// replaced by a placeholder, for `--json` output.
import http from "node:http";
import https from "node:https";
import net from "node:net";
import tls from "node:tls";
import { CommandError } from "../lib/errors.js";

const DEFAULT_TIMEOUT_MS = 15_000;
const ANALYTICS_TIMEOUT_MS = 90_000;
export const HIDDEN = "(secret, not shown)";

/** Field names whose values are secrets: never printed, never put in --json output. */
const SECRET_FIELDS = new Set(["zulip_org_key", "new_org_key", "access_token", "verification_secret", "uuid_owner_secret", "api_key", "password"]);

// ---------------------------------------------------------------------------------------------
// Zulip version of the deployment (version.py + zulip-git-version), for User-Agent and uploads

export { readZulipVersion, type ZulipVersionInfo } from "../db/zulip-versions.js";
import type { ZulipVersionInfo } from "../db/zulip-versions.js";

function userAgent(version: ZulipVersionInfo): string {
  return `ZulipServer/${version.version ?? "unknown"}`;
}

// ---------------------------------------------------------------------------------------------
// Errors

/** `--registration-transfer` hint shown when the hostname belongs to another registration. */
function hostnameInUseBox(): string {
  return [
    "--------------------------------",
    "The hostname is already in use by another server. If you control the hostname ",
    "and want to transfer the registration to this server, you can run manage.py register_server ",
    "with the --registration-transfer flag.",
    "Note that this will invalidate old credentials if another server is still using them.",
    "",
    "For more information, see: ",
    "",
    "<https://zulip.com/doc-permalinks/registration-transfer>",
  ].join("\n");
}

/** The service refused a new registration because its hostname is registered already. */
export class HostnameInUseError extends CommandError {
  readonly box = hostnameInUseBox();
  constructor(readonly hostname: string | undefined) {
    // manage.py raises an empty CommandError after printing the box.
    super("");
  }
}

export type ServiceErrorKind =
  | "network" // could not connect, TLS failure, timeout (Zulip: PushNotificationBouncerRetryLaterError)
  | "server" // HTTP 5xx (PushNotificationBouncerServerError)
  | "invalid_server" // INVALID_ZULIP_SERVER (PushNotificationBouncerError)
  | "client" // other 4xx with a JSON error (JsonableError)
  | "unexpected_status" // 1xx/2xx other than 200, 3xx
  | "bad_response"; // an answer that is not the JSON expected

export class PushServiceError extends CommandError {
  constructor(
    message: string,
    readonly kind: ServiceErrorKind,
    readonly status?: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// Low-level HTTP with a deadline and optional proxy

export interface ProxyConfig {
  host: string;
  port: number;
  /** Where the setting came from, for messages. */
  origin: string;
}

export interface HttpResult {
  status: number;
  reason: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A transport-level failure, named like the Python requests exception Zulip would see. */
export class TransportError extends Error {
  constructor(
    readonly pyName: "ConnectionError" | "ConnectTimeout" | "ReadTimeout" | "SSLError" | "ProxyError",
    readonly detail: string,
  ) {
    super(`${pyName}: ${detail}`);
  }
}

function noProxyMatches(hostname: string, port: string, noProxy: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  for (let entry of noProxy.split(/[\s,]+/)) {
    entry = entry.trim().toLowerCase();
    if (!entry) continue;
    if (entry === "*") return true;
    let entryPort: string | undefined;
    const m = /^(.*):(\d+)$/.exec(entry);
    if (m && !entry.includes("]") && m[1]!.split(":").length === 1) {
      entry = m[1]!;
      entryPort = m[2];
    }
    if (entryPort && entryPort !== port) continue;
    entry = entry.replace(/^\*?\./, ".");
    if (host === entry.replace(/^\./, "") || (entry.startsWith(".") ? host.endsWith(entry) : host.endsWith("." + entry))) return true;
  }
  return false;
}

/**
 * The proxy for `url`: environment variables first (Python requests' trust_env behaviour), then
 * an explicit `[http_proxy]` in zulip.conf. `conf` returns zulip.conf values.
 */
export function proxyFor(url: URL, env: NodeJS.ProcessEnv, conf: (section: string, key: string) => string | undefined): ProxyConfig | null {
  const scheme = url.protocol.replace(":", "");
  const port = url.port || (scheme === "https" ? "443" : "80");
  const noProxy = env.no_proxy ?? env.NO_PROXY ?? "";
  const fromEnv = env[`${scheme}_proxy`] ?? env[`${scheme.toUpperCase()}_PROXY`] ?? env.all_proxy ?? env.ALL_PROXY ?? "";
  if (fromEnv) {
    if (noProxyMatches(url.hostname, port, noProxy)) return null;
    try {
      const p = new URL(fromEnv.includes("://") ? fromEnv : `http://${fromEnv}`);
      return {
        host: p.hostname.replace(/^\[|\]$/g, ""),
        port: Number(p.port || (p.protocol === "https:" ? 443 : 80)),
        origin: "the proxy environment variables",
      };
    } catch {
      return null;
    }
  }
  const host = conf("http_proxy", "host");
  const confPort = conf("http_proxy", "port");
  if (host && confPort) return { host, port: Number(confPort), origin: "zulip.conf [http_proxy]" };
  return null;
}

function classifySocketError(e: NodeJS.ErrnoException): TransportError {
  const code = e.code ?? "";
  if (/CERT|SSL|TLS|ERR_SSL|EPROTO|UNABLE_TO|SELF_SIGNED|HOSTNAME_MISMATCH|ERR_TLS/.test(code) || /certificate|SSL|TLS/i.test(e.message)) {
    return new TransportError("SSLError", e.message);
  }
  return new TransportError("ConnectionError", code ? `${code} (${e.message})` : e.message);
}

export interface HttpRequestOptions {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body?: Buffer;
  timeoutMs: number;
  proxy?: ProxyConfig | null;
  /** Smokescreen role header value (Zulip sends its session role). */
  proxyRole?: string;
}

/** Open a CONNECT tunnel through an HTTP proxy to host:port. */
function connectTunnel(proxy: ProxyConfig, host: string, port: string, role: string | undefined, signal: AbortSignal): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: proxy.host,
      port: proxy.port,
      method: "CONNECT",
      path: `${host.includes(":") ? `[${host}]` : host}:${port}`,
      headers: { Host: `${host}:${port}`, ...(role ? { "X-Smokescreen-Role": role } : {}) },
      signal,
    });
    req.once("connect", (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        reject(
          new TransportError(
            "ProxyError",
            `the proxy ${proxy.host}:${proxy.port} (${proxy.origin}) refused the tunnel: HTTP ${res.statusCode} ${res.statusMessage ?? ""}`.trim(),
          ),
        );
        return;
      }
      resolve(socket);
    });
    req.once("error", (e: NodeJS.ErrnoException) => {
      if (e.name === "AbortError") return; // the deadline handler reports it
      reject(new TransportError("ProxyError", `cannot reach the proxy ${proxy.host}:${proxy.port} (${proxy.origin}): ${e.code ?? e.message}`));
    });
    req.end();
  });
}

/** One HTTP request with a hard overall deadline; no redirects are followed. */
export function httpRequest(opts: HttpRequestOptions): Promise<HttpResult> {
  const { url } = opts;
  const isHttps = url.protocol === "https:";
  if (!isHttps && url.protocol !== "http:") {
    return Promise.reject(new TransportError("ConnectionError", `unsupported URL scheme in ${url.href}`));
  }
  const port = url.port || (isHttps ? "443" : "80");
  const hostname = url.hostname.replace(/^\[|\]$/g, "");
  const controller = new AbortController();
  let connected = false;

  return new Promise<HttpResult>((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | null, result?: HttpResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(result!);
    };
    const timer = setTimeout(() => {
      controller.abort();
      finish(new TransportError(connected ? "ReadTimeout" : "ConnectTimeout", `no ${connected ? "answer" : "connection"} within ${opts.timeoutMs / 1000} s`));
    }, opts.timeoutMs);

    const headers: Record<string, string> = { ...opts.headers, Host: url.host };
    if (opts.body) headers["Content-Length"] = String(opts.body.length);

    const onResponse = (res: http.IncomingMessage) => {
      connected = true;
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => finish(null, { status: res.statusCode ?? 0, reason: res.statusMessage ?? "", headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", (e: NodeJS.ErrnoException) => finish(classifySocketError(e)));
    };
    const onError = (e: NodeJS.ErrnoException) => {
      if (e.name === "AbortError" || controller.signal.aborted) return;
      finish(e instanceof TransportError ? e : classifySocketError(e));
    };

    const send = (req: http.ClientRequest) => {
      req.on("socket", (s) => {
        if (!s.connecting) connected = true;
        s.once("connect", () => (connected = true));
        s.once("secureConnect", () => (connected = true));
      });
      req.on("response", onResponse);
      req.on("error", onError);
      req.end(opts.body);
    };

    const proxy = opts.proxy;
    if (proxy && isHttps) {
      connectTunnel(proxy, hostname, port, opts.proxyRole, controller.signal).then(
        (socket) => {
          if (settled) {
            socket.destroy();
            return;
          }
          const req = https.request({
            method: opts.method,
            host: hostname,
            port,
            path: url.pathname + url.search,
            headers,
            signal: controller.signal,
            agent: false,
            createConnection: () => tls.connect({ socket, servername: net.isIP(hostname) ? undefined : hostname }),
          });
          send(req);
        },
        (e: Error) => finish(e),
      );
      return;
    }
    if (proxy) {
      // Plain http through a proxy: absolute-form request line.
      const req = http.request({
        method: opts.method,
        host: proxy.host,
        port: proxy.port,
        path: url.href,
        headers: { ...headers, ...(opts.proxyRole ? { "X-Smokescreen-Role": opts.proxyRole } : {}) },
        signal: controller.signal,
        agent: false,
      });
      send(req);
      return;
    }
    const mod = isHttps ? https : http;
    const req = mod.request({
      method: opts.method,
      host: hostname,
      port,
      path: url.pathname + url.search,
      headers,
      signal: controller.signal,
      agent: false,
    });
    send(req);
  });
}

// ---------------------------------------------------------------------------------------------
// Redaction for --json

function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = SECRET_FIELDS.has(k) && v !== null && v !== undefined ? HIDDEN : redact(v);
    return out;
  }
  return value;
}

/** Python requests' HTTPError text for a 4xx/5xx answer. */
function httpErrorText(res: HttpResult, url: string): string {
  const side = res.status >= 500 ? "Server Error" : "Client Error";
  return `${res.status} ${side}: ${res.reason} for url: ${url}`;
}

function parseJson(res: HttpResult): any {
  return JSON.parse(res.body.toString("utf8"));
}

function describeBody(res: HttpResult): string {
  const type = String(res.headers["content-type"] ?? "no content type").split(";")[0];
  return `HTTP ${res.status}, ${type}`;
}

// ---------------------------------------------------------------------------------------------
// The client

export interface PushServiceOptions {
  /** ZULIP_SERVICES_URL. */
  servicesUrl: string;
  orgId: string;
  orgKey: string;
  version: ZulipVersionInfo;
  /** Overrides Zulip's per-request timeouts (milliseconds). */
  timeoutMs?: number;
  proxy?: (url: URL) => ProxyConfig | null;
}

export interface ServiceExchange {
  method: string;
  path: string;
  /** What was sent (secrets hidden). Large lists may be summarised by the caller. */
  sent: unknown;
  status?: number;
  /** What the service answered (secrets hidden); absent on transport errors. */
  answer?: unknown;
  error?: string;
}

export type FormFields = Record<string, string | number | boolean | null | undefined>;

function encodeForm(fields: FormFields): Buffer {
  const p = new URLSearchParams();
  // requests drops None values from a data dict.
  for (const [k, v] of Object.entries(fields)) if (v !== null && v !== undefined) p.append(k, String(v));
  return Buffer.from(p.toString(), "utf8");
}

export class PushServiceClient {
  readonly exchanges: ServiceExchange[] = [];
  private orgId: string;
  private orgKey: string;

  constructor(private readonly opts: PushServiceOptions) {
    this.orgId = opts.orgId;
    this.orgKey = opts.orgKey;
  }

  get servicesUrl(): string {
    return this.opts.servicesUrl;
  }

  /** Use new credentials for the authenticated calls that follow (after a transfer or rotation). */
  setCredentials(orgId: string, orgKey: string): void {
    this.orgId = orgId;
    this.orgKey = orgKey;
  }

  private record(x: ServiceExchange): ServiceExchange {
    this.exchanges.push(x);
    return x;
  }

  private async exchange(
    method: string,
    url: URL,
    headers: Record<string, string>,
    body: Buffer | undefined,
    timeoutMs: number,
    log: ServiceExchange,
  ): Promise<HttpResult> {
    try {
      const res = await httpRequest({
        method,
        url,
        headers: { "User-Agent": userAgent(this.opts.version), Accept: "*/*", ...headers },
        body,
        timeoutMs: this.opts.timeoutMs ?? timeoutMs,
        proxy: this.opts.proxy?.(url) ?? null,
        proxyRole: "push_bouncer",
      });
      log.status = res.status;
      try {
        log.answer = redact(parseJson(res));
      } catch {
        log.answer = { non_json_body: describeBody(res) };
      }
      return res;
    } catch (e: any) {
      log.error = e instanceof TransportError ? e.message : String(e?.message ?? e);
      throw e;
    }
  }

  /**
   * register_server's `_request_push_notification_bouncer_url`: POST `ZULIP_SERVICES_URL + path`
   * with a form body, no authentication. Returns the decoded JSON answer.
   */
  async postPublic(urlPath: string, fields: FormFields): Promise<any> {
    const base = this.opts.servicesUrl.replace(/\/+$/, "");
    let url: URL;
    try {
      url = new URL(base + urlPath);
    } catch {
      throw new CommandError(`ZULIP_SERVICES_URL (${this.opts.servicesUrl}) is not a valid URL.`);
    }
    const log = this.record({ method: "POST", path: url.pathname, sent: redact(dropNulls(fields)) });
    let res: HttpResult;
    try {
      res = await this.exchange("POST", url, { "Content-Type": "application/x-www-form-urlencoded" }, encodeForm(fields), DEFAULT_TIMEOUT_MS, log);
    } catch (e: any) {
      const detail = e instanceof TransportError ? `\n(${e.message})` : "";
      throw new PushServiceError(`Network error connecting to push notifications service (${this.opts.servicesUrl})${detail}`, "network");
    }
    if (res.status >= 400) {
      let content: any;
      try {
        content = parseJson(res);
      } catch {
        throw new PushServiceError(httpErrorText(res, url.href), res.status >= 500 ? "server" : "client", res.status);
      }
      if (content && content.code === "HOSTNAME_ALREADY_IN_USE_BOUNCER_ERROR") {
        throw new HostnameInUseError(content.hostname);
      }
      const msg = content && typeof content === "object" && "msg" in content ? String(content.msg) : JSON.stringify(content);
      throw new PushServiceError(
        `Error received from the push notification service: "${msg}"`,
        res.status >= 500 ? "server" : "client",
        res.status,
        content?.code,
      );
    }
    if (res.status >= 300) {
      throw new PushServiceError(
        `The push notification service answered ${url.href} with a redirect (HTTP ${res.status}${res.headers.location ? ` to ${res.headers.location}` : ""}); check ZULIP_SERVICES_URL in /etc/zulip/settings.py.`,
        "unexpected_status",
        res.status,
      );
    }
    try {
      return parseJson(res);
    } catch {
      throw new PushServiceError(
        `The push notification service's answer to ${url.href} is not JSON (${describeBody(res)}); check ZULIP_SERVICES_URL in /etc/zulip/settings.py.`,
        "bad_response",
        res.status,
      );
    }
  }

  /**
   * send_to_push_bouncer: `urljoin(ZULIP_SERVICES_URL, "/api/v1/remotes/" + endpoint)` with HTTP
   * Basic auth. `body` is a form (object of strings) or, with `json: true`, a JSON document.
   */
  async send(
    method: "GET" | "POST",
    endpoint: string,
    body: FormFields | unknown,
    opts: { json?: boolean; timeoutMs?: number; summary?: unknown } = {},
  ): Promise<any> {
    let url: URL;
    try {
      url = new URL("/api/v1/remotes/" + endpoint, this.opts.servicesUrl);
    } catch {
      throw new CommandError(`ZULIP_SERVICES_URL (${this.opts.servicesUrl}) is not a valid URL.`);
    }
    const headers: Record<string, string> = {
      Authorization: "Basic " + Buffer.from(`${this.orgId}:${this.orgKey}`, "utf8").toString("base64"),
    };
    let payload: Buffer | undefined;
    if (opts.json) {
      headers["Content-Type"] = "application/json";
      payload = Buffer.from(JSON.stringify(body), "utf8");
    } else {
      const form = encodeForm(body as FormFields);
      if (method === "GET") {
        // requests puts `data` in the body even for GET; an empty dict means no body at all.
        if (form.length) {
          payload = form;
          headers["Content-Type"] = "application/x-www-form-urlencoded";
        }
      } else {
        payload = form;
        headers["Content-Type"] = "application/x-www-form-urlencoded";
      }
    }
    const log = this.record({
      method,
      path: url.pathname,
      sent: opts.summary !== undefined ? opts.summary : redact(opts.json ? body : dropNulls(body as FormFields)),
    });
    const timeout = opts.timeoutMs ?? (endpoint === "server/analytics" ? ANALYTICS_TIMEOUT_MS : DEFAULT_TIMEOUT_MS);
    let res: HttpResult;
    try {
      res = await this.exchange(method, url, headers, payload, timeout, log);
    } catch (e: any) {
      const name = e instanceof TransportError ? e.pyName : "ConnectionError";
      const detail = e instanceof TransportError ? e.detail : String(e?.message ?? e);
      throw new PushServiceError(`${name} while trying to connect to push notification bouncer\n(${url.href}: ${detail})`, "network");
    }
    if (res.status >= 500) {
      throw new PushServiceError(`Received ${res.status} from push notification bouncer`, "server", res.status);
    }
    if (res.status >= 400) {
      let content: any;
      try {
        content = parseJson(res);
      } catch {
        throw new PushServiceError(
          `The push notification service answered ${url.href} with HTTP ${res.status} and a body that is not JSON (${describeBody(res)}).`,
          "bad_response",
          res.status,
        );
      }
      const msg = content && typeof content === "object" && "msg" in content ? String(content.msg) : JSON.stringify(content);
      if (content?.code === "INVALID_ZULIP_SERVER") {
        throw new PushServiceError(`Push notifications bouncer error: ${msg}`, "invalid_server", res.status, content.code);
      }
      throw new PushServiceError(msg, "client", res.status, content?.code);
    }
    if (res.status !== 200) {
      throw new PushServiceError(`Push notification bouncer returned unexpected status code ${res.status}`, "unexpected_status", res.status);
    }
    try {
      return parseJson(res);
    } catch {
      throw new PushServiceError(`The push notification service's answer to ${url.href} is not JSON (${describeBody(res)}).`, "bad_response", res.status);
    }
  }

  /** send_json_to_push_bouncer. */
  sendJson(method: "GET" | "POST", endpoint: string, body: unknown): Promise<any> {
    return this.send(method, endpoint, body, { json: true });
  }
}

function dropNulls(fields: FormFields): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields ?? {})) if (v !== null && v !== undefined) out[k] = v;
  return out;
}
