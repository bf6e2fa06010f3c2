import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { scriptKeyCount, type ScriptName } from '../../src/stream/redis-scripts.js';

const DIR = new URL('../../src/stream/lua/', import.meta.url);

describe('Lua scripts (one home: src/stream/lua, key count in the file name)', () => {
  it('has every script file there, each named <name>-<keys>.lua and using exactly that many keys', () => {
    const files = readdirSync(DIR).filter((f) => f.endsWith('.lua'));
    expect(files.length).toBeGreaterThanOrEqual(10);
    for (const f of files) {
      const m = /^([a-z-]+)-(\d+)\.lua$/.exec(f);
      expect(m, f).not.toBeNull();
      const lua = readFileSync(new URL(f, DIR), 'utf8');
      const used = new Set([...lua.matchAll(/KEYS\[(\d+)\]/g)].map((k) => Number(k[1])));
      expect(Math.max(...used), f).toBe(Number(m![2]));
      // a header says what the script does, with its KEYS and ARGV
      expect(lua.startsWith('-- '), f).toBe(true);
    }
  });

  it('registers each script with the key count its file name says', () => {
    const names: ScriptName[] = [
      'announce',
      'capSeed',
      'capTake',
      'chunkStep',
      'fence',
      'leaseAcquire',
      'leaseRelease',
      'leaseRenew',
      'livenessBeat',
      'raise',
      'rateAcquire',
      'takeover',
      'touch',
    ];
    const counts = Object.fromEntries(names.map((n) => [n, scriptKeyCount(n)]));
    expect(counts).toEqual({
      announce: 3,
      capSeed: 3,
      capTake: 3,
      chunkStep: 9,
      fence: 3,
      leaseAcquire: 3,
      leaseRelease: 1,
      leaseRenew: 1,
      livenessBeat: 1,
      raise: 1,
      rateAcquire: 1,
      takeover: 2,
      touch: 1,
    });
  });
});
