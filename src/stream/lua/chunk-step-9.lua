-- chunk-step: between two sub-batches of a chunk, record what was sent and decide whether to go on.
-- KEYS[1] status key, KEYS[2] ledger hash (entry id → sent), KEYS[3] overshoot counter, KEYS[4] chunk stream,
-- KEYS[5] records hash (entry id → the chunk's sub-batch records, concatenated), KEYS[6] plan generation key
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] entry id (also the ledger field: <generation>-<seq>),
-- ARGV[4] recipients of the chunk sent so far by this consumer (-1: nothing to record yet),
-- ARGV[5] size of the sub-batch just sent (counted as overshoot if the campaign is no longer sending),
-- ARGV[6] the sub-batch's record (domain/sub-batch.ts): when and which failed, so its events can be rebuilt
-- KEYS[7] live counters hash; ARGV[7] recipients of the sub-batch that failed; ARGV[9], ARGV[10], ARGV[11]
-- recipients of it skipped, suppressed and capped (withheld: domain/withheld.ts)
-- KEYS[8] the campaign's heartbeats (sorted set: holder id → Redis time in ms it lapses at); ARGV[8] liveness
-- ttl in ms (0: off). A step that finds the entry still ours also renews its process's heartbeat, if it has
-- one (XX: a closer, or an actor stopped on a pause, gets none), so a send that follows a step cannot be
-- taken over by liveness for the ttl.
-- KEYS[9] the status's time key (announce-3.lua); ARGV[12] the wall-clock time in ms at which the channel
-- answered the sub-batch (0: unknown). The sub-batch counts as overshoot only if that answer came at or
-- after the announcement: one answered before the pause but recorded after it (the step waited in Redis's
-- queue under load) was not let through by the pause. The two clocks are one on one host; across hosts,
-- their skew (NTP: milliseconds) is the error.
-- Returns {hold, status, sent}: hold is 'lost' when Redis lost the campaign's work state (no plan key: nobody
-- has re-planned yet, so nobody else sends this chunk's recipients); 'stale' when the entry is no longer
-- pending on this consumer (it was reclaimed: the fencing token is the stream's own ownership record), or
-- belongs to an older generation than the plan key's (the owner re-planned after a loss, or a later round
-- began: the new plan sends whoever this chunk's sub-batch has no outcome recorded for); else 'held'. status
-- is the announced status ('' if unknown or not held); sent is the chunk's ledger value after this step.
-- Why Lua: the ownership check, the ledger write and the status read must be one atomic step, or a
-- consumer whose chunk was taken over could still record progress; the heartbeat renewal joins them so
-- that what the step found still holds when the consumer sends next. The record is written in the same
-- step so that a sub-batch in the ledger always has its events recoverable, even if this process dies
-- before they reach ClickHouse.
local plan = redis.call('GET', KEYS[6])
if not plan then
  return {'lost', '', 0}
end
-- A plan key behind the entry's generation is one being appended (chunks go before the key): read on.
if tonumber(plan) > tonumber(string.match(ARGV[3], '^(%d+)-')) then
  return {'stale', '', 0}
end
local ledger = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
-- pcall: a stream dropped since (the campaign finished or was cancelled) answers with an error
local pending = redis.pcall('XPENDING', KEYS[4], ARGV[1], ARGV[3], ARGV[3], 1)
if type(pending) ~= 'table' or pending.err ~= nil or #pending == 0 or pending[1][2] ~= ARGV[2] then
  return {'stale', '', ledger}
end
local ttl = tonumber(ARGV[8])
local holder = ttl > 0 and string.match(ARGV[2], '^(.+)-[^-]+$')
if holder then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[8], 'XX', 'GT', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + ttl, holder)
end
local status = redis.call('GET', KEYS[1]) or ''
local sent = tonumber(ARGV[4])
if sent >= 0 then
  if sent > ledger then
    redis.call('HSET', KEYS[2], ARGV[3], sent)
    local prev = redis.call('HGET', KEYS[5], ARGV[3]) or ''
    redis.call('HSET', KEYS[5], ARGV[3], prev .. ARGV[6])
    -- Counted where the sub-batch is recorded: once, however often the chunk changes hands.
    local failed = tonumber(ARGV[7])
    local withheld = 0
    local kinds = {'skipped', 'suppressed', 'capped'}
    for i = 1, 3 do
      local n = tonumber(ARGV[8 + i] or '0')
      if n > 0 then
        redis.call('HINCRBY', KEYS[7], kinds[i], n)
        withheld = withheld + n
      end
    end
    redis.call('HINCRBY', KEYS[7], 'failed', failed)
    redis.call('HINCRBY', KEYS[7], 'delivered', sent - ledger - failed - withheld)
    ledger = sent
  end
  if status ~= '' and status ~= 'sending' then
    local since = tonumber(redis.call('GET', KEYS[9]) or '0')
    local answered = tonumber(ARGV[12] or '0')
    if answered == 0 or answered >= since then
      redis.call('INCRBY', KEYS[3], tonumber(ARGV[5]))
    end
  end
end
return {'held', status, ledger}
