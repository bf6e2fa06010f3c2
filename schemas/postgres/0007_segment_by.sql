-- 0007_segment_by: the audience attribute (a key of recipients.attrs, e.g. `country`) whose value every
-- event of the campaign carries, so ClickHouse can break reads down by it (campaign_segments).
-- Why here: chosen at creation, read by the planner with the recipients, never per event.
ALTER TABLE campaigns ADD COLUMN segment_by text;
