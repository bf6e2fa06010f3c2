/**
 * The BullMQ builds of a mass sender. The audience is cut into jobs of `chunk` recipients (keyset ranges,
 * one window query), enqueued with addBulk; a Worker with `concurrency` jobs at a time reads each job's
 * recipients from PostgreSQL, calls a no-op send per recipient (or POSTs them to a webhook: `send`), and records one event row per recipient
 * in ClickHouse (EventBatcher: Herald's encoding, `batchRows` per insert). Two ways to finish a job:
 * - `stored`: a job completes once its events are stored (nothing is lost if the worker dies);
 * - `buffered`, the way most users write it: the job hands its rows to the buffer and returns at once;
 *   the buffer is inserted as it fills (`batchRows`) and once at the end. A worker that dies loses what
 *   it buffered, which Herald never does; it is here because it is what Herald is compared with in practice.
 * Measured from the first query until the last job completed and every event is stored.
 */
import { Queue, Worker, type Job } from 'bullmq';
import type { Pool } from 'pg';
import type { ClickHouse } from '../../src/clickhouse/client.js';
import { packStrings } from '../../src/domain/packed-ids.js';
import { EventBatcher } from './event-batcher.js';
import { noopSend, type PeerResult } from './peer.js';

export interface BullmqOptions {
  redisUrl: string;
  prefix: string;
  pool: Pool;
  ch: ClickHouse;
  audienceId: number;
  campaignId: number;
  chunk: number;
  concurrency: number;
  batchRows: number;
  /** @default 'stored' */
  mode?: 'stored' | 'buffered';
  /**
   * The send of a job's recipients (a webhook: peers/webhook-send.ts); absent: the null channel's no-op
   * per recipient. Given, each job also reads its recipients' addresses.
   */
  send?: (users: readonly string[], addresses: ReadonlyArray<string | null>) => Promise<void>;
}

interface ChunkJob {
  from: number;
  /** exclusive; null: to the end */
  to: number | null;
}

export async function runBullmq(o: BullmqOptions): Promise<PeerResult> {
  const url = new URL(o.redisUrl);
  const connection = { host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null };
  const name = `chunks-${o.campaignId}`;
  const queue = new Queue<ChunkJob>(name, { connection, prefix: o.prefix });
  const buffered = o.mode === 'buffered';
  // buffered: no partial insert on a timer, only full batches and the last one
  const events = new EventBatcher(o.ch, o.batchRows, buffered ? Infinity : 200);
  const inserts: Array<Promise<void>> = [];
  let recipients = 0;
  let completed = 0;
  let failedJob: Error | null = null;
  const t0 = performance.now();

  const starts = (
    await o.pool.query<{ id: string }>(
      `SELECT id FROM (SELECT id, row_number() OVER (ORDER BY id) AS rn FROM recipients WHERE audience_id = $1) s
       WHERE rn % $2 = 1 ORDER BY id`,
      [o.audienceId, o.chunk],
    )
  ).rows.map((r) => Number(r.id));
  const jobs = starts.map((from, i) => ({ name: 'chunk', data: { from, to: starts[i + 1] ?? null } }));
  for (let i = 0; i < jobs.length; i += 500) await queue.addBulk(jobs.slice(i, i + 500));
  const firstJobAt = performance.now();

  const allDone = new Promise<void>((resolve, reject) => {
    const worker = new Worker<ChunkJob>(
      name,
      async (job: Job<ChunkJob>) => {
        const { from, to } = job.data;
        const columns = o.send === undefined ? 'user_id' : 'user_id, address';
        const res = await o.pool.query({
          text:
            to === null
              ? `SELECT ${columns} FROM recipients WHERE audience_id = $1 AND id >= $2 ORDER BY id`
              : `SELECT ${columns} FROM recipients WHERE audience_id = $1 AND id >= $2 AND id < $3 ORDER BY id`,
          values: to === null ? [o.audienceId, from] : [o.audienceId, from, to],
          rowMode: 'array',
        });
        const users = res.rows.map((r: unknown[]) => r[0] as string);
        if (o.send === undefined) for (const u of users) noopSend(u);
        else
          await o.send(
            users,
            res.rows.map((r: unknown[]) => (r[1] as string | null) ?? null),
          );
        const stored = events.append(o.campaignId, packStrings(users), users.length, Math.floor(Date.now() / 1000));
        if (buffered) {
          // awaited once every job is done; a failed insert must not go unhandled meanwhile
          stored.catch(() => undefined);
          inserts.push(stored);
        } else await stored;
        recipients += users.length;
      },
      { connection, prefix: o.prefix, concurrency: o.concurrency, removeOnComplete: { count: 0 }, removeOnFail: { count: 0 } },
    );
    worker.on('completed', () => {
      if (++completed === jobs.length) worker.close().then(resolve, reject);
    });
    worker.on('failed', (_job, err) => {
      failedJob = err;
      worker.close().then(() => reject(err), reject);
    });
  });
  await allDone;
  events.flush();
  await Promise.all(inserts);
  const seconds = (performance.now() - t0) / 1000;
  if (failedJob !== null) throw failedJob;
  await queue.obliterate({ force: true });
  await queue.close();
  return { seconds, recipients, firstMessageMs: Math.round(firstJobAt - t0), extra: { jobs: jobs.length, inserts: events.inserts } };
}
