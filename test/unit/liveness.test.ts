import { describe, expect, it } from 'vitest';
import { consumerName, holderOf, livenessTimings } from '../../src/domain/liveness.js';
import { loadConfig } from '../../src/config.js';

describe('liveness timings', () => {
  it('renews well inside the ttl, so a stall of 5/6 of it loses nothing, and trusts a check for a third of it', () => {
    const t = livenessTimings(3_000);
    expect(t).toEqual({ ttlMs: 3_000, renewEveryMs: 500, scanEveryMs: 300, trustMs: 1_000 });
    // the longest stall that never lets the heartbeat lapse, and the trust window, both inside the ttl
    expect(t.ttlMs - t.renewEveryMs).toBe(2_500);
    expect(t.trustMs).toBeLessThan(t.ttlMs - t.renewEveryMs);
  });

  it('is off at 0: nothing renewed or scanned, and no bound from it on how long a check is trusted', () => {
    expect(livenessTimings(0)).toEqual({ ttlMs: 0, renewEveryMs: 0, scanEveryMs: 0, trustMs: Infinity });
  });

  it('keeps small ttls workable', () => {
    const t = livenessTimings(300);
    expect(t.renewEveryMs).toBe(50);
    expect(t.trustMs).toBe(100);
  });
});

describe('consumer names', () => {
  it('tie a consumer to its holder, whose id may itself contain dashes', () => {
    const holder = 'host-a-1234-9f3c2e';
    for (const role of [0, 7, 'reclaim', 'closer']) expect(holderOf(consumerName(holder, role))).toBe(holder);
  });

  it('refuse a role the holder could not be told from', () => {
    expect(() => consumerName('h', 'a-b')).toThrow(RangeError);
    expect(() => consumerName('h', '')).toThrow(RangeError);
  });

  it('have no holder without a role part', () => {
    expect(holderOf('plain')).toBeNull();
    expect(holderOf('-x')).toBeNull();
    expect(holderOf('x-')).toBeNull();
  });
});

describe('HERALD_LIVENESS_TTL_MS', () => {
  it('defaults to 3 s, can be turned off, and refuses a ttl too short to renew', () => {
    expect(loadConfig({}).livenessTtlMs).toBe(3_000);
    expect(loadConfig({ HERALD_LIVENESS_TTL_MS: '0' }).livenessTtlMs).toBe(0);
    expect(() => loadConfig({ HERALD_LIVENESS_TTL_MS: '100' })).toThrow(/HERALD_LIVENESS_TTL_MS/);
    expect(() => loadConfig({ HERALD_LIVENESS_TTL_MS: 'soon' })).toThrow(/HERALD_LIVENESS_TTL_MS/);
  });
});
