-- Hands an in-flight task back at once (worker shutdown); the attempt does not count. An LLM
-- stage task goes back to `queued`; a verify stage task stays `verifying`, delivered anew.
-- Only the delivery's owner hands it back: a worker whose lease lapsed ('not_owner') leaves
-- the task to the worker that took it.
local task_key, run_key, stream = KEYS[1], KEYS[2], KEYS[3]
local entry, group, consumer, run, task = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local stage_state, attempts_field = ARGV[6], ARGV[7]
local st = redis.call('HGET', task_key, 'state')
if st and not terminal(st) and not owns(stream, group, entry, consumer) then
  redis.call('HINCRBY', run_key, 'stale_results', 1)
  return 'not_owner'
end
ack(stream, group, entry)
if st ~= stage_state then return 'skipped' end
redis.call('HINCRBY', task_key, attempts_field, -1)
if stage_state == 'running' then
  redis.call('HINCRBY', run_key, 'running', -1)
  redis.call('HINCRBY', run_key, 'queued', 1)
  redis.call('HSET', task_key, 'state', 'queued')
end
redis.call('XADD', stream, '*', 'run', run, 'task', task)
return 'released'
