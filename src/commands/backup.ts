// backup: the tarball of manage.py backup (the database as a pg_dump directory, /etc/zulip, local
// uploads, the Zulip, OS and PostgreSQL versions) that Zulip's scripts/setup/restore-backup
// restores. See src/ops/backup.ts for the layout and what differs from Zulip (staging on the
// output's filesystem, 0600 tarball renamed into place when complete, --threads, --keep).
//
// Cron-friendly: never prompts; progress bars only when stderr is a terminal; one summary line
// ("Backup tarball written to PATH (SIZE, N s; ...)") or nothing at all with --quiet (errors still
// go to stderr, with exit 1, or 3 when pg_dump/tar is missing or the database is unreachable).
//
// --json: src/schemas/backup.ts (README: --json output).
import path from "node:path";
import { InvalidArgumentError } from "@commander-js/extra-typings";
import { backup, type BackupResult } from "../ops/backup.js";
import { outcome } from "../cli/json-contract.js";
import type { BackupBody } from "../schemas/backup.js";
import { plural } from "../cli/output.js";
import { defineCommand } from "../cli/command.js";
import { planConnection } from "../db/db.js";
import { localUploadsDir } from "../zulip/actions/attachments.js";

function wholeNumber(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`expected a whole number, got '${v}'.`);
  return Number(v);
}

export function humanBytes(n: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${v.toFixed(1)} ${units[i]}`;
}

export function summaryLine(r: BackupResult): string {
  const parts = [r.database.included ? "database" : "no database", "settings", r.uploads.included ? "uploads" : "no uploads"];
  const removed = r.removed.length ? `; removed ${plural(r.removed.length, "older backup")}` : "";
  return `Backup tarball written to ${r.path} (${humanBytes(r.bytes)} in ${r.seconds.toFixed(1)} s: ${parts.join(", ")}${removed})`;
}

export default defineCommand({
  name: "backup",
  description:
    "Back up the Zulip server into a .tar.gz that Zulip's scripts/setup/restore-backup restores: the database " +
    "(pg_dump directory format), /etc/zulip, the local uploads and the Zulip/OS/PostgreSQL versions.\n" +
    "The tarball is written 0600 and appears under its name only when complete.",
  examples: [
    "zulip-manage backup",
    "zulip-manage backup --output /var/backups/zulip/ --keep 7 --quiet      # daily from cron",
    "zulip-manage backup --output /srv/zulip-$(date +%F).tar.gz --threads 4",
    "zulip-manage backup --skip-uploads --json",
  ],
  configure: (cmd) =>
    cmd
      .option(
        "--output <file>",
        "filename of output tarball, or a directory to write zulip-backup-<timestamp>-<random>.tar.gz into (default: the temp directory)",
      )
      .option("--skip-db", "skip database backup")
      .option("--skip-uploads", "skip uploads backup")
      .option("--threads <n>", "pg_dump jobs dumping tables in parallel", wholeNumber, 1)
      .option("--keep <n>", "after the backup, delete older backups in the same directory beyond the newest N (this one included)", wholeNumber)
      .option("-q, --quiet", "print nothing but errors"),
  async run(ctx, _args, opts) {
    const out = ctx.out;
    const quiet = Boolean(opts.quiet);
    const config = ctx.config();
    const uploads = localUploadsDir(config.settings);
    const db = await ctx.db();
    const result = await backup(db, {
      output: opts.output,
      skipDb: Boolean(opts.skipDb),
      skipUploads: Boolean(opts.skipUploads),
      threads: opts.threads,
      keep: opts.keep,
      plan: planConnection(config, ctx.env),
      confDir: ctx.paths.confDir,
      deployDir: ctx.paths.deployDir,
      // backup.py: os.path.join(settings.DEPLOY_ROOT, settings.LOCAL_UPLOADS_DIR)
      uploadsDir: uploads !== null ? path.resolve(ctx.paths.deployDir, uploads) : null,
      env: ctx.env,
      progress: !quiet && !out.json && process.stderr.isTTY ? process.stderr : null,
      warn: (m) => (quiet ? undefined : out.warn(`Warning: ${m}`)),
    });
    if (out.json) {
      out.jsonBody<BackupBody>({
        path: result.path,
        size_bytes: result.bytes,
        duration_ms: Math.round(result.seconds * 10000) / 10,
        zulip_version: result.zulip_version,
        os_version: result.os_version,
        postgres_version: result.postgres_version,
        database: {
          included: result.database.included,
          pg_dump: result.database.pg_dump,
          pg_dump_version: result.database.pg_dump_version,
          jobs: result.database.jobs,
          size_bytes: result.database.bytes,
        },
        settings: result.settings,
        uploads: result.uploads,
        older_backups: [
          ...result.removed.map((p) => ({ path: p, ...outcome("done") })),
          ...result.not_removed.map((x) => ({ path: x.path, ...outcome("failed", x.error) })),
        ],
        members: result.members,
      });
      return;
    }
    if (!quiet) out.line(summaryLine(result));
  },
});
