"""`commissioning dead-letter list` and `retry`: what failed, and replaying it once fixed.

A dead letter keeps the original entry's fields plus `stream`, `entry_id`, `group`,
`deliveries` and `error`. Retrying appends the original fields to the original stream as a new
entry (every consumer is idempotent on the event's `source`+`id`, so groups that had already
applied it ignore it) and removes the dead letter, atomically.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from shared.streams import Streams

# KEYS[1] the dead-letter stream, KEYS[2] the stream the entry came from (read beforehand:
# declared, as Redis Cluster needs); ARGV[1] the dead letter's id
RETRY = """
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
"""


async def listing(redis: Redis, streams: Streams, count: int = 100) -> list[dict[str, Any]]:
    rows = []
    for entry_id, fields in await redis.xrange(streams.dead_letter, count=count):
        error = json.loads(fields.get(b"error", b"{}") or b"{}")
        event = fields.get(b"event", b"")
        try:
            parsed = json.loads(event)
            what = f"{parsed.get('type')} {parsed.get('source')} {parsed.get('id')}"
        except ValueError:
            what = event[:60].decode(errors="replace")
        rows.append(
            {
                "dead_letter_id": entry_id.decode(),
                "stream": fields.get(b"stream", b"").decode(),
                "group": fields.get(b"group", b"").decode(),
                "deliveries": int(fields.get(b"deliveries", b"0")),
                "code": error.get("code"),
                "error": error.get("message"),
                "event": what,
            }
        )
    return rows


async def retry(redis: Redis, streams: Streams, ids: list[str]) -> dict[str, str]:
    """Replay dead letters (all when `ids` is empty). Returns id -> outcome."""
    script = redis.register_script(RETRY)
    if not ids:
        ids = [e.decode() for e, _ in await redis.xrange(streams.dead_letter)]
    out = {}
    for i in ids:
        found = await redis.xrange(streams.dead_letter, i, i)
        origin = found[0][1].get(b"stream", b"") if found else b""
        if not found or not origin:
            out[i] = "not found" if not found else "no original stream recorded"
            continue
        result = await script(keys=[streams.dead_letter, origin], args=[i])
        out[i] = {1: "replayed", 0: "not found", -1: "no original stream recorded"}[int(result)]
    return out
