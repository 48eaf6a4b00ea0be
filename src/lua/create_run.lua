-- KEYS: run, runs   ARGV: now_ms, expire_before_ms, field, value, field, value...
-- Creates a run's hash and lists it in `runs`, scored by creation time but always above the
-- newest run already listed: two runs created in the same millisecond would otherwise tie and
-- be ordered by their random suffix, and "the latest run" could name the older one.
local score = tonumber(ARGV[1])
local top = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if top[2] and tonumber(top[2]) >= score then
  score = tonumber(top[2]) + 1
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], score, redis.call('HGET', KEYS[1], 'run'))
-- Runs older than the retention have expired; drop them from the list too.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
return score
