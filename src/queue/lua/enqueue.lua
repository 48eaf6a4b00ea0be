-- Adds a task to a run, idempotent on the task id: enqueueing the same TODO twice into a run
-- adds nothing. The task, the run's hash and its task set expire after the retention (`ttl`,
-- seconds) from now: a run that never finishes does not stay forever.
local task_key, run_key, run_tasks, tasks_stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local run, task, now, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
-- ARGV[5..]: field, value pairs of the task's spec.
if redis.call('EXISTS', task_key) == 1 then return 0 end
redis.call('HSET', task_key, 'state', 'queued', 'run', run, 'attempts', 0, 'enqueued_at', now, unpack(ARGV, 5))
redis.call('SADD', run_tasks, task)
redis.call('HINCRBY', run_key, 'total', 1)
redis.call('HINCRBY', run_key, 'queued', 1)
redis.call('HDEL', run_key, 'finished_at')
redis.call('EXPIRE', task_key, ttl)
redis.call('EXPIRE', run_key, ttl)
redis.call('EXPIRE', run_tasks, ttl)
redis.call('XADD', tasks_stream, '*', 'run', run, 'task', task)
return 1
