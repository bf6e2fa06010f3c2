import { createServer, type Server } from 'node:http';
import type { RedisClient } from '../../src/stream/redis-connect.js';
import { afterAll, beforeAll } from 'vitest';
import type { Config } from '../../src/config.js';
import type { Herald } from '../../src/main.js';
import { apiFor, createNamespace, startTestHerald, type Api, type Namespace } from './herald.js';
import { listenLocal } from './local-http.js';

/**
 * A webhook receiver that holds its first post until `release()` and answers every other at once (200):
 * a chunk's request kept out while a test changes the world around it. `posts` lists each post's
 * idempotency keys with when it arrived; `first` resolves once the held post has arrived.
 */
export interface HeldReceiver {
  server: Server;
  url: string;
  posts: Array<{ at: number; keys: string[] }>;
  first: Promise<void>;
  release(): void;
}

export async function heldFirstReceiver(): Promise<HeldReceiver> {
  const posts: HeldReceiver['posts'] = [];
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let arrived!: () => void;
  const first = new Promise<void>((r) => (arrived = r));
  const server = createServer((req, res) => {
    let data = '';
    req.on('data', (d: Buffer) => (data += d.toString()));
    req.on('end', () => {
      const body = JSON.parse(data) as { messages: Array<{ idempotency_key: string }> };
      posts.push({ at: Date.now(), keys: body.messages.map((m) => m.idempotency_key) });
      const answer = (): void => void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      if (posts.length > 1) return answer();
      arrived();
      void released.then(answer);
    });
  });
  return { server, url: await listenLocal(server), posts, first, release };
}

/**
 * Deletes every key of a campaign (its hash tag `{c<id>}`), as a Redis restarted empty loses them; with
 * `lease`, sets the campaign's lease to that value in the same step (who wins it after the restart).
 */
export async function emptyCampaignKeys(
  redis: RedisClient,
  prefix: string,
  campaignId: number,
  lease?: { key: string; value: string },
): Promise<void> {
  await redis.eval(
    `local cursor = '0'
     repeat
       local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
       cursor = r[1]
       for _, k in ipairs(r[2]) do redis.call('DEL', k) end
     until cursor == '0'
     if ARGV[2] then redis.call('SET', KEYS[1], ARGV[2], 'PX', 60000) end
     return 1`,
    lease === undefined ? 0 : 1,
    ...(lease === undefined ? [] : [lease.key]),
    `${prefix}:{c${campaignId}}:*`,
    ...(lease === undefined ? [] : [lease.value]),
  );
}

/** useHerald (helpers/herald.ts) with a held-first receiver beside it; the held post is let go at the end. */
export function useHeraldWithHeldReceiver(overrides: Partial<Config>): { ns: Namespace; herald: Herald; api: Api; rx: HeldReceiver } {
  const ctx = {} as { ns: Namespace; herald: Herald; api: Api; rx: HeldReceiver };
  beforeAll(async () => {
    ctx.rx = await heldFirstReceiver();
    ctx.ns = await createNamespace(overrides);
    ctx.herald = await startTestHerald(ctx.ns);
    ctx.api = apiFor(ctx.herald);
  });
  afterAll(async () => {
    ctx.rx?.release();
    await ctx.herald?.stop();
    await ctx.ns?.drop();
    ctx.rx?.server.close();
  });
  return ctx;
}
