import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Lease } from '../../src/actor/lease.js';
import { ChunkProtocol } from '../../src/stream/chunk-protocol.js';
import { RedisGateway } from '../../src/stream/redis-gateway.js';
import { CHUNK_FIELD, CHUNK_GROUP, Keys, deleteKeysWithPrefix } from '../../src/stream/keys.js';

// The liveness scripts on a real Redis, one state at a time: whose chunks and lease are taken, and whose are not.
describe('takeover by liveness (takeover-2.lua, lease-acquire-3.lua)', () => {
  const prefix = `herald_t_${randomBytes(5).toString('hex')}`;
  const keys = new Keys(prefix);
  const ttlMs = 3_000;
  let redis: Redis;
  let stream: ChunkProtocol;
  let campaign = 0;

  beforeAll(() => {
    redis = new Redis(inject('services').redisUrl);
    stream = new ChunkProtocol(new RedisGateway(redis, keys, { livenessTtlMs: ttlMs }));
  });

  afterAll(async () => {
    await deleteKeysWithPrefix(redis, prefix);
    redis.disconnect();
  });

  /** A campaign whose consumers each hold two entries; `beats`: holder → its heartbeat's expiry (ms; absent: none). */
  async function holding(consumers: string[], beats: Record<string, number>): Promise<number> {
    const id = ++campaign;
    await stream.ensureGroup(id);
    for (let i = 0; i < consumers.length * 2; i++) await redis.xadd(keys.chunks(id), `1-${i + 1}`, CHUNK_FIELD, 'x');
    for (const c of consumers) await redis.xreadgroup('GROUP', CHUNK_GROUP, c, 'COUNT', 2, 'STREAMS', keys.chunks(id), '>');
    for (const [holder, expiry] of Object.entries(beats)) await redis.zadd(keys.alive(id), expiry, holder);
    return id;
  }

  const pendingOn = async (id: number): Promise<Record<string, number>> => {
    const [, , , byConsumer] = (await redis.xpending(keys.chunks(id), CHUNK_GROUP)) as [
      number,
      string,
      string,
      Array<[string, string]> | null,
    ];
    return Object.fromEntries((byConsumer ?? []).map(([c, count]) => [c, Number(count)]));
  };

  it('takes the chunks of a lapsed heartbeat only: not a live one, not one with none, never the claimer’s own', async () => {
    const future = Date.now() + 60_000;
    const id = await holding(['dead-host-1-0', 'dead-host-1-1', 'live-host-0', 'quiet-host-0', 'me-0'], {
      'dead-host-1': 1,
      'live-host': future,
      // the claimer's own heartbeat lapsed (its loop stalled): it is renewed, and nothing of it is taken
      me: 1,
    });
    const taken = await stream.takeover(id, 'me-reclaim', 'me', 100);
    expect(taken.map((e) => e.id).sort()).toEqual(['1-1', '1-2', '1-3', '1-4']);
    expect(await pendingOn(id)).toEqual({ 'live-host-0': 2, 'quiet-host-0': 2, 'me-0': 2, 'me-reclaim': 4 });
    // The dead consumers, left with nothing, are gone, and so is the dead holder's heartbeat.
    const names = ((await redis.xinfo('CONSUMERS', keys.chunks(id), CHUNK_GROUP)) as unknown[][]).map((c) => String(c[1]));
    expect(names.sort()).toEqual(['live-host-0', 'me-0', 'me-reclaim', 'quiet-host-0']);
    expect(await redis.zscore(keys.alive(id), 'dead-host-1')).toBeNull();
    expect(Number(await redis.zscore(keys.alive(id), 'me'))).toBeGreaterThan(Date.now());
    expect(await stream.takeover(id, 'me-reclaim', 'me', 100)).toEqual([]);
  });

  it('takes no more than asked, and keeps a dead holder with chunks left until they are taken', async () => {
    const id = await holding(['dead-0', 'dead-1'], { dead: 1 });
    expect((await stream.takeover(id, 'me-reclaim', 'me', 3)).length).toBe(3);
    expect(await redis.zscore(keys.alive(id), 'dead')).not.toBeNull();
    expect((await stream.takeover(id, 'me-reclaim', 'me', 3)).length).toBe(1);
    expect(await pendingOn(id)).toEqual({ 'me-reclaim': 4 });
    expect(await redis.zscore(keys.alive(id), 'dead')).toBeNull();
  });

  it('lets a lease go at once when its holder’s heartbeat lapsed, under the next epoch; never while it is current or absent', async () => {
    const id = ++campaign;
    const dead = new Lease({ gateway: new RedisGateway(redis, keys, { livenessTtlMs: 0 }), campaignId: id, holder: 'old', ttlMs: 60_000 });
    expect(await dead.tick()).toBe(true);
    const next = new Lease({ gateway: new RedisGateway(redis, keys, { livenessTtlMs: 0 }), campaignId: id, holder: 'new', ttlMs: 60_000 });
    // no heartbeat: the lease's ttl rules
    expect(await next.tick()).toBe(false);
    await redis.zadd(keys.alive(id), Date.now() + 60_000, 'old');
    expect(await next.tick()).toBe(false);
    await redis.zadd(keys.alive(id), 1, 'old');
    expect(await next.tick()).toBe(true);
    expect(next.epoch).toBe(dead.epoch + 1);
    // the old holder, woken, has lost it
    expect(await dead.tick()).toBe(false);
  });
});
