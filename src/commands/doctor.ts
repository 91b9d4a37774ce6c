// doctor: check everything zulip-manage depends on and say how to fix what is wrong (not a
// manage.py command). Read-only: it connects to PostgreSQL, memcached, Redis and the SMTP server
// (EHLO and login only, no mail), and changes nothing.
//
// Required checks: settings, zulip_conf, secrets, database, schema, memcached — exit 1 when one
// of them fails. Warnings only: redis, smtp, push (they matter to some commands). Exit 0
// otherwise, even with warnings. See src/ops/doctor.ts for what each check looks at.
//
// --json: src/schemas/doctor.ts; a check's status is the shared vocabulary's done (ok), warning,
// failed or skipped, with the summary in `error` when it is not done.
import { plural } from "../cli/output.js";
import { defineCommand } from "../cli/command.js";
import { UsageError } from "../lib/errors.js";
import { parseSettingOverrides } from "../config/config.js";
import { type CheckResult, type DoctorReport, runDoctor } from "../ops/doctor.js";
import { outcome, type StatusJson } from "../cli/json-contract.js";
import type { DoctorBody } from "../schemas/doctor.js";

const CONTRACT_STATUS: Record<CheckResult["status"], StatusJson> = { ok: "done", warn: "warning", fail: "failed", skip: "skipped" };

const STATUS_TEXT: Record<CheckResult["status"], string> = { ok: "ok", warn: "WARN", fail: "FAIL", skip: "skip" };

export default defineCommand({
  name: "doctor",
  description:
    "Check everything zulip-manage depends on: configuration files, secrets, the database and its Zulip schema version,\n" +
    "memcached (with SASL), Redis, outgoing email (connect and EHLO only, nothing is sent) and the push notification\n" +
    "service configuration. Prints what was found and, for each problem, how to fix it.\n\n" +
    "Exit status: 0 when every required check (settings, zulip.conf, secrets, database, schema, memcached) passed,\n" +
    "1 otherwise. Redis, SMTP and push notification problems are warnings.",
  examples: ["zulip-manage doctor", "zulip-manage doctor --json"],
  configure: (cmd) => cmd.option("--timeout <seconds>", "how long to wait for each network service (default 3)"),
  async run(ctx, _args, opts) {
    const out = ctx.out;
    let timeoutMs = 3000;
    if (opts.timeout !== undefined) {
      const t = Number(opts.timeout);
      if (!Number.isFinite(t) || t <= 0) {
        throw new UsageError(`argument --timeout: invalid value: '${opts.timeout}' (a number of seconds)`);
      }
      timeoutMs = Math.round(t * 1000);
    }
    const report = await runDoctor({
      paths: ctx.paths,
      env: ctx.env,
      overrides: parseSettingOverrides(ctx.globals.settings),
      timeoutMs,
    });
    if (out.json) {
      const n = report.requiredFailed;
      out.jsonBody<DoctorBody>(
        {
          required_failed_count: n,
          warning_count: report.warnings,
          checks: report.checks.map((c) => ({
            id: c.id,
            title: c.title,
            required: c.required,
            ...outcome(CONTRACT_STATUS[c.status], c.status === "ok" ? null : c.summary),
            summary: c.summary,
            details: c.details,
            remedy: c.remedy,
            duration_ms: c.ms,
          })),
        },
        { error: `${plural(n, "required check")} failed.`, error_code: "checks_failed" },
      );
    } else {
      out.write(await renderReport(report, { color: out.color, width: process.stdout.columns || 100, style: out.style }));
    }
    return report.ok ? 0 : 1;
  },
});

interface RenderOptions {
  color: boolean;
  width: number;
  style: { error(s: string): string; warning(s: string): string; success(s: string): string; dim(s: string): string; bold(s: string): string };
}

/** The human report: a table of the checks, then the remedies, then the verdict. */
export async function renderReport(report: DoctorReport, o: RenderOptions): Promise<string> {
  const { default: Table } = await import("cli-table3");
  const width = Math.max(70, Math.min(o.width, 160));
  const statusStyle = (s: CheckResult["status"]) =>
    s === "ok"
      ? o.style.success(STATUS_TEXT[s])
      : s === "warn"
        ? o.style.warning(STATUS_TEXT[s])
        : s === "fail"
          ? o.style.error(STATUS_TEXT[s])
          : o.style.dim(STATUS_TEXT[s]);
  const first = 27;
  const second = 6;
  const table = new Table({
    head: ["Check", "", "Result"],
    colWidths: [first, second, width - first - second - 4],
    wordWrap: true,
    style: { head: o.color ? ["bold"] : [], border: o.color ? ["grey"] : [], compact: false },
  });
  for (const c of report.checks) {
    const text = [c.summary, ...c.details.map((d) => `· ${d}`)].join("\n");
    table.push([c.title, statusStyle(c.status), text]);
  }
  const lines: string[] = [table.toString(), ""];
  const problems = report.checks.filter((c) => (c.status === "fail" || c.status === "warn") && c.remedy);
  if (problems.length) {
    lines.push(o.style.bold("How to fix:"));
    for (const c of problems) {
      const tag = c.status === "fail" ? o.style.error("FAIL") : o.style.warning("WARN");
      lines.push(`  ${tag} ${c.title}:`);
      for (const r of c.remedy!.split("\n")) lines.push(`       ${r}`);
    }
    lines.push("");
  }
  const w = report.warnings;
  const warnText = w ? ` (${plural(w, "warning")})` : "";
  lines.push(o.style.dim("Redis, outgoing email and push notification problems are warnings; the other checks are required."));
  if (report.ok) lines.push(o.style.success(`All required checks passed${warnText}.`));
  else lines.push(o.style.error(`${plural(report.requiredFailed, "required check")} failed${warnText}.`));
  return lines.join("\n") + "\n";
}
