-- KEYS: stream   ARGV: group, consumer, entry
-- Renews a lease only while this consumer still owns the delivery: XCLAIM alone would take it
-- back from a worker that legitimately reclaimed it.
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
