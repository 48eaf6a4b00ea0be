-- A worker or verifier takes a delivered task it owns. A finished or purged task, or one that is
-- not at this stage (a stale delivery of the other stage), is acknowledged and skipped; a task of a
-- cancelled run ends `cancelled`, and one delivered more often than max_attempts at this stage
-- (its workers keep dying) ends `dead` and is dead-lettered, both through finish().
local task_key, run_key, stream, dead_stream = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local results_stream, run_tasks = KEYS[5], KEYS[6]
local entry, group, worker, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local max_attempts, run, task, ttl = tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[8]
-- The stage: the state a task holds while taken ('running' for the LLM stage, 'verifying' for
-- the verify stage) and the hash fields of its attempt counter, taker and start time.
local stage_state, attempts_field, worker_field, started_field = ARGV[9], ARGV[10], ARGV[11], ARGV[12]
-- A delivery this worker no longer owns (its lease lapsed between the fetch and this start, as
-- in a partition, and another worker claimed it) is left alone: no attempt counted, no taker
-- written over the owner's.
if not owns(stream, group, entry, worker) then
  return {'not_owner', ''}
end
local st = redis.call('HGET', task_key, 'state')
if not st or terminal(st) then
  ack(stream, group, entry)
  return {'skip', st or 'missing'}
end
-- Only a verifying task belongs to the verify stage, and only a non-verifying one to the LLM
-- stage: a delivery left over from before a hand-over or a repair is dropped.
if (stage_state == 'verifying') ~= (st == 'verifying') then
  ack(stream, group, entry)
  return {'skip', st}
end
if redis.call('HEXISTS', run_key, 'cancelled_at') == 1 then
  ack(stream, group, entry)
  finish(task_key, run_key, run_tasks, results_stream, run, task, st, 'cancelled', now, ttl, RUN_CANCELLED, 'cancelled',
    'recorded_by', worker, worker_field, worker)
  return {'skip', 'cancelled'}
end
local attempts = redis.call('HINCRBY', task_key, attempts_field, 1)
if attempts > max_attempts then
  local reason = 'attempts exhausted: delivered ' .. (attempts - 1) .. ' times without a result (its workers were lost or killed mid-task)'
  redis.call('HINCRBY', task_key, attempts_field, -1)
  ack(stream, group, entry)
  finish(task_key, run_key, run_tasks, results_stream, run, task, st, 'dead', now, ttl, reason, 'attempts_exhausted',
    'recorded_by', worker, worker_field, worker)
  redis.call('XADD', dead_stream, 'MAXLEN', '~', LOG_MAXLEN, '*', 'run', run, 'task', task, 'reason', reason)
  return {'dead', tostring(attempts - 1)}
end
if st ~= stage_state then
  redis.call('HINCRBY', run_key, st, -1)
  redis.call('HINCRBY', run_key, stage_state, 1)
end
redis.call('HSET', task_key, 'state', stage_state, worker_field, worker, started_field, now, 'entry', entry)
return {'running', tostring(attempts)}
