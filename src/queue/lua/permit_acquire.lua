-- KEYS: permits   ARGV: holder, ttl_ms, max
-- A lease-based counting semaphore: each holder's entry expires unless renewed, so a killed
-- worker cannot leak a permit. Uses the server's clock so worker clocks need not agree.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local have = redis.call('ZSCORE', KEYS[1], ARGV[1])
if have or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
  return 1
end
return 0
