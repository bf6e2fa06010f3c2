-- takeover: claim at once the pending entries of every consumer whose process's heartbeat has lapsed.
-- KEYS[1] chunk stream, KEYS[2] the campaign's heartbeats (sorted set: holder id → Redis time in ms it lapses at)
-- ARGV[1] group, ARGV[2] claiming consumer, ARGV[3] the claimer's holder id, ARGV[4] liveness ttl in ms,
-- ARGV[5] most entries to claim
-- Returns the claimed entries as XCLAIM does ({id, {field, value, …}}, …).
-- A consumer's holder is its name without the last "-<role>" (domain/liveness.ts). Its entries are taken
-- only when the holder's heartbeat is there and has lapsed: a holder with no heartbeat (a closer, a
-- process whose actor stopped on a pause, liveness switched off) is left to XAUTOCLAIM after the idle
-- time, as before. The claimer's own heartbeat is renewed first, so a process never takes from itself.
-- A dead consumer left with nothing pending is deleted, and a dead holder with no consumer left holding
-- anything loses its heartbeat entry (a holder woken from a stall writes a new one at its next beat).
-- Why Lua: the heartbeat check and the claim must be one step, or a process whose heartbeat came back
-- meanwhile (a stall just shorter than the ttl) could lose the chunk it is sending.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], 'GT', now + tonumber(ARGV[4]), ARGV[3])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[4]) * 20)
local consumers = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if type(consumers) ~= 'table' or consumers.err ~= nil then return {} end
local budget = tonumber(ARGV[5])
local out = {}
local dead = {}
local busy = {}
for _, c in ipairs(consumers) do
  local name, pending
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1] elseif c[i] == 'pending' then pending = tonumber(c[i + 1]) end
  end
  -- never the claiming consumer itself: what it just claimed is pending on it
  local holder = name and name ~= ARGV[2] and string.match(name, '^(.+)-[^-]+$')
  local expiry = holder and holder ~= ARGV[3] and redis.call('ZSCORE', KEYS[2], holder)
  if expiry and tonumber(expiry) < now then
    dead[holder] = true
    if pending > 0 and budget > 0 then
      local ids = {}
      for _, p in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', budget, name)) do ids[#ids + 1] = p[1] end
      if #ids > 0 then
        for _, e in ipairs(redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(ids))) do out[#out + 1] = e end
        budget = budget - #ids
        pending = pending - #ids
      end
    end
    if pending == 0 then redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name) else busy[holder] = true end
  end
end
for holder in pairs(dead) do
  if not busy[holder] then redis.call('ZREM', KEYS[2], holder) end
end
return out
