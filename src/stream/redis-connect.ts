/**
 * Herald's Redis connections: one Redis (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_NODES, ioredis
 * `Cluster`), behind one type. Everything above this file sends the same commands to either; what differs
 * is here: how a connection is made and duplicated, how a pipeline of several campaigns' commands is
 * split (a cluster pipeline must stay in one slot), and how every master is reached (SCAN, health).
 *
 * Every multi-key command and script touches keys of one hash tag (keys.ts), so it runs on one slot.
 */
import { Cluster, Redis, type ChainableCommander, type ClusterNode } from 'ioredis';

export type RedisClient = Redis | Cluster;

/** between tries of a command whose master is away or whose cluster is down */
const CLUSTER_RETRY_MS = 100;
/** before following a MOVED */
const CLUSTER_MOVED_RETRY_MS = 20;

export interface RedisConnectOptions {
  /** REDIS_URL: one Redis; its user name and password are also the cluster nodes' */
  url: string;
  /** REDIS_CLUSTER_NODES: `host:port` of some cluster nodes (the others are discovered); when set, wins over `url` */
  clusterNodes: readonly string[];
}

/** `host:port` → ioredis's startup node; the config has checked the form. */
function startupNode(hostPort: string): ClusterNode {
  const i = hostPort.lastIndexOf(':');
  return { host: hostPort.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(hostPort.slice(i + 1)) };
}

export function isCluster(client: RedisClient): client is Cluster {
  return client instanceof Cluster;
}

/**
 * A connection for Herald's main use. A command waits for Redis however long it is away
 * (`maxRetriesPerRequest: null`): the loops above decide when to give up, not the driver.
 */
export function connectRedis(o: RedisConnectOptions): RedisClient {
  if (o.clusterNodes.length === 0) return new Redis(o.url, { maxRetriesPerRequest: null, lazyConnect: false });
  const u = new URL(o.url);
  return new Cluster(o.clusterNodes.map(startupNode), {
    // Masters only: the ledger step, the fences and the lease read what was just written, and a replica lags.
    scaleReads: 'master',
    // 'ready' once CLUSTER INFO says the cluster serves every slot it knows of.
    enableReadyCheck: true,
    // A command waits out a master's absence (refused connections, CLUSTERDOWN while a restarted master
    // rejoins) as one on a single Redis waits for it to return: failing it instead would, among others,
    // hold the sink's fence in its retry backoff past the grace a lost stream's re-plan waits for events.
    maxRedirections: Number.MAX_SAFE_INTEGER,
    retryDelayOnFailover: CLUSTER_RETRY_MS,
    retryDelayOnClusterDown: CLUSTER_RETRY_MS,
    retryDelayOnTryAgain: CLUSTER_RETRY_MS,
    // Not at once: while a master rejoins, nodes may briefly send a command back and forth.
    retryDelayOnMoved: CLUSTER_MOVED_RETRY_MS,
    redisOptions: {
      maxRetriesPerRequest: null,
      ...(u.username !== '' ? { username: decodeURIComponent(u.username) } : {}),
      ...(u.password !== '' ? { password: decodeURIComponent(u.password) } : {}),
    },
  });
}

/**
 * A connection of its own, for a blocking read or for subscriber mode. On one Redis a subscriber gets no
 * ready check: ioredis (5.8.2 and later, redis/ioredis#2037) may send its INFO after a queued SUBSCRIBE,
 * which Redis refuses in subscriber mode, and the connection then errors and reconnects. A Cluster keeps
 * subscriptions on a connection of its own to one node (and moves them when that node goes), and a
 * blocked XREADGROUP holds only the connection to the stream's node.
 */
export function duplicateRedis(client: RedisClient, use: 'subscriber' | 'blocking'): RedisClient {
  if (isCluster(client)) return client.duplicate();
  return client.duplicate(use === 'subscriber' ? { enableReadyCheck: false } : {});
}

/**
 * A key's hash tag, as Redis Cluster reads it: the text inside the first `{…}` when not empty, else the
 * whole key. Keys of one tag share a slot (keys of different tags may too; grouping by tag is never wrong).
 */
export function hashTag(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

/** `items` by the hash tag of their key; on one Redis, all of them in one group. Order kept within a group. */
export function slotGroups<T>(client: RedisClient, items: readonly T[], keyOf: (item: T) => string): T[][] {
  if (!isCluster(client)) return items.length === 0 ? [] : [[...items]];
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const tag = hashTag(keyOf(item));
    const g = groups.get(tag);
    if (g === undefined) groups.set(tag, [item]);
    else g.push(item);
  }
  return [...groups.values()];
}

export type PipelineReply = [Error | null, unknown];

/**
 * Sends one command per item, pipelined, and answers their replies in `items`' order. On one Redis that is
 * one pipeline; on a cluster one per hash tag, side by side, since ioredis refuses a pipeline whose keys
 * lie on several slots' nodes.
 */
export async function pipelineBySlot<T>(
  client: RedisClient,
  items: readonly T[],
  keyOf: (item: T) => string,
  add: (pipeline: ChainableCommander, item: T) => void,
): Promise<PipelineReply[]> {
  const indexed = items.map((item, i) => ({ item, i }));
  const out: PipelineReply[] = items.map(() => [new Error('no reply in pipeline'), null]);
  await Promise.all(
    slotGroups(client, indexed, (x) => keyOf(x.item)).map(async (group) => {
      const p = client.pipeline();
      for (const x of group) add(p, x.item);
      const replies = (await p.exec()) ?? [];
      group.forEach((x, j) => (out[x.i] = replies[j] ?? out[x.i]!));
    }),
  );
  return out;
}

/** Every master, as a connection of its own (the one Redis, or each cluster master once the slots are known). */
export async function masters(client: RedisClient): Promise<Redis[]> {
  if (!isCluster(client)) return [client];
  // A command waits for the cluster to be ready, and with it for the slot map that names the masters.
  await client.ping();
  return client.nodes('master');
}
