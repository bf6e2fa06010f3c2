import { describe, expect, it } from 'vitest';
import { API_KEY, useHerald, type Api } from '../helpers/herald.js';
import { RawWsClient } from '../helpers/raw-ws.js';

const auth = { authorization: `Bearer ${API_KEY}` };
const LIMIT = 16 * 1024;

async function wsStats(api: Api): Promise<{ clients: number; slow: number; closed_slow: number }> {
  const r = await api.call('GET', '/v1/ws/clients');
  expect(r.status).toBe(200);
  return r.body;
}

/**
 * Makes `c` a slow client: it stops reading and sends bad messages, each answered by an error frame, until
 * the server reports it past the backpressure limit (the kernel buffers on both sides are full by then).
 * Returns how many messages it sent.
 */
async function makeSlow(c: RawWsClient, api: Api): Promise<number> {
  c.pause();
  const step = 20_000;
  const batch = Buffer.concat(Array.from({ length: step }, () => RawWsClient.textFrame('{"hello":1}')));
  for (let sent = step; sent <= 3_000_000; sent += step) {
    await c.write(batch);
    if ((await wsStats(api)).slow >= 1) return sent;
  }
  throw new Error('the server never saw the client as slow');
}

/** Keeps a slow client's buffer full (the kernel's buffers grow while it is not reading) until stopped. */
function keepSlow(c: RawWsClient): { stop(): Promise<number> } {
  let running = true;
  let sent = 0;
  const batch = Buffer.concat(Array.from({ length: 1_000 }, () => RawWsClient.textFrame('{"hello":1}')));
  const loop = (async () => {
    while (running) {
      await c.write(batch);
      sent += 1_000;
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return sent;
    },
  };
}

const errorFrames = (c: RawWsClient): number => c.json().filter((f) => typeof f.error === 'string').length;

describe('a slow WebSocket client past the backpressure limit', () => {
  const ctx = useHerald({ wsTickMs: 250, wsMaxBackpressure: LIMIT, wsSlowCloseMs: 120_000 });

  it('has its frames skipped, not queued, and gets the latest frame once it reads again', async () => {
    const { api } = ctx;
    const audienceId = await api.audience(20_000, 'slow');
    const id = await api.nullCampaign(audienceId, { name: 'watched', rate_limit: 10_000, chunk_size: 1_000 });
    const slow = await RawWsClient.open(ctx.herald.port, '/v1/ws', auth);
    const live = await RawWsClient.open(ctx.herald.port, '/v1/ws', auth);
    await slow.send({ subscribe: String(id) });
    await live.send({ subscribe: String(id) });
    await slow.until(() => slow.json().some((f) => f.status === 'draft'), 5_000, 'first frame');
    let sent = await makeSlow(slow, api);
    const pressure = keepSlow(slow);

    await api.call('POST', `/v1/campaigns/${id}/start`);
    await live.until(() => live.json().some((f) => f.status === 'completed'), 60_000, 'completed frame');
    await new Promise((r) => setTimeout(r, 300));
    // Still past the limit, and not closed: it is slow, not yet too slow.
    expect(await wsStats(api)).toMatchObject({ clients: 2, slow: 1, closed_slow: 0 });
    sent += await pressure.stop();

    const before = slow.json().length;
    slow.resume();
    await slow.until(() => slow.json().some((f) => f.status === 'completed'), 10_000, 'latest frame after draining');
    const errors = errorFrames(slow);
    // Error frames were dropped past the limit too: far fewer came than it asked for.
    expect(errors).toBeLessThan(sent);
    // Of the campaign's frames, most were skipped; the last one it got is the latest.
    const mine = slow
      .json()
      .slice(before)
      .filter((f) => f.campaign_id === id);
    const seen = live.json().filter((f) => f.campaign_id === id);
    expect(seen.length).toBeGreaterThan(6);
    expect(mine.length).toBeLessThan(seen.length / 2);
    // (`at` aside: the hub may have re-read the figures since)
    expect({ ...mine.at(-1), at: null }).toEqual({ ...seen.at(-1), at: null });
    expect(seen.at(-1)).toMatchObject({ status: 'completed', delivered: 20_000 });
    // Caught up, it is an ordinary client again.
    await slow.until(() => slow.frames.length > 0, 1_000, 'frames');
    expect((await wsStats(api)).slow).toBe(0);
    await slow.send({ subscribe: '987654321' });
    await slow.until(() => slow.json().some((f) => f.error === 'campaign 987654321 not found'), 5_000, 'answer after catching up');
    expect(slow.closeFrame).toBeNull();
    slow.destroy();
    live.destroy();
  }, 120_000);
});

describe('a WebSocket client that stays past the backpressure limit', () => {
  const slowCloseMs = 2_000;
  const ctx = useHerald({ wsTickMs: 250, wsMaxBackpressure: LIMIT, wsSlowCloseMs: slowCloseMs });

  it('is closed with code 4008 and a reason, and the server goes on serving the others', async () => {
    const { api } = ctx;
    const slow = await RawWsClient.open(ctx.herald.port, '/v1/ws', auth);
    const live = await RawWsClient.open(ctx.herald.port, '/v1/ws', auth);
    let sent = await makeSlow(slow, api);
    const slowAt = Date.now();
    const pressure = keepSlow(slow);
    // The server closes it `slowCloseMs` after it became slow (checked every 250 ms), and drops the
    // connection if the close frame is still unread as long again. Reading in between takes the close frame.
    await new Promise((r) => setTimeout(r, slowCloseMs + 400));
    sent += await pressure.stop();
    slow.resume();
    await slow.until(() => slow.ended, 10_000, 'connection closed');
    expect(slow.closeFrame).toEqual({ code: 4008, reason: `too slow: over ${LIMIT} bytes unsent for ${slowCloseMs} ms` });
    expect(errorFrames(slow)).toBeLessThan(sent);
    expect(Date.now() - slowAt).toBeLessThan(slowCloseMs * 2 + 1_000);
    expect(await wsStats(api)).toEqual({ clients: 1, slow: 0, closed_slow: 1 });
    await live.send({ subscribe: '987654321' });
    await live.until(() => live.json().some((f) => f.error === 'campaign 987654321 not found'), 5_000, 'live client answered');
    live.destroy();
  }, 60_000);
});
