/**
 * How a campaign's recipients add up, from its record (PostgreSQL) and its event counts (ClickHouse):
 * `delivered + failed + skipped + suppressed + capped + aborted + pending = total` at every moment. Shared by the HTTP views and the
 * WebSocket frames, so both say the same.
 */

import type { CampaignStatus } from './campaign-status.js';

export interface AccountedCampaign {
  status: CampaignStatus;
  total: number | null;
  /** recipients sent again in retry rounds (each replaced one failure) */
  retried: number;
}

export interface OutcomeCounts {
  delivered: number;
  failed: number;
  /** withheld outcomes (domain/withheld.ts): in the plan, never sent, final */
  skipped: number;
  suppressed: number;
  capped: number;
}

export const NO_OUTCOMES: Readonly<OutcomeCounts> = Object.freeze({ delivered: 0, failed: 0, skipped: 0, suppressed: 0, capped: 0 });

export interface Accounts {
  /** handed to the channel: delivered + failed */
  sent: number;
  delivered: number;
  failed: number;
  skipped: number;
  suppressed: number;
  capped: number;
  aborted: number;
  pending: number;
}

export function account(c: AccountedCampaign, counts: OutcomeCounts): Accounts {
  // Failures still standing: a retried recipient's new outcome replaces its failure.
  const failed = Math.max(0, counts.failed - c.retried);
  // What has no outcome yet is pending, or aborted once the campaign was cancelled (or failed).
  const { delivered, skipped, suppressed, capped } = counts;
  const open = Math.max(0, (c.total ?? 0) - delivered - failed - skipped - suppressed - capped);
  const over = c.status === 'cancelled' || c.status === 'failed';
  return { sent: delivered + failed, delivered, failed, skipped, suppressed, capped, aborted: over ? open : 0, pending: over ? 0 : open };
}

/**
 * What a frame shows: ClickHouse's counts, raised to the live ones while the campaign may still move.
 * A finished campaign shows ClickHouse's alone, the durable figures GET answers with.
 */
export function liveOutcomes(ch: OutcomeCounts, live: OutcomeCounts | undefined, terminal: boolean): OutcomeCounts {
  if (live === undefined || terminal) return ch;
  return {
    delivered: Math.max(ch.delivered, live.delivered),
    failed: Math.max(ch.failed, live.failed),
    skipped: Math.max(ch.skipped, live.skipped),
    suppressed: Math.max(ch.suppressed, live.suppressed),
    capped: Math.max(ch.capped, live.capped),
  };
}
