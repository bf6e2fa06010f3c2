/**
 * Status announcements: the status key every consumer checks between sub-batches (the cheap signal;
 * PostgreSQL stays the truth) and the pub/sub message that wakes dispatchers. One place, so every
 * transition (API, scheduler, completion) announces the same way.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { isTerminal, type CampaignStatus } from '../domain/campaign-status.js';
import type { Keys } from './keys.js';

const TERMINAL_KEY_TTL_S = 24 * 3600;

interface AnnounceCommand {
  heraldAnnounce(
    statusKey: string,
    versionKey: string,
    status: string,
    version: number,
    ttl: number,
    channel: string,
    message: string,
  ): Promise<number>;
}

const ANNOUNCE_LUA = readFileSync(new URL('./lua/announce.lua', import.meta.url), 'utf8');

/**
 * `version` is the campaign's status_version after the change: an announcement older than the one in
 * Redis is dropped (announce.lua). Returns whether it was announced.
 */
export async function announceStatus(
  redis: Redis,
  keys: Keys,
  campaignId: number,
  status: CampaignStatus,
  version: number,
): Promise<boolean> {
  if (!(redis as unknown as Partial<AnnounceCommand>).heraldAnnounce)
    redis.defineCommand('heraldAnnounce', { numberOfKeys: 2, lua: ANNOUNCE_LUA });
  const done = await (redis as unknown as AnnounceCommand).heraldAnnounce(
    keys.status(campaignId),
    keys.statusVersion(campaignId),
    status,
    version,
    isTerminal(status) ? TERMINAL_KEY_TTL_S : 0,
    keys.control(),
    `${campaignId} ${status}`,
  );
  return Number(done) === 1;
}

/** Settings other than status changed (rate limit): hosts reload the campaign. */
export async function announceChanged(redis: Redis, keys: Keys, campaignId: number): Promise<void> {
  await redis.publish(keys.control(), `${campaignId} changed`);
}
