-- raise: set a number key to a value unless it already holds a higher or equal one (never lower it).
-- Used for
--   the suppression change mark a sender must have seen (a number from PostgreSQL's suppression_changes
--   sequence, taken after a change committed): a key lost with Redis and set again is higher than any
--   mark a sender saw before;
--   a campaign's plan generation key, raised by the owner before it re-plans a campaign whose work state
--   Redis lost: from then on the ledger step (chunk-step-9.lua) finds chunks of earlier generations stale
--   and the sink's fence (fence-3.lua) drops their events, so what a holder elsewhere sends of them after it
--   is left to the new plan and never counted twice.
-- Input:
--   KEYS[1] the key
--   ARGV[1] the value
-- Output: the value the key holds now.
-- Why Lua: keep the higher of two racing writers' values in one step (an owner that lost its lease
-- meanwhile may be behind the one that has it).
--
local held = redis.call('GET', KEYS[1])
local v = tonumber(ARGV[1])
-- an absent key takes any value (a plan of generation 0 too)
if not held or v > tonumber(held) then
  redis.call('SET', KEYS[1], ARGV[1])
  return v
end
return tonumber(held)
