/**
 * The chunk protocol, in one place: every Redis call a chunk's life takes, from the planner's append to
 * the ack. A chunk is appended (pipelined, idempotent by explicit id), read by a consumer of the campaign's
 * group, heartbeated while held, taken over when its holder's heartbeat lapsed (or reclaimed when it sat
 * idle), stepped through the ledger sub-batch by sub-batch (the step is also the fence: it records only
 * while the chunk is pending on the caller), fenced again before its events are inserted, and acked once
 * they are stored. What a holder does with a chunk between those calls is domain/chunk-state.ts.
 *
 * Keys are `Keys`'s, scripts go through the gateway (redis-gateway.ts); nothing else in Herald touches a
 * chunk's stream, ledger, records or heartbeats.
 */
import { duplicateRedis, type RedisClient } from './redis-connect.js';
import { HeraldError } from '../errors.js';
import { carriesRecipients, chunkStreamId, type ChunkDescriptor, type ChunkRange } from '../domain/chunk.js';
import { decodeRecords, type SubBatchRecord } from '../domain/sub-batch.js';
import { decodeEntry, encodeChunk } from './chunk-codec.js';
import { CHUNK_FIELD, CHUNK_GROUP, type Keys } from './keys.js';
import type { StepReply } from '../domain/chunk-state.js';
import type { RedisGateway, StepParams } from './redis-gateway.js';

export type { StepParams } from './redis-gateway.js';

export interface StreamEntry {
  id: string;
  /** what was planned; null when the entry could not be decoded: the caller acks it away and reports the error */
  range: ChunkRange | null;
  /**
   * the chunk with its recipients: a re-plan's entry carries them; a range's are read by the consumer
   * (planner/range-reader.ts), which sets this; null until then
   */
  chunk: ChunkDescriptor | null;
  error: HeraldError | null;
  /** first delivery (read with '>'): no earlier holder can have sent any of it */
  fresh: boolean;
  /**
   * when it was read (ms, taken before the read was sent, so a stall while the reply waited counts): the
   * ownership seen then may be stale if the process stalled since
   */
  readAt: number;
}

export interface GroupState {
  exists: boolean;
  pending: number;
  /** entries not yet delivered to the group (XINFO GROUPS `lag`, Redis 7); null when Redis cannot tell */
  lag: number | null;
  lastDeliveredId: string;
  lastGeneratedId: string;
  length: number;
}

function redisError(err: unknown, what: string): HeraldError {
  if (err instanceof HeraldError) return err;
  return new HeraldError('DEPENDENCY_UNAVAILABLE', `Redis ${what}: ${(err as Error).message}`, {}, err);
}

function parseEntries(raw: unknown, fresh = false, readAt = Date.now()): StreamEntry[] {
  const out: StreamEntry[] = [];
  if (!Array.isArray(raw)) return out;
  for (const item of raw as unknown[]) {
    // A reclaimed entry deleted meanwhile comes back as null (Redis < 7) – skip it.
    if (!Array.isArray(item) || item.length < 2) continue;
    const id = String(item[0]);
    const fields = item[1] as Buffer[] | null;
    let data: Buffer | undefined;
    if (Array.isArray(fields)) {
      for (let i = 0; i + 1 < fields.length; i += 2) if (String(fields[i]) === CHUNK_FIELD) data = fields[i + 1];
    }
    if (data === undefined) {
      out.push({
        id,
        range: null,
        chunk: null,
        error: new HeraldError('STREAM_ENTRY_INVALID', `entry ${id} has no '${CHUNK_FIELD}' field`, { field: CHUNK_FIELD }),
        fresh,
        readAt,
      });
      continue;
    }
    try {
      const c = decodeEntry(data);
      out.push({ id, range: c, chunk: carriesRecipients(c) ? c : null, error: null, fresh, readAt });
    } catch (err) {
      out.push({ id, range: null, chunk: null, error: err as HeraldError, fresh, readAt });
    }
  }
  return out;
}

interface WaitingStep {
  params: StepParams;
  resolve: (r: StepReply) => void;
  reject: (err: unknown) => void;
}

export class ChunkProtocol {
  private readonly redis: RedisClient;
  private readonly keys: Keys;
  /** steps asked for in this turn of the event loop, sent together (one socket write) */
  private waiting: WaitingStep[] = [];

  constructor(private readonly gateway: RedisGateway) {
    this.redis = gateway.redis;
    this.keys = gateway.keys;
  }

  async ensureGroup(campaignId: number): Promise<void> {
    try {
      await this.redis.xgroup('CREATE', this.keys.chunks(campaignId), CHUNK_GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!String((err as Error).message).includes('BUSYGROUP')) throw redisError(err, 'create group');
    }
  }

  /**
   * Appends one campaign's chunks in one pipeline (one slot: the campaign's keys share its hash tag). Entries
   * whose id already exists are skipped: a resumed planner re-appends nothing. The plan key (the ledger step's
   * and the sink's fence's generation) is raised to the chunks' generation first, so no chunk is read before
   * it; a plan key already past it means the campaign was re-planned since (a planner still running in a
   * process that lost the lease): nothing is appended, and the planner stops (PLAN_SUPERSEDED).
   */
  async append(chunks: ReadonlyArray<ChunkDescriptor | ChunkRange>): Promise<number> {
    if (chunks.length === 0) return 0;
    const { campaignId, generation } = chunks[0]!;
    const held = await this.gateway.planRaise({ campaignId, generation });
    if (held > generation) {
      throw new HeraldError('PLAN_SUPERSEDED', `campaign ${campaignId}: plan generation ${generation} was re-planned as ${held}`, {
        generation,
        current: held,
      });
    }
    const p = this.redis.pipeline();
    for (const c of chunks) p.xadd(this.keys.chunks(c.campaignId), chunkStreamId(c.generation, c.seq), CHUNK_FIELD, encodeChunk(c));
    let results;
    try {
      results = (await p.exec()) ?? [];
    } catch (err) {
      throw redisError(err, 'append chunks');
    }
    let appended = 0;
    for (const [err] of results.slice(0, chunks.length)) {
      if (err === null) appended++;
      else if (!/equal or smaller/.test(err.message)) throw redisError(err, 'append chunks');
    }
    return appended;
  }

  /** A connection of its own for `read`, which blocks it (on a cluster, a cluster client of its own). */
  readConnection(): RedisClient {
    return duplicateRedis(this.redis, 'blocking');
  }

  /** Reads new entries for `consumer`, blocking up to `blockMs`. Use a connection of its own: it blocks. */
  read(conn: RedisClient, campaignId: number, consumer: string, count: number, blockMs: number): Promise<StreamEntry[]> {
    return this.readGroup(conn, campaignId, consumer, count, ['BLOCK', blockMs], '>');
  }

  /** Reads new entries for `consumer` without waiting for any. */
  readNew(conn: RedisClient, campaignId: number, consumer: string, count: number): Promise<StreamEntry[]> {
    return this.readGroup(conn, campaignId, consumer, count, [], '>');
  }

  /**
   * Re-reads entries already delivered to `consumer` and not acked (its history), after `afterId`:
   * a consumer that was paused or restarted under the same name picks these up first.
   */
  readPending(conn: RedisClient, campaignId: number, consumer: string, count: number, afterId: string): Promise<StreamEntry[]> {
    return this.readGroup(conn, campaignId, consumer, count, [], afterId);
  }

  private async readGroup(
    conn: RedisClient,
    campaignId: number,
    consumer: string,
    count: number,
    block: Array<string | number>,
    from: string,
  ): Promise<StreamEntry[]> {
    let raw: unknown;
    const readAt = Date.now();
    try {
      const args = ['GROUP', CHUNK_GROUP, consumer, 'COUNT', count, ...block, 'STREAMS', this.keys.chunks(campaignId), from];
      raw = await conn.callBuffer('XREADGROUP', ...args);
    } catch (err) {
      const msg = String((err as Error).message);
      // The stream or group was deleted (campaign finished, or Redis lost its data): nothing to read.
      if (msg.includes('NOGROUP') || msg.includes('UNBLOCKED')) return [];
      throw redisError(err, 'read chunks');
    }
    if (!Array.isArray(raw) || raw.length === 0) return [];
    return parseEntries((raw[0] as [Buffer, unknown])[1], from === '>', readAt);
  }

  /**
   * Acknowledges and deletes: a done entry is of no further use, so it is dropped at once and the
   * stream's length is the planner's backlog.
   */
  async ack(campaignId: number, ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const key = this.keys.chunks(campaignId);
    try {
      const res =
        (await this.redis
          .multi()
          .xack(key, CHUNK_GROUP, ...ids)
          .xdel(key, ...ids)
          .hdel(this.keys.ledger(campaignId), ...ids)
          .hdel(this.keys.records(campaignId), ...ids)
          .exec()) ?? [];
      const [ackErr, acked] = res[0] ?? [null, 0];
      if (ackErr) throw ackErr;
      return Number(acked);
    } catch (err) {
      throw redisError(err, 'ack chunks');
    }
  }

  /** Entries in the stream: appended and not yet acknowledged. */
  async length(campaignId: number): Promise<number> {
    try {
      return await this.redis.xlen(this.keys.chunks(campaignId));
    } catch (err) {
      throw redisError(err, 'stream length');
    }
  }

  /** Takes over entries idle for at least `minIdleMs` (their consumer died or stalled). */
  async reclaim(campaignId: number, consumer: string, minIdleMs: number, count: number): Promise<StreamEntry[]> {
    const out: StreamEntry[] = [];
    let cursor = '0-0';
    try {
      // XAUTOCLAIM walks the pending list in pages; stop once a page comes back with cursor 0-0.
      for (let guard = 0; guard < 1000 && out.length < count; guard++) {
        const raw = (await this.redis.callBuffer(
          'XAUTOCLAIM',
          this.keys.chunks(campaignId),
          CHUNK_GROUP,
          consumer,
          minIdleMs,
          cursor,
          'COUNT',
          count - out.length,
        )) as [Buffer, unknown, unknown?];
        out.push(...parseEntries(raw[1]));
        cursor = String(raw[0]);
        if (cursor === '0-0') break;
      }
    } catch (err) {
      if (String((err as Error).message).includes('NOGROUP')) return out;
      throw redisError(err, 'reclaim chunks');
    }
    return out;
  }

  /**
   * Marks every chunk of generations below `generation` as no one's (raise-1.lua on the plan key): the
   * owner's step before it re-plans a campaign whose work state Redis lost.
   */
  async raisePlan(campaignId: number, generation: number): Promise<void> {
    await this.gateway.planRaise({ campaignId, generation });
  }

  /**
   * Takes over at once the entries of consumers whose process's heartbeat in the campaign has lapsed
   * (takeover-2.lua), for `consumer` of `holder`, whose own heartbeat is renewed in the same step.
   */
  async takeover(campaignId: number, consumer: string, holder: string, count: number): Promise<StreamEntry[]> {
    if (this.gateway.livenessTtlMs <= 0) return [];
    return parseEntries(await this.gateway.takeover({ campaignId, consumer, holder, count }));
  }

  /**
   * Resets the idle time of entries `consumer` still holds (only those: an entry reclaimed by another
   * consumer is not taken back). Returns the ids it no longer holds.
   */
  async touch(campaignId: number, consumer: string, ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    try {
      return await this.gateway.touch({ campaignId, consumer, ids });
    } catch (err) {
      if (String((err as Error).message).includes('NOGROUP')) return [...ids];
      throw err;
    }
  }

  /**
   * Hands an entry `from` just claimed back to `to` (XCLAIM … 0 … JUSTID), only if `from` still holds it:
   * for an entry the reclaimer took from a live consumer of its own process.
   */
  async giveBack(campaignId: number, from: string, to: string, id: string): Promise<void> {
    const lost = await this.gateway.touch({ campaignId, consumer: from, ids: [id] });
    if (lost.length > 0) return;
    try {
      await this.redis.xclaim(this.keys.chunks(campaignId), CHUNK_GROUP, to, 0, id, 'JUSTID');
    } catch (err) {
      throw redisError(err, 'give back chunk');
    }
  }

  /**
   * Of the entries `consumer` wrote events for, the ones whose events it must no longer write (fence-3.lua);
   * the others have their idle time reset.
   */
  fence(campaignId: number, consumer: string, ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return Promise.resolve([]);
    return this.gateway.fence({ campaignId, consumer, ids });
  }

  /**
   * The ledger step (chunk-step-9.lua): whether the chunk is still the caller's, how far it got, and the
   * announced status; with `record`, the sub-batch just sent is recorded in the same atomic step. Steps
   * asked for in one turn of the event loop (chunks sent side by side) share one round trip: on loopback a
   * socket write costs about as much CPU as the script it carries.
   */
  step(params: StepParams): Promise<StepReply> {
    return new Promise<StepReply>((resolve, reject) => {
      if (this.waiting.push({ params, resolve, reject }) === 1) setImmediate(() => this.flushSteps());
    });
  }

  private flushSteps(): void {
    const batch = this.waiting;
    this.waiting = [];
    this.gateway.chunkSteps(batch.map((w) => w.params)).then(
      (replies) =>
        batch.forEach((w, i) => {
          const r = replies[i];
          if (r === undefined || r instanceof HeraldError)
            w.reject(r ?? new HeraldError('DEPENDENCY_UNAVAILABLE', 'Redis chunkStep: no reply'));
          else w.resolve(r);
        }),
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
      throw redisError(err, 'read ledger records');
    }
    return decodeRecords(bytes);
  }

  async state(campaignId: number): Promise<GroupState> {
    const key = this.keys.chunks(campaignId);
    try {
      const [groupsRes, streamRes] = (await this.redis.pipeline().xinfo('GROUPS', key).xinfo('STREAM', key).exec()) ?? [];
      if (groupsRes?.[0] || streamRes?.[0]) {
        const e = (groupsRes?.[0] ?? streamRes?.[0]) as Error;
        if (/no such key/i.test(e.message))
          return { exists: false, pending: 0, lag: 0, lastDeliveredId: '0-0', lastGeneratedId: '0-0', length: 0 };
        throw e;
      }
      const groups = groupsRes?.[1] as unknown[][];
      const stream = toMap(streamRes?.[1] as unknown[]);
      const group = groups.map(toMap).find((g) => g.get('name') === CHUNK_GROUP);
      return {
        exists: group !== undefined,
        pending: Number(group?.get('pending') ?? 0),
        // nil after deletions Redis cannot count across; absent before Redis 7
        lag: group?.get('lag') === undefined || group.get('lag') === null ? null : Number(group.get('lag')),
        lastDeliveredId: String(group?.get('last-delivered-id') ?? '0-0'),
        lastGeneratedId: String(stream.get('last-generated-id') ?? '0-0'),
        length: Number(stream.get('length') ?? 0),
      };
    } catch (err) {
      throw redisError(err, 'stream state');
    }
  }

  /**
   * Length, lag and pending of each campaign's stream, for the metrics scrape: one pipeline for them all.
   * Campaigns with no stream (or no group yet) are left out.
   */
  async streamStats(campaignIds: readonly number[]): Promise<Map<number, { length: number; lag: number | null; pending: number }>> {
    const out = new Map<number, { length: number; lag: number | null; pending: number }>();
    if (campaignIds.length === 0) return out;
    const pipeline = this.redis.pipeline();
    for (const id of campaignIds) pipeline.xlen(this.keys.chunks(id)).xinfo('GROUPS', this.keys.chunks(id));
    let replies: Array<[Error | null, unknown]>;
    try {
      replies = (await pipeline.exec()) ?? [];
    } catch (err) {
      throw redisError(err, 'stream stats');
    }
    campaignIds.forEach((id, i) => {
      const [lenErr, length] = replies[2 * i] ?? [null, 0];
      const [groupsErr, groups] = replies[2 * i + 1] ?? [null, []];
      if (lenErr || groupsErr || !Array.isArray(groups)) return;
      const group = (groups as unknown[][]).map(toMap).find((g) => g.get('name') === CHUNK_GROUP);
      if (group === undefined) return;
      const lag = group.get('lag');
      out.set(id, {
        length: Number(length),
        lag: lag === undefined || lag === null ? null : Number(lag),
        pending: Number(group.get('pending') ?? 0),
      });
    });
    return out;
  }

  /**
   * A finished campaign's work state goes: the stream, the ledger and the heartbeats. The overshoot count and live counters stay a week
   * for GET /v1/campaigns/:id, and the plan key as long (the sink's fence tells a dropped stream from a
   * lost one by it); the status key expires on its own.
   */
  async drop(campaignId: number): Promise<void> {
    const k = this.keys;
    try {
      const res =
        (await this.redis
          .multi()
          .del(k.chunks(campaignId), k.ledger(campaignId), k.records(campaignId), k.alive(campaignId))
          .expire(k.overshoot(campaignId), 7 * 24 * 3600)
          .expire(k.plan(campaignId), 7 * 24 * 3600)
          .expire(k.live(campaignId), 7 * 24 * 3600)
          .exec()) ?? [];
      for (const [err] of res) if (err) throw err;
    } catch (err) {
      throw redisError(err, 'drop stream');
    }
  }
}

function toMap(flat: unknown[]): Map<string, unknown> {
  const m = new Map<string, unknown>();
  for (let i = 0; i + 1 < flat.length; i += 2) m.set(String(flat[i]), flat[i + 1]);
  return m;
}
