// send_password_reset_email and the password reset token: token vectors checked against a
// separate Django implementation written here with node:crypto (and against Python's
// hashlib/hmac), and the command end to end against a real PostgreSQL database and a real SMTP
// server in this process, following the received link back to a user.
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRealm } from "../src/zulip/actions/create-realm.js";
import { createUser, deactivateUser } from "../src/zulip/actions/create-user.js";
import { EmailAddressVisibility } from "../src/zulip/models.js";
import { buildEmail, formataddr, formatAddress, parseaddr, tokenizedNoreplyAddress, type EmailSettings } from "../src/services/email.js";
import {
  base36ToInt,
  checkToken,
  decodeUidb64,
  loginTimestamp,
  makeToken,
  makeTokenWithTimestamp,
  passwordResetUrl,
  tokenTimestamp,
  uidb64,
} from "../src/zulip/password-reset.js";
import { Progress } from "../src/lib/progress.js";
import { passwordResetText, renderPasswordReset } from "../src/zulip/templates/password_reset.js";
import { cliBin, makeTempDir, parseAddress, runCli, startSmtpSink, writeConfDir, type ReceivedMail, type SmtpSink } from "./email-support.js";
import { createDatabase, type TestDatabase } from "./helpers/pg.js";
import { QueueReader } from "./helpers/rabbitmq.js";
import { freePort as freePortForTest } from "./helpers/services.js";
import { requireTool } from "./helpers/tools.js";

// ---------------------------------------------------------------------------------------------
// An independent implementation of Django's PasswordResetTokenGenerator (Django 3.1+, sha256),
// written from django/contrib/auth/tokens.py and django/utils/crypto.py salted_hmac.

const DJ_SALT = "django.contrib.auth.tokens.PasswordResetTokenGenerator";

function djSecondsSince2001(d: Date): number {
  const epoch = new Date("2001-01-01T00:00:00Z").getTime();
  return Math.trunc((d.getTime() - epoch) / 1000);
}

function djLoginString(d: Date | null): string {
  if (!d) return "";
  // str(datetime.replace(microsecond=0, tzinfo=None)) of a UTC value
  return d.toISOString().slice(0, 19).replace("T", " ");
}

function djToken(u: { pk: number; password: string; lastLogin: Date | null; email: string | null }, ts: number, secret: string): string {
  const value = String(u.pk) + u.password + djLoginString(u.lastLogin) + String(ts) + (u.email || "");
  const key = crypto
    .createHash("sha256")
    .update(DJ_SALT + secret)
    .digest();
  const full = crypto.createHmac("sha256", key).update(value).digest("hex");
  const every2nd = full
    .split("")
    .filter((_, i) => i % 2 === 0)
    .join("");
  return ts.toString(36) + "-" + every2nd;
}

function djCheck(u: Parameters<typeof djToken>[0], token: string, secret: string, now: Date, timeout = 259200): boolean {
  const [b36, hash] = token.split("-");
  if (!b36 || !hash || token.split("-").length !== 2) return false;
  const ts = parseInt(b36, 36);
  if (djToken(u, ts, secret) !== token) return false;
  return djSecondsSince2001(now) - ts <= timeout;
}

// Computed once with Python (hashlib/hmac, Django's algorithm) and written down here.
const PY_VECTOR = {
  user: {
    id: 10,
    password: "argon2$argon2id$v=19$m=102400,t=2,p=8$c2FsdHNhbHQ$aGFzaGhhc2g",
    last_login: new Date("2024-05-06T07:08:09.123Z"),
    email: "user10@zulip.example.com",
  },
  now: new Date("2026-01-02T03:04:05.678Z"),
  secret: "zulip-test-secret-key-1234",
  timestamp: 789015845,
  token: "d1rcit-4ddd8019266667515b7d948f9c057efa",
};

describe("password reset token", () => {
  it("matches the vector computed with Python", () => {
    expect(tokenTimestamp(PY_VECTOR.now)).toBe(PY_VECTOR.timestamp);
    expect(makeToken(PY_VECTOR.user, PY_VECTOR.secret, PY_VECTOR.now)).toBe(PY_VECTOR.token);
    // never logged in: an empty login timestamp
    expect(makeTokenWithTimestamp({ id: 8, password: "!abc", last_login: null, email: "test@test.com" }, PY_VECTOR.timestamp, "s3cr3t")).toBe(
      "d1rcit-1f78e7c27fc3d5e4dd010029f024a19e",
    );
    expect(uidb64(10)).toBe("MTA");
    expect(decodeUidb64("MTA")).toBe("10");
  });

  it("agrees with the independent implementation on random users", () => {
    for (let i = 0; i < 200; i++) {
      const lastLogin = i % 5 === 0 ? null : new Date(Date.UTC(2020, 0, 1) + crypto.randomInt(0, 2 ** 31) * 100 + crypto.randomInt(0, 1000));
      const u = {
        pk: crypto.randomInt(1, 10_000_000),
        password: i % 7 === 0 ? "!" + crypto.randomBytes(20).toString("base64url") : "argon2$argon2id$v=19$" + crypto.randomBytes(16).toString("hex"),
        lastLogin,
        email: i % 11 === 0 ? "" : `user${i}é@example.${i % 3 ? "com" : "org"}`,
      };
      const secret = crypto.randomBytes(24).toString("base64");
      const now = new Date(Date.UTC(2024, 0, 1) + crypto.randomInt(0, 2 ** 40));
      const ours = makeToken({ id: u.pk, password: u.password, last_login: u.lastLogin, email: u.email }, secret, now);
      expect(ours).toBe(djToken(u, djSecondsSince2001(now), secret));
      expect(djCheck(u, ours, secret, now)).toBe(true);
    }
  });

  it("agrees with Python's hashlib/hmac", () => {
    const cases = Array.from({ length: 5 }, (_, i) => ({
      pk: 100 + i,
      password: `pbkdf2_sha256$600000$salt${i}$hash`,
      login: i === 0 ? "" : `2025-0${i}-1${i} 1${i}:2${i}:3${i}`,
      ts: 790000000 + i * 12345,
      email: i === 2 ? "" : `u${i}@example.net`,
      secret: `secret-${i}-${crypto.randomBytes(6).toString("hex")}`,
    }));
    const script =
      "import hashlib, hmac, json, sys\n" +
      "out = []\n" +
      "for c in json.loads(sys.argv[1]):\n" +
      "    key = hashlib.sha256(('django.contrib.auth.tokens.PasswordResetTokenGenerator' + c['secret']).encode()).digest()\n" +
      "    value = f\"{c['pk']}{c['password']}{c['login']}{c['ts']}{c['email']}\"\n" +
      "    h = hmac.new(key, msg=value.encode(), digestmod=hashlib.sha256).hexdigest()[::2]\n" +
      "    ts, b36 = c['ts'], ''\n" +
      "    while ts: ts, n = divmod(ts, 36); b36 = '0123456789abcdefghijklmnopqrstuvwxyz'[n] + b36\n" +
      "    out.append(b36 + '-' + h)\n" +
      "print(json.dumps(out))\n";
    const py = JSON.parse(execFileSync(requireTool("python3"), ["-c", script, JSON.stringify(cases)], { encoding: "utf8" }));
    cases.forEach((c, i) => {
      const lastLogin = c.login ? c.login.replace(" ", "T") + "Z" : null;
      expect(makeTokenWithTimestamp({ id: c.pk, password: c.password, last_login: lastLogin, email: c.email }, c.ts, c.secret)).toBe(py[i]);
    });
  });

  it("formats last_login like Python, dropping microseconds, from a Date or PostgreSQL text", () => {
    expect(loginTimestamp(null)).toBe("");
    expect(loginTimestamp(new Date("2025-03-04T05:06:07.891Z"))).toBe("2025-03-04 05:06:07");
    expect(loginTimestamp("2025-03-04 05:06:07.891234+00")).toBe("2025-03-04 05:06:07");
    expect(loginTimestamp("2025-03-04 07:06:07+02:00")).toBe("2025-03-04 05:06:07");
  });

  it("checks tokens like Django: expiry, and invalidation by password, login and email changes", () => {
    const u = { id: 42, password: "argon2$x", last_login: new Date("2025-01-01T00:00:00Z"), email: "a@example.com" };
    const now = new Date("2025-06-01T12:00:00Z");
    const t = makeToken(u, "k1", now);
    expect(checkToken(u, t, ["k1"], { now })).toBe(true);
    expect(checkToken(u, t, ["old", "k1"], { now })).toBe(true); // SECRET_KEY_FALLBACKS
    expect(checkToken(u, t, ["k2"], { now })).toBe(false);
    expect(checkToken({ ...u, password: "argon2$y" }, t, ["k1"], { now })).toBe(false);
    expect(checkToken({ ...u, last_login: new Date("2025-05-01T00:00:00Z") }, t, ["k1"], { now })).toBe(false);
    expect(checkToken({ ...u, email: "b@example.com" }, t, ["k1"], { now })).toBe(false);
    expect(checkToken(u, t, ["k1"], { now: new Date(now.getTime() + 259_200_000) })).toBe(true);
    expect(checkToken(u, t, ["k1"], { now: new Date(now.getTime() + 259_201_000) })).toBe(false);
    expect(checkToken(u, t + "-x", ["k1"], { now })).toBe(false);
    expect(checkToken(u, "zzzzzzzzzzzzzz-" + t.split("-")[1], ["k1"], { now })).toBe(false);
    expect(base36ToInt("d1rcit")).toBe(789015845);
    expect(passwordResetUrl("https://chat.example.com", 42, t)).toBe(`https://chat.example.com/accounts/password/reset/NDI/${t}/`);
  });
});

// ---------------------------------------------------------------------------------------------
// Template and header pieces

const EMAIL_SETTINGS: EmailSettings = {
  host: "127.0.0.1",
  port: 25,
  useTls: false,
  useSsl: false,
  user: "",
  password: null,
  timeoutSeconds: 15,
  configuredBackend: null,
  noreply: "noreply@zulip.example.com",
  tokenizedNoreply: "noreply-{token}@zulip.example.com",
  addTokensToNoreply: true,
  administrator: "Admin <admin@example.com>",
  installationName: "zulip.example.com",
  emailImagesBaseUrl: "https://zulip.example.com/static/images/emails",
  physicalAddress: "",
  subjectPrefix: "[Django] ",
  serverEmail: "admin@example.com",
  admins: [],
  managers: [],
  logDir: null,
};

describe("email pieces", () => {
  it("formats addresses the way Python's email package does", () => {
    expect(formatAddress("Iago", "iago@zulip.com")).toBe("Iago <iago@zulip.com>");
    expect(formatAddress("zulip.example.com account security", "n@x")).toBe('"zulip.example.com account security" <n@x>');
    expect(formatAddress('Say "hi"', "a@b")).toBe('"Say \\"hi\\"" <a@b>');
    expect(formataddr("Zulip Dev", "chat.example.com")).toBe("Zulip Dev <chat.example.com>");
    expect(formataddr("Acme, Inc.", "acme.example.com")).toBe('"Acme, Inc." <acme.example.com>');
    expect(parseaddr("Zulip Admin <admin@example.com>")).toEqual(["Zulip Admin", "admin@example.com"]);
    expect(parseaddr("admin@example.com")).toEqual(["", "admin@example.com"]);
  });

  it("makes tokenized noreply addresses, or the plain one when tokens are off", () => {
    expect(tokenizedNoreplyAddress(EMAIL_SETTINGS)).toMatch(/^noreply-[a-z2-7]{24}@zulip\.example\.com$/);
    expect(tokenizedNoreplyAddress(EMAIL_SETTINGS)).not.toBe(tokenizedNoreplyAddress(EMAIL_SETTINGS));
    expect(tokenizedNoreplyAddress({ ...EMAIL_SETTINGS, addTokensToNoreply: false })).toBe("noreply@zulip.example.com");
  });

  it("builds headers like build_email: List-Id, X-Auto-Response-Suppress, Reply-To only for the plain noreply sender", () => {
    const rendered = { subject: "s", text: "t" };
    const realm = { name: "Acme, Inc.", host: "acme.zulip.example.com", string_id: "acme" };
    const a = buildEmail(EMAIL_SETTINGS, {
      template: "x",
      rendered,
      toUsers: [{ full_name: "Iago", delivery_email: "iago@x" }],
      fromAddress: "noreply-abc@zulip.example.com",
      fromName: "N",
      realm,
    });
    expect(a.headers).toEqual({ "X-Auto-Response-Suppress": "All", "List-Id": '"Acme, Inc." <acme.zulip.example.com>' });
    expect(a.replyTo).toBeUndefined();
    expect(a.envelopeFrom).toBe("noreply@zulip.example.com");
    expect(a.to).toEqual([{ name: "Iago", address: "iago@x" }]);
    const b = buildEmail(EMAIL_SETTINGS, { template: "x", rendered, toEmails: ["z@x"], fromAddress: "noreply@zulip.example.com" });
    expect(b.replyTo).toBe("noreply@zulip.example.com");
    expect(b.headers["List-Id"]).toBeUndefined();
    expect(b.from).toEqual({ name: "Zulip", address: "noreply@zulip.example.com" });
    const long = buildEmail(EMAIL_SETTINGS, { template: "x", rendered, toUsers: [{ full_name: "N".repeat(400), delivery_email: "n@x" }] });
    expect(long.to).toEqual([{ address: "n@x" }]);
  });

  it("renders the three password reset variants with Zulip's wording", () => {
    const base = { email: "a@example.com", realmUrl: "https://chat.example.com", realmName: "Chat", emailImagesBaseUrl: "https://i", physicalAddress: "" };
    const active = renderPasswordReset({ ...base, activeAccountInRealm: true, resetUrl: "https://chat.example.com/accounts/password/reset/MQ/x-y/" });
    expect(active.subject).toBe("Password reset request for Chat");
    expect(active.text).toBe(
      "Somebody (possibly you) requested a new password for the Zulip account a@example.com on https://chat.example.com.\n" +
        "Click the link below to reset your password.\n" +
        "https://chat.example.com/accounts/password/reset/MQ/x-y/\n" +
        "\n" +
        "If you do not recognize this activity, you can safely ignore this email.",
    );
    expect(active.html).toContain('href="https://chat.example.com/accounts/password/reset/MQ/x-y/"');
    expect(active.html).toContain("Click the button below to reset your password.");
    const gone = passwordResetText({ ...base, activeAccountInRealm: false, userDeactivated: true, otherRealmUrls: ["https://b.example.com"] });
    expect(gone).toBe(
      "Somebody (possibly you) requested a new password for the Zulip account a@example.com on https://chat.example.com.\n" +
        "You previously had an account on https://chat.example.com, but it has been deactivated. You can contact an organization administrator to reactivate your account." +
        "https://chat.example.com/help/deactivate-or-reactivate-a-user\n\n\n" +
        "You do have active accounts in the following organization(s).\nhttps://b.example.com\n\n" +
        "You can try logging in or resetting your password in the organization(s) above.\n" +
        "If you do not recognize this activity, you can safely ignore this email.",
    );
    expect(passwordResetText({ ...base, activeAccountInRealm: false })).toContain("You do not have an account in that Zulip organization.");
    expect(renderPasswordReset({ ...base, email: "<b>@x", activeAccountInRealm: false }).html).toContain("&lt;b&gt;@x");
  });

  it("draws a progress bar only when asked to", () => {
    expect(Progress.render(5, 10, 40, "Sending")).toBe("Sending [############------------] 5/10");
    expect(Progress.render(10, 10, 40)).toBe("[" + "#".repeat(31) + "] 10/10");
    const writes: string[] = [];
    const stream = { isTTY: false, columns: 80, write: (s: string) => writes.push(s) } as unknown as NodeJS.WriteStream;
    const p = new Progress(3, { stream });
    p.tick();
    p.log("a failure");
    p.finish();
    expect(writes).toEqual(["a failure\n"]);

    const tty: string[] = [];
    const term = { isTTY: true, columns: 60, write: (s: string) => tty.push(s) } as unknown as NodeJS.WriteStream;
    const bar = new Progress(2, { stream: term, label: "Sending", intervalMs: 0 });
    bar.tick();
    bar.log("oops");
    bar.tick();
    bar.finish();
    expect(tty.join("")).toBe(
      "\r\x1b[2K" +
        Progress.render(1, 2, 59, "Sending") +
        "\r\x1b[2K" +
        "oops\n" +
        "\r\x1b[2K" +
        Progress.render(1, 2, 59, "Sending") +
        "\r\x1b[2K" +
        Progress.render(2, 2, 59, "Sending") +
        "\r\x1b[2K",
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The command, end to end

const HOST = "zulip.example.com";
const SECRET = "pw-reset-test-secret-3e7a";

interface Seeded {
  realmId: number;
  realmName: string;
  otherRealmUrl: string;
  alice: number;
  hidden: number;
  bob: number;
  carol: number;
  dave: number;
  bot: number;
}

describe("send_password_reset_email", () => {
  let db: TestDatabase;
  let sink: SmtpSink;
  let tmp: string;
  let conf: string;
  let logDir: string;
  let env: Record<string, string>;
  let seeded: Seeded;

  const confFor = (name: string, settings: string[], secrets: Record<string, string> = {}) =>
    writeConfDir(path.join(tmp, name), { externalHost: HOST, settings, secrets: { secret_key: SECRET, ...secrets } });

  beforeAll(async () => {
    db = await createDatabase({ template: "zulip12_fresh" });
    sink = await startSmtpSink();
    tmp = makeTempDir("pwreset");
    logDir = path.join(tmp, "log");
    fs.mkdirSync(logDir);
    conf = confFor("conf", ["EMAIL_HOST = '127.0.0.1'", `EMAIL_PORT = ${sink.port}`]);
    env = { ...db.env, ZULIP_LOG_DIR: logDir, ZULIP_DEPLOY_DIR: path.join(tmp, "nodeploy") };

    const q = db.client;
    await q.query("BEGIN");
    const realm = (await q.query("SELECT id, name FROM zerver_realm WHERE string_id = ''")).rows[0];
    const realmId = Number(realm.id);
    const eng = await createRealm(q, { stringId: "engineering", name: "Engineering" });
    const mk = (r: number, email: string, fullName: string, extra: Record<string, unknown> = {}) =>
      createUser(q, r, {
        email,
        fullName,
        externalHost: HOST,
        passwordHash: "argon2$argon2id$v=19$m=102400,t=2,p=8$" + crypto.randomBytes(8).toString("hex"),
        ...extra,
      });
    const alice = await mk(realmId, "alice@example.org", "Alice Liddell", { emailAddressVisibility: EmailAddressVisibility.EVERYONE });
    // Email hidden from everyone: UserProfile.email is a fake user<id>@host address.
    const hidden = await mk(realmId, "hidden@example.org", "Hidden Person", { emailAddressVisibility: EmailAddressVisibility.NOBODY });
    const bob = await mk(realmId, "bob@example.org", "Bob", { emailAddressVisibility: EmailAddressVisibility.EVERYONE });
    const carol = await mk(realmId, "carol@example.org", "Carol O'Brien", { emailAddressVisibility: EmailAddressVisibility.EVERYONE, tosVersion: "-1" });
    const dave = await mk(eng.id, "dave@example.org", "Dave", { emailAddressVisibility: EmailAddressVisibility.EVERYONE });
    await mk(eng.id, "bob@example.org", "Bob at Engineering", { emailAddressVisibility: EmailAddressVisibility.EVERYONE });
    const bot = await createUser(q, realmId, { email: "helper-bot@zulip.example.com", fullName: "Helper", isBot: true, externalHost: HOST });
    await deactivateUser(q, bob.id);
    await q.query("UPDATE zerver_userprofile SET last_login = '2025-03-04 05:06:07.891234+00' WHERE id = $1", [alice.id]);
    await q.query("UPDATE zerver_userprofile SET last_login = NULL WHERE id = $1", [carol.id]);
    await q.query("SET CONSTRAINTS ALL IMMEDIATE");
    await q.query("COMMIT");
    seeded = {
      realmId,
      realmName: realm.name,
      otherRealmUrl: `https://engineering.${HOST}`,
      alice: alice.id,
      hidden: hidden.id,
      bob: bob.id,
      carol: carol.id,
      dave: dave.id,
      bot: bot.id,
    };
  });

  afterAll(async () => {
    await sink?.close();
    await db?.drop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const run = (args: string[], confDir = conf, extraEnv: Record<string, string> = {}) =>
    runCli(["send_password_reset_email", "--conf-dir", confDir, ...args], { ...env, ...extraEnv });

  const newMessages = async (fn: () => Promise<unknown>): Promise<ReceivedMail[]> => {
    const before = sink.messages.length;
    await fn();
    return sink.messages.slice(before);
  };

  const userRow = async (id: number) =>
    (await db.query("SELECT id, password, last_login, email, delivery_email, full_name FROM zerver_userprofile WHERE id = $1", [id]))[0];

  /** Follow the link in a received mail: uid → user, token checked with this file's own Django implementation. */
  async function followLink(mail: ReceivedMail) {
    const m = /https:\/\/(?:[a-z]+\.)?zulip\.example\.com\/accounts\/password\/reset\/([A-Za-z0-9_-]+)\/([0-9a-z]+-[0-9a-f]{32})\//.exec(
      mail.parsed.text ?? "",
    );
    expect(m, `reset link in the plain-text body of ${mail.raw}`).toBeTruthy();
    const uid = Buffer.from(m![1], "base64url").toString("utf8");
    const token = m![2];
    const row = await userRow(Number(uid));
    const now = new Date();
    const valid = djCheck({ pk: Number(row.id), password: row.password, lastLogin: row.last_login, email: row.email }, token, SECRET, now);
    return { uid: Number(uid), token, row, valid, url: m![0] };
  }

  it("sends one reset email whose link a Zulip server accepts", async () => {
    const mails = await newMessages(async () => {
      const r = await run(["-u", "alice@example.org"]);
      expect(r.stderr).toBe("");
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toBe("Sent 1 password reset email.\n");
    });
    expect(mails).toHaveLength(1);
    const mail = mails[0];
    const h = mail.parsed;
    expect(h.header("subject")).toBe(`Password reset request for ${seeded.realmName}`);
    const from = parseAddress(h.header("from")!);
    expect(from.name).toBe(`${HOST} account security`);
    expect(from.address).toMatch(/^noreply-[a-z2-7]{24}@zulip\.example\.com$/);
    expect(mail.envelopeFrom).toBe(`noreply@${HOST}`);
    expect(mail.envelopeTo).toEqual(["alice@example.org"]);
    expect(parseAddress(h.header("to")!)).toEqual({ name: "Alice Liddell", address: "alice@example.org" });
    expect(parseAddress(h.header("list-id")!)).toEqual({ name: seeded.realmName, address: HOST });
    expect(h.header("x-auto-response-suppress")).toBe("All");
    expect(h.header("reply-to")).toBeUndefined();
    expect(h.header("date")).toBeTruthy();

    const link = await followLink(mail);
    expect(link.uid).toBe(seeded.alice);
    expect(link.valid).toBe(true);
    // the token carries the current time
    expect(Math.abs(djSecondsSince2001(new Date()) - parseInt(link.token.split("-")[0], 36))).toBeLessThan(120);
    // a changed password invalidates it
    expect(
      djCheck({ pk: link.row.id, password: link.row.password + "x", lastLogin: link.row.last_login, email: link.row.email }, link.token, SECRET, new Date()),
    ).toBe(false);

    expect(h.text).toBe(
      `Somebody (possibly you) requested a new password for the Zulip account alice@example.org on https://${HOST}.\n` +
        "Click the link below to reset your password.\n" +
        `${link.url}\n\n` +
        "If you do not recognize this activity, you can safely ignore this email.",
    );
    expect(h.html).toContain(`href="${link.url}"`);
    expect(h.html).toContain("Reset password");
    expect(h.html).toContain('<a href="mailto:alice@example.org">alice@example.org</a>');

    const log = fs.readFileSync(path.join(logDir, "send_email.log"), "utf8");
    expect(log).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO {5}Sending password_reset email to \['Alice Liddell <alice@example\.org>'\] in $/m);
  });

  it("queues Zulip's soft_reactivate job for each active recipient (the worker wakes long_term_idle users)", async () => {
    const reader = await QueueReader.open();
    try {
      await reader.purge("deferred_work");
      await db.query("UPDATE zerver_userprofile SET long_term_idle = true WHERE id = $1", [seeded.alice]);
      const r = await run(["-u", "alice@example.org,bob@example.org", "-r", "", "--json"]);
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toBe("");
      // Bob is deactivated: no job for him (do_send_password_reset_email drops inactive users first).
      expect(await reader.drain("deferred_work")).toEqual([{ type: "soft_reactivate", user_profile_id: seeded.alice }]);
      expect(JSON.parse(r.stdout).events).toMatchObject({ transport: "rabbitmq", published: 0, jobs: 1, ok: true });
      // Never done inline: the worker does it (and writes the 120 audit row).
      expect((await db.query("SELECT long_term_idle FROM zerver_userprofile WHERE id = $1", [seeded.alice]))[0].long_term_idle).toBe(true);

      // RabbitMQ unavailable: the email still goes, one warning says what the workers miss.
      const down = confFor("conf-no-rabbit", ["EMAIL_HOST = '127.0.0.1'", `EMAIL_PORT = ${sink.port}`]);
      fs.appendFileSync(path.join(down, "settings.py"), `RABBITMQ_PORT = ${await freePortForTest()}\n`);
      const r2 = await run(["-u", "alice@example.org", "-r", ""], down);
      expect(r2.exitCode).toBe(0);
      expect(r2.stdout).toBe("Sent 1 password reset email.\n");
      expect(r2.stderr).toMatch(/^Warning: 1 queue-worker job could not be delivered \(RabbitMQ: cannot connect/);
      expect(r2.stderr).toContain("Zulip's queue workers were not asked to do: the soft reactivation of alice@example.org if idle.");
    } finally {
      await db.query("UPDATE zerver_userprofile SET long_term_idle = false WHERE id = $1", [seeded.alice]);
      await reader.close();
    }
  });

  it("hashes the `email` column, not delivery_email, for users whose address is hidden", async () => {
    const row = await userRow(seeded.hidden);
    expect(row.email).not.toBe(row.delivery_email);
    const [mail] = await newMessages(async () => expect((await run(["-u", "HIDDEN@example.org", "-r", ""])).exitCode).toBe(0));
    expect(mail.envelopeTo).toEqual(["hidden@example.org"]);
    const link = await followLink(mail);
    expect(link.uid).toBe(seeded.hidden);
    expect(link.valid).toBe(true);
    const withDelivery = djCheck({ pk: row.id, password: row.password, lastLogin: row.last_login, email: row.delivery_email }, link.token, SECRET, new Date());
    expect(withDelivery).toBe(false);
  });

  it("sends deactivated users the variant without a link", async () => {
    const [mail] = await newMessages(async () => expect((await run(["-u", "bob@example.org", "-r", ""])).exitCode).toBe(0));
    expect(parseAddress(mail.parsed.header("to")!)).toEqual({ name: "", address: "bob@example.org" });
    const text = mail.parsed.text!;
    expect(text).not.toContain("/accounts/password/reset/");
    expect(text).toContain(
      `You previously had an account on https://${HOST}, but it has been deactivated. You can contact an organization administrator to reactivate your account.`,
    );
    expect(text).toContain(`https://${HOST}/help/deactivate-or-reactivate-a-user`);
    expect(text).toContain(`You do have active accounts in the following organization(s).\n${seeded.otherRealmUrl}\n`);
    expect(mail.parsed.html).toContain(`<a href="https://${HOST}/help/deactivate-or-reactivate-a-user">reactivate your account</a>`);
    expect(mail.parsed.html).not.toContain("Reset password");
  });

  it("selects like manage.py: -a (active humans of the realm), --only-never-logged-in, --entire-server", async () => {
    const activeHumans = (
      await db.query("SELECT delivery_email FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND NOT is_bot ORDER BY id", [seeded.realmId])
    ).map((r) => r.delivery_email);
    const all = await newMessages(async () => expect((await run(["-a", "-r", ""])).exitCode).toBe(0));
    expect(all.map((m) => m.envelopeTo[0]).sort()).toEqual([...activeHumans].sort());
    expect(all.map((m) => m.envelopeTo[0])).not.toContain("helper-bot@zulip.example.com");

    const never = await newMessages(async () => expect((await run(["-a", "-r", "", "--only-never-logged-in"])).exitCode).toBe(0));
    expect(never.map((m) => m.envelopeTo[0])).toEqual(["carol@example.org"]);
    // carol never logged in: her token hashes an empty login timestamp
    expect((await followLink(never[0])).valid).toBe(true);

    const server = (await db.query("SELECT delivery_email FROM zerver_userprofile WHERE is_active AND NOT is_bot AND NOT is_mirror_dummy")).map(
      (r) => r.delivery_email,
    );
    const everyone = await newMessages(async () => expect((await run(["--entire-server"])).exitCode).toBe(0));
    expect(everyone.map((m) => m.envelopeTo[0]).sort()).toEqual([...server].sort());
    expect(everyone.some((m) => m.envelopeTo[0] === "dave@example.org")).toBe(true);
    // every link is valid for its own user
    for (const m of everyone) {
      const link = await followLink(m);
      expect(link.valid).toBe(true);
      expect(link.row.delivery_email).toBe(m.envelopeTo[0]);
    }
  });

  it("refuses bad selections with manage.py's messages", async () => {
    let r = await run([]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe("You have to pass -u/--users or -a/--all-users or --entire-server.\n");
    r = await run(["-a"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe("The --all-users option requires a realm; please pass --realm.\n");
    r = await run(["-u", "a@b", "-a", "-r", ""]);
    expect(r.stderr).toBe("You can't use both -u/--users and -a/--all-users.\n");
    r = await run(["-u", "nobody@example.org"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe("This Zulip server does not contain a user with email 'nobody@example.org'\n");
    r = await run(["-r", "nope", "-a"]);
    expect(r.stderr).toBe("There is no realm with id 'nope'. Aborting.\n");
    const none = await newMessages(async () => {
      r = await run(["-u", "alice@example.org", "--only-never-logged-in"]);
    });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe("No matching users!\n");
    expect(none).toHaveLength(0);
  });

  it("continues past a refused recipient, reports it, and exits 1", async () => {
    sink.reject.add("carol@example.org");
    try {
      const mails = await newMessages(async () => {
        const r = await run(["-a", "-r", ""]);
        expect(r.exitCode).toBe(1);
        expect(r.stderr).toMatch(/^Failed to send password reset email to carol@example\.org \(zulip\.example\.com\): 550 .*carol@example\.org.*$/m);
        expect(r.stderr.match(/^Failed to send/gm)).toHaveLength(1);
        expect(r.stderr).toContain("1 of ");
        expect(r.stdout).toMatch(/^Sent \d+ password reset emails\.\n$/);
      });
      const got = mails.map((m) => m.envelopeTo[0]);
      expect(got).not.toContain("carol@example.org");
      expect(got).toContain("alice@example.org");
      expect(got).toContain("hidden@example.org");
      const log = fs.readFileSync(path.join(logDir, "send_email.log"), "utf8");
      expect(log).toMatch(/ERROR {4}Error sending password_reset email to \[.*carol@example\.org.*\] with error code 550/);
    } finally {
      sink.reject.delete("carol@example.org");
    }
  });

  it("fails fast with a clear line when the SMTP server is unreachable", async () => {
    const closed = await new Promise<number>((resolve) => {
      const s = net.createServer();
      s.listen(0, "127.0.0.1", () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const badConf = confFor("unreachable", ["EMAIL_HOST = '127.0.0.1'", `EMAIL_PORT = ${closed}`]);
    const one = await run(["-u", "alice@example.org"], badConf);
    expect(one.exitCode).toBe(1);
    expect(one.stderr).toContain(`Failed to send password reset email to alice@example.org (${HOST}): cannot talk to the SMTP server 127.0.0.1:${closed}`);
    const many = await run(["--entire-server"], badConf);
    expect(many.exitCode).toBe(1);
    expect(many.stderr).toBe(
      `Cannot send email: cannot talk to the SMTP server 127.0.0.1:${closed} (plain SMTP, timeout 15s): connect ECONNREFUSED 127.0.0.1:${closed}\n` +
        "No password reset emails were sent.\n",
    );
    expect(many.durationMs).toBeLessThan(20_000);
    const json = JSON.parse((await run(["--entire-server", "--json"], badConf)).stdout);
    expect(json.sent_count).toBe(0);
    expect(json).toMatchObject({ ok: false, exit_code: 1, error_code: "email_failed" });
    expect(json.results.every((e: any) => e.status === "not_attempted" && !e.ok && e.error.includes("ECONNREFUSED"))).toBe(true);
  });

  it("exits 3 pointing at Zulip's email docs when EMAIL_HOST is not set", async () => {
    const noEmail = confFor("noemail", []);
    const r = await run(["-u", "alice@example.org"], noEmail);
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toContain("Outgoing email not yet configured");
    expect(r.stderr).toContain("https://zulip.readthedocs.io/en/latest/production/email.html");
  });

  it("--dry-run lists recipients and sends nothing (even without EMAIL_HOST)", async () => {
    const noEmail = confFor("dry", []);
    const mails = await newMessages(async () => {
      const r = await run(["-a", "-r", "", "--dry-run"], noEmail);
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toContain("Would send password reset emails to ");
      expect(r.stdout).toContain(`  alice@example.org (${HOST})\n`);
      expect(r.stdout).toContain(`  carol@example.org (${HOST})\n`);
      const bobDry = await run(["-u", "bob@example.org", "-r", "", "--dry-run"], noEmail);
      expect(bobDry.stdout).toBe(`Would send password reset emails to 1 user:\n  bob@example.org (${HOST}) [deactivated: email without a reset link]\n`);
    });
    expect(mails).toHaveLength(0);
  });

  it("--json: one entry per recipient with its result, never the token", async () => {
    sink.reject.add("carol@example.org");
    let r;
    try {
      r = await run(["-a", "-r", "", "--json"]);
    } finally {
      sink.reject.delete("carol@example.org");
    }
    expect(r.exitCode).toBe(1);
    const doc = JSON.parse(r.stdout);
    const byEmail = new Map<string, any>(doc.results.map((e: any) => [e.user.delivery_email, e]));
    expect(byEmail.get("alice@example.org")).toMatchObject({
      user: { id: seeded.alice },
      realm: { string_id: "" },
      ok: true,
      status: "done",
      variant: "reset_link",
    });
    expect(byEmail.get("carol@example.org")).toMatchObject({ status: "failed" });
    expect(byEmail.get("carol@example.org").error).toContain("550");
    expect(doc.failed_count).toBe(1);
    expect(doc.sent_count).toBe(doc.results.length - 1);
    expect(r.stdout).not.toMatch(/accounts\/password\/reset|[0-9a-z]{6}-[0-9a-f]{32}/);

    const dry = JSON.parse((await run(["-u", "bob@example.org", "-r", "", "--json", "--dry-run"])).stdout);
    expect(dry).toMatchObject({ ok: true, exit_code: 0, dry_run: true, sent_count: 0, failed_count: 0 });
    expect(dry.results).toEqual([
      {
        user: {
          id: seeded.bob,
          email: expect.any(String),
          delivery_email: "bob@example.org",
          full_name: "Bob",
          realm_id: seeded.realmId,
          role: "member",
          role_id: 400,
        },
        realm: { id: seeded.realmId, string_id: "", name: seeded.realmName, url: `https://${HOST}` },
        variant: "deactivated",
        ok: true,
        status: "would_do",
        error: null,
      },
    ]);
  });

  it("logs in with EMAIL_HOST_USER and the email_password secret", async () => {
    const authSink = await startSmtpSink({ auth: { user: "mailer", pass: "s3cret pass" } });
    try {
      const authConf = confFor("auth", ["EMAIL_HOST = '127.0.0.1'", `EMAIL_PORT = ${authSink.port}`, "EMAIL_HOST_USER = 'mailer'"], {
        email_password: "s3cret pass",
      });
      const r = await run(["-u", "alice@example.org"], authConf);
      expect(r.exitCode).toBe(0);
      expect(authSink.messages).toHaveLength(1);
      expect(authSink.messages[0].auth?.username).toBe("mailer");
      const wrong = confFor("authwrong", ["EMAIL_HOST = '127.0.0.1'", `EMAIL_PORT = ${authSink.port}`, "EMAIL_HOST_USER = 'mailer'"], {
        email_password: "nope",
      });
      const bad = await run(["-u", "alice@example.org"], wrong);
      expect(bad.exitCode).toBe(1);
      expect(bad.stderr).toContain("refused the login of 'mailer'");
    } finally {
      await authSink.close();
    }
  });

  it("sends to hundreds of users over a few pooled connections, with a progress bar on a terminal", async () => {
    const N = 300;
    const cols = (
      await db.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'zulip' AND table_name = 'zerver_userprofile' AND column_name <> 'id' ORDER BY ordinal_position",
      )
    ).map((r) => r.column_name as string);
    const replace: Record<string, string> = {
      email: "'bulk' || g || '@example.org'",
      delivery_email: "'bulk' || g || '@example.org'",
      full_name: "'Bulk User ' || g",
      api_key: "substr(md5(random()::text || g), 1, 32)",
      uuid: "gen_random_uuid()",
    };
    await db.query(
      `INSERT INTO zerver_userprofile (${cols.join(", ")})
       SELECT ${cols.map((c) => replace[c] ?? `src.${c}`).join(", ")}
         FROM zerver_userprofile src, generate_series(1, ${N}) g WHERE src.id = $1`,
      [seeded.alice],
    );
    const expected = (await db.query("SELECT count(*)::int AS n FROM zerver_userprofile WHERE realm_id = $1 AND is_active AND NOT is_bot", [seeded.realmId]))[0]
      .n;
    const connectionsBefore = sink.connections();
    const before = sink.messages.length;
    const cmd = [process.execPath, await cliBin(), "send_password_reset_email", "--conf-dir", conf, "-a", "-r", ""].map((a) => `'${a}'`).join(" ");
    const started = Date.now();
    // The SMTP server lives in this process: run the terminal asynchronously.
    const res = await execa(requireTool("script"), ["-qec", cmd, "/dev/null"], {
      env: { ...process.env, ...env, NO_COLOR: "", ZULIP_MANAGE_ALLOW_ROOT: "1" },
      reject: false,
      stdin: "ignore",
    });
    const out = String(res.stdout);
    expect(res.exitCode, out + res.stderr).toBe(0);
    const mails = sink.messages.slice(before);
    expect(mails).toHaveLength(expected);
    expect(new Set(mails.map((m) => m.envelopeTo[0])).size).toBe(expected);
    expect(out).toContain(`Sent ${expected} password reset emails.`);
    expect(out).toMatch(new RegExp(`\\r\\x1b\\[2KSending \\[#+\\] ${expected}/${expected}`));
    // the pool: a verify connection plus at most three delivering ones
    expect(sink.connections() - connectionsBefore).toBeLessThanOrEqual(4 + Math.ceil(expected / 100));
    expect(Date.now() - started).toBeLessThan(60_000);
    const sample = mails.filter((m) => m.envelopeTo[0].startsWith("bulk")).slice(0, 5);
    for (const m of sample) expect((await followLink(m)).valid).toBe(true);
  });
});
