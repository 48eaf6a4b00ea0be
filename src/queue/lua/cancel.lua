-- KEYS: run, run_tasks, delayed   ARGV: prefix, run, now, ttl
-- Cancels a run: queued and retrying tasks end `cancelled` now; running ones at their worker's
-- next checkpoint (workers check `cancelled_at`).
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'cancelled_at', ARGV[3])
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local tkey = ARGV[1] .. ':task:' .. ARGV[2] .. ':' .. id
  local st = redis.call('HGET', tkey, 'state')
  if st == 'queued' or st == 'retrying' then
    redis.call('HINCRBY', KEYS[1], st, -1)
    redis.call('HINCRBY', KEYS[1], 'cancelled', 1)
    redis.call('HSET', tkey, 'state', 'cancelled', 'reason', 'the run was cancelled', 'finished_at', ARGV[3])
    redis.call('EXPIRE', tkey, ARGV[4])
    redis.call('ZREM', KEYS[3], ARGV[2] .. ':' .. id)
    n = n + 1
  end
end
maybe_finish(KEYS[1], KEYS[2], ARGV[3], ARGV[4])
return n
