// Tornado's own door for events: POST http://127.0.0.1:<port>/api/internal/notify_tornado with
// form fields `data` (the JSON of {"event": …, "users": […]}) and `secret` (shared_secret).
// zerver/tornado/views.py `notify` is an internal_api_view: POST only, the request must come
// from 127.0.0.1 / ::1 and carry the shared secret; it runs process_notification(data) in that
// one Tornado process, so on a sharded server each user's part goes to the port that owns the
// user. Django itself posts here only when it has no RabbitMQ (send_notification_http in
// zerver/tornado/django_api.py, 0.5 s timeout); we use it when RabbitMQ cannot be reached.
// No X-Real-Ip / X-Forwarded-For headers: Tornado runs with xheaders=True and would take them
// as the client address.
import http from "node:http";

export const TORNADO_HOST = "127.0.0.1";

export function tornadoUrl(port: number): string {
  return `http://${TORNADO_HOST}:${port}`;
}

/** POST one notice to one Tornado process; resolves when Tornado answered success. */
export function postNotifyTornado(port: number, notice: unknown, sharedSecret: string, timeoutMs = 2000): Promise<void> {
  const form = new URLSearchParams({ data: JSON.stringify(notice), secret: sharedSecret }).toString();
  return new Promise<void>((resolve, reject) => {
    const req = http.request(
      {
        host: TORNADO_HOST,
        port,
        method: "POST",
        path: "/api/internal/notify_tornado",
        headers: { "Content-Type": "application/x-www-form-urlencoded", "Content-Length": Buffer.byteLength(form) },
        timeout: timeoutMs,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let result: any = null;
          try {
            result = JSON.parse(text);
          } catch {
            /* not JSON */
          }
          if (res.statusCode === 200 && result?.result === "success") resolve();
          else reject(new Error(`Tornado at ${tornadoUrl(port)} answered HTTP ${res.statusCode}${result?.msg ? `: ${result.msg}` : ""}`));
        });
        res.on("error", (e) => reject(e));
      },
    );
    req.on("timeout", () => req.destroy(Object.assign(new Error(`no answer from Tornado at ${tornadoUrl(port)}`), { code: "ETIMEDOUT" })));
    req.on("error", (e: any) => reject(e?.code === "ECONNREFUSED" ? new Error(`nothing listens at ${tornadoUrl(port)} (Tornado not running there)`) : e));
    req.end(form);
  });
}
