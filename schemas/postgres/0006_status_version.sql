-- 0006_status_version: a counter bumped by every status change.
-- Why: the status is announced to Redis (the key consumers check between sub-batches, and pub/sub) after
-- PostgreSQL records it; two racing changes (pause and resume) can announce in the opposite order. The
-- announcement carries this version and Redis keeps only a newer one (src/stream/lua/announce.lua).
ALTER TABLE campaigns ADD COLUMN status_version bigint NOT NULL DEFAULT 0;
