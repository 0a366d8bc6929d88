-- Publish an entity's new version once: only if what was last published is still `expected`.
-- KEYS[1] hash of last-published versions, KEYS[2] stream
-- ARGV[1] entity id, ARGV[2] expected ('' = never published), ARGV[3] new version,
-- ARGV[4..] the stream entry's fields and values
local current = redis.call('HGET', KEYS[1], ARGV[1])
if (current or '') ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4))
return 1
