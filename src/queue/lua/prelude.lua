if redis.replicate_commands then redis.replicate_commands() end
-- Shared by every script (prepended at load time, after the constants TASK_KEY and RUN_KEY (key
-- templates for string.format), LOG_MAXLEN and TERMINAL_STATES that queue/scripts.rs renders
-- from the Rust definitions).
-- Terminal states: a task in one of them is never worked on or counted again.
local function terminal(st)
  for _, t in ipairs(TERMINAL_STATES) do
    if st == t then return true end
  end
  return false
end
-- Once every task of a run has finished, stamp the run. (Its hash and task set expire after
-- the retention from the last task's ending: finish() refreshes their expiry.)
local function maybe_finish(run_key, tasks_key, now, ttl)
  local fin = 0
  for _, t in ipairs(TERMINAL_STATES) do
    fin = fin + (tonumber(redis.call('HGET', run_key, t)) or 0)
  end
  if fin >= (tonumber(redis.call('HGET', run_key, 'total')) or 0) then
    redis.call('HSET', run_key, 'finished_at', now)
  end
end
local function ack(stream, group, entry)
  redis.call('XACK', stream, group, entry)
  redis.call('XDEL', stream, entry)
end
-- Redis's own clock in ms: deadlines several hosts must agree on (retries, leases, permits)
-- never come from a worker's clock.
local function server_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Whether `consumer` owns `entry` in the group's pending list (its lease is still its own).
local function owns(stream, group, entry, consumer)
  local p = redis.call('XPENDING', stream, group, entry, entry, 1)
  return #p > 0 and p[1][2] == consumer
end
-- For scripts that record a result or a retry: acknowledges the delivery and returns the task's
-- state; or nil and why not: 'duplicate' when the task already finished (a second delivery's
-- result: counted in `duplicates`, then dropped) or was purged, 'not_owner' when `consumer` no
-- longer owns the delivery (its lease lapsed and another worker took the task, or the entry was
-- acknowledged): counted in `stale_results`, nothing written, the entry left to its owner.
local function take_for_result(task_key, run_key, stream, group, entry, consumer)
  local st = redis.call('HGET', task_key, 'state')
  if not st or terminal(st) then
    ack(stream, group, entry)
    if st then redis.call('HINCRBY', run_key, 'duplicates', 1) end
    return nil, 'duplicate'
  end
  if not owns(stream, group, entry, consumer) then
    redis.call('HINCRBY', run_key, 'stale_results', 1)
    return nil, 'not_owner'
  end
  ack(stream, group, entry)
  return st
end
-- The reason a task cancelled with its run is given.
local RUN_CANCELLED = 'the run was cancelled'
-- Every ending of a task, whichever script ends it, records the same things: the run's counters
-- move from `from_state` to `state`; the task's hash gets `state`, `finished_at`, `reason` and
-- `reason_kind` (removed for done, which clears an earlier attempt's: no empty field) and the
-- extra field, value
-- pairs, and expires after the retention, as do (again) the run's hash and task set; ONE entry (`run`, `task`, `state`) goes on the results
-- stream; and the run is stamped finished if this was its last task. The caller has checked
-- that the task was not already in a terminal state, so a task ends once.
local function finish(task_key, run_key, run_tasks, results_stream, run, task, from_state, state,
                      now, ttl, reason, reason_kind, ...)
  redis.call('HINCRBY', run_key, from_state, -1)
  redis.call('HINCRBY', run_key, state, 1)
  redis.call('HSET', task_key, 'state', state, 'finished_at', now, 'reason', reason,
    'reason_kind', reason_kind, ...)
  if redis.call('HGET', task_key, 'reason') == '' then
    redis.call('HDEL', task_key, 'reason', 'reason_kind')
  end
  -- The run's totals of what its tasks cost, so that a listing of runs reads one hash per run
  -- and not every task (the dashboard).
  local extra = {...}
  for i = 1, #extra - 1, 2 do
    local k = extra[i]
    if (k == 'prompt_tokens' or k == 'completion_tokens' or k == 'llm_ms') and tonumber(extra[i + 1]) then
      redis.call('HINCRBY', run_key, k, math.floor(tonumber(extra[i + 1])))
    end
  end
  redis.call('EXPIRE', task_key, ttl)
  redis.call('EXPIRE', run_key, ttl)
  redis.call('EXPIRE', run_tasks, ttl)
  redis.call('XADD', results_stream, 'MAXLEN', '~', LOG_MAXLEN, '*', 'run', run, 'task', task,
    'state', state)
  -- The bounded history: this minute's count per final state (Redis's clock), kept for the
  -- window (24 h unless the dashboard set another).
  -- The whole task's duration (enqueued to finished, queue wait included; the dispatcher's and
  -- the worker's clocks) in the fleet's histogram, per final state.
  local started = tonumber(redis.call('HGET', task_key, 'enqueued_at'))
  if started and tonumber(now) and tonumber(now) >= started then
    local took = tonumber(now) - started
    local le = 'inf'
    for _, b in ipairs(TASK_BUCKETS_MS) do
      if took <= b then le = tostring(b) break end
    end
    redis.call('HINCRBY', TASK_DURATIONS_KEY, state .. ':' .. le, 1)
    redis.call('HINCRBY', TASK_DURATIONS_KEY, state .. ':sum_ms', took)
    redis.call('HINCRBY', TASK_DURATIONS_KEY, state .. ':count', 1)
  end
  local minute_key = string.format(MINUTE_KEY, math.floor(tonumber(redis.call('TIME')[1]) / 60))
  redis.call('HINCRBY', minute_key, state, 1)
  redis.call('EXPIRE', minute_key, tonumber(redis.call('GET', HISTORY_WINDOW_KEY)) or 86400)
  maybe_finish(run_key, run_tasks, now, ttl)
end
-- LLM permits (a lease-based counting semaphore per endpoint, FIFO for its waiters): drops
-- lapsed permits (a SIGKILLed holder's) and lapsed waiters, then hands free permits to the
-- waiters in arrival order: each grant is written to the permits set for the waiter and
-- announced on its wake list, which it waits on with BLPOP, so a released permit reaches the
-- next waiter in one round trip, without polling. `max` < 1 means no limit is known yet: 1.
-- An endpoint's permit count: the configured one, or with '0' (`max_in_flight = "auto"`) the
-- limit the fleet has found so far (field `limit` of the endpoint's limit hash; 1 to start).
local function permit_max(limits, max)
  max = tonumber(max) or 1
  if max > 0 then return max end
  return math.floor(tonumber(redis.call('HGET', limits, 'limit')) or 1)
end
local function grant_waiters(permits, waiters, queue, wake_prefix, max, now, ttl_ms)
  if max < 1 then max = 1 end
  redis.call('ZREMRANGEBYSCORE', permits, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', waiters, '-inf', now)
  while redis.call('ZCARD', permits) < max do
    local w = redis.call('LPOP', queue)
    if not w then break end
    if redis.call('ZSCORE', waiters, w) then
      redis.call('ZREM', waiters, w)
      redis.call('ZADD', permits, now + ttl_ms, w)
      local wake = wake_prefix .. w
      -- What the waiter learns: how many permits are out with its own (for `auto`).
      redis.call('RPUSH', wake, redis.call('ZCARD', permits))
      redis.call('PEXPIRE', wake, ttl_ms)
    end
  end
  redis.call('PEXPIRE', permits, ttl_ms * 2)
  return max
end
