-- KEYS: delayed, stream   ARGV: now, limit, prefix
-- Moves retries whose backoff has elapsed back onto the task stream.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local n = 0
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  local sep = string.find(member, ':', 1, true)
  if sep then
    local run = string.sub(member, 1, sep - 1)
    local task = string.sub(member, sep + 1)
    local tkey = ARGV[3] .. ':task:' .. run .. ':' .. task
    if redis.call('HGET', tkey, 'state') == 'retrying' then
      local rkey = ARGV[3] .. ':run:' .. run
      redis.call('HINCRBY', rkey, 'retrying', -1)
      redis.call('HINCRBY', rkey, 'queued', 1)
      redis.call('HSET', tkey, 'state', 'queued')
      redis.call('XADD', KEYS[2], '*', 'run', run, 'task', task)
      n = n + 1
    end
  end
end
return n
