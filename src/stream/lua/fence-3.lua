-- fence: before an event batch is written to ClickHouse, which of its chunks may this consumer still
-- write events for? Only the chunk's current holder may; a consumer whose chunk was taken over (it
-- stalled, or a cancel took it) leaves them to the new holder, which rebuilds them from the ledger.
-- KEYS[1] chunk stream, KEYS[2] plan generation key, KEYS[3] the campaign's heartbeats (sorted set: holder id
-- → Redis time in ms it lapses at); ARGV[1] group, ARGV[2] consumer, ARGV[3] liveness ttl in ms (0: off),
-- ARGV[4..] entry ids
-- Returns the ids whose events must NOT be written by this consumer.
-- An entry still pending on the consumer is kept and its idle time reset (it is being worked on), and the
-- consumer's process's heartbeat is renewed if it has one (XX), so neither the idle time nor the liveness
-- takeover can take it before the insert that follows.
-- An entry of the current plan pending elsewhere, or gone (acknowledged, or its stream dropped), belongs
-- to someone who has taken responsibility for its events: drop.
-- With no plan key at all, Redis lost its data and nobody has re-planned: the sub-batches were sent and
-- nobody else can know it, so they are kept (the owner re-plans only after raising the plan key and a
-- grace for such writes: campaign-actor.ts). An entry of an older generation than the plan key's was
-- re-planned without it: the new plan sends its recipients, so drop. One of a newer generation than the key
-- is being appended (chunks go before the key): checked as the current plan's.
-- Why Lua: the ownership check, the idle reset and the heartbeat renewal must be one step, like touch.lua.
local plan = redis.call('GET', KEYS[2])
local drop = {}
if not plan then return drop end
local kept = false
local current = tonumber(plan)
for i = 4, #ARGV do
  local gen = tonumber(string.match(ARGV[i], '^(%d+)-'))
  if gen < current then
    drop[#drop + 1] = ARGV[i]
  else
    local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
    if type(p) == 'table' and p.err == nil and #p == 1 and p[1][2] == ARGV[2] then
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
      kept = true
    else
      drop[#drop + 1] = ARGV[i]
    end
  end
end
local ttl = tonumber(ARGV[3])
local holder = kept and ttl > 0 and string.match(ARGV[2], '^(.+)-[^-]+$')
if holder then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[3], 'XX', 'GT', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + ttl, holder)
end
return drop
