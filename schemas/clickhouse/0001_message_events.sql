-- 0001_message_events: the event log and the per-campaign progress view.
-- Why: every recipient outcome (sent / delivered / failed) and every read is one row here; analysts
-- query it directly. The progress query must answer in milliseconds at millions of recipients, so
-- counts come from an AggregatingMergeTree fed by a materialized view (a handful of rows per campaign),
-- and unique readers live in their own view so no uniqExact state (which holds every id) sits in the
-- hot progress query. Runs on ClickHouse 18.16 and 23-25: no CTEs, no DateTime64, no TTL/CODEC.
-- Enum values must match EVENT_KIND_CODE in src/domain/message-event.ts.

CREATE TABLE IF NOT EXISTS message_events (
  campaign_id UInt64,
  user_id     String,
  kind        Enum8('sent' = 1, 'delivered' = 2, 'failed' = 3, 'read' = 4),
  at          DateTime('UTC'),
  error       String
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(at)
ORDER BY (campaign_id, kind, user_id);

CREATE TABLE IF NOT EXISTS campaign_counts (
  campaign_id UInt64,
  kind        Enum8('sent' = 1, 'delivered' = 2, 'failed' = 3, 'read' = 4),
  events      AggregateFunction(count),
  first_at    AggregateFunction(min, DateTime('UTC')),
  last_at     AggregateFunction(max, DateTime('UTC'))
) ENGINE = AggregatingMergeTree()
ORDER BY (campaign_id, kind);

CREATE MATERIALIZED VIEW IF NOT EXISTS campaign_counts_mv TO campaign_counts AS
SELECT campaign_id, kind, countState() AS events, minState(at) AS first_at, maxState(at) AS last_at
FROM message_events
GROUP BY campaign_id, kind;

CREATE TABLE IF NOT EXISTS campaign_readers (
  campaign_id UInt64,
  readers     AggregateFunction(uniqExact, String)
) ENGINE = AggregatingMergeTree()
ORDER BY campaign_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS campaign_readers_mv TO campaign_readers AS
SELECT campaign_id, uniqExactState(user_id) AS readers
FROM message_events
WHERE kind = 'read'
GROUP BY campaign_id;
