/**
 * What a campaign's reads of its audience select and carry: the same for the planner's pages and for a
 * consumer's read of the ranges it was handed, so both see the same recipients with the same columns.
 */
import type { Campaign } from '../store/campaign-repo.js';
import type { PageQuery } from '../store/recipient-reader.js';
import { channelNeedsAddress, channelRendersAtSend } from '../domain/campaign-input.js';
import { CampaignTemplates, sendTimeNeeds } from '../domain/template.js';
import { storedFilter } from '../domain/segment-filter.js';

export type PlanRead = Omit<PageQuery, 'afterId' | 'maxId' | 'limit'>;

export function planRead(c: Campaign): PlanRead {
  // What templates read at send time travels with the recipients, so the sender renders without a round trip.
  const needs = sendTimeNeeds(CampaignTemplates.compile(c.content, c.missing, c), channelRendersAtSend(c.channel));
  return {
    audienceId: c.planAudienceId,
    withAddress: channelNeedsAddress(c.channel) || needs?.address === true,
    segmentBy: c.segmentBy,
    attrs: needs?.attrs ?? null,
    // The campaign's own copy of its filter: every page, re-plan, retry round and the closer's walk
    // select the same recipients.
    filter: c.filter === null ? null : storedFilter(c.filter, `campaign ${c.id}`),
  };
}
