import { existsSync, mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { API_KEY, useHerald } from '../helpers/herald.js';
import { listenLocal, rejectingReceiver } from '../helpers/local-http.js';

/** Debian's chromium (`apt-get install chromium`, done by .ci/run); CHROMIUM_PATH overrides. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = '.herald/artifacts';

// In CI the browser must be there (the test fails otherwise); elsewhere a machine without it skips.
const run = existsSync(CHROMIUM) || process.env.CI === 'true' ? describe : describe.skip;

// What the page.evaluate callbacks see in the browser (the project's TypeScript has no DOM library).
declare const document: any, window: any, location: any, getComputedStyle: any;
type Progress = { value: number; max: number };

const N = 3_000;
/** user `p<i>` with i % 7 == 0 fails its first delivery (the failures table, then the retry round). */
const failsFirst = (user: string): boolean => Number(user.slice(1)) % 7 === 0;

/** Presses Tab until the focused element matches `selector`: the control is reachable by keyboard. */
async function tabTo(page: Page, selector: string, max = 80): Promise<void> {
  for (let i = 0; i < max; i++) {
    if (await page.evaluate((sel) => document.activeElement?.matches(sel) ?? false, selector)) {
      // Focus is visible: an outline is drawn on the focused control.
      const outline = await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle);
      expect(outline, `focus outline on ${selector}`).not.toBe('none');
      return;
    }
    await page.keyboard.press('Tab');
  }
  throw new Error(`${selector} was not reached with ${max} presses of Tab`);
}

/** Nothing on the page is wider than the window: no horizontal scroll. */
async function expectNoHorizontalScroll(page: Page, what: string): Promise<void> {
  const { scroll, inner } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, inner: window.innerWidth }));
  expect(scroll, `${what}: scrollWidth ${scroll} at innerWidth ${inner}`).toBeLessThanOrEqual(inner);
}

const num = (s: string | null): number => Number((s ?? '').replace(/,/g, ''));

run('the dashboard does the whole job in a real browser', () => {
  // Imports answer 202 at once, so the page follows the job after the upload (frames and GET /v1/imports/:id).
  const ctx = useHerald({ wsTickMs: 250, webhookBatchSize: 50, subBatchSize: 50, importAnswerWaitMs: 0 });
  let browser: Browser;
  let sink: Server;
  let sinkUrl = '';
  const posted = new Map<string, number>();
  let audienceId = 0;
  let campaignId = 0;
  const errors: string[] = [];

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    sink = rejectingReceiver({ posted, rejects: (user, attempt) => (attempt === 1 && failsFirst(user) ? 'mailbox full' : null) });
    sinkUrl = await listenLocal(sink);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
    });
  });

  afterAll(async () => {
    await browser?.close();
    sink?.close();
  });

  async function openPage(width: number, hash = ''): Promise<Page> {
    const page = await browser.newPage({ viewport: { width, height: width < 500 ? 844 : 900 } });
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${ctx.herald.port}/?key=${API_KEY}${hash}`);
    await page.locator('#conn.live').waitFor({ timeout: 10_000 });
    return page;
  }

  it('creates an audience and uploads a file into it, showing the upload’s progress and then the import’s counts', async () => {
    const { api } = ctx;
    const page = await openPage(1280, '#/audiences');
    await page.locator('#aud-name').fill('dashboard upload');
    await page.locator('#aud-name').press('Enter');
    await page.waitForURL(/#\/a\/\d+$/);
    audienceId = Number(/#\/a\/(\d+)$/.exec(page.url())![1]);

    // ~1.6 MB of NDJSON, one line repeated and one malformed; the upload is throttled to ~1 MB/s so
    // the page shows it part way.
    const pad = 'x'.repeat(480);
    const lines: string[] = [];
    for (let i = 1; i <= N; i++)
      lines.push(JSON.stringify({ user_id: `p${i}`, address: `p${i}@example.test`, attrs: { plan: i % 2 ? 'pro' : 'free', pad } }));
    lines.splice(10, 0, lines[3]!); // a duplicate of p4
    lines.splice(20, 0, '{"user_id": '); // rejected
    const file = Buffer.from(lines.join('\n') + '\n');
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 1_000_000 });

    await page.locator('#up-file').setInputFiles({ name: 'people.ndjson', mimeType: 'application/x-ndjson', buffer: file });
    await page.locator('#up-submit').focus();
    await page.keyboard.press('Enter');
    // Part way: the bar has moved but not reached the file's size.
    const bar = page.locator('#up-bar');
    await expect
      .poll(async () => bar.evaluate((el: Progress) => el.value / el.max), { timeout: 15_000, interval: 50 })
      .toBeGreaterThan(0.1);
    const part = await bar.evaluate((el: Progress) => ({ value: el.value, max: el.max }));
    expect(part.max).toBe(file.length);
    expect(part.value).toBeLessThan(file.length);
    expect(await page.locator('#up-bytes').textContent()).toMatch(/^Sent .* of 1\.\d MB \(\d+%\)/);
    await page.screenshot({ path: `${ARTIFACTS}/dashboard-upload-progress-1280.png`, fullPage: true });

    // The end: the import's counts as the API has them.
    await page.locator('#up-counts').waitFor({ timeout: 60_000 });
    await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
    expect(await bar.evaluate((el: Progress) => el.value)).toBe(file.length);
    expect(await page.locator('#up-progress').getAttribute('data-answer')).toBe('202');
    expect(await page.locator('#up-progress').getAttribute('data-job')).toBe('completed');
    const { imports } = (await api.call('GET', `/v1/audiences/${audienceId}/imports`)).body;
    expect(imports).toHaveLength(1);
    const job = imports[0];
    expect(job).toMatchObject({ status: 'completed', imported: N, rejected_count: 1 });
    const count = (k: string) => page.locator(`#up-counts [data-count="${k}"]`).textContent();
    expect(num(await count('imported'))).toBe(N);
    expect(num(await count('duplicates'))).toBe(job.duplicates);
    expect(num(await count('rejected'))).toBe(1);
    expect(num(await count('total'))).toBe(job.total);
    await expect.poll(() => page.locator('#up-result .rejected li').first().textContent()).toMatch(/^line 21: /);
    // The imports list shows the job.
    await page.locator(`#im-rows tr[data-id="${job.id}"][data-status="completed"]`).waitFor({ timeout: 5_000 });
    await page.screenshot({ path: `${ARTIFACTS}/dashboard-upload-done-1280.png`, fullPage: true });
    await expectNoHorizontalScroll(page, 'audience page at 1280');
    // The audience's page names its exact size, and the list (GET /v1/audiences, not this browser's memory)
    // shows what its import brought, also in a fresh browser context that never saw it.
    await expect.poll(() => page.locator('#a-title').textContent(), { timeout: 10_000 }).toMatch(/ recipients$/);
    const fresh = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const listPage = await fresh.newPage();
    await listPage.goto(`http://127.0.0.1:${ctx.herald.port}/?key=${API_KEY}#/audiences`);
    await expect.poll(() => listPage.locator(`#aud-list a[href="#/a/${audienceId}"]`).count(), { timeout: 10_000 }).toBe(1);
    expect(await listPage.locator('#aud-list li', { hasText: `#${audienceId} dashboard upload` }).textContent()).toMatch(
      /imported in 1 import/,
    );
    await fresh.close();
    expect(errors).toEqual([]);
    await page.close();
  });

  it('creates, previews, starts, pauses, resumes and completes a campaign by keyboard; failures, retry, lookup, audit and charts', async () => {
    const { api } = ctx;
    expect(audienceId).toBeGreaterThan(0);
    const page = await openPage(1280);

    // From the list to the form, and every field, by Tab and the keyboard only.
    await tabTo(page, '#nav-new');
    await page.keyboard.press('Enter');
    await page.locator('#new:not([hidden])').waitFor();
    await tabTo(page, '#f-name');
    await page.keyboard.type('keyboard campaign');
    await tabTo(page, '#f-audience');
    await page.keyboard.type(String(audienceId));
    await tabTo(page, 'input[name="channel"]:checked');
    await page.keyboard.press('ArrowDown'); // inbox
    await page.keyboard.press('ArrowDown'); // webhook
    expect(await page.locator('input[name="channel"]:checked').getAttribute('value')).toBe('webhook');
    await tabTo(page, '#f-url');
    await page.keyboard.type(sinkUrl);
    await tabTo(page, '#f-title');
    await page.keyboard.type('Hello {{ recipient.user_id }}');
    await tabTo(page, '#f-body');
    await page.keyboard.type('Your plan: {{ recipient.attrs.plan }}');
    await tabTo(page, '#f-rate');
    await page.keyboard.type('500');
    await page.keyboard.press('Enter'); // submits the form

    // The draft's preview for the audience's first recipients, rendered by the server.
    await page.locator('#create-preview:not([hidden])').waitFor({ timeout: 10_000 });
    await expect.poll(() => page.locator('#cp-results .preview-card').count()).toBe(3);
    expect(await page.locator('#cp-results .preview-card[data-user="p1"] .pv-title').textContent()).toBe('Hello p1');
    expect(await page.locator('#cp-results .preview-card[data-user="p2"] .pv-body').textContent()).toBe('Your plan: free');
    const firstDraft = Number(/#(\d+)/.exec((await page.locator('#cp-note').textContent())!)![1]);
    expect((await api.call('GET', `/v1/campaigns/${firstDraft}`)).body).toMatchObject({ status: 'draft', rate_limit: 500 });

    // A changed template previews again as a new draft; the one it replaces is cancelled.
    await tabTo(page, '#f-title');
    await page.keyboard.press('End');
    await page.keyboard.type('!');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('#cp-results .preview-card[data-user="p1"] .pv-title').textContent()).toBe('Hello p1!');
    campaignId = Number(/#(\d+)/.exec((await page.locator('#cp-note').textContent())!)![1]);
    expect(campaignId).toBeGreaterThan(firstDraft);
    expect((await api.call('GET', `/v1/campaigns/${firstDraft}`)).body.status).toBe('cancelled');
    // The preview for typed user ids.
    await tabTo(page, '#cp-users');
    await page.keyboard.type('p7, p8');
    await page.keyboard.press('Enter');
    await expect
      .poll(() =>
        page
          .locator('#cp-results .preview-card')
          .evaluateAll((els) => els.map((e) => (e as unknown as { dataset: { user: string } }).dataset.user)),
      )
      .toEqual(['p7', 'p8']);
    await page.screenshot({ path: `${ARTIFACTS}/dashboard-create-preview-1280.png`, fullPage: true });

    // Start, pause, resume: each a button reached by Tab and pressed with Enter.
    await tabTo(page, '#cp-start');
    await page.keyboard.press('Enter');
    await page.waitForURL(new RegExp(`#/c/${campaignId}$`));
    const status = page.locator('[data-testid="status"]');
    await status.filter({ hasText: 'sending' }).waitFor({ timeout: 10_000 });
    await tabTo(page, '#b-pause');
    await page.keyboard.press('Enter');
    await status.filter({ hasText: 'paused' }).waitFor({ timeout: 5_000 });
    expect((await api.call('GET', `/v1/campaigns/${campaignId}`)).body.status).toBe('paused');
    await page.screenshot({ path: `${ARTIFACTS}/dashboard-paused-1280.png`, fullPage: true });
    await tabTo(page, '#b-resume');
    await page.keyboard.press('Enter');
    await status.filter({ hasText: 'sending' }).waitFor({ timeout: 5_000 });
    // While sending the live chart draws the frames.
    await expect.poll(() => page.locator('#c-rate').getAttribute('data-points'), { timeout: 10_000 }).not.toBe('0');
    expect(await page.locator('#chart-mode').textContent()).toBe('(live)');
    await status.filter({ hasText: 'completed' }).waitFor({ timeout: 60_000 });

    // The failures: every seventh recipient, listed a page at a time.
    const failed = Math.floor(N / 7);
    const done = await api.waitForStatus(campaignId, ['completed'], 10_000);
    expect(done).toMatchObject({ delivered: N - failed, failed });
    await expect.poll(async () => num(await page.locator('#d-failed').textContent()), { timeout: 10_000 }).toBe(failed);
    await expect.poll(() => page.locator('#fl-rows tr[data-user]').count(), { timeout: 10_000 }).toBe(50);
    expect(await page.locator('#fl-rows tr[data-user]').first().locator('td').nth(1).textContent()).toBe('mailbox full');
    await page.locator('#fl-more:not([hidden])').waitFor();

    // Reads for a tenth of the audience, through the callback API, before the retry round.
    const reads = Array.from({ length: N / 10 }, (_, i) => ({ campaign_id: campaignId, user_id: `p${i * 10 + 1}`, kind: 'read' }));
    expect((await api.call('POST', '/v1/events', { events: reads })).body.accepted).toBe(N / 10);
    await expect
      .poll(async () => (await api.call('GET', `/v1/campaigns/${campaignId}`)).body.unique_readers, { timeout: 15_000 })
      .toBe(N / 10);

    // Retry the failed ones from the table's button; the campaign completes with none left.
    await tabTo(page, '#fl-retry');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('#fl-status').textContent()).toBe(`Retrying ${failed} recipients.`);
    await status.filter({ hasText: 'completed' }).waitFor({ timeout: 60_000 });
    expect((await api.waitForStatus(campaignId, ['completed'], 10_000)).failed).toBe(0);
    await expect.poll(() => page.locator('#fl-rows').textContent(), { timeout: 10_000 }).toBe('No failures.');

    // The finished campaign's history from /stats: axes with tick labels and time labels, and data.
    await expect.poll(() => page.locator('#chart-mode').textContent(), { timeout: 15_000 }).toBe('(from /stats, per minute)');
    await expect.poll(() => page.locator('#ttr').textContent(), { timeout: 20_000 }).toContain('Read rate 10%');
    for (const chart of ['#c-rate', '#c-read']) {
      const svg = page.locator(chart);
      expect(await svg.locator('.axis-y text').count()).toBeGreaterThanOrEqual(3);
      const times = await svg.locator('text.tick-time').allTextContents();
      expect(times.length).toBeGreaterThanOrEqual(2);
      for (const t of times) expect(t).toMatch(/^\d\d:\d\d(:\d\d)?$/);
      expect(Number(await svg.getAttribute('data-points'))).toBeGreaterThan(0);
    }
    expect(await page.locator('#c-rate rect').count()).toBeGreaterThan(0);
    expect(await page.locator('#c-read .axis-y text').allTextContents()).toContain('100%');
    expect(await page.locator('#c-read path').getAttribute('d')).toMatch(/^M[\d.]+,[\d.]+ L/);

    // One recipient's story, or a plain word that this server has no such route yet.
    await tabTo(page, '#rc-user');
    await page.keyboard.type('p7');
    await page.keyboard.press('Enter');
    const lookup = await api.call('GET', `/v1/campaigns/${campaignId}/recipients/p7`);
    if (lookup.status === 404 && lookup.body.error === 'no such route') {
      await expect.poll(() => page.locator('#rc-error').textContent()).toBe('Recipient lookup is not available on this server.');
    } else {
      expect(lookup.status).toBe(200);
      await expect.poll(() => page.locator('#rc-result .rc-outcome').textContent()).toBe(lookup.body.outcome);
      expect(await page.locator('#rc-result tbody tr').count()).toBe(Math.max(1, lookup.body.attempts.length));
    }

    // The audit trail of the campaign, likewise.
    const audit = await api.call('GET', `/v1/audit?campaign_id=${campaignId}&limit=20`);
    if (audit.status === 404 && audit.body.error === 'no such route') {
      await expect.poll(() => page.locator('#au-error').textContent()).toBe('The audit trail is not available on this server.');
    } else {
      expect(audit.status).toBe(200);
      await page.locator('#au-refresh').click();
      await expect.poll(() => page.locator('#au-rows tr[data-action]').count()).toBe(audit.body.items.length);
      expect(audit.body.items.length).toBeGreaterThanOrEqual(4); // start, pause, resume, retry-failed
    }
    await page.screenshot({ path: `${ARTIFACTS}/dashboard-completed-1280.png`, fullPage: true });
    await expectNoHorizontalScroll(page, 'campaign page at 1280');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('creates a scheduled inbox campaign on a segment, with data and variables, from the form', async () => {
    const { api } = ctx;
    const seg = await api.call('POST', '/v1/segments', { name: 'pro users', audience_id: audienceId, filter: { attr: 'plan', eq: 'pro' } });
    expect(seg.status).toBe(201);
    const page = await openPage(1280, '#/new');
    await page.locator('#f-name').fill('segment campaign');
    await page.locator('#f-audience').fill(String(audienceId));
    await page.locator('input[name="target"][value="segment"]').check();
    await page.locator('#f-segment').fill(String(seg.body.id));
    await page.locator('#f-segment').press('Tab');
    await expect
      .poll(() => page.locator('#segment-info').textContent())
      .toBe(`“pro users” on audience ${audienceId}: 1,500 recipients now.`);
    await page.locator('input[name="channel"][value="inbox"]').check();
    expect(await page.locator('#webhook-field').isHidden()).toBe(true);
    await page.locator('#f-title').fill('{{ variables.season }} offer');
    await page.locator('#f-body').fill('for {{ recipient.user_id }}');
    await page.locator('#f-data').fill('{"url": "https://example.test/{{ recipient.user_id }}"}');
    await page.locator('#f-variables').fill('{"season": "spring"}');
    // The live preview renders the form as typed, for the segment's first recipients, before anything is saved.
    const campaignsBefore = (await api.call('GET', '/v1/campaigns?limit=500')).body.campaigns.length;
    await expect
      .poll(() => page.locator('#lp-results .preview-card .pv-title').allTextContents(), { timeout: 10_000 })
      .toEqual(['spring offer', 'spring offer', 'spring offer']);
    const livePros = await page
      .locator('#lp-results .preview-card')
      .evaluateAll((cards) => cards.map((c) => (c as unknown as { dataset: { user: string } }).dataset.user));
    expect((await api.call('GET', '/v1/campaigns?limit=500')).body.campaigns.length).toBe(campaignsBefore);
    // A template that does not parse is named as creation would name it, still with nothing saved.
    await page.locator('#f-body').fill('for {{ recipient.user_id ');
    await expect.poll(() => page.locator('#lp-status').textContent(), { timeout: 10_000 }).toMatch(/^content\.body: /);
    await page.locator('#f-body').fill('for {{ recipient.user_id }}');
    await expect.poll(() => page.locator('#lp-results .preview-card').count(), { timeout: 10_000 }).toBe(3);
    const at = new Date(Date.now() + 3_600_000);
    const local = new Date(at.getTime() - at.getTimezoneOffset() * 60_000).toISOString().slice(0, 19);
    await page.locator('#f-schedule').fill(local);
    await page.locator('#f-submit').click();
    await expect.poll(() => page.locator('#cp-results .preview-card').count(), { timeout: 10_000 }).toBe(3);
    expect(await page.locator('#cp-results .preview-card').first().locator('.pv-title').textContent()).toBe('spring offer');
    // The saved draft's preview samples the segment too: the same recipients as the live one.
    const saved = await page
      .locator('#cp-results .preview-card')
      .evaluateAll((cards) => cards.map((c) => (c as unknown as { dataset: { user: string } }).dataset.user));
    expect(saved).toEqual(livePros);
    expect(JSON.parse((await page.locator('#cp-results .preview-card').first().locator('.pv-data').textContent())!)).toEqual({
      url: `https://example.test/${livePros[0]}`,
    });
    expect(await page.locator('#cp-start').isHidden()).toBe(true); // scheduled: it starts by itself
    const id = Number(/#(\d+)/.exec((await page.locator('#cp-note').textContent())!)![1]);
    const c = (await api.call('GET', `/v1/campaigns/${id}`)).body;
    expect(c).toMatchObject({ status: 'scheduled', segment_id: seg.body.id, channel: { type: 'inbox' }, variables: { season: 'spring' } });
    expect(Math.abs(Date.parse(c.schedule_at) - at.getTime())).toBeLessThan(1_000);
    // Its page: not started yet, the charts say so, Start and Cancel are offered.
    await page.locator('#cp-open').click();
    await page.locator('[data-testid="status"]', { hasText: 'scheduled' }).waitFor();
    await expect.poll(() => page.locator('#c-rate text.empty').textContent()).toBe('not started yet');
    expect(await page.locator('#b-start').isEnabled()).toBe(true);
    await page.locator('#b-cancel').click();
    await page.locator('[data-testid="status"]', { hasText: 'cancelled' }).waitFor();
    expect(errors).toEqual([]);
    await page.close();
  });

  it('renders the recipient and audit routes’ answers as their contracts describe them', async () => {
    // These two routes come from other work; the panels are built against their documented answers,
    // served here by the browser's request interception, so the rendering is checked before they merge.
    const page = await openPage(1280);
    await page.route(/\/v1\/campaigns\/\d+\/recipients\/[^/]+$/, (route) =>
      route.fulfill({
        status: 200,
        contentType: 'application/json',
        body: JSON.stringify({
          campaign_id: campaignId,
          user_id: 'p14',
          outcome: 'delivered',
          error: null,
          reason: null,
          attempts: [
            { at: '2026-01-01T10:00:00Z', kind: 'failed', error: 'mailbox full' },
            { at: '2026-01-01T10:01:00Z', kind: 'delivered', error: null },
          ],
          reads: [{ at: '2026-01-01T10:05:00Z' }],
        }),
      }),
    );
    await page.route(/\/v1\/audit\?/, (route) => {
      const before = new URL(route.request().url()).searchParams.get('before');
      const item = (id: number, action: string, from: string, to: string) => ({
        id,
        at: '2026-01-01T10:00:00Z',
        key_id: 3,
        key_name: 'ops',
        request_id: `req-${id}`,
        action,
        campaign_id: campaignId,
        status_before: from,
        status_after: to,
        detail: { via: 'dashboard' },
      });
      const body =
        before === null
          ? { items: [item(9, 'pause', 'sending', 'paused'), item(8, 'start', 'draft', 'sending')], next_before: 8 }
          : { items: [item(2, 'create', '', 'draft')], next_before: null };
      return route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(body) });
    });
    await page.goto(`http://127.0.0.1:${ctx.herald.port}/#/c/${campaignId}`);
    await expect.poll(() => page.locator('#au-rows tr[data-action]').count()).toBe(2);
    const first = await page.locator('#au-rows tr').first().locator('td').allTextContents();
    expect(first.slice(1, 4)).toEqual(['pause', 'sending → paused', 'ops']);
    expect(first[4]).toBe('req-9');
    await page.locator('#au-more').click();
    await expect.poll(() => page.locator('#au-rows tr[data-action]').count()).toBe(3);
    expect(await page.locator('#au-more').isHidden()).toBe(true);

    await page.locator('#rc-user').fill('p14');
    await page.locator('#rc-user').press('Enter');
    await expect.poll(() => page.locator('#rc-result .rc-outcome').textContent()).toBe('delivered');
    const attempts = await page
      .locator('#rc-result tbody tr')
      .evaluateAll((rows) => rows.map((r) => [...r.children].map((c) => c.textContent)));
    expect(attempts.map((r) => [r[1], r[2]])).toEqual([
      ['failed', 'mailbox full'],
      ['delivered', ''],
    ]);
    // A recipient the campaign does not have: the route's own 404 is shown as it says.
    await page.unroute(/\/v1\/campaigns\/\d+\/recipients\/[^/]+$/);
    await page.route(/\/v1\/campaigns\/\d+\/recipients\/[^/]+$/, (route) =>
      route.fulfill({
        status: 404,
        contentType: 'application/json',
        body: JSON.stringify({ error: 'nobody is not a recipient of this campaign', code: 'NOT_FOUND' }),
      }),
    );
    await page.locator('#rc-user').fill('nobody');
    await page.locator('#rc-user').press('Enter');
    await expect.poll(() => page.locator('#rc-error').textContent()).toBe('nobody is not a recipient of this campaign');
    expect(errors).toEqual([]);
    await page.close();
  });

  it('is readable at 390 px wide: every view without horizontal scroll', async () => {
    expect(campaignId).toBeGreaterThan(0);
    // A browser without the key asks for it first.
    const fresh = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const login = await fresh.newPage();
    login.on('pageerror', (e) => errors.push(e.message));
    await login.goto(`http://127.0.0.1:${ctx.herald.port}/`);
    await login.locator('#login:not([hidden])').waitFor();
    await expectNoHorizontalScroll(login, 'login at 390');
    await login.screenshot({ path: `${ARTIFACTS}/dashboard-login-390.png` });
    await login.locator('#key').fill(API_KEY);
    await login.locator('#key').press('Enter');
    await login.locator(`tr[data-id="${campaignId}"]`).waitFor({ timeout: 10_000 });
    await login.locator('#conn.live').waitFor({ timeout: 10_000 });
    await fresh.close();

    const page = await openPage(390);
    // A template the server cannot compile: its error is shown on the field.
    await page.evaluate(() => (location.hash = '#/new'));
    await page.locator('#f-name').fill('broken');
    await page.locator('#f-audience').fill(String(audienceId));
    await page.locator('#f-title').fill('Hi {% if %}');
    await page.locator('#f-body').fill('b');
    await page.locator('#f-submit').click();
    await page.locator('#f-title[aria-invalid="true"]').waitFor({ timeout: 5_000 });
    expect(await page.locator('#create-errors').textContent()).toContain('content.title');
    await expectNoHorizontalScroll(page, 'form errors at 390');
    for (const [name, hash, ready] of [
      ['list', '#/', `tr[data-id="${campaignId}"]`],
      ['new', '#/new', '#f-name'],
      ['campaign', `#/c/${campaignId}`, '#c-rate text.tick-time'],
      ['audiences', '#/audiences', '#aud-name'],
      ['audience', `#/a/${audienceId}`, '#im-rows tr[data-id]'],
    ] as const) {
      await page.evaluate((h) => (location.hash = h), hash);
      await page.locator(ready).first().waitFor({ timeout: 10_000 });
      await expectNoHorizontalScroll(page, `${name} at 390`);
      await page.screenshot({ path: `${ARTIFACTS}/dashboard-${name}-390.png`, fullPage: true });
    }
    // The campaign's charts fit the narrow window and keep their labels.
    await page.evaluate((h) => (location.hash = h), `#/c/${campaignId}`);
    await expect.poll(() => page.locator('#chart-mode').textContent(), { timeout: 10_000 }).toBe('(from /stats, per minute)');
    const width = await page.locator('#c-rate').evaluate((el) => el.getBoundingClientRect().width);
    expect(width).toBeLessThanOrEqual(390);
    expect(await page.locator('#c-rate text.tick-time').count()).toBeGreaterThanOrEqual(2);
    expect(errors).toEqual([]);
    await page.close();
  });
});
