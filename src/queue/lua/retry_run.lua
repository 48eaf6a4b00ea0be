-- KEYS: run, run_tasks, stream   ARGV: prefix, run, state
-- Requeues a run's tasks in `state` (failed, dead or cancelled) with a fresh attempt budget;
-- their error history is kept.
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local tkey = ARGV[1] .. ':task:' .. ARGV[2] .. ':' .. id
  if redis.call('HGET', tkey, 'state') == ARGV[3] then
    redis.call('HINCRBY', KEYS[1], ARGV[3], -1)
    redis.call('HINCRBY', KEYS[1], 'queued', 1)
    redis.call('HSET', tkey, 'state', 'queued', 'attempts', 0)
    redis.call('HDEL', tkey, 'finished_at', 'reason', 'reason_kind', 'patch')
    redis.call('PERSIST', tkey)
    redis.call('XADD', KEYS[3], '*', 'run', ARGV[2], 'task', id)
    n = n + 1
  end
end
if n > 0 then
  redis.call('HDEL', KEYS[1], 'finished_at', 'cancelled_at')
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
return n
