-- lease-renew: extend the lease only if we still hold it with the same epoch.
-- KEYS[1] lease key; ARGV[1] token "<holder>:<epoch>", ARGV[2] ttl in ms
-- Returns 1 when renewed, 0 when the lease was lost (expired and taken, or deleted).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
