/**
 * Audiences. Their recipients come in through import jobs (import-repo.ts) and live in a partition per
 * audience (recipient-partitions.ts), created by the audience's first import.
 */
import { wrapPgError, type Db } from './db.js';

export interface Audience {
  id: number;
  name: string;
  createdAt: Date;
}

export class AudienceRepo {
  constructor(private readonly db: Db) {}

  async create(name: string): Promise<Audience> {
    try {
      const r = await this.db.query<{ id: number; name: string; created_at: Date }>(
        'INSERT INTO audiences (name) VALUES ($1) RETURNING id, name, created_at',
        [name],
      );
      const row = r.rows[0]!;
      return { id: row.id, name: row.name, createdAt: row.created_at };
    } catch (err) {
      throw wrapPgError(err, 'create audience');
    }
  }
}
