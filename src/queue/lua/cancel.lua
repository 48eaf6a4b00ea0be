-- Cancels a run: queued and retrying tasks end `cancelled` now, through finish(); running ones
-- at their worker's next checkpoint or start (workers check `cancelled_at`).
local run_key, run_tasks, delayed, results_stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local run, now, ttl = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', run_key) == 0 then return -1 end
redis.call('HSET', run_key, 'cancelled_at', now)
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', run_tasks)) do
  local task_key = string.format(TASK_KEY, run, id)
  local st = redis.call('HGET', task_key, 'state')
  if st == 'queued' or st == 'retrying' then
    redis.call('ZREM', delayed, run .. ':' .. id)
    finish(task_key, run_key, run_tasks, results_stream, run, id, st, 'cancelled', now, ttl, RUN_CANCELLED, 'cancelled')
    n = n + 1
  end
end
-- A run with nothing left to cancel (every task finished, or none) is stamped here.
maybe_finish(run_key, run_tasks, now, ttl)
return n
