-- Verification failed and repairs are left: the task goes back to the LLM stage with the
-- failure (the `repair` field), a fresh attempt budget and its repair count raised by one;
-- refused ('not_owner') when `consumer` no longer owns the verify delivery.
local task_key, run_key, verify_stream, tasks_stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local entry, group, consumer, run, task = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
-- ARGV[6..]: field, value pairs written to the task's hash (repair, verify_output...).
local st, refused = take_for_result(task_key, run_key, verify_stream, group, entry, consumer)
if not st then return refused end
redis.call('HINCRBY', run_key, st, -1)
redis.call('HINCRBY', run_key, 'queued', 1)
redis.call('HINCRBY', task_key, 'repairs', 1)
redis.call('HSET', task_key, 'state', 'queued', 'attempts', 0, unpack(ARGV, 6))
redis.call('XADD', tasks_stream, '*', 'run', run, 'task', task)
return 'repairing'
