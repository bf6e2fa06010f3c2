-- suppression-mark: raise the latest suppression change mark a sender must have seen.
-- Input:
--   KEYS[1] the mark (a number from PostgreSQL's suppression_changes sequence)
--   ARGV[1] a mark taken after a change committed
-- Output: the mark now held.
-- Why Lua: keep the higher of two racing writers' marks in one step; the marks come from a sequence, so a
-- key lost with Redis and set again is higher than any mark a sender saw before.
--
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local v = tonumber(ARGV[1])
if v > cur then
  redis.call('SET', KEYS[1], ARGV[1])
  return v
end
return cur
