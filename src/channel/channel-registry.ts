/** Builds channels from a campaign's channel spec; webhook clients are shared per URL. */
import type { ChannelSpec } from '../domain/campaign-input.js';
import type { Channel } from './channel.js';
import { InstantChannel } from './instant-channel.js';
import { WebhookChannel, type WebhookOptions } from './webhook-channel.js';

export class ChannelRegistry {
  private readonly nullChannel = new InstantChannel('null');
  private readonly inboxChannel = new InstantChannel('inbox');
  private readonly webhooks = new Map<string, WebhookChannel>();

  constructor(private readonly webhookDefaults: Omit<WebhookOptions, 'url'>) {}

  get(spec: ChannelSpec): Channel {
    if (spec.type === 'null') return this.nullChannel;
    if (spec.type === 'inbox') return this.inboxChannel;
    let ch = this.webhooks.get(spec.url);
    if (ch === undefined) {
      ch = new WebhookChannel({ ...this.webhookDefaults, url: spec.url });
      this.webhooks.set(spec.url, ch);
    }
    return ch;
  }

  async close(): Promise<void> {
    await Promise.all([...this.webhooks.values()].map((c) => c.close()));
    this.webhooks.clear();
  }
}
