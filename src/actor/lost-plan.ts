/**
 * The steps before a campaign whose work state Redis lost is planned again (an owner's re-plan,
 * campaign-actor.ts; a closer's walk, campaign-closer.ts): what was recorded of the lost generation is
 * let land, then the plan key is raised so a holder elsewhere records nothing more of it, then inserts
 * already past the fence land too. Only after that do the outcomes in ClickHouse say who was sent to.
 * The graces are plain timers: a wait that a status word could end early would let the re-plan read the
 * outcomes before what it waits for has landed.
 */
import type { EventSink } from '../sink/event-sink.js';
import type { ChunkProtocol } from '../stream/chunk-protocol.js';

export interface LostPlanDeps {
  sink: Pick<EventSink, 'flush'>;
  protocol: Pick<ChunkProtocol, 'raisePlan'>;
  /** what other processes recorded reaches ClickHouse within it (their flush interval) */
  lostStreamGraceMs: number;
  /** an insert whose fence answered before the raise starts within the fence's trust, and lands */
  raisedPlanGraceMs: number;
}

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function fenceLostPlan(deps: LostPlanDeps, campaignId: number, lostGeneration: number): Promise<void> {
  await deps.sink.flush();
  await delay(deps.lostStreamGraceMs);
  await deps.protocol.raisePlan(campaignId, lostGeneration + 1);
  await delay(deps.raisedPlanGraceMs);
}
