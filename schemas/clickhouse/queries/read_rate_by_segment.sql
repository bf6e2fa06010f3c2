-- Read rate by segment (the campaign's `segment_by` attribute, e.g. country): deliveries, unique readers
-- and their ratio per segment value. From campaign_segments and campaign_segment_readers.
-- The subqueries are named (d, r): ClickHouse 20.x and later refuse an unnamed joined subquery
-- (joined_subquery_requires_alias); 18.16 takes both forms.
-- Run: clickhouse-client --database herald --multiquery < read_rate_by_segment.sql   (replace 1 with the campaign id)
SELECT
  segment,
  delivered,
  readers,
  round(100 * readers / greatest(1, delivered), 2) AS read_rate_pct
FROM
(
  SELECT segment, sumIf(events, kind = 'delivered') AS delivered
  FROM campaign_segments
  WHERE campaign_id = 1
  GROUP BY segment
) AS d
ANY LEFT JOIN
(
  SELECT segment, uniqExactMerge(readers) AS readers
  FROM campaign_segment_readers
  WHERE campaign_id = 1
  GROUP BY segment
) AS r USING segment
ORDER BY delivered DESC, segment;
