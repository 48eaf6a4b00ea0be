-- Renews a lease only while this consumer still owns the delivery: XCLAIM alone would take it
-- back from a worker that legitimately reclaimed it.
local tasks_stream = KEYS[1]
local group, consumer, entry = ARGV[1], ARGV[2], ARGV[3]
local p = redis.call('XPENDING', tasks_stream, group, entry, entry, 1)
if #p == 0 or p[1][2] ~= consumer then return 0 end
redis.call('XCLAIM', tasks_stream, group, consumer, 0, entry, 'JUSTID')
return 1
