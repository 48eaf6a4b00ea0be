-- Extends a permit this holder still has (an expired one is not taken back: acquire again).
local permits = KEYS[1]
local holder, ttl_ms = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if not redis.call('ZSCORE', permits, holder) then return 0 end
redis.call('ZADD', permits, now + ttl_ms, holder)
redis.call('PEXPIRE', permits, ttl_ms * 2)
return 1
