-- cap-take: a topic's frequency cap for one sub-batch of one campaign: at most `max` messages per user in
-- any `window` ms (a rolling window, on Redis's clock), across the topic's campaigns.
-- Input:
--   KEYS[1] the topic's cap state (hash): `since` once built (by cap-seed-3.lua), `s0` / `s1` the window
--           slice each slice hash holds
--   KEYS[2] the even slices' hash, KEYS[3] the odd slices' hash: user id → `<campaign>:<ms>,` per message
--           counted in that slice (slice = floor(ms / window)); two slices cover any window ending now
--   ARGV[1] campaign id, ARGV[2] max, ARGV[3] window in ms, ARGV[4..] the sub-batch's user ids
-- Output: {-1} when the state is not built (new, or lost with Redis): nothing was taken; else the 1-based
--   positions capped. A user already counted for this campaign in the window passes again and is not
--   counted twice, so a sub-batch screened again after a crash spends nothing more.
-- Why Lua: check and take for every user of the sub-batch at once, atomic against every other process.
--
if redis.call('HEXISTS', KEYS[1], 'since') == 0 then return {-1} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cid = ARGV[1]
local max = tonumber(ARGV[2])
local w = tonumber(ARGV[3])
local cur = math.floor(now / w)
local curKey, curField = KEYS[2 + cur % 2], 's' .. (cur % 2)
local prevKey, prevField = KEYS[2 + (cur - 1) % 2], 's' .. ((cur - 1) % 2)
local held = redis.call('HMGET', KEYS[1], curField, prevField)
if tonumber(held[1]) ~= cur then
  -- the hash held a slice two or more windows old: nothing in it counts any more
  redis.call('DEL', curKey)
  redis.call('HSET', KEYS[1], curField, cur)
end
local n = #ARGV - 3
local curVals = redis.call('HMGET', curKey, unpack(ARGV, 4))
local prevVals = {}
if tonumber(held[2]) == cur - 1 then prevVals = redis.call('HMGET', prevKey, unpack(ARGV, 4)) end
local since = now - w
local capped = {}
local writes = {}
-- one entry string for every user counted now: most users have nothing in the window yet, and theirs is it
local entry = cid .. ':' .. now .. ','
for i = 1, n do
  local cv = curVals[i]
  local pv = prevVals[i]
  local count = 0
  local mine = false
  if cv then
    for c in string.gmatch(cv, '(%d+):%d+,') do
      count = count + 1
      if c == cid then mine = true end
    end
  end
  if pv then
    for c, ms in string.gmatch(pv, '(%d+):(%d+),') do
      if tonumber(ms) > since then
        count = count + 1
        if c == cid then mine = true end
      end
    end
  end
  if not mine then
    if count < max then
      local k = #writes
      writes[k + 1] = ARGV[i + 3]
      writes[k + 2] = cv and (cv .. entry) or entry
    else
      capped[#capped + 1] = i
    end
  end
end
if #writes > 0 then
  redis.call('HSET', curKey, unpack(writes))
  redis.call('PEXPIRE', curKey, 2 * w + 1000)
end
redis.call('PEXPIRE', KEYS[1], 2 * w + 1000)
return capped
