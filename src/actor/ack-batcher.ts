/**
 * Collects stream ids to acknowledge and sends them as one XACK per tick: the sink completes a batch
 * of hundreds of chunks at once, and one round trip should ack them all.
 */
import type { ChunkProtocol } from '../stream/chunk-protocol.js';

export class AckBatcher {
  private ids: string[] = [];
  private scheduled: Promise<void> | null = null;
  onAcked: ((ids: readonly string[]) => void) | null = null;

  constructor(
    private readonly stream: ChunkProtocol,
    private readonly campaignId: number,
    private readonly onError: (err: unknown) => void,
  ) {}

  add(id: string): void {
    this.ids.push(id);
    if (this.scheduled === null) this.scheduled = new Promise<void>((r) => setImmediate(r)).then(() => this.send());
  }

  private async send(): Promise<void> {
    const ids = this.ids;
    this.ids = [];
    this.scheduled = null;
    if (ids.length === 0) return;
    try {
      await this.stream.ack(this.campaignId, ids);
      this.onAcked?.(ids);
    } catch (err) {
      // Unacked entries stay pending and are reclaimed later: a lost XACK costs a resend, not a loss.
      this.onError(err);
    }
  }

  async flush(): Promise<void> {
    if (this.scheduled !== null) await this.scheduled;
  }
}
