-- fence: before an event batch is written to ClickHouse, which of its chunks may this consumer still
-- write events for? Only the chunk's current holder may; a consumer whose chunk was taken over (it
-- stalled, or a cancel took it) leaves them to the new holder, which rebuilds them from the ledger.
-- KEYS[1] chunk stream, KEYS[2] plan generation key; ARGV[1] group, ARGV[2] consumer, ARGV[3..] entry ids
-- Returns the ids whose events must NOT be written by this consumer.
-- An entry still pending on the consumer is kept and its idle time reset (it is being worked on).
-- An entry of the current plan pending elsewhere, or gone (acknowledged, or its stream dropped), belongs
-- to someone who has taken responsibility for its events: drop.
-- An entry of another generation, or with no plan key at all, outlived a Redis that lost its data: its
-- sub-batches were sent and nobody else can know it, so they are kept.
-- Why Lua: the ownership check and the idle reset must be one step, like touch.lua.
local plan = redis.call('GET', KEYS[2])
local drop = {}
if not plan then return drop end
for i = 3, #ARGV do
  local gen = string.match(ARGV[i], '^(%d+)-')
  if gen == plan then
    local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
    if type(p) == 'table' and p.err == nil and #p == 1 and p[1][2] == ARGV[2] then
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    else
      drop[#drop + 1] = ARGV[i]
    end
  end
end
return drop
