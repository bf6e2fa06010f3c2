-- 0009_recipients_by_audience: recipients partitioned by audience, one partition per audience.
-- Why: an import, a count or a keyset read of one audience then touches only that audience's table and
-- indexes, never the whole `recipients` table: its statistics and visibility map are refreshed per
-- audience, and the first import into an audience builds its partition outright (the staged rows get
-- their two indexes in one sort each and are attached as the partition: src/store/import-repo.ts)
-- instead of inserting millions of rows one index entry at a time into indexes shared with every
-- other audience. Partitions are named recipients_a<audience id> and are created by the first import
-- (or retry round) of their audience; an audience without one has no recipients.
-- Recipients that existed before this migration stay together in one DEFAULT partition,
-- recipients_shared, whose CHECK names the highest audience id it may hold: later audiences are above
-- it, so attaching their partitions needs no scan of it. Imports into those older audiences insert
-- into it as before.
-- id has no identity default any more (partitioned tables cannot have one in PostgreSQL 15): every
-- writer gives ids (an import: the audience's highest id plus the line number).
DO $$
DECLARE
  top bigint;
BEGIN
  ALTER TABLE recipients RENAME TO recipients_shared;
  ALTER TABLE recipients_shared RENAME CONSTRAINT recipients_pkey TO recipients_shared_pkey;
  ALTER TABLE recipients_shared RENAME CONSTRAINT recipients_audience_id_user_id_key TO recipients_shared_audience_id_user_id_key;
  ALTER TABLE recipients_shared ALTER COLUMN id DROP IDENTITY;
  CREATE TABLE recipients (
    audience_id bigint NOT NULL,
    id          bigint NOT NULL,
    user_id     text COLLATE "C" NOT NULL,
    address     text,
    attrs       jsonb,
    -- INCLUDE (user_id): the planner reads (id, user_id) in id order with an index-only scan.
    PRIMARY KEY (audience_id, id) INCLUDE (user_id),
    UNIQUE (audience_id, user_id)
  ) PARTITION BY LIST (audience_id);
  SELECT max(audience_id) INTO top FROM recipients_shared;
  IF top IS NULL THEN
    DROP TABLE recipients_shared;
  ELSE
    EXECUTE format('ALTER TABLE recipients_shared ADD CONSTRAINT recipients_shared_audiences CHECK (audience_id <= %s)', top);
    ALTER TABLE recipients ATTACH PARTITION recipients_shared DEFAULT;
  END IF;
END $$;
