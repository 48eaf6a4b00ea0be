-- Hands an in-flight task back at once (worker shutdown); the attempt does not count.
local task_key, run_key, tasks_stream = KEYS[1], KEYS[2], KEYS[3]
local entry, group, run, task = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local st = redis.call('HGET', task_key, 'state')
ack(tasks_stream, group, entry)
if st ~= 'running' then return 0 end
redis.call('HINCRBY', task_key, 'attempts', -1)
redis.call('HINCRBY', run_key, 'running', -1)
redis.call('HINCRBY', run_key, 'queued', 1)
redis.call('HSET', task_key, 'state', 'queued')
redis.call('XADD', tasks_stream, '*', 'run', run, 'task', task)
return 1
