import { describe, expect, it } from 'vitest';
import { parseId, validateCreateCampaign, validateListCampaigns } from '../../src/domain/campaign-input.js';
import { copyLine, fastCopyLine, parseNdjsonLine, validateRecipient } from '../../src/domain/recipient-line.js';
import { csvToCopy, ndjsonToCopy, type ImportReport } from '../../src/import/recipient-import.js';
import { Readable } from 'node:stream';
import type { HeraldError } from '../../src/errors.js';
import { loadConfig, requireApiKeys } from '../../src/config.js';

function fieldsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    const e = err as HeraldError;
    return (e.details.fields as Array<{ field: string }> | undefined)?.map((f) => f.field) ?? [e.details.field as string];
  }
  throw new Error('no error');
}

describe('campaign input', () => {
  const good = { name: 'n', audience_id: 3, channel: { type: 'webhook', url: 'https://x.test/h' }, content: { title: 't', body: 'b' } };

  it('accepts a full command', () => {
    const c = validateCreateCampaign({ ...good, chunk_size: 250, schedule_at: '2030-01-01T00:00:00Z' });
    expect(c).toMatchObject({ name: 'n', audienceId: 3, channel: { type: 'webhook', url: 'https://x.test/h' }, chunkSize: 250 });
    expect(c.scheduleAt?.toISOString()).toBe('2030-01-01T00:00:00.000Z');
  });

  it('names every bad field', () => {
    expect(fieldsOf(() => validateCreateCampaign(null))).toEqual(['body']);
    expect(fieldsOf(() => validateCreateCampaign({}))).toEqual(['name', 'audience_id', 'channel', 'content']);
    expect(fieldsOf(() => validateCreateCampaign({ ...good, channel: { type: 'sms' } }))).toEqual(['channel.type']);
    expect(fieldsOf(() => validateCreateCampaign({ ...good, channel: { type: 'webhook', url: 'ftp://x' } }))).toEqual(['channel.url']);
    expect(fieldsOf(() => validateCreateCampaign({ ...good, channel: { ...good.channel, tracking: 1 } }))).toEqual(['channel.tracking']);
    expect(validateCreateCampaign({ ...good, channel: { ...good.channel, tracking: false } }).channel).toEqual({
      ...good.channel,
      tracking: false,
    });
    for (const concurrency of [0, 1.5, '8', 1025, null])
      expect(fieldsOf(() => validateCreateCampaign({ ...good, channel: { ...good.channel, concurrency } }))).toEqual([
        'channel.concurrency',
      ]);
    for (const compress of ['yes', 1, null])
      expect(fieldsOf(() => validateCreateCampaign({ ...good, channel: { ...good.channel, compress } }))).toEqual(['channel.compress']);
    expect(validateCreateCampaign({ ...good, channel: { ...good.channel, concurrency: 3, compress: true } }).channel).toEqual({
      ...good.channel,
      concurrency: 3,
      compress: true,
    });
    expect(fieldsOf(() => validateCreateCampaign({ ...good, content: { title: 't' }, schedule_at: 'soon' }))).toEqual([
      'content.body',
      'schedule_at',
    ]);
    expect(fieldsOf(() => validateCreateCampaign({ ...good, chunk_size: 100_001 }))).toEqual(['chunk_size']);
  });

  it('parses ids and list queries', () => {
    expect(parseId('12', 'id')).toBe(12);
    expect(fieldsOf(() => parseId('1e3', 'id'))).toEqual(['id']);
    expect(fieldsOf(() => parseId('0', 'id'))).toEqual(['id']);
    expect(validateListCampaigns(new URLSearchParams('status=sending&limit=10&before=99'))).toEqual({
      status: 'sending',
      limit: 10,
      before: 99,
    });
    expect(fieldsOf(() => validateListCampaigns(new URLSearchParams('limit=501')))).toEqual(['limit']);
  });
});

describe('recipient lines', () => {
  it('validates and names the field', () => {
    expect(parseNdjsonLine('{"user_id":"u1","address":"a","attrs":{"c":"FR"}}')).toEqual({
      ok: true,
      row: { userId: 'u1', address: 'a', attrs: '{"c":"FR"}' },
    });
    expect(parseNdjsonLine('{"user_id":42}')).toMatchObject({ ok: true, row: { userId: '42' } });
    expect(parseNdjsonLine('[1]')).toEqual({ ok: false, error: 'line: must be a JSON object' });
    expect(parseNdjsonLine('{')).toEqual({ ok: false, error: 'line: is not valid JSON' });
    expect(validateRecipient('x'.repeat(257), null, null)).toMatchObject({ ok: false, error: expect.stringMatching(/^user_id/) });
    expect(validateRecipient('u', 5, null)).toEqual({ ok: false, error: 'address: must be a string' });
    expect(validateRecipient('u', null, { s: 'a\u0000b' })).toEqual({ ok: false, error: 'attrs: must not contain NUL' });
  });

  it('escapes COPY text so values cannot break rows', () => {
    expect(copyLine(3, { userId: 'a\tb', address: null, attrs: '{"k":"x\\\\y"}' })).toBe('3\ta\\tb\t\\N\t{"k":"x\\\\\\\\y"}\n');
    expect(copyLine(1, { userId: 'l\nr\\', address: 'c\r', attrs: null })).toBe('1\tl\\nr\\\\\tc\\r\t\\N\n');
  });

  // the byte-level fast path must give exactly what the general path gives, or step aside
  const fast = [
    '{"user_id":"u1"}',
    '{"user_id":"u-2","address":"a@b.c"}',
    '{"user_id":"x","address":""}',
    `{"user_id":"${'x'.repeat(256)}","address":"${'a'.repeat(2048)}"}`,
    '{"user_id":"u","address":"a","attrs":{"c":"FR"}}',
    '{"user_id":"u","attrs":{"n":[1,-2.5,true,null],"s":"a\\\\b\\"c","o":{}}}',
  ];
  const general = [
    '{"user_id":"ü"}', // non-ASCII
    '{"user_id":"a\\tb"}', // an escape
    '{"user_id": "spaced"}',
    '{"address":"a","user_id":"b"}',
    '{"user_id":42}',
    '{"user_id":"u","address":null}',
    '{"user_id":""}',
    `{"user_id":"${'x'.repeat(257)}"}`,
    `{"user_id":"u","address":"${'a'.repeat(2049)}"}`,
    '{"user_id":"u"} ',
    '{"user_id":"u"',
    '{"user_id":"u\tv"}', // a raw tab: not valid JSON
    'nonsense',
  ];

  it('takes the simple lines on bytes, with the same COPY text as the general path', () => {
    for (const [i, line] of fast.entries()) {
      const src = Buffer.from(`xx${line}yy`);
      const out = Buffer.alloc(src.length + 24);
      const end = fastCopyLine(src, 2, src.length - 2, 1000 + i, out, 0);
      const r = parseNdjsonLine(line);
      expect(r.ok).toBe(true);
      expect(out.toString('utf8', 0, end)).toBe(copyLine(1000 + i, (r as { row: Parameters<typeof copyLine>[1] }).row));
    }
    for (const line of general) {
      const src = Buffer.from(line);
      expect(fastCopyLine(src, 0, src.length, 1, Buffer.alloc(src.length + 24), 0), line).toBe(-1);
    }
  });

  it('turns NDJSON into the same COPY text and report however the body is cut', async () => {
    const lines = [...fast, ...general, '', '   ', '\u00a0', ...fast.map((l) => `${l}\r`)];
    const body = Buffer.from(lines.join('\n'));
    const expected: string[] = [];
    const want: ImportReport = { total: 0, accepted: 0, rejectedCount: 0, rejected: [] };
    lines.forEach((raw, i) => {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (line.trim() === '') return;
      want.total++;
      const r = parseNdjsonLine(line);
      if (r.ok) {
        want.accepted++;
        expected.push(copyLine(i + 1, r.row));
      } else {
        want.rejectedCount++;
        want.rejected.push({ line: i + 1, error: r.error });
      }
    });
    for (const size of [body.length, 1, 3, 17, 64]) {
      const chunks: Buffer[] = [];
      for (let o = 0; o < body.length; o += size) chunks.push(body.subarray(o, o + size));
      const report: ImportReport = { total: 0, accepted: 0, rejectedCount: 0, rejected: [] };
      const out: Buffer[] = [];
      for await (const b of ndjsonToCopy(Readable.from(chunks), report)) out.push(Buffer.from(b));
      expect(Buffer.concat(out).toString('utf8')).toBe(expected.join(''));
      expect(report).toEqual(want);
    }
  });
});

describe('a body parse and the event loop', () => {
  it('gives timers and I/O a turn while it parses a body already buffered (NDJSON and CSV)', async () => {
    // 400,000 lines in 64 KB chunks, all there at once: nothing for the parse to wait for
    const line = '{"user_id":"user-0000000","attrs":{"country":"DE"}}\n';
    const chunk = Buffer.from(line.repeat(Math.floor(65_536 / line.length)));
    const chunks = Array.from({ length: Math.ceil(400_000 / (65_536 / line.length)) }, () => chunk);
    const csvRow = Buffer.from('user-0000000,DE\n'.repeat(4096));
    for (const [name, parse] of [
      ['ndjson', (r: Readable, rep: ImportReport) => ndjsonToCopy(r, rep)],
      ['csv', (r: Readable, rep: ImportReport) => csvToCopy(r, rep)],
    ] as const) {
      const report: ImportReport = { total: 0, accepted: 0, rejectedCount: 0, rejected: [] };
      const body = name === 'ndjson' ? chunks : [Buffer.from('user_id,country\n'), ...Array.from({ length: 25 }, () => csvRow)];
      const started = performance.now();
      // a timer due at once, and how long the loop took to run it
      let ranAfter = Number.NaN;
      setTimeout(() => (ranAfter = performance.now() - started), 0);
      let parts = 0;
      for await (const b of parse(Readable.from(body), report)) parts += b.length > 0 ? 1 : 0;
      const took = performance.now() - started;
      expect(parts).toBeGreaterThan(1);
      expect(report.accepted).toBe(report.total);
      // the timer ran before the parse ended: the loop was not held for all of it (without the turns,
      // nothing in the parse leaves the microtask queue, and the timer runs after)
      expect(Number.isNaN(ranAfter), name).toBe(false);
      expect(ranAfter, name).toBeLessThan(took);
    }
  });
});

describe('config', () => {
  it('resolves defaults and environment, and freezes', () => {
    const c = loadConfig({ HERALD_PORT: '9090', HERALD_WORKERS: '4', HERALD_API_KEYS: 'key-one-123, key-two-456' });
    expect(c.port).toBe(9090);
    expect(c.workers).toBe(4);
    expect(c.apiKeys).toEqual(['key-one-123', 'key-two-456']);
    expect(c.chunkSize).toBe(500);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('fails at boot naming every bad variable', () => {
    try {
      loadConfig({ HERALD_PORT: 'eighty', REDIS_URL: 'http://x', HERALD_CHUNK_SIZE: '0', CLICKHOUSE_DB: 'a-b' });
      throw new Error('accepted');
    } catch (err) {
      const fields = ((err as HeraldError).details.fields as Array<{ field: string }>).map((f) => f.field);
      expect(fields).toEqual(['REDIS_URL', 'HERALD_PORT', 'HERALD_CHUNK_SIZE', 'CLICKHOUSE_DB']);
    }
    expect(() => requireApiKeys(loadConfig({}))).toThrow(/HERALD_API_KEYS/);
    expect(() => loadConfig({ HERALD_API_KEYS: 'short' })).toThrow(/HERALD_API_KEYS/);
  });
});

describe('webhook Retry-After', () => {
  it('reads seconds and HTTP dates, capped at a minute', async () => {
    const { retryAfterMs } = await import('../../src/channel/webhook-channel.js');
    expect(retryAfterMs('2')).toBe(2000);
    expect(retryAfterMs(undefined)).toBeNull();
    expect(retryAfterMs('soon')).toBeNull();
    expect(retryAfterMs('3600')).toBe(60_000);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(retryAfterMs('Thu, 01 Jan 2026 00:00:05 GMT', now)).toBe(5000);
  });

  it('validates PATCH bodies', async () => {
    const { validateUpdateCampaign } = await import('../../src/domain/campaign-input.js');
    expect(validateUpdateCampaign({ rate_limit: 100 })).toEqual({ rateLimit: 100 });
    expect(validateUpdateCampaign({ rate_limit: null })).toEqual({ rateLimit: null });
    expect(fieldsOf(() => validateUpdateCampaign({}))).toEqual(['body']);
    expect(fieldsOf(() => validateUpdateCampaign({ rate_limit: 1.5, status: 'x' }))).toEqual(['status', 'rate_limit']);
    expect(validateUpdateCampaign({ schedule_at: '2030-01-01T00:00:00Z' })).toEqual({ scheduleAt: new Date('2030-01-01T00:00:00Z') });
    expect(validateUpdateCampaign({ schedule_at: null })).toEqual({ scheduleAt: null });
    expect(fieldsOf(() => validateUpdateCampaign({ schedule_at: 'next tuesday' }))).toEqual(['schedule_at']);
    expect(fieldsOf(() => validateUpdateCampaign({ schedule_at: 5 }))).toEqual(['schedule_at']);
  });
});
