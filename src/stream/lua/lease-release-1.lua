-- lease-release: give the lease up, but only our own (never a successor's).
-- KEYS[1] lease key; ARGV[1] token "<holder>:<epoch>"
-- Returns 1 when released, 0 when it was not ours.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
