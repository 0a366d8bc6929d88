-- Record an owner's decisions on partners' requests, each once, and publish them in the same
-- step, in order.
-- KEYS[1] decisions hash (request key -> verdict), KEYS[2] claims hash (slot -> request key),
-- KEYS[3] the owner's stored requests (key -> event bytes), KEYS[4] request key ->
-- '<request entry id> <inbound id>', KEYS[5] sorted set of refused request keys by when (their
-- verdicts are forgotten after a window: forget_refused.lua), KEYS[6..] where decisions go
-- (P:<type> on acceptance, P:rejected:<partner> on refusal).
-- ARGV[1] now (ms); then per decision, request key, verdict ('accepted' or 'refused:<code>'),
-- reason JSON ('' on acceptance), index into KEYS of where it goes, claim count, then the
-- claimed slots.
-- Returns one verdict per decision handled: 'ok' when this call decided it as asked, else the
-- verdict that already stands (another replica decided first: on a refusal, the request is
-- forgotten again), 'missing' (no longer stored), or 'conflict:<slot>' (a slot is held by
-- another accepted request). It stops after the first decision that did not go as asked: the
-- owner judged the later ones on what it assumed, so it decides them again on fresher state.
local out = {}
local now = tonumber(ARGV[1])
local i = 2
while i <= #ARGV do
  local key, verdict, reason = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local dest, n = KEYS[tonumber(ARGV[i + 3])], tonumber(ARGV[i + 4])
  local first, last = i + 5, i + 4 + n
  i = last + 1
  local done = redis.call('HGET', KEYS[1], key)
  if done then
    if string.sub(done, 1, 8) == 'refused:' then
      -- sent again after the idempotency window: refused already, kept nowhere
      redis.call('HDEL', KEYS[3], key)
      redis.call('HDEL', KEYS[4], key)
    end
    out[#out + 1] = done
    if done ~= verdict then return out end
  else
    local raw = redis.call('HGET', KEYS[3], key)
    if not raw then
      out[#out + 1] = 'missing'
      return out
    end
    for j = first, last do
      local holder = redis.call('HGET', KEYS[2], ARGV[j])
      if holder and holder ~= key then
        out[#out + 1] = 'conflict:' .. ARGV[j]
        return out
      end
    end
    for j = first, last do
      redis.call('HSET', KEYS[2], ARGV[j], key)
    end
    redis.call('HSET', KEYS[1], key, verdict)
    local arrival = redis.call('HGET', KEYS[4], key) or ''
    local inbound = string.match(arrival, ' (.*)$') or ''
    redis.call('HDEL', KEYS[4], key)
    if reason == '' then
      redis.call('XADD', dest, '*', 'event', raw)
    else
      -- a refused request changes nothing: it is kept only on the partner's rejected stream
      redis.call('XADD', dest, '*', 'event', raw, 'reason', reason, 'inbound_id', inbound)
      redis.call('HDEL', KEYS[3], key)
      redis.call('ZADD', KEYS[5], now, key)
    end
    out[#out + 1] = 'ok'
  end
end
return out
