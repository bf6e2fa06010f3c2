-- lease-acquire: take or keep a campaign's ownership lease, with a fencing epoch.
-- KEYS[1] lease key (value "<holder>:<epoch>"), KEYS[2] epoch counter
-- ARGV[1] holder id, ARGV[2] lease ttl in ms
-- Returns the epoch held (> 0), or 0 when another holder has the lease.
-- Why Lua: read-check-write on two keys must be atomic, or two dispatchers could both think they own it.
local current = redis.call('GET', KEYS[1])
if not current then
  local epoch = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1] .. ':' .. epoch, 'PX', ARGV[2])
  return epoch
end
local prefix = ARGV[1] .. ':'
if string.sub(current, 1, string.len(prefix)) == prefix then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(string.sub(current, string.len(prefix) + 1))
end
return 0
