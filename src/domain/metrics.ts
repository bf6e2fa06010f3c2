/**
 * The instrumentation ports: what the adapters (actor/, sink/, ws/, import/) tell about their work, for the
 * Prometheus registry of src/metrics/ to count. Each stage is handed the part it uses in its deps, and a
 * stage given none uses NO_METRICS, so the pure core never sees a metric. Calls are per sub-batch, chunk,
 * insert or job, never per recipient.
 */

/** A recipient's final outcome, as counted by `herald_messages_total{outcome}`. */
export const MESSAGE_OUTCOMES = ['delivered', 'failed', 'skipped', 'suppressed', 'capped', 'aborted'] as const;
export type MessageOutcome = (typeof MESSAGE_OUTCOMES)[number];

/** Counts of one sub-batch (or one closed campaign's aborted rest); outcomes left out are 0. */
export type OutcomeCounts = Partial<Record<MessageOutcome, number>>;

/** How a chunk came back to a consumer after its holder stopped: its process's heartbeat lapsed, or it sat idle (XAUTOCLAIM). */
export type ReclaimReason = 'heartbeat' | 'idle';

export interface DispatchMetrics {
  /** a sub-batch recorded in the ledger (or a cancelled campaign's rest recorded as aborted) */
  outcomes(campaignId: number, channel: string, counts: OutcomeCounts): void;
  /** one channel call (a sub-batch): how long the channel took, in seconds */
  sendSeconds(channel: string, seconds: number): void;
  /** one chunk, from its first ledger check to its last step, in seconds */
  chunkSeconds(channel: string, seconds: number): void;
  /** a wait for the campaign's rate limit, in seconds (asks that need no wait are not counted) */
  rateWait(campaignId: number, seconds: number): void;
  /** 429 answers a campaign's webhook receiver gave */
  throttled(campaignId: number, answers: number): void;
  /** chunks taken back from a consumer that stopped */
  reclaimed(reason: ReclaimReason, chunks: number): void;
}

export interface SinkMetrics {
  /** one ClickHouse insert that landed: its rows and how long it took, in seconds */
  inserted(rows: number, seconds: number): void;
  /** one insert attempt that failed (it is retried) */
  insertFailed(): void;
}

/** Why a WebSocket client went: closed for staying slow, or any other close (the client, a shutdown). */
export type WsCloseReason = 'slow' | 'other';

export interface WsMetrics {
  wsClosed(reason: WsCloseReason): void;
}

export interface ImportMetrics {
  /** a job was created and its body is being received */
  importStarted(): void;
  /** a job this process ran ended; the rows only for a completed one */
  importFinished(outcome: 'completed' | 'failed', rows: { imported: number; duplicates: number; rejected: number }): void;
}

export type Metrics = DispatchMetrics & SinkMetrics & WsMetrics & ImportMetrics;

const nothing = (): void => undefined;

/** Counts nothing: the default of every stage, and of processes built without a registry (the spool worker). */
export const NO_METRICS: Metrics = Object.freeze({
  outcomes: nothing,
  sendSeconds: nothing,
  chunkSeconds: nothing,
  rateWait: nothing,
  throttled: nothing,
  reclaimed: nothing,
  inserted: nothing,
  insertFailed: nothing,
  wsClosed: nothing,
  importStarted: nothing,
  importFinished: nothing,
});
