import { describe, expect, it } from 'vitest';
import { StatusView } from '../../src/actor/status-view.js';

const settledNow = async (v: StatusView): Promise<boolean> => {
  let done = false;
  void v.settled().then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  return done;
};

describe('StatusView (one status per campaign in a process)', () => {
  it('goes on while PostgreSQL says sending and no step read otherwise', async () => {
    const v = new StatusView('sending');
    expect(v.sending).toBe(true);
    v.stepRead(null);
    v.stepRead('sending');
    expect(v.sending).toBe(true);
    expect(await settledNow(v)).toBe(true);
  });

  it('stops at once when a step reads a pause, and holds fresh chunks until PostgreSQL speaks', async () => {
    const v = new StatusView('sending');
    v.stepRead('paused');
    expect(v.sending).toBe(false);
    expect(v.status).toBe('sending');
    expect(await settledNow(v)).toBe(false);
    v.record('paused');
    expect(await settledNow(v)).toBe(true);
    expect(v.status).toBe('paused');
    expect(v.sending).toBe(false);
  });

  it("takes PostgreSQL's word over an earlier step's reading (a pause undone before it was heard)", async () => {
    const v = new StatusView('sending');
    v.stepRead('paused');
    const waiting = v.settled();
    v.record('sending');
    await waiting;
    expect(v.sending).toBe(true);
  });

  it('wakes waiters when a later step reads sending again', async () => {
    const v = new StatusView('sending');
    v.stepRead('paused');
    const waiting = v.settled();
    v.stepRead('sending');
    await waiting;
    expect(v.sending).toBe(true);
  });

  it('ends every wait on release', async () => {
    const v = new StatusView('sending');
    v.stepRead('cancelled');
    const waiting = v.settled();
    v.release();
    await waiting;
    expect(await settledNow(v)).toBe(true);
  });
});
