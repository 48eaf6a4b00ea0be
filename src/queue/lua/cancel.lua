-- Cancels a run: queued and retrying tasks end `cancelled` now; running ones at their worker's
-- next checkpoint (workers check `cancelled_at`).
local run_key, run_tasks, delayed = KEYS[1], KEYS[2], KEYS[3]
local run, now, ttl = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', run_key) == 0 then return -1 end
redis.call('HSET', run_key, 'cancelled_at', now)
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', run_tasks)) do
  local task_key = string.format(TASK_KEY, run, id)
  local st = redis.call('HGET', task_key, 'state')
  if st == 'queued' or st == 'retrying' then
    redis.call('HINCRBY', run_key, st, -1)
    redis.call('HINCRBY', run_key, 'cancelled', 1)
    redis.call('HSET', task_key, 'state', 'cancelled', 'reason', 'the run was cancelled', 'finished_at', now)
    redis.call('EXPIRE', task_key, ttl)
    redis.call('ZREM', delayed, run .. ':' .. id)
    n = n + 1
  end
end
maybe_finish(run_key, run_tasks, now, ttl)
return n
