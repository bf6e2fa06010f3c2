import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import type { HeraldError } from '../../src/errors.js';
import { Keys } from '../../src/stream/keys.js';
import { hashTag, slotGroups, type RedisClient } from '../../src/stream/redis-connect.js';
import { RedisGateway } from '../../src/stream/redis-gateway.js';

describe('REDIS_CLUSTER_NODES', () => {
  it('takes host:port items, IPv6 hosts in brackets, and is empty by default', () => {
    expect(loadConfig({}).redisClusterNodes).toEqual([]);
    expect(loadConfig({ REDIS_CLUSTER_NODES: ' 10.0.0.1:7001, redis-b:7002,[::1]:7003 ' }).redisClusterNodes).toEqual([
      '10.0.0.1:7001',
      'redis-b:7002',
      '[::1]:7003',
    ]);
  });

  it('refuses an item without a port, or with one out of range, naming the variable', () => {
    for (const bad of ['127.0.0.1', '127.0.0.1:0', 'a:70000', 'redis://a:7001']) {
      try {
        loadConfig({ REDIS_CLUSTER_NODES: `127.0.0.1:7001,${bad}` });
        throw new Error(`${bad} accepted`);
      } catch (err) {
        expect((err as HeraldError).details.fields).toEqual([
          { field: 'REDIS_CLUSTER_NODES', error: expect.stringContaining(`'${bad}' is not`) as string },
        ]);
      }
    }
  });
});

describe('hash tags', () => {
  it('reads a key as Redis Cluster does: the first non-empty {…}, else the whole key', () => {
    expect(hashTag('h:{c12}:chunks')).toBe('c12');
    expect(hashTag('h:{cap:news}:w1000:state')).toBe('cap:news');
    expect(hashTag('h:{}:x{y}')).toBe('h:{}:x{y}');
    expect(hashTag('h:control')).toBe('h:control');
  });

  it('groups items by tag on a cluster; one group on one Redis', () => {
    const ids = [1, 2, 1, 3, 2];
    const keys = new Keys('h');
    const single = {} as RedisClient;
    expect(slotGroups(single, ids, (id) => keys.live(id))).toEqual([ids]);
    expect(slotGroups(single, [], (id: number) => keys.live(id))).toEqual([]);
  });

  /**
   * Every script the gateway runs: the keys it sends. Each call must name keys of one hash tag, or a
   * cluster refuses it (CROSSSLOT). The client only records what it is asked to send.
   */
  it('gives every Lua script keys of one hash tag', async () => {
    const sent: string[][] = [];
    const client = {
      call: (cmd: string, _sha: string, numKeys: number, ...rest: unknown[]) => {
        sent.push([cmd, ...rest.slice(0, numKeys).map(String)]);
        return Promise.reject(new Error('recorded'));
      },
      callBuffer: (cmd: string, _sha: string, numKeys: number, ...rest: unknown[]) => {
        sent.push([cmd, ...rest.slice(0, numKeys).map(String)]);
        return Promise.reject(new Error('recorded'));
      },
    } as unknown as RedisClient;
    const g = new RedisGateway(client, new Keys('h'), { livenessTtlMs: 3000 });
    const c = { campaignId: 7, consumer: 'host-1-a-0' };
    const calls: Array<Promise<unknown>> = [
      g.chunkSteps([{ ...c, entryId: '0-1', record: { sent: 1, n: 1, bytes: Buffer.alloc(0), failed: 0 } }]),
      g.fence({ ...c, ids: ['0-1'] }),
      g.touch({ ...c, ids: ['0-1'] }),
      g.takeover({ ...c, holder: 'host-1-a', count: 10 }),
      g.leaseAcquire({ campaignId: 7, holder: 'x', ttlMs: 1 }),
      g.leaseRenew({ campaignId: 7, token: 'x:1', ttlMs: 1 }),
      g.leaseRelease({ campaignId: 7, token: 'x:1' }),
      g.livenessBeat({ campaignId: 7, holder: 'x', ttlMs: 1 }),
      g.rateAcquire({ campaignId: 7, rate: 1, n: 1, burstUs: 1 }),
      g.announce({ campaignId: 7, status: 'sending', version: 1, ttlS: 0, message: '7 sending' }),
      g.raiseSuppressionMark(1),
      g.capTake({ topic: 'news', windowMs: 1000, campaignId: 7, max: 1, users: Buffer.from('u1'), count: 1 }),
      g.capSeed({ topic: 'news', windowMs: 1000, first: true, last: true, entries: [] }),
    ];
    await Promise.allSettled(calls);
    expect(sent.length).toBe(calls.length);
    for (const [cmd, ...keys] of sent) {
      expect(cmd).toBe('EVALSHA');
      expect(keys.length).toBeGreaterThan(0);
      expect(new Set(keys.map(hashTag)).size, keys.join(' ')).toBe(1);
    }
  });
});
