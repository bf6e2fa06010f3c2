-- 0016_suppression_batches: bulk suppression changes (PUT / DELETE /v1/suppressions) as batches.
-- Why: a request of a million lines must not depend on one HTTP connection staying open while PostgreSQL
-- applies it (uWebSockets.js closes an idle connection after ~10 s, and the apply into `suppressions` and
-- its three indexes takes longer than that in a used database). The body is streamed into a staging table
-- of its own (suppression_stage_<id>, no index, COPY FREEZE), in the transaction that also writes the batch
-- row `applying` and the audit row, so a batch is staged whole or not at all. The apply runs in one
-- transaction with the move to `completed` and the staging table's drop, so a crash mid-apply leaves the
-- lists as they were and the batch `applying`, resumed by any process; the request waits for it only
-- HERALD_IMPORT_ANSWER_WAIT_MS, then answers 202 with the batch.
-- Batches apply one at a time across processes, oldest first: the applier holds the transaction-level
-- advisory lock (SUPPRESSION_LOCK_CLASS, 0) (src/store/consent-repo.ts), so a request's change never lands
-- before an older request's; a batch `applying` long after its receipt has been left behind.
--   total, accepted, rejected_count, rejected   what the request's body held (rejected: the first 100)
--   changed        rows the apply inserted or changed (put: new suppressions and changed reasons), or removed
--   mark_raised    put only: the change mark was raised in Redis after the apply committed, so every sender
--                  reloads its index; a batch completed but not marked (its process stopped in between)
--                  is marked by the sweep
CREATE TABLE suppression_batches (
  id              bigserial PRIMARY KEY,
  op              text NOT NULL CHECK (op IN ('put', 'delete')),
  status          text NOT NULL DEFAULT 'applying' CHECK (status IN ('applying', 'completed', 'failed')),
  total           bigint NOT NULL,
  accepted        bigint NOT NULL,
  rejected_count  bigint NOT NULL,
  rejected        jsonb NOT NULL DEFAULT '[]',
  changed         bigint,
  mark_raised     boolean NOT NULL DEFAULT false,
  error           text,
  started_at      timestamptz NOT NULL,
  received_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
  finished_at     timestamptz
);

-- the sweep: batches left applying, and applied puts whose mark is not raised yet
CREATE INDEX suppression_batches_open ON suppression_batches (id)
  WHERE status = 'applying' OR (status = 'completed' AND op = 'put' AND NOT mark_raised);

-- When a pair was last written: by a bulk PUT, the batch's receipt (received_at); by an unsubscribe, its own
-- time. A bulk DELETE lifts only pairs written before it was received, so an unsubscribe that came after the
-- DELETE request stays however late the DELETE is applied (batches apply in id order, one at a time).
-- Existing rows take the migration's time.
ALTER TABLE suppressions ADD COLUMN written_at timestamptz NOT NULL DEFAULT now();
