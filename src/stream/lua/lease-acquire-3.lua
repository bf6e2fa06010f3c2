-- lease-acquire: take or keep a campaign's ownership lease, with a fencing epoch.
-- KEYS[1] lease key (value "<holder>:<epoch>"), KEYS[2] epoch counter,
-- KEYS[3] the campaign's heartbeats (sorted set: holder id → Redis time in ms it lapses at; actor/liveness.ts)
-- ARGV[1] holder id, ARGV[2] lease ttl in ms
-- Returns the epoch held (> 0), or 0 when another holder has the lease.
-- A lease whose holder's heartbeat has lapsed is taken at once, without waiting for its ttl: its holder
-- is dead or stalled past the liveness ttl, and the next epoch fences it out. A holder with no heartbeat
-- at all (a closer, or liveness switched off) keeps its lease for the ttl.
-- Why Lua: read-check-write on two keys must be atomic, or two dispatchers could both think they own it.
local function take()
  local epoch = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1] .. ':' .. epoch, 'PX', ARGV[2])
  return epoch
end
local current = redis.call('GET', KEYS[1])
if not current then return take() end
local prefix = ARGV[1] .. ':'
if string.sub(current, 1, string.len(prefix)) == prefix then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(string.sub(current, string.len(prefix) + 1))
end
local holder = string.match(current, '^(.*):%d+$')
local expiry = holder and redis.call('ZSCORE', KEYS[3], holder)
if expiry then
  local t = redis.call('TIME')
  if tonumber(expiry) < tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) then return take() end
end
return 0
