// Integer options (argparse's type=int in manage.py: delete_old_unclaimed_attachments -w/--weeks,
// soft_deactivate_users --inactive-for, rate_limit -s/--seconds) accept exactly what Python's
// int() accepts: src/cli/options.ts pythonInt / pythonIntArg. The expectations were taken from
// CPython 3.11's int() on the same strings.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pythonInt, pythonIntArg } from "../src/cli/options.js";
import { runCli } from "./helpers/cli.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";

const ACCEPTED: [string, number][] = [
  ["5", 5],
  ["1_0", 10],
  ["1_000", 1000],
  [" 7 ", 7],
  ["+5", 5],
  ["-3", -3],
  ["010", 10],
  ["1\n", 1],
  ["\t-1_000\r\n", -1000],
  ["\x0b1\x0c", 1],
  ["\u00a01", 1],
  ["\u20071", 1],
  ["\u30001", 1],
  ["\u202f1", 1],
  ["\x85 2", 2],
  ["１２", 12],
  ["١٢", 12],
  ["٣", 3],
  ["１_２", 12],
  ["𝟏𝟐", 12],
  ["𝟘𝟡", 9],
];

const REJECTED = ["", " ", "x", "1__0", "_1", "1_", "+_1", "- 1", " - 1", "0x10", "1.0", "1e3", "\ufeff1", "\x1c1", "1\x1f", "\u180e1", "\u200b1", "1 2"];

describe("pythonInt: Python's int()", () => {
  it.each(ACCEPTED)("accepts %j as %d", (text, value) => {
    expect(pythonInt(text)).toBe(value);
    expect(pythonIntArg(text)).toBe(value);
  });
  it.each(REJECTED.map((t) => [t]))("rejects %j", (text) => {
    expect(pythonInt(text)).toBeNull();
    expect(() => pythonIntArg(text)).toThrow(`invalid int value: '${text}'`);
  });
});

describe("integer options of the commands", () => {
  let copy: ServerCopy;
  beforeAll(async () => {
    copy = await startServerCopy({ template: "zulip12_fresh", memcached: false });
  }, 120_000);
  afterAll(() => copy?.stop());
  const cli = (args: string[]) => runCli(args, { confDir: copy.conf, db: copy.db });

  it("delete_old_unclaimed_attachments -w takes 1_0 and ' +8 ' (manage.py's int)", async () => {
    for (const [text, weeks] of [
      ["1_0", 10],
      [" +8 ", 8],
    ] as const) {
      const r = await cli(["delete_old_unclaimed_attachments", "-w", text, "--json"]);
      // Without -f: the dry run's document, exit 1 as manage.py.
      expect(r.exitCode, r.stderr).toBe(1);
      expect(JSON.parse(r.stdout)).toMatchObject({ dry_run: true, weeks });
    }
  });

  it("delete_old_unclaimed_attachments -w 1__0 is a usage error", async () => {
    const r = await cli(["delete_old_unclaimed_attachments", "-w", "1__0"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("invalid int value: '1__0'");
  });

  it("soft_deactivate_users --inactive-for takes ' 6_0 ' (manage.py's int)", async () => {
    const r = await cli(["soft_deactivate_users", "-d", "--inactive-for", " 6_0 ", "-r", "2", "--json"]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ action: "deactivate", mode: "inactive", inactive_for_days: 60 });
  });

  it("soft_deactivate_users --inactive-for 2.5 is a usage error", async () => {
    const r = await cli(["soft_deactivate_users", "-d", "--inactive-for", "2.5"]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain("invalid int value: '2.5'");
  });

  it("rate_limit -s takes ' 1_0 ' and refuses '1__0'", async () => {
    const ok = await cli(["rate_limit", "-e", "nobody@example.com", "-s", " 1_0 ", "show"]);
    // Past the argument check: the user lookup fails.
    expect(ok.exitCode).toBe(1);
    const bad = await cli(["rate_limit", "-e", "nobody@example.com", "-s", "1__0", "show"]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain("argument -s/--seconds: invalid int value: '1__0'");
  });
});
