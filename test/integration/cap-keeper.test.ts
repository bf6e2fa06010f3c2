import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CapKeeper, type CapStore } from '../../src/consent/cap-keeper.js';
import { RedisGateway } from '../../src/stream/redis-gateway.js';
import { Keys, deleteKeysWithPrefix } from '../../src/stream/keys.js';

const joined = (ids: readonly string[]): Buffer => Buffer.from(ids.join('\0'));

// cap-take-3.lua on a real Redis through the keeper: sub-batches screened side by side share a call, and
// each gets back its own positions.
describe('frequency cap takes (cap-keeper.ts, cap-take-3.lua)', () => {
  const prefix = `herald_t_${randomBytes(5).toString('hex')}`;
  const keys = new Keys(prefix);
  let redis: Redis;
  let gateway: RedisGateway;
  let topicNo = 0;

  beforeAll(() => {
    redis = new Redis(inject('services').redisUrl);
    gateway = new RedisGateway(redis, keys, { livenessTtlMs: 0 });
  });

  afterAll(async () => {
    await deleteKeysWithPrefix(redis, prefix);
    redis.disconnect();
  });

  /** a keeper over the real gateway, counting its Redis calls; the topic's state starts empty and built */
  function keeper(): { caps: CapKeeper; calls: number[] } {
    const calls: number[] = [];
    const store: CapStore = {
      capTake: (p) => {
        calls.push(p.count);
        return gateway.capTake(p);
      },
      capSeed: (p) => gateway.capSeed(p),
      capRebuildLock: (p) => gateway.capRebuildLock(p),
    };
    const caps = new CapKeeper({
      store,
      history: { sent: async function* () {} },
      topicCampaigns: async () => [],
      holder: 'test',
      landedMs: 0,
      lockMs: 5_000,
      waitMs: 10,
    });
    return { caps, calls };
  }

  it('groups concurrent takes of a campaign into few calls and splits the capped positions back exactly', async () => {
    const topic = `t${++topicNo}`;
    const cap = { max: 2, windowS: 3600 };
    const { caps, calls } = keeper();
    // Every third user has had two messages of the topic already (campaigns 1 and 2): over the cap for campaign 3.
    const users = Array.from({ length: 3000 }, (_, i) => `user-${i}`);
    const full = users.filter((_, i) => i % 3 === 0);
    for (const cid of [1, 2]) expect(await caps.take({ topic, cap, campaignId: cid, users: joined(full), count: full.length })).toEqual([]);
    calls.length = 0;
    const parts = Array.from({ length: 10 }, (_, k) => users.slice(k * 300, (k + 1) * 300));
    const got = await Promise.all(parts.map((p) => caps.take({ topic, cap, campaignId: 3, users: joined(p), count: p.length })));
    parts.forEach((p, k) => {
      const want = p.flatMap((u, i) => (Number(u.slice(5)) % 3 === 0 ? [i] : []));
      expect(got[k], `part ${k}`).toEqual(want);
    });
    // the first alone, then the rest in groups of at most 2,000 users
    expect(calls.length).toBeLessThan(10);
    expect(Math.max(...calls)).toBeLessThanOrEqual(2000);
    expect(calls.reduce((a, b) => a + b, 0)).toBe(3000);
    // taken again (a sub-batch screened again after a crash): nothing more is spent, the same users are capped
    const again = await caps.take({ topic, cap, campaignId: 3, users: joined(parts[0]!), count: 300 });
    expect(again).toEqual(got[0]);
    // campaign 4 in one call of 3,000: the two-message users are capped, the others get their second
    const fourth = await caps.take({ topic, cap, campaignId: 4, users: joined(users), count: users.length });
    expect(fourth).toEqual(users.flatMap((_, i) => (i % 3 === 0 ? [i] : [])));
    const fifth = await caps.take({ topic, cap, campaignId: 5, users: joined(users), count: users.length });
    expect(fifth.length).toBe(3000);
    // 4,500 new users in one call: the script's HMGETs and HSETs go in pieces, each user counted once
    const many = Array.from({ length: 4500 }, (_, i) => `many-${i}`);
    for (const cid of [6, 7]) expect(await caps.take({ topic, cap, campaignId: cid, users: joined(many), count: many.length })).toEqual([]);
    expect((await caps.take({ topic, cap, campaignId: 8, users: joined(many), count: many.length })).length).toBe(4500);
    // a count that does not match the ids is refused, not guessed
    await expect(
      gateway.capTake({ topic, windowMs: 3_600_000, campaignId: 9, max: 2, users: joined(['a', 'b']), count: 3 }),
    ).rejects.toThrow('expected 3');
  });

  it('splits ids of any length and UTF-8 in the script', async () => {
    const topic = `t${++topicNo}`;
    const cap = { max: 1, windowS: 3600 };
    const { caps } = keeper();
    const users = ['a', 'ü'.repeat(70), 'x'.repeat(127), 'y'.repeat(128), '用户'.repeat(100), 'z'.repeat(3000)];
    expect(await caps.take({ topic, cap, campaignId: 1, users: joined(users), count: users.length })).toEqual([]);
    const fields = await redis
      .hkeys(keys.capKeys(topic, 3_600_000)[1])
      .then(async (even) => [...even, ...(await redis.hkeys(keys.capKeys(topic, 3_600_000)[2]))]);
    expect(new Set(fields)).toEqual(new Set(users));
    const second = await caps.take({ topic, cap, campaignId: 2, users: joined([...users, 'new']), count: users.length + 1 });
    expect(second).toEqual([0, 1, 2, 3, 4, 5]);
  });
});
