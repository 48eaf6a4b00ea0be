-- KEYS: run, run_tasks, delayed, runs   ARGV: prefix, run
-- Removes a run and its tasks. Deliveries still in the stream are skipped by workers (the task
-- is gone); file blobs are shared between runs and expire on their own.
local ids = redis.call('SMEMBERS', KEYS[2])
for _, id in ipairs(ids) do
  redis.call('DEL', ARGV[1] .. ':task:' .. ARGV[2] .. ':' .. id)
  redis.call('ZREM', KEYS[3], ARGV[2] .. ':' .. id)
end
local existed = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[4], ARGV[2])
if existed == 0 and #ids == 0 then return -1 end
return #ids
