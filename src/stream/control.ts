/**
 * Status announcements: the status key every consumer checks between sub-batches (the cheap signal;
 * PostgreSQL stays the truth) and the pub/sub message that wakes dispatchers. One place, so every
 * transition (API, scheduler, completion) announces the same way.
 */
import type { Redis } from 'ioredis';
import { isTerminal, type CampaignStatus } from '../domain/campaign-status.js';
import type { Keys } from './keys.js';

const TERMINAL_KEY_TTL_S = 24 * 3600;

export async function announceStatus(redis: Redis, keys: Keys, campaignId: number, status: CampaignStatus): Promise<void> {
  const p = redis.pipeline();
  if (isTerminal(status)) p.set(keys.status(campaignId), status, 'EX', TERMINAL_KEY_TTL_S);
  else p.set(keys.status(campaignId), status);
  p.publish(keys.control(), `${campaignId} ${status}`);
  const res = (await p.exec()) ?? [];
  for (const [err] of res) if (err) throw err;
}

/** Settings other than status changed (rate limit): hosts reload the campaign. */
export async function announceChanged(redis: Redis, keys: Keys, campaignId: number): Promise<void> {
  await redis.publish(keys.control(), `${campaignId} changed`);
}
