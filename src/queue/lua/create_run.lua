-- Creates a run's hash and lists it in `runs`. Returns 0 when the id is taken (the caller
-- draws another suffix): writing over it would merge two runs.
-- The score is Redis's own clock, so a dispatcher host whose clock runs ahead or behind cannot
-- push runs into the future or trim others early, and it is raised above the newest listed run
-- on a tie: two runs created in the same millisecond would otherwise be ordered by their random
-- suffix, and "the latest run" could name the older one.
local run_key, runs = KEYS[1], KEYS[2]
local retention_ms = tonumber(ARGV[1])
-- ARGV[2..]: field, value pairs of the run's hash (its `run` field is the id listed).
if redis.call('EXISTS', run_key) == 1 then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local score = now
local top = redis.call('ZRANGE', runs, -1, -1, 'WITHSCORES')
if top[2] and tonumber(top[2]) >= score then
  score = tonumber(top[2]) + 1
end
redis.call('HSET', run_key, unpack(ARGV, 2))
redis.call('ZADD', runs, score, redis.call('HGET', run_key, 'run'))
-- Runs older than the retention have expired; drop them from the list too.
redis.call('ZREMRANGEBYSCORE', runs, '-inf', now - retention_ms)
return 1
