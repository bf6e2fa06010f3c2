import { describe, expect, it } from 'vitest';
import { eventCounts, useHerald } from '../helpers/herald.js';

describe('a pause while events wait in the sink', () => {
  // The sink holds events for seconds, so a pause and a resume come while what was sent before the
  // pause is recorded in the ledger but not yet in ClickHouse.
  const ctx = useHerald({ workers: 2, sinkFlushMs: 2_000, sinkFlushRows: 1_000_000, sinkMaxBufferedRows: 2_000_000 });

  it('stores every event once when the campaign resumes before they reached ClickHouse', async () => {
    const { api, herald } = ctx;
    const n = 20_000;
    const audienceId = await api.audience(n, 'ps');
    const id = await api.nullCampaign(audienceId, { name: 'pause storing', rate_limit: 20_000, chunk_size: 1_000 });
    await api.call('POST', `/v1/campaigns/${id}/start`);
    await new Promise((r) => setTimeout(r, 400));
    expect((await api.call('POST', `/v1/campaigns/${id}/pause`)).body.status).toBe('paused');
    expect((await api.call('POST', `/v1/campaigns/${id}/resume`)).body.status).toBe('sending');
    const done = await api.waitForStatus(id, ['completed'], 60_000);
    expect(done.delivered).toBe(n);
    expect(await eventCounts(herald, id)).toEqual({ n, u: n });
  });
});
