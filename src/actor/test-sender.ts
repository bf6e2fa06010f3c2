/**
 * Test sends: a campaign's messages, rendered as the campaign would render them, sent through its channel
 * to a few chosen recipients only. Nothing of the campaign is touched (stream, ledger, status, counts):
 * the outcomes go to `message_tests`, which no campaign count reads. Webhook messages carry `test: true`
 * and idempotency keys of their own, and no tracking URL (a pixel read would count as a campaign read).
 * An inbox (instant) channel sends nothing: its `delivered` rows here are what the user's inbox shows
 * as test items (api/user-routes.ts), rendered when read, as the real items are.
 */
import { randomBytes } from 'node:crypto';
import type { ChannelRegistry } from '../channel/channel-registry.js';
import { channelCompresses } from '../domain/campaign-input.js';
import { parseAttrs, renderRecipients, type RenderedContent, type TemplateCache } from '../domain/template.js';
import type { RecipientRow } from '../store/recipient-lookup.js';
import type { Campaign } from '../store/campaign-repo.js';
import type { TestEvent } from '../sink/test-event-writer.js';

export interface TestSenderDeps {
  channels: ChannelRegistry;
  templates: TemplateCache;
  record(events: readonly TestEvent[]): Promise<void>;
}

export interface TestOutcome {
  userId: string;
  outcome: TestEvent['kind'];
  /** the failure or the skip's reason */
  error: string | null;
  /** what was sent (null when skipped or failed before sending) */
  content: RenderedContent | null;
}

export class TestSender {
  constructor(private readonly deps: TestSenderDeps) {}

  async send(campaign: Campaign, recipients: readonly RecipientRow[]): Promise<{ testId: string; results: TestOutcome[] }> {
    const testId = `test-${randomBytes(6).toString('hex')}`;
    const templates = this.deps.templates.get(campaign);
    const facts = recipients.map((r) => ({ userId: r.userId, address: r.address, attrs: parseAttrs(r.attrs) }));
    const rendered = renderRecipients(templates, { n: facts.length, render: true, recipient: (i) => facts[i]! });
    const results: TestOutcome[] = facts.map((f, i) => {
      const skipped = rendered.skipped.get(i);
      const failed = rendered.failed.get(i);
      if (skipped !== undefined) return { userId: f.userId, outcome: 'skipped', error: skipped, content: null };
      if (failed !== undefined) return { userId: f.userId, outcome: 'failed', error: failed, content: null };
      return { userId: f.userId, outcome: 'delivered', error: null, content: rendered.contents![i]! };
    });
    const keep = results.flatMap((r, i) => (r.outcome === 'delivered' ? [i] : []));
    const channel = this.deps.channels.get(campaign.channel);
    if (keep.length > 0 && !channel.instant) {
      const sent = await channel.send({
        campaignId: campaign.id,
        title: campaign.content.title,
        body: campaign.content.body,
        contents: keep.map((i) => results[i]!.content!),
        test: testId,
        tracking: false,
        compress: channelCompresses(campaign.channel),
        count: keep.length,
        userIds: keep.map((i) => facts[i]!.userId),
        addresses: keep.map((i) => facts[i]!.address),
      });
      for (const [k, error] of sent.failed) Object.assign(results[keep[k]!]!, { outcome: 'failed', error });
    }
    const atSec = Math.floor(Date.now() / 1000);
    await this.deps.record(
      results.map((r) => ({ campaignId: campaign.id, testId, userId: r.userId, kind: r.outcome, atSec, error: r.error ?? '' })),
    );
    return { testId, results };
  }
}
