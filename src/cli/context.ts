// Everything a running command needs, created once per invocation: global options, output,
// configuration (loaded on first use) and the database connection (opened on first use and
// closed by the CLI when the command ends).
import { type Config, loadConfig, parseSettingOverrides } from "../config/config.js";
import type { Db, Queryable } from "../db/db.js";
import { Output, type OutputOptions } from "./output.js";
import { type Paths, resolvePaths } from "../config/paths.js";

export interface GlobalOptions {
  confDir?: string;
  json?: boolean;
  color?: boolean;
  traceback?: boolean;
  allowRoot?: boolean;
  /** --setting NAME=VALUE, repeatable. */
  settings?: string[];
}

export class Context {
  readonly out: Output;
  readonly paths: Paths;
  private configCache?: Config;
  private dbPromise?: Promise<Db>;

  constructor(
    readonly globals: GlobalOptions,
    readonly env: NodeJS.ProcessEnv = process.env,
    chalk?: OutputOptions["chalk"],
    private readonly helpText?: () => string,
  ) {
    this.out = new Output({ json: globals.json, color: globals.color, chalk });
    this.paths = resolvePaths(globals.confDir, env);
  }

  /** manage.py's self.print_help(): the command's --help text on stdout (nothing with --json). */
  printHelp(): void {
    if (this.helpText) this.out.write(this.helpText());
  }

  config(): Config {
    if (!this.configCache) this.configCache = loadConfig(this.paths, parseSettingOverrides(this.globals.settings));
    return this.configCache;
  }

  db(): Promise<Db> {
    if (!this.dbPromise) {
      const config = this.config();
      this.dbPromise = import("../db/db.js").then((m) => m.connect(config, this.env));
    }
    return this.dbPromise;
  }

  /** A read on a second connection, beside the command's own (see withSideConnection); null when that fails. */
  sideRead<T>(fn: (q: Queryable) => Promise<T>): Promise<T | null> {
    const config = this.config();
    return import("../db/db.js").then((m) => m.withSideConnection(config, this.env, fn));
  }

  async close(): Promise<void> {
    if (this.dbPromise) {
      try {
        await (await this.dbPromise).close();
      } catch {
        /* connection never opened */
      }
    }
  }
}
