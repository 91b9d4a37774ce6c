// deliverEmails (src/services/email.ts), the bulk sending send_password_reset_email and
// send_custom_email share, against a real SMTP server (smtp-server): one server check before a
// bulk send, pooled sending with a line per failed recipient, and the stop after repeated
// connection failures when the server goes away in the middle.
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { deliverEmails, type EmailDeliveryError, type EmailSettings, type OutgoingEmail } from "../src/services/email.js";
import { type SmtpSink, startSmtpSink } from "./email-support.js";

function settings(port: number): EmailSettings {
  return {
    host: "127.0.0.1",
    port,
    useTls: false,
    useSsl: false,
    user: "",
    password: null,
    timeoutSeconds: 5,
    configuredBackend: null,
    noreply: "noreply@example.net",
    tokenizedNoreply: "noreply@example.net",
    addTokensToNoreply: false,
    administrator: "admin@example.net",
    installationName: "example.net",
    emailImagesBaseUrl: "https://example.net/static/images/emails",
    physicalAddress: "",
    subjectPrefix: "",
    serverEmail: "admin@example.net",
    admins: [],
    managers: [],
    logDir: null,
  };
}

function mail(to: string): OutgoingEmail {
  return {
    template: "test",
    subject: `Hello ${to}`,
    text: "Hello.\n",
    from: { name: "Zulip", address: "noreply@example.net" },
    to: [{ name: "", address: to }],
    envelopeFrom: "noreply@example.net",
    headers: {},
    log: false,
  };
}

async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

let sink: SmtpSink | undefined;
afterEach(async () => {
  await sink?.close();
  sink = undefined;
});

describe("deliverEmails", () => {
  it("sends one message per item over the pool; a rejected recipient is one failure line, the rest go through", async () => {
    sink = await startSmtpSink();
    sink.reject.add("bad@example.org");
    const items = ["a@example.org", "bad@example.org", "b@example.org", "c@example.org"];
    const sentTo: string[] = [];
    const errs: string[] = [];
    const d = await deliverEmails(settings(sink.port), items, mail, {
      progress: false,
      failureLine: (item, e: EmailDeliveryError) => `failed ${item}: ${e.responseCode}`,
      onSent: (item) => sentTo.push(item),
      err: (l) => errs.push(l),
    });
    expect(d).toMatchObject({ sent: 3, failed: 1, notSent: 0, unreachable: null });
    expect(d.results.map((r) => [r.item, r.status])).toEqual([
      ["a@example.org", "sent"],
      ["bad@example.org", "failed"],
      ["b@example.org", "sent"],
      ["c@example.org", "sent"],
    ]);
    expect(sentTo.sort()).toEqual(["a@example.org", "b@example.org", "c@example.org"]);
    expect(sink.messages.map((m) => m.envelopeTo[0]).sort()).toEqual(sentTo.sort());
    expect(errs).toEqual([]);
  });

  it("several items and no server: nothing attempted, `unreachable` says why, no line per recipient", async () => {
    const port = await closedPort();
    const failures: string[] = [];
    const d = await deliverEmails(settings(port), ["a@example.org", "b@example.org"], mail, {
      progress: false,
      failureLine: (item) => {
        failures.push(item);
        return item;
      },
      err: () => undefined,
    });
    expect(d.unreachable?.message).toContain("ECONNREFUSED");
    expect(d).toMatchObject({ sent: 0, failed: 0, notSent: 2 });
    expect(d.results.every((r) => r.status === "not_sent" && r.error === d.unreachable)).toBe(true);
    expect(failures).toEqual([]);
  });

  it("one item and no server: the attempt fails with its own line (no separate check)", async () => {
    const port = await closedPort();
    const d = await deliverEmails(settings(port), ["a@example.org"], mail, { progress: false, failureLine: (i) => i, err: () => undefined });
    expect(d).toMatchObject({ sent: 0, failed: 1, notSent: 0, unreachable: null });
    expect(d.results[0].error?.connectionLevel).toBe(true);
  });

  it("the server going away in the middle: stops after repeated connection failures and says how many were not attempted", async () => {
    sink = await startSmtpSink();
    const items = Array.from({ length: 40 }, (_, i) => `u${i}@example.org`);
    const errs: string[] = [];
    let sentCount = 0;
    const stop = sink;
    const d = await deliverEmails(settings(sink.port), items, mail, {
      progress: false,
      failureLine: (item) => item,
      onSent: () => {
        // After a few messages the server shuts down (closing its connections).
        if (++sentCount === 5) void stop.close();
      },
      err: (l) => errs.push(l),
    });
    sink = undefined;
    expect(d.sent).toBeGreaterThanOrEqual(5);
    expect(d.sent + d.failed + d.notSent).toBe(40);
    expect(d.notSent).toBeGreaterThan(0);
    expect(errs).toEqual([`Stopped after repeated connection failures; ${d.notSent} email${d.notSent === 1 ? " was" : "s were"} not attempted.`]);
  });
});
