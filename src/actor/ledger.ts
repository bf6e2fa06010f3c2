/**
 * The recipient ledger: per chunk (keyed by its stream entry id), how many of its recipients were handed to the channel. Written after
 * each sub-batch the channel accepted (never when the chunk was read), fenced by the stream's own
 * ownership record, so a reclaimed or resumed chunk continues after its sent part and a consumer that
 * lost its chunk cannot record progress.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { Keys } from '../stream/keys.js';
import { CHUNK_GROUP } from '../stream/keys.js';
import { HeraldError } from '../errors.js';
import { decodeRecords, type SubBatchRecord } from '../domain/sub-batch.js';

export interface StepResult {
  /** this consumer no longer holds the chunk (taken over, or finished by someone else) */
  stale: boolean;
  /**
   * Redis lost the campaign's work state (restarted empty, failed over, re-planned since): nothing can be
   * recorded here, and what was sent must still reach ClickHouse, which the re-plan consults.
   */
  lost: boolean;
  /** announced status, or null when Redis has none (restarted): the caller uses what it knows */
  status: string | null;
  /** the chunk's recipients sent so far */
  sent: number;
}

type StepArgs = Array<string | number | Buffer>;
type StepReply = [string, number];

interface LedgerCommands {
  heraldChunkStep(...args: StepArgs): Promise<StepReply>;
}

interface PipelineSteps {
  heraldChunkStep(...args: StepArgs): PipelineSteps;
  exec(): Promise<Array<[Error | null, unknown]> | null>;
}

interface Waiting {
  args: StepArgs;
  resolve: (r: StepReply) => void;
  reject: (err: unknown) => void;
}

export interface LedgerOptions {
  /**
   * HERALD_LIVENESS_TTL_MS: a step that finds its chunk still held renews its process's heartbeat for this
   * long (0: liveness off)
   * @default 0
   */
  livenessTtlMs?: number;
}

const EMPTY = Buffer.alloc(0);
const LUA = readFileSync(new URL('./lua/chunk-step.lua', import.meta.url), 'utf8');

export class Ledger {
  private readonly cmds: LedgerCommands;
  /** steps asked for in this turn of the event loop, sent together (one socket write) */
  private waiting: Waiting[] = [];

  private readonly livenessTtlMs: number;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    options: LedgerOptions = {},
  ) {
    this.livenessTtlMs = options.livenessTtlMs ?? 0;
    if (!(redis as unknown as Partial<LedgerCommands>).heraldChunkStep)
      redis.defineCommand('heraldChunkStep', { numberOfKeys: 8, lua: LUA });
    this.cmds = redis as unknown as LedgerCommands;
  }

  /**
   * `sent` < 0 only reads (before the first sub-batch). Otherwise `record` (domain/sub-batch.ts) is kept
   * with the ledger, so the sub-batch's events can be rebuilt by whoever holds the chunk next; `failures`
   * of its `batch` recipients failed (for the live counters).
   */
  async step(
    campaignId: number,
    consumer: string,
    entryId: string,
    sent: number,
    batch: number,
    record: Buffer = EMPTY,
    failures = 0,
  ): Promise<StepResult> {
    const k = this.keys;
    let reply: [string, number];
    try {
      reply = await this.send([
        k.status(campaignId),
        k.ledger(campaignId),
        k.overshoot(campaignId),
        k.chunks(campaignId),
        k.records(campaignId),
        k.plan(campaignId),
        k.live(campaignId),
        k.alive(campaignId),
        CHUNK_GROUP,
        consumer,
        entryId,
        sent,
        batch,
        record,
        failures,
        this.livenessTtlMs,
      ]);
    } catch (err) {
      throw new HeraldError('DEPENDENCY_UNAVAILABLE', `Redis ledger step: ${(err as Error).message}`, {}, err);
    }
    const [state, ledger] = reply;
    const lost = state === 'lost';
    const stale = state === 'stale' || lost;
    return { stale, lost, status: stale || state === '' ? null : state, sent: Number(ledger) };
  }

  /**
   * Steps of chunks processed side by side arrive within one turn of the event loop: they go to Redis
   * as one pipeline, one write and one read instead of one each. On loopback a write costs about as much
   * CPU as the script it carries (profiled: the steps' socket writes were ~13% of Herald's process in a
   * 1M-recipient run). Each step is still its own atomic script; only the round trips are shared.
   */
  private send(args: StepArgs): Promise<StepReply> {
    return new Promise<StepReply>((resolve, reject) => {
      if (this.waiting.push({ args, resolve, reject }) === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const batch = this.waiting;
    this.waiting = [];
    if (batch.length === 1) {
      const w = batch[0]!;
      this.cmds.heraldChunkStep(...w.args).then(w.resolve, w.reject);
      return;
    }
    const p = (this.redis as unknown as { pipeline(): PipelineSteps }).pipeline();
    for (const w of batch) p.heraldChunkStep(...w.args);
    p.exec().then(
      (results) => {
        batch.forEach((w, i) => {
          const [err, reply] = results?.[i] ?? [new Error('no reply in pipeline'), null];
          if (err !== null) w.reject(err);
          else w.resolve(reply as StepReply);
        });
      },
      (err: unknown) => {
        for (const w of batch) w.reject(err);
      },
    );
  }

  /** The sub-batches recorded for a chunk so far, in order. */
  async records(campaignId: number, entryId: string): Promise<SubBatchRecord[]> {
    let bytes: Buffer | null;
    try {
      bytes = await this.redis.hgetBuffer(this.keys.records(campaignId), entryId);
    } catch (err) {
      throw new HeraldError('DEPENDENCY_UNAVAILABLE', `Redis read ledger records: ${(err as Error).message}`, {}, err);
    }
    return decodeRecords(bytes);
  }
}
