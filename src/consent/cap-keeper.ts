/**
 * Frequency caps: one cap-take-3.lua call per sub-batch takes one message per user from the topic's rolling
 * window in Redis, exact across campaigns and processes. When Redis has no state for the topic (its first
 * use, or Redis was emptied), one process (a lock) builds it from what ClickHouse holds of the topic's
 * campaigns' outcomes within the window, after waiting for every process's buffered events to land; the
 * others wait for it. Until then nothing of the topic is sent.
 */
import type { TopicCap } from '../domain/consent-input.js';

export interface CapStore {
  capTake(p: {
    topic: string;
    windowMs: number;
    campaignId: number;
    max: number;
    userIds: readonly string[];
  }): Promise<number[] | 'unbuilt'>;
  capSeed(p: {
    topic: string;
    windowMs: number;
    first: boolean;
    last: boolean;
    entries: ReadonlyArray<{ userId: string; campaignId: number; atMs: number }>;
  }): Promise<number>;
  capRebuildLock(p: { topic: string; windowMs: number; holder: string; ttlMs: number; release?: boolean }): Promise<boolean>;
}

/** What the topic's campaigns sent within the window (ClickHouse outcomes, delivered or failed). */
export interface SentHistory {
  /** in batches of at most `batchRows`, as they are read */
  sent(
    campaignIds: readonly number[],
    windowS: number,
    batchRows: number,
  ): AsyncIterable<ReadonlyArray<{ userId: string; campaignId: number; atMs: number }>>;
}

export interface CapKeeperOptions {
  store: CapStore;
  history: SentHistory;
  /** normal-priority campaigns of the topic that may have sent within the window */
  topicCampaigns(topic: string, windowS: number): Promise<number[]>;
  holder: string;
  /** how long every process's buffered events take to reach ClickHouse (config eventsLandedMs) */
  landedMs: number;
  /** how long the build lock is held at most */
  lockMs: number;
  /** between looks while another process builds */
  waitMs: number;
}

const SEED_BATCH = 2000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class CapKeeper {
  constructor(private readonly opts: CapKeeperOptions) {}

  /** Positions of `userIds` over the cap; the others are counted (once per campaign and user). */
  async take(p: { topic: string; cap: TopicCap; campaignId: number; userIds: readonly string[] }): Promise<number[]> {
    const windowMs = p.cap.windowS * 1000;
    for (;;) {
      const r = await this.opts.store.capTake({ topic: p.topic, windowMs, campaignId: p.campaignId, max: p.cap.max, userIds: p.userIds });
      if (r !== 'unbuilt') return r;
      const lock = { topic: p.topic, windowMs, holder: this.opts.holder, ttlMs: this.opts.lockMs };
      if (!(await this.opts.store.capRebuildLock(lock))) {
        await sleep(this.opts.waitMs);
        continue;
      }
      try {
        await this.build(p.topic, p.cap);
      } finally {
        await this.opts.store.capRebuildLock({ ...lock, release: true });
      }
    }
  }

  private async build(topic: string, cap: TopicCap): Promise<void> {
    const windowMs = cap.windowS * 1000;
    await sleep(this.opts.landedMs);
    const ids = await this.opts.topicCampaigns(topic, cap.windowS);
    // Seeded batch by batch as ClickHouse streams them; the first clears the state, a last empty one
    // marks it built, so a build that dies half way leaves the topic unbuilt, never half counted.
    let first = true;
    if (ids.length > 0) {
      for await (const entries of this.opts.history.sent(ids, cap.windowS, SEED_BATCH)) {
        await this.opts.store.capSeed({ topic, windowMs, first, last: false, entries });
        first = false;
      }
    }
    await this.opts.store.capSeed({ topic, windowMs, first, last: true, entries: [] });
  }
}
