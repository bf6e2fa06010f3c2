-- 0006_withheld_kinds: the outcomes of recipients a campaign does not send to although they are in its
-- plan: `skipped` (a template needed an attribute the recipient lacks), `suppressed` (on a suppression list
-- when the sub-batch was sent) and `capped` (a topic's frequency cap was reached).
-- Why: they are final outcomes like `delivered` and `failed`, one row per recipient, so analysts find
-- them where they find the others and `delivered + failed + skipped + suppressed + capped + aborted`
-- equals the plan's total of every finished campaign. Adding Enum values changes only metadata (on
-- 18.16 and 23-25 alike); every table with a `kind` column gets the same type so the views carry any row.
ALTER TABLE message_events MODIFY COLUMN kind Enum8('sent' = 1, 'delivered' = 2, 'failed' = 3, 'read' = 4, 'aborted' = 5, 'confirmed' = 6, 'bounced' = 7, 'skipped' = 8, 'suppressed' = 9, 'capped' = 10);
ALTER TABLE campaign_counts MODIFY COLUMN kind Enum8('sent' = 1, 'delivered' = 2, 'failed' = 3, 'read' = 4, 'aborted' = 5, 'confirmed' = 6, 'bounced' = 7, 'skipped' = 8, 'suppressed' = 9, 'capped' = 10);
ALTER TABLE campaign_minutes MODIFY COLUMN kind Enum8('sent' = 1, 'delivered' = 2, 'failed' = 3, 'read' = 4, 'aborted' = 5, 'confirmed' = 6, 'bounced' = 7, 'skipped' = 8, 'suppressed' = 9, 'capped' = 10);
ALTER TABLE campaign_segments MODIFY COLUMN kind Enum8('sent' = 1, 'delivered' = 2, 'failed' = 3, 'read' = 4, 'aborted' = 5, 'confirmed' = 6, 'bounced' = 7, 'skipped' = 8, 'suppressed' = 9, 'capped' = 10);
ALTER TABLE campaign_batch_counts MODIFY COLUMN kind Enum8('sent' = 1, 'delivered' = 2, 'failed' = 3, 'read' = 4, 'aborted' = 5, 'confirmed' = 6, 'bounced' = 7, 'skipped' = 8, 'suppressed' = 9, 'capped' = 10);
