/**
 * The consent screen (the sender's RecipientScreen port, actor/chunk-sender.ts), asked right before each
 * sub-batch is sent: who is on the global list or, for a normal-priority campaign with a topic, on the
 * topic's list (`suppressed`), and who of the rest is over the topic's frequency cap (`capped`). A
 * `critical` campaign bypasses the topic's list and cap, never the global list.
 * The lists are looked up in the in-process index (suppression-index.ts): a miss is exact, a hit is
 * confirmed in PostgreSQL in one query for the sub-batch's hits. So a sub-batch without suppressed users
 * costs one Redis GET (shared by the sub-batches screened at the same moment) and a hash per user of its
 * packed ids, with no database round trip and no id decoded; with nobody on any list and no cap, no hash.
 * The sub-batches screened side by side share their confirmations (one query for the hits of all of them)
 * and their cap takes (cap-keeper.ts), which get the ids as bytes, never as strings; a sub-batch's cap take
 * and its confirmation go out side by side.
 */
import { fingerprintBytes, fingerprintBytesTwice, topicSeed, type Fingerprint, type TopicSeed } from '../domain/fingerprint.js';
import { joinedWithout, lengthAt, varintBytes } from '../domain/packed-ids.js';
import { GLOBAL_TOPIC, type TopicCap } from '../domain/consent-input.js';
import type { Withheld } from '../domain/withheld.js';
import type { RecipientScreen, ScreenQuery } from '../actor/chunk-sender.js';
import type { SuppressionIndex } from './suppression-index.js';
import type { CapKeeper } from './cap-keeper.js';
import { GroupCall } from './group-call.js';

export interface ConsentScreenOptions {
  index: SuppressionIndex;
  caps: CapKeeper;
  /** of these (topic, user) pairs, the ones suppressed now (PostgreSQL) */
  confirm(topics: readonly string[], userIds: readonly string[]): Promise<Array<{ topic: string; userId: string }>>;
  /** a topic's cap, or null when it has none */
  topicCap(topic: string): Promise<TopicCap | null>;
  /** how long a topic's cap is trusted before it is read again */
  topicCapTtlMs: number;
}

const GLOBAL_SEED = topicSeed(GLOBAL_TOPIC);
const GLOBAL_REASON: Withheld = Object.freeze({ kind: 'suppressed', reason: 'on the global suppression list' });

export class ConsentScreen implements RecipientScreen {
  private readonly seeds = new Map<string, TopicSeed>();
  private readonly caps = new Map<string, { cap: TopicCap | null; at: number }>();
  private readonly fp: Fingerprint = { hi: 0, lo: 0 };
  private readonly fpTopic: Fingerprint = { hi: 0, lo: 0 };
  /** a group's confirmed pairs, as `topic\nuser`: a fact about the lists, the same for every sub-batch asking */
  private readonly confirms: GroupCall<{ topics: string[]; userIds: string[] }, ReadonlySet<string>>;

  constructor(private readonly opts: ConsentScreenOptions) {
    this.confirms = new GroupCall({
      weight: (q) => q.topics.length,
      maxWeight: 20_000,
      run: async (qs) => {
        const topics = qs.length === 1 ? qs[0]!.topics : qs.flatMap((q) => q.topics);
        const userIds = qs.length === 1 ? qs[0]!.userIds : qs.flatMap((q) => q.userIds);
        const rows = await this.opts.confirm(topics, userIds);
        const confirmed = new Set(rows.map((r) => `${r.topic}\n${r.userId}`));
        return qs.map(() => confirmed);
      },
    });
  }

  // Every campaign is screened: the global list applies to all of them.
  applies(): boolean {
    return true;
  }

  async screen(q: ScreenQuery): Promise<Map<number, Withheld>> {
    const { campaign, users, count } = q;
    const held = new Map<number, Withheld>();
    const topic = campaign.priority === 'critical' ? null : campaign.topic;
    const index = this.opts.index;
    await index.ensureFresh();
    const cap = topic === null ? null : await this.topicCap(topic);
    // Nobody on any list and no cap: nothing to look up (the common case costs one coalesced GET).
    if (index.size === 0 && cap === null) return held;
    const hitAt: number[] = [];
    const hitTopics: string[] = [];
    const hitUsers: string[] = [];
    if (index.size > 0) {
      const fp = this.fp;
      const fpTopic = this.fpTopic;
      const seed = topic === null ? null : this.seed(topic);
      // Fingerprints of the packed UTF-8 bytes (a chunk's ids were checked when it was decoded): only hits
      // are decoded, for their confirmation.
      let off = 0;
      for (let i = 0; i < count; i++) {
        const len = lengthAt(users, off);
        off += varintBytes(len);
        const start = off;
        const end = start + len;
        off = end;
        let global: boolean;
        let mine = false;
        if (seed === null) {
          fingerprintBytes(GLOBAL_SEED, users, start, end, fp);
          global = index.has(fp.hi, fp.lo);
        } else {
          fingerprintBytesTwice(GLOBAL_SEED, seed, users, start, end, fp, fpTopic);
          global = index.has(fp.hi, fp.lo);
          mine = index.has(fpTopic.hi, fpTopic.lo);
        }
        if (!global && !mine) continue;
        const u = users.toString('utf8', start, end);
        if (global) {
          hitAt.push(i);
          hitTopics.push(GLOBAL_TOPIC);
          hitUsers.push(u);
        }
        if (mine) {
          hitAt.push(i);
          hitTopics.push(topic!);
          hitUsers.push(u);
        }
      }
    }
    // The index's misses are exact, so the cap takes them while PostgreSQL confirms the hits: the two round
    // trips go side by side, not one after the other. A hit that is not confirmed (a fingerprint collision,
    // a lifted suppression) is taken from the cap after, in a call of its own.
    const candidates = new Set(hitAt);
    const capTake = (skip: { has(position: number): boolean }, n: number): Promise<number[]> =>
      this.opts.caps.take({ topic: topic!, cap: cap!, campaignId: campaign.id, users: joinedWithout(users, count, skip), count: n });
    const [capped, confirmed] = await Promise.all([
      topic !== null && cap !== null ? capTake(candidates, count - candidates.size) : null,
      hitAt.length > 0 ? this.confirms.call({ topics: hitTopics, userIds: hitUsers }) : null,
    ]);
    if (confirmed !== null) {
      let missed = 0;
      for (let h = 0; h < hitAt.length; h++) {
        if (!confirmed.has(`${hitTopics[h]}\n${hitUsers[h]}`)) {
          missed++;
          continue;
        }
        const at = hitAt[h]!;
        if (hitTopics[h] === GLOBAL_TOPIC) held.set(at, GLOBAL_REASON);
        else if (!held.has(at)) held.set(at, { kind: 'suppressed', reason: `on the suppression list of topic ${topic}` });
      }
      if (missed > 0) index.missed(missed);
    }
    if (capped === null) return held;
    const reason: Withheld = { kind: 'capped', reason: `cap of topic ${topic}: ${cap!.max} per ${cap!.windowS} s` };
    markCapped(held, count, candidates, capped, reason);
    const cleared = new Set<number>();
    for (const at of hitAt) if (!held.has(at)) cleared.add(at);
    if (cleared.size > 0) {
      const notCleared = { has: (i: number): boolean => !cleared.has(i) };
      markCapped(held, count, notCleared, await capTake(notCleared, cleared.size), reason);
    }
    return held;
  }

  private seed(topic: string): TopicSeed {
    let s = this.seeds.get(topic);
    if (s === undefined) {
      s = topicSeed(topic);
      this.seeds.set(topic, s);
    }
    return s;
  }

  private async topicCap(topic: string): Promise<TopicCap | null> {
    const now = Date.now();
    const c = this.caps.get(topic);
    if (c !== undefined && now - c.at < this.opts.topicCapTtlMs) return c.cap;
    const cap = await this.opts.topicCap(topic);
    this.caps.set(topic, { cap, at: now });
    return cap;
  }
}

/** Withholds as capped the positions `capped` (ascending) counts among those `skip` does not hold. */
function markCapped(
  held: Map<number, Withheld>,
  count: number,
  skip: { has(position: number): boolean },
  capped: readonly number[],
  reason: Withheld,
): void {
  let k = 0;
  for (let i = 0, taken = 0; i < count && k < capped.length; i++) {
    if (skip.has(i)) continue;
    if (taken === capped[k]) {
      held.set(i, reason);
      k++;
    }
    taken++;
  }
}
