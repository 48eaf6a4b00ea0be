-- Records a worker's final state (done, failed, cancelled) through finish(). The first
-- completion wins; a later one (a task delivered twice because its first worker was only slow)
-- is dropped and counted only as a duplicate.
local task_key, run_key, tasks_stream, results_stream, run_tasks = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local entry, group, state, now, ttl, run, task = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local reason, reason_kind = ARGV[8], ARGV[9]
-- ARGV[10..]: further field, value pairs written to the task's hash (patch, model, tokens...).
if not terminal(state) then
  return redis.error_reply('complete: ' .. tostring(state) .. ' is not a final state')
end
local st = take_for_result(task_key, run_key, tasks_stream, group, entry)
if not st then return 'duplicate' end
finish(task_key, run_key, run_tasks, results_stream, run, task, st, state, now, ttl, reason, reason_kind, unpack(ARGV, 10))
-- The run counts its verification outcomes (`verified_passed`...), for status without a scan.
for i = 10, #ARGV - 1, 2 do
  if ARGV[i] == 'verified' and ARGV[i + 1] ~= '' then
    redis.call('HINCRBY', run_key, 'verified_' .. ARGV[i + 1], 1)
  end
end
return 'recorded'
