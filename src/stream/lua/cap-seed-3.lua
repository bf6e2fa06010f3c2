-- cap-seed: build a topic's cap state from the messages its campaigns sent (ClickHouse), after Redis lost
-- it or before its first use. Called in batches by the one process holding the topic's rebuild lock.
-- Input:
--   KEYS[1..3] as cap-take-3.lua
--   ARGV[1] window in ms, ARGV[2] 1 on the first batch (clears the state), ARGV[3] 1 on the last (marks it
--   built: `since`), ARGV[4..] triples: user id, campaign id, ms the message was sent at
-- Output: entries written.
-- Why Lua: slices are numbered on Redis's clock, as cap-take-3.lua reads them.
--
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local w = tonumber(ARGV[1])
local cur = math.floor(now / w)
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[1], 's' .. (cur % 2), cur, 's' .. ((cur - 1) % 2), cur - 1)
end
local written = 0
for i = 4, #ARGV - 2, 3 do
  local ms = tonumber(ARGV[i + 2])
  local s = math.floor(ms / w)
  if ms > now - w and (s == cur or s == cur - 1) then
    local key = KEYS[2 + s % 2]
    local v = redis.call('HGET', key, ARGV[i]) or ''
    redis.call('HSET', key, ARGV[i], v .. ARGV[i + 1] .. ':' .. ARGV[i + 2] .. ',')
    written = written + 1
  end
end
redis.call('PEXPIRE', KEYS[2], 2 * w + 1000)
redis.call('PEXPIRE', KEYS[3], 2 * w + 1000)
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'since', now) end
redis.call('PEXPIRE', KEYS[1], 2 * w + 1000)
return written
