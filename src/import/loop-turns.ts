/**
 * Gives the event loop a turn once a slice of work has passed since the last one. A body's parse runs on
 * data already buffered, so its awaits settle as microtasks and it never waits for I/O: a 10M-line upload
 * held the loop for up to 0.6 s at a time, and every other request of the process waited behind it (a GET
 * during the upload: p50 450 ms, max 1.5 s, bench/README.md). `setImmediate` lets timers and I/O go first.
 */
export class LoopTurns {
  private last = performance.now();

  /** `sliceMs`: the time between turns (waits for the body included, so a slow upload only turns more often) */
  constructor(private readonly sliceMs = 10) {}

  /** Whether the slice is over (cheap: the caller awaits `take` only then, so the fast path stays synchronous). */
  due(): boolean {
    return performance.now() - this.last >= this.sliceMs;
  }

  /** Lets whatever waits (timers, sockets, other requests) run, then starts a new slice. */
  async take(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.last = performance.now();
  }
}
