-- Creates a run's hash, unlisted: the run is listed in `runs` (list_run.lua) only once its
-- tasks are in, so a run that fails half-way never becomes "the latest run". Returns 0 when
-- the id is taken (the caller draws another suffix): writing over it would merge two runs.
-- The hash expires after the retention from the start (enqueue and every task's ending
-- refresh it), so a run that is abandoned or never finishes does not stay forever; an expiry
-- Redis refuses (a retention beyond its range) removes the hash again and fails.
local run_key = KEYS[1]
local retention_ms = ARGV[1]
-- ARGV[2..]: field, value pairs of the run's hash.
if redis.call('EXISTS', run_key) == 1 then
  return 0
end
redis.call('HSET', run_key, unpack(ARGV, 2))
local r = redis.pcall('PEXPIRE', run_key, retention_ms)
if type(r) == 'table' and r.err then
  redis.call('DEL', run_key)
  return redis.error_reply(r.err)
end
return 1
