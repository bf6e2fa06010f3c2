-- 0010_segments: segments (a named filter over one audience's recipient attributes) and campaigns sent
-- to a segment or an inline filter.
-- Why: a campaign often goes to part of an audience (`country in (DE, AT) and plan = pro`). The filter is
-- a JSON expression (src/domain/segment-filter.ts) compiled to SQL (src/domain/segment-sql.ts) that
-- PostgreSQL evaluates where the rows are, never row by row in Herald:
-- - recipients get a GIN index on attrs (jsonb_path_ops: the smaller, faster opclass, which serves `@>`,
--   the form `eq` and `in` compile to). Created on the partitioned table, it is built here for every
--   existing partition; an import that builds a new partition builds it beside the other two
--   (src/store/import-repo.ts), and partitions created empty (retry rounds) get it from the parent.
-- - herald_attr_instant reads an attribute as an instant: a JSON string in the ISO-8601 form the
--   validator's ISO_INSTANT takes (the same regular expression), a real calendar day, no offset meaning
--   UTC; anything else is NULL, never an error, so one odd value cannot fail a whole count or plan.
--   The nested CASEs fix the order of evaluation: nothing is cast before the pattern has matched.
-- - a campaign keeps the filter it was created with (`filter`, the JSON as given): a segment changed or
--   deleted later does not change what a campaign plans, re-plans or retries. `segment_id` says where it
--   came from (NULL for an inline filter or no filter).
-- - a segment's exact count is kept with the audience extent it counted (`counted_max_id`): recipients
--   are never updated or removed and imports only add ids above the audience's highest, so the count
--   stays exact for that extent, and a later count only counts the ids above it.
CREATE TABLE segments (
  id             bigserial PRIMARY KEY,
  name           text NOT NULL,
  audience_id    bigint NOT NULL REFERENCES audiences (id),
  filter         jsonb NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  counted_max_id bigint,
  counted        bigint
);

ALTER TABLE campaigns ADD COLUMN segment_id bigint REFERENCES segments (id), ADD COLUMN filter jsonb;

CREATE INDEX recipients_attrs_idx ON recipients USING gin (attrs jsonb_path_ops);

CREATE FUNCTION herald_attr_instant(v jsonb) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN jsonb_typeof(v) = 'string' THEN
    CASE WHEN (v #>> '{}') ~ '^(?!0000)(\d{4})-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(?:[T ]([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:\.(\d{1,6}))?)?(Z|[+-](?:0\d|1[0-4]):[0-5]\d)?)?$' THEN
      CASE WHEN substr(v #>> '{}', 9, 2)::int <= CASE substr(v #>> '{}', 6, 2)
          WHEN '02' THEN CASE WHEN (substr(v #>> '{}', 1, 4)::int % 4 = 0 AND substr(v #>> '{}', 1, 4)::int % 100 <> 0)
                                OR substr(v #>> '{}', 1, 4)::int % 400 = 0 THEN 29 ELSE 28 END
          WHEN '04' THEN 30 WHEN '06' THEN 30 WHEN '09' THEN 30 WHEN '11' THEN 30 ELSE 31 END THEN
        CASE WHEN (v #>> '{}') ~ '(Z|[+-]\d\d:\d\d)$' THEN (v #>> '{}')::timestamptz
             ELSE (v #>> '{}')::timestamp AT TIME ZONE 'UTC' END
      END
    END
  END
$$;
