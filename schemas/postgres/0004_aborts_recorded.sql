-- 0004_aborts_recorded: when the aborted recipients of a cancelled (or failed) campaign were all recorded.
-- Why: recording them takes a while (chunks held by stopping consumers, the unplanned rest of the
-- audience) and must finish even if the process doing it dies; NULL on a cancelled campaign that had
-- started means some dispatcher still has to do it.
ALTER TABLE campaigns ADD COLUMN aborts_recorded_at timestamptz;
