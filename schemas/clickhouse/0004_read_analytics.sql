-- 0004_read_analytics: what read-rate analytics need, carried on the events and aggregated by views.
-- Why: "what is campaign C's read rate over time, how fast do people read, in which segment" must be
-- answered from a handful of aggregate rows, never by scanning or joining raw events.
--   confirmed / bounced   a provider's own delivered / failed callback (POST /v1/events), kept beside
--                         Herald's outcome (the channel accepted it) so counts never double
--   delivered_at          on a read: when that recipient's message was delivered (time to read)
--   segment               the recipient's value of the campaign's `segment_by` attribute (e.g. country)
-- SQL that 18.16 and 23-25 both run: SummingMergeTree / AggregatingMergeTree targets, quantilesTDigest.
ALTER TABLE message_events MODIFY COLUMN kind Enum8('sent' = 1, 'delivered' = 2, 'failed' = 3, 'read' = 4, 'aborted' = 5, 'confirmed' = 6, 'bounced' = 7);
ALTER TABLE campaign_counts MODIFY COLUMN kind Enum8('sent' = 1, 'delivered' = 2, 'failed' = 3, 'read' = 4, 'aborted' = 5, 'confirmed' = 6, 'bounced' = 7);
ALTER TABLE message_events ADD COLUMN delivered_at DateTime('UTC');
ALTER TABLE message_events ADD COLUMN segment String;

-- Deliveries and reads per minute per campaign (GET /stats series; analysts roll minutes up to hours).
CREATE TABLE IF NOT EXISTS campaign_minutes (
  campaign_id UInt64,
  minute      DateTime('UTC'),
  kind        Enum8('sent' = 1, 'delivered' = 2, 'failed' = 3, 'read' = 4, 'aborted' = 5, 'confirmed' = 6, 'bounced' = 7),
  events      UInt64
) ENGINE = SummingMergeTree()
PARTITION BY toYYYYMM(minute)
ORDER BY (campaign_id, kind, minute);

CREATE MATERIALIZED VIEW IF NOT EXISTS campaign_minutes_mv TO campaign_minutes AS
SELECT campaign_id, toStartOfMinute(at) AS minute, kind, count() AS events
FROM message_events
WHERE kind IN ('delivered', 'read')
GROUP BY campaign_id, minute, kind;

-- Seconds from delivery to read, as a t-digest per campaign (p50 / p90 / p99).
CREATE TABLE IF NOT EXISTS campaign_time_to_read (
  campaign_id UInt64,
  seconds     AggregateFunction(quantilesTDigest(0.5, 0.9, 0.99), UInt32)
) ENGINE = AggregatingMergeTree()
ORDER BY campaign_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS campaign_time_to_read_mv TO campaign_time_to_read AS
SELECT campaign_id, quantilesTDigestState(0.5, 0.9, 0.99)(toUInt32(at - delivered_at)) AS seconds
FROM message_events
WHERE kind = 'read' AND delivered_at > toDateTime(0) AND at >= delivered_at
GROUP BY campaign_id;

-- Deliveries and reads per segment value per campaign.
CREATE TABLE IF NOT EXISTS campaign_segments (
  campaign_id UInt64,
  segment     String,
  kind        Enum8('sent' = 1, 'delivered' = 2, 'failed' = 3, 'read' = 4, 'aborted' = 5, 'confirmed' = 6, 'bounced' = 7),
  events      UInt64
) ENGINE = SummingMergeTree()
ORDER BY (campaign_id, kind, segment);

CREATE MATERIALIZED VIEW IF NOT EXISTS campaign_segments_mv TO campaign_segments AS
SELECT campaign_id, segment, kind, count() AS events
FROM message_events
WHERE kind IN ('delivered', 'read')
GROUP BY campaign_id, segment, kind;

-- Unique readers per segment value (a uniqExact state holds every reader's id, so it is kept to reads).
CREATE TABLE IF NOT EXISTS campaign_segment_readers (
  campaign_id UInt64,
  segment     String,
  readers     AggregateFunction(uniqExact, String)
) ENGINE = AggregatingMergeTree()
ORDER BY (campaign_id, segment);

CREATE MATERIALIZED VIEW IF NOT EXISTS campaign_segment_readers_mv TO campaign_segment_readers AS
SELECT campaign_id, segment, uniqExactState(user_id) AS readers
FROM message_events
WHERE kind = 'read'
GROUP BY campaign_id, segment;
