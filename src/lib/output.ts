// Where a command's output goes, and how it is styled.
//
// manage.py's Django styles are reproduced (ERROR bold red, WARNING bold yellow, SUCCESS bold
// green, NOTICE red) through chalk, but colour is used only when stdout is a TTY, and never with
// NO_COLOR set or --no-color. With --json, human text on stdout is suppressed: the command prints
// exactly one JSON document through json().
import type { Chalk as ChalkClass, ChalkInstance } from "chalk";

export interface OutputOptions {
  json?: boolean;
  color?: boolean; // false when --no-color was given
  stdout?: NodeJS.WriteStream;
  stderr?: NodeJS.WriteStream;
  /** chalk's Chalk class; only needed (and only imported, see loadChalkIfNeeded) when colour is on. */
  chalk?: typeof ChalkClass;
}

/** Import chalk only when some stream will actually be coloured: scripts and cron never pay for it. */
export async function loadChalkIfNeeded(color: boolean | undefined): Promise<typeof ChalkClass | undefined> {
  if (!colorWanted(process.stdout, color) && !colorWanted(process.stderr, color)) return undefined;
  return (await import("chalk")).Chalk;
}

const plain: ChalkInstance = new Proxy(((s: string) => s) as any, {
  get: () => plain,
  apply: (_t, _this, args: unknown[]) => args.join(" "),
});

export function colorWanted(stream: { isTTY?: boolean }, flag: boolean | undefined): boolean {
  if (flag === false) return false;
  if (process.env.NO_COLOR !== undefined && process.env.NO_COLOR !== "") return false;
  if (process.env.DJANGO_COLORS === "nocolor") return false;
  return Boolean(stream.isTTY);
}

export class Output {
  readonly json: boolean;
  readonly color: boolean;
  readonly errColor: boolean;
  private readonly c: ChalkInstance;
  private readonly ce: ChalkInstance;
  private readonly stdout: NodeJS.WriteStream;
  private readonly stderr: NodeJS.WriteStream;
  private jsonWritten = false;

  constructor(opts: OutputOptions = {}) {
    this.stdout = opts.stdout ?? process.stdout;
    this.stderr = opts.stderr ?? process.stderr;
    this.json = Boolean(opts.json);
    this.color = colorWanted(this.stdout, opts.color);
    this.errColor = colorWanted(this.stderr, opts.color);
    const Chalk = opts.chalk;
    this.c = Chalk && this.color ? new Chalk({ level: 1 }) : plain;
    this.ce = Chalk && this.errColor ? new Chalk({ level: 1 }) : plain;
  }

  /** Styles for stdout text, matching Django's default palette. */
  get style() {
    const c = this.c;
    return {
      error: (s: string) => c.red.bold(s),
      warning: (s: string) => c.yellow.bold(s),
      success: (s: string) => c.green.bold(s),
      notice: (s: string) => c.red(s),
      bold: (s: string) => c.bold(s),
      dim: (s: string) => c.dim(s),
    };
  }

  /** A line of human output on stdout (suppressed with --json). */
  line(text = ""): void {
    if (this.json) return;
    this.stdout.write(text + "\n");
  }

  /** Raw human text on stdout, no newline added (suppressed with --json). */
  write(text: string): void {
    if (this.json) return;
    this.stdout.write(text);
  }

  /** The command's one JSON document (only with --json). */
  jsonResult(value: unknown): void {
    if (!this.json) return;
    if (this.jsonWritten) throw new Error("internal error: a command printed two JSON documents");
    this.jsonWritten = true;
    this.stdout.write(JSON.stringify(value, null, 2) + "\n");
  }

  /** A message on stderr (plain). */
  err(text: string): void {
    this.stderr.write(text.endsWith("\n") ? text : text + "\n");
  }

  /** A warning on stderr, styled only when stderr is a TTY. */
  warn(text: string): void {
    this.err(this.ce.yellow.bold(text));
  }

  /** An error message on stderr, styled only when stderr is a TTY. */
  error(text: string): void {
    this.err(this.ce.red.bold(text));
  }

  get isStdoutTTY(): boolean {
    return Boolean(this.stdout.isTTY);
  }
}

/** Python's str.format left-alignment: pad to `width` code points, never truncate. */
export function padPy(value: string, width: number): string {
  const len = [...value].length;
  return len >= width ? value : value + " ".repeat(width - len);
}
