import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createDb, type Db } from '../../src/store/db.js';
import { CopyOut } from '../../src/store/copy-out.js';

describe('COPY OUT into one buffer (store/copy-out.ts)', () => {
  let db: Db;
  beforeAll(() => {
    db = createDb(inject('services').databaseUrl, 2);
  });
  afterAll(async () => {
    await db?.end();
  });

  async function copy(sql: string): Promise<Buffer> {
    const client = await db.connect();
    try {
      const c = new CopyOut(sql);
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
});
