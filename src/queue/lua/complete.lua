-- KEYS: task, run, stream, results, run_tasks   ARGV: entry, group, state, now, ttl, run, task, field, value...
-- Records a final state (done, failed, cancelled). The first completion wins; a later one (a
-- task delivered twice because its first worker was only slow) is dropped and counted nowhere.
local st = take_for_result(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[1])
if not st then return 'duplicate' end
redis.call('HINCRBY', KEYS[2], st, -1)
redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'finished_at', ARGV[4], unpack(ARGV, 8))
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('XADD', KEYS[4], 'MAXLEN', '~', LOG_MAXLEN, '*', 'run', ARGV[6], 'task', ARGV[7], 'state', ARGV[3])
maybe_finish(KEYS[2], KEYS[5], ARGV[4], ARGV[5])
return 'recorded'
