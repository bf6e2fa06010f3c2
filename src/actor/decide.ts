/**
 * The actor's decisions, as pure functions of what it knows. The shell (campaign-actor.ts) gathers the
 * inputs from Redis and PostgreSQL and performs the effect.
 */
import type { CampaignStatus } from '../domain/campaign-status.js';
import type { GroupState } from '../stream/chunk-protocol.js';

/** Before each chunk: only a `sending` campaign gets another chunk started. */
export function mayStartChunk(status: CampaignStatus): boolean {
  return status === 'sending';
}

/**
 * A campaign is complete when planning has finished, every appended entry has been delivered to some
 * consumer, and none is pending (acks come only after the chunk's events are stored in ClickHouse).
 */
export function isDrained(planningDone: boolean, s: GroupState): boolean {
  return planningDone && s.exists && s.pending === 0 && s.lastDeliveredId === s.lastGeneratedId;
}

/**
 * After a status change: what a hosting process does with its actor. A completed campaign's stream is
 * empty and goes; a cancelled one's is kept for the closer, which records its unsent recipients first.
 */
export function onStatus(status: CampaignStatus): 'run' | 'stop' | 'stop-and-drop' {
  if (status === 'sending') return 'run';
  if (status === 'completed') return 'stop-and-drop';
  return 'stop';
}
