-- Gives a permit back, or withdraws from the queue (a waiter that stopped waiting), and hands
-- what is free to the next waiters at once (grant_waiters). A permit handed to this holder
-- while it was giving up is given back too. Returns 1 when it held a permit.
local permits, waiters, queue = KEYS[1], KEYS[2], KEYS[3]
local holder, ttl_ms, max, wake_prefix = ARGV[1], tonumber(ARGV[2]), permit_max(KEYS[4], ARGV[3]), ARGV[4]
local held = redis.call('ZREM', permits, holder)
redis.call('ZREM', waiters, holder)
redis.call('DEL', wake_prefix .. holder)
grant_waiters(permits, waiters, queue, wake_prefix, max, server_ms(), ttl_ms)
return held
