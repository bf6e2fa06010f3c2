-- 0003_aborted_kind: a recipient a cancelled campaign will never send to is recorded as `aborted`.
-- Why: analysts ask "who did not get it" of ClickHouse, not of Herald; with one row per aborted recipient,
-- delivered + failed + aborted equals the plan's total for every finished campaign. Adding an Enum value
-- changes only metadata (on 18.16 and 23-25 alike), and the key column keeps its order.
ALTER TABLE message_events MODIFY COLUMN kind Enum8('sent' = 1, 'delivered' = 2, 'failed' = 3, 'read' = 4, 'aborted' = 5);
ALTER TABLE campaign_counts MODIFY COLUMN kind Enum8('sent' = 1, 'delivered' = 2, 'failed' = 3, 'read' = 4, 'aborted' = 5);
