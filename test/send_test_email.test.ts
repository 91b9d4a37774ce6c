// send_test_email against a real SMTP server in this process: Zulip's two messages (support
// address, then tokenized noreply address) to all the given addresses, its console wording, the
// --admins/--managers extras, and the failure paths.
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTempDir, parseAddress, parseAddressList, runCli, selfSignedCert, startSmtpSink, writeConfDir, type SmtpSink } from "./email-support.js";

const HOST = "zulip.example.com";
const BODY =
  "Success!  If you receive this message (and a second with a different subject), " +
  "you've successfully configured sending emails from your Zulip server.  " +
  "Remember that you need to restart the Zulip server with /home/zulip/deployments/current/scripts/restart-server " +
  "after changing the settings in /etc/zulip before your changes will take effect.";

describe("send_test_email", () => {
  let sink: SmtpSink;
  let tmp: string;
  let n = 0;

  beforeAll(async () => {
    sink = await startSmtpSink();
    tmp = makeTempDir("testemail");
  });
  afterAll(async () => {
    await sink?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const conf = (settings: string[], administrator = "admin@example.com") =>
    writeConfDir(path.join(tmp, `conf${++n}`), { externalHost: HOST, administrator, settings });
  const smtp = () => ["EMAIL_HOST = '127.0.0.1'", `EMAIL_PORT = ${sink.port}`];
  const run = (confDir: string, args: string[], env: Record<string, string> = {}) =>
    runCli(["send_test_email", "--conf-dir", confDir, ...args], { ZULIP_LOG_DIR: tmp, ZULIP_DEPLOY_DIR: path.join(tmp, "nodeploy"), ...env });

  it("sends Zulip's two test messages, from the support and the noreply address, and says so", async () => {
    const before = sink.messages.length;
    const r = await run(conf(smtp(), "Zulip Admins <admins@example.com>"), ["one@example.org", "two@example.org"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const mails = sink.messages.slice(before);
    expect(mails).toHaveLength(2);

    const [support, noreply] = mails;
    expect(support.parsed.header("subject")).toBe("Zulip email test");
    expect(parseAddress(support.parsed.header("from")!)).toEqual({ name: "", address: "admins@example.com" });
    expect(support.envelopeFrom).toBe("admins@example.com");
    expect(parseAddressList(support.parsed.header("to")!).map((a) => a.address)).toEqual(["one@example.org", "two@example.org"]);
    expect(support.envelopeTo).toEqual(["one@example.org", "two@example.org"]);
    expect(support.parsed.text).toBe(BODY);
    expect(support.parsed.html).toBeUndefined();
    // Django's send_mail adds none of Zulip's send_email headers.
    expect(support.parsed.header("reply-to")).toBeUndefined();
    expect(support.parsed.header("x-auto-response-suppress")).toBeUndefined();

    expect(noreply.parsed.header("subject")).toBe("Zulip noreply email test");
    const noreplyFrom = parseAddress(noreply.parsed.header("from")!).address;
    expect(noreplyFrom).toMatch(/^noreply-[a-z2-7]{24}@zulip\.example\.com$/);
    expect(noreply.envelopeFrom).toBe(noreplyFrom);
    expect(noreply.envelopeTo).toEqual(["one@example.org", "two@example.org"]);
    expect(noreply.parsed.text).toBe(BODY);

    expect(r.stdout).toBe(
      [
        "If you run into any trouble, read:",
        "",
        "  https://zulip.readthedocs.io/en/latest/production/email.html#troubleshooting",
        "",
        "The most common error is not setting `ADD_TOKENS_TO_NOREPLY_ADDRESS=False` when",
        "using an email provider that doesn't support that feature.",
        "",
        "Sending 2 test emails from:",
        "  * admins@example.com",
        `  * ${noreplyFrom}`,
        "",
        "Successfully sent 2 emails to one@example.org, two@example.org!",
        "",
      ].join("\n"),
    );
  });

  it("uses the plain noreply address when ADD_TOKENS_TO_NOREPLY_ADDRESS is off", async () => {
    const before = sink.messages.length;
    const r = await run(conf([...smtp(), "ADD_TOKENS_TO_NOREPLY_ADDRESS = False", "NOREPLY_EMAIL_ADDRESS = 'Zulip <bounce@mail.example.com>'"]), [
      "x@example.org",
    ]);
    expect(r.exitCode).toBe(0);
    const mails = sink.messages.slice(before);
    expect(parseAddress(mails[1].parsed.header("from")!).address).toBe("bounce@mail.example.com");
    expect(r.stdout).toContain("  * bounce@mail.example.com\n");
  });

  it("--admins also mails ADMINS (ZULIP_ADMINISTRATOR) with Django's subject prefix; --managers is a no-op without MANAGERS", async () => {
    const before = sink.messages.length;
    const r = await run(conf(smtp()), ["x@example.org", "--admins", "--managers"]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const mails = sink.messages.slice(before);
    expect(mails).toHaveLength(3);
    expect(mails[2].parsed.header("subject")).toBe("[Django] Zulip admins email test");
    expect(mails[2].envelopeTo).toEqual(["admin@example.com"]);
    expect(mails[2].parsed.text).toBe("This email was sent to the site admins.");
  });

  it("--json reports both messages", async () => {
    const r = await run(conf(smtp()), ["x@example.org", "--json"]);
    expect(r.stderr + r.stdout).not.toContain("Failed");
    expect(r.exitCode).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.ok).toBe(true);
    expect(doc.results.map((s: any) => [s.subject, s.to])).toEqual([
      ["Zulip email test", ["x@example.org"]],
      ["Zulip noreply email test", ["x@example.org"]],
    ]);
    expect(doc.results[0].from).toBe("admin@example.com");
  });

  it("exits 3 pointing at the docs when outgoing email is not configured", async () => {
    const r = await run(conf([]), ["x@example.org"]);
    expect(r.exitCode).toBe(3);
    // manage.py's CommandError, word for word (TestWarnNoEmail checks it starts so).
    expect(r.stderr).toBe("Outgoing email not yet configured, see\n  https://zulip.readthedocs.io/en/latest/production/email.html\n");
    expect(r.stdout).toBe("");
  });

  it("warns, like log_email_config_errors, about a username without a password and sends without logging in", async () => {
    const before = sink.messages.length;
    const r = await run(conf([...smtp(), "EMAIL_HOST_USER = 'someone'"]), ["x@example.org"]);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain("An SMTP username was set (EMAIL_HOST_USER), but password is unset (EMAIL_HOST_PASSWORD).");
    expect(sink.messages.slice(before).map((m) => m.auth)).toEqual([undefined, undefined]);
  });

  it("needs at least one address", async () => {
    const r = await run(conf(smtp()), []);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe("Usage: zulip-manage send_test_email username@example.com\n");
  });

  it("reports a failure with the SMTP log and exits 1", async () => {
    const closed = await new Promise<number>((resolve) => {
      const s = net.createServer();
      s.listen(0, "127.0.0.1", () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const r = await run(conf(["EMAIL_HOST = '127.0.0.1'", `EMAIL_PORT = ${closed}`]), ["x@example.org"]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toContain("  * admin@example.com\n");
    expect(r.stdout).toContain(`Failed to send mails: cannot talk to the SMTP server 127.0.0.1:${closed}`);
    expect(r.stdout).toContain("Full SMTP log follows:");
    expect(r.stderr).toBe("Email sending failed!\n");
    expect(r.durationMs).toBeLessThan(20_000);
  });

  it("reports a refused recipient", async () => {
    sink.reject.add("nobody@example.org");
    try {
      const r = await run(conf(smtp()), ["nobody@example.org"]);
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toMatch(/Failed to send mails: .*550.*nobody@example\.org/);
      expect(r.stdout).toMatch(/RCPT TO:<nobody@example\.org>/);
      expect(r.stderr).toBe("Email sending failed!\n");
    } finally {
      sink.reject.delete("nobody@example.org");
    }
  });

  describe("TLS", () => {
    let cert: ReturnType<typeof selfSignedCert>;
    const sinks: SmtpSink[] = [];
    beforeAll(() => {
      cert = selfSignedCert(tmp);
    });
    afterAll(async () => {
      for (const s of sinks) await s.close();
    });
    const tlsSink = async (implicitTls: boolean, auth?: { user: string; pass: string }) => {
      const s = await startSmtpSink({ tls: { key: cert!.key, cert: cert!.cert, implicitTls }, auth });
      sinks.push(s);
      return s;
    };
    // The CLI trusts the test certificate the way a server trusts its CA bundle.
    const trust = () => ({ NODE_EXTRA_CA_CERTS: cert!.certFile });

    it("EMAIL_USE_TLS upgrades with STARTTLS and logs in with the email_password secret", async () => {
      if (!cert) return;
      const s = await tlsSink(false, { user: "zulip", pass: "pw" });
      const c = writeConfDir(path.join(tmp, `conf${++n}`), {
        externalHost: HOST,
        settings: ["EMAIL_HOST = '127.0.0.1'", `EMAIL_PORT = ${s.port}`, "EMAIL_USE_TLS = True", "EMAIL_HOST_USER = 'zulip'"],
        secrets: { email_password: "pw" },
      });
      const r = await run(c, ["x@example.org"], trust());
      expect(r.stderr).toBe("");
      expect(r.exitCode).toBe(0);
      expect(s.messages).toHaveLength(2);
      expect(s.messages.every((m) => m.secure && m.auth?.username === "zulip")).toBe(true);
      // an untrusted certificate is refused, like Django's verified TLS context
      const untrusted = await run(c, ["x@example.org"]);
      expect(untrusted.exitCode).toBe(1);
      expect(untrusted.stdout).toContain("Failed to send mails:");
    });

    it("EMAIL_USE_SSL speaks TLS from the first byte", async () => {
      if (!cert) return;
      const s = await tlsSink(true);
      const c = conf(["EMAIL_HOST = '127.0.0.1'", `EMAIL_PORT = ${s.port}`, "EMAIL_USE_SSL = True"]);
      const r = await run(c, ["x@example.org"], trust());
      expect(r.exitCode).toBe(0);
      expect(s.messages).toHaveLength(2);
      expect(s.messages.every((m) => m.secure)).toBe(true);
    });

    it("without either setting, never upgrades even when the server offers STARTTLS (as Django)", async () => {
      if (!cert) return;
      const s = await tlsSink(false);
      const r = await run(conf(["EMAIL_HOST = '127.0.0.1'", `EMAIL_PORT = ${s.port}`]), ["x@example.org"]);
      expect(r.exitCode).toBe(0);
      expect(s.messages).toHaveLength(2);
      expect(s.messages.some((m) => m.secure)).toBe(false);
    });

    it("refuses EMAIL_USE_TLS together with EMAIL_USE_SSL", async () => {
      const r = await run(conf([...smtp(), "EMAIL_USE_TLS = True", "EMAIL_USE_SSL = True"]), ["x@example.org"]);
      expect(r.exitCode).toBe(3);
      expect(r.stderr).toContain("EMAIL_USE_TLS/EMAIL_USE_SSL are mutually exclusive");
    });
  });
});
