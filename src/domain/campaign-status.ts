/**
 * The campaign lifecycle as data. PostgreSQL enforces the same table with conditional UPDATEs
 * (`WHERE status = ANY(<allowed from>)`), built from `allowedFrom` below so the two cannot drift.
 */

export const CAMPAIGN_STATUSES = ['draft', 'scheduled', 'sending', 'paused', 'completed', 'cancelled', 'failed'] as const;
export type CampaignStatus = (typeof CAMPAIGN_STATUSES)[number];

export const COMMANDS = ['schedule', 'start', 'pause', 'resume', 'cancel', 'complete', 'fail'] as const;
export type CampaignCommand = (typeof COMMANDS)[number];

/** command → (from → to). A missing `from` means the command is illegal in that status. */
const TRANSITIONS: Record<CampaignCommand, Partial<Record<CampaignStatus, CampaignStatus>>> = {
  schedule: { draft: 'scheduled', scheduled: 'scheduled' },
  start: { draft: 'sending', scheduled: 'sending' },
  pause: { sending: 'paused' },
  resume: { paused: 'sending' },
  cancel: { draft: 'cancelled', scheduled: 'cancelled', sending: 'cancelled', paused: 'cancelled' },
  complete: { sending: 'completed' },
  fail: { scheduled: 'failed', sending: 'failed', paused: 'failed' },
};

export const TERMINAL_STATUSES: ReadonlySet<CampaignStatus> = new Set(['completed', 'cancelled', 'failed']);

export type TransitionResult = { ok: true; to: CampaignStatus } | { ok: false; from: CampaignStatus; command: CampaignCommand };

export function transition(from: CampaignStatus, command: CampaignCommand): TransitionResult {
  const to = TRANSITIONS[command][from];
  return to === undefined ? { ok: false, from, command } : { ok: true, to };
}

/** Statuses from which `command` is legal, and the status it leads to from each. */
export function allowedFrom(command: CampaignCommand): Array<{ from: CampaignStatus; to: CampaignStatus }> {
  return Object.entries(TRANSITIONS[command]).map(([from, to]) => ({ from: from as CampaignStatus, to: to as CampaignStatus }));
}

export function isCampaignStatus(value: unknown): value is CampaignStatus {
  return typeof value === 'string' && (CAMPAIGN_STATUSES as readonly string[]).includes(value);
}

export function isTerminal(status: CampaignStatus): boolean {
  return TERMINAL_STATUSES.has(status);
}
