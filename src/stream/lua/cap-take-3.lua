-- cap-take: a topic's frequency cap for one sub-batch of one campaign: at most `max` messages per user in
-- any `window` ms (a rolling window, on Redis's clock), across the topic's campaigns.
-- Input:
--   KEYS[1] the topic's cap state (hash): `since` once built (by cap-seed-3.lua), `s0` / `s1` the window
--           slice each slice hash holds
--   KEYS[2] the even slices' hash, KEYS[3] the odd slices' hash: user id → `<campaign>:<ms>,` per message
--           counted in that slice (slice = floor(ms / window)); two slices cover any window ending now
--   ARGV[1] campaign id, ARGV[2] max, ARGV[3] window in ms, ARGV[4] the user ids of one or more sub-batches
--           of the campaign joined by NUL (no user id holds one): one argument, split by one pattern match,
--           instead of one per user; ARGV[5] how many there are (checked: a mismatch is an error, never
--           a cap on the wrong users)
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
local ids = {}
local n = 0
for id in string.gmatch(ARGV[4], '[^%z]+') do
  n = n + 1
  ids[n] = id
end
if n ~= tonumber(ARGV[5]) then return redis.error_reply('cap-take: ' .. n .. ' user ids, expected ' .. ARGV[5]) end
if n == 0 then return {} end
-- Lua's unpack takes a few thousand values at most: HMGET and HSET of more users go in pieces.
local PIECE = 2000
local function hmget(key)
  if n <= PIECE then return redis.call('HMGET', key, unpack(ids)) end
  local out = {}
  for from = 1, n, PIECE do
    local got = redis.call('HMGET', key, unpack(ids, from, math.min(from + PIECE - 1, n)))
    for k = 1, #got do out[from + k - 1] = got[k] end
  end
  return out
end
local curVals = hmget(curKey)
local prevVals = {}
if tonumber(held[2]) == cur - 1 and redis.call('EXISTS', prevKey) == 1 then prevVals = hmget(prevKey) end
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
      writes[k + 1] = ids[i]
      writes[k + 2] = cv and (cv .. entry) or entry
    else
      capped[#capped + 1] = i
    end
  end
end
if #writes > 0 then
  for from = 1, #writes, 2 * PIECE do
    local to = math.min(from + 2 * PIECE - 1, #writes)
    if from == 1 and to == #writes then
      redis.call('HSET', curKey, unpack(writes))
    else
      redis.call('HSET', curKey, unpack(writes, from, to))
    end
  end
  redis.call('PEXPIRE', curKey, 2 * w + 1000)
end
redis.call('PEXPIRE', KEYS[1], 2 * w + 1000)
return capped
