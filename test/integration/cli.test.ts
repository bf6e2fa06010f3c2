/**
 * The command line end to end: `bin/herald` as a child process against a running Herald (HERALD_URL,
 * HERALD_API_KEY), its output read as a user or a script would, its exit codes checked; bars in a
 * pseudo-terminal (util-linux `script`), plain lines when stdout is a pipe.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY, eventually, useHerald } from '../helpers/herald.js';
import { listenLocal } from '../helpers/local-http.js';

const HERALD = fileURLToPath(new URL('../../bin/herald', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('herald (the command line)', () => {
  const ctx = useHerald();
  let dir: string;
  let env: Record<string, string>;
  let sink: Server;
  let sinkUrl: string;

  /** Runs `bin/herald args` with stdout and stderr piped (not a terminal). */
  const herald = (args: string[], extraEnv: Record<string, string> = {}): Promise<Run> =>
    new Promise((resolve) => {
      execFile(HERALD, args, { env: { ...env, ...extraEnv }, timeout: 120_000 }, (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
        resolve({ code, stdout, stderr });
      });
    });
  const json = async (args: string[]): Promise<any> => {
    const r = await herald([...args, '--json']);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout);
  };
  /** Starts `bin/herald args` in a pseudo-terminal: `script` gives it a tty and passes its exit code on. */
  const startInTerminal = (args: string[]): { output: () => string; done: Promise<Run> } => {
    const cmd = [HERALD, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const child = spawn('script', ['-qfec', cmd, '/dev/null'], { env: { ...env, TERM: 'xterm', COLUMNS: '160' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    return {
      output: () => stdout,
      done: new Promise((resolve) => child.once('exit', (code) => resolve({ code: code ?? -1, stdout, stderr }))),
    };
  };
  const inTerminal = (args: string[]): Promise<Run> => startInTerminal(args).done;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'herald-cli-'));
    env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', HERALD_URL: ctx.api.base, HERALD_API_KEY: API_KEY };
    // A webhook receiver that fails users whose id ends in 3.
    sink = createServer((req, res) => {
      let data = '';
      req.on('data', (d: Buffer) => (data += d.toString()));
      req.on('end', () => {
        const body = JSON.parse(data) as { messages: Array<{ user_id: string; idempotency_key: string }> };
        const failed = body.messages
          .filter((m) => m.user_id.endsWith('3'))
          .map((m) => ({ idempotency_key: m.idempotency_key, error: 'no such device' }));
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ failed }));
      });
    });
    sinkUrl = await listenLocal(sink);
  });
  afterAll(async () => {
    sink?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** An audience of `n` recipients `<prefix>1..<prefix>n`, imported through the CLI from an NDJSON file. */
  async function audienceOf(n: number, prefix: string): Promise<number> {
    const a = await json(['audience', 'create', `cli ${prefix}`]);
    const file = path.join(dir, `${prefix}.ndjson`);
    await writeFile(
      file,
      Array.from({ length: n }, (_, i) => `{"user_id":"${prefix}${i + 1}","address":"${prefix}${i + 1}@x.test"}`).join('\n'),
    );
    const job = await json(['audience', 'import', file, '--audience', String(a.id)]);
    expect(job).toMatchObject({ status: 'completed', imported: n, rejected_count: 0 });
    return a.id as number;
  }

  it('creates an audience and imports NDJSON with a rejected line: plain progress lines, then the counts and the line', async () => {
    const r = await herald(['audience', 'create', 'cli people']);
    expect(r.code, r.stderr).toBe(0);
    const id = Number(/audience (\d+) created: cli people/.exec(r.stdout)?.[1]);
    expect(id).toBeGreaterThan(0);
    const file = path.join(dir, 'people.ndjson');
    await writeFile(
      file,
      ['{"user_id":"p1","address":"a@x.test"}', '{"user_id":"p2"}', '{"address":"no id"}', '{"user_id":"p1"}', '{"user_id":"p4"}', ''].join(
        '\n',
      ),
    );
    const imp = await herald(['audience', 'import', file, '--audience', String(id)]);
    expect(imp.code, imp.stderr).toBe(0);
    // Not a terminal: lines, no carriage returns or escape sequences.
    expect(imp.stdout).not.toMatch(/[\r\u001b]/);
    expect(imp.stdout).toMatch(/^import (\d+ )?(receiving|merging|completed): /m);
    expect(imp.stdout).toMatch(/import \d+ completed: 3 imported, 1 duplicates, 1 rejected \(5 lines\)/);
    expect(imp.stdout).toMatch(/ {2}line 3: .*user_id/);
  });

  it('imports a gzipped CSV with a rejected line (--json), and draws a bar in a terminal', async () => {
    const a = await json(['audience', 'create', 'cli csv']);
    const rows = ['user_id,address,country'];
    for (let i = 1; i <= 20_000; i++) rows.push(i === 7 ? ',nobody@x.test,FR' : `c${i},c${i}@x.test,${i % 2 ? 'FR' : 'DE'}`);
    const file = path.join(dir, 'people.csv.gz');
    await writeFile(file, gzipSync(rows.join('\n') + '\n'));
    const job = await json(['audience', 'import', file, '--audience', String(a.id)]);
    expect(job).toMatchObject({ status: 'completed', format: 'csv', imported: 19_999, duplicates: 0, rejected_count: 1, total: 20_000 });
    expect(job.rejected[0].line).toBe(8); // the header is line 1

    const again = path.join(dir, 'more.csv.gz');
    await writeFile(again, gzipSync(['user_id,address', 'd1,d1@x.test', 'd2,d2@x.test'].join('\n') + '\n'));
    const t = await inTerminal(['audience', 'import', again, '--audience', String(a.id)]);
    expect(t.code, t.stdout).toBe(0);
    expect(t.stdout).toMatch(/[\u2588\u2591]{10,}/); // the bar's blocks
    expect(t.stdout).toMatch(/100% \| .* \| 2 rows/);
    expect(t.stdout).toMatch(/completed: 2 imported, 0 duplicates, 0 rejected/);
  });

  it('creates (flags over --file), starts and watches a null campaign to its end: exit 0 and the final counts', async () => {
    const audience = await audienceOf(3000, 'n');
    const file = path.join(dir, 'campaign.json');
    await writeFile(
      file,
      JSON.stringify({ name: 'from file', channel: { type: 'null' }, content: { title: 'T', body: 'B' }, chunk_size: 500 }),
    );
    const c = await json([
      'campaign',
      'create',
      '--file',
      file,
      '--name',
      'cli null',
      '--audience',
      String(audience),
      '--rate-limit',
      '1500',
    ]);
    expect(c.status).toBe('draft');
    const shown = await json(['campaign', 'show', String(c.id)]);
    expect(shown).toMatchObject({ name: 'cli null', audience_id: audience, chunk_size: 500, rate_limit: 1500 });

    const pv = await json(['campaign', 'preview', String(c.id), '--user', 'n2', '--user', 'n1']);
    expect(pv.previews).toEqual([
      { user_id: 'n2', title: 'T', body: 'B' },
      { user_id: 'n1', title: 'T', body: 'B' },
    ]);
    const start = await herald(['campaign', 'start', String(c.id)]);
    expect(start).toMatchObject({ code: 0, stdout: `campaign ${c.id}: sending\n` });
    const w = await herald(['campaign', 'watch', String(c.id)]);
    expect(w.code, w.stderr).toBe(0);
    expect(w.stdout).not.toMatch(/[\r\u001b]/);
    expect(w.stdout).toMatch(new RegExp(`^campaign ${c.id} (sending|completed): [0-9,]+/3,000`, 'm'));
    expect(w.stdout.trimEnd().split('\n').at(-1)).toBe(`campaign ${c.id} completed: 3,000 delivered, 0 failed, 0 read (of 3,000)`);
    // --json: a frame a line, then the campaign; a finished campaign has no frames left to show.
    const wj = await herald(['--json', 'campaign', 'watch', String(c.id)]);
    expect(wj.code).toBe(0);
    expect(JSON.parse(wj.stdout.trimEnd().split('\n').at(-1)!)).toMatchObject({ id: c.id, status: 'completed', delivered: 3000 });
    const final = await json(['campaign', 'show', String(c.id)]);
    expect(final).toMatchObject({ status: 'completed', total: 3000, delivered: 3000, failed: 0, pending: 0 });

    const list = await herald(['campaign', 'list', '--status', 'completed']);
    expect(list.stdout).toMatch(new RegExp(`^${c.id}\\s+completed\\s+3,000\\s+3,000\\s+0\\s+0\\s+0\\s+cli null$`, 'm'));

    // What happened to one recipient: delivered; and one who is not in the campaign's audience.
    const d = await json(['recipient', 'n17', '--campaign', String(c.id)]);
    expect(d).toMatchObject({ campaign_id: c.id, user_id: 'n17', outcome: 'delivered', error: null, reason: null, reads: [] });
    expect(d.attempts).toHaveLength(1);
    expect(d.attempts[0]).toMatchObject({ kind: 'delivered', error: null });
    const out = await json(['recipient', 'c5', '--campaign', String(c.id)]);
    expect(out).toMatchObject({ outcome: 'not_in_campaign', reason: `not in audience ${audience}`, attempts: [], reads: [] });
    const human = await herald(['recipient', 'n17', '--campaign', String(c.id)]);
    expect(human.stdout).toMatch(
      new RegExp(`^n17 in campaign ${c.id}: delivered\n {2}attempts\n {4}\\S+ {2}delivered\n {2}reads {3}none\n$`),
    );
  });

  it('watch exits 3 when some recipients failed; recipient shows the failure; a draft recipient is pending', async () => {
    const audience = await audienceOf(40, 'w');
    const c = await json([
      'campaign',
      'create',
      '--name',
      'cli webhook',
      '--audience',
      String(audience),
      '--webhook-url',
      sinkUrl,
      '--title',
      'Hi',
      '--body',
      '{{ recipient.user_id }}',
    ]);
    const pending = await json(['recipient', 'w3', '--campaign', String(c.id)]);
    expect(pending).toMatchObject({ outcome: 'pending', reason: 'the campaign has not started' });
    await json(['campaign', 'start', String(c.id)]);
    const w = await herald(['campaign', 'watch', String(c.id)]);
    expect(w.code).toBe(3);
    expect(w.stdout).toContain(`campaign ${c.id} completed: 36 delivered, 4 failed`);
    const f = await json(['recipient', 'w13', '--campaign', String(c.id)]);
    expect(f).toMatchObject({ outcome: 'failed', error: 'no such device', attempts: [{ kind: 'failed', error: 'no such device' }] });
  });

  it('pause and resume; watch in a terminal draws a bar; a cancelled campaign exits 4', async () => {
    const audience = await audienceOf(600, 'r');
    const c = await json([
      'campaign',
      'create',
      '--name',
      'cli slow',
      '--audience',
      String(audience),
      '--rate-limit',
      '20',
      '--chunk-size',
      '20',
      '--title',
      't',
      '--body',
      'b',
    ]);
    await json(['campaign', 'start', String(c.id)]);
    const paused = await herald(['campaign', 'pause', String(c.id)]);
    expect(paused).toMatchObject({ code: 0, stdout: `campaign ${c.id}: paused\n` });
    const again = await herald(['campaign', 'pause', String(c.id)]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/409 .*\[campaign is paused\]/);
    expect((await json(['campaign', 'resume', String(c.id)])).status).toBe('sending');

    // Cancelled once the bar has shown some deliveries (600 recipients at 20/s take 30 s).
    const watching = startInTerminal(['campaign', 'watch', String(c.id)]);
    await eventually(
      async () => watching.output(),
      (out) => /\| sending \| delivered [1-9]/.test(out),
      60_000,
    );
    expect((await json(['campaign', 'cancel', String(c.id)])).status).toBe('cancelled');
    const t = await watching.done;
    expect(t.code, t.stdout).toBe(4);
    expect(t.stdout).toMatch(
      /[\u2588\u2591]{10,}.*\| sending \| delivered [0-9,]+ failed 0 read 0 \| [0-9.,]+ msg\/s \| ETA ([0-9]+s|[0-9]+m[0-9]+s|-)/,
    );
    expect(t.stdout).toMatch(new RegExp(`campaign ${c.id} cancelled: [0-9,]+ delivered, 0 failed, [0-9,]+ aborted`));
    // Once the closer has written the aborted rows, a recipient never sent to is `aborted`.
    await eventually(
      () => ctx.api.call('GET', `/v1/campaigns/${c.id}`),
      (r) => r.body.aborts_recorded_at !== null,
    );
    const rows = await ctx.herald.ch.rows<{ user_id: string }>(
      `SELECT user_id FROM message_events WHERE campaign_id = ${c.id} AND kind = 'aborted' ORDER BY user_id LIMIT 1`,
    );
    expect(rows).toHaveLength(1);
    const story = await json(['recipient', rows[0]!.user_id, '--campaign', String(c.id)]);
    expect(story).toMatchObject({
      outcome: 'aborted',
      error: null,
      reason: 'the campaign ended (cancelled or failed) before sending to it',
      attempts: [{ kind: 'aborted' }],
    });
  });

  it('creates, lists and revokes scoped keys; a read key is refused a start naming the scope; the audit shows it all', async () => {
    const made = await herald(['keys', 'create', 'reader', '--scopes', 'read', '--json']);
    expect(made.code).toBe(0);
    const key = JSON.parse(made.stdout);
    expect(key).toMatchObject({ name: 'reader', scopes: ['read'] });
    expect(key.key).toMatch(/^hk_/);
    const human = await herald(['keys', 'create', 'sender', '--scopes', 'read,send']);
    expect(human.stdout).toContain('Shown once');
    expect((await herald(['keys', 'create', 'x', '--scopes', 'read,root'])).code).toBe(2);

    expect((await herald(['campaign', 'list'], { HERALD_API_KEY: key.key })).code).toBe(0);
    const id = (
      await ctx.api.call('POST', '/v1/campaigns', {
        name: 'scoped',
        audience_id: (await ctx.api.call('POST', '/v1/audiences', { name: 'k' })).body.id,
        channel: { type: 'null' },
        content: { title: 't', body: 'b' },
      })
    ).body.id;
    const refused = await herald(['campaign', 'start', String(id)], { HERALD_API_KEY: key.key });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('403 FORBIDDEN');
    expect(refused.stderr).toContain('"send"');

    const list = await herald(['keys', 'list']);
    expect(list.stdout).toMatch(new RegExp(`${key.id}\\s+reader\\s+read`));
    const revoked = await herald(['keys', 'revoke', key.id, '--json']);
    expect(revoked.code).toBe(0);
    expect(JSON.parse(revoked.stdout).revoked_at).not.toBeNull();
    // Revoked in this process at once.
    expect((await herald(['campaign', 'list'], { HERALD_API_KEY: key.key })).stderr).toContain('401 UNAUTHORIZED');

    const audit = await herald(['audit', '--limit', '5', '--json']);
    const actions = JSON.parse(audit.stdout).items.map((a: { action: string }) => a.action);
    expect(actions).toContain('key.revoke');
    expect(actions).toContain('key.create');
    const table = await herald(['audit', '--campaign', String(id)]);
    expect(table.stdout).toContain('campaign.create');
    expect(table.stdout).not.toContain('campaign.start'); // refused: nothing recorded
  });

  it('every error ends non-zero with a clear message', async () => {
    const badKey = await herald(['campaign', 'list'], { HERALD_API_KEY: 'not-the-key-0000' });
    expect(badKey.code).toBe(1);
    expect(badKey.stderr).toBe('herald: GET /v1/campaigns: 401 UNAUTHORIZED: missing, unknown or revoked API key (authorization)\n');
    const missing = await herald(['campaign', 'show', '987654']);
    expect(missing).toMatchObject({ code: 1, stderr: 'herald: GET /v1/campaigns/987654: 404 NOT_FOUND: campaign 987654 not found\n' });
    const recipient404 = await herald(['recipient', 'x', '--campaign', '987654']);
    expect(recipient404.code).toBe(1);
    expect(recipient404.stderr).toContain('404 NOT_FOUND: campaign 987654 not found');
    const bad = await herald(['campaign', 'create', '--name', 'x', '--audience', '1']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/400 BAD_REQUEST: .*content/);
    const flags = await herald(['campaign', 'show', 'abc']);
    expect(flags.code).toBe(2);
    expect(flags.stderr).toContain("error: command-argument value 'abc' is invalid for argument 'id'. must be a positive integer");
    const unknown = await herald(['campaign', 'frobnicate']);
    expect(unknown.code).toBe(2);
    const down = await herald(['campaign', 'list'], { HERALD_URL: 'http://127.0.0.1:9' });
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('cannot reach Herald at http://127.0.0.1:9: connection refused');
    const noFile = await herald(['audience', 'import', path.join(dir, 'nope.ndjson'), '--audience', '1']);
    expect(noFile.code).toBe(2);
    expect(noFile.stderr).toContain('nope.ndjson: ENOENT');
  });
});

describe('herald worker', () => {
  const ctx = useHerald({ workers: 0 });

  it('runs the dispatcher, with /healthz and no API', async () => {
    const c = ctx.ns.config;
    const child = spawn(HERALD, ['worker'], {
      env: {
        PATH: process.env.PATH ?? '',
        DATABASE_URL: c.databaseUrl,
        REDIS_URL: c.redisUrl,
        CLICKHOUSE_URL: c.clickhouseUrl,
        CLICKHOUSE_DB: c.clickhouseDb,
        HERALD_REDIS_PREFIX: c.redisPrefix,
        HERALD_PORT: '0',
        HERALD_HOST: '127.0.0.1',
        HERALD_LOG_LEVEL: 'info',
        // it signs the links the API process verifies: the same keys, so the same secret
        HERALD_API_KEYS: c.apiKeys.join(','),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let buf = '';
        child.stdout.on('data', (d: Buffer) => {
          buf += d.toString();
          const m = /"port":(\d+),"msg":"Herald worker listening/.exec(buf);
          if (m) resolve(Number(m[1]));
        });
        child.once('exit', (code) => reject(new Error(`worker exited with ${code}: ${buf}`)));
      });
      const health = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ status: 'ok' });
      expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(200);
      const api = await fetch(`http://127.0.0.1:${port}/v1/campaigns`, { headers: { authorization: `Bearer ${API_KEY}` } });
      expect(api.status).toBe(404);
      // It dispatches: the API process here has no dispatcher (HERALD_WORKERS=0), so the worker sends it all.
      const audience = await ctx.api.audience(200, 'k');
      const id = await ctx.api.nullCampaign(audience);
      await ctx.api.call('POST', `/v1/campaigns/${id}/start`);
      expect(await ctx.api.waitForStatus(id, ['completed'])).toMatchObject({ delivered: 200 });
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });
});
