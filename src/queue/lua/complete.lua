-- Records a final state (done, failed, cancelled). The first completion wins; a later one (a
-- task delivered twice because its first worker was only slow) is dropped and counted nowhere.
local task_key, run_key, tasks_stream, results_stream, run_tasks = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local entry, group, state, now, ttl, run, task = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
-- ARGV[8..]: field, value pairs written to the task's hash.
local st = take_for_result(task_key, run_key, tasks_stream, group, entry)
if not st then return 'duplicate' end
redis.call('HINCRBY', run_key, st, -1)
redis.call('HINCRBY', run_key, state, 1)
redis.call('HSET', task_key, 'state', state, 'finished_at', now, unpack(ARGV, 8))
redis.call('EXPIRE', task_key, ttl)
redis.call('XADD', results_stream, 'MAXLEN', '~', LOG_MAXLEN, '*', 'run', run, 'task', task, 'state', state)
maybe_finish(run_key, run_tasks, now, ttl)
return 'recorded'
