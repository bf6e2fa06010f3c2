import { describe, expect, it } from 'vitest';
import { Semaphore } from '../../src/domain/semaphore.js';

describe('Semaphore', () => {
  it('takes what is free, waits in arrival order, and never hands out more than its capacity', async () => {
    const s = new Semaphore(4);
    expect(await s.takeFree(10)).toBe(4);
    const order: string[] = [];
    const big = s.take(3).then((n) => order.push(`big ${n}`));
    const small = s.take(1).then((n) => order.push(`small ${n}`));
    const rest = s.takeFree(10).then((n) => order.push(`free ${n}`));
    s.release(2);
    await Promise.resolve();
    expect(order).toEqual([]);
    s.release(2);
    await Promise.all([big, small]);
    expect(order).toEqual(['big 3', 'small 1']);
    expect(s.inUse).toBe(4);
    s.release(4);
    await rest;
    expect(order).toEqual(['big 3', 'small 1', 'free 4']);
  });

  it('lets a request larger than the capacity go alone', async () => {
    const s = new Semaphore(100);
    expect(await s.take(1_000)).toBe(100);
    expect(s.inUse).toBe(100);
  });
});
