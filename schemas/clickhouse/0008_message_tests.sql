-- 0008_message_tests: the outcomes of test sends (POST /v1/campaigns/:id/test), one row per recipient per test.
-- Why a table of its own: a test send goes to a few chosen recipients outside the campaign's plan, and no
-- campaign count may include it. Every count comes from views over message_events (campaign_counts,
-- campaign_batch_counts, campaign_minutes, campaign_segments, campaign_readers), so rows kept here are
-- never seen by any of them. Kind codes are message_events' own. Runs on ClickHouse 18.16 and 23-25.
CREATE TABLE IF NOT EXISTS message_tests (
  campaign_id UInt64,
  test_id     String,
  user_id     String,
  kind        Enum8('delivered' = 2, 'failed' = 3, 'skipped' = 8),
  at          DateTime('UTC'),
  error       String
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(at)
ORDER BY (campaign_id, test_id, user_id);
