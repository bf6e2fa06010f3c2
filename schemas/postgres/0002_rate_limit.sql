-- 0002_rate_limit: an optional per-campaign send rate, in messages per second.
-- Why: receivers and providers cap intake; the limit is enforced across every consumer and process
-- by a Redis GCRA limiter (src/actor/lua/rate-acquire.lua) and can be changed while sending.
ALTER TABLE campaigns ADD COLUMN rate_limit integer CHECK (rate_limit > 0);
