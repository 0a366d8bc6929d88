-- Apply one entry's effect and ack it, atomically: a crash can never separate the two.
-- KEYS[1] seen set, KEYS[2] stream ('' when there is no entry to ack), KEYS[3] errors hash
-- ARGV[1] group, ARGV[2] entry id, ARGV[3] once-key ('' = always apply), ARGV[4] command count,
-- then per command: its argument count followed by its arguments.
local fresh = 1
if ARGV[3] ~= '' and redis.call('SISMEMBER', KEYS[1], ARGV[3]) == 1 then
  fresh = 0
end
if fresh == 1 then
  local i = 5
  for _ = 1, tonumber(ARGV[4]) do
    local n = tonumber(ARGV[i])
    redis.call(unpack(ARGV, i + 1, i + n))
    i = i + n + 1
  end
  if ARGV[3] ~= '' then
    redis.call('SADD', KEYS[1], ARGV[3])
  end
end
if KEYS[2] ~= '' then
  redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
  redis.call('HDEL', KEYS[3], KEYS[2] .. '/' .. ARGV[2])
end
return fresh
