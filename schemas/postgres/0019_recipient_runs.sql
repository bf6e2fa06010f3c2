-- 0019_recipient_runs: runs of an audience's ids with no gap, recorded by the import that added them.
-- Why: a plan's chunks are ranges of ids (src/domain/chunk.ts), whose bounds PostgreSQL finds by walking
-- the audience's ids, 500 at a time (~0.1 µs a recipient, a second at 10M). Where every id of a range is
-- a recipient, the bounds are arithmetic: the planner reads them from here (src/store/recipient-reader.ts).
-- A merge's ids are the audience's highest id plus each line's number; when none was left out (no bad
-- line, no repeated or existing user), they have no gap. Recipients are never removed, so a run stays
-- true; a run that starts right after another one ends extends it.
--   recipient_runs  every id in [first_id, last_id] is a recipient of the audience
CREATE TABLE recipient_runs (
  audience_id bigint NOT NULL REFERENCES audiences (id),
  first_id    bigint NOT NULL,
  last_id     bigint NOT NULL CHECK (last_id >= first_id),
  PRIMARY KEY (audience_id, first_id)
);
