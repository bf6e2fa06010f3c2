/**
 * Herald's one door to its Redis scripts: each script's keys built from `Keys`, its arguments from one typed
 * object, its reply checked and turned into a typed value (BullMQ's `scripts.ts` keeps one `…Args()` builder
 * per command the same way). A reply of an unexpected shape is an error naming the script, never a cast.
 * The chunk protocol (chunk-protocol.ts) runs its stream commands itself and its scripts through here.
 */
import type { OutcomeCounts } from '../domain/accounting.js';
import type { WithheldKind } from '../domain/withheld.js';
import { pipelineBySlot, slotGroups, type RedisClient } from './redis-connect.js';
import { HeraldError } from '../errors.js';
import { isCampaignStatus, type CampaignStatus } from '../domain/campaign-status.js';
import type { StepReply } from '../domain/chunk-state.js';
import { runScript, runScripts, type ScriptCall, type ScriptName } from './redis-scripts.js';
import { CHUNK_GROUP, type Keys } from './keys.js';

/** the live counters hash's fields, in the order liveCounts reads them */
const LIVE_FIELDS = ['delivered', 'failed', 'skipped', 'suppressed', 'capped'] as const;

export interface StepParams {
  campaignId: number;
  /** the consumer the entry must be pending on (the fence) */
  consumer: string;
  entryId: string;
  /** a sub-batch just sent, to record; absent: the step only reads */
  record?: {
    /** the chunk's recipients sent after this sub-batch */
    sent: number;
    /** recipients in the sub-batch */
    n: number;
    /** its record (domain/sub-batch.ts), kept so its events can be rebuilt by the next holder */
    bytes: Buffer;
    /** recipients of it that failed (for the live counters) */
    failed: number;
    /** recipients of it withheld, by kind (for the live counters); none when absent */
    withheld?: Record<WithheldKind, number>;
    /** wall-clock ms the channel answered it at (the overshoot counts it only if after a pause); absent: unknown */
    answeredAtMs?: number;
  };
}

export interface GatewayOptions {
  /** HERALD_LIVENESS_TTL_MS: steps, fences and takeovers renew the caller's heartbeat this long (0: off) */
  livenessTtlMs: number;
}

function invalid(script: ScriptName, reply: unknown): HeraldError {
  return new HeraldError('DEPENDENCY_UNAVAILABLE', `Redis ${script}: unexpected reply ${JSON.stringify(reply)}`);
}

function asInteger(script: ScriptName, reply: unknown): number {
  const n = typeof reply === 'number' ? reply : typeof reply === 'string' ? Number(reply) : NaN;
  if (!Number.isFinite(n)) throw invalid(script, reply);
  return n;
}

function asStrings(script: ScriptName, reply: unknown): string[] {
  if (!Array.isArray(reply)) throw invalid(script, reply);
  return reply.map(String);
}

function asStepReply(reply: unknown): StepReply {
  if (!Array.isArray(reply) || reply.length !== 3) throw invalid('chunkStep', reply);
  const items: unknown[] = reply;
  const [hold, status, sent] = items;
  if (hold === 'lost') return { hold };
  if (hold === 'stale') return { hold, sent: asInteger('chunkStep', sent) };
  if (hold === 'held' && (status === '' || isCampaignStatus(status))) {
    return { hold, status: status === '' ? null : status, sent: asInteger('chunkStep', sent) };
  }
  throw invalid('chunkStep', reply);
}

function redisError(err: unknown, what: string): HeraldError {
  if (err instanceof HeraldError) return err;
  return new HeraldError('DEPENDENCY_UNAVAILABLE', `Redis ${what}: ${(err as Error).message}`, {}, err);
}

/** A read-only step records nothing. */
const NO_RECORD = Buffer.alloc(0);

export class RedisGateway {
  readonly livenessTtlMs: number;

  constructor(
    readonly redis: RedisClient,
    readonly keys: Keys,
    options: GatewayOptions,
  ) {
    this.livenessTtlMs = options.livenessTtlMs;
  }

  private async run(call: ScriptCall, replies: 'string' | 'buffer' = 'string'): Promise<unknown> {
    try {
      return await runScript(this.redis, call, replies);
    } catch (err) {
      throw redisError(err, call.script);
    }
  }

  private stepCall(p: StepParams): ScriptCall {
    const k = this.keys;
    const id = p.campaignId;
    const r = p.record;
    return {
      script: 'chunkStep',
      keys: [k.status(id), k.ledger(id), k.overshoot(id), k.chunks(id), k.records(id), k.plan(id), k.live(id), k.alive(id), k.statusAt(id)],
      args: [
        CHUNK_GROUP,
        p.consumer,
        p.entryId,
        r?.sent ?? -1,
        r?.n ?? 0,
        r?.bytes ?? NO_RECORD,
        r?.failed ?? 0,
        this.livenessTtlMs,
        r?.withheld?.skipped ?? 0,
        r?.withheld?.suppressed ?? 0,
        r?.withheld?.capped ?? 0,
        r?.answeredAtMs ?? 0,
      ],
    };
  }

  /** Ledger steps, in one round trip; each answers (or fails) on its own. */
  async chunkSteps(steps: readonly StepParams[]): Promise<Array<StepReply | HeraldError>> {
    if (steps.length === 1) {
      try {
        return [asStepReply(await this.run(this.stepCall(steps[0]!)))];
      } catch (err) {
        return [redisError(err, 'chunkStep')];
      }
    }
    let results;
    try {
      results = await runScripts(
        this.redis,
        steps.map((s) => this.stepCall(s)),
      );
    } catch (err) {
      const e = redisError(err, 'chunkStep');
      return steps.map(() => e);
    }
    return results.map((r) => {
      if (!r.ok) return redisError(r.error, 'chunkStep');
      try {
        return asStepReply(r.reply);
      } catch (err) {
        return redisError(err, 'chunkStep');
      }
    });
  }

  /**
   * Of `ids`, the entries `consumer` must no longer write events for (fence-3.lua); the others have their
   * idle time reset, and the consumer's heartbeat is renewed.
   */
  async fence(p: { campaignId: number; consumer: string; ids: readonly string[] }): Promise<string[]> {
    const k = this.keys;
    const reply = await this.run({
      script: 'fence',
      keys: [k.chunks(p.campaignId), k.plan(p.campaignId), k.alive(p.campaignId)],
      args: [CHUNK_GROUP, p.consumer, this.livenessTtlMs, ...p.ids],
    });
    return asStrings('fence', reply);
  }

  /** Resets the idle time of the entries `consumer` still holds; returns those it no longer holds (touch-1.lua). */
  async touch(p: { campaignId: number; consumer: string; ids: readonly string[] }): Promise<string[]> {
    const reply = await this.run({ script: 'touch', keys: [this.keys.chunks(p.campaignId)], args: [CHUNK_GROUP, p.consumer, ...p.ids] });
    return asStrings('touch', reply);
  }

  /** Claims the entries of consumers whose process's heartbeat lapsed (takeover-2.lua): XCLAIM's raw reply. */
  takeover(p: { campaignId: number; consumer: string; holder: string; count: number }): Promise<unknown> {
    const k = this.keys;
    return this.run(
      {
        script: 'takeover',
        keys: [k.chunks(p.campaignId), k.alive(p.campaignId)],
        args: [CHUNK_GROUP, p.consumer, p.holder, this.livenessTtlMs, p.count],
      },
      'buffer',
    );
  }

  /** Takes or renews the campaign's lease; the epoch held afterwards, 0 if another holder has it. */
  async leaseAcquire(p: { campaignId: number; holder: string; ttlMs: number }): Promise<number> {
    const k = this.keys;
    const reply = await this.run({
      script: 'leaseAcquire',
      keys: [k.lease(p.campaignId), k.leaseEpoch(p.campaignId), k.alive(p.campaignId)],
      args: [p.holder, p.ttlMs],
    });
    return asInteger('leaseAcquire', reply);
  }

  /** Whether the lease is still `token`'s (and renewed for ttlMs). */
  async leaseRenew(p: { campaignId: number; token: string; ttlMs: number }): Promise<boolean> {
    const reply = await this.run({ script: 'leaseRenew', keys: [this.keys.lease(p.campaignId)], args: [p.token, p.ttlMs] });
    return asInteger('leaseRenew', reply) === 1;
  }

  async leaseRelease(p: { campaignId: number; token: string }): Promise<boolean> {
    const reply = await this.run({ script: 'leaseRelease', keys: [this.keys.lease(p.campaignId)], args: [p.token] });
    return asInteger('leaseRelease', reply) === 1;
  }

  /** Raises the campaign's plan generation key to `generation` (never lowers it); the generation it holds (raise-1.lua). */
  async planRaise(p: { campaignId: number; generation: number }): Promise<number> {
    const reply = await this.run({ script: 'raise', keys: [this.keys.plan(p.campaignId)], args: [p.generation] });
    return asInteger('raise', reply);
  }

  /**
   * Renews `holder`'s heartbeat in the campaign for ttlMs (0 withdraws it; -1 releases it: lapsed now, so
   * its chunks are taken over at once); the Redis time it lapses at.
   */
  async livenessBeat(p: { campaignId: number; holder: string; ttlMs: number }): Promise<number> {
    const reply = await this.run({ script: 'livenessBeat', keys: [this.keys.alive(p.campaignId)], args: [p.holder, p.ttlMs] });
    return asInteger('livenessBeat', reply);
  }

  /** Takes `n` messages from the campaign's GCRA schedule; µs to wait before they may go (≤ 0: now). */
  async rateAcquire(p: { campaignId: number; rate: number; n: number; burstUs: number }): Promise<number> {
    const reply = await this.run({ script: 'rateAcquire', keys: [this.keys.rate(p.campaignId)], args: [p.rate, p.n, p.burstUs] });
    return asInteger('rateAcquire', reply);
  }

  /**
   * Sets the campaign's status key and publishes `message`, unless Redis holds a newer status_version
   * (announce-3.lua). Whether it was announced.
   */
  async announce(p: { campaignId: number; status: CampaignStatus; version: number; ttlS: number; message: string }): Promise<boolean> {
    const k = this.keys;
    const reply = await this.run({
      script: 'announce',
      keys: [k.status(p.campaignId), k.statusVersion(p.campaignId), k.statusAt(p.campaignId)],
      args: [p.status, p.version, p.ttlS, k.control(), p.message],
    });
    return asInteger('announce', reply) === 1;
  }

  /**
   * The live outcome counters the ledger step raises (`delivered`, `failed`). Campaigns with none (nothing
   * sent yet, or Redis restarted empty) are left out.
   */
  async liveCounts(campaignIds: readonly number[]): Promise<Map<number, OutcomeCounts>> {
    const out = new Map<number, OutcomeCounts>();
    if (campaignIds.length === 0) return out;
    let replies: Array<[Error | null, unknown]>;
    try {
      replies = await pipelineBySlot(
        this.redis,
        campaignIds,
        (id) => this.keys.live(id),
        (p, id) => p.hmget(this.keys.live(id), ...LIVE_FIELDS),
      );
    } catch (err) {
      throw redisError(err, 'live counters');
    }
    campaignIds.forEach((id, i) => {
      const [err, value] = replies[i] ?? [null, null];
      if (err !== null || !Array.isArray(value)) return;
      if (value.every((v) => v === null)) return;
      const [delivered, failed, skipped, suppressed, capped] = (value as unknown[]).map((v) => Number(v ?? 0));
      out.set(id, { delivered: delivered!, failed: failed!, skipped: skipped!, suppressed: suppressed!, capped: capped! });
    });
    return out;
  }

  /** The latest suppression change mark, or null when Redis does not hold one (lost, or none yet). */
  async suppressionMark(): Promise<number | null> {
    let v: string | null;
    try {
      v = await this.redis.get(this.keys.suppressionMark());
    } catch (err) {
      throw redisError(err, 'suppression mark');
    }
    return v === null ? null : asInteger('raise', v);
  }

  /** Raises the suppression change mark to `mark` unless it is higher already (raise-1.lua). */
  async raiseSuppressionMark(mark: number): Promise<number> {
    const reply = await this.run({ script: 'raise', keys: [this.keys.suppressionMark()], args: [mark] });
    return asInteger('raise', reply);
  }

  /**
   * Takes one message per user of the sub-batch from the topic's cap (cap-take-3.lua): the positions capped,
   * or 'unbuilt' when the topic's state must be built first (nothing taken).
   */
  async capTake(p: {
    topic: string;
    windowMs: number;
    campaignId: number;
    max: number;
    /** `count` user ids joined by NUL (packed-ids.ts joinedWithout) */
    users: Buffer;
    count: number;
  }): Promise<number[] | 'unbuilt'> {
    if (p.count === 0) return [];
    const reply = await this.run({
      script: 'capTake',
      keys: this.keys.capKeys(p.topic, p.windowMs),
      args: [p.campaignId, p.max, p.windowMs, p.users, p.count],
    });
    if (!Array.isArray(reply)) throw invalid('capTake', reply);
    const items: unknown[] = reply;
    if (items.length === 1 && Number(items[0]) === -1) return 'unbuilt';
    return items.map((v) => asInteger('capTake', v) - 1);
  }

  /** Writes a batch of counted messages into the topic's cap state (cap-seed-3.lua). */
  async capSeed(p: {
    topic: string;
    windowMs: number;
    first: boolean;
    last: boolean;
    entries: ReadonlyArray<{ userId: string; campaignId: number; atMs: number }>;
  }): Promise<number> {
    const args: Array<string | number> = [p.windowMs, p.first ? 1 : 0, p.last ? 1 : 0];
    for (const e of p.entries) args.push(e.userId, e.campaignId, e.atMs);
    const reply = await this.run({ script: 'capSeed', keys: this.keys.capKeys(p.topic, p.windowMs), args });
    return asInteger('capSeed', reply);
  }

  /** Takes (true) or fails to take the lock for building a topic's cap state; `release` gives it back. */
  async capRebuildLock(p: { topic: string; windowMs: number; holder: string; ttlMs: number; release?: boolean }): Promise<boolean> {
    const key = this.keys.capRebuild(p.topic, p.windowMs);
    try {
      if (p.release === true) return (await this.redis.del(key)) === 1;
      return (await this.redis.set(key, p.holder, 'PX', p.ttlMs, 'NX')) === 'OK';
    } catch (err) {
      throw redisError(err, 'cap rebuild lock');
    }
  }

  /** Messages sent after a pause or cancel of each campaign (raised by the ledger step). */
  async overshoot(campaignIds: readonly number[]): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    if (campaignIds.length === 0) return out;
    try {
      // One MGET per slot: on a cluster, one MGET may not span slots.
      const groups = slotGroups(this.redis, campaignIds, (id) => this.keys.overshoot(id));
      await Promise.all(
        groups.map(async (ids) => {
          const values = await this.redis.mget(ids.map((id) => this.keys.overshoot(id)));
          ids.forEach((id, i) => out.set(id, Number(values[i] ?? 0)));
        }),
      );
    } catch (err) {
      throw redisError(err, 'overshoot');
    }
    return out;
  }
}
