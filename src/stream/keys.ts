import { isCluster, masters, type RedisClient } from './redis-connect.js';

/**
 * Every Redis key Herald uses, in one place. Per-campaign keys share the hash tag `{c<id>}` so a
 * campaign's keys land on one Redis Cluster slot (Lua scripts and MULTI may touch several of them).
 */

export class Keys {
  constructor(readonly prefix: string) {}

  chunks(campaignId: number): string {
    return `${this.prefix}:{c${campaignId}}:chunks`;
  }

  lease(campaignId: number): string {
    return `${this.prefix}:{c${campaignId}}:lease`;
  }

  leaseEpoch(campaignId: number): string {
    return `${this.prefix}:{c${campaignId}}:epoch`;
  }

  /**
   * heartbeats of the processes sending the campaign: a sorted set of holder id → the Redis time (ms) its
   * heartbeat lapses at (domain/liveness.ts). Per campaign, so the scripts that read it touch one slot.
   */
  alive(campaignId: number): string {
    return `${this.prefix}:{c${campaignId}}:alive`;
  }

  /** the campaign's status, as last announced (consumers check it between sub-batches) */
  status(campaignId: number): string {
    return `${this.prefix}:{c${campaignId}}:status`;
  }

  /** the status_version of the status in `status` (stream/lua/announce-3.lua keeps the newer) */
  statusVersion(campaignId: number): string {
    return `${this.prefix}:{c${campaignId}}:status-version`;
  }

  /** Redis time in ms the status in `status` was announced at (stream/lua/announce-3.lua) */
  statusAt(campaignId: number): string {
    return `${this.prefix}:{c${campaignId}}:status-at`;
  }

  /** chunk seq → recipients of that chunk already handed to the channel */
  ledger(campaignId: number): string {
    return `${this.prefix}:{c${campaignId}}:ledger`;
  }

  /** chunk entry id → the records of its sub-batches (domain/sub-batch.ts), written with the ledger */
  records(campaignId: number): string {
    return `${this.prefix}:{c${campaignId}}:records`;
  }

  /**
   * The generation of the campaign's current plan. It outlives the stream (a finished campaign's stream
   * is dropped), so a missing key means Redis lost its data, not that the work is done.
   */
  plan(campaignId: number): string {
    return `${this.prefix}:{c${campaignId}}:plan`;
  }

  /**
   * live counts of the campaign's outcomes (`delivered`, `failed`), raised in the ledger step that records
   * each sub-batch, so at once and once: what WebSocket frames show while ClickHouse catches up
   */
  live(campaignId: number): string {
    return `${this.prefix}:{c${campaignId}}:live`;
  }

  /** messages whose send finished after a pause or cancel was announced */
  overshoot(campaignId: number): string {
    return `${this.prefix}:{c${campaignId}}:overshoot`;
  }

  /** the campaign's send-rate schedule (GCRA theoretical arrival time, µs) */
  rate(campaignId: number): string {
    return `${this.prefix}:{c${campaignId}}:rate`;
  }

  /**
   * The latest suppression change mark (stream/lua/raise-1.lua): a sender whose index is older
   * reloads it before screening. Its own hash tag: one key for every campaign.
   */
  suppressionMark(): string {
    return `${this.prefix}:{consent}:suppression-mark`;
  }

  /**
   * A topic's cap state for one window length (lua/cap-take-3.lua): the state hash, then the even and odd
   * slices' hashes. One hash tag per topic, so each cap script touches one cluster slot; the window is in
   * the name, so a changed cap starts a state of its own (built from ClickHouse) instead of misreading one.
   */
  capKeys(topic: string, windowMs: number): [state: string, even: string, odd: string] {
    const base = `${this.prefix}:{cap:${topic}}:w${windowMs}`;
    return [`${base}:state`, `${base}:s0`, `${base}:s1`];
  }

  /** held by the one process building a topic's cap state (SET NX PX) */
  capRebuild(topic: string, windowMs: number): string {
    return `${this.prefix}:{cap:${topic}}:w${windowMs}:rebuild`;
  }

  /** pub/sub channel for status changes and wake-ups; carries `<campaignId> <status>` */
  control(): string {
    return `${this.prefix}:control`;
  }
}

export const CHUNK_GROUP = 'dispatch';

/**
 * Deletes every key under `prefix` (SCAN, not KEYS: other clients are not blocked). For tests and
 * benches that give each run a prefix of its own, and for an operator removing a retired deployment.
 * On a cluster every master is scanned (SCAN sees one node's keys), and each key goes by a DEL of its
 * own, since one DEL may not span slots.
 */
export async function deleteKeysWithPrefix(redis: RedisClient, prefix: string): Promise<number> {
  const perKey = isCluster(redis);
  let deleted = 0;
  for (const node of await masters(redis)) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      if (keys.length > 0 && !perKey) deleted += await node.del(...keys);
      if (keys.length > 0 && perKey) {
        const p = node.pipeline();
        for (const k of keys) p.del(k);
        for (const [err, n] of (await p.exec()) ?? []) if (err === null) deleted += Number(n);
      }
      cursor = next;
    } while (cursor !== '0');
  }
  return deleted;
}
export const CHUNK_FIELD = 'd';
