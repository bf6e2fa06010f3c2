-- rate-acquire: take `n` messages from a campaign's send rate (GCRA: one "theoretical arrival time").
-- KEYS[1] the campaign's rate key (holds TAT in microseconds)
-- ARGV[1] rate in messages per second, ARGV[2] n, ARGV[3] allowed burst in microseconds
-- Returns 0 when granted (and moves TAT on by n / rate), else microseconds to wait before asking again.
-- Why Lua and Redis TIME: every consumer of every process shares one schedule and one clock.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local rate = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(tat, now)
if start - now > burst then
  return start - now - burst
end
local nextTat = start + math.floor(n * 1000000 / rate)
-- expire once the schedule is in the past: an idle campaign leaves nothing behind
redis.call('SET', KEYS[1], nextTat, 'PX', math.max(1, math.ceil((nextTat - now) / 1000)) + 1000)
return 0
