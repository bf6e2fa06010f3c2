/**
 * The read spool's drainer in a worker thread (started by read-spool.ts through spool-worker-boot.mjs):
 * its own ClickHouse client and event sink, so decoding frames, looking deliveries up and building
 * Native blocks never run on the API's event loop. Messages from the main thread:
 *   {t: 'committed', file, spoolId, end, live}   the writer fsynced whole frames up to `end`
 *   {t: 'close', timeoutMs}                      drain what can be, then answer {t: 'closed'}
 * and to it: {t: 'stats', stats} after each drain, {t: 'ready'} once started.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pino } from 'pino';
import { ClickHouse } from '../clickhouse/client.js';
import { InboxReader } from '../progress/inbox-reader.js';
import { clickhouseInserter } from './clickhouse-inserter.js';
import { EventSink } from './event-sink.js';
import { SpoolDrainer } from './spool-drainer.js';

export interface SpoolWorkerData {
  instance: string;
  /** instance ids of the spools alive in this process: their files are never adopted */
  live: string[];
  dir: string;
  clickhouseUrl: string;
  clickhouseDb: string;
  /** '' for one server */
  clickhouseCluster: string;
  flushRows: number;
  flushMs: number;
  maxBufferedRows: number;
  drainEvents: number;
  drainIntervalMs: number;
  adoptGraceMs: number;
  logLevel: string;
}

export type ToWorker = { t: 'committed'; file: string; spoolId: number; end: number; live: boolean } | { t: 'close'; timeoutMs: number };

const data = workerData as SpoolWorkerData;
const port = parentPort!;
const log = pino({ level: data.logLevel, base: { thread: 'read-spool' } });
const ch = new ClickHouse({ url: data.clickhouseUrl, database: data.clickhouseDb, cluster: data.clickhouseCluster });
const inbox = new InboxReader(ch);
const sink = new EventSink(clickhouseInserter(ch), {
  flushRows: data.flushRows,
  flushMs: data.flushMs,
  maxBufferedRows: data.maxBufferedRows,
  onError: (err, attempt) => log.error({ err: (err as Error).message, attempt }, 'ClickHouse insert of spooled events failed; retrying'),
});
const drainer = new SpoolDrainer(sink, (campaignId, userIds) => inbox.deliveries(campaignId, userIds), {
  dir: data.dir,
  drainEvents: data.drainEvents,
  drainIntervalMs: data.drainIntervalMs,
  adoptGraceMs: data.adoptGraceMs,
  log,
});
drainer.onStats = (stats) => port.postMessage({ t: 'stats', stats });

port.on('message', (msg: ToWorker) => {
  if (msg.t === 'committed') drainer.committed(msg.file, msg.spoolId, msg.end, msg.live);
  else
    void (async () => {
      await drainer.close(msg.timeoutMs);
      await sink.close().catch((err: unknown) => log.error({ err }, 'spooled events not flushed at shutdown'));
      await ch.close();
      port.postMessage({ t: 'closed', stats: drainer.stats() });
    })();
});

await drainer.start(data.instance, new Set(data.live));
port.postMessage({ t: 'ready' });
