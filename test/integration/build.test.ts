import { spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Api, createNamespace, type Namespace } from '../helpers/herald.js';
import { spawnHerald } from '../helpers/child-herald.js';

/**
 * The compiled build as the Docker image runs it: `npm run build` in a copy of the project, then the copy's
 * node_modules replaced by `npm ci --omit=dev` (no tsx, no TypeScript), then `bin/herald` of that copy runs
 * migrations and serves a campaign to its end with only dist/ and production dependencies.
 */
describe('the compiled build with production dependencies only', () => {
  let dir: string;
  let ns: Namespace;
  let child: ChildProcess | undefined;
  const lines: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'herald-build-'));
    for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'src', 'schemas', 'bin', 'scripts']) {
      cpSync(f, path.join(dir, f), { recursive: true });
    }
    // The build borrows this checkout's dev dependencies; what runs gets a production install of its own.
    symlinkSync(path.resolve('node_modules'), path.join(dir, 'node_modules'));
    const built = spawnSync('npm', ['run', 'build'], { cwd: dir, encoding: 'utf8' });
    expect(built.status, built.stderr + built.stdout).toBe(0);
    unlinkSync(path.join(dir, 'node_modules'));
    const installed = spawnSync('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund'], { cwd: dir, encoding: 'utf8' });
    expect(installed.status, installed.stderr).toBe(0);
    ns = await createNamespace();
  }, 180_000);

  afterAll(async () => {
    child?.kill('SIGKILL');
    await ns?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('has no dev dependency installed and runs dist/', () => {
    expect(existsSync(path.join(dir, 'node_modules/tsx'))).toBe(false);
    expect(existsSync(path.join(dir, 'node_modules/typescript'))).toBe(false);
    expect(existsSync(path.join(dir, 'dist/cli/main.js'))).toBe(true);
    for (const asset of ['dashboard/index.html', 'stream/lua/chunk-step-9.lua', 'sink/spool-worker-boot.mjs']) {
      expect(existsSync(path.join(dir, 'dist', asset)), asset).toBe(true);
    }
    const cfg = spawnSync(path.join(dir, 'bin/herald'), ['config', '--json'], {
      encoding: 'utf8',
      env: { ...process.env, HERALD_RUN: '' },
    });
    expect(cfg.status, cfg.stderr).toBe(0);
    expect(JSON.parse(cfg.stdout)).toBeTruthy();
  });

  it('refuses HERALD_RUN=src without tsx, naming the way out', () => {
    const r = spawnSync(path.join(dir, 'bin/herald'), ['config'], { encoding: 'utf8', env: { ...process.env, HERALD_RUN: 'nonsense' } });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('HERALD_RUN must be dist or src');
  });

  it('serves the API, the dashboard and a null campaign to completed', async () => {
    child = await spawnHerald(ns, lines, { HERALD_RUN: '' }, { bin: path.join(dir, 'bin/herald') });
    // The process runs the compiled entry point, not tsx.
    const cmdline = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
    expect(cmdline.some((a) => a.endsWith('dist/cli/main.js'))).toBe(true);
    expect(cmdline).not.toContain('tsx');
    const port = Number(/"port":(\d+)/.exec(lines.find((l) => l.includes('Herald API listening'))!)![1]);
    const api = new Api(`http://127.0.0.1:${port}`);
    expect((await api.call('GET', '/healthz')).status).toBe(200);
    const page = await fetch(`http://127.0.0.1:${port}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<html');
    const audienceId = await api.audience(5_000, 'b');
    const id = await api.nullCampaign(audienceId, { chunk_size: 500 });
    expect((await api.call('POST', `/v1/campaigns/${id}/start`)).status).toBe(200);
    const done = await api.waitForStatus(id, ['completed', 'failed'], 60_000);
    expect(done.status).toBe('completed');
    expect(done.delivered).toBe(5_000);
  }, 90_000);
});
