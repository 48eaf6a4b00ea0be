-- KEYS: task, run, run_tasks, stream   ARGV: run, task, now, field, value...
-- Idempotent on the task id: enqueueing the same TODO twice into a run adds nothing.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'queued', 'run', ARGV[1], 'attempts', 0, 'enqueued_at', ARGV[3], unpack(ARGV, 4))
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('HINCRBY', KEYS[2], 'total', 1)
redis.call('HINCRBY', KEYS[2], 'queued', 1)
redis.call('HDEL', KEYS[2], 'finished_at')
redis.call('PERSIST', KEYS[2])
redis.call('PERSIST', KEYS[3])
redis.call('XADD', KEYS[4], '*', 'run', ARGV[1], 'task', ARGV[2])
return 1
