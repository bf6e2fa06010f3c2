import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Herald } from '../../src/main.js';
import { apiFor, createNamespace, startTestHerald, type Api, type Namespace } from '../helpers/herald.js';
import { spawnHerald } from '../helpers/child-herald.js';

describe('several herald processes share a campaign', () => {
  let ns: Namespace;
  let herald: Herald;
  let api: Api;
  let child: ChildProcess | undefined;
  const childLog: string[] = [];

  beforeAll(async () => {
    ns = await createNamespace();
    herald = await startTestHerald(ns);
    api = apiFor(herald);
    child = await spawnHerald(ns, childLog);
  });

  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await herald?.stop();
    await ns?.drop();
  });

  it('splits the chunks between an in-process dispatcher and a child process, each recipient once', async () => {
    const audienceId = await api.audience(100_000, 'mp');
    const id = await api.nullCampaign(audienceId, { chunk_size: 100 });
    await api.call('POST', `/v1/campaigns/${id}/start`);
    const done = await api.waitForStatus(id, ['completed']);
    expect(done.delivered).toBe(100_000);
    const rows = await herald.ch.rows<{ n: string; u: string }>(
      `SELECT count() AS n, uniqExact(user_id) AS u FROM message_events WHERE campaign_id = ${id}`,
    );
    expect(rows[0]).toEqual({ n: '100000', u: '100000' });
    // The child reports what its actor sent when it deactivates.
    for (let i = 0; i < 50 && !childLog.some((l) => l.includes('campaign actor deactivated')); i++)
      await new Promise((r) => setTimeout(r, 100));
    const report = childLog.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'campaign actor deactivated');
    expect(report).toBeDefined();
    expect(report!.chunks as number).toBeGreaterThan(0);
    expect(report!.chunks as number).toBeLessThan(1000);

    // SIGTERM: the child stops taking chunks, flushes, and exits cleanly within its grace period.
    const t0 = Date.now();
    const code = await new Promise<number | null>((resolve) => {
      child!.once('exit', resolve);
      child!.kill('SIGTERM');
    });
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });
});
