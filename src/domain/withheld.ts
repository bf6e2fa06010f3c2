/**
 * Recipients a campaign does not send to although they are in its plan, each with a final outcome of its
 * own: `skipped` (a template needed an attribute the recipient lacks, under `missing: "skip"`),
 * `suppressed` (on a suppression list when its sub-batch was sent) and `capped` (the topic's frequency cap
 * was reached). They are decided per sub-batch, recorded in the ledger with it, written to ClickHouse as
 * events like any outcome, and never retried.
 */

export const WITHHELD_KINDS = ['skipped', 'suppressed', 'capped'] as const;
export type WithheldKind = (typeof WITHHELD_KINDS)[number];

export interface Withheld {
  kind: WithheldKind;
  /** why, in a few words (stored as the event's `error`) */
  reason: string;
}

/** position within a sub-batch → why that recipient is not sent to */
export type Withholdings = ReadonlyMap<number, Withheld>;

export const NO_WITHHOLDINGS: Withholdings = new Map();

/** How many of each kind, for the live counters and the logs. */
export function withheldTally(w: Withholdings): Record<WithheldKind, number> {
  const out: Record<WithheldKind, number> = { skipped: 0, suppressed: 0, capped: 0 };
  for (const v of w.values()) out[v.kind]++;
  return out;
}

export function isWithheldKind(v: unknown): v is WithheldKind {
  return typeof v === 'string' && (WITHHELD_KINDS as readonly string[]).includes(v);
}
