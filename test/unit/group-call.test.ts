import { describe, expect, it } from 'vitest';
import { GroupCall } from '../../src/consent/group-call.js';

describe('GroupCall', () => {
  it('sends the first input at once and groups what arrives while a call is out, within the weight', async () => {
    const groups: number[][] = [];
    const release: Array<() => void> = [];
    const g = new GroupCall<number, number>({
      weight: (n) => n,
      maxWeight: 10,
      run: async (inputs) => {
        groups.push([...inputs]);
        await new Promise<void>((r) => release.push(r));
        return inputs.map((n) => n * 2);
      },
    });
    const first = g.call(1);
    const rest = [4, 5, 3, 9, 2].map((n) => g.call(n));
    expect(groups).toEqual([[1]]);
    release.shift()!();
    expect(await first).toBe(2);
    await new Promise((r) => setImmediate(r));
    // 4 + 5 fit in 10, 3 does not; then 3 alone (3 + 9 > 10), then 9 (9 + 2 > 10), then 2
    expect(groups).toEqual([[1], [4, 5]]);
    for (let i = 0; i < 4; i++) {
      release.shift()!();
      await new Promise((r) => setImmediate(r));
    }
    expect(await Promise.all(rest)).toEqual([8, 10, 6, 18, 4]);
    expect(groups).toEqual([[1], [4, 5], [3], [9], [2]]);
  });

  it('takes an input heavier than the limit alone, and a failed call fails only its own group', async () => {
    let calls = 0;
    const g = new GroupCall<number, number>({
      weight: (n) => n,
      maxWeight: 5,
      run: async (inputs) => {
        calls++;
        await new Promise((r) => setImmediate(r));
        if (inputs.includes(7)) throw new Error('boom');
        return inputs.map((n) => -n);
      },
    });
    const a = g.call(1);
    const b = g.call(7);
    const c = g.call(2);
    expect(await a).toBe(-1);
    await expect(b).rejects.toThrow('boom');
    expect(await c).toBe(-2);
    expect(calls).toBe(3);
  });

  it('refuses an answer that does not cover the group', async () => {
    const g = new GroupCall<number, number>({ run: async () => [] });
    await expect(g.call(1)).rejects.toThrow('answered 0 of 1');
  });
});
