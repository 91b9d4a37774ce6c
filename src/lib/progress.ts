// A one-line progress bar on stderr, drawn only when stderr is a terminal (never in pipes, cron
// mail or --json output). Lines printed through log() appear above the bar.

export interface ProgressOptions {
  stream?: NodeJS.WriteStream;
  /** Text before the bar, e.g. "Sending". */
  label?: string;
  /** Force on/off (default: stream.isTTY). */
  enabled?: boolean;
  /** Minimum milliseconds between redraws. */
  intervalMs?: number;
}

export class Progress {
  private done = 0;
  private lastDraw = 0;
  private drawn = false;
  private readonly stream: NodeJS.WriteStream;
  readonly enabled: boolean;
  private readonly label: string;
  private readonly interval: number;

  constructor(
    readonly total: number,
    opts: ProgressOptions = {},
  ) {
    this.stream = opts.stream ?? process.stderr;
    this.enabled = opts.enabled ?? Boolean(this.stream.isTTY);
    this.label = opts.label ?? "";
    this.interval = opts.intervalMs ?? 100;
  }

  /** The bar for `done` of `total` in `width` columns, e.g. "Sending [#####-----] 5/10". */
  static render(done: number, total: number, width: number, label = ""): string {
    const counter = ` ${done}/${total}`;
    const prefix = label ? `${label} ` : "";
    const barWidth = Math.max(5, Math.min(40, width - prefix.length - counter.length - 3));
    const filled = total > 0 ? Math.min(barWidth, Math.round((done / total) * barWidth)) : barWidth;
    return `${prefix}[${"#".repeat(filled)}${"-".repeat(barWidth - filled)}]${counter}`;
  }

  tick(n = 1): void {
    this.done += n;
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.lastDraw >= this.interval || this.done >= this.total) this.draw(now);
  }

  /** Print a line (e.g. a failure) without breaking the bar. */
  log(line: string): void {
    if (this.enabled && this.drawn) this.stream.write("\r\x1b[2K");
    this.stream.write(line.endsWith("\n") ? line : line + "\n");
    if (this.enabled && this.drawn) this.draw(Date.now());
  }

  /** Remove the bar. */
  finish(): void {
    if (this.enabled && this.drawn) this.stream.write("\r\x1b[2K");
    this.drawn = false;
  }

  private draw(now: number): void {
    this.lastDraw = now;
    this.drawn = true;
    const width = this.stream.columns || 80;
    this.stream.write("\r\x1b[2K" + Progress.render(this.done, this.total, width - 1, this.label));
  }
}
