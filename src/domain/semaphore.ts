/**
 * A weighted counting semaphore: `capacity` units, taken and given back by callers in this process.
 * Waiters are served in arrival order, so a large request is not starved by a stream of small ones.
 * Used for a campaign's send slots (requests in flight) and the webhook channel's in-flight bytes.
 */
interface Waiter {
  /** units wanted; for `takeFree`, the most it takes (it takes what is free, at least 1) */
  n: number;
  all: boolean;
  resolve: (taken: number) => void;
}

export class Semaphore {
  private free: number;
  private readonly waiters: Waiter[] = [];

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1)
      throw new RangeError(`semaphore capacity must be a positive integer, got ${capacity}`);
    this.free = capacity;
  }

  /** units taken and not given back */
  get inUse(): number {
    return this.capacity - this.free;
  }

  /** Waits until `n` units are free (at most the capacity: more would never be) and takes them. */
  take(n: number): Promise<number> {
    const want = Math.max(1, Math.min(n, this.capacity));
    if (this.waiters.length === 0 && this.free >= want) {
      this.free -= want;
      return Promise.resolve(want);
    }
    return new Promise((resolve) => this.waiters.push({ n: want, all: false, resolve }));
  }

  /** Waits until at least one unit is free, then takes every free unit up to `max`; resolves to how many. */
  takeFree(max: number): Promise<number> {
    const most = Math.max(1, max);
    if (this.waiters.length === 0 && this.free > 0) {
      const n = Math.min(this.free, most);
      this.free -= n;
      return Promise.resolve(n);
    }
    return new Promise((resolve) => this.waiters.push({ n: most, all: true, resolve }));
  }

  release(n: number): void {
    if (n <= 0) return;
    this.free = Math.min(this.capacity, this.free + n);
    while (this.waiters.length > 0) {
      const w = this.waiters[0]!;
      if (w.all ? this.free === 0 : this.free < w.n) return;
      this.waiters.shift();
      const taken = w.all ? Math.min(this.free, w.n) : w.n;
      this.free -= taken;
      w.resolve(taken);
    }
  }
}
