/**
 * Timings and sizes that are not settings, each with the reason for its value, and the values derived
 * from settings that several stages must agree on. The composition root (main.ts) passes them on.
 */
import type { Config } from '../config.js';

/** XREADGROUP BLOCK of an idle consumer; it also bounds how long a stopping consumer takes to notice. */
export const STREAM_BLOCK_MS = 250;

/** How often a campaign's owner checks for completion: one Redis call, and a finished campaign is marked within it. */
export const COMPLETION_CHECK_MS = 50;

/**
 * After a takeover by liveness, how long the chunks are held before their recorded sub-batches are looked
 * up in ClickHouse: an insert on the wire when its process died is stored within it (100k rows: 0.1–0.5 s).
 */
export const TAKEOVER_GRACE_MS = 1000;

/** How often an import whose body is streaming in records its progress (what its job shows). */
export const IMPORT_PROGRESS_MS = 1000;

/** /health answers within this even when a service hangs; a service that does not answer in it is reported. */
export const HEALTH_CHECK_TIMEOUT_MS = 2000;

/** A read spool file is replaced past this size and deleted once drained: the disk a process's spool holds. */
export const SPOOL_ROTATE_BYTES = 64 << 20;

/** The most events one spool drain hands to its sink, so a backlog replays in pieces of bounded memory. */
export const SPOOL_DRAIN_EVENTS = 50_000;

/** The least time between spool drains: each costs ClickHouse a lookup and an insert whatever its size. */
export const SPOOL_DRAIN_MIN_INTERVAL_MS = 250;

/**
 * Shutdown: how long imports and the read spool get to stop. What is cut short is picked up again (a merge
 * rolls back and is resumed, a spool file is adopted), so these only bound the wait.
 */
export const IMPORTS_STOP_MS = 10_000;
export const SPOOL_CLOSE_MS = 10_000;
/** Shutdown: how long buffered events get to reach ClickHouse; a flush that fails is logged. */
export const SINK_CLOSE_MS = 30_000;
/** Shutdown: the imports' pool may still hold a connection of a merge being rolled back. */
export const IMPORT_POOL_END_MS = 5_000;

/** An insert that has started lands within this long. */
export const INSERT_LANDS_MS = 1_000;

/**
 * How long until an event buffered in any process is in ClickHouse: it waits at most a flush interval for
 * its batch, the batch at most one more behind the insert in flight, and the insert lands within a second.
 * Re-planning a lost stream and replaying a dead process's spool wait this long, so neither writes twice.
 */
export function eventsLandedMs(cfg: Pick<Config, 'sinkFlushMs'>): number {
  return cfg.sinkFlushMs * 2 + INSERT_LANDS_MS;
}

/** Consent: how long a sender trusts a topic's cap before reading it again (a changed cap applies within it). */
export const TOPIC_CAP_TTL_MS = 1_000;
/** Consent: the lock of a topic's cap-state build, past which another process may build it (a builder died). */
export const CAP_REBUILD_LOCK_MS = 60_000;
/** Consent: between looks while another process builds a topic's cap state. */
export const CAP_REBUILD_WAIT_MS = 100;
/** Consent: unconfirmed index hits (lifted suppressions) past which the suppression index is rebuilt whole. */
export const SUPPRESSION_REBUILD_MISSES = 10_000;

/**
 * How long a looked-up API key (or its absence) is trusted in memory: authentication costs no PostgreSQL
 * round trip per request, and a key revoked by another process stops working within this (README, Keys).
 */
export const KEY_CACHE_MS = 5000;

/** The least time between two writes of a key's last_used_at from one process. */
export const KEY_TOUCH_MS = 60_000;

/** Key ids cached per process past which expired entries are dropped (unknown ids are cached too). */
export const KEY_CACHE_MAX = 10_000;

/** Metrics: the bound of the Redis reads of a scrape (streams, overshoot); past it those series are left out of the answer. */
export const METRICS_COLLECT_TIMEOUT_MS = 1_000;
