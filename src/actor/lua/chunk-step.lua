-- chunk-step: between two sub-batches of a chunk, record what was sent and decide whether to go on.
-- KEYS[1] status key, KEYS[2] ledger hash (entry id → sent), KEYS[3] overshoot counter, KEYS[4] chunk stream
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] entry id (also the ledger field: <generation>-<seq>),
-- ARGV[4] recipients of the chunk sent so far by this consumer (-1: nothing to record yet),
-- ARGV[5] size of the sub-batch just sent (counted as overshoot if the campaign is no longer sending)
-- Returns {state, sent}: state is 'stale' when the entry is no longer pending on this consumer (it was
-- reclaimed: the fencing token is the stream's own ownership record), else the announced status ('' if
-- unknown); sent is the chunk's ledger value after this step.
-- Why Lua: the ownership check, the ledger write and the status read must be one atomic step, or a
-- consumer whose chunk was taken over could still record progress.
local pending = redis.call('XPENDING', KEYS[4], ARGV[1], ARGV[3], ARGV[3], 1)
local ledger = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
if #pending == 0 or pending[1][2] ~= ARGV[2] then
  return {'stale', ledger}
end
local status = redis.call('GET', KEYS[1]) or ''
local sent = tonumber(ARGV[4])
if sent >= 0 then
  if sent > ledger then
    redis.call('HSET', KEYS[2], ARGV[3], sent)
    ledger = sent
  end
  if status ~= '' and status ~= 'sending' then
    redis.call('INCRBY', KEYS[3], tonumber(ARGV[5]))
  end
end
return {status, ledger}
