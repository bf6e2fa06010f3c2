/**
 * A campaign's status as this process knows it, in one place. Three sources feed it:
 * - PostgreSQL, the record: the dispatcher's poll, and the status an actor starts with;
 * - pub/sub announcements of a change (stream/control.ts), which carry PostgreSQL's word sooner;
 * - the ledger steps, which read the status key in Redis atomically with each sub-batch's record, so a step
 *   may see a pause before its pub/sub message arrives here.
 * What a step read is news for every consumer of the campaign here: no fresh chunk starts while a step has
 * seen the campaign leave `sending` and PostgreSQL's word (pub/sub or poll) has not caught up. Waiters are
 * woken by the next word, never by polling.
 */
import type { CampaignStatus } from '../domain/campaign-status.js';

export class StatusView {
  private recorded: CampaignStatus;
  /** what a ledger step last read from the status key, since PostgreSQL's last word (null: nothing newer) */
  private stepSaw: CampaignStatus | null = null;
  private readonly waiters = new Set<() => void>();
  private released = false;

  constructor(status: CampaignStatus) {
    this.recorded = status;
  }

  /** PostgreSQL's word (pub/sub or poll); it supersedes what a step read before it. */
  get status(): CampaignStatus {
    return this.recorded;
  }

  /** Whether chunks go on: PostgreSQL says sending, and no step has read otherwise since. */
  get sending(): boolean {
    return this.recorded === 'sending' && (this.stepSaw ?? 'sending') === 'sending';
  }

  /** A status from PostgreSQL (pub/sub, poll, or this process's own transition). */
  record(status: CampaignStatus): void {
    this.recorded = status;
    this.stepSaw = null;
    this.wake();
  }

  /** What a ledger step read from the status key (null: it read nothing, or Redis has none). */
  stepRead(status: CampaignStatus | null): void {
    if (status === null || status === this.stepSaw) return;
    this.stepSaw = status;
    this.wake();
  }

  /**
   * Resolves once no step's reading stands against PostgreSQL's word: at once, unless a step saw the campaign
   * leave `sending` and no word has come since; `release` (the actor stopping) ends the wait too.
   */
  settled(): Promise<void> {
    if (this.isSettled()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.isSettled()) {
          this.waiters.delete(check);
          resolve();
        }
      };
      this.waiters.add(check);
    });
  }

  /** Ends every wait, now and later (the actor is stopping). */
  release(): void {
    this.released = true;
    this.wake();
  }

  private isSettled(): boolean {
    return this.released || this.stepSaw === null || this.stepSaw === 'sending' || this.recorded !== 'sending';
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }
}
