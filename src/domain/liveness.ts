/**
 * Liveness of the processes sending a campaign: the timings derived from HERALD_LIVENESS_TTL_MS, and the
 * consumer names that tie a consumer of the campaign's group to the process whose heartbeat vouches for it.
 * The Lua scripts that read the heartbeats (stream/lua/takeover-2.lua, stream/lua/lease-acquire-3.lua, …) apply
 * the same naming rule: a consumer's holder is its name without the last `-<role>`.
 */

export interface LivenessTimings {
  /** how long a heartbeat vouches for its process (the entry's expiry is Redis's clock + this); 0: off */
  ttlMs: number;
  /**
   * how often a process renews its heartbeat. A stall shorter than ttlMs - renewEveryMs (less a Redis round
   * trip) never lets the heartbeat lapse, so a live process under load keeps its chunks.
   */
  renewEveryMs: number;
  /** how often the campaign's owner looks for consumers whose process's heartbeat lapsed */
  scanEveryMs: number;
  /**
   * how long an ownership check (a ledger step renews the heartbeat in the same atomic step) or a heartbeat
   * is trusted before a send: well inside ttlMs, so nothing can be taken over between the check and the send
   * unless the process stalls in between, and then it checks again.
   */
  trustMs: number;
}

export function livenessTimings(ttlMs: number): LivenessTimings {
  if (ttlMs <= 0) return { ttlMs: 0, renewEveryMs: 0, scanEveryMs: 0, trustMs: Infinity };
  return {
    ttlMs,
    renewEveryMs: Math.max(20, Math.floor(ttlMs / 6)),
    scanEveryMs: Math.max(20, Math.floor(ttlMs / 10)),
    trustMs: Math.max(50, Math.floor(ttlMs / 3)),
  };
}

/**
 * How often a live consumer touches the chunks it holds, resetting their idle time: a third of
 * HERALD_RECLAIM_IDLE_MS, so a chunk is reclaimed only after its holder missed two touches in a row.
 */
export function touchEveryMs(reclaimIdleMs: number): number {
  return reclaimIdleMs / 3;
}

/**
 * How long a check that this process still holds a chunk is trusted before it acts on it (a send, the
 * sink's insert). A live process renews its hold every touch (above) and its heartbeat within trustMs,
 * so a check older than both means it stalled (GC, SIGSTOP) and the chunk may have been taken over
 * meanwhile. At least 50 ms, like trustMs: with very short reclaim times (tests) not every step pays a
 * Redis round trip for a new check.
 */
export function ownershipTrustMs(reclaimIdleMs: number, livenessTtlMs: number): number {
  return Math.min(Math.max(50, Math.floor(touchEveryMs(reclaimIdleMs))), livenessTimings(livenessTtlMs).trustMs);
}

/** The name of one of a process's consumers in a campaign's group: `<holder>-<role>` (a worker index, `reclaim`, `closer`). */
export function consumerName(holder: string, role: string | number): string {
  const r = String(role);
  if (r.length === 0 || r.includes('-')) throw new RangeError(`consumer role must be non-empty without '-': ${r}`);
  return `${holder}-${r}`;
}

/** The holder (process) a consumer name belongs to; null when the name has no `-<role>` part. */
export function holderOf(consumer: string): string | null {
  const i = consumer.lastIndexOf('-');
  return i <= 0 || i === consumer.length - 1 ? null : consumer.slice(0, i);
}
