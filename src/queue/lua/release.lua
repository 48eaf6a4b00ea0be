-- KEYS: task, run, stream   ARGV: entry, group, run, task
-- Hands an in-flight task back at once (worker shutdown); the attempt does not count.
local st = redis.call('HGET', KEYS[1], 'state')
ack(KEYS[3], ARGV[2], ARGV[1])
if st ~= 'running' then return 0 end
redis.call('HINCRBY', KEYS[1], 'attempts', -1)
redis.call('HINCRBY', KEYS[2], 'running', -1)
redis.call('HINCRBY', KEYS[2], 'queued', 1)
redis.call('HSET', KEYS[1], 'state', 'queued')
redis.call('XADD', KEYS[3], '*', 'run', ARGV[3], 'task', ARGV[4])
return 1
