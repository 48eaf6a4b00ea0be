-- Records a worker's final state (done, failed, cancelled) through finish(). The first
-- completion wins; a later one (a task delivered twice because its first worker was only slow)
-- is dropped and counted only as a duplicate; one from a worker that no longer owns the
-- delivery (another worker reclaimed it) is refused and counted as a stale result.
local task_key, run_key, tasks_stream, results_stream, run_tasks = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local entry, group, consumer, state, now, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local run, task, reason, reason_kind = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
-- ARGV[11..]: further field, value pairs written to the task's hash (patch, model, tokens...).
if not terminal(state) then
  return redis.error_reply('complete: ' .. tostring(state) .. ' is not a final state')
end
local st, refused = take_for_result(task_key, run_key, tasks_stream, group, entry, consumer)
if not st then return refused end
finish(task_key, run_key, run_tasks, results_stream, run, task, st, state, now, ttl, reason, reason_kind,
  'recorded_by', consumer, unpack(ARGV, 11))
-- The run counts its verification outcomes (`verified_passed`...), for status without a scan;
-- `skipped` (a run that does not verify) is no outcome.
for i = 11, #ARGV - 1, 2 do
  if ARGV[i] == 'verified' and ARGV[i + 1] ~= '' and ARGV[i + 1] ~= 'skipped' then
    redis.call('HINCRBY', run_key, 'verified_' .. ARGV[i + 1], 1)
  end
end
return 'recorded'
