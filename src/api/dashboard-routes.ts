/**
 * The dashboard (src/dashboard): static files, read once at start and served from memory with their
 * content types. No CDN and no build step: the page is plain HTML, CSS and JavaScript modules, which the
 * browser loads as they are (app.js imports the others).
 */
import { readFileSync } from 'node:fs';
import type { Route } from './route.js';

const SCRIPT = 'text/javascript; charset=utf-8';

const FILES: Array<[name: string, path: string, file: string, type: string]> = [
  ['dashboardPage', '/', 'index.html', 'text/html; charset=utf-8'],
  ['dashboardStyles', '/dashboard/app.css', 'app.css', 'text/css; charset=utf-8'],
  ['dashboardScript', '/dashboard/app.js', 'app.js', SCRIPT],
  ['dashboardCore', '/dashboard/core.js', 'core.js', SCRIPT],
  ['dashboardCharts', '/dashboard/charts.js', 'charts.js', SCRIPT],
  ['dashboardPreview', '/dashboard/preview.js', 'preview.js', SCRIPT],
  ['dashboardCreate', '/dashboard/create.js', 'create.js', SCRIPT],
  ['dashboardCampaign', '/dashboard/campaign.js', 'campaign.js', SCRIPT],
  ['dashboardAudiences', '/dashboard/audiences.js', 'audiences.js', SCRIPT],
];

export function dashboardRoutes(): Route[] {
  return FILES.map(([name, path, file, type]): Route => {
    const body = readFileSync(new URL(`../dashboard/${file}`, import.meta.url));
    return {
      name,
      method: 'get',
      path,
      // The page itself holds no data: it asks for an API key (or takes ?key=) and calls the API with it.
      auth: 'public',
      summary: `The dashboard's ${file}`,
      responses: { 200: file },
      produces: type.split(';')[0]!,
      handler: async () => ({ status: 200, body, headers: { 'content-type': type, 'cache-control': 'no-cache' } }),
    };
  });
}
