import { existsSync, mkdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import type { ChildProcess } from 'node:child_process';
import { API_KEY, useHerald } from '../helpers/herald.js';
import { spawnHerald } from '../helpers/child-herald.js';

/** Debian's chromium (`apt-get install chromium`, done by .ci/run); CHROMIUM_PATH overrides. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = '.herald/artifacts';

// In CI the browser must be there (the test fails otherwise); elsewhere a machine without it skips.
const run = existsSync(CHROMIUM) || process.env.CI === 'true' ? describe : describe.skip;

run('the dashboard in a real browser', () => {
  const ctx = useHerald({ wsTickMs: 250 });

  it('shows a running campaign advancing, pauses it with its button, and reconnects after a restart', async () => {
    const { api, herald } = ctx;
    const n = 200_000;
    const audienceId = await api.audience(n, 'db');
    const id = await api.nullCampaign(audienceId, { name: 'dashboard demo', rate_limit: 20_000, chunk_size: 1_000 });
    let browser: Browser | undefined;
    let restarted: ChildProcess | undefined;
    const childLog: string[] = [];
    try {
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
      });
      const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`http://127.0.0.1:${herald.port}/?key=${API_KEY}`);
      await page.locator('#conn.live').waitFor({ timeout: 10_000 });
      const row = page.locator(`tr[data-id="${id}"]`);
      await row.waitFor({ timeout: 10_000 });
      await api.call('POST', `/v1/campaigns/${id}/start`);
      // The progress bar advances: its sent count grows across two readings.
      const sentOf = async (): Promise<number> => Number(await row.getAttribute('data-sent'));
      await expect.poll(sentOf, { timeout: 15_000 }).toBeGreaterThan(10_000);
      const first = await sentOf();
      await expect.poll(sentOf, { timeout: 15_000 }).toBeGreaterThan(first);
      expect(await row.locator('.status').textContent()).toBe('sending');
      const width = await row.locator('.bar > div').evaluate((el) => (el as { style: { width: string } }).style.width);
      expect(parseFloat(width)).toBeGreaterThan(0);

      // The campaign view: counters, charts, and the Pause button.
      await row.click();
      await page.locator('[data-testid="status"]', { hasText: 'sending' }).waitFor({ timeout: 5_000 });
      await page.locator('#b-pause:not([disabled])').click();
      await page.locator('[data-testid="status"]', { hasText: 'paused' }).waitFor({ timeout: 5_000 });
      expect((await api.call('GET', `/v1/campaigns/${id}`)).body.status).toBe('paused');
      expect(Number((await page.locator('#d-delivered').textContent())!.replace(/,/g, ''))).toBeGreaterThan(0);
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: `${ARTIFACTS}/dashboard.png`, fullPage: true });
      expect(errors).toEqual([]);
      await page.locator('#b-cancel').click();
      await page.locator('[data-testid="status"]', { hasText: 'cancelled' }).waitFor({ timeout: 5_000 });

      // The page's server restarts (a real process, stopped and started again on its port): the page
      // notices, reconnects by itself, and is live again.
      // A fixed port below Linux's ephemeral range, so no outgoing connection can be given it meanwhile.
      let port = 0;
      let original: ChildProcess | undefined;
      for (let tries = 0; original === undefined; tries++) {
        port = 20_000 + Math.floor(Math.random() * 10_000);
        original = await spawnHerald(ctx.ns, childLog, { HERALD_PORT: String(port), HERALD_WS_TICK_MS: '250' }).catch((err: unknown) => {
          if (tries >= 4) throw err; // five busy ports in a row: something else is wrong
          return undefined;
        });
      }
      await page.goto(`http://127.0.0.1:${port}/?key=${API_KEY}`); // another origin: the key again
      await page.locator('#conn.live').waitFor({ timeout: 10_000 });
      const exited = new Promise((r) => original!.once('exit', r));
      original.kill('SIGTERM');
      await exited;
      await page.locator('#conn.down').waitFor({ timeout: 10_000 });
      restarted = await spawnHerald(ctx.ns, childLog, { HERALD_PORT: String(port), HERALD_WS_TICK_MS: '250' });
      await page.locator('#conn.live').waitFor({ timeout: 15_000 });
      const later = await api.nullCampaign(audienceId, { name: 'after restart' });
      await api.call('POST', `/v1/campaigns/${later}/start`);
      await page.locator(`tr[data-id="${later}"].status-completed`).waitFor({ timeout: 20_000 });
      expect(errors).toEqual([]);
    } finally {
      await browser?.close();
      if (restarted && restarted.exitCode === null) {
        const exited = new Promise((r) => restarted!.once('exit', r));
        restarted.kill('SIGTERM');
        await exited;
      }
    }
  });
});
