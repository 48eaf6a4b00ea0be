-- Which of the given endpoints may get work now: for each state hash in KEYS, 'serving', 'out'
-- (cooling down, or its model missing, until its `until`), or 'probe' when its cool-down is
-- over and this caller is the one to probe it (the claim holds for 15 s, so one worker probes
-- while the others keep away).
local out = {}
local now = server_ms()
for i, key in ipairs(KEYS) do
  local st = redis.call('HGET', key, 'state')
  if not st or st == 'serving' then
    out[i] = 'serving'
  elseif now >= (tonumber(redis.call('HGET', key, 'until')) or 0) then
    redis.call('HSET', key, 'until', now + 15000)
    out[i] = 'probe'
  else
    out[i] = 'out'
  end
end
return out
