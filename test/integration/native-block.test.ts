import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClickHouse } from '../../src/clickhouse/client.js';
import { EVENT_COLUMNS, EventBlockWriter } from '../../src/sink/native-block.js';
import { packStrings } from '../../src/domain/packed-ids.js';
import { createNamespace, type Namespace } from '../helpers/herald.js';

describe('Native event blocks into the real message_events (sink/native-block.ts)', () => {
  let ns: Namespace;
  let ch: ClickHouse;
  beforeAll(async () => {
    ns = await createNamespace();
    ch = new ClickHouse({ url: ns.config.clickhouseUrl, database: ns.config.clickhouseDb });
  });
  afterAll(async () => {
    await ch?.close();
    await ns?.drop();
  });

  it('declares every column exactly as the migrated table has it', async () => {
    const cols = await ch.rows<{ name: string; type: string }>(
      `SELECT name, type FROM system.columns WHERE database = '${ns.config.clickhouseDb}' AND table = 'message_events'`,
    );
    // by name (18.16 has no system.columns.position), whitespace aside (versions may print arguments differently)
    const norm = (t: string): string => t.replace(/\s+/g, '');
    const byName = (list: ReadonlyArray<readonly [string, string]>): Array<[string, string]> =>
      list.map(([n, t]): [string, string] => [n, norm(t)]).sort();
    expect(byName(cols.map((c) => [c.name, c.type]))).toEqual(byName(EVENT_COLUMNS));
  });

  it('stores what was written: failures, reads, segments, sub-batch ids, non-ASCII and long ids, and only the chosen ranges', async () => {
    const w = new EventBlockWriter(4, 77n);
    const long = 'é'.repeat(300);
    const m0 = w.mark();
    w.addOutcomes(5, packStrings(['u1', 'ü2', long]), 3, new Map([[1, 'HTTP 422: nope']]), 1_700_000_000, 'delivered', ['FR', null, 'DE']);
    const m1 = w.mark();
    w.setBatch(78n);
    w.add(5, 'reader', 'read', 1_700_000_100, '', 1_700_000_000, 'FR');
    const m2 = w.mark();
    w.setBatch(79n);
    w.addOutcomes(5, packStrings(['dropped']), 1, new Map(), 1_700_000_200, 'aborted');
    const m3 = w.mark();
    await ch.insertRaw(
      'message_events',
      'Native',
      w.finish([
        { start: m0, end: m1 },
        { start: m2, end: m3 },
      ]),
    );
    await ch.insertRaw('message_events', 'Native', w.finish([{ start: m1, end: m2 }]));
    const rows = await ch.rows<Record<string, string | number>>(
      'SELECT campaign_id, user_id, toString(kind) AS kind, toUnixTimestamp(at) AS at, error, toString(batch) AS batch, ' +
        'toUnixTimestamp(delivered_at) AS delivered_at, segment FROM message_events ORDER BY batch, user_id',
    );
    expect(
      rows.map((r) => [Number(r.campaign_id), r.user_id, r.kind, Number(r.at), r.error, r.batch, Number(r.delivered_at), r.segment]),
    ).toEqual([
      [5, 'u1', 'delivered', 1_700_000_000, '', '77', 0, 'FR'],
      [5, long, 'delivered', 1_700_000_000, '', '77', 0, 'DE'],
      [5, 'ü2', 'failed', 1_700_000_000, 'HTTP 422: nope', '77', 0, ''],
      [5, 'reader', 'read', 1_700_000_100, '', '78', 1_700_000_000, 'FR'],
      [5, 'dropped', 'aborted', 1_700_000_200, '', '79', 0, ''],
    ]);
  });
});
