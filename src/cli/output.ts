// Where a command's output goes, and how it is styled.
//
// manage.py's Django styles are reproduced (ERROR bold red, WARNING bold yellow, SUCCESS bold
// green, NOTICE red) through chalk, but colour is used only when stdout is a TTY, and never with
// NO_COLOR set or --no-color. With --json, human text on stdout is suppressed: the command gives
// the body of its one JSON document to jsonBody() and the runner prints it with the envelope when
// the command ends (src/cli/json-contract.ts); commands not yet on the contract print their own
// document through jsonResult().
import type { Chalk as ChalkClass, ChalkInstance } from "chalk";
import { document, documentText, type Failure } from "./json-contract.js";

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

// A stand-in with chalk's shape: every style is itself, and calling it joins its arguments.
const plain: ChalkInstance = new Proxy(((s: string) => s) as unknown as ChalkInstance, {
  get: () => plain,
  apply: (_t, _this, args: unknown[]) => args.join(" "),
});

function colorWanted(stream: { isTTY?: boolean }, flag: boolean | undefined): boolean {
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
  private pendingBody: object | null = null;
  private pendingFailure: Failure | null = null;

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

  /**
   * The body of the command's --json document (ignored without --json), typed by the command's
   * schema: `out.jsonBody<ShowAdminsBody>({...})` (the type argument is required). A later call
   * replaces the body; `failure` is the error and error_code the document gets when the command
   * ends with a non-zero exit status without throwing.
   */
  jsonBody<T extends object = never>(body: NoInfer<T>, failure?: Failure): void {
    if (!this.json) return;
    if (this.jsonWritten) throw new Error("internal error: a command printed two JSON documents");
    this.pendingBody = body;
    this.pendingFailure = failure ?? null;
  }

  /** Whether the command gave a body to jsonBody(). */
  get hasJsonBody(): boolean {
    return this.pendingBody !== null;
  }

  /**
   * The runner: print the contract document (the pending body, or none) for the exit code the
   * command ended with; `failure` (a thrown error) wins over the one given with the body.
   * Nothing when not --json or when the command printed its own document.
   */
  finishJson(exitCode: number, failure: Failure | null): void {
    if (!this.json || this.jsonWritten) return;
    this.jsonWritten = true;
    this.stdout.write(documentText(document(exitCode, exitCode === 0 ? null : (failure ?? this.pendingFailure), this.pendingBody)));
  }

  /** The command's one JSON document, printed as it is (commands not yet on the contract). */
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

/** "<n> <one>" or "<n> <many>" (default: one + "s"). */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
