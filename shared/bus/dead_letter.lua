-- Move one pending entry to the dead-letter stream with its error, and ack it.
-- KEYS[1] stream, KEYS[2] dead-letter stream, KEYS[3] errors hash
-- ARGV[1] group, ARGV[2] entry id, ARGV[3] consumer, ARGV[4] min idle ms (0: we hold it),
-- ARGV[5] deliveries, ARGV[6] error (JSON)
if tonumber(ARGV[4]) > 0 then
  -- claim first, so that of two processes sweeping at once only one moves the entry
  local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], ARGV[4], ARGV[2], 'JUSTID')
  if #claimed == 0 then
    return 0
  end
end
local args = {KEYS[2], '*'}
local found = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #found == 1 then
  for _, v in ipairs(found[1][2]) do
    table.insert(args, v)
  end
end
for _, v in ipairs({'stream', KEYS[1], 'entry_id', ARGV[2], 'group', ARGV[1],
                    'deliveries', ARGV[5], 'error', ARGV[6]}) do
  table.insert(args, v)
end
redis.call('XADD', unpack(args))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[3], KEYS[1] .. '/' .. ARGV[2])
return 1
