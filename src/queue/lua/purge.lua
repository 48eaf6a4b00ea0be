-- Removes a run and its tasks. Deliveries still in the stream are skipped by workers (the task
-- is gone); file blobs are shared between runs and expire on their own.
local run_key, run_tasks, delayed, runs = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local run = ARGV[1]
local ids = redis.call('SMEMBERS', run_tasks)
for _, id in ipairs(ids) do
  redis.call('DEL', string.format(TASK_KEY, run, id))
  redis.call('ZREM', delayed, run .. ':' .. id)
end
local existed = redis.call('DEL', run_key)
redis.call('DEL', run_tasks)
redis.call('ZREM', runs, run)
if existed == 0 and #ids == 0 then return -1 end
return #ids
