/**
 * A completed campaign's count check (sink/count-repair.ts: its summing views made whole against the stored
 * outcomes), run once per completion and recorded in PostgreSQL. The process whose completion won runs it
 * at once; one that failed, or whose process died before it finished, is run by whichever dispatcher polls
 * after the claim has aged. The claim keeps two processes from adding the same shortfall side by side.
 */
import type { Logger } from 'pino';
import type { CampaignRepo } from '../store/campaign-repo.js';
import type { CountRepair } from '../sink/count-repair.js';

/** How long a claim on a count check holds: well past a check's two readings and its inserts. */
export const COUNT_CHECK_CLAIM_MS = 60_000;

export interface CountCheckDeps {
  campaigns: Pick<CampaignRepo, 'claimCountCheck' | 'markCountsChecked'>;
  countRepair: Pick<CountRepair, 'afterCompletion'>;
  log: Logger;
}

/** `busy`: done already, or another process holds the claim. Rejects when the check failed (retried later). */
export async function checkCounts(deps: CountCheckDeps, campaignId: number): Promise<'checked' | 'busy'> {
  if (!(await deps.campaigns.claimCountCheck(campaignId, COUNT_CHECK_CLAIM_MS))) return 'busy';
  const added = await deps.countRepair.afterCompletion(campaignId);
  if (added.counts + added.minutes + added.segments > 0)
    deps.log.warn({ campaignId, added }, 'views were short of stored outcomes (ClickHouse stopped mid-insert): added');
  await deps.campaigns.markCountsChecked(campaignId);
  return 'checked';
}
