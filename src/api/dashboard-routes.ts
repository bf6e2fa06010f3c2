/**
 * The dashboard (src/dashboard): three static files, read once at start and served from memory with
 * their content types. No CDN and no build step: the page is plain HTML, CSS and JavaScript.
 */
import { readFileSync } from 'node:fs';
import type { Route } from './routes.js';

const FILES: Array<[path: string, file: string, type: string]> = [
  ['/', 'index.html', 'text/html; charset=utf-8'],
  ['/dashboard/app.js', 'app.js', 'text/javascript; charset=utf-8'],
  ['/dashboard/app.css', 'app.css', 'text/css; charset=utf-8'],
];

export function registerDashboard(route: Route): void {
  for (const [path, file, type] of FILES) {
    const body = readFileSync(new URL(`../dashboard/${file}`, import.meta.url));
    route('get', path, async () => ({ status: 200, body, headers: { 'content-type': type, 'cache-control': 'no-cache' } }), false);
  }
}
