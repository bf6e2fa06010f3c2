-- touch: reset the idle time of entries a consumer still holds, and report the ones it no longer holds.
-- KEYS[1] chunk stream; ARGV[1] group, ARGV[2] consumer, ARGV[3..] entry ids
-- Returns the ids that are not pending on this consumer any more (taken over, or acknowledged).
-- Why Lua: XCLAIM alone would take an entry back from whoever reclaimed it; the ownership check and the
-- claim must be one step, or a consumer that stalled past the reclaim time could steal its chunk back.
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
