-- A worker takes a delivered task. A finished or purged task is acknowledged and skipped; a
-- task of a cancelled run ends `cancelled`, and one delivered more often than max_attempts (its
-- workers keep dying) ends `dead` and is dead-lettered, both through finish().
local task_key, run_key, tasks_stream, dead_stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local results_stream, run_tasks = KEYS[5], KEYS[6]
local entry, group, worker, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local max_attempts, run, task, ttl = tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
local st = redis.call('HGET', task_key, 'state')
if not st or terminal(st) then
  ack(tasks_stream, group, entry)
  return {'skip', st or 'missing'}
end
if redis.call('HEXISTS', run_key, 'cancelled_at') == 1 then
  ack(tasks_stream, group, entry)
  finish(task_key, run_key, run_tasks, results_stream, run, task, st, 'cancelled', now, ttl, RUN_CANCELLED, 'cancelled')
  return {'skip', 'cancelled'}
end
local attempts = redis.call('HINCRBY', task_key, 'attempts', 1)
if attempts > max_attempts then
  local reason = 'attempts exhausted: delivered ' .. (attempts - 1) .. ' times without a result (its workers were lost or killed mid-task)'
  redis.call('HINCRBY', task_key, 'attempts', -1)
  ack(tasks_stream, group, entry)
  finish(task_key, run_key, run_tasks, results_stream, run, task, st, 'dead', now, ttl, reason, 'attempts_exhausted')
  redis.call('XADD', dead_stream, 'MAXLEN', '~', LOG_MAXLEN, '*', 'run', run, 'task', task, 'reason', reason)
  return {'dead', tostring(attempts - 1)}
end
if st ~= 'running' then
  redis.call('HINCRBY', run_key, st, -1)
  redis.call('HINCRBY', run_key, 'running', 1)
end
redis.call('HSET', task_key, 'state', 'running', 'worker', worker, 'started_at', now, 'entry', entry)
return {'running', tostring(attempts)}
