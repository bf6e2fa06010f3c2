/**
 * Live progress of import jobs for WebSocket subscribers (`{"subscribe": "import:<id>"}`). Every tick
 * it reads the jobs someone here watches that have not finished, one query for all, and publishes a
 * frame to the job's topic when it changed; a job this process finishes is published at once. Jobs
 * live in PostgreSQL, which every process shares, so a client on any process follows any import.
 */
import type { Logger } from 'pino';
import { importView, isFinished, type ImportJob } from '../domain/import-job.js';
import { encodeFrame, type FrameFormat } from './frame.js';

const FORMATS: readonly FrameFormat[] = ['json', 'msgpack'];

export function importTopic(id: number, format: FrameFormat): string {
  return `i/${id}/${format}`;
}

export type ImportFrame = Record<string, unknown> & { import_id: number; status: string; at: string };

export function importFrame(job: ImportJob, nowMs: number): ImportFrame {
  const { id, ...rest } = importView(job);
  return { import_id: id as number, ...rest, status: job.status, at: new Date(nowMs).toISOString() };
}

export interface ImportHubDeps {
  jobs: { getMany(ids: readonly number[]): Promise<ImportJob[]> };
  tickMs: number;
  log: Logger;
  publish(topic: string, message: string | Buffer, binary: boolean): void;
}

export class ImportHub {
  /** import → subscribers here */
  private readonly interest = new Map<number, number>();
  private readonly latest = new Map<number, { frame: ImportFrame; key: string }>();
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;

  constructor(private readonly deps: ImportHubDeps) {}

  start(): void {
    this.timer = setInterval(() => {
      this.ticking ??= this.tick().finally(() => (this.ticking = null));
    }, this.deps.tickMs);
  }

  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    await this.ticking;
  }

  subscribe(id: number): void {
    this.interest.set(id, (this.interest.get(id) ?? 0) + 1);
  }

  unsubscribe(id: number): void {
    const n = (this.interest.get(id) ?? 0) - 1;
    if (n > 0) this.interest.set(id, n);
    else {
      this.interest.delete(id);
      this.latest.delete(id);
    }
  }

  /** The job's frame now (a new subscriber gets one at once); null for an unknown job. */
  async current(id: number): Promise<ImportFrame | null> {
    const [job] = await this.deps.jobs.getMany([id]);
    if (job === undefined) return null;
    return this.remember(job).frame;
  }

  /** A job changed in this process (its merge ended): published at once to whoever watches it. */
  changed(job: ImportJob): void {
    if (!this.interest.has(job.id)) return;
    const { frame, fresh } = this.remember(job);
    if (fresh) this.publish(frame);
  }

  /** The last frame of each job named (for a client whose frames were skipped). */
  latestOf(ids: ReadonlySet<number>): ImportFrame[] {
    const out: ImportFrame[] = [];
    for (const id of ids) {
      const f = this.latest.get(id);
      if (f !== undefined) out.push(f.frame);
    }
    return out;
  }

  private async tick(): Promise<void> {
    const ids = [...this.interest.keys()].filter((id) => {
      const f = this.latest.get(id);
      return f === undefined || !isFinished(f.frame.status as ImportJob['status']);
    });
    if (ids.length === 0) return;
    try {
      for (const job of await this.deps.jobs.getMany(ids)) {
        const { frame, fresh } = this.remember(job);
        if (fresh) this.publish(frame);
      }
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, 'import progress tick failed');
    }
  }

  private remember(job: ImportJob): { frame: ImportFrame; fresh: boolean } {
    const frame = importFrame(job, Date.now());
    // what changes when a job moves: the frame's time alone is not news
    const key = `${job.status}/${job.receivedBytes}/${job.staged}/${job.total}/${job.imported}`;
    const prev = this.latest.get(job.id);
    this.latest.set(job.id, { frame, key });
    return { frame, fresh: prev?.key !== key };
  }

  private publish(frame: ImportFrame): void {
    for (const format of FORMATS) this.deps.publish(importTopic(frame.import_id, format), encodeFrame(frame, format), format === 'msgpack');
  }
}
