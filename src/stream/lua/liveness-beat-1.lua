-- liveness-beat: renew (or withdraw) a process's heartbeat in one campaign.
-- KEYS[1] the campaign's heartbeats (sorted set: holder id → Redis time in ms the heartbeat lapses at)
-- ARGV[1] holder id, ARGV[2] ttl in ms (0: withdraw the heartbeat; -1: release, a heartbeat lapsed now,
-- so whoever takes over next takes the process's chunks in the campaign at once)
-- Returns the new expiry (ms, Redis clock), or 0 when withdrawn.
-- Why Lua: the expiry is taken on Redis's clock (TIME), the one every script that reads the heartbeats
-- compares it with, so the clocks of the processes never matter.
local ttl = tonumber(ARGV[2])
if ttl == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
local t = redis.call('TIME')
if ttl < 0 then
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[1], now - 1, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], 60000)
  return now - 1
end
local expiry = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + ttl
redis.call('ZADD', KEYS[1], 'GT', expiry, ARGV[1])
-- The set outlives its last beat by 20 ttls, then goes: a campaign finished (its set dropped) while a
-- process that beat once more died leaves nothing behind.
redis.call('PEXPIRE', KEYS[1], ttl * 20)
return expiry
