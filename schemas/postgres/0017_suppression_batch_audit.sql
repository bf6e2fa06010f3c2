-- 0017_suppression_batch_audit: a bulk suppression change is audited when it is applied, and a batch whose
-- apply keeps failing on a retryable error ends failed.
-- Why: the audit row was written when the body was staged, so a batch that later failed left a row for a
-- change that never happened; the audit (README, Audit) records changes in the transaction that makes them.
-- The staging transaction keeps the row to write here, and the apply's transaction writes it into audit_log
-- with what it changed. A deadlock or a lock timeout leaves a batch `applying` for the sweep; one that meets
-- them again and again (a session holding the lists' locks for hours) is failed after
-- SUPPRESSION_APPLY_ATTEMPTS (src/store/consent-repo.ts) with its last error, rather than tried forever. A
-- lost connection is no attempt: PostgreSQL was away, the batch was not at fault.
--   audit     the audit row of the request (null for batches staged before this migration: audited then)
--   attempts  applies that ended on a deadlock or a lock timeout; `error` holds the last one's while applying
ALTER TABLE suppression_batches ADD COLUMN audit jsonb;
ALTER TABLE suppression_batches ADD COLUMN attempts integer NOT NULL DEFAULT 0;
