/**
 * Where the reads of an audience's rows run: the planner's keyset pages and the counts of segments and
 * plans. With a replica (DATABASE_READ_URL), they run there once it holds every row they must see;
 * otherwise, and when it does not within `waitMs`, on the primary.
 *
 * The rule that makes a replica's answer exact: every such read is bounded by an id read on the primary
 * (a plan's `plan_max_id`, a segment count's highest id), and every recipient up to that id was committed
 * when it was read (imports into one audience take turns, each adding ids above the last). Recipients are
 * never updated or removed, so a replica whose snapshot has a row of the audience at or above that id
 * (`max(id) >= maxId`) has replayed the commits of all the rows below it too. The check and the read run
 * in one REPEATABLE READ transaction, so they see one snapshot on one server — also behind a pooler or a
 * load balancer in front of several replicas.
 */
import type pg from 'pg';
import { wrapPgError, type Db } from './db.js';

export interface ReadReplicaOptions {
  /** how long a read waits for the replica to hold its rows before it runs on the primary */
  waitMs: number;
  /**
   * the first pause between two looks at the replica (doubled up to 500 ms)
   * @default 20
   */
  pollMs?: number;
}

export type ReadSide = 'replica' | 'primary';

/** The read, on a connection in a transaction that sees every recipient of the audience up to `maxId`. */
export type AudienceRead<T> = (client: pg.PoolClient, side: ReadSide) => Promise<T>;

const MAX_POLL_MS = 500;

export class ReadReplica {
  private readonly waitMs: number;
  private readonly pollMs: number;
  /** reads that ran on each side, and those that went to the primary because the replica lagged or failed */
  readonly stats = { replica: 0, primary: 0, fellBack: 0 };

  constructor(
    private readonly primary: Db,
    private readonly replica: Db | null = null,
    opts: ReadReplicaOptions = { waitMs: 0 },
  ) {
    this.waitMs = opts.waitMs;
    this.pollMs = opts.pollMs ?? 20;
  }

  /** Runs `read` where it sees every recipient of `audienceId` up to `maxId` (see the header). */
  async rows<T>(audienceId: number, maxId: number, what: string, read: AudienceRead<T>, opts: { statement?: boolean } = {}): Promise<T> {
    if (this.replica !== null) {
      const deadline = Date.now() + this.waitMs;
      for (let pause = this.pollMs; ; pause = Math.min(pause * 2, MAX_POLL_MS)) {
        const r = await this.onReplica(this.replica, audienceId, maxId, what, read);
        if (r.ran) {
          this.stats.replica++;
          return r.value;
        }
        // A replica that cannot be reached is not waited for: the primary answers at once.
        if (r.unreachable || Date.now() + pause > deadline) break;
        await new Promise((resolve) => setTimeout(resolve, pause));
      }
      this.stats.fellBack++;
    }
    this.stats.primary++;
    return this.onPrimary(what, read, opts.statement === true);
  }

  private async onReplica<T>(
    replica: Db,
    audienceId: number,
    maxId: number,
    what: string,
    read: AudienceRead<T>,
  ): Promise<{ ran: true; value: T } | { ran: false; unreachable: boolean }> {
    let client: pg.PoolClient;
    try {
      client = await replica.connect();
    } catch {
      return { ran: false, unreachable: true };
    }
    let open = false;
    try {
      try {
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        open = true;
        if (maxId > 0) {
          const top = await client.query<{ top: number | null }>('SELECT max(id) AS top FROM recipients WHERE audience_id = $1', [
            audienceId,
          ]);
          if ((top.rows[0]?.top ?? 0) < maxId) {
            await client.query('ROLLBACK');
            open = false;
            return { ran: false, unreachable: false };
          }
        }
      } catch {
        // The replica's own trouble (a broken connection, a replica being rebuilt without the table): the
        // primary answers instead.
        if (open) await client.query('ROLLBACK').catch(() => undefined);
        open = false;
        return { ran: false, unreachable: true };
      }
      const value = await read(client, 'replica');
      await client.query('COMMIT');
      open = false;
      return { ran: true, value };
    } catch (err) {
      if (open) await client.query('ROLLBACK').catch(() => undefined);
      throw wrapPgError(err, what);
    } finally {
      client.release();
    }
  }

  /**
   * `statement`: the read is one statement, which PostgreSQL runs atomically on its own, so it runs outside a
   * transaction block: two round trips fewer (BEGIN, COMMIT) for each of the consumers' range reads.
   */
  private async onPrimary<T>(what: string, read: AudienceRead<T>, statement: boolean): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.primary.connect();
    } catch (err) {
      throw wrapPgError(err, `connect for ${what}`);
    }
    let open = false;
    try {
      if (!statement) {
        await client.query('BEGIN');
        open = true;
      }
      const value = await read(client, 'primary');
      if (statement) return value;
      await client.query('COMMIT');
      open = false;
      return value;
    } catch (err) {
      if (open) await client.query('ROLLBACK').catch(() => undefined);
      throw wrapPgError(err, what);
    } finally {
      client.release();
    }
  }
}
