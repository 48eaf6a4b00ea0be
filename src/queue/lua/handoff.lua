-- The LLM stage hands a gated patch (with its candidates) to the verify stage: the task's LLM
-- delivery is acknowledged, the task becomes `verifying` with the given fields and a fresh
-- verify attempt budget, and one entry goes on the verify stream, all at once; refused
-- ('not_owner') when `consumer` no longer owns the LLM delivery.
local task_key, run_key, tasks_stream, verify_stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local entry, group, consumer, run, task = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
-- ARGV[6..]: field, value pairs written to the task's hash (candidates, model, tokens...).
local st, refused = take_for_result(task_key, run_key, tasks_stream, group, entry, consumer)
if not st then return refused end
redis.call('HINCRBY', run_key, st, -1)
redis.call('HINCRBY', run_key, 'verifying', 1)
redis.call('HSET', task_key, 'state', 'verifying', 'verify_attempts', 0, unpack(ARGV, 6))
redis.call('XADD', verify_stream, '*', 'run', run, 'task', task)
return 'handed'
