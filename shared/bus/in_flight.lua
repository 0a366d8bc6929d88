-- What is still on its way to an owner, in one look (shared/authority.py `_in_flight`): the
-- earliest entry the gateways have read from P:inbound and not acknowledged; the owner's
-- request stream: what its group has not read yet, and of what it has read and not
-- acknowledged, the entry that arrived first (the least `inbound_id`: gateways forward in
-- parallel, so the least entry id is not always the earliest arrival). One script: the three
-- looks see one moment.
-- KEYS[1] P:inbound, KEYS[2] the owner's request stream.
-- ARGV[1] the gateways' group, ARGV[2] the owner's group, ARGV[3] at most this many unread
-- entries, ARGV[4] the newest unread entry the caller already has ('0-0': none).
-- Returns {inbound first id or '', its inbound_id, delivered id, lag (-1 unknown), unread
-- entries as id, inbound_id, ... (after max(delivered, ARGV[4])), the id of the requests'
-- unacked entry that arrived first or '', its inbound_id}; lag over ARGV[3]: the unread part
-- is left empty; more than ARGV[3] unacked requests: '0-0' (taken as arrived first of all).
-- With KEYS[3..6] (the owner's state log, its trim mark, its set of events, its generation)
-- and ARGV[5] (a log position), ARGV[6] (a count), the same moment's state as well
-- (`StateStore.follow`): 7 more values, {generation or '', the trim mark or '', the log's
-- entries after ARGV[5] as id, key, ... (at most ARGV[6]), the set's size}.
local function inbound_of(entry)
  if not entry then return '' end
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'inbound_id' then return fields[i + 1] end
  end
  return ''
end

local function first_unacked(stream, group)
  local summary = redis.pcall('XPENDING', stream, group)
  if type(summary) ~= 'table' or summary.err or summary[1] == 0 or not summary[2] then
    return '', ''
  end
  local entry = redis.call('XRANGE', stream, summary[2], summary[2], 'COUNT', 1)
  return summary[2], inbound_of(entry[1])
end

local function id_of(text)
  local ms, seq = string.match(text, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

-- Of the entries `group` has read from `stream` and not acknowledged, the one that arrived
-- first: the least inbound_id (its own id when it has none). More than `limit` of them: '0-0'.
local function first_arrived_unacked(stream, group, limit)
  local summary = redis.pcall('XPENDING', stream, group)
  if type(summary) ~= 'table' or summary.err or summary[1] == 0 or not summary[2] then
    return '', ''
  end
  local n = summary[1]
  if n > limit then return '0-0', '' end
  local unacked = {}
  for _, p in ipairs(redis.call('XPENDING', stream, group, summary[2], summary[3], n)) do
    unacked[p[1]] = true
  end
  -- one read of the span when it is mostly unacknowledged (a batch in flight), else one each
  local entries = redis.call('XRANGE', stream, summary[2], summary[3], 'COUNT', 2 * n)
  if #entries >= 2 * n then
    entries = {}
    for id in pairs(unacked) do
      local entry = redis.call('XRANGE', stream, id, id, 'COUNT', 1)[1]
      entries[#entries + 1] = entry or {id, {}}
    end
  end
  local best, best_inbound, best_key = '', '', nil
  local function before(a, b)  -- {arrival ms, seq, id ms, seq}, compared in that order
    for k = 1, 4 do
      if a[k] ~= b[k] then return a[k] < b[k] end
    end
    return false
  end
  local function consider(id, inbound)  -- by arrival, then by id
    local ms, seq = id_of(inbound)
    if not ms then ms, seq = id_of(id) end
    local id_ms, id_seq = id_of(id)
    local key = {ms, seq, id_ms, id_seq}
    if not best_key or before(key, best_key) then best, best_inbound, best_key = id, inbound, key end
  end
  for _, e in ipairs(entries) do
    if unacked[e[1]] then
      unacked[e[1]] = nil
      consider(e[1], inbound_of(e))
    end
  end
  for id in pairs(unacked) do consider(id, '') end  -- read, then deleted: arrived as its own id
  return best, best_inbound
end

local limit = tonumber(ARGV[3])
local inbound_first, inbound_id = first_unacked(KEYS[1], ARGV[1])

local delivered, lag = '0-0', -1
local unread = {}
local groups = redis.pcall('XINFO', 'GROUPS', KEYS[2])
if type(groups) == 'table' and not groups.err then
  for _, g in ipairs(groups) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    if info['name'] == ARGV[2] then
      delivered = info['last-delivered-id']
      if info['lag'] then lag = info['lag'] end
    end
  end
  if lag <= limit then
    local after = delivered
    local a_ms, a_seq = id_of(after)
    local s_ms, s_seq = id_of(ARGV[4])
    if s_ms > a_ms or (s_ms == a_ms and s_seq > a_seq) then after = ARGV[4] end
    local entries = redis.call('XRANGE', KEYS[2], '(' .. after, '+', 'COUNT', limit + 1)
    for _, e in ipairs(entries) do
      unread[#unread + 1] = e[1]
      unread[#unread + 1] = inbound_of(e)
    end
  end
end

local requests_first, requests_inbound = first_arrived_unacked(KEYS[2], ARGV[2], limit)
if #KEYS < 6 then
  return {inbound_first, inbound_id, delivered, lag, unread, requests_first, requests_inbound}
end

local logged = {}
for _, e in ipairs(redis.call('XRANGE', KEYS[3], '(' .. ARGV[5], '+', 'COUNT', tonumber(ARGV[6]))) do
  local fields = e[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'key' then
      logged[#logged + 1] = e[1]
      logged[#logged + 1] = fields[i + 1]
    end
  end
end
return {
  inbound_first, inbound_id, delivered, lag, unread, requests_first, requests_inbound,
  redis.call('GET', KEYS[6]) or '', redis.call('ZSCORE', KEYS[4], 'below') or '', logged,
  redis.call('HLEN', KEYS[5]),
}
