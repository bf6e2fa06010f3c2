import { describe, expect, it } from 'vitest';
import { lackedByBoth, shortfall } from '../../src/sink/count-repair.js';

describe('the completion repair: what the views lack of the stored rows (sink/count-repair.ts)', () => {
  it('is the stored rows minus the view, key by key; a view ahead is left alone', () => {
    const stored = [
      { k: 'delivered', n: '100' },
      { k: 'failed', n: 3 },
      { k: 'capped', n: '1' },
    ];
    const view = [
      { k: 'delivered', n: '70' },
      { k: 'failed', n: '5' },
    ];
    expect(shortfall(stored, view)).toEqual([
      { key: 'delivered', missing: 30 },
      { key: 'capped', missing: 1 },
    ]);
  });

  it('adds only what both readings lack: a view part landing in between is not added', () => {
    const first = [
      { key: 'delivered', missing: 30 },
      { key: 'capped', missing: 1 },
      { key: 'FR', missing: 5 },
    ];
    const second = [
      { key: 'delivered', missing: 10 },
      { key: 'FR', missing: 5 },
    ];
    expect(lackedByBoth(first, second)).toEqual([
      { key: 'delivered', missing: 10 },
      { key: 'FR', missing: 5 },
    ]);
    expect(lackedByBoth(first, [])).toEqual([]);
  });
});
