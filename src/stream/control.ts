/**
 * Status announcements: the status key every consumer checks between sub-batches (the cheap signal;
 * PostgreSQL stays the truth) and the pub/sub message that wakes dispatchers. One place, so every
 * transition (API, scheduler, completion) announces the same way.
 */
import type { RedisClient } from './redis-connect.js';
import { isCampaignStatus, isTerminal, type CampaignStatus } from '../domain/campaign-status.js';
import type { Keys } from './keys.js';
import type { RedisGateway } from './redis-gateway.js';

/** A finished campaign's status key outlives it by a day: consumers still stopping read it, then it goes by itself. */
const TERMINAL_KEY_TTL_S = 24 * 3600;

/**
 * `version` is the campaign's status_version after the change: an announcement older than the one in
 * Redis is dropped (announce-3.lua). Returns whether it was announced.
 */
export function announceStatus(gateway: RedisGateway, campaignId: number, status: CampaignStatus, version: number): Promise<boolean> {
  const ttlS = isTerminal(status) ? TERMINAL_KEY_TTL_S : 0;
  return gateway.announce({ campaignId, status, version, ttlS, message: `${campaignId} ${status}` });
}

/** Settings other than status changed (rate limit): hosts reload the campaign. */
export async function announceChanged(redis: RedisClient, keys: Keys, campaignId: number): Promise<void> {
  await redis.publish(keys.control(), `${campaignId} changed`);
}

/**
 * Subscribes `subscriber` (a connection of its own: it is in subscriber mode from then on) to the control
 * channel and calls `onMessage` with each campaign's status change, or 'changed' for settings.
 */
export async function listenControl(
  subscriber: RedisClient,
  keys: Keys,
  onMessage: (campaignId: number, what: CampaignStatus | 'changed') => void,
): Promise<void> {
  const channel = keys.control();
  subscriber.on('message', (ch: string, message: string) => {
    if (ch !== channel) return;
    const [idText, what] = message.split(' ');
    const id = Number(idText);
    if (!Number.isSafeInteger(id)) return;
    if (isCampaignStatus(what) || what === 'changed') onMessage(id, what);
  });
  await subscriber.subscribe(channel);
}
