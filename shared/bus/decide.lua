-- Record an owner's decision on a partner's request, once, and publish it in the same step.
-- KEYS[1] decisions hash (request key -> verdict), KEYS[2] claims hash (slot -> request key),
-- KEYS[3] where the decision goes (P:<type> on acceptance, P:rejected:<partner> on refusal),
-- KEYS[4] the owner's stored requests (key -> event bytes), KEYS[5] request key ->
-- '<request entry id> <inbound id>'
-- ARGV[1] request key, ARGV[2] verdict ('accepted' or 'refused:<code>'), ARGV[3] reason JSON
-- ('' on acceptance), ARGV[4] claim count, then the claimed slots (acceptance only).
-- Returns nil when this call decided; else the verdict that already stands (another replica
-- decided first), 'conflict:<slot>' (a slot is held by another accepted request: decide
-- again on fresher state), or 'missing' (the request is no longer stored).
local done = redis.call('HGET', KEYS[1], ARGV[1])
if done then
  if string.sub(done, 1, 8) == 'refused:' then
    -- sent again after the idempotency window: refused already, kept nowhere
    redis.call('HDEL', KEYS[4], ARGV[1])
    redis.call('HDEL', KEYS[5], ARGV[1])
  end
  return done
end
local raw = redis.call('HGET', KEYS[4], ARGV[1])
if not raw then
  return 'missing'
end
local n = tonumber(ARGV[4])
for i = 5, 4 + n do
  local holder = redis.call('HGET', KEYS[2], ARGV[i])
  if holder and holder ~= ARGV[1] then
    return 'conflict:' .. ARGV[i]
  end
end
for i = 5, 4 + n do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[1])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local arrival = redis.call('HGET', KEYS[5], ARGV[1]) or ''
local inbound = string.match(arrival, ' (.*)$') or ''
redis.call('HDEL', KEYS[5], ARGV[1])
if ARGV[3] == '' then
  redis.call('XADD', KEYS[3], '*', 'event', raw)
else
  -- a refused request changes nothing: it is kept only on the partner's rejected stream
  redis.call('XADD', KEYS[3], '*', 'event', raw, 'reason', ARGV[3], 'inbound_id', inbound)
  redis.call('HDEL', KEYS[4], ARGV[1])
end
return false
