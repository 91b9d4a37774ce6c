// Test support for the email commands: a real SMTP server (smtp-server) inside the test process
// that records what it receives, a small RFC 5322/MIME reader for those messages, a Zulip
// configuration directory pointing at it, and a way to run the built CLI.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { SMTPServer } from "smtp-server";
import { rabbitSettings, sharedRabbit } from "./helpers/rabbitmq.js";
import { requireTool } from "./helpers/tools.js";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BIN = path.join(REPO, "bin", "zulip-manage");

// ---------------------------------------------------------------------------------------------
// SMTP sink

export interface ReceivedMail {
  envelopeFrom: string;
  envelopeTo: string[];
  raw: string;
  parsed: ParsedMail;
  auth?: { username: string; password: string };
  /** The session was encrypted (implicit TLS or STARTTLS). */
  secure: boolean;
}

export interface SmtpSink {
  port: number;
  messages: ReceivedMail[];
  /** Addresses whose RCPT TO gets a 550. */
  reject: Set<string>;
  /** SMTP connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

export interface SinkOptions {
  auth?: { user: string; pass: string };
  /** Offer STARTTLS (or, with implicitTls, speak TLS from the start) with this key and certificate. */
  tls?: { key: string; cert: string; implicitTls?: boolean };
}

export async function startSmtpSink(opts: SinkOptions = {}): Promise<SmtpSink> {
  const messages: ReceivedMail[] = [];
  const reject = new Set<string>();
  let connections = 0;
  const server = new SMTPServer({
    logger: false,
    secure: Boolean(opts.tls?.implicitTls),
    ...(opts.tls ? { key: opts.tls.key, cert: opts.tls.cert } : {}),
    disabledCommands: [...(opts.tls ? [] : ["STARTTLS"]), ...(opts.auth ? [] : ["AUTH"])],
    authOptional: !opts.auth,
    // No reverse DNS lookup before the greeting (slow where DNS is unreachable).
    disableReverseLookup: true,
    allowInsecureAuth: true,
    size: 10 * 1024 * 1024,
    onConnect(_session, cb) {
      connections++;
      cb();
    },
    onAuth(auth, _session, cb) {
      if (opts.auth && auth.username === opts.auth.user && auth.password === opts.auth.pass) {
        cb(null, { user: auth.username });
      } else {
        cb(new Error("Invalid username or password"));
      }
    },
    onRcptTo(address, _session, cb) {
      if (reject.has(address.address.toLowerCase())) {
        const err = new Error("5.1.1 <" + address.address + ">: Recipient address rejected: User unknown") as Error & { responseCode?: number };
        err.responseCode = 550;
        cb(err);
      } else {
        cb();
      }
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        const raw = Buffer.concat(chunks).toString("utf8");
        const user = (session as any).user as string | undefined;
        messages.push({
          envelopeFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          envelopeTo: session.envelope.rcptTo.map((r) => r.address),
          raw,
          parsed: parseMail(raw),
          auth: user ? { username: user, password: "" } : undefined,
          secure: Boolean((session as any).secure),
        });
        cb();
      });
    },
  });
  server.on("error", () => undefined);
  const port = await new Promise<number>((resolve, reject_) => {
    server.listen(0, "127.0.0.1", () => {
      const addr = (server as any).server.address();
      resolve(addr.port);
    });
    (server as any).server.once("error", reject_);
  });
  return {
    port,
    messages,
    reject,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

// ---------------------------------------------------------------------------------------------
// Reading messages

export interface ParsedMail {
  /** Lower-cased header name → decoded values (RFC 2047 words decoded, folding removed). */
  headers: Map<string, string[]>;
  header(name: string): string | undefined;
  text?: string;
  html?: string;
}

function decodeBytes(bytes: Buffer, charset: string): string {
  return new TextDecoder(charset.toLowerCase() === "us-ascii" ? "utf-8" : charset).decode(bytes);
}

function decodeQuotedPrintable(s: string): Buffer {
  const soft = s.replace(/=\r?\n/g, "");
  const out: number[] = [];
  for (let i = 0; i < soft.length; i++) {
    const ch = soft[i];
    if (ch === "=" && /^[0-9A-Fa-f]{2}$/.test(soft.slice(i + 1, i + 3))) {
      out.push(parseInt(soft.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      for (const b of Buffer.from(ch, "utf8")) out.push(b);
    }
  }
  return Buffer.from(out);
}

/** RFC 2047 encoded words (whitespace between adjacent words dropped). */
function decodeWords(value: string): string {
  const word = /=\?([^?]+)\?([QqBb])\?([^?]*)\?=/g;
  const joined = value.replace(/(=\?[^?]+\?[QqBb]\?[^?]*\?=)\s+(?==\?)/g, "$1");
  return joined.replace(word, (_m, charset: string, enc: string, text: string) => {
    const bytes = enc.toUpperCase() === "B" ? Buffer.from(text, "base64") : decodeQuotedPrintable(text.replace(/_/g, " "));
    return decodeBytes(bytes, charset);
  });
}

function splitHeaders(block: string): Map<string, string[]> {
  const headers = new Map<string, string[]>();
  const unfolded = block.replace(/\r?\n[ \t]+/g, " ");
  for (const line of unfolded.split(/\r?\n/)) {
    const i = line.indexOf(":");
    if (i <= 0) continue;
    const name = line.slice(0, i).trim().toLowerCase();
    const value = decodeWords(line.slice(i + 1).trim());
    headers.set(name, [...(headers.get(name) ?? []), value]);
  }
  return headers;
}

function param(value: string | undefined, name: string): string | undefined {
  if (!value) return undefined;
  const m = new RegExp(`;\\s*${name}\\s*=\\s*("([^"]*)"|[^;\\s]+)`, "i").exec(value);
  return m ? (m[2] ?? m[1]) : undefined;
}

function decodeBody(body: string, headers: Map<string, string[]>): string {
  const cte = (headers.get("content-transfer-encoding")?.[0] ?? "7bit").toLowerCase();
  const charset = param(headers.get("content-type")?.[0], "charset") ?? "utf-8";
  if (cte === "base64") return decodeBytes(Buffer.from(body.replace(/\s+/g, ""), "base64"), charset);
  if (cte === "quoted-printable") return decodeBytes(decodeQuotedPrintable(body), charset);
  return body;
}

function splitEntity(raw: string): { headers: Map<string, string[]>; body: string } {
  const m = /\r?\n\r?\n/.exec(raw);
  if (!m) return { headers: splitHeaders(raw), body: "" };
  return { headers: splitHeaders(raw.slice(0, m.index)), body: raw.slice(m.index + m[0].length) };
}

function parseMail(raw: string): ParsedMail {
  // The CRLF before the SMTP end-of-data dot ends the last line; it is not part of the body.
  const top = splitEntity(raw.replace(/\r\n$/, ""));
  const result: ParsedMail = {
    headers: top.headers,
    header: (name: string) => top.headers.get(name.toLowerCase())?.[0],
  };
  const walk = (headers: Map<string, string[]>, body: string) => {
    const ct = headers.get("content-type")?.[0] ?? "text/plain";
    const type = ct.split(";")[0].trim().toLowerCase();
    if (type.startsWith("multipart/")) {
      const boundary = param(ct, "boundary");
      if (!boundary) return;
      const parts = body.split(new RegExp(`\\r?\\n?--${boundary.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?:--)?[ \\t]*\\r?\\n?`));
      for (const part of parts) {
        if (!part.trim()) continue;
        const e = splitEntity(part);
        walk(e.headers, e.body);
      }
      return;
    }
    const text = decodeBody(body, headers).replace(/\r\n/g, "\n");
    if (type === "text/plain" && result.text === undefined) result.text = text;
    if (type === "text/html" && result.html === undefined) result.html = text;
  };
  walk(top.headers, top.body);
  return result;
}

/** One address from a header value: { name, address }. */
export function parseAddress(value: string): { name: string; address: string } {
  const m = /^\s*(?:"((?:[^"\\]|\\.)*)"|([^<]*?))\s*<([^>]+)>\s*$/.exec(value);
  if (m) return { name: (m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : (m[2] ?? "")).trim(), address: m[3].trim() };
  return { name: "", address: value.trim() };
}

/** Comma-separated address list (commas inside quoted names kept). */
export function parseAddressList(value: string): { name: string; address: string }[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === "\\" && quoted) {
      cur += ch + (value[++i] ?? "");
      continue;
    }
    if (ch === '"') quoted = !quoted;
    if (ch === "," && !quoted) {
      out.push(cur);
      cur = "";
    } else {
      cur += ch;
    }
  }
  if (cur.trim()) out.push(cur);
  return out.map(parseAddress);
}

// ---------------------------------------------------------------------------------------------
// Configuration directory and CLI

export interface ConfOptions {
  externalHost?: string;
  administrator?: string;
  /** Extra settings.py lines. */
  settings?: string[];
  secrets?: Record<string, string>;
  /** RabbitMQ settings (default: this test file's vhost on the run's broker; false: none). */
  rabbitmq?: { host: string; port: number; vhost: string; password: string } | false;
}

/** A self-signed certificate for 127.0.0.1/localhost (openssl is required). */
export function selfSignedCert(dir: string): { key: string; cert: string; certFile: string } {
  const keyFile = path.join(dir, "smtp.key");
  const certFile = path.join(dir, "smtp.crt");
  execFileSync(
    requireTool("openssl"),
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-days",
      "2",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ],
    { stdio: "ignore" },
  );
  return { key: fs.readFileSync(keyFile, "utf8"), cert: fs.readFileSync(certFile, "utf8"), certFile };
}

export function makeTempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `zm-${prefix}-`));
}

/** A /etc/zulip look-alike: settings.py, zulip.conf (production), zulip-secrets.conf. */
export function writeConfDir(dir: string, o: ConfOptions = {}): string {
  fs.mkdirSync(dir, { recursive: true });
  const settings = [
    "from typing import Any",
    "",
    `EXTERNAL_HOST = '${o.externalHost ?? "zulip.example.com"}'`,
    `ZULIP_ADMINISTRATOR = '${o.administrator ?? "admin@example.com"}'`,
    ...(o.settings ?? []),
  ];
  const rabbit = o.rabbitmq ?? (o.rabbitmq === false || !sharedRabbit() ? false : rabbitSettings());
  if (rabbit) settings.push(`RABBITMQ_HOST = "${rabbit.host}"`, `RABBITMQ_PORT = ${rabbit.port}`, `RABBITMQ_VHOST = ${JSON.stringify(rabbit.vhost)}`);
  settings.push("");
  fs.writeFileSync(path.join(dir, "settings.py"), settings.join("\n"));
  fs.writeFileSync(path.join(dir, "zulip.conf"), "[machine]\npuppet_classes = zulip::profile::standalone\ndeploy_type = production\n");
  const secrets = {
    secret_key: "test-secret-key-0123456789",
    shared_secret: "shared",
    avatar_salt: "salt",
    ...(rabbit ? { rabbitmq_password: rabbit.password } : {}),
    ...(o.secrets ?? {}),
  };
  fs.writeFileSync(
    path.join(dir, "zulip-secrets.conf"),
    "[secrets]\n" +
      Object.entries(secrets)
        .map(([k, v]) => `${k} = ${v}`)
        .join("\n") +
      "\n",
  );
  return dir;
}

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}

/** The CLI's bin script (`npm test` builds dist/ before the tests run). */
export function cliBin(): Promise<string> {
  return Promise.resolve(BIN);
}

export async function runCli(args: string[], env: Record<string, string>, opts: { timeoutMs?: number } = {}): Promise<CliResult> {
  const bin = await cliBin();
  const started = Date.now();
  const r = await execa(process.execPath, [bin, ...args], {
    env: { ...process.env, NO_COLOR: "", FORCE_COLOR: "", ZULIP_MANAGE_ALLOW_ROOT: "1", ...env },
    reject: false,
    timeout: opts.timeoutMs ?? 60_000,
    stdin: "ignore",
    stripFinalNewline: false,
  });
  return {
    exitCode: r.exitCode ?? -1,
    stdout: String(r.stdout ?? ""),
    stderr: String(r.stderr ?? ""),
    durationMs: Date.now() - started,
  };
}
