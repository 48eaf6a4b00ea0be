-- A worker takes a delivered task. A finished, cancelled or purged task is acknowledged and
-- skipped; a task delivered more often than max_attempts (its workers keep dying) is dead.
local task_key, run_key, tasks_stream, dead_stream, run_tasks = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local entry, group, worker, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local max_attempts, run, task, ttl = tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
local st = redis.call('HGET', task_key, 'state')
if not st or terminal(st) then
  ack(tasks_stream, group, entry)
  return {'skip', st or 'missing'}
end
if redis.call('HEXISTS', run_key, 'cancelled_at') == 1 then
  redis.call('HINCRBY', run_key, st, -1)
  redis.call('HINCRBY', run_key, 'cancelled', 1)
  redis.call('HSET', task_key, 'state', 'cancelled', 'reason', 'the run was cancelled', 'finished_at', now)
  redis.call('EXPIRE', task_key, ttl)
  ack(tasks_stream, group, entry)
  maybe_finish(run_key, run_tasks, now, ttl)
  return {'skip', 'cancelled'}
end
local attempts = redis.call('HINCRBY', task_key, 'attempts', 1)
if attempts > max_attempts then
  local reason = 'attempts exhausted: delivered ' .. (attempts - 1) .. ' times without a result (its workers were lost or killed mid-task)'
  redis.call('HINCRBY', task_key, 'attempts', -1)
  redis.call('HINCRBY', run_key, st, -1)
  redis.call('HINCRBY', run_key, 'dead', 1)
  redis.call('HSET', task_key, 'state', 'dead', 'reason', reason, 'reason_kind', 'attempts_exhausted', 'finished_at', now)
  redis.call('EXPIRE', task_key, ttl)
  redis.call('XADD', dead_stream, 'MAXLEN', '~', LOG_MAXLEN, '*', 'run', run, 'task', task, 'reason', reason)
  ack(tasks_stream, group, entry)
  maybe_finish(run_key, run_tasks, now, ttl)
  return {'dead', tostring(attempts - 1)}
end
if st ~= 'running' then
  redis.call('HINCRBY', run_key, st, -1)
  redis.call('HINCRBY', run_key, 'running', 1)
end
redis.call('HSET', task_key, 'state', 'running', 'worker', worker, 'started_at', now, 'entry', entry)
return {'running', tostring(attempts)}
