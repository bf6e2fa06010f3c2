/**
 * `herald campaign watch ID`: follows a campaign's progress frames on the WebSocket API (msgpack frames,
 * decoded by ws/frame.ts) until its status is terminal, then prints the totals of GET /v1/campaigns/:id
 * and ends with an exit code by outcome (format.ts EXIT). A dropped connection (a server restart) is
 * opened again; the first frame after a subscribe is the campaign as it is, so nothing is missed.
 */
import { decodeFrame } from '../ws/frame.js';
import { CliError, type HeraldClient } from './client.js';
import { ending, type Context } from './context.js';
import { count, duration, rate, TERMINAL, watchExitCode, watchLine, watchSummary } from './format.js';
import { createProgress, type ProgressState } from './progress.js';

type Obj = Record<string, unknown>;

/** Connection attempts in a row, a second apart, before the watch gives up. */
const RECONNECTS = 30;
const RECONNECT_MS = 1000;

const num = (v: unknown): number => Number(v ?? 0);

export function frameProgress(f: Obj): ProgressState {
  const done = num(f.sent) + num(f.skipped) + num(f.suppressed) + num(f.capped) + num(f.aborted);
  return {
    value: done,
    total: num(f.total),
    phase: String(f.status),
    payload: {
      status: String(f.status),
      delivered: count(f.delivered),
      failed: count(f.failed),
      read: count(f.read),
      rate: rate(num(f.rate_per_s), 'msg'),
      left: duration(f.eta_s as number | null),
    },
    line: watchLine(f),
  };
}

/** Resolves with the first frame whose status is terminal; `onFrame` hears every frame before it. */
async function follow(client: HeraldClient, id: number, onFrame: (f: Obj) => void): Promise<void> {
  let failures = 0;
  for (;;) {
    let ws: Awaited<ReturnType<HeraldClient['openWs']>>;
    try {
      ws = await client.openWs();
    } catch (err) {
      if (++failures >= RECONNECTS) throw err;
      await new Promise((r) => setTimeout(r, RECONNECT_MS));
      continue;
    }
    failures = 0;
    const ended = await new Promise<boolean>((resolve, reject) => {
      ws.addEventListener('message', (ev) => {
        let f: Obj;
        try {
          f = decodeFrame(ev.data as ArrayBuffer | string);
        } catch (err) {
          reject(new CliError(`a WebSocket frame that does not decode: ${(err as Error).message}`));
          return;
        }
        if (typeof f.error === 'string') {
          reject(new CliError(`WebSocket: ${f.error}`));
          return;
        }
        if (num(f.campaign_id) !== id) return;
        onFrame(f);
        if (TERMINAL.has(String(f.status))) resolve(true);
      });
      ws.addEventListener('close', () => resolve(false));
      ws.send(JSON.stringify({ subscribe: String(id) }));
    }).finally(() => ws.close());
    if (ended) return;
    await new Promise((r) => setTimeout(r, RECONNECT_MS));
  }
}

export async function watchCampaign(ctx: Context, id: number): Promise<void> {
  const client = ctx.client();
  let c = await client.call('GET', `/v1/campaigns/${id}`);
  if (!TERMINAL.has(String(c.status))) {
    const progress = ctx.json
      ? null
      : await createProgress({
          out: ctx.out,
          format:
            '{bar} {percentage}% | {value}/{total} | {status} | delivered {delivered} failed {failed} read {read} | {rate} | ETA {left}',
          plainEveryMs: 1000,
        });
    try {
      await follow(client, id, (f) => {
        if (ctx.json) ctx.out.write(`${JSON.stringify(f)}\n`);
        else progress?.update(frameProgress(f));
      });
    } finally {
      progress?.stop();
    }
    c = await client.call('GET', `/v1/campaigns/${id}`);
  }
  if (ctx.json) ctx.out.write(`${JSON.stringify(c)}\n`);
  else ctx.out.write(`${watchSummary(c)}\n`);
  ending.code = watchExitCode(String(c.status), num(c.failed));
}
