-- 0014_segment_changes: segments can be renamed, given a new filter, listed and deleted.
-- Why each column:
-- - version: a new filter makes the kept count (counted, counted_max_id) wrong. The change clears it and
--   raises the version, and a count stores its result only for the version it counted, so a count that
--   was running on the old filter when the change landed does not store the old filter's number.
-- - deleted_at: a deleted segment is gone for the API (404, not listed, not usable by a new campaign), but
--   its row stays: campaigns.segment_id still says where a campaign's filter came from, and campaigns keep
--   their own copy of the filter (0010), so nothing they plan changes.
ALTER TABLE segments
  ADD COLUMN version integer NOT NULL DEFAULT 1,
  ADD COLUMN updated_at timestamptz,
  ADD COLUMN deleted_at timestamptz;

-- GET /v1/segments?audience_id=…: newest first, keyset pages by id.
CREATE INDEX segments_live_by_audience ON segments (audience_id, id) WHERE deleted_at IS NULL;
