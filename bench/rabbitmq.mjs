// A throwaway RabbitMQ for the benchmarks: src/dev/rabbitmq.ts's private broker (the one the
// test harness starts too; loaded from dist/dev/, so `npm run build` first) in a temp dir, run
// as `nobody` when we are root. Never the system service. One user (`zulip`, the password given:
// the sandbox's rabbitmq_password secret) on the default vhost "/".
//
// startRabbitMQ() also starts a consumer that drains what the commands publish to Tornado's and
// the queue workers' queues (a stand-in for a running Zulip, so that nothing piles up).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** The queues the benchmarked commands publish to (declared durable, as Zulip declares them). */
const DRAINED_QUEUES = ["notify_tornado", "deferred_work", "email_senders", "missedmessage_mobile_notifications", "user_activity"];

/**
 * Start the broker; resolves with {host, port, vhost, username, published(), stop()}, or null
 * (with the reason logged) when rabbitmq-server is not installed.
 */
export async function startRabbitMQ({ password, log = () => undefined }) {
  const R = await import(path.join(ROOT, "dist", "dev", "rabbitmq.js"));
  const bins = R.findRabbitMQ(process.env.ZM_BENCH_RABBITMQ_SERVER || undefined);
  if (!bins) {
    log("rabbitmq-server not found (apt-get install rabbitmq-server): events are measured with --events=none only");
    return null;
  }
  const L = await import(path.join(ROOT, "dist", "dev", "sandbox.js"));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "zm-bench-rabbitmq-"));
  let broker;
  let conn;
  try {
    broker = await R.startBroker({ bins, dir, runAs: L.unprivilegedUser("nobody"), nodeName: "zmbench", username: "zulip", password, vhosts: ["/"] });
    // The stand-in consumer: every queue declared as Zulip declares it, messages dropped on arrival.
    conn = await broker.connect();
    const ch = await conn.createChannel();
    let published = 0;
    for (const q of DRAINED_QUEUES) {
      await ch.assertQueue(q, { durable: true, exclusive: false, autoDelete: false });
      await ch.consume(q, () => published++, { noAck: true });
    }
    return {
      host: broker.host,
      port: broker.port,
      vhost: "/",
      username: broker.username,
      /** Messages the stand-in consumer has received so far. */
      published: () => published,
      async stop() {
        await conn.close().catch(() => undefined);
        await broker.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await conn?.close().catch(() => undefined);
    await broker?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}
