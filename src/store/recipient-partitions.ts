/**
 * Where an audience's recipients live (schemas/postgres/0009_recipients_by_audience.sql): in a
 * partition of its own, `recipients_a<id>`; in the DEFAULT partition `recipients_shared` (audiences
 * that had recipients before partitioning, up to the id its CHECK names); or nowhere yet.
 */
import type pg from 'pg';

export type AudienceHome = 'own' | 'shared' | 'none';

/** The partition of `audienceId` (ids are integers from a sequence, so the name needs no quoting). */
export function partitionName(audienceId: number): string {
  return `recipients_a${Math.trunc(audienceId)}`;
}

export async function audienceHome(client: pg.PoolClient, audienceId: number): Promise<AudienceHome> {
  const r = await client.query<{ own: string | null; shared: string | null }>(
    `SELECT to_regclass($1) AS own,
            (SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c WHERE c.conname = 'recipients_shared_audiences') AS shared`,
    [partitionName(audienceId)],
  );
  const row = r.rows[0];
  if (row?.own != null) return 'own';
  const top = /audience_id <= (\d+)/.exec(row?.shared ?? '');
  return top !== null && audienceId <= Number(top[1]) ? 'shared' : 'none';
}

/** An empty partition for an audience that has none (`audienceHome` says 'none'). */
export async function createPartition(client: pg.PoolClient, audienceId: number): Promise<void> {
  await client.query(`CREATE TABLE ${partitionName(audienceId)} PARTITION OF recipients FOR VALUES IN (${Math.trunc(audienceId)})`);
}
