-- Moves retries whose backoff has elapsed by Redis's clock (never the calling worker's, which
-- may run fast) back onto the task stream.
local delayed, tasks_stream = KEYS[1], KEYS[2]
local limit = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', server_ms(), 'LIMIT', 0, limit)
local n = 0
for _, member in ipairs(due) do
  redis.call('ZREM', delayed, member)
  local sep = string.find(member, ':', 1, true)
  if sep then
    local run = string.sub(member, 1, sep - 1)
    local task = string.sub(member, sep + 1)
    local task_key = string.format(TASK_KEY, run, task)
    if redis.call('HGET', task_key, 'state') == 'retrying' then
      local run_key = string.format(RUN_KEY, run)
      redis.call('HINCRBY', run_key, 'retrying', -1)
      redis.call('HINCRBY', run_key, 'queued', 1)
      redis.call('HSET', task_key, 'state', 'queued')
      redis.call('XADD', tasks_stream, '*', 'run', run, 'task', task)
      n = n + 1
    end
  end
end
return n
