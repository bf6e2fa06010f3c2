/**
 * A chunk's life in the hands of one consumer, as data. The shell (actor/chunk-sender.ts) performs the
 * effects (ledger steps, sends, appends) and feeds what they found to `chunkTransition`; every decision about
 * where the chunk stands is made here, and a pair of state and event that cannot happen is an error, not a
 * silent no-op (pg-cursor throws on an unknown state the same way).
 *
 *   received ─checked→ sending ─recorded→ sending … ─recorded→ recorded ─stored→ stored ─acked→ acked
 *      │                  │  └─halted / checked or recorded, not to go on→ stopped (left pending here)
 *      └──────────────────┴─ step found it stale → taken-over; Redis lost the plan → lost
 *   received ─rejected→ dropped (undecodable, or of a replaced plan: acked away unsent)
 */
/** What a chunk's ledger step found (stream/lua/chunk-step-9.lua). */
export type StepReply =
  /** the chunk is still pending on this consumer; `status` is the announced one (null when Redis has none) */
  | { hold: 'held'; status: CampaignStatus | null; sent: number }
  /** it is no longer pending on this consumer (taken over, or finished by someone else) */
  | { hold: 'stale'; sent: number }
  /** Redis lost the campaign's work state (restarted empty, failed over, or re-planned since) */
  | { hold: 'lost' };

import type { CampaignStatus } from './campaign-status.js';

export type ChunkState =
  /** read by this consumer; one delivered before (pending from a pause, a crash, a takeover) is checked first */
  | { phase: 'received'; fresh: boolean }
  /** ours: recipients [0, sent) are recorded in the ledger */
  | { phase: 'sending'; sent: number }
  /** every recipient recorded; the events are on their way to ClickHouse */
  | { phase: 'recorded' }
  /** every event stored: ready to ack */
  | { phase: 'stored' }
  /** off the stream */
  | { phase: 'acked' }
  /** paused, cancelled or shutting down: left pending on this consumer, to be resumed from the ledger */
  | { phase: 'stopped'; sent: number }
  /** another consumer holds it now: nothing more is recorded or written by this one */
  | { phase: 'taken-over' }
  /** Redis lost the campaign's work state (restarted empty, or re-planned since) */
  | { phase: 'lost' }
  /** acked away unsent: it cannot be decoded, or belongs to a plan that was replaced */
  | { phase: 'dropped'; reason: 'invalid' | 'superseded' };

export type ChunkPhase = ChunkState['phase'];

export type ChunkEvent =
  /** a ledger step that recorded nothing; `goOn`: whether the campaign still sends here, all told */
  | { type: 'checked'; reply: StepReply; goOn: boolean }
  /** the ledger step right after a sub-batch of `n` recipients was sent */
  | { type: 'recorded'; reply: StepReply; n: number; goOn: boolean }
  /** not to go on before the next sub-batch (status, shutdown, a rate wait ended by a stop) */
  | { type: 'halted' }
  | { type: 'stored' }
  | { type: 'acked' }
  | { type: 'rejected'; reason: 'invalid' | 'superseded' };

export class ChunkTransitionError extends Error {
  constructor(
    readonly state: ChunkState,
    readonly event: ChunkEvent,
  ) {
    super(`chunk: no transition from ${state.phase} on ${event.type}`);
    this.name = 'ChunkTransitionError';
  }
}

/** Where a chunk starts: a first delivery has no earlier holder, so it is ours with nothing sent. */
export function receivedChunk(fresh: boolean): ChunkState {
  return fresh ? { phase: 'sending', sent: 0 } : { phase: 'received', fresh };
}

function after(sent: number, count: number, goOn: boolean): ChunkState {
  if (sent >= count) return { phase: 'recorded' };
  return goOn ? { phase: 'sending', sent } : { phase: 'stopped', sent };
}

/** `count`: the chunk's recipients. */
export function chunkTransition(state: ChunkState, event: ChunkEvent, count: number): ChunkState {
  switch (state.phase) {
    case 'received':
      if (event.type === 'checked') {
        const r = event.reply;
        if (r.hold === 'lost') return { phase: 'lost' };
        if (r.hold === 'stale') return { phase: 'taken-over' };
        return after(r.sent, count, event.goOn);
      }
      if (event.type === 'rejected') return { phase: 'dropped', reason: event.reason };
      break;
    case 'sending':
      if (event.type === 'checked') {
        const r = event.reply;
        if (r.hold === 'lost') return { phase: 'lost' };
        if (r.hold === 'stale') return { phase: 'taken-over' };
        return after(Math.max(state.sent, r.sent), count, event.goOn);
      }
      if (event.type === 'recorded') {
        const r = event.reply;
        if (r.hold === 'lost') return { phase: 'lost' };
        if (r.hold === 'stale') return { phase: 'taken-over' };
        return after(state.sent + event.n, count, event.goOn);
      }
      if (event.type === 'halted') return { phase: 'stopped', sent: state.sent };
      if (event.type === 'rejected') return { phase: 'dropped', reason: event.reason };
      break;
    case 'recorded':
      if (event.type === 'stored') return { phase: 'stored' };
      break;
    case 'stored':
      if (event.type === 'acked') return { phase: 'acked' };
      break;
    case 'stopped':
    case 'taken-over':
    case 'lost':
      // What was written before stopping still lands; the chunk stays where it is.
      if (event.type === 'stored') return state;
      break;
    case 'acked':
    case 'dropped':
      break;
  }
  throw new ChunkTransitionError(state, event);
}

/**
 * After a sub-batch was sent, whether its events are written: while the chunk is held, and when Redis lost
 * the plan (only ClickHouse can say now that they were sent, and the re-plan consults it), yes, through
 * the sink's fence, which drops them once the chunk is taken over or re-planned (fence-3.lua); when it was
 * taken over or re-planned already, not at all (the new holder or the new plan sends them).
 */
export function eventsAfterSend(reply: StepReply): 'write' | 'none' {
  return reply.hold === 'held' || reply.hold === 'lost' ? 'write' : 'none';
}
