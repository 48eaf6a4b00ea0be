-- Lists a created run in `runs`, once its tasks are in. Returns 0 when the run's hash is gone
-- (purged or expired meanwhile).
-- The score is Redis's own clock, so a dispatcher host whose clock runs ahead or behind cannot
-- push runs into the future or trim others early, and it is raised above the newest listed run
-- on a tie: two runs listed in the same millisecond would otherwise be ordered by their random
-- suffix, and "the latest run" could name the older one.
local run_key, runs = KEYS[1], KEYS[2]
local run, retention_ms = ARGV[1], tonumber(ARGV[2])
if redis.call('EXISTS', run_key) == 0 then
  return 0
end
local now = server_ms()
local score = now
local top = redis.call('ZRANGE', runs, -1, -1, 'WITHSCORES')
if top[2] and tonumber(top[2]) >= score then
  score = tonumber(top[2]) + 1
end
redis.call('ZADD', runs, score, run)
-- Runs older than the retention have expired; drop them from the list too.
redis.call('ZREMRANGEBYSCORE', runs, '-inf', now - retention_ms)
return 1
