import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { SETTINGS } from '../../src/config.js';

const HERALD = fileURLToPath(new URL('../../bin/herald', import.meta.url));

/** Runs `bin/herald` with only `env` (and PATH) set; resolves with its exit code and output. */
async function herald(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(HERALD, args, { env: { PATH: process.env.PATH ?? '', ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('herald config', () => {
  it('prints every setting as JSON, secrets redacted', async () => {
    const r = await herald(['config', '--json'], { HERALD_API_KEYS: 'cli-key-0123', HERALD_WORKERS: '3' });
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as Array<{ env: string; value: unknown; fromEnv: boolean }>;
    expect(rows.map((row) => row.env)).toEqual(SETTINGS.map(([, s]) => s.env));
    expect(rows.find((row) => row.env === 'HERALD_WORKERS')).toMatchObject({ value: 3, fromEnv: true });
    expect(r.stdout).not.toContain('cli-key-0123');
  });

  it('exits non-zero naming every bad variable', async () => {
    const r = await herald(['config'], { HERALD_PORT: 'eighty', REDIS_URL: 'http://x' });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('REDIS_URL must start with redis:// or rediss://');
    expect(r.stderr).toContain('HERALD_PORT must be an integer from 0 to 65535');
  });
});
