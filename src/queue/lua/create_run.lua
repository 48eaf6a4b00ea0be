-- KEYS: run, runs   ARGV: retention_ms, field, value, field, value...
-- Creates a run's hash and lists it in `runs`. Returns 0 when the id is taken (the caller
-- draws another suffix): writing over it would merge two runs.
-- The score is Redis's own clock, so a dispatcher host whose clock runs ahead or behind cannot
-- push runs into the future or trim others early, and it is raised above the newest listed run
-- on a tie: two runs created in the same millisecond would otherwise be ordered by their random
-- suffix, and "the latest run" could name the older one.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = now
local top = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
if top[2] and tonumber(top[2]) >= score then
  score = tonumber(top[2]) + 1
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('ZADD', KEYS[2], score, redis.call('HGET', KEYS[1], 'run'))
-- Runs older than the retention have expired; drop them from the list too.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[1]))
return 1
