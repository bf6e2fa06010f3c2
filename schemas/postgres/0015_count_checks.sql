-- 0015_count_checks: a completed campaign's count check (src/sink/count-repair.ts: its summing views made
-- whole against the stored outcomes) is recorded, so one that failed, or whose process died before it ran,
-- is run again by the next dispatcher that polls.
-- Why each column:
-- - counts_checked_at: when the check last finished (NULL: due). A completion clears it, a retry round's
--   too, so each completion is checked once.
-- - counts_claimed_at: when a process took the check on. Another takes it over only once the claim is
--   old (COUNT_CHECK_CLAIM_MS), so two processes never add the same shortfall side by side.
-- Campaigns completed before this migration count as checked: the process that completed them ran the
-- repair of its version.
ALTER TABLE campaigns
  ADD COLUMN counts_checked_at timestamptz,
  ADD COLUMN counts_claimed_at timestamptz;

UPDATE campaigns SET counts_checked_at = now() WHERE status = 'completed';

-- The dispatchers' sweep: completed campaigns whose check is due.
CREATE INDEX campaigns_counts_due ON campaigns (id) WHERE status = 'completed' AND counts_checked_at IS NULL;
