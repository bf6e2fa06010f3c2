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

interface LedgerCommands {
  heraldChunkStep(...args: Array<string | number | Buffer>): Promise<[string, number]>;
}

const EMPTY = Buffer.alloc(0);
const LUA = readFileSync(new URL('./lua/chunk-step.lua', import.meta.url), 'utf8');

export class Ledger {
  private readonly cmds: LedgerCommands;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {
    if (!(redis as unknown as Partial<LedgerCommands>).heraldChunkStep)
      redis.defineCommand('heraldChunkStep', { numberOfKeys: 7, lua: LUA });
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
      reply = await this.cmds.heraldChunkStep(
        k.status(campaignId),
        k.ledger(campaignId),
        k.overshoot(campaignId),
        k.chunks(campaignId),
        k.records(campaignId),
        k.plan(campaignId),
        k.live(campaignId),
        CHUNK_GROUP,
        consumer,
        entryId,
        sent,
        batch,
        record,
        failures,
      );
    } catch (err) {
      throw new HeraldError('DEPENDENCY_UNAVAILABLE', `Redis ledger step: ${(err as Error).message}`, {}, err);
    }
    const [state, ledger] = reply;
    const lost = state === 'lost';
    const stale = state === 'stale' || lost;
    return { stale, lost, status: stale || state === '' ? null : state, sent: Number(ledger) };
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
