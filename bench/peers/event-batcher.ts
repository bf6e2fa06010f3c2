/**
 * The peers' and the bare path's event writes: outcome rows in Herald's own encoding (a Native block) into the
 * same `message_events` table (with all its views), `batchRows` per insert. `append` resolves once the
 * rows are in ClickHouse, so a job or stream entry is finished only when its events are stored, as in
 * Herald. A partial batch is written after `flushMs` (never, with Infinity: then only `flush` writes it).
 */
import type { ClickHouse } from '../../src/clickhouse/client.js';
import { EventBlockWriter } from '../../src/sink/native-block.js';

export class EventBatcher {
  private writer: EventBlockWriter;
  private waiting: Array<{ resolve(): void; reject(err: unknown): void }> = [];
  private timer: NodeJS.Timeout | null = null;
  inserts = 0;

  constructor(
    private readonly ch: ClickHouse,
    private readonly batchRows: number,
    private readonly flushMs = 200,
  ) {
    this.writer = new EventBlockWriter(batchRows);
  }

  append(campaignId: number, users: Buffer, count: number, atSec: number): Promise<void> {
    this.writer.addOutcomes(campaignId, users, count, new Map(), atSec);
    const done = new Promise<void>((resolve, reject) => this.waiting.push({ resolve, reject }));
    if (this.writer.rows >= this.batchRows) this.flush();
    else if (Number.isFinite(this.flushMs)) this.timer ??= setTimeout(() => this.flush(), this.flushMs);
    return done;
  }

  /** Inserts what is buffered now. */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.writer.rows === 0) return;
    const rows = this.writer.finish();
    const waiting = this.waiting;
    this.writer = new EventBlockWriter(this.batchRows);
    this.waiting = [];
    this.inserts++;
    this.ch.insertRaw('message_events', 'Native', rows).then(
      () => waiting.forEach((w) => w.resolve()),
      (err: unknown) => waiting.forEach((w) => w.reject(err)),
    );
  }
}
