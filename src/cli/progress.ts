/**
 * Progress output: a bar redrawn in place (cli-progress) when stdout is a terminal, plain lines when it is
 * not (a log file, a pipe, CI), so logs get a readable line per step rather than carriage returns.
 */
import type { Writable } from 'node:stream';
import type cliProgress from 'cli-progress';

export interface ProgressState {
  value: number;
  total: number;
  /** the bar's own `{token}`s (not cli-progress's: eta, duration, value, total, percentage, bar) */
  payload: Record<string, string | number>;
  /** the same state as one plain line */
  line: string;
  /** a plain line is printed at once when this changes (a status or phase), else at most every `plainEveryMs` */
  phase: string;
}

export interface Progress {
  update(state: ProgressState): void;
  /** the last state stays on screen (the bar) or is printed (plain) */
  stop(): void;
}

export interface ProgressOptions {
  out: Writable & { isTTY?: boolean };
  /** the bar's layout, with cli-progress tokens (`{bar}`, `{percentage}`, `{value}`, `{total}`) and the payload's */
  format: string;
  /** plain output: at most one line this often, besides phase changes */
  plainEveryMs: number;
}

/** cli-progress is loaded only to draw a bar (~0.15 s of start-up otherwise). */
export async function createProgress(opts: ProgressOptions): Promise<Progress> {
  if (opts.out.isTTY !== true) return new PlainLines(opts);
  const { default: lib } = await import('cli-progress');
  return new Bar(lib, opts);
}

class Bar implements Progress {
  private readonly bar: cliProgress.SingleBar;
  private started = false;

  constructor(lib: typeof cliProgress, opts: ProgressOptions) {
    this.bar = new lib.SingleBar(
      {
        stream: opts.out,
        format: opts.format,
        hideCursor: true,
        barsize: 30,
        fps: 10,
        formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? Number(v).toLocaleString('en-US') : String(v)),
      },
      lib.Presets.shades_classic,
    );
  }

  update(s: ProgressState): void {
    const total = Math.max(s.total, 1);
    if (!this.started) {
      this.bar.start(total, s.value, s.payload);
      this.started = true;
      return;
    }
    this.bar.setTotal(total);
    this.bar.update(s.value, s.payload);
  }

  stop(): void {
    if (this.started) this.bar.stop();
  }
}

class PlainLines implements Progress {
  private last: ProgressState | null = null;
  private printed = '';
  private printedAt = 0;
  private phase = '';

  constructor(private readonly opts: ProgressOptions) {}

  update(s: ProgressState): void {
    this.last = s;
    const now = Date.now();
    if (s.phase === this.phase && now - this.printedAt < this.opts.plainEveryMs) return;
    this.print(s, now);
  }

  stop(): void {
    if (this.last !== null && this.last.line !== this.printed) this.print(this.last, Date.now());
  }

  private print(s: ProgressState, now: number): void {
    this.phase = s.phase;
    this.printedAt = now;
    if (s.line === this.printed) return;
    this.printed = s.line;
    this.opts.out.write(`${s.line}\n`);
  }
}
