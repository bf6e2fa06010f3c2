-- Cohort of fast readers: of the recipients who read a campaign, how many read within 1 hour of delivery,
-- within 1 day, and later; and the time-to-read quantiles from the campaign_time_to_read view.
-- The cohort reads the raw read events of one campaign (a primary-key range: campaign_id, kind), each of
-- which carries its delivery time, so no join against the deliveries is needed.
-- Run: clickhouse-client --database herald --multiquery < readers_within_an_hour.sql   (replace 1 with the campaign id)
SELECT
  uniqExactIf(user_id, at - delivered_at <= 3600) AS within_1h,
  uniqExactIf(user_id, at - delivered_at > 3600 AND at - delivered_at <= 86400) AS within_1d_only,
  uniqExactIf(user_id, at - delivered_at > 86400) AS later_only,
  uniqExact(user_id) AS readers
FROM message_events
WHERE campaign_id = 1 AND kind = 'read' AND delivered_at > toDateTime(0);

SELECT
  arrayMap(x -> round(x), quantilesTDigestMerge(0.5, 0.9, 0.99)(seconds)) AS seconds_p50_p90_p99
FROM campaign_time_to_read
WHERE campaign_id = 1;
