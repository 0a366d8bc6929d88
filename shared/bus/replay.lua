-- A dead letter replayed (`commissioning dead-letter retry`): its own fields appended to the
-- stream it came from as a new entry (every consumer is idempotent on the event's source+id,
-- so groups that applied it already ignore it), and the dead letter removed, in one step.
-- KEYS[1] the dead-letter stream, KEYS[2] the stream the entry came from (read beforehand:
-- declared, as Redis Cluster needs); ARGV[1] the dead letter's id.
-- Returns 1 replayed, 0 not found, -1 no such original stream recorded on it.
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then return 0 end
local fields, args, stream = found[1][2], {}, nil
for i = 1, #fields, 2 do
  if fields[i] == 'stream' then stream = fields[i + 1] end
end
if stream ~= KEYS[2] then return -1 end
for i = 1, #fields, 2 do
  local k = fields[i]
  if k ~= 'stream' and k ~= 'entry_id' and k ~= 'group' and k ~= 'deliveries' and k ~= 'error' then
    table.insert(args, k); table.insert(args, fields[i + 1])
  end
end
redis.call('XADD', KEYS[2], '*', unpack(args))
redis.call('XDEL', KEYS[1], ARGV[1])
return 1
