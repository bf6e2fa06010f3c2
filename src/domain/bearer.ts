/**
 * The admin key check, shared by the HTTP API and the WebSocket upgrade: a pure rule over the
 * `Authorization` header and the configured keys (HERALD_API_KEYS), so neither adapter imports the other.
 */
import { timingSafeEqual } from 'node:crypto';

export function checkBearer(authorization: string, keys: readonly string[]): boolean {
  const m = /^Bearer\s+(.+)$/i.exec(authorization);
  if (m === null) return false;
  const given = Buffer.from(m[1]!.trim());
  let ok = false;
  for (const k of keys) {
    const key = Buffer.from(k);
    // compare every key, in constant time per key, so timing does not reveal which prefix matched
    if (key.length === given.length && timingSafeEqual(key, given)) ok = true;
  }
  return ok;
}
