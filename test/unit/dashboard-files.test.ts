import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { dashboardRoutes } from '../../src/api/dashboard-routes.js';

describe('the dashboard routes', () => {
  it('serve every file of src/dashboard, each with its content type', async () => {
    const files = readdirSync(new URL('../../src/dashboard/', import.meta.url)).sort();
    const routes = dashboardRoutes();
    const served = routes.map((r) => (r.path === '/' ? 'index.html' : r.path.replace('/dashboard/', ''))).sort();
    expect(served).toEqual(files);
    for (const r of routes) {
      const reply = await r.handler({} as never);
      const ext = r.path === '/' ? 'html' : r.path.split('.').pop();
      expect(reply.headers?.['content-type']).toMatch({ html: /^text\/html/, js: /^text\/javascript/, css: /^text\/css/ }[ext!]!);
      expect((reply.body as Buffer).length).toBeGreaterThan(0);
    }
  });
});

describe('the charts time axis', () => {
  it('keeps two labels at least on a narrow chart, wherever its window starts', async () => {
    // the browser's module, untyped: imported by a path TypeScript does not resolve
    const charts = '../../src/dashboard/charts.js';
    const { timeTicks } = (await import(charts)) as {
      timeTicks: (t0: number, t1: number, width: number) => { ticks: number[]; step: number };
    };
    for (let start = 0; start < 10 * 60_000; start += 15_000) {
      const t0 = Date.UTC(2026, 0, 1, 10, 0, 0) + start;
      for (const span of [8, 9, 20].map((m) => m * 60_000)) {
        const { ticks, step } = timeTicks(t0, t0 + span, 284);
        expect(ticks.length, `start +${start / 1000} s, span ${span / 60_000} min`).toBeGreaterThanOrEqual(2);
        expect(ticks.every((t) => t >= t0 && t <= t0 + span)).toBe(true);
        expect(step).toBeGreaterThan(0);
      }
    }
  });
});
