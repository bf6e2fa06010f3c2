/**
 * Frequency caps: a cap-take-3.lua call takes one message per user from the topic's rolling window in Redis,
 * exact across campaigns and processes. The sub-batches of one campaign screened while a call is out go
 * together in the next one (group-call.ts), their ids end to end, up to MAX_USERS_PER_TAKE users: a call
 * holds Redis for about two microseconds per user, so a group stays a few milliseconds long.
 * When Redis has no state for the topic (its first use, or Redis was emptied), one process (a lock) builds
 * it from what ClickHouse holds of the topic's campaigns' outcomes within the window, after waiting for
 * every process's buffered events to land; the others wait for it. Until then nothing of the topic is sent.
 */
import type { TopicCap } from '../domain/consent-input.js';
import { GroupCall } from './group-call.js';

export interface CapStore {
  capTake(p: {
    topic: string;
    windowMs: number;
    campaignId: number;
    max: number;
    /** `count` user ids joined by NUL (packed-ids.ts joinedWithout) */
    users: Buffer;
    count: number;
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
const MAX_USERS_PER_TAKE = 2000;
const NUL = Buffer.from([0]);

/** One sub-batch's users to take from a cap: `count` user ids joined by NUL. */
export interface CapTake {
  topic: string;
  cap: TopicCap;
  campaignId: number;
  users: Buffer;
  count: number;
}

type Group = GroupCall<{ users: Buffer; count: number }, number[]>;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class CapKeeper {
  /** a group per campaign and cap, while it has takes waiting or out */
  private readonly groups = new Map<string, { group: Group; pending: number }>();

  constructor(private readonly opts: CapKeeperOptions) {}

  /** Positions (ascending) of the users over the cap; the others are counted (once per campaign and user). */
  async take(p: CapTake): Promise<number[]> {
    if (p.count === 0) return [];
    const key = `${p.campaignId}\n${p.cap.max}\n${p.cap.windowS}\n${p.topic}`;
    let g = this.groups.get(key);
    if (g === undefined) {
      const { topic, cap, campaignId } = p;
      g = {
        pending: 0,
        group: new GroupCall({
          weight: (t) => t.count,
          maxWeight: MAX_USERS_PER_TAKE,
          run: async (takes) => {
            const users =
              takes.length === 1 ? takes[0]!.users : Buffer.concat(takes.flatMap((t, i) => (i === 0 ? [t.users] : [NUL, t.users])));
            const count = takes.reduce((n, t) => n + t.count, 0);
            const capped = await this.takeGroup({ topic, cap, campaignId, users, count });
            // Split back: positions are ascending, each take's users follow the one before's.
            const outs: number[][] = [];
            let k = 0;
            let base = 0;
            for (const t of takes) {
              const mine: number[] = [];
              for (; k < capped.length && capped[k]! < base + t.count; k++) mine.push(capped[k]! - base);
              outs.push(mine);
              base += t.count;
            }
            return outs;
          },
        }),
      };
      this.groups.set(key, g);
    }
    g.pending++;
    try {
      return await g.group.call({ users: p.users, count: p.count });
    } finally {
      if (--g.pending === 0) this.groups.delete(key);
    }
  }

  private async takeGroup(p: CapTake): Promise<number[]> {
    const windowMs = p.cap.windowS * 1000;
    for (;;) {
      const r = await this.opts.store.capTake({
        topic: p.topic,
        windowMs,
        campaignId: p.campaignId,
        max: p.cap.max,
        users: p.users,
        count: p.count,
      });
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
