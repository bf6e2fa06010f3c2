import { describe, expect, it } from 'vitest';
import { allowedFrom, CAMPAIGN_STATUSES, COMMANDS, isTerminal, transition } from '../../src/domain/campaign-status.js';

describe('campaign transitions', () => {
  it('follows draft → scheduled → sending ⇄ paused → completed | cancelled | failed', () => {
    expect(transition('draft', 'schedule')).toEqual({ ok: true, to: 'scheduled' });
    expect(transition('scheduled', 'start')).toEqual({ ok: true, to: 'sending' });
    expect(transition('draft', 'start')).toEqual({ ok: true, to: 'sending' });
    expect(transition('sending', 'pause')).toEqual({ ok: true, to: 'paused' });
    expect(transition('paused', 'resume')).toEqual({ ok: true, to: 'sending' });
    expect(transition('sending', 'complete')).toEqual({ ok: true, to: 'completed' });
    expect(transition('paused', 'cancel')).toEqual({ ok: true, to: 'cancelled' });
    expect(transition('sending', 'fail')).toEqual({ ok: true, to: 'failed' });
  });

  it('refuses everything out of a terminal status', () => {
    for (const from of CAMPAIGN_STATUSES.filter(isTerminal)) {
      for (const command of COMMANDS) expect(transition(from, command).ok).toBe(false);
    }
  });

  it('refuses the illegal moves users try', () => {
    expect(transition('draft', 'pause')).toEqual({ ok: false, from: 'draft', command: 'pause' });
    expect(transition('paused', 'complete').ok).toBe(false);
    expect(transition('sending', 'start').ok).toBe(false);
    expect(transition('sending', 'resume').ok).toBe(false);
  });

  it('gives the SQL layer the same table', () => {
    for (const command of COMMANDS) {
      for (const { from, to } of allowedFrom(command)) expect(transition(from, command)).toEqual({ ok: true, to });
      const froms = new Set(allowedFrom(command).map((p) => p.from));
      for (const s of CAMPAIGN_STATUSES) if (!froms.has(s)) expect(transition(s, command).ok).toBe(false);
    }
  });
});
