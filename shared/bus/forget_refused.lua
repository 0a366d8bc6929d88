-- Forget the verdicts of requests refused before a time: a request sent again after that is
-- decided afresh (as the bus's idempotency records, refusals are kept for a window; accepted
-- verdicts stay, each beside its request in the owner's state).
-- KEYS[1] decisions hash, KEYS[2] sorted set of refused request keys by when.
-- ARGV[1] forget those refused before this (ms), ARGV[2] at most this many in one call.
-- Returns how many were forgotten.
local keys = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, key in ipairs(keys) do
  local verdict = redis.call('HGET', KEYS[1], key)
  if verdict and string.sub(verdict, 1, 8) == 'refused:' then
    redis.call('HDEL', KEYS[1], key)
  end
  redis.call('ZREM', KEYS[2], key)
end
return #keys
