import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDb, type Db } from '../../src/store/db.js';
import { CopyOut, type CopySink } from '../../src/store/copy-out.js';
import { BufferSink } from '../helpers/buffer-sink.js';
import { RecipientRowDecoder } from '../../src/store/copy-binary.js';
import { unpackStrings } from '../../src/domain/packed-ids.js';

describe('COPY OUT (store/copy-out.ts)', () => {
  let db: Db;
  beforeAll(() => {
    db = createDb(inject('services').databaseUrl, 2);
  });
  afterAll(async () => {
    await db?.end();
  });

  const copy = (sql: string): Promise<Buffer> => copyInto(sql, new BufferSink());

  async function copyInto<T>(sql: string, sink: CopySink<T>): Promise<T> {
    const client = await db.connect();
    try {
      const c = new CopyOut(sql, sink);
      void client.query(c as never);
      return await c.done;
    } finally {
      client.release();
    }
  }

  it('returns every row of a large COPY exactly, split across many socket reads', async () => {
    const text = await copy(`COPY (SELECT i, 'user-' || i, repeat('x', i % 300) FROM generate_series(1, 200000) i) TO STDOUT`);
    const lines = text.toString().split('\n');
    expect(lines.pop()).toBe('');
    expect(lines.length).toBe(200_000);
    for (const i of [1, 299, 300, 77_777, 200_000]) expect(lines[i - 1]).toBe(`${i}\tuser-${i}\t${'x'.repeat(i % 300)}`);
    // the connection is pg's again afterwards
    expect((await db.query('SELECT 41 + 1 AS n')).rows[0].n).toBe(42);
  });

  it('rejects with the server error raised mid-COPY, and the connection goes on working', async () => {
    await expect(copy('COPY (SELECT 1 / (50000 - i) FROM generate_series(1, 100000) i) TO STDOUT')).rejects.toThrow(/division by zero/);
    await expect(copy('COPY (SELECT * FROM no_such_table) TO STDOUT')).rejects.toThrow(/no_such_table/);
    for (let i = 0; i < 4; i++) expect((await db.query('SELECT $1::int AS n', [i])).rows[0].n).toBe(i);
    expect((await copy('COPY (SELECT 7) TO STDOUT')).toString()).toBe('7\n');
    expect((await copy('COPY (SELECT 1 WHERE false) TO STDOUT')).length).toBe(0);
  });

  it('decodes binary COPY rows from the server: any user id bytes, NULLs, ids past 2^32', async () => {
    const sql =
      `COPY (SELECT i::bigint * 4294967296 + 7, CASE i % 4 WHEN 0 THEN 'tab\tnew\nline\\back' WHEN 1 THEN 'ünïcödé-' || i ` +
      `WHEN 2 THEN repeat('x', 200 + i % 300) ELSE 'user-' || i END, CASE WHEN i % 3 = 0 THEN NULL ELSE 'a' || i END ` +
      `FROM generate_series(1, 100000) i) TO STDOUT (FORMAT binary)`;
    const page = await copyInto(sql, new RecipientRowDecoder({ address: true }));
    expect(page.ids.length).toBe(100_000);
    const users = unpackStrings(page.users, 100_000);
    for (const i of [1, 2, 3, 4, 299, 77_777, 100_000]) {
      expect(page.ids[i - 1]).toBe(i * 4294967296 + 7);
      const u = [`tab\tnew\nline\\back`, `ünïcödé-${i}`, 'x'.repeat(200 + (i % 300)), `user-${i}`][i % 4];
      expect(users[i - 1]).toBe(u);
      expect(page.addresses![i - 1]).toBe(i % 3 === 0 ? null : `a${i}`);
    }
  });

  it('fails the query on rows the decoder refuses, and the connection goes on working', async () => {
    const sql = `COPY (SELECT i::bigint, CASE WHEN i = 60000 THEN '' ELSE 'u' || i END FROM generate_series(1, 100000) i) TO STDOUT (FORMAT binary)`;
    await expect(copyInto(sql, new RecipientRowDecoder())).rejects.toThrow(/recipient 60000: empty or null user_id/);
    expect((await db.query('SELECT 41 + 1 AS n')).rows[0].n).toBe(42);
  });
});
