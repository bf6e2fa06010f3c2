-- Read rate by hour for one campaign: deliveries and reads per hour, and the hour's reads per 100
-- messages the campaign delivered. From the campaign_minutes view (one row per campaign, kind and
-- minute), so it answers in milliseconds at any audience size.
-- Run: clickhouse-client --database herald --multiquery < read_rate_by_hour.sql   (replace 1 with the campaign id)
SELECT
  toStartOfHour(minute) AS hour,
  sumIf(events, kind = 'delivered') AS delivered,
  sumIf(events, kind = 'read') AS reads,
  round(100 * reads / (SELECT greatest(1, sumIf(events, kind = 'delivered')) FROM campaign_minutes WHERE campaign_id = 1), 2) AS reads_per_100_delivered
FROM campaign_minutes
WHERE campaign_id = 1
GROUP BY hour
ORDER BY hour;
