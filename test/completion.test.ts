// `zulip-manage completion bash|zsh`: the generated scripts are loaded into real shells and
// their completion functions are run with simulated command lines. Realm ids come from a real
// Zulip 12 database through the built CLI (the scripts call `zulip-manage completion --realms`).
import fs from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRealm } from "../src/zulip/actions/create-realm.js";
import { createUser } from "../src/zulip/actions/create-user.js";
import { ROLES } from "../src/zulip/roles.js";
import { CLI_BIN, cliEnv, runCli } from "./helpers/cli.js";
import { makeConfDir, type ConfDir } from "./helpers/confdir.js";
import { createDatabase, type TestDatabase } from "./helpers/pg.js";
import { type ServerCopy, startServerCopy } from "./helpers/server-copy.js";
import { makeTempDir, removeDirSync } from "./helpers/services.js";
import { requireTool } from "./helpers/tools.js";

let db: TestDatabase;
let conf: ConfDir;
let binDir: string;
let bashScript: string;
let env: Record<string, string>;

let copy: ServerCopy;

beforeAll(async () => {
  copy = await startServerCopy({ template: "zulip12_fresh", memcached: false });
  ({ db, conf } = copy);
  await db.client.query("BEGIN");
  for (const stringId of ["lear", "engineering"]) {
    const r = await createRealm(db.client, { stringId, name: `Realm ${stringId}` });
    await createUser(db.client, r.id, {
      email: `owner@${stringId}.example.com`,
      fullName: "Owner",
      role: ROLES.REALM_OWNER,
      externalHost: "zulip.example.net",
    });
  }
  await db.client.query("COMMIT");
  // A directory with just `zulip-manage` on PATH, as an installed CLI would be.
  binDir = makeTempDir("completion-bin");
  fs.symlinkSync(CLI_BIN, path.join(binDir, "zulip-manage"));
  const base = cliEnv({ confDir: conf, db });
  env = { ...base, PATH: `${binDir}:${path.dirname(process.execPath)}:${base.PATH ?? "/usr/bin:/bin"}` };
  const r = await runCli(["completion", "bash"], { confDir: conf, db });
  expect(r.exitCode).toBe(0);
  bashScript = r.stdout + "\n";
});

afterAll(async () => {
  if (binDir) removeDirSync(binDir);
  await copy?.stop();
});

/** Run the completion function for each command line (words; the last one is being completed). */
async function bashComplete(lines: string[][], extraEnv: Record<string, string> = {}): Promise<string[][]> {
  const dir = makeTempDir("completion-bash");
  try {
    const scriptFile = path.join(dir, "zulip-manage.bash");
    fs.writeFileSync(scriptFile, bashScript);
    const calls = lines.map((words) => `_t ${words.map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(" ")}`).join("\n");
    const program = `
source ${JSON.stringify(scriptFile)}
_t() { COMP_WORDS=("$@"); COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 )); COMP_LINE="$*"; COMP_POINT=\${#COMP_LINE}; COMPREPLY=(); _zulip_manage; printf '%s\\n' "\${COMPREPLY[@]}"; echo '<<end>>'; }
${calls}
`;
    const r = await execa("bash", ["--norc", "--noprofile", "-c", program], { env: { ...env, ...extraEnv }, extendEnv: false, reject: false, cwd: dir });
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    const blocks = r.stdout.split("<<end>>\n").map((b) => b.replace(/<<end>>$/, ""));
    return blocks.slice(0, lines.length).map((b) => b.split("\n").filter((x) => x !== ""));
  } finally {
    removeDirSync(dir);
  }
}

describe("bash", () => {
  it("is valid bash and registers the completion function for zulip-manage", async () => {
    const dir = makeTempDir("completion-syntax");
    try {
      const f = path.join(dir, "s.bash");
      fs.writeFileSync(f, bashScript);
      expect((await execa("bash", ["-n", f], { reject: false })).exitCode).toBe(0);
      const r = await execa("bash", ["--norc", "-c", `source ${f}; complete -p zulip-manage`], { reject: false });
      expect(r.stdout).toBe("complete -F _zulip_manage zulip-manage");
    } finally {
      removeDirSync(dir);
    }
  });

  it("completes command names, help <command>, options, choices and realm ids", async () => {
    const names = (await runCli(["help", "--commands"])).stdout.split("\n");
    const [cmds, ch, help, opts, flush, flushEq, realms, realmsPrefix, shells, free, noneForUnknown] = await bashComplete([
      ["zulip-manage", "list_re"],
      ["zulip-manage", "change_user_r"],
      ["zulip-manage", "help", "send_"],
      ["zulip-manage", "change_user_role", "--fl"],
      ["zulip-manage", "change_user_role", "--flush-cache", ""],
      ["zulip-manage", "change_user_role", "--flush-cache", "=", "a"],
      ["zulip-manage", "change_user_role", "-r", ""],
      ["zulip-manage", "show_admins", "--realm", "e"],
      ["zulip-manage", "completion", ""],
      ["zulip-manage", "send_custom_email", "--subject", ""],
      ["zulip-manage", "no_such_command", "--"],
    ]);
    expect(cmds).toEqual(["list_realms"]);
    expect(ch).toEqual(["change_user_role"]);
    expect(help).toEqual(names.filter((n) => n.startsWith("send_")));
    expect(help).toEqual(expect.arrayContaining(["send_custom_email", "send_password_reset_email", "send_test_email"]));
    expect(opts).toEqual(["--flush-cache"]);
    expect(flush).toEqual(["keys", "all", "none"]);
    expect(flushEq).toEqual(["all"]);
    // The realms of the database the configuration points at (the root realm '' is not completable).
    const inDb = (await db.query<{ s: string }>("SELECT string_id AS s FROM zerver_realm WHERE string_id <> '' ORDER BY 1")).map((r) => r.s);
    expect(inDb).toEqual(["engineering", "lear", "zulipinternal"]);
    expect(realms).toEqual(inDb);
    expect(realmsPrefix).toEqual(["engineering"]);
    expect(shells).toEqual(["bash", "zsh"]);
    expect(free).toEqual([]);
    expect(noneForUnknown).toEqual([]);
  });

  it("lists every registered command and each command's own options", async () => {
    const help = await runCli(["help", "--commands"]);
    const names = help.stdout.split("\n");
    const [all, sce, globals] = await bashComplete([
      ["zulip-manage", ""],
      ["zulip-manage", "send_custom_email", "--"],
      ["zulip-manage", "dbshell", "--"],
    ]);
    expect(all).toEqual([...names, "help", "--help", "--version"]);
    for (const o of ["--entire-server", "--marketing", "--markdown-template-path", "--dry-run", "--subject", "--json", "--conf-dir"]) {
      expect(sce).toContain(o);
    }
    // Hidden options are not offered.
    expect(sce).not.toContain("--remote-servers");
    expect(sce).not.toContain("--path");
    expect(globals).toEqual(expect.arrayContaining(["--json", "--conf-dir", "--no-color", "--traceback", "--allow-root", "--setting", "--help"]));
    expect(globals).not.toContain("--dry-run");
  });

  it("asks the Zulip server named by --conf-dir on the command line for the realm ids", async () => {
    const other = await createDatabase({ template: "zulip12_fresh" });
    const otherConf = makeConfDir({ db: { name: other.name } });
    try {
      // No ZULIP_CONF_DIR / PGDATABASE in the environment: only the command line says where to look.
      const [viaFlag, viaEq, none] = await bashComplete(
        [
          ["zulip-manage", "show_admins", "--conf-dir", otherConf.dir, "-r", ""],
          ["zulip-manage", "show_admins", `--conf-dir=${otherConf.dir}`, "-r", ""],
          ["zulip-manage", "show_admins", "-r", ""],
        ],
        { ZULIP_CONF_DIR: "/nonexistent", PGDATABASE: other.name },
      );
      expect(viaFlag).toEqual(["zulipinternal"]);
      expect(viaEq).toEqual(["zulipinternal"]);
      expect(none).toEqual([]); // the CLI fails (no config): nothing offered, nothing printed
    } finally {
      otherConf.cleanup();
      await other.drop();
    }
  });
});

describe("completion --realms", () => {
  it("prints the realm string ids, one per line, or as JSON", async () => {
    const r = await runCli(["completion", "--realms"], { confDir: conf, db });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.split("\n")).toEqual(["engineering", "lear", "zulipinternal"]);
    const j = await runCli(["completion", "--realms", "--json"], { confDir: conf, db });
    const doc = JSON.parse(j.stdout);
    expect(doc).toMatchObject({ ok: true, exit_code: 0, error: null, schema_version: 1 });
    expect(doc.realms.map((r: { string_id: string }) => r.string_id)).toEqual(["engineering", "lear", "zulipinternal"]);
  });

  it("needs a shell name otherwise, and only bash or zsh", async () => {
    const none = await runCli(["completion"]);
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toContain("the following arguments are required: <shell>");
    const bad = await runCli(["completion", "fish"]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/'fish' is invalid for argument 'shell'. Allowed choices are bash, zsh/);
  });
});

// zsh is required (CI installs it): a missing shell fails these tests rather than skipping them.
let zsh: string;

describe("zsh", () => {
  let zshScript: string;
  beforeAll(async () => {
    zsh = requireTool("zsh");
    const r = await runCli(["completion", "zsh"], { confDir: conf, db });
    expect(r.exitCode).toBe(0);
    zshScript = r.stdout + "\n";
  });

  async function zshRun(program: string): Promise<string> {
    const dir = makeTempDir("completion-zsh");
    try {
      const f = path.join(dir, "_zulip-manage");
      fs.writeFileSync(f, zshScript);
      const r = await execa(zsh!, ["-f", "-c", program.replaceAll("$SCRIPT", f)], {
        env: { ...env, HOME: dir },
        extendEnv: false,
        reject: false,
        cwd: dir,
      });
      expect(r.stderr).toBe("");
      return r.stdout;
    } finally {
      removeDirSync(dir);
    }
  }

  it("is valid zsh, and registers itself with compdef after compinit", async () => {
    expect(await zshRun(`zsh -n $SCRIPT && print syntax-ok`)).toBe("syntax-ok");
    const out = await zshRun(`autoload -Uz compinit; compinit -u -D; source $SCRIPT; print -r -- $_comps[zulip-manage]`);
    expect(out).toBe("_zulip_manage");
  });

  it("offers commands, options, choices and realm ids", async () => {
    // The completion builtins only work inside a completion widget; stand-ins record what the
    // function offers (compadd's words, _describe's names, _files calls).
    const harness = `
compdef() { :; }
source $SCRIPT
compadd() { local a; local -a skip; for a in "$@"; do case $a in -a) skip=(1);; --) ;; *) if (( $#skip )); then print -rl -- \${(P)a}; skip=(); else print -r -- $a; fi;; esac; done; }
_describe() { local arr=$4; print -rl -- \${\${(P)arr}%%:*}; }
_files() { print -r -- "<files $*>"; }
compset() { :; }
t() { words=("$@"); CURRENT=$#words; _zulip_manage; print -r -- '<<end>>'; }
`;
    const out = await zshRun(
      harness +
        [
          `t zulip-manage li`,
          `t zulip-manage change_user_role --flush-cache ''`,
          `t zulip-manage change_user_role --flush-cache=`,
          `t zulip-manage show_admins -r ''`,
          `t zulip-manage send_custom_email --markdown-template-path ''`,
          `t zulip-manage doctor --conf-dir ''`,
          `t zulip-manage completion ''`,
          `t zulip-manage help ''`,
        ].join("\n"),
    );
    const blocks = out.split("<<end>>\n").map((b) => b.split("\n").filter(Boolean));
    expect(blocks[0]).toEqual(expect.arrayContaining(["list_realms", "help", "--help", "--version"]));
    expect(blocks[1]).toEqual(["keys", "all", "none"]);
    expect(blocks[2]).toEqual(["keys", "all", "none"]);
    expect(blocks[3]).toEqual(["engineering", "lear", "zulipinternal"]);
    expect(blocks[4]).toEqual(["<files >"]);
    expect(blocks[5]).toEqual(["<files -/>"]);
    expect(blocks[6]).toEqual(["bash", "zsh"]);
    expect(blocks[7]).toContain("send_custom_email");
  });
});
