"""The ports on Redis. Every Redis command and script a port needs is here."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError, ResponseError

from shared import viewers
from shared.ports import (
    Decision,
    Followed,
    GroupState,
    LogTrimmed,
    OnItsWay,
    Pending,
    Ports,
    Reader,
    Settling,
    Snapshot,
    Unavailable,
    Way,
    Write,
)
from shared.settings import partnership_prefix
from shared.streams import Streams, arrival, entry_id
from shared.streams import entry_id as stream_id


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _hscan(redis: Redis, key: str, count: int = 1000) -> AsyncIterator[tuple[bytes, bytes]]:
    cursor = 0
    while True:
        cursor, chunk = await redis.hscan(key, cursor, count=count)
        for k, v in chunk.items():
            yield k, v
        if cursor == 0:
            return


def _as_sent(response: Any, **_: Any) -> Any:
    return response


class RedisEntries:
    """shared.ports.Entries: XLEN, XRANGE and XREVRANGE. A rebuild reads every event through
    `events`: redis-py would make a tuple and a dict of each entry (2.2-2.8 of 5.8-7.0 us an
    entry read and its event found, measured reading 100,000 entries), so those reads go
    through a client of its own on the same connections that leaves XRANGE's reply as Redis
    sends it (each entry's id and its fields as one list). On Redis Cluster, through the
    cluster client, its entries as redis-py gives them."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._raw: Redis | None = None
        if isinstance(redis, Redis):
            self._raw = Redis(connection_pool=redis.connection_pool)
            self._raw.set_response_callback("XRANGE", _as_sent)

    async def length(self, stream: str) -> int:
        return int(await self.redis.xlen(stream))

    async def events(
        self, stream: str, after: str, count: int, below: str | None = None
    ) -> list[tuple[str, bytes | None]]:
        start = after if after == "-" else "(" + after
        end = "+" if below is None else "(" + below
        if self._raw is not None:
            sent: list[Any] = await self._raw.xrange(stream, min=start, max=end, count=count)
            return [(entry_id.decode(), event_of(fields)) for entry_id, fields in sent]
        got = await self.redis.xrange(stream, min=start, max=end, count=count)
        return [(_text(entry_id), fields.get(b"event")) for entry_id, fields in got]

    async def newest(self, stream: str, before: str, count: int) -> list[tuple[str, dict[bytes, bytes]]]:
        end = before if before == "+" else "(" + before
        got = await self.redis.xrevrange(stream, max=end, count=count)
        return [(_text(entry_id), fields) for entry_id, fields in got]


def event_of(fields: list[bytes]) -> bytes | None:
    """An entry's `event` field, its fields as one list as Redis sends them (None: it has none)."""
    if fields and fields[0] == b"event":  # the project's entries: the event first
        return fields[1]
    for k in range(0, len(fields) - 1, 2):
        if fields[k] == b"event":
            return fields[k + 1]
    return None


class RedisArchiveMarks:
    """shared.ports.ArchiveMarks: `P:archive:<stream>` (the last id archived) and
    `P:archive:lock:<stream>` (SET NX with an expiry)."""

    def __init__(self, redis: Redis, streams: Streams) -> None:
        self.redis, self.streams = redis, streams

    async def hold(self, stream: str, owner: str, for_ms: int) -> bool:
        return bool(
            await self.redis.set(self.streams.key("archive", "lock", stream), owner, nx=True, px=for_ms)
        )

    async def release(self, stream: str) -> None:
        await self.redis.delete(self.streams.key("archive", "lock", stream))

    async def archived(self, stream: str) -> str:
        return _text(await self.redis.get(self.streams.key("archive", stream)) or b"0-0")

    async def mark(self, stream: str, entry_id: str) -> None:
        await self.redis.set(self.streams.key("archive", stream), entry_id)


# KEYS[1] the lease; ARGV[1] the holder, ARGV[2] ms: renew only a lease still held
RENEW_LEASE = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end "
    "return 0"
)
# KEYS[1] the lease; ARGV[1] the holder: release only a lease still held
RELEASE_LEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class RedisLeaseBoard:
    """shared.ports.LeaseBoard: a lease is `<prefix>:{<partnership>}:lease` (on the
    partnership's own slot) = its holder, with an expiry; the processes are the sorted set
    `<prefix>:processes` scored by when each was last seen (a slot of its own)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis, self.prefix = redis, prefix
        self.processes_key = Streams(prefix).key("processes")
        self._renew = redis.register_script(RENEW_LEASE)
        self._release = redis.register_script(RELEASE_LEASE)

    def lease_key(self, partnership: str) -> str:
        return Streams(partnership_prefix(self.prefix, partnership)).key("lease")

    async def seen(self, holder: str, now_ms: int, window_ms: int) -> int:
        await self.redis.zadd(self.processes_key, {holder: now_ms})
        await self.redis.zremrangebyscore(self.processes_key, "-inf", now_ms - window_ms)
        return int(await self.redis.zcard(self.processes_key))

    async def gone(self, holder: str) -> None:
        await self.redis.zrem(self.processes_key, holder)

    async def take(self, partnership: str, holder: str, for_ms: int) -> bool:
        return bool(await self.redis.set(self.lease_key(partnership), holder, nx=True, px=for_ms))

    async def renew(self, partnership: str, holder: str, for_ms: int) -> bool:
        return bool(await self._renew(keys=[self.lease_key(partnership)], args=[holder, for_ms]))

    async def release(self, partnership: str, holder: str) -> bool:
        return bool(await self._release(keys=[self.lease_key(partnership)], args=[holder]))


class RedisCredentials:
    """shared.ports.Credentials: the hash `P:viewers` (digest -> name), each session the key
    `P:viewer-session:<digest>` with a time to live, each sign-in's state `P:oidc:<state>`."""

    def __init__(self, redis: Redis, streams: Streams) -> None:
        self.redis, self.streams = redis, streams
        self.tokens_key = viewers.key(streams)

    async def add(self, token_digest: str, name: str, expires_s: int | None = None) -> None:
        with _unavailable():
            if expires_s is None:
                await self.redis.hset(self.tokens_key, token_digest, name)
            else:
                await self.redis.set(viewers.session_key(self.streams, token_digest), name, ex=expires_s)

    async def name_of(self, token_digest: str) -> str | None:
        with _unavailable():
            name = await self.redis.hget(self.tokens_key, token_digest)
            if name is None:
                name = await self.redis.get(viewers.session_key(self.streams, token_digest))
        return _text(name) if name is not None else None

    async def remove(self, name: str) -> int:
        with _unavailable():
            stored = await self.redis.hgetall(self.tokens_key)
            mine = [d for d, n in stored.items() if _text(n) == name]
            if mine:
                await self.redis.hdel(self.tokens_key, *mine)
            pattern = viewers.session_key(self.streams, "*")
            ended = 0
            async for k in self.redis.scan_iter(match=pattern, count=1000):
                if await self.redis.get(k) == name.encode():
                    ended += await self.redis.delete(k)
        return len(mine) + ended

    async def names(self) -> list[str]:
        with _unavailable():
            return sorted({_text(n) for n in (await self.redis.hgetall(self.tokens_key)).values()})

    async def hold(self, state: str, value: str, expires_s: int) -> None:
        with _unavailable():
            await self.redis.set(self.streams.key(f"oidc:{state}"), value, ex=expires_s)

    async def take(self, state: str) -> str | None:
        with _unavailable():
            found = await self.redis.getdel(self.streams.key(f"oidc:{state}"))
        return _text(found) if found is not None else None


def local_viewer_token(url: str, streams: Streams, path: Path) -> str:
    """`commissioning up`'s own viewer token: kept in `path` (mode 600) and issued again only
    when that file is missing or the token no longer valid, so restarts add no tokens (a
    client of its own, before the event loop starts)."""
    client = SyncRedis.from_url(url)
    try:
        if path.exists():
            token = path.read_text(encoding="utf-8").strip()
            if client.hexists(viewers.key(streams), viewers.digest(token)):
                return token
        token = viewers.new_token()
        client.hset(viewers.key(streams), viewers.digest(token), "local")
        path.touch(mode=0o600)
        path.write_text(token, encoding="utf-8")
        return token
    finally:
        client.close()


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    """Redis's failures as the ports' `Unavailable`."""
    try:
        yield
    except RedisError as e:
        raise Unavailable(str(e)) from e


class RedisUsage:
    """shared.ports.Usage: `INFO memory` (`used_memory`, `maxmemory`); on Redis Cluster, of the
    primary holding `key`'s slot (a partnership's keys share one), not any node."""

    def __init__(self, redis: Redis, key: str) -> None:
        self.redis, self.key = redis, key

    async def memory(self) -> tuple[int, int]:
        if isinstance(self.redis, RedisCluster):
            info = await self.redis.info("memory", target_nodes=self.redis.get_node_from_key(self.key))
        else:
            info = await self.redis.info("memory")
        return int(info["used_memory"]), int(info.get("maxmemory", 0))


# The rebuilt set and once-keys in place of the old, and the generation moved on, in one step
# (a script with every key declared: on Redis Cluster, where a partnership's keys share a slot,
# the cluster client refuses RENAME in a transaction).
# KEYS[1] rebuilt events, KEYS[2] rebuilt once-keys, KEYS[3] events, KEYS[4] once-keys,
# KEYS[5] generation
PUT_IN_PLACE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[3])
  redis.call('RENAME', KEYS[2], KEYS[4])
else
  redis.call('DEL', KEYS[3], KEYS[4])
end
return redis.call('INCR', KEYS[5])
"""


class RedisRebuilt:
    """shared.ports.Rebuilt: the set written into `<events>:rebuild` and the group's once-keys
    into `<seen>:rebuild` (one HSET and one ZADD a call: a command per event cost a fifth of a
    rebuild, most of it redis-py putting each command together), renamed into place by
    `PUT_IN_PLACE`."""

    def __init__(self, redis: Redis, streams: Streams, service: str, group: str) -> None:
        self.redis = redis
        self.events_key = streams.state(service, "events")
        self.seen_key = streams.seen(group)
        self.generation_key = streams.state(service, "generation")
        self.new_events, self.new_seen = self.events_key + ":rebuild", self.seen_key + ":rebuild"
        self._put = redis.register_script(PUT_IN_PLACE)

    async def clear(self) -> None:
        await self.redis.delete(self.new_events, self.new_seen)

    async def add(self, events: Mapping[str, bytes], at_ms: int) -> None:
        if not events:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(self.new_events, mapping=events)  # type: ignore[arg-type]
            pipe.zadd(self.new_seen, dict.fromkeys(events, at_ms))
            await pipe.execute()

    async def put_in_place(self) -> int:
        keys = [self.new_events, self.new_seen, self.events_key, self.seen_key, self.generation_key]
        return int(await self._put(keys=keys))


def _script(redis: Redis, name: str) -> AsyncScript:
    return redis.register_script(resources.files("shared.bus").joinpath(name).read_text(encoding="utf-8"))


class RedisDecisionLog:
    """An owner's requests and decisions (shared.ports.DecisionLog) in its state keys:
    `P:state:<owner>:events` (held requests; the bus stores them there with their ack),
    `:arrivals`, `:decisions` (request key -> verdict), `:claims` (slot -> request key).
    Decisions are recorded by shared/bus/decide.lua, a batch in one call."""

    def __init__(self, redis: Redis, streams: Streams, owner: str) -> None:
        self.redis, self.streams = redis, streams
        self.requests_key = streams.state(owner, "events")
        self.arrivals_key = streams.state(owner, "arrivals")
        self.decisions_key = streams.state(owner, "decisions")
        self.claims_key = streams.state(owner, "claims")
        self.refused_key = streams.state(owner, "refused")
        self._script = _script(redis, "decide.lua")
        self._forget = _script(redis, "forget_refused.lua")

    def arrival(self, key: str, request_id: str, inbound_id: str) -> Write:
        """The command noting where a request arrived (stored with it, by the bus's apply step)."""
        return ("HSET", self.arrivals_key, key, f"{request_id} {inbound_id}")

    async def hold(self, key: str, raw: bytes, request_id: str, inbound_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.requests_key, key, raw)
            pipe.execute_command(*self.arrival(key, request_id, inbound_id))
            await pipe.execute()

    async def record(self, decisions: Sequence[Decision]) -> list[str]:
        if not decisions:
            return []
        keys = [self.decisions_key, self.claims_key, self.requests_key, self.arrivals_key, self.refused_key]
        where: dict[str, int] = {}
        args: list[str | int] = [int(time.time() * 1000)]
        for d in decisions:
            if d.refused is None:
                dest, reason = self.streams.accepted(d.type), ""
            else:
                dest = self.streams.rejected(d.partner)
                reason = json.dumps(d.refused.reason(), separators=(",", ":"))
            if dest not in where:
                keys.append(dest)
                where[dest] = len(keys)  # Lua's KEYS count from 1
            args += [d.key, d.verdict, reason, where[dest], len(d.claims), *d.claims]
        stood = [_text(v) for v in await self._script(keys=keys, args=args)]
        return [d.verdict if v == "ok" else v for d, v in zip(decisions, stood, strict=False)]

    async def verdicts(self) -> dict[str, str]:
        return {_text(k): _text(v) async for k, v in _hscan(self.redis, self.decisions_key)}

    async def forget_refused(self, before_ms: int, batch: int = 1000) -> int:
        forgotten = 0
        while True:
            n = int(await self._forget(keys=[self.decisions_key, self.refused_key], args=[before_ms, batch]))
            forgotten += n
            if n < batch:
                return forgotten

    async def arrivals(self, keys: Sequence[str] | None = None) -> dict[str, str]:
        if keys is None:
            return {_text(k): _text(v) async for k, v in _hscan(self.redis, self.arrivals_key)}
        values = await self.redis.hmget(self.arrivals_key, list(keys)) if keys else []
        return {k: _text(v) for k, v in zip(keys, values, strict=True) if v is not None}


# KEYS[1] the snapshot hash; ARGV blob, position ms, position seq, generation ('' for none).
# Kept unless the one there is of the same generation and at a later position.
SAVE_SNAPSHOT = """
local old = redis.call('HMGET', KEYS[1], 'generation', 'ms', 'seq')
if old[1] == ARGV[4] then
  local ms, seq = tonumber(old[2]), tonumber(old[3])
  if ms > tonumber(ARGV[2]) or (ms == tonumber(ARGV[2]) and seq > tonumber(ARGV[3])) then
    return 0
  end
end
redis.call('HSET', KEYS[1], 'blob', ARGV[1], 'ms', ARGV[2], 'seq', ARGV[3], 'generation', ARGV[4])
return 1
"""


class RedisStateStore:
    """A service's applied events (shared.ports.StateStore): the hash `P:state:<service>:events`,
    the stream `:log` of keys in the order stored, the counter `:generation`, and the hash
    `:snapshot` (the service's index at a position of the log, shared/state.py). An owner's
    `follow` looks at what is on its way to it through its `backlog`, in the same script."""

    def __init__(
        self, redis: Redis, streams: Streams, service: str, backlog: RedisBacklog | None = None
    ) -> None:
        self.redis, self.backlog = redis, backlog
        self.events_key = streams.state(service, "events")
        self.log_key = streams.state(service, "log")
        #: where the log was trimmed to: a sorted set whose one member's score only grows
        self.trimmed_key = streams.state(service, "log-trimmed")
        self.generation_key = streams.state(service, "generation")
        self.snapshot_key = streams.state(service, "snapshot")
        self._save = redis.register_script(SAVE_SNAPSHOT)

    def store(self, key: str, raw: bytes) -> list[Write]:
        return [("HSET", self.events_key, key, raw), ("XADD", self.log_key, "*", "key", key)]

    async def apply(self, writes: Sequence[Write]) -> None:
        """Apply writes outside the bus (tools and tests)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for w in writes:
                pipe.execute_command(*w)
            await pipe.execute()

    async def generation(self) -> bytes | None:
        return await self.redis.get(self.generation_key)  # type: ignore[no-any-return]

    async def position(self) -> str:
        last = await self.redis.xrevrange(self.log_key, count=1)
        if last:
            return _text(last[0][0])
        trimmed = await self.redis.zscore(self.trimmed_key, "below")
        return f"{int(trimmed)}-0" if trimmed else "0-0"

    async def scan(self) -> AsyncIterator[tuple[str, bytes]]:
        async for key, raw in _hscan(self.redis, self.events_key):
            yield key.decode(), raw

    async def since(self, position: str, count: int) -> tuple[str, list[str], int]:
        followed = await self.follow(position, count)
        if followed.trimmed:
            raise LogTrimmed(f"{self.log_key} was trimmed past {position}")
        return followed.position, followed.keys, followed.size

    async def follow(self, position: str, count: int, way: Way | None = None) -> Followed:
        if way is not None:
            if self.backlog is None:
                raise ValueError("an owner's follow needs the backlog its ports were made with")
            on_its_way, (generation, trimmed, flat, size) = await self.backlog.look(
                way, self, position, count
            )
            logged = [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
        else:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.get(self.generation_key)
                pipe.zscore(self.trimmed_key, "below")
                pipe.xrange(self.log_key, min="(" + position, max="+", count=count)
                pipe.hlen(self.events_key)
                generation, trimmed, entries, size = await pipe.execute()
            on_its_way, logged = None, [(i, f[b"key"]) for i, f in entries]
        generation = generation or None
        if trimmed and entry_id(position) < (int(float(trimmed)), 0):
            return Followed(generation, position, [], size, True, on_its_way)
        last = _text(logged[-1][0]) if logged else position
        return Followed(generation, last, [_text(k) for _, k in logged], size, False, on_its_way)

    async def get(self, keys: Sequence[str]) -> list[bytes | None]:
        return list(await self.redis.hmget(self.events_key, list(keys))) if keys else []

    async def trim(self, below: str) -> int:
        # to a whole millisecond, the mark's unit; the mark first: a reader that finds entries
        # gone finds the mark too
        ms = entry_id(below)[0]
        first = await self.redis.xrange(self.log_key, count=1)
        if not first or entry_id(_text(first[0][0]))[0] >= ms:
            # nothing below it (a new log, or one trimmed already): the mark stays, so a reader
            # at the log's start is not told it fell behind (new entries only come after it)
            return 0
        await self.redis.zadd(self.trimmed_key, {"below": ms}, gt=True)
        return int(await self.redis.xtrim(self.log_key, minid=f"{ms}-0", approximate=False))

    async def save_snapshot(self, snapshot: Snapshot) -> bool:
        ms, seq = entry_id(snapshot.position)
        args = [snapshot.blob, ms, seq, snapshot.generation or b""]
        return bool(await self._save(keys=[self.snapshot_key], args=args))

    async def snapshot(self) -> Snapshot | None:
        blob, ms, seq, generation = await self.redis.hmget(
            self.snapshot_key, ["blob", "ms", "seq", "generation"]
        )
        if blob is None:
            return None
        return Snapshot(blob, f"{int(ms)}-{int(seq)}", generation or None)


class RedisBacklog:
    """shared.ports.Backlog from the consumer groups' pending lists and lag. What `unread` has
    read of a stream is kept until the group reads it, so each entry is fetched once, however
    often the owner looks."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._in_flight = _script(redis, "in_flight.lua")
        #: (stream, group) -> (the group's last delivered id then, the unread entries seen)
        self._unread: dict[
            tuple[str, str], tuple[tuple[int, int], dict[tuple[int, int], tuple[str, str]]]
        ] = {}

    async def earliest_unhandled(self, stream: str, group: str) -> tuple[str, str] | None:
        try:
            summary = await self.redis.xpending(stream, group)
        except ResponseError:
            return None  # no group yet: nothing read, nothing in flight
        if not summary or not summary.get("pending"):
            return None
        rows = await self.redis.xpending_range(
            stream, group, min=summary["min"], max=summary["max"], count=summary["pending"]
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            for row in rows:
                pipe.xrange(stream, min=row["message_id"], max=row["message_id"], count=1)
            found = await pipe.execute()
        unacked = [
            (_text(row["message_id"]), _text(entry[0][1].get(b"inbound_id", b"")) if entry else "")
            for row, entry in zip(rows, found, strict=True)
        ]
        return min(unacked, key=lambda e: (arrival(*e), entry_id(e[0])), default=None)

    async def unread(self, stream: str, group: str, limit: int) -> list[tuple[str, str]] | None:
        try:
            groups = await self.redis.xinfo_groups(stream)
        except ResponseError:
            self._unread.pop((stream, group), None)
            return []  # no stream yet
        info = next((g for g in groups if _text(g["name"]) == group), None)
        if info is not None and info.get("lag") is not None and info["lag"] > limit:
            return None  # too many to look at (lag is exact unless entries were deleted)
        delivered = (0, 0) if info is None else entry_id(info["last-delivered-id"])
        seen = self._still_unread(stream, group, delivered) or {}
        if len(seen) > limit:
            return None
        last = max(seen, default=delivered)
        entries = await self.redis.xrange(
            stream, min=f"({last[0]}-{last[1]}", max="+", count=limit + 1 - len(seen)
        )
        for i, f in entries:
            seen[entry_id(i)] = (_text(i), _text(f.get(b"inbound_id", b"")))
        self._unread[(stream, group)] = (delivered, seen)
        return None if len(seen) > limit else list(seen.values())

    def _still_unread(
        self, stream: str, group: str, delivered: tuple[int, int]
    ) -> dict[tuple[int, int], tuple[str, str]] | None:
        """The unread entries seen before that `group` (delivered up to `delivered`) has still
        not read; None when the group was made again since: what was seen says nothing now."""
        before, seen = self._unread.get((stream, group), ((0, 0), {}))
        if delivered < before:
            return None
        return {k: v for k, v in seen.items() if k > delivered}

    async def on_its_way(self, way: Way) -> OnItsWay:
        return (await self.look(way))[0]

    async def look(
        self, way: Way, state: RedisStateStore | None = None, position: str = "0-0", count: int = 0
    ) -> tuple[OnItsWay, list[Any]]:
        """`on_its_way`, and with `state`, that state's generation, trim mark, log after
        `position` (at most `count` entries, flat: id, key, ...) and size at the same moment
        (in_flight.lua, one script)."""
        newest = max(self._unread.get((way.requests, way.owner), ((0, 0), {}))[1], default=(0, 0))
        keys = [way.inbound, way.requests]
        args: list[Any] = [way.gateways, way.owner, way.limit, f"{newest[0]}-{newest[1]}"]
        if state is not None:
            keys += [state.log_key, state.trimmed_key, state.events_key, state.generation_key]
            args += [position, count]
        got = await self._in_flight(keys=keys, args=args)
        first, first_inbound, delivered_id, lag, flat, unhandled, unhandled_inbound = got[:7]
        delivered = entry_id(delivered_id)
        unread: list[tuple[str, str]] | None
        if lag > way.limit:  # too many to look at (lag is exact unless entries were deleted)
            unread = None
        else:
            kept = self._still_unread(way.requests, way.owner, delivered)
            if kept is None:  # read after what was seen, which says nothing now: look again
                self._unread.pop((way.requests, way.owner), None)
                return await self.look(way, state, position, count)
            seen = kept
            for i in range(0, len(flat), 2):
                seen[entry_id(flat[i])] = (_text(flat[i]), _text(flat[i + 1]))
            self._unread[(way.requests, way.owner)] = (delivered, seen)
            unread = None if len(seen) > way.limit else list(seen.values())
        on_its_way = OnItsWay(
            (_text(first), _text(first_inbound)) if first else None,
            unread,
            (_text(unhandled), _text(unhandled_inbound)) if unhandled else None,
        )
        return on_its_way, list(got[7:])

    async def behind(self, streams: Sequence[str]) -> bool:
        for stream in streams:
            try:
                groups = await self.redis.xinfo_groups(stream)
            except ResponseError:
                continue  # no such stream yet
            if any(g.get("pending") or g.get("lag") for g in groups):
                return True
        return False


class RedisVersions:
    """shared.ports.Versions in a hash (entity -> its last version, JSON), published with its
    event by shared/bus/publish_changed.lua. The process keeps a copy of the hash, read once and
    updated by its own publications; one that finds the hash moved (a replica published first)
    drops the copy, and the next look reads it again."""

    def __init__(self, redis: Redis, key: str) -> None:
        self.redis, self.key = redis, key
        self._script = _script(redis, "publish_changed.lua")
        self._copy: dict[str, dict[str, Any]] | None = None
        #: each version in the copy as the hash holds it (what the script compares with)
        self._text: dict[str, str] = {}

    async def all(self) -> dict[str, dict[str, Any]]:
        if self._copy is None:
            self._text = {k.decode(): v.decode() async for k, v in _hscan(self.redis, self.key)}
            self._copy = {k: json.loads(v) for k, v in self._text.items()}
        return self._copy

    async def publish(
        self,
        entity: str,
        expected: dict[str, Any] | None,
        new: dict[str, Any],
        stream: str,
        fields: dict[str, str | bytes],
    ) -> bool:
        flat = [x for kv in fields.items() for x in kv]
        copied = self._copy is not None and expected is not None and self._copy.get(entity) is expected
        # the version from the copy: its text as the hash holds it (an opportunity's is ~1 MB at
        # 8,000 contracts: not written out again)
        was = self._text[entity] if copied else _dump(expected)
        text = _dump(new)
        try:
            done = bool(await self._script(keys=[self.key, stream], args=[entity, was, text, *flat]))
        except Exception:
            self._copy = None
            raise
        if done and self._copy is not None:
            self._copy[entity], self._text[entity] = json.loads(text), text
        elif not done:
            self._copy = None
        return done


def _dump(version: dict[str, Any] | None) -> str:
    return "" if version is None else json.dumps(version, sort_keys=True, separators=(",", ":"))


class RedisUpdateLog:
    """shared.ports.UpdateLog: the stream (entries capped at about `kept`, MAXLEN ~) and a hash
    of each item's version as last shown, written in one MULTI."""

    def __init__(self, redis: Redis, key: str, shown_key: str, kept: int) -> None:
        self.redis, self.key, self.shown_key, self.kept = redis, key, shown_key, kept

    async def shown(self) -> tuple[dict[str, bytes], tuple[str, bytes] | None]:
        shown = {_text(k): v for k, v in (await self.redis.hgetall(self.shown_key)).items()}
        newest = await self.redis.xrevrange(self.key, count=1)
        if not newest or b"event" not in newest[0][1]:
            return shown, None
        entry_id, fields = newest[0]
        return shown, (_text(entry_id), fields[b"event"])

    async def append(
        self, events: Sequence[bytes], shown: Mapping[str, bytes], removed: Sequence[str]
    ) -> str:
        if not events:
            raise ValueError("an update appends at least one entry")
        tx = self.redis.pipeline(transaction=True)
        for event in events:
            tx.xadd(self.key, {"event": event}, maxlen=self.kept, approximate=True)
        if shown:
            tx.hset(self.shown_key, mapping=dict(shown))  # type: ignore[arg-type]
        if removed:
            tx.hdel(self.shown_key, *removed)
        return _text((await tx.execute())[len(events) - 1])

    async def newest(self) -> tuple[str, bytes] | None:
        found = await self.redis.xrevrange(self.key, count=1)
        return (_text(found[0][0]), found[0][1].get(b"event", b"")) if found else None

    async def after(self, entry_id: str, wait_ms: int, count: int) -> list[tuple[str, bytes]]:
        block = wait_ms if wait_ms > 0 else None  # BLOCK 0 would wait for ever
        found = await self.redis.xread({self.key: entry_id}, block=block, count=count)
        return [(_text(i), fields.get(b"event", b"")) for _, entries in found or [] for i, fields in entries]

    async def lost_after(self, entry_id: str) -> bool:
        if stream_id(entry_id) == (0, 0) or not await self.redis.exists(self.key):  # 0-0: all kept
            return False
        info = await self.redis.xinfo_stream(self.key)
        first = info.get("first-entry")
        # Redis 7 counts every entry ever added; before it, assume some were removed
        removed = info.get("entries-added", info["length"] + 1) > info["length"]
        return bool(first) and removed and stream_id(entry_id) < stream_id(first[0])


class RedisDelivery:
    """shared.ports.Delivery on Redis Streams' consumer groups: a batch's writes and acks in one
    call of shared/bus/apply.lua (one round trip), once-keys in `P:group:<group>:seen` (a sorted
    set scored by when: retention trims it to a window), errors in `P:group:<group>:errors`
    (`<stream>/<entry id>` -> JSON), moves to `P:dead-letter` by shared/bus/dead_letter.lua."""

    def __init__(self, redis: Redis, streams: Streams) -> None:
        self.redis, self.streams = redis, streams
        self._apply = _script(redis, "apply.lua")
        self._dead_letter = _script(redis, "dead_letter.lua")
        self._replay = _script(redis, "replay.lua")

    async def create_group(self, stream: str, group: str) -> None:
        try:
            await self.redis.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    async def settle(self, group: str, stream: str | None, batch: Sequence[Settling]) -> list[bool | str]:
        if not batch:
            return []
        errors = self.streams.errors(group)
        # every key the writes touch is declared (each write has its one key first): on Redis
        # Cluster the script runs where they all are (a partnership's keys share a slot)
        touched = dict.fromkeys(w[1] for s in batch for w in s.writes)
        keys = [self.streams.seen(group), stream or errors, errors, *touched]
        args: list[Any] = [group, len(batch), int(time.time() * 1000)]
        for s in batch:
            args.extend((s.entry_id or "", s.once_key or "", "1" if s.redelivered else "", len(s.writes)))
            for w in s.writes:
                args.append(len(w))
                args.extend(w)
        results = await self._apply(keys=keys, args=args)
        return [_text(r) if isinstance(r, bytes | str) else bool(r) for r in results]

    async def set_aside(
        self,
        group: str,
        stream: str,
        consumer: str,
        poisoned: Mapping[str, tuple[int, str]],
        failed: Mapping[str, str],
    ) -> None:
        if not poisoned and not failed:
            return
        errors = self.streams.errors(group)
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry_id, (deliveries, reason) in poisoned.items():
                await self._dead_letter(
                    keys=[stream, self.streams.dead_letter, errors],
                    args=[group, entry_id, consumer, 0, deliveries, reason],
                    client=pipe,
                )
            if failed:
                pipe.hset(errors, mapping={f"{stream}/{i}": e for i, e in failed.items()})
            await pipe.execute()

    async def error(self, group: str, stream: str, entry_id: str) -> str | None:
        found = await self.redis.hget(self.streams.errors(group), f"{stream}/{entry_id}")
        return None if found is None else _text(found)

    async def dead_letter(
        self,
        group: str,
        stream: str,
        entry_id: str,
        consumer: str,
        idle_ms: int,
        deliveries: int,
        reason: str,
    ) -> bool:
        return bool(
            await self._dead_letter(
                keys=[stream, self.streams.dead_letter, self.streams.errors(group)],
                args=[group, entry_id, consumer, idle_ms, deliveries, reason],
            )
        )

    async def pending(self, stream: str, group: str, after: str, count: int, idle_ms: int) -> list[Pending]:
        start = after if after == "-" else "(" + after
        rows = await self.redis.xpending_range(stream, group, min=start, max="+", count=count, idle=idle_ms)
        return [Pending(_text(r["message_id"]), int(r["times_delivered"])) for r in rows]

    async def claim(
        self, stream: str, group: str, consumer: str, idle_ms: int, ids: Sequence[str]
    ) -> list[tuple[str, dict[bytes, bytes]]]:
        if not ids:
            return []
        claimed = await self.redis.xclaim(stream, group, consumer, idle_ms, list(ids))
        return [(_text(i), dict(fields)) for i, fields in claimed if fields is not None]

    async def readers(self, stream: str, group: str) -> list[Reader]:
        found = await self.redis.xinfo_consumers(stream, group)
        return [Reader(_text(c["name"]), int(c["pending"]), int(c["idle"])) for c in found]

    async def remove_reader(self, stream: str, group: str, name: str) -> None:
        await self.redis.xgroup_delconsumer(stream, group, name)

    async def groups_on(self, stream: str) -> list[GroupState]:
        try:
            found = await self.redis.xinfo_groups(stream)
        except ResponseError:  # no such stream
            return []
        return [GroupState(_text(g["name"]), int(g["pending"]), g.get("lag")) for g in found]

    async def dead_letters(self, after: str, count: int) -> list[tuple[str, dict[bytes, bytes]]]:
        start = after if after == "-" else "(" + after
        found = await self.redis.xrange(self.streams.dead_letter, min=start, max="+", count=count)
        return [(_text(i), fields) for i, fields in found]

    async def replay(self, dead_letter_id: str) -> str:
        found = await self.redis.xrange(self.streams.dead_letter, dead_letter_id, dead_letter_id)
        origin = found[0][1].get(b"stream", b"") if found else b""
        if not found or not origin:
            return "not found" if not found else "no original stream recorded"
        done = await self._replay(keys=[self.streams.dead_letter, origin], args=[dead_letter_id])
        return {1: "replayed", 0: "not found", -1: "no original stream recorded"}[int(done)]

    async def handled_below(self, stream: str) -> str | None:
        try:
            groups = await self.redis.xinfo_groups(stream)
        except ResponseError:  # no such stream
            return None
        if not groups:
            return None
        needed: list[tuple[int, int]] = []
        for g in groups:
            summary = await self.redis.xpending(stream, g["name"]) if g["pending"] else None
            if summary is not None and summary["min"] is not None:
                needed.append(entry_id(summary["min"]))
            else:
                # the last delivered entry was handled (or acked since the group was looked at:
                # what was delivered after that look is above its last-delivered id); everything
                # after it is still to come
                last = entry_id(g["last-delivered-id"])
                needed.append((last[0], last[1] + 1))
        ms, seq = min(needed)
        return f"{ms}-{seq}"

    async def trim_below(self, stream: str, below: str) -> int:
        return int(await self.redis.xtrim(stream, minid=below, approximate=False))

    async def cap(self, stream: str, most: int) -> int:
        return int(await self.redis.xtrim(stream, maxlen=most, approximate=True))  # whole nodes: cheap

    async def forget_settled(self, group: str, before_ms: int, most: int) -> int:
        key = self.streams.seen(group)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, "-inf", f"({before_ms}")
            pipe.zremrangebyrank(key, 0, -most - 1)
            return sum(int(n) for n in await pipe.execute())


def redis_ports(redis: Redis, streams: Streams, service: str) -> Ports:
    """A service's ports on Redis, under its state keys `P:state:<service>:…`."""
    backlog = RedisBacklog(redis)
    return Ports(
        state=RedisStateStore(redis, streams, service, backlog),
        decisions=RedisDecisionLog(redis, streams, service),
        backlog=backlog,
        versions=lambda name: RedisVersions(redis, streams.state(service, name)),
        updates=lambda key, kept: RedisUpdateLog(redis, key, streams.state(service, "published"), kept),
        entries=RedisEntries(redis),
        archive=RedisArchiveMarks(redis, streams),
        rebuilt=lambda group: RedisRebuilt(redis, streams, service, group),
    )
