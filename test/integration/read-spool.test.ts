/**
 * The read spool on the real services: pixel reads answered by a process killed with SIGKILL reach
 * ClickHouse exactly once through the process that adopts its spool, and a replay of frames that were
 * already stored adds nothing.
 */
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tokenSecret } from '../../src/config.js';
import { trackingToken } from '../../src/domain/tokens.js';
import { encodeFrame } from '../../src/domain/spool-frame.js';
import { spawnHerald } from '../helpers/child-herald.js';
import { eventually, startTestHerald, useHerald } from '../helpers/herald.js';
import { proxyFor } from '../helpers/tcp-proxy.js';

const ctx = useHerald();

/** Read rows per user of a campaign. */
async function readsByUser(campaignId: number): Promise<Map<string, number>> {
  const rows = await ctx.herald.ch.rows<{ user_id: string; n: string }>(
    `SELECT user_id, count() AS n FROM message_events WHERE campaign_id = ${campaignId} AND kind = 'read' GROUP BY user_id`,
  );
  return new Map(rows.map((r) => [r.user_id, Number(r.n)]));
}

/** A campaign to read for, and an empty spool directory of the test's own. */
async function campaignAndSpoolDir(prefix: string): Promise<{ campaign: number; dir: string }> {
  const campaign = await ctx.api.nullCampaign(await ctx.api.audience(10, prefix));
  return { campaign, dir: await mkdtemp(path.join(tmpdir(), 'herald-spool-')) };
}

async function childPort(lines: string[]): Promise<number> {
  return JSON.parse(lines.find((l) => l.includes('Herald API listening'))!).port as number;
}

describe('the read spool', () => {
  it('keeps every answered pixel read through a kill -9, and counts each once', async () => {
    const { ns } = ctx;
    const { campaign, dir } = await campaignAndSpoolDir('sp');
    const secret = tokenSecret(ns.config);
    const lines: string[] = [];
    // The child reaches ClickHouse through a proxy that is cut once it is up: whatever it answers is
    // only in its spool when it dies.
    const behind = await proxyFor(ns.config.clickhouseUrl, 8123);
    const child = await spawnHerald(ns, lines, { HERALD_SPOOL_DIR: dir, CLICKHOUSE_URL: behind.url, HERALD_WORKERS: '0' });
    behind.proxy.cut();
    const port = await childPort(lines);
    const answered = new Set<string>();
    const N = 6000;
    let next = 0;
    let killed = false;
    const hit = async (): Promise<void> => {
      while (next < N && !killed) {
        const u = `r${next++}`;
        try {
          const res = await fetch(`http://127.0.0.1:${port}/t/${trackingToken(secret, campaign, u)}`);
          await res.arrayBuffer();
          if (res.status === 200) answered.add(u);
        } catch {
          // cut by the kill
        }
        if (answered.size >= 2500 && !killed) {
          killed = true;
          child.kill('SIGKILL');
        }
      }
    };
    const exited = new Promise((r) => child.once('exit', r));
    await Promise.all(Array.from({ length: 32 }, hit));
    await exited;
    await behind.proxy.close();
    expect(answered.size).toBeGreaterThanOrEqual(2500);
    expect(await readsByUser(campaign)).toEqual(new Map());
    // A process on the same spool directory adopts the dead one's file and replays it.
    const survivor = await startTestHerald(ns, { spoolDir: dir, workers: 0 });
    try {
      const byUser = await eventually(
        () => readsByUser(campaign),
        (m) => [...answered].every((u) => m.has(u)),
      );
      for (const u of answered) expect(byUser.get(u), u).toBe(1);
      // at most the reads in flight at the kill come on top, each once
      expect([...byUser.values()].every((n) => n === 1)).toBe(true);
      expect(byUser.size).toBeLessThanOrEqual(next);
      await eventually(
        async () => (await readdir(dir)).filter((f) => f.endsWith('.spool')),
        (files) => files.length <= 1,
      );
    } finally {
      await survivor.stop();
    }
  });

  it('replays the file a predecessor with the same pid left behind (a restarted container)', async () => {
    const { ns } = ctx;
    const { campaign, dir } = await campaignAndSpoolDir('sp2');
    // A file named for this very pid, by an instance no spool here has: what a process that died and
    // came back with the same pid (PID 1 in a container) finds.
    const events = Array.from({ length: 300 }, (_, i) => ({
      campaignId: campaign,
      userId: `s${i}`,
      kind: 'read' as const,
      atSec: 1_800_000_000,
      error: '',
    }));
    await writeFile(
      path.join(dir, `reads-${process.pid}-0badcafe-77.spool`),
      Buffer.concat([encodeFrame(0, events.slice(0, 100)), encodeFrame(1, events.slice(100))]),
    );
    const survivor = await startTestHerald(ns, { spoolDir: dir, workers: 0 });
    try {
      const byUser = await eventually(
        () => readsByUser(campaign),
        (m) => m.size >= events.length,
      );
      expect(byUser.size).toBe(events.length);
      expect([...byUser.values()].every((n) => n === 1)).toBe(true);
    } finally {
      await survivor.stop();
    }
  });

  it('adds nothing when frames already stored are replayed', async () => {
    const { api, ns } = ctx;
    const { campaign, dir } = await campaignAndSpoolDir('rp');
    const secret = tokenSecret(ns.config);
    const lines: string[] = [];
    const child = await spawnHerald(ns, lines, { HERALD_SPOOL_DIR: dir, HERALD_SINK_FLUSH_MS: '50', HERALD_WORKERS: '0' });
    const port = await childPort(lines);
    const users = Array.from({ length: 1500 }, (_, i) => `p${i}`);
    for (let k = 0; k < users.length; k += 50)
      await Promise.all(users.slice(k, k + 50).map((u) => fetch(`http://127.0.0.1:${port}/t/${trackingToken(secret, campaign, u)}`)));
    // every read stored by the child itself, then it dies with its spool file on disk
    await eventually(
      () => readsByUser(campaign),
      (m) => m.size === users.length,
    );
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    // As if it had died before writing its drained offset: the whole file is replayed.
    const spools = (await readdir(dir)).filter((f) => f.endsWith('.spool'));
    expect(spools).toHaveLength(1);
    await writeFile(path.join(dir, `${spools[0]}.drained`), '0');
    const survivor = await startTestHerald(ns, { spoolDir: dir, workers: 0 });
    try {
      // its frames were replayed and found stored, and the file went
      const spool = survivor.spool!;
      const left = async (): Promise<string[]> => (await readdir(dir)).filter((f) => f.includes(spools[0]!.split('-')[3]!));
      await eventually(left, (files) => files.length === 0);
      expect(await left()).toEqual([]);
      expect(spool.stats.framesReplayedStored).toBeGreaterThan(0);
      expect(spool.stats.eventsDrained).toBe(0);
      const byUser = await readsByUser(campaign);
      expect(byUser.size).toBe(users.length);
      expect([...byUser.values()].every((n) => n === 1)).toBe(true);
      const counted = (await api.call('GET', `/v1/campaigns/${campaign}`)).body;
      expect(counted.read).toBe(users.length);
    } finally {
      await survivor.stop();
    }
  });
});
