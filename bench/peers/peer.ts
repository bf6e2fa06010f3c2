/** What every peer reports, and the send they all call. */
export interface PeerResult {
  seconds: number;
  recipients: number;
  /** ms from the start until the first recipient could be sent */
  firstMessageMs: number;
  extra: Record<string, number | string>;
}

let sink = 0;
/** The `null` channel's work per recipient: nothing, but not optimised away. */
export function noopSend(userId: string): void {
  sink += userId.length;
}
export function noopSends(): number {
  return sink;
}
