-- 0018_attr_value_counts: per-value counts of an indexed attribute (src/store/attr-index.ts), so that a
-- segment selecting by a string `eq` / `in` alone is counted without reading the audience.
-- Why: a count reads every recipient's attrs from the heap (PostgreSQL cannot count from an expression
-- index without the heap), ~2 s for 10M here; the counts kept per segment make a segment's second count
-- instant, not the first count of a new one. Recipients are never updated or removed and an import adds
-- only ids above the audience's highest, so the recipients up to `up_to_id` with each value never change:
-- a count is the stored values' sum plus a count of the recipients above `up_to_id`, read from the index.
-- Written when the attribute's index is built, in one transaction with its attr_counted row; an attribute
-- of more than 10,000 distinct values (an email, an id) gets none, and a row with too_many, so that it is
-- not grouped again by every later build request.
--   attr_counted       (audience, attribute) counted up to up_to_id (or found too_many to count)
--   attr_value_counts  the recipients up to that id whose attribute is that string (attrKeySql)
CREATE TABLE attr_counted (
  audience_id bigint NOT NULL REFERENCES audiences (id),
  attr        text NOT NULL,
  up_to_id    bigint NOT NULL,
  too_many    boolean NOT NULL DEFAULT false,
  counted_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (audience_id, attr)
);
CREATE TABLE attr_value_counts (
  audience_id bigint NOT NULL,
  attr        text NOT NULL,
  value       text COLLATE "C" NOT NULL,
  n           bigint NOT NULL,
  PRIMARY KEY (audience_id, attr, value),
  FOREIGN KEY (audience_id, attr) REFERENCES attr_counted (audience_id, attr) ON DELETE CASCADE
);
