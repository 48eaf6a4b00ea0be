-- Takes one of an LLM endpoint's permits: a lease-based counting semaphore, each holder's entry
-- expires unless renewed, so a killed worker cannot leak a permit. Uses the server's clock so
-- worker clocks need not agree.
local permits = KEYS[1]
local holder, ttl_ms, max = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', permits, '-inf', now)
local have = redis.call('ZSCORE', permits, holder)
if have or redis.call('ZCARD', permits) < max then
  redis.call('ZADD', permits, now + ttl_ms, holder)
  redis.call('PEXPIRE', permits, ttl_ms * 2)
  return 1
end
return 0
