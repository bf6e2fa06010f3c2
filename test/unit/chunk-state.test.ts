import { describe, expect, it } from 'vitest';
import type { CampaignStatus } from '../../src/domain/campaign-status.js';
import {
  ChunkTransitionError,
  chunkTransition,
  eventsAfterSend,
  receivedChunk,
  type ChunkEvent,
  type ChunkState,
  type StepReply,
} from '../../src/domain/chunk-state.js';

const COUNT = 500;
const held = (sent: number, status: CampaignStatus = 'sending'): StepReply => ({ hold: 'held', status, sent });
const stale: StepReply = { hold: 'stale', sent: 100 };
const lost: StepReply = { hold: 'lost' };
const go = (s: ChunkState, e: ChunkEvent): ChunkState => chunkTransition(s, e, COUNT);

describe('chunk transitions (domain/chunk-state.ts)', () => {
  it('starts a first delivery as sending with nothing sent, and a redelivery as received', () => {
    expect(receivedChunk(true)).toEqual({ phase: 'sending', sent: 0 });
    expect(receivedChunk(false)).toEqual({ phase: 'received', fresh: false });
  });

  describe('received', () => {
    const s = receivedChunk(false);
    it('checked, held: sending from where the ledger says', () => {
      expect(go(s, { type: 'checked', reply: held(200), goOn: true })).toEqual({ phase: 'sending', sent: 200 });
    });
    it('checked, held, not to go on: stopped where the ledger says', () => {
      expect(go(s, { type: 'checked', reply: held(200, 'paused'), goOn: false })).toEqual({ phase: 'stopped', sent: 200 });
    });
    it('checked, held, every recipient sent before: recorded (its events to recover), paused or not', () => {
      expect(go(s, { type: 'checked', reply: held(COUNT), goOn: true })).toEqual({ phase: 'recorded' });
      expect(go(s, { type: 'checked', reply: held(COUNT), goOn: false })).toEqual({ phase: 'recorded' });
    });
    it('checked, stale: taken over; lost: lost', () => {
      expect(go(s, { type: 'checked', reply: stale, goOn: true })).toEqual({ phase: 'taken-over' });
      expect(go(s, { type: 'checked', reply: lost, goOn: true })).toEqual({ phase: 'lost' });
    });
    it('rejected: dropped with the reason', () => {
      expect(go(s, { type: 'rejected', reason: 'invalid' })).toEqual({ phase: 'dropped', reason: 'invalid' });
      expect(go(s, { type: 'rejected', reason: 'superseded' })).toEqual({ phase: 'dropped', reason: 'superseded' });
    });
    it('cannot be recorded, halted, stored or acked before it is checked', () => {
      for (const e of [
        { type: 'recorded', reply: held(100), n: 100, goOn: true },
        { type: 'halted' },
        { type: 'stored' },
        { type: 'acked' },
      ] as const) {
        expect(() => go(s, e)).toThrow(ChunkTransitionError);
      }
    });
  });

  describe('sending', () => {
    const s: ChunkState = { phase: 'sending', sent: 100 };
    it('recorded, held: on by the sub-batch', () => {
      expect(go(s, { type: 'recorded', reply: held(200), n: 100, goOn: true })).toEqual({ phase: 'sending', sent: 200 });
    });
    it('recorded, held, not to go on: stopped after the sub-batch (it is recorded)', () => {
      expect(go(s, { type: 'recorded', reply: held(200, 'paused'), n: 100, goOn: false })).toEqual({ phase: 'stopped', sent: 200 });
    });
    it('recorded, the last sub-batch: recorded, whatever the status', () => {
      const last: ChunkState = { phase: 'sending', sent: 400 };
      expect(go(last, { type: 'recorded', reply: held(COUNT), n: 100, goOn: true })).toEqual({ phase: 'recorded' });
      expect(go(last, { type: 'recorded', reply: held(COUNT, 'paused'), n: 100, goOn: false })).toEqual({ phase: 'recorded' });
    });
    it('recorded, stale: taken over (the sub-batch is not recorded); lost: lost', () => {
      expect(go(s, { type: 'recorded', reply: stale, n: 100, goOn: true })).toEqual({ phase: 'taken-over' });
      expect(go(s, { type: 'recorded', reply: lost, n: 100, goOn: true })).toEqual({ phase: 'lost' });
    });
    it('checked again before a send: stays, stops, or is taken over', () => {
      expect(go(s, { type: 'checked', reply: held(100), goOn: true })).toEqual({ phase: 'sending', sent: 100 });
      expect(go(s, { type: 'checked', reply: held(100, 'cancelled'), goOn: false })).toEqual({ phase: 'stopped', sent: 100 });
      expect(go(s, { type: 'checked', reply: stale, goOn: true })).toEqual({ phase: 'taken-over' });
      expect(go(s, { type: 'checked', reply: lost, goOn: true })).toEqual({ phase: 'lost' });
    });
    it('halted: stopped where it is', () => {
      expect(go(s, { type: 'halted' })).toEqual({ phase: 'stopped', sent: 100 });
    });
    it('a first delivery of a replaced plan is dropped before anything is sent', () => {
      expect(go(receivedChunk(true), { type: 'rejected', reason: 'superseded' })).toEqual({ phase: 'dropped', reason: 'superseded' });
    });
    it('cannot be stored or acked while sending', () => {
      expect(() => go(s, { type: 'stored' })).toThrow(ChunkTransitionError);
      expect(() => go(s, { type: 'acked' })).toThrow(ChunkTransitionError);
    });
  });

  it('recorded → stored → acked, and nothing else from there', () => {
    const stored = go({ phase: 'recorded' }, { type: 'stored' });
    expect(stored).toEqual({ phase: 'stored' });
    expect(go(stored, { type: 'acked' })).toEqual({ phase: 'acked' });
    expect(() => go({ phase: 'recorded' }, { type: 'acked' })).toThrow(ChunkTransitionError);
    expect(() => go({ phase: 'recorded' }, { type: 'halted' })).toThrow(ChunkTransitionError);
    expect(() => go(stored, { type: 'stored' })).toThrow(ChunkTransitionError);
  });

  it('a stopped, taken-over or lost chunk stays where it is when its earlier events are stored', () => {
    for (const s of [{ phase: 'stopped', sent: 100 }, { phase: 'taken-over' }, { phase: 'lost' }] as const) {
      expect(go(s, { type: 'stored' })).toBe(s);
      expect(() => go(s, { type: 'acked' })).toThrow(ChunkTransitionError);
      expect(() => go(s, { type: 'checked', reply: held(100), goOn: true })).toThrow(ChunkTransitionError);
    }
  });

  it('acked and dropped are final', () => {
    for (const s of [{ phase: 'acked' }, { phase: 'dropped', reason: 'invalid' }] as const) {
      for (const e of [{ type: 'stored' }, { type: 'acked' }, { type: 'halted' }, { type: 'rejected', reason: 'invalid' }] as const) {
        expect(() => go(s, e)).toThrow(/no transition/);
      }
    }
  });

  it('writes the events of a sent sub-batch (through the fence) while held and when Redis lost the plan, not at all when taken over or re-planned', () => {
    expect(eventsAfterSend(held(100))).toBe('write');
    expect(eventsAfterSend(lost)).toBe('write');
    expect(eventsAfterSend(stale)).toBe('none');
  });
});
