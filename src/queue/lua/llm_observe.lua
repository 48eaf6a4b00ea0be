-- What one LLM call to an endpoint did, kept fleet-wide in the endpoint's state hash: request
-- and error counters, the call's latency (the last 200, for p50/p95), the circuit breaker, and
-- for `max_in_flight = "auto"` the limit (AIMD on latency: raised by one after `limit` calls in
-- a row, each made with every permit out, that took no longer than the fastest of the last 200
-- (5% and 5 ms of slack), lowered by one when a
-- call waited in the server's queue, halved on 429/503 and timeouts; each lowering at most once
-- per fastest-call time, so one burst of slow calls counts once). Outcomes: ok, busy (429/503), down (refused connection,
-- timeout, 5xx, broken stream: a refused connection takes the endpoint out at once, others
-- after three in a row), missing (the model is not there), other (counted only).
-- The breaker: `state` serving / cooling / missing_model, `until` (ms) when a probe may put it
-- back, `cooldown_ms` doubling from 5 s to 5 min while probes fail.
local state_key, latencies = KEYS[1], KEYS[2]
local outcome, rtt, auto, reason, refused = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1', ARGV[4], ARGV[5] == '1'
-- How many permits were out when the call started, its own included (0: not known).
local at_start = tonumber(ARGV[6]) or 0
-- Both keys live `keep_secs` after the endpoint's last call.
local keep_secs = ARGV[7]
local now = server_ms()
redis.call('HINCRBY', state_key, 'requests', 1)
local function cool(state, why, first_ms)
  local cd = tonumber(redis.call('HGET', state_key, 'cooldown_ms')) or 0
  if redis.call('HGET', state_key, 'state') == 'serving' or cd == 0 then cd = first_ms else cd = math.min(cd * 2, 300000) end
  redis.call('HSET', state_key, 'state', state, 'until', now + cd, 'cooldown_ms', cd, 'reason', why, 'failures', 0)
end
if outcome == 'ok' then
  redis.call('LPUSH', latencies, rtt)
  redis.call('LTRIM', latencies, 0, 199)
  -- A latency histogram since the hash was made (Prometheus's `_bucket`/`_sum`/`_count`): one
  -- counter per bucket the call falls in first (the reader makes them cumulative).
  local le = 'inf'
  for _, b in ipairs(LATENCY_BUCKETS_MS) do
    if rtt <= b then le = tostring(b) break end
  end
  redis.call('HINCRBY', state_key, 'h_' .. le, 1)
  redis.call('HINCRBY', state_key, 'h_sum_ms', rtt)
  redis.call('HINCRBY', state_key, 'h_count', 1)
  redis.call('HSET', state_key, 'failures', 0, 'state', 'serving', 'cooldown_ms', 0, 'reason', '')
else
  redis.call('HINCRBY', state_key, 'errors', 1)
  if outcome == 'down' then
    local f = redis.call('HINCRBY', state_key, 'failures', 1)
    if refused or f >= 3 then cool('cooling', reason, 5000) end
  elseif outcome == 'missing' then
    cool('missing_model', reason, 60000)
  end
end
if auto and redis.call('HGET', state_key, 'limit_source') ~= 'server' then
  local limit = tonumber(redis.call('HGET', state_key, 'limit')) or 1
  local min_rtt = tonumber(redis.call('HGET', state_key, 'min_rtt'))
  local streak = tonumber(redis.call('HGET', state_key, 'streak')) or 0
  local last = tonumber(redis.call('HGET', state_key, 'lowered_at')) or 0
  local quiet = now - last > (min_rtt or 1000)
  if outcome == 'ok' then
    -- The fastest of the last 200 calls (the latency list, this one included): a server that
    -- became slower for good is relearnt within 200 calls, and the bar never drifts up while
    -- the server stays as fast as it was.
    min_rtt = rtt
    for _, v in ipairs(redis.call('LRANGE', latencies, 0, -1)) do
      local n = tonumber(v)
      if n and n < min_rtt then min_rtt = n end
    end
    if rtt > min_rtt * 1.05 + 5 then
      -- It waited in the server's queue: one request too many. (With one request always
      -- waiting, the waits of any `limit` calls in a row add up to about one answer time, so
      -- one of them is at least 1/limit of it: the limit cannot creep past slots + 1.)
      streak = 0
      if quiet then
        limit = math.max(1, math.floor(limit) - 1)
        redis.call('HSET', state_key, 'lowered_at', now)
      end
    elseif at_start >= math.floor(limit) then
      -- Only a call made while the limit was in full use says the limit may grow: one made
      -- with permits to spare says nothing about one more.
      streak = streak + 1
      if streak >= math.floor(limit) then
        limit = math.min(256, math.floor(limit) + 1)
        streak = 0
      end
    end
    redis.call('HSET', state_key, 'min_rtt', min_rtt)
  elseif outcome == 'busy' or outcome == 'down' then
    streak = 0
    if quiet then
      limit = math.max(1, math.floor(limit / 2))
      redis.call('HSET', state_key, 'lowered_at', now)
    end
  end
  redis.call('HSET', state_key, 'limit', limit, 'streak', streak, 'limit_source', 'found')
end
redis.call('EXPIRE', state_key, keep_secs)
redis.call('EXPIRE', latencies, keep_secs)
return 1
