-- 0005_retry_rounds: sending again to the failed recipients of a completed campaign (retry-failed).
-- Why: a retry is a new round of the same campaign. Its recipients (those whose latest outcome is
-- `failed`) are copied into an audience of their own, planned under the next plan generation, so the
-- whole pipeline (stream, ledger, exactly once, pause, cancel) works on it unchanged.
--   plan_audience_id        the audience the current round plans from (NULL: the campaign's own)
--   round_generation        the plan generation that began the current round: a re-plan after a lost
--                           stream leaves out only recipients with an outcome from this round on
--   first_retry_generation  the first retry round's generation: outcomes from it on replace earlier failures
--   retried                 recipients sent again, all rounds together: each had one failure that its
--                           retry's outcome replaces, so the current failures are failed rows - retried
ALTER TABLE campaigns ADD COLUMN plan_audience_id bigint;
ALTER TABLE campaigns ADD COLUMN round_generation integer NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN first_retry_generation integer;
ALTER TABLE campaigns ADD COLUMN retried bigint NOT NULL DEFAULT 0;
