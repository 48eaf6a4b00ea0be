-- Requeues a run's tasks in `state` (failed, dead or cancelled) with a fresh attempt budget;
-- their error history is kept. ARGV[4..], when given, are the only task ids considered (the
-- dashboard's filtered retry); ids that are not the run's are ignored. The tasks, the run and its task set expire after the retention
-- (`ttl`, seconds) from now, as at enqueue.
local run_key, run_tasks, tasks_stream = KEYS[1], KEYS[2], KEYS[3]
local run, state, ttl = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', run_key) == 0 then return -1 end
local n = 0
local ids = redis.call('SMEMBERS', run_tasks)
if #ARGV > 3 then
  ids = {}
  for i = 4, #ARGV do
    if redis.call('SISMEMBER', run_tasks, ARGV[i]) == 1 then table.insert(ids, ARGV[i]) end
  end
end
for _, id in ipairs(ids) do
  local task_key = string.format(TASK_KEY, run, id)
  if redis.call('HGET', task_key, 'state') == state then
    redis.call('HINCRBY', run_key, state, -1)
    redis.call('HINCRBY', run_key, 'queued', 1)
    local verified = redis.call('HGET', task_key, 'verified')
    if verified and verified ~= '' then
      redis.call('HINCRBY', run_key, 'verified_' .. verified, -1)
    end
    redis.call('HSET', task_key, 'state', 'queued', 'attempts', 0)
    redis.call('HDEL', task_key, 'finished_at', 'reason', 'reason_kind', 'patch', 'verified',
      'verify_output', 'verify_ms', 'repair', 'repairs', 'candidates', 'candidates_count', 'candidate')
    redis.call('EXPIRE', task_key, ttl)
    redis.call('XADD', tasks_stream, '*', 'run', run, 'task', id)
    n = n + 1
  end
end
if n > 0 then
  redis.call('HDEL', run_key, 'finished_at', 'cancelled_at')
  redis.call('EXPIRE', run_key, ttl)
  redis.call('EXPIRE', run_tasks, ttl)
end
return n
