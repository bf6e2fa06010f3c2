import { describe, expect, it } from 'vitest';
import { recipientStory, type Membership, type RecipientEventRow } from '../../src/domain/recipient-outcome.js';
import { subBatchId } from '../../src/domain/sub-batch.js';

const IN_PLAN: Membership = { inPlan: true, status: 'sending', inRetryRound: false, roundGeneration: 0 };
const T = 1_780_000_000;
const row = (kind: RecipientEventRow['kind'], at: number, error = '', batch = subBatchId(0, 1, 0)): RecipientEventRow => ({
  kind,
  at,
  error,
  batch,
});

describe('recipientStory', () => {
  it('no rows: pending while the plan holds the user (the reason follows the status), else not_in_campaign with the reason', () => {
    expect(recipientStory([], { ...IN_PLAN, status: 'draft' })).toEqual({
      outcome: 'pending',
      error: null,
      reason: 'the campaign has not started',
      attempts: [],
      reads: [],
    });
    expect(recipientStory([], { ...IN_PLAN, status: 'paused' }).reason).toBe('the campaign is paused');
    expect(recipientStory([], { inPlan: false, reason: 'not in audience 4' })).toMatchObject({
      outcome: 'not_in_campaign',
      reason: 'not in audience 4',
    });
  });

  it('delivered, with its reads and provider callbacks in time order', () => {
    const s = recipientStory(
      [row('read', T + 60, '', 99n), row('confirmed', T + 5, '', 7n), row('delivered', T), row('read', T + 30, '', 5n)],
      IN_PLAN,
    );
    expect(s).toEqual({
      outcome: 'delivered',
      error: null,
      reason: null,
      attempts: [
        { at: new Date(T * 1000).toISOString(), kind: 'delivered', error: null },
        { at: new Date((T + 5) * 1000).toISOString(), kind: 'confirmed', error: null },
      ],
      reads: [{ at: new Date((T + 30) * 1000).toISOString() }, { at: new Date((T + 60) * 1000).toISOString() }],
    });
  });

  it("the latest round wins, by sub-batch generation even within one second: a retry's delivery replaces the failure", () => {
    const failed = row('failed', T, 'HTTP 500', subBatchId(0, 3, 0));
    const retried = row('delivered', T, '', subBatchId(1, 0, 0));
    expect(recipientStory([retried, failed], IN_PLAN)).toMatchObject({ outcome: 'delivered', error: null });
    expect(recipientStory([retried, failed], IN_PLAN).attempts.map((a) => a.kind)).toEqual(['failed', 'delivered']);
    expect(recipientStory([failed], IN_PLAN)).toMatchObject({ outcome: 'failed', error: 'HTTP 500', reason: null });
  });

  it('a failure from before the current retry round, which sends to the user again, is pending', () => {
    const failed = row('failed', T, 'HTTP 500', subBatchId(0, 3, 0));
    const round: Membership = { inPlan: true, status: 'sending', inRetryRound: true, roundGeneration: 1 };
    expect(recipientStory([failed], round)).toMatchObject({
      outcome: 'pending',
      error: 'HTTP 500',
      reason: 'being retried: its earlier attempt failed',
    });
    // the round's own failure stands
    expect(recipientStory([row('failed', T + 9, 'HTTP 400', subBatchId(1, 0, 0)), failed], round)).toMatchObject({
      outcome: 'failed',
      error: 'HTTP 400',
    });
  });

  it('withheld outcomes carry their reason; an aborted row says why it was not sent', () => {
    expect(recipientStory([row('skipped', T, 'missing recipient.attrs.first_name')], IN_PLAN)).toMatchObject({
      outcome: 'skipped',
      error: null,
      reason: 'missing recipient.attrs.first_name',
    });
    expect(recipientStory([row('suppressed', T, 'global list')], IN_PLAN)).toMatchObject({ outcome: 'suppressed', reason: 'global list' });
    expect(recipientStory([row('capped', T, 'topic news: 3 in 86400 s')], IN_PLAN).outcome).toBe('capped');
    expect(recipientStory([row('aborted', T, '', subBatchId(0, 2, 0, 'aborted'))], { ...IN_PLAN, status: 'cancelled' })).toMatchObject({
      outcome: 'aborted',
      reason: 'the campaign ended (cancelled or failed) before sending to it',
    });
  });

  it('an outcome row decides even when PostgreSQL no longer places the user in the plan', () => {
    expect(recipientStory([row('delivered', T)], { inPlan: false, reason: 'not in audience 1' }).outcome).toBe('delivered');
  });
});
