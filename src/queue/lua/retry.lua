-- KEYS: task, run, stream, delayed, dead, results, run_tasks
-- ARGV: entry, group, now, due_ms, max_attempts, error_json, reason, run, task, ttl, reason_kind
-- A retryable failure: the task waits in the delayed set until due_ms, or, on its last allowed
-- attempt, goes to the dead-letter stream. Every attempt's error is appended to `errors`.
local st = take_for_result(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[1])
if not st then return 'duplicate' end
local errs = redis.call('HGET', KEYS[1], 'errors')
if not errs or errs == '' or errs == '[]' then errs = '[' .. ARGV[6] .. ']'
else errs = string.sub(errs, 1, -2) .. ',' .. ARGV[6] .. ']' end
local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts')) or 0
redis.call('HINCRBY', KEYS[2], st, -1)
if attempts >= tonumber(ARGV[5]) then
  redis.call('HINCRBY', KEYS[2], 'dead', 1)
  redis.call('HSET', KEYS[1], 'state', 'dead', 'errors', errs, 'reason', ARGV[7], 'reason_kind', ARGV[11], 'finished_at', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[10])
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', LOG_MAXLEN, '*', 'run', ARGV[8], 'task', ARGV[9], 'reason', ARGV[7])
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', LOG_MAXLEN, '*', 'run', ARGV[8], 'task', ARGV[9], 'state', 'dead')
  maybe_finish(KEYS[2], KEYS[7], ARGV[3], ARGV[10])
  return 'dead'
end
redis.call('HINCRBY', KEYS[2], 'retrying', 1)
redis.call('HSET', KEYS[1], 'state', 'retrying', 'errors', errs, 'reason', ARGV[7], 'reason_kind', ARGV[11])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[8] .. ':' .. ARGV[9])
return 'retrying'
