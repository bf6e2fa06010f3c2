import { describe, expect, it } from 'vitest';
import { isDrained, mayStartChunk, onStatus } from '../../src/actor/decide.js';

const state = { exists: true, pending: 0, lag: 0, lastDeliveredId: '0-200', lastGeneratedId: '0-200', length: 200 };

describe('actor decisions', () => {
  it('completes only when planned, delivered and acknowledged', () => {
    expect(isDrained(true, state)).toBe(true);
    expect(isDrained(false, state)).toBe(false);
    expect(isDrained(true, { ...state, pending: 1 })).toBe(false);
    expect(isDrained(true, { ...state, lastDeliveredId: '0-199' })).toBe(false);
    expect(isDrained(true, { ...state, exists: false })).toBe(false);
  });

  it('starts chunks only while sending, drops a completed stream and keeps a cancelled one for its closer', () => {
    expect(mayStartChunk('sending')).toBe(true);
    expect(mayStartChunk('paused')).toBe(false);
    expect(onStatus('sending')).toBe('run');
    expect(onStatus('paused')).toBe('stop');
    expect(onStatus('cancelled')).toBe('stop');
    expect(onStatus('failed')).toBe('stop');
    expect(onStatus('completed')).toBe('stop-and-drop');
  });
});
