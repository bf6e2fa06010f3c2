/**
 * Audiences. Their recipients come in through import jobs (import-repo.ts) and live in a partition per
 * audience (recipient-partitions.ts), created by the audience's first import.
 */
import { wrapPgError, type Db } from './db.js';
import { countAudience } from './recipient-runs.js';

export interface Audience {
  id: number;
  name: string;
  createdAt: Date;
}

/** An audience in a list: what its completed imports brought, without counting its recipients. */
export interface AudienceSummary extends Audience {
  imports: number;
  imported: number;
  lastImportAt: Date | null;
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

  /** Audiences, newest first, a keyset page by id, each with its completed imports' totals. */
  async list(q: { limit: number; before: number | null }): Promise<{ items: AudienceSummary[]; nextBefore: number | null }> {
    try {
      const r = await this.db.query<{ id: number; name: string; created_at: Date; imports: number; imported: number; last: Date | null }>(
        `SELECT a.id, a.name, a.created_at,
                count(i.id)::int AS imports, coalesce(sum(i.imported), 0)::bigint AS imported, max(i.finished_at) AS last
         FROM (SELECT * FROM audiences WHERE $1::bigint IS NULL OR id < $1 ORDER BY id DESC LIMIT $2) a
         LEFT JOIN imports i ON i.audience_id = a.id AND i.status = 'completed'
         GROUP BY a.id, a.name, a.created_at ORDER BY a.id DESC`,
        [q.before, q.limit + 1],
      );
      const rows = r.rows.slice(0, q.limit);
      return {
        items: rows.map((row) => ({
          id: row.id,
          name: row.name,
          createdAt: row.created_at,
          imports: row.imports,
          imported: Number(row.imported),
          lastImportAt: row.last,
        })),
        nextBefore: r.rows.length > q.limit ? rows[rows.length - 1]!.id : null,
      };
    } catch (err) {
      throw wrapPgError(err, 'list audiences');
    }
  }

  /**
   * One audience and its exact number of recipients: its runs of ids by arithmetic, the ids between them
   * counted (recipient-runs.ts); an audience whose imports left no run is counted whole, as before.
   */
  async get(id: number): Promise<(Audience & { recipients: number }) | null> {
    try {
      const r = await this.db.query<{ id: number; name: string; created_at: Date }>(
        'SELECT id, name, created_at FROM audiences WHERE id = $1',
        [id],
      );
      const row = r.rows[0];
      if (row === undefined) return null;
      // by its runs of ids, not count(*): a GET of a 10M audience read all 10M (over a second)
      return { id: row.id, name: row.name, createdAt: row.created_at, recipients: await countAudience(this.db, id) };
    } catch (err) {
      throw wrapPgError(err, 'get audience');
    }
  }
}
