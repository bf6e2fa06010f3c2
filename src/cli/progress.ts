/**
 * Progress output: a bar redrawn in place (cli-progress) when stdout is a terminal, plain lines when it is
 * not (a log file, a pipe, CI), so logs get a readable line per step rather than carriage returns.
 */
import type { Writable } from 'node:stream';
import cliProgress from 'cli-progress';

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

export function createProgress(opts: ProgressOptions): Progress {
  return opts.out.isTTY === true ? new Bar(opts) : new PlainLines(opts);
}

class Bar implements Progress {
  private readonly bar: cliProgress.SingleBar;
  private started = false;

  constructor(opts: ProgressOptions) {
    this.bar = new cliProgress.SingleBar(
      {
        stream: opts.out,
        format: opts.format,
        hideCursor: true,
        barsize: 30,
        fps: 10,
        formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? Number(v).toLocaleString('en-US') : String(v)),
      },
      cliProgress.Presets.shades_classic,
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
