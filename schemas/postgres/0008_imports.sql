-- 0008_imports: recipient imports as jobs.
-- Why: an import of millions of lines must not depend on one HTTP connection staying open while
-- PostgreSQL merges it (uWebSockets.js closes an idle connection after ~10 s). The body is streamed into
-- a staging table of its own (no indexes, filled with COPY FREEZE in the transaction that creates it,
-- laid out as a partition of `recipients`, see 0009); the transaction that stages it also moves the job
-- to 'merging', so a job is either fully staged or not staged at all. The merge into `recipients` runs in the background, in one
-- transaction with the job's move to 'completed' and the staging table's drop, so a crash mid-merge
-- leaves the audience as it was and the job 'merging', to be resumed by any process.
-- Who works on a job is not stored: the process receiving or merging it holds the transaction-level
-- advisory lock (IMPORT_LOCK_CLASS, id) (src/store/import-repo.ts), which PostgreSQL releases when that
-- process's connection goes. A job in 'receiving' or 'merging' whose lock is free has been left behind.
--   received_bytes   bytes of the request body, as sent (compressed, for a gzip body)
--   total            non-empty lines seen (a CSV header excluded)
--   staged           lines accepted into staging (total - rejected_count)
--   imported         recipients new to the audience; duplicates = staged - imported
--   rejected         the first 100 rejected lines, [{line, error}]
--   content_sha256   of the decompressed body: a re-import of a file that completed into the same
--                    audience adds nothing, and the job says which import it repeats (same_as)
CREATE TABLE imports (
  id              bigserial PRIMARY KEY,
  audience_id     bigint NOT NULL,
  status          text NOT NULL DEFAULT 'receiving'
                  CHECK (status IN ('receiving', 'merging', 'completed', 'failed')),
  format          text NOT NULL CHECK (format IN ('ndjson', 'csv')),
  received_bytes  bigint NOT NULL DEFAULT 0,
  total           bigint NOT NULL DEFAULT 0,
  staged          bigint NOT NULL DEFAULT 0,
  imported        bigint,
  duplicates      bigint,
  rejected        jsonb NOT NULL DEFAULT '[]',
  rejected_count  bigint NOT NULL DEFAULT 0,
  content_sha256  text,
  same_as         bigint,
  error           text,
  started_at      timestamptz NOT NULL DEFAULT now(),
  received_at     timestamptz,
  finished_at     timestamptz
);

CREATE INDEX imports_audience_idx ON imports (audience_id, id);
CREATE INDEX imports_open_idx ON imports (id) WHERE status IN ('receiving', 'merging');
