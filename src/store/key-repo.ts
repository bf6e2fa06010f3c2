/**
 * Stored API keys (schemas/postgres/0013_keys_audit.sql): only the hash of each secret. Making and revoking
 * a key record it in the audit within the same transaction.
 */
import type { AuditRecord } from '../domain/audit.js';
import type { Scope } from '../domain/api-keys.js';
import { HeraldError } from '../errors.js';
import { recordAudit } from './audit-repo.js';
import { inTransaction, wrapPgError, type Db } from './db.js';

export interface StoredKey {
  id: string;
  name: string;
  scopes: Scope[];
  createdAt: Date;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

/** What verifying a bearer needs: the hash, and whether the key still counts. */
export interface KeyCheckRow {
  id: string;
  name: string;
  scopes: Scope[];
  secretSha256: Buffer;
  revoked: boolean;
}

const VIEW = `id, name, scopes, created_at AS "createdAt", revoked_at AS "revokedAt", last_used_at AS "lastUsedAt"`;

export class KeyRepo {
  constructor(private readonly db: Db) {}

  async create(k: { id: string; name: string; scopes: readonly Scope[]; sha256: Buffer }, audit: AuditRecord): Promise<StoredKey> {
    return inTransaction(this.db, 'create key', async (client) => {
      const r = await client.query<StoredKey>(
        `INSERT INTO api_keys (id, name, scopes, secret_sha256) VALUES ($1, $2, $3, $4) RETURNING ${VIEW}`,
        [k.id, k.name, k.scopes, k.sha256],
      );
      await recordAudit(client, audit);
      return r.rows[0]!;
    });
  }

  async list(): Promise<StoredKey[]> {
    try {
      return (await this.db.query<StoredKey>(`SELECT ${VIEW} FROM api_keys ORDER BY created_at DESC, id`)).rows;
    } catch (err) {
      throw wrapPgError(err, 'list keys');
    }
  }

  /** The row a bearer with this id is checked against; null when there is none. */
  async forCheck(id: string): Promise<KeyCheckRow | null> {
    try {
      const r = await this.db.query<KeyCheckRow>(
        `SELECT id, name, scopes, secret_sha256 AS "secretSha256", revoked_at IS NOT NULL AS revoked FROM api_keys WHERE id = $1`,
        [id],
      );
      return r.rows[0] ?? null;
    } catch (err) {
      throw wrapPgError(err, 'look up key');
    }
  }

  /**
   * Revokes key `id` (404 when there is none); a key already revoked keeps its time and records nothing.
   * `audit` gets the key's name.
   */
  async revoke(id: string, audit: (key: StoredKey) => AuditRecord): Promise<StoredKey> {
    return inTransaction(this.db, 'revoke key', async (client) => {
      const r = await client.query<StoredKey>(
        `UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING ${VIEW}`,
        [id],
      );
      const revoked = r.rows[0];
      if (revoked !== undefined) {
        await recordAudit(client, audit(revoked));
        return revoked;
      }
      const existing = await client.query<StoredKey>(`SELECT ${VIEW} FROM api_keys WHERE id = $1`, [id]);
      if (existing.rows[0] === undefined) throw new HeraldError('NOT_FOUND', `key ${id} not found`, { field: 'id' });
      return existing.rows[0];
    });
  }

  /** Best effort: when a key was last used. */
  async touch(id: string): Promise<void> {
    try {
      await this.db.query('UPDATE api_keys SET last_used_at = now() WHERE id = $1', [id]);
    } catch (err) {
      throw wrapPgError(err, 'touch key');
    }
  }
}
