// backup: the tarball of manage.py backup (the database as a pg_dump directory, /etc/zulip, local
// uploads, the Zulip, OS and PostgreSQL versions) that Zulip's scripts/setup/restore-backup
// restores. See src/lib/backup.ts for the layout and what differs from Zulip (staging on the
// output's filesystem, 0600 tarball renamed into place when complete, --threads, --keep).
//
// Cron-friendly: never prompts; progress bars only when stderr is a terminal; one summary line
// ("Backup tarball written to PATH (SIZE, N s; ...)") or nothing at all with --quiet (errors still
// go to stderr, with exit 1, or 3 when pg_dump/tar is missing or the database is unreachable).
//
// --json prints one document:
//   {"ok": true, "path": "/var/backups/zulip/zulip-backup-2026-12-07-03-00-00-k2j4s8xq.tar.gz",
//    "bytes": 123456, "seconds": 4.2, "zulip_version": "11.4", "os_version": "debian 12",
//    "postgres_version": 160004,
//    "database": {"included": true, "pg_dump": "/usr/lib/postgresql/16/bin/pg_dump",
//                 "pg_dump_version": "pg_dump (PostgreSQL) 16.4", "jobs": 1, "bytes": 98765},
//    "settings": {"dir": "/etc/zulip"},
//    "uploads": {"included": true, "dir": "/home/zulip/uploads", "reason": null},
//    "removed": ["/var/backups/zulip/zulip-backup-2026-11-30-03-00-00-a8d7f6g5.tar.gz"],
//    "not_removed": [], "members": ["zulip-backup/zulip-version", ...]}
import path from "node:path";
import { InvalidArgumentError } from "commander";
import { backup, type BackupResult } from "../lib/backup.js";
import { defineCommand } from "../lib/command.js";
import { planConnection } from "../lib/db.js";

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
  const removed = r.removed.length ? `; removed ${r.removed.length} older backup${r.removed.length === 1 ? "" : "s"}` : "";
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
  configure(cmd) {
    cmd.option("--output <file>", "filename of output tarball, or a directory to write zulip-backup-<timestamp>-<random>.tar.gz into (default: the temp directory)");
    cmd.option("--skip-db", "skip database backup");
    cmd.option("--skip-uploads", "skip uploads backup");
    cmd.option("--threads <n>", "pg_dump jobs dumping tables in parallel", wholeNumber, 1);
    cmd.option("--keep <n>", "after the backup, delete older backups in the same directory beyond the newest N (this one included)", wholeNumber);
    cmd.option("-q, --quiet", "print nothing but errors");
  },
  async run(ctx, _args, opts) {
    const out = ctx.out;
    const quiet = Boolean(opts.quiet);
    const config = ctx.config();
    const uploads = config.settings.fileValue("LOCAL_UPLOADS_DIR", null);
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
      uploadsDir: typeof uploads === "string" && uploads !== "" ? path.resolve(ctx.paths.deployDir, uploads) : null,
      env: ctx.env,
      progress: !quiet && !out.json && process.stderr.isTTY ? process.stderr : null,
      warn: (m) => (quiet ? undefined : out.warn(`Warning: ${m}`)),
    });
    if (out.json) {
      out.jsonResult({ ok: true, ...result });
      return;
    }
    if (!quiet) out.line(summaryLine(result));
  },
});
