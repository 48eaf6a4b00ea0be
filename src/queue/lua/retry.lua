-- A retryable failure: the task waits in the delayed set for backoff_ms after now by Redis's
-- clock (a worker's clock may be off), or, on its last allowed attempt, ends dead through
-- finish() and goes to the dead-letter stream too. Every attempt's error is appended to
-- `errors`. Refused ('not_owner') when `consumer` no longer owns the delivery. A deferral
-- (`counts` = '0': the LLM server asked to be asked later, past what the worker waits in place)
-- gives the attempt back and is counted in `deferrals` instead, so backpressure never dead-letters
-- a task.
local task_key, run_key, tasks_stream, delayed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local dead_stream, results_stream, run_tasks = KEYS[5], KEYS[6], KEYS[7]
local entry, group, consumer, now, backoff_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local max_attempts, error_json, reason = tonumber(ARGV[6]), ARGV[7], ARGV[8]
local run, task, ttl, reason_kind = ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local counts = ARGV[13] ~= '0'
local st, refused = take_for_result(task_key, run_key, tasks_stream, group, entry, consumer)
if not st then return refused end
local errs = redis.call('HGET', task_key, 'errors')
if not errs or errs == '' or errs == '[]' then errs = '[' .. error_json .. ']'
else errs = string.sub(errs, 1, -2) .. ',' .. error_json .. ']' end
local attempts = tonumber(redis.call('HGET', task_key, 'attempts')) or 0
if not counts then
  redis.call('HINCRBY', task_key, 'attempts', -1)
  redis.call('HINCRBY', task_key, 'deferrals', 1)
elseif attempts >= max_attempts then
  finish(task_key, run_key, run_tasks, results_stream, run, task, st, 'dead', now, ttl, reason, reason_kind, 'errors', errs,
    'recorded_by', consumer)
  redis.call('XADD', dead_stream, 'MAXLEN', '~', LOG_MAXLEN, '*', 'run', run, 'task', task, 'reason', reason)
  return 'dead'
end
redis.call('HINCRBY', run_key, st, -1)
redis.call('HINCRBY', run_key, 'retrying', 1)
redis.call('HSET', task_key, 'state', 'retrying', 'errors', errs, 'reason', reason, 'reason_kind', reason_kind)
redis.call('ZADD', delayed, server_ms() + backoff_ms, run .. ':' .. task)
return 'retrying'
