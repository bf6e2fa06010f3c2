-- 0005_batch_counts: per-campaign counts that a duplicated insert cannot inflate.
-- Why: every outcome row carries its sub-batch's deterministic id (`batch`), and the sink never splits a
-- sub-batch across inserts, so a sub-batch's rows of one kind always number the same. Counting
-- max(rows) per (campaign, kind, batch) therefore counts a sub-batch once however many times it was
-- stored — which a dispatcher frozen at the moment it sent an insert can cause, as ClickHouse has no
-- conditional insert to refuse it. GET /v1/campaigns/:id and the live frames count from here.
-- The INSERT … SELECT fills it from the events stored before this migration (max() absorbs any overlap
-- with inserts made meanwhile).
CREATE TABLE IF NOT EXISTS campaign_batch_counts (
  campaign_id UInt64,
  kind        Enum8('sent' = 1, 'delivered' = 2, 'failed' = 3, 'read' = 4, 'aborted' = 5, 'confirmed' = 6, 'bounced' = 7),
  batch       UInt64,
  rows        UInt64
) ENGINE = ReplacingMergeTree()
ORDER BY (campaign_id, kind, batch);

CREATE MATERIALIZED VIEW IF NOT EXISTS campaign_batch_counts_mv TO campaign_batch_counts AS
SELECT campaign_id, kind, batch, count() AS rows
FROM message_events
GROUP BY campaign_id, kind, batch;

INSERT INTO campaign_batch_counts
SELECT campaign_id, kind, batch, count() AS rows
FROM message_events
GROUP BY campaign_id, kind, batch;
