-- announce: record a campaign's status in Redis and tell the dispatchers, unless a newer one is there.
-- KEYS[1] status key, KEYS[2] status version key, KEYS[3] the status's time key (Redis time in ms the
-- campaign stopped sending, or last started: a ledger step counts a sub-batch answered from then on as
-- the pause's overshoot)
-- ARGV[1] status, ARGV[2] version (campaigns.status_version), ARGV[3] TTL in seconds (0: none),
-- ARGV[4] pub/sub channel, ARGV[5] message
-- Returns 1 if announced, 0 if a newer status was already announced.
-- Why Lua: racing transitions are announced after PostgreSQL has ordered them, in any order; comparing
-- and setting in one step keeps the key (and the messages) in PostgreSQL's order.
local current = tonumber(redis.call('GET', KEYS[2]) or '-1')
local version = tonumber(ARGV[2])
if current >= version then return 0 end
local ttl = tonumber(ARGV[3])
-- The time is when the campaign stopped sending: a cancel after a pause keeps the pause's.
local prev = redis.call('GET', KEYS[1])
local keepAt = prev and prev ~= 'sending' and ARGV[1] ~= 'sending' and redis.call('EXISTS', KEYS[3]) == 1
local t = redis.call('TIME')
local at = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ttl)
  if keepAt then redis.call('EXPIRE', KEYS[3], ttl) else redis.call('SET', KEYS[3], at, 'EX', ttl) end
else
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('SET', KEYS[2], ARGV[2])
  if keepAt then redis.call('PERSIST', KEYS[3]) else redis.call('SET', KEYS[3], at) end
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
