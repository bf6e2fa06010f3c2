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
  async step(campaignId: number, consumer: string, entryId: string, sent: number, batch: number): Promise<StepResult> {
    const k = this.keys;
    let reply: [string, number];
    try {
      reply = await this.cmds.heraldChunkStep(
        k.status(campaignId),
        k.ledger(campaignId),
        k.overshoot(campaignId),
        k.chunks(campaignId),
        CHUNK_GROUP,
        consumer,
        entryId,
        sent,
        batch,
      );
    } catch (err) {
      // The stream or its group is gone (Redis lost it): this chunk is no one's now; the owner re-plans.
      if (String((err as Error).message).includes('NOGROUP')) return { stale: true, status: null, sent: 0 };
      throw err;
    }
    const [state, ledger] = reply;
    return { stale: state === 'stale', status: state === 'stale' || state === '' ? null : state, sent: Number(ledger) };
  }
}
