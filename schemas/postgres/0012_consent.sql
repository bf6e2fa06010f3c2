-- 0012_consent: suppression lists, topics with their frequency caps, and a campaign's topic and priority.
-- suppressions is the record of who must not be sent to: one row per (topic, user), topic '' being the
-- global list. `fp` is the row's 64-bit fingerprint (src/domain/fingerprint.ts), computed by Herald when it
-- writes the row, so a dispatcher loads its in-process index as integers, not strings. `xid` is the
-- writing transaction: a dispatcher reloads only rows of transactions not complete at its last load
-- (xid >= that snapshot's xmin), which is exact however writers' commits interleave.
CREATE TABLE suppressions (
  topic text NOT NULL,
  user_id text NOT NULL,
  reason text,
  fp bigint NOT NULL,
  xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, user_id)
);
CREATE INDEX suppressions_by_xid ON suppressions (xid);
-- GET /v1/users/:id/suppressions
CREATE INDEX suppressions_by_user ON suppressions (user_id);

-- Taken after every committed change of suppressions and written to Redis as the highest seen, so a sender
-- learns of a change with one GET per sub-batch. A sequence never goes back, even when Redis loses the key.
CREATE SEQUENCE suppression_changes;

-- A topic's frequency cap: at most cap_max messages per user in any cap_window_s seconds, across its campaigns.
CREATE TABLE topics (
  topic text PRIMARY KEY,
  cap_max integer,
  cap_window_s integer,
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK ((cap_max IS NULL) = (cap_window_s IS NULL))
);

-- Chosen at creation: the list (besides the global one) and the caps a campaign's sends are screened by;
-- `critical` bypasses the topic's suppressions and caps, never the global list.
ALTER TABLE campaigns ADD COLUMN topic text;
ALTER TABLE campaigns ADD COLUMN priority text NOT NULL DEFAULT 'normal';
-- the cap rebuild after Redis lost its state lists a topic's campaigns
CREATE INDEX campaigns_by_topic ON campaigns (topic) WHERE topic IS NOT NULL;
