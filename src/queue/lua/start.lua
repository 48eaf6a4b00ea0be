-- KEYS: task, run, stream, dead, run_tasks   ARGV: entry, group, worker, now, max_attempts, run, task, ttl
-- A worker takes a delivered task. A finished, cancelled or purged task is acknowledged and
-- skipped; a task delivered more often than max_attempts (its workers keep dying) is dead.
local st = redis.call('HGET', KEYS[1], 'state')
if not st or terminal(st) then
  ack(KEYS[3], ARGV[2], ARGV[1])
  return {'skip', st or 'missing'}
end
if redis.call('HEXISTS', KEYS[2], 'cancelled_at') == 1 then
  redis.call('HINCRBY', KEYS[2], st, -1)
  redis.call('HINCRBY', KEYS[2], 'cancelled', 1)
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'reason', 'the run was cancelled', 'finished_at', ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[8])
  ack(KEYS[3], ARGV[2], ARGV[1])
  maybe_finish(KEYS[2], KEYS[5], ARGV[4], ARGV[8])
  return {'skip', 'cancelled'}
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if attempts > tonumber(ARGV[5]) then
  local reason = 'attempts exhausted: delivered ' .. (attempts - 1) .. ' times without a result (its workers were lost or killed mid-task)'
  redis.call('HINCRBY', KEYS[1], 'attempts', -1)
  redis.call('HINCRBY', KEYS[2], st, -1)
  redis.call('HINCRBY', KEYS[2], 'dead', 1)
  redis.call('HSET', KEYS[1], 'state', 'dead', 'reason', reason, 'reason_kind', 'attempts_exhausted', 'finished_at', ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[8])
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', LOG_MAXLEN, '*', 'run', ARGV[6], 'task', ARGV[7], 'reason', reason)
  ack(KEYS[3], ARGV[2], ARGV[1])
  maybe_finish(KEYS[2], KEYS[5], ARGV[4], ARGV[8])
  return {'dead', tostring(attempts - 1)}
end
if st ~= 'running' then
  redis.call('HINCRBY', KEYS[2], st, -1)
  redis.call('HINCRBY', KEYS[2], 'running', 1)
end
redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[3], 'started_at', ARGV[4], 'entry', ARGV[1])
return {'running', tostring(attempts)}
