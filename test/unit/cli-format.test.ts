import { describe, expect, it } from 'vitest';
import { importFileKind } from '../../src/cli/audience-commands.js';
import { campaignBody } from '../../src/cli/campaign-commands.js';
import { apiErrorMessage } from '../../src/cli/client.js';
import { bytes, duration, EXIT, importSummary, watchExitCode, watchLine } from '../../src/cli/format.js';

describe('command line output', () => {
  it('exit codes of campaign watch, one per outcome', () => {
    expect(watchExitCode('completed', 0)).toBe(EXIT.ok);
    expect(watchExitCode('completed', 2)).toBe(3);
    expect(watchExitCode('cancelled', 0)).toBe(4);
    expect(watchExitCode('failed', 0)).toBe(5);
    expect(new Set(Object.values(EXIT)).size).toBe(Object.keys(EXIT).length);
  });

  it('durations, sizes', () => {
    expect([duration(0), duration(42.4), duration(185), duration(7620), duration(null), duration(-1)]).toEqual([
      '0s',
      '42s',
      '3m05s',
      '2h07m',
      '-',
      '-',
    ]);
    expect([bytes(512), bytes(2048), bytes(5 * 1024 * 1024), bytes(3.5 * 1024 ** 3)]).toEqual(['512 B', '2.00 kB', '5.00 MB', '3.50 GB']);
  });

  it("the API's error body as one message: status, code, error, the field or every field, a 409's status", () => {
    expect(
      apiErrorMessage('GET', '/v1/x', 401, { error: 'missing or invalid bearer key', code: 'UNAUTHORIZED', field: 'authorization' }),
    ).toBe('GET /v1/x: 401 UNAUTHORIZED: missing or invalid bearer key (authorization)');
    expect(
      apiErrorMessage('POST', '/v1/campaigns', 400, {
        error: 'invalid input',
        code: 'BAD_REQUEST',
        field: 'name',
        fields: [
          { field: 'name', error: 'is required' },
          { field: 'content', error: 'is required' },
        ],
      }),
    ).toBe('POST /v1/campaigns: 400 BAD_REQUEST: invalid input\n  name: is required\n  content: is required');
    expect(apiErrorMessage('POST', '/v1/campaigns/1/pause', 409, { error: 'cannot pause', code: 'CONFLICT', status: 'paused' })).toBe(
      'POST /v1/campaigns/1/pause: 409 CONFLICT: cannot pause [campaign is paused]',
    );
    expect(apiErrorMessage('GET', '/x', 502, 'Bad Gateway')).toBe('GET /x: 502: Bad Gateway');
  });

  it('file kinds by name, --format over the name, a name that says nothing refused', () => {
    expect(importFileKind('a/users.csv.gz')).toEqual({ format: 'csv', gzip: true });
    expect(importFileKind('users.NDJSON')).toEqual({ format: 'ndjson', gzip: false });
    expect(importFileKind('users.jsonl.gz')).toEqual({ format: 'ndjson', gzip: true });
    expect(importFileKind('dump.gz', 'csv')).toEqual({ format: 'csv', gzip: true });
    expect(() => importFileKind('users.txt')).toThrow(/--format csv or --format ndjson/);
  });

  it("a campaign body: --file's fields, each flag over them; the null channel unless one is named", () => {
    const file = {
      name: 'f',
      audience_id: 1,
      channel: { type: 'webhook', url: 'http://a/' },
      content: { title: 'T', body: 'B', data: { k: 'v' } },
    };
    expect(campaignBody(file, { name: 'n', body: 'B2', rateLimit: 10, tracking: true })).toEqual({
      ...file,
      name: 'n',
      rate_limit: 10,
      content: { title: 'T', body: 'B2', data: { k: 'v' } },
    });
    expect(campaignBody(file, { webhookUrl: 'http://b/', tracking: false }).channel).toEqual({
      type: 'webhook',
      url: 'http://b/',
      tracking: false,
    });
    expect(campaignBody({}, { audience: 3, title: 't', body: 'b', segment: 4 })).toEqual({
      audience_id: 3,
      segment_id: 4,
      channel: { type: 'null' },
      content: { title: 't', body: 'b' },
    });
  });

  it('an import summary with the first rejected lines, and a plain progress line', () => {
    const rejected = Array.from({ length: 12 }, (_, i) => ({ line: i + 2, error: 'user_id: required' }));
    const s = importSummary({
      id: 9,
      status: 'completed',
      imported: 1000,
      duplicates: 2,
      rejected_count: 40,
      total: 1042,
      rejected,
      same_as: null,
    });
    expect(s.split('\n')).toEqual([
      'import 9 completed: 1,000 imported, 2 duplicates, 40 rejected (1,042 lines)',
      ...rejected.slice(0, 10).map((r) => `  line ${r.line}: user_id: required`),
      '  … and 30 more rejected lines',
    ]);
    expect(importSummary({ id: 3, status: 'failed', error: 'the client went away' })).toBe('import 3 failed: the client went away');
    expect(
      watchLine({
        campaign_id: 5,
        status: 'sending',
        total: 1000,
        sent: 250,
        delivered: 240,
        failed: 10,
        skipped: 0,
        suppressed: 0,
        capped: 0,
        aborted: 0,
        read: 3,
        rate_per_s: 125.5,
        eta_s: 6,
      }),
    ).toBe('campaign 5 sending: 250/1,000 (25.0%) delivered 240 failed 10 read 3 | 126 msg/s | ETA 6s');
  });
});
