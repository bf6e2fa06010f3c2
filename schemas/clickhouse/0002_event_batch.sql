-- 0002_event_batch: which insert batch wrote each row.
-- Why: an insert whose answer is lost (the connection dropped after ClickHouse had stored it) is retried;
-- before retrying, the event sink asks whether that batch is already there, so a retry never doubles
-- rows, nor the view's counts. 18.16 has no insert deduplication for non-replicated tables.
ALTER TABLE message_events ADD COLUMN batch UInt64;
