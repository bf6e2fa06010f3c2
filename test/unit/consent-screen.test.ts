import { describe, expect, it } from 'vitest';
import { ConsentScreen } from '../../src/consent/consent-screen.js';
import type { CapKeeper, CapTake } from '../../src/consent/cap-keeper.js';
import type { SuppressionIndex } from '../../src/consent/suppression-index.js';
import { FingerprintSet, fingerprint } from '../../src/domain/fingerprint.js';
import { packStrings } from '../../src/domain/packed-ids.js';
import type { Campaign } from '../../src/store/campaign-repo.js';

const CAP = { max: 1, windowS: 60 };
const campaign = { id: 9, topic: 'news', priority: 'normal' } as unknown as Campaign;

/** an index over these (topic, user) pairs, as the dispatcher loads it */
function indexOf(pairs: Array<[string, string]>): SuppressionIndex {
  const set = new FingerprintSet();
  for (const [t, u] of pairs) {
    const f = fingerprint(t, u);
    set.add(f.hi, f.lo);
  }
  let missed = 0;
  return {
    ensureFresh: async () => undefined,
    get size() {
      return set.size;
    },
    has: (hi: number, lo: number) => set.has(hi, lo),
    missed: (n: number) => (missed += n),
    get missedCount() {
      return missed;
    },
  } as unknown as SuppressionIndex;
}

describe('the consent screen', () => {
  it('takes the index misses from the cap while PostgreSQL confirms the hits, then the hits it did not confirm', async () => {
    const users = ['u0', 'u1', 'u2', 'u3', 'u4', 'u5', 'u6'];
    const takes: string[][] = [];
    let confirmStarted: () => void = () => undefined;
    const confirmSeen = new Promise<void>((r) => (confirmStarted = r));
    const caps = {
      take: async (p: CapTake) => {
        const ids = p.users.length === 0 ? [] : p.users.toString('utf8').split('\0');
        expect(ids.length).toBe(p.count);
        takes.push(ids);
        // the first take waits for the confirmation to have started: they are out side by side
        if (takes.length === 1) await confirmSeen;
        return ids.flatMap((u, i) => (u === 'u3' || u === 'u5' ? [i] : []));
      },
    } as unknown as CapKeeper;
    // u2 is on the global list; u5 was on the topic's list and has been lifted (the index still holds it)
    const screen = new ConsentScreen({
      index: indexOf([
        ['', 'u2'],
        ['news', 'u5'],
      ]),
      caps,
      confirm: async (topics, userIds) => {
        confirmStarted();
        await new Promise((r) => setTimeout(r, 10));
        expect(takes.length).toBe(1);
        return topics.flatMap((t, i) => (t === '' && userIds[i] === 'u2' ? [{ topic: t, userId: userIds[i]! }] : []));
      },
      topicCap: async () => CAP,
      topicCapTtlMs: 1000,
    });
    const held = await screen.screen({ campaign, users: packStrings(users), count: users.length });
    expect(takes).toEqual([['u0', 'u1', 'u3', 'u4', 'u6'], ['u5']]);
    expect(Object.fromEntries([...held].map(([i, w]) => [users[i], w.kind]))).toEqual({ u2: 'suppressed', u3: 'capped', u5: 'capped' });
  });

  it('never counts a confirmed suppression against the cap, and looks nothing up with no list and no cap', async () => {
    const takes: number[] = [];
    const caps = { take: async (p: CapTake) => (takes.push(p.count), []) } as unknown as CapKeeper;
    const both = new ConsentScreen({
      index: indexOf([['news', 'a']]),
      caps,
      confirm: async (topics, userIds) => topics.map((topic, i) => ({ topic, userId: userIds[i]! })),
      topicCap: async () => CAP,
      topicCapTtlMs: 1000,
    });
    const held = await both.screen({ campaign, users: packStrings(['a', 'b']), count: 2 });
    expect([...held.keys()]).toEqual([0]);
    expect(takes).toEqual([1]);
    const none = new ConsentScreen({
      index: indexOf([]),
      caps,
      confirm: async () => {
        throw new Error('not asked');
      },
      topicCap: async () => null,
      topicCapTtlMs: 1000,
    });
    expect((await none.screen({ campaign, users: packStrings(['a']), count: 1 })).size).toBe(0);
    expect(takes).toEqual([1]);
  });
});
