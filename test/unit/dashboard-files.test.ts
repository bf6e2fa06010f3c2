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
