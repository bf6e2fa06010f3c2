/**
 * One call at a time for many callers: what arrives while a call is out waits and goes in the next one, with
 * everything else that arrived meanwhile (a group commit). The consent screen's sub-batches are screened side
 * by side (an instant channel's chunks start together), and each round trip to PostgreSQL or Redis costs a
 * wake-up of the other side on two shared cores, so one call for the group costs less than one per sub-batch,
 * and the first caller never waits for company.
 */
export interface GroupCallOptions<I, O> {
  /** answers every input of a group, in order */
  run(inputs: readonly I[]): Promise<O[]>;
  /** how much an input weighs, and the most a group may weigh (a group always takes at least one input) */
  weight?: (input: I) => number;
  maxWeight?: number;
}

interface Waiter<I, O> {
  input: I;
  resolve(out: O): void;
  reject(err: unknown): void;
}

export class GroupCall<I, O> {
  private readonly waiting: Array<Waiter<I, O>> = [];
  private state: 'idle' | 'running' = 'idle';

  constructor(private readonly opts: GroupCallOptions<I, O>) {}

  call(input: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.waiting.push({ input, resolve, reject });
      if (this.state === 'idle') void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.state = 'running';
    const weight = this.opts.weight ?? ((): number => 1);
    const max = this.opts.maxWeight ?? Infinity;
    while (this.waiting.length > 0) {
      let taken = 0;
      let total = 0;
      while (taken < this.waiting.length && (taken === 0 || total + weight(this.waiting[taken]!.input) <= max)) {
        total += weight(this.waiting[taken]!.input);
        taken++;
      }
      const group = this.waiting.splice(0, taken);
      try {
        const outs = await this.opts.run(group.map((w) => w.input));
        if (outs.length !== group.length) throw new Error(`a group call answered ${outs.length} of ${group.length} inputs`);
        for (let i = 0; i < group.length; i++) group[i]!.resolve(outs[i]!);
      } catch (err) {
        for (const w of group) w.reject(err);
      }
    }
    this.state = 'idle';
  }
}
