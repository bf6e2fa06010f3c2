-- 0003_plan_generation: which plan of a campaign is current.
-- Why: Redis is a work queue; if it loses a campaign's stream (restart without persistence, FLUSHALL,
-- failover), the owner re-plans from PostgreSQL under a new generation, leaving out every recipient
-- that already has an outcome in ClickHouse. Stream ids are <generation>-<seq>, so entries of an older
-- plan are recognised and dropped rather than sent.
ALTER TABLE campaigns ADD COLUMN plan_generation integer NOT NULL DEFAULT 0;
