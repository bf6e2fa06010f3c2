/**
 * The recipient ledger: per chunk, how many of its recipients were handed to the channel. Written after
 * each sub-batch the channel accepted (never when the chunk was read), fenced by the stream's own
 * ownership record, so a reclaimed or resumed chunk continues after its sent part and a consumer that
 * lost its chunk cannot record progress.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { Keys } from '../stream/keys.js';
import { CHUNK_GROUP } from '../stream/keys.js';

export interface StepResult {
  stale: boolean;
  /** announced status, or null when Redis has none (restarted): the caller uses what it knows */
  status: string | null;
  /** the chunk's recipients sent so far */
  sent: number;
}

interface LedgerCommands {
  heraldChunkStep(...args: Array<string | number>): Promise<[string, number]>;
}

const LUA = readFileSync(new URL('./lua/chunk-step.lua', import.meta.url), 'utf8');

export class Ledger {
  private readonly cmds: LedgerCommands;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
  ) {
    if (!(redis as unknown as Partial<LedgerCommands>).heraldChunkStep)
      redis.defineCommand('heraldChunkStep', { numberOfKeys: 4, lua: LUA });
    this.cmds = redis as unknown as LedgerCommands;
  }

  /** `sent` < 0 only reads (before the first sub-batch). */
  async step(campaignId: number, consumer: string, entryId: string, seq: number, sent: number, batch: number): Promise<StepResult> {
    const k = this.keys;
    const [state, ledger] = await this.cmds.heraldChunkStep(
      k.status(campaignId),
      k.ledger(campaignId),
      k.overshoot(campaignId),
      k.chunks(campaignId),
      CHUNK_GROUP,
      consumer,
      entryId,
      seq,
      sent,
      batch,
    );
    return { stale: state === 'stale', status: state === 'stale' || state === '' ? null : state, sent: Number(ledger) };
  }
}
