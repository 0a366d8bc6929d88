-- Apply a batch of entries' effects and ack each, atomically per entry: a crash can never
-- separate an effect from its ack, and one round trip serves the whole batch.
-- KEYS[1] once-keys applied (sorted set, scored by when: shared.bus.retention trims it to a
-- window), KEYS[2] the stream the entries are acked on (with no entry to ack, entry ids are
-- '' and KEYS[2] is the errors hash again), KEYS[3] errors hash, KEYS[4..] every key the
-- entries' commands touch: declared so that on Redis Cluster the script runs where they all
-- are (one partnership's keys share a hash slot) and a slot migration is seen as such
-- ARGV[1] group, ARGV[2] entry count, ARGV[3] the time in ms, then per entry: its id, its
-- once-key ('' = always apply), '1' when it was delivered before (an error may be recorded
-- for it: cleared once it is applied; an entry read for the first time has none), its command
-- count, then per command: its argument count followed by its arguments.
-- The entries applied are acked together at the end, in one XACK per thousand: the script
-- runs as one step, so each effect is still never seen without its ack.
-- Returns, per entry: 1 applied, 0 already applied (a duplicate: acked, nothing done), or the
-- error of the command that failed (that entry is not acked: it stays pending for a retry).
local out = {}
local acks = {}
local now = ARGV[3]
local i = 4
for e = 1, tonumber(ARGV[2]) do
  local id, once, redelivered, count = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  i = i + 4
  local fresh = 1
  if once ~= '' and redis.call('ZSCORE', KEYS[1], once) then
    fresh = 0
  end
  local failed = false
  for _ = 1, count do
    local n = tonumber(ARGV[i])
    if fresh == 1 and not failed then
      local reply = redis.pcall(unpack(ARGV, i + 1, i + n))
      if type(reply) == 'table' and reply.err then
        failed = reply.err
      end
    end
    i = i + n + 1
  end
  if failed then
    out[e] = failed
  else
    if fresh == 1 and once ~= '' then
      redis.call('ZADD', KEYS[1], now, once)
    end
    if id ~= '' then
      acks[#acks + 1] = id
      if redelivered == '1' then
        redis.call('HDEL', KEYS[3], KEYS[2] .. '/' .. id)
      end
    end
    out[e] = fresh
  end
end
for first = 1, #acks, 1000 do
  redis.call('XACK', KEYS[2], ARGV[1], unpack(acks, first, math.min(first + 999, #acks)))
end
return out
