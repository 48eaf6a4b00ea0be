-- Takes one of an LLM endpoint's permits, first come first served. Lapsed permits and
-- waiters are dropped and free permits handed to earlier waiters first (grant_waiters); then
-- the caller gets one if any is left, or (with `wait` = 1) joins the queue, keeping its place
-- if it is already in it, with a registration that lapses after `ttl_ms` unless renewed by
-- calling again. `max` 0: the limit the fleet found (`auto`, in the endpoint's limit hash).
-- Returns, when the caller holds a permit (taken now, or handed to it while
-- it waited), how many permits are out with it (at least 1), else 0. Server clock throughout: worker clocks need not agree.
local permits, waiters, queue, limits = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local holder, ttl_ms, max = ARGV[1], tonumber(ARGV[2]), permit_max(KEYS[4], ARGV[3])
local wait, wake_prefix = ARGV[4] == '1', ARGV[5]
local now = server_ms()
max = grant_waiters(permits, waiters, queue, wake_prefix, max, now, ttl_ms)
if redis.call('ZSCORE', permits, holder) then
  redis.call('ZADD', permits, now + ttl_ms, holder)
  redis.call('DEL', wake_prefix .. holder)
  return redis.call('ZCARD', permits)
end
-- grant_waiters leaves free permits only when nobody waits: no one is overtaken here.
if redis.call('ZCARD', permits) < max then
  redis.call('ZADD', permits, now + ttl_ms, holder)
  redis.call('ZREM', waiters, holder)
  return redis.call('ZCARD', permits)
end
if wait then
  if not redis.call('ZSCORE', waiters, holder) then
    redis.call('RPUSH', queue, holder)
  end
  redis.call('ZADD', waiters, now + ttl_ms, holder)
  redis.call('PEXPIRE', waiters, ttl_ms * 2)
  redis.call('PEXPIRE', queue, ttl_ms * 2)
end
return 0
