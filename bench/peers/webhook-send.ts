/**
 * The webhook send of the BullMQ peers, written the way most users write it: the job's recipients cut
 * into requests of `batchSize` messages, all POSTed at once with Node's own `fetch` (keep-alive by
 * default), each message shaped like Herald's (title, body, idempotency key, address and a signed
 * tracking and an unsubscribe URL: an HMAC each, the way users sign links), a non-2xx answer failing the job.
 */
import { trackingToken, unsubscribeToken } from '../../src/domain/tokens.js';

export interface WebhookSendOptions {
  url: string;
  campaignId: number;
  batchSize: number;
  /** the HMAC secret and public URL of the tracking links */
  secret: string;
  publicUrl: string;
}

export function webhookSend(o: WebhookSendOptions): (users: readonly string[], addresses: ReadonlyArray<string | null>) => Promise<void> {
  const post = async (messages: unknown[]): Promise<void> => {
    const res = await fetch(o.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ campaign_id: o.campaignId, messages }),
    });
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`webhook answered ${res.status}`);
  };
  return async (users, addresses) => {
    const requests: Array<Promise<void>> = [];
    for (let start = 0; start < users.length; start += o.batchSize) {
      const messages = [];
      for (let i = start; i < Math.min(start + o.batchSize, users.length); i++) {
        const userId = users[i]!;
        messages.push({
          user_id: userId,
          address: addresses[i] ?? null,
          title: 't',
          body: 'b',
          idempotency_key: `${o.campaignId}:${userId}`,
          tracking_url: `${o.publicUrl}/t/${trackingToken(o.secret, o.campaignId, userId)}`,
          unsubscribe_url: `${o.publicUrl}/u/${unsubscribeToken(o.secret, o.campaignId, userId, '')}`,
        });
      }
      requests.push(post(messages));
    }
    await Promise.all(requests);
  };
}
