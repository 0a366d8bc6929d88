"""The ports in memory: the same behaviour as the Redis adapters (tests/contract/ runs one
suite on both), for handler tests and tools that need no Redis.

The adapters of one service share a `MemoryStreams` (what was published where) and apply
their writes with `MemoryStreams.apply`, as the bus applies the Redis adapters' commands."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
    Way,
    Write,
)
from shared.streams import Streams, arrival, entry_id
from shared.streams import entry_id as stream_id


class MemoryStreams:
    """Streams as lists of entries, with ids `<n>-0` in publication order, and the writes of
    the adapters built on it."""

    def __init__(self, names: Streams | None = None) -> None:
        self.names = names or Streams()
        self.entries: dict[str, list[tuple[str, dict[str, bytes | str]]]] = {}
        #: each consumer group's once-keys (group -> `source id` -> when settled, ms): settled
        #: by `MemoryDelivery`, written again by a rebuild (`MemoryRebuilt`)
        self.seen: dict[str, dict[str, float]] = {}
        #: the archive's marks and holds by stream (`MemoryArchiveMarks`)
        self.archived: dict[str, str] = {}
        self.holds: dict[str, tuple[str, float]] = {}
        self._next = 0
        self._appliers: dict[str, Any] = {"XADD": self._xadd}

    def add(self, stream: str, fields: dict[str, bytes | str]) -> str:
        self._next += 1
        entry_id = f"{self._next}-0"
        self.entries.setdefault(stream, []).append((entry_id, fields))
        return entry_id

    def _xadd(self, stream: str, at: str, *pairs: bytes | str) -> str:
        """An entry's plain publication (`XADD <stream> * k v ...`, as `Effect.publish` writes it)."""
        if at != "*":
            raise ValueError(f"ERR an entry's id is given by the stream here, not '{at}'")
        return self.add(stream, dict(zip(pairs[::2], pairs[1::2], strict=True)))  # type: ignore[arg-type]

    def of(self, stream: str) -> list[dict[str, bytes | str]]:
        return [fields for _, fields in self.entries.get(stream, [])]

    def applies(self, tag: str, apply: Any) -> None:
        self._appliers[tag] = apply

    async def apply(self, writes: Sequence[Write]) -> None:
        """Apply the writes adapters asked for (what the bus does with the Redis adapters')."""
        for tag, *args in writes:
            self._appliers[str(tag)](*args)


class MemoryDecisionLog:
    """shared.ports.DecisionLog in dicts; decisions are published on `streams`."""

    def __init__(self, streams: MemoryStreams | None = None) -> None:
        self.streams = streams or MemoryStreams()
        self.requests: dict[str, bytes] = {}
        self.arrived: dict[str, str] = {}
        self.decisions: dict[str, str] = {}
        self.claims: dict[str, str] = {}
        self.refused_at: dict[str, int] = {}  # refused request key -> when (ms)
        self.streams.applies("arrival", self.arrived.__setitem__)

    def arrival(self, key: str, request_id: str, inbound_id: str) -> Write:
        return ("arrival", key, f"{request_id} {inbound_id}")

    async def hold(self, key: str, raw: bytes, request_id: str, inbound_id: str) -> None:
        self.requests[key] = raw
        self.arrived[key] = f"{request_id} {inbound_id}"

    async def record(self, decisions: Sequence[Decision]) -> list[str]:
        names = self.streams.names
        out: list[str] = []
        for d in decisions:
            done = self.decisions.get(d.key)
            if done is not None:
                if done.startswith("refused:"):
                    self.requests.pop(d.key, None)
                    self.arrived.pop(d.key, None)
                out.append(done)
                if done != d.verdict:
                    return out
                continue
            raw = self.requests.get(d.key)
            if raw is None:
                out.append("missing")
                return out
            held = next((s for s in d.claims if self.claims.get(s, d.key) != d.key), None)
            if held is not None:
                out.append(f"conflict:{held}")
                return out
            self.claims.update(dict.fromkeys(d.claims, d.key))
            self.decisions[d.key] = d.verdict
            inbound = self.arrived.pop(d.key, "").partition(" ")[2]
            if d.refused is None:
                self.streams.add(names.accepted(d.type), {"event": raw})
            else:
                reason = json.dumps(d.refused.reason(), separators=(",", ":"))
                self.streams.add(
                    names.rejected(d.partner), {"event": raw, "reason": reason, "inbound_id": inbound}
                )
                del self.requests[d.key]
                self.refused_at[d.key] = int(time.time() * 1000)
            out.append(d.verdict)
        return out

    async def verdicts(self) -> dict[str, str]:
        return dict(self.decisions)

    async def forget_refused(self, before_ms: int) -> int:
        gone = [k for k, at in self.refused_at.items() if at < before_ms]
        for key in gone:
            del self.refused_at[key]
            if self.decisions.get(key, "").startswith("refused:"):
                del self.decisions[key]
        return len(gone)

    async def arrivals(self, keys: Sequence[str] | None = None) -> dict[str, str]:
        return dict(self.arrived) if keys is None else {k: self.arrived[k] for k in keys if k in self.arrived}


class MemoryStateStore:
    """shared.ports.StateStore in a dict and a list. Held requests of an owner live in the same
    set, so its decision log reads them from here (`decisions`); an owner's `follow` looks at
    what is on its way through `backlog`."""

    def __init__(
        self,
        streams: MemoryStreams | None = None,
        decisions: MemoryDecisionLog | None = None,
        backlog: MemoryBacklog | None = None,
    ) -> None:
        self.streams, self.backlog = streams or MemoryStreams(), backlog
        self.events: dict[str, bytes] = decisions.requests if decisions is not None else {}
        self.log: list[tuple[str, str]] = []
        self.current: bytes | None = None
        self.trimmed = 0  # entries before `<trimmed>-0` were trimmed (as on Redis)
        self.saved: Snapshot | None = None
        #: a rebuild's new set and once-keys by group, not yet put in place (`MemoryRebuilt`)
        self.rebuilding: dict[str, tuple[dict[str, bytes], dict[str, float]]] = {}
        self._logged = 0
        self.streams.applies("store", self._store)

    def _store(self, key: str, raw: bytes) -> None:
        self.events[key] = raw
        self._logged += 1
        self.log.append((f"{self._logged}-0", key))

    def store(self, key: str, raw: bytes) -> list[Write]:
        return [("store", key, raw)]

    async def apply(self, writes: Sequence[Write]) -> None:
        await self.streams.apply(writes)

    async def generation(self) -> bytes | None:
        return self.current

    async def position(self) -> str:
        return self.log[-1][0] if self.log else f"{self.trimmed}-0"

    async def scan(self) -> AsyncIterator[tuple[str, bytes]]:
        for key, raw in list(self.events.items()):
            yield key, raw

    async def since(self, position: str, count: int) -> tuple[str, list[str], int]:
        after = int(position.partition("-")[0])
        if after < self.trimmed:
            raise LogTrimmed(f"the log was trimmed below {self.trimmed}-0, past {position}")
        # the log is in the order of its ids: the first after `position` found by halving
        first = bisect.bisect_right(self.log, after, key=lambda e: int(e[0].partition("-")[0]))
        found = self.log[first : first + count]
        return (found[-1][0] if found else position), [k for _, k in found], len(self.events)

    async def follow(self, position: str, count: int, way: Way | None = None) -> Followed:
        on_its_way = None
        if way is not None:  # no await between this and the log: one moment
            if self.backlog is None:
                raise ValueError("an owner's follow needs the backlog its ports were made with")
            on_its_way = self.backlog.look(way)
        try:
            last, keys, size = await self.since(position, count)
        except LogTrimmed:
            return Followed(self.current, position, [], len(self.events), True, on_its_way)
        return Followed(self.current, last, keys, size, False, on_its_way)

    async def get(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self.events.get(k) for k in keys]

    async def trim(self, below: str) -> int:
        n = int(below.partition("-")[0])
        kept = [e for e in self.log if int(e[0].partition("-")[0]) >= n]
        dropped, self.log = len(self.log) - len(kept), kept
        if dropped:  # nothing below it: the mark stays (as on Redis)
            self.trimmed = max(self.trimmed, n)
        return dropped

    async def save_snapshot(self, snapshot: Snapshot) -> bool:
        last = self.saved
        if last is not None and last.generation == snapshot.generation:
            if entry_id(last.position) > entry_id(snapshot.position):
                return False
        self.saved = snapshot
        return True

    async def snapshot(self) -> Snapshot | None:
        return self.saved


class MemoryBacklog:
    """shared.ports.Backlog that a test sets: entries read and not acknowledged, by stream and
    group, and those not yet read."""

    def __init__(self) -> None:
        self.unacked: dict[tuple[str, str], list[tuple[str, str]]] = {}
        #: what a group has not read, where a test says
        self.unread_by: dict[tuple[str, str], list[tuple[str, str]]] = {}

    async def earliest_unhandled(self, stream: str, group: str) -> tuple[str, str] | None:
        return self._earliest(stream, group)

    async def unread(self, stream: str, group: str, limit: int) -> list[tuple[str, str]] | None:
        return self._unread(stream, group, limit)

    async def behind(self, streams: Sequence[str]) -> bool:
        return any(v for (s, _), v in (*self.unacked.items(), *self.unread_by.items()) if s in streams)

    async def on_its_way(self, way: Way) -> OnItsWay:
        return self.look(way)

    def look(self, way: Way) -> OnItsWay:
        """`on_its_way` without awaiting (`MemoryStateStore.follow` looks in the same moment)."""
        return OnItsWay(
            self._earliest(way.inbound, way.gateways),
            self._unread(way.requests, way.owner, way.limit),
            ("0-0", "")  # more unacknowledged than it looks at: taken as arrived before anything
            if len(self.unacked.get((way.requests, way.owner), ())) > way.limit
            else self._earliest(way.requests, way.owner),
        )

    def _earliest(self, stream: str, group: str) -> tuple[str, str] | None:
        pending = self.unacked.get((stream, group))
        return min(pending, key=lambda e: (arrival(*e), entry_id(e[0]))) if pending else None

    def _unread(self, stream: str, group: str, limit: int) -> list[tuple[str, str]] | None:
        entries = self.unread_by.get((stream, group), [])
        return None if len(entries) > limit else list(entries)


class MemoryVersions:
    """shared.ports.Versions in a dict; events are published on `streams`."""

    def __init__(self, streams: MemoryStreams | None = None) -> None:
        self.streams = streams or MemoryStreams()
        self.versions: dict[str, dict[str, Any]] = {}

    async def all(self) -> dict[str, dict[str, Any]]:
        return self.versions

    async def publish(
        self,
        entity: str,
        expected: dict[str, Any] | None,
        new: dict[str, Any],
        stream: str,
        fields: dict[str, str | bytes],
    ) -> bool:
        if self.versions.get(entity) != (json.loads(json.dumps(expected)) if expected is not None else None):
            return False
        self.versions[entity] = json.loads(json.dumps(new))
        self.streams.add(stream, dict(fields))
        return True


class MemoryUpdateLog:
    """shared.ports.UpdateLog: the stream on `streams` (its `kept` newest entries), and a dict
    of each item's version as last shown."""

    def __init__(self, streams: MemoryStreams, key: str, kept: int) -> None:
        self.streams, self.key, self.kept = streams, key, kept
        self.versions: dict[str, bytes] = {}
        self.removed = 0  # entries trimmed away so far
        self._appended = asyncio.Event()  # set by each append: a waiting reader looks again

    async def shown(self) -> tuple[dict[str, bytes], tuple[str, bytes] | None]:
        entries = self.streams.entries.get(self.key)
        if not entries or not isinstance(entries[-1][1].get("event"), bytes):
            return dict(self.versions), None
        entry_id, fields = entries[-1]
        return dict(self.versions), (entry_id, fields["event"])  # type: ignore[return-value]

    async def append(
        self, events: Sequence[bytes], shown: Mapping[str, bytes], removed: Sequence[str]
    ) -> str:
        if not events:
            raise ValueError("an update appends at least one entry")
        ids = [self.streams.add(self.key, {"event": event}) for event in events]
        entries = self.streams.entries[self.key]
        self.removed += max(0, len(entries) - self.kept)
        del entries[: -self.kept]
        self.versions.update(shown)
        for item in removed:
            self.versions.pop(item, None)
        self._appended.set()
        return ids[-1]

    def _entries(self) -> list[tuple[str, bytes]]:
        entries = self.streams.entries.get(self.key, [])
        return [(i, f.get("event", b"")) for i, f in entries]  # type: ignore[misc]

    async def newest(self) -> tuple[str, bytes] | None:
        entries = self._entries()
        return entries[-1] if entries else None

    async def after(self, entry_id: str, wait_ms: int, count: int) -> list[tuple[str, bytes]]:
        for _ in range(2):  # now, then once more when an append comes within `wait_ms`
            self._appended.clear()  # before the look: an append after it is waited for
            found = [(i, e) for i, e in self._entries() if stream_id(i) > stream_id(entry_id)][:count]
            if found or wait_ms <= 0:
                return found
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._appended.wait(), wait_ms / 1000)
            wait_ms = 0
        return []

    async def lost_after(self, entry_id: str) -> bool:
        entries = self._entries()
        if stream_id(entry_id) == (0, 0) or not entries or not self.removed:
            return False
        return stream_id(entry_id) < stream_id(entries[0][0])


class MemoryEntries:
    """shared.ports.Entries on `MemoryStreams`."""

    def __init__(self, world: MemoryStreams) -> None:
        self.world = world

    async def length(self, stream: str) -> int:
        return len(self.world.entries.get(stream, []))

    async def events(
        self, stream: str, after: str, count: int, below: str | None = None
    ) -> list[tuple[str, bytes | None]]:
        entries = self.world.entries.get(stream, [])
        first = 0 if after == "-" else bisect.bisect_right(entries, _n(after), key=lambda e: _n(e[0]))
        end = (
            len(entries) if below is None else bisect.bisect_left(entries, _n(below), key=lambda e: _n(e[0]))
        )
        return [
            (eid, _wire(fields).get(b"event")) for eid, fields in entries[first : min(end, first + count)]
        ]

    async def newest(self, stream: str, before: str, count: int) -> list[tuple[str, dict[bytes, bytes]]]:
        entries = self.world.entries.get(stream, [])
        end = (
            len(entries) if before == "+" else bisect.bisect_left(entries, _n(before), key=lambda e: _n(e[0]))
        )
        return [(eid, _wire(fields)) for eid, fields in reversed(entries[max(0, end - count) : end])]


class MemoryArchiveMarks:
    """shared.ports.ArchiveMarks on `MemoryStreams` (shared by every process on it): each
    stream's last id archived, and its hold (who, until when: wall-clock ms)."""

    def __init__(self, world: MemoryStreams, clock: Callable[[], float] = time.time) -> None:
        self.world, self._clock = world, clock

    async def hold(self, stream: str, owner: str, for_ms: int) -> bool:
        now = self._clock() * 1000
        held = self.world.holds.get(stream)
        if held is not None and held[1] > now:
            return False
        self.world.holds[stream] = (owner, now + for_ms)
        return True

    async def release(self, stream: str) -> None:
        self.world.holds.pop(stream, None)

    async def archived(self, stream: str) -> str:
        return self.world.archived.get(stream, "0-0")

    async def mark(self, stream: str, entry_id: str) -> None:
        self.world.archived[stream] = entry_id


class MemoryLeaseBoard:
    """shared.ports.LeaseBoard in dicts (one board: share it between the "processes" of a
    test), on the wall clock unless another is given."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.leases: dict[str, tuple[str, float]] = {}  # partnership -> (holder, until ms)
        self.processes: dict[str, int] = {}  # holder -> when last seen (ms)

    def _held(self, partnership: str) -> str | None:
        held = self.leases.get(partnership)
        return held[0] if held is not None and held[1] > self._clock() * 1000 else None

    async def seen(self, holder: str, now_ms: int, window_ms: int) -> int:
        self.processes[holder] = now_ms
        self.processes = {h: at for h, at in self.processes.items() if at > now_ms - window_ms}
        return len(self.processes)

    async def gone(self, holder: str) -> None:
        self.processes.pop(holder, None)

    async def take(self, partnership: str, holder: str, for_ms: int) -> bool:
        if self._held(partnership) is not None:
            return False
        self.leases[partnership] = (holder, self._clock() * 1000 + for_ms)
        return True

    async def renew(self, partnership: str, holder: str, for_ms: int) -> bool:
        if self._held(partnership) != holder:
            return False
        self.leases[partnership] = (holder, self._clock() * 1000 + for_ms)
        return True

    async def release(self, partnership: str, holder: str) -> bool:
        if self._held(partnership) != holder:
            return False
        del self.leases[partnership]
        return True


class MemoryCredentials:
    """shared.ports.Credentials in dicts, on the wall clock unless another is given."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.tokens: dict[str, str] = {}  # digest -> name
        self.sessions: dict[str, tuple[str, float]] = {}  # digest -> (name, until: seconds)
        self.states: dict[str, tuple[str, float]] = {}  # sign-in state -> (value, until)

    def _live(self, kept: dict[str, tuple[str, float]], key: str) -> str | None:
        found = kept.get(key)
        return found[0] if found is not None and found[1] > self._clock() else None

    async def add(self, token_digest: str, name: str, expires_s: int | None = None) -> None:
        if expires_s is None:
            self.tokens[token_digest] = name
        else:
            self.sessions[token_digest] = (name, self._clock() + expires_s)

    async def name_of(self, token_digest: str) -> str | None:
        return self.tokens.get(token_digest) or self._live(self.sessions, token_digest)

    async def remove(self, name: str) -> int:
        mine = [d for d, n in self.tokens.items() if n == name]
        ended = [d for d in self.sessions if self._live(self.sessions, d) == name]
        for d in mine:
            del self.tokens[d]
        for d in ended:
            del self.sessions[d]
        return len(mine) + len(ended)

    async def names(self) -> list[str]:
        return sorted(set(self.tokens.values()))

    async def hold(self, state: str, value: str, expires_s: int) -> None:
        self.states[state] = (value, self._clock() + expires_s)

    async def take(self, state: str) -> str | None:
        found = self._live(self.states, state)
        self.states.pop(state, None)
        return found


class MemoryUsage:
    """shared.ports.Usage of `MemoryStreams`: the bytes of every entry's fields it holds, and a
    limit set by the test (0: none)."""

    def __init__(self, world: MemoryStreams, limit: int = 0) -> None:
        self.world, self.limit = world, limit

    async def memory(self) -> tuple[int, int]:
        used = sum(
            len(k) + len(v)
            for entries in self.world.entries.values()
            for _, f in entries
            for k, v in _wire(f).items()
        )
        return used, self.limit


class MemoryRebuilt:
    """shared.ports.Rebuilt: the new set and once-keys kept aside on the store (as on Redis,
    where they are keys: another rebuild finds what one left), then put in place of the
    store's set (the same dict: an owner's decision log reads its requests from it) and of the
    group's once-keys."""

    def __init__(self, store: MemoryStateStore, group: str) -> None:
        self.store, self.group = store, group

    def _aside(self) -> tuple[dict[str, bytes], dict[str, float]]:
        return self.store.rebuilding.setdefault(self.group, ({}, {}))

    async def clear(self) -> None:
        self.store.rebuilding.pop(self.group, None)

    async def add(self, events: Mapping[str, bytes], at_ms: int) -> None:
        new, seen = self._aside()
        new.update(events)
        seen.update(dict.fromkeys(events, float(at_ms)))

    async def put_in_place(self) -> int:
        new, seen = self.store.rebuilding.pop(self.group, ({}, {}))
        live = self.store.events
        live.clear()
        live.update(new)
        if new:
            self.store.streams.seen[self.group] = seen
        else:
            self.store.streams.seen.pop(self.group, None)
        generation = int(self.store.current or 0) + 1
        self.store.current = str(generation).encode()
        return generation


def memory_ports(streams: MemoryStreams | None = None) -> Ports:
    """A service's ports in memory, publishing on `streams`."""
    world = streams or MemoryStreams()
    decisions = MemoryDecisionLog(world)
    backlog = MemoryBacklog()
    versions: dict[str, MemoryVersions] = {}
    updates: dict[str, MemoryUpdateLog] = {}
    state = MemoryStateStore(world, decisions, backlog)
    return Ports(
        state=state,
        decisions=decisions,
        backlog=backlog,
        versions=lambda name: versions.setdefault(name, MemoryVersions(world)),
        updates=lambda key, kept: updates.setdefault(key, MemoryUpdateLog(world, key, kept)),
        entries=MemoryEntries(world),
        archive=MemoryArchiveMarks(world),
        rebuilt=lambda group: MemoryRebuilt(state, group),
    )


#: what a dead letter adds to the entry's own fields (`MemoryDelivery._move`)
_DEAD_LETTER_FIELDS = ("stream", "entry_id", "group", "deliveries", "error")


def _n(eid: str) -> int:
    return int(eid.partition("-")[0])


def _wire(fields: Mapping[Any, Any]) -> dict[bytes, bytes]:
    """An entry's fields as a Redis client gives them: bytes."""
    return {
        (k if isinstance(k, bytes) else str(k).encode()): (v if isinstance(v, bytes) else str(v).encode())
        for k, v in fields.items()
    }


@dataclass
class _Group:
    read_to: int = 0  # the last entry id's number delivered to the group
    #: entry id -> [reader, deliveries, when last delivered (ms)]
    pending: dict[str, list[Any]] = field(default_factory=dict)
    readers: dict[str, float] = field(default_factory=dict)  # reader -> when last seen (ms)


class MemoryDelivery:
    """shared.ports.Delivery on `MemoryStreams`: each group's read position, its pending entries
    (reader, deliveries, when last delivered), its once-keys and kept errors. A settled entry's
    writes are applied with `MemoryStreams.apply`; a write that raises fails its entry, the writes
    before it standing, as on Redis. `read` delivers new entries, as XREADGROUP does for the bus
    on Redis (FastStream reads there)."""

    def __init__(self, world: MemoryStreams, clock: Callable[[], float] = time.time) -> None:
        self.world, self._clock = world, clock
        self.groups: dict[tuple[str, str], _Group] = {}
        self.seen = world.seen  # group -> once-key -> when (ms)
        self.errors: dict[str, dict[str, str]] = {}  # group -> "<stream>/<entry id>" -> JSON

    def _now(self) -> float:
        return self._clock() * 1000

    def _group(self, stream: str, group: str) -> _Group:
        found = self.groups.get((stream, group))
        if found is None:
            raise LookupError(f"NOGROUP no group '{group}' on '{stream}'")
        return found

    def _fields(self, stream: str, eid: str) -> dict[bytes, bytes] | None:
        return next((_wire(f) for i, f in self.world.entries.get(stream, []) if i == eid), None)

    async def create_group(self, stream: str, group: str) -> None:
        self.world.entries.setdefault(stream, [])
        self.groups.setdefault((stream, group), _Group())

    async def read(
        self, stream: str, group: str, reader: str, count: int
    ) -> list[tuple[str, dict[bytes, bytes]]]:
        """Up to `count` entries the group has not been given yet, now pending for `reader`."""
        g, now = self._group(stream, group), self._now()
        out = []
        for eid, fields in self.world.entries.get(stream, []):
            if _n(eid) > g.read_to and len(out) < count:
                g.read_to = _n(eid)
                g.pending[eid] = [reader, 1, now]
                out.append((eid, _wire(fields)))
        if out or reader in g.readers:  # a read that finds nothing makes no reader (as on Redis)
            g.readers[reader] = now
        return out

    async def settle(self, group: str, stream: str | None, batch: Sequence[Settling]) -> list[bool | str]:
        seen, errors = self.seen.setdefault(group, {}), self.errors.setdefault(group, {})
        out: list[bool | str] = []
        for s in batch:
            fresh = not (s.once_key and s.once_key in seen)
            failed = None
            for write in s.writes if fresh else ():
                try:
                    await self.world.apply([write])
                except Exception as e:  # noqa: BLE001 - as Redis answers a command that fails: its error
                    failed = str(e) or type(e).__name__
                    break
            if failed is not None:
                out.append(failed)
                continue
            if fresh and s.once_key:
                seen[s.once_key] = self._now()
            if s.entry_id is not None and stream is not None:
                self._group(stream, group).pending.pop(s.entry_id, None)
                if s.redelivered:
                    errors.pop(f"{stream}/{s.entry_id}", None)
            out.append(fresh)
        return out

    def _move(self, group: str, stream: str, eid: str, deliveries: int, reason: str) -> None:
        fields = self._fields(stream, eid) or {}
        about = {"stream": stream, "entry_id": eid, "group": group, "deliveries": deliveries, "error": reason}
        fields.update(_wire(about))
        self.world.add(self.world.names.dead_letter, fields)  # type: ignore[arg-type]
        self._group(stream, group).pending.pop(eid, None)
        self.errors.setdefault(group, {}).pop(f"{stream}/{eid}", None)

    async def set_aside(
        self,
        group: str,
        stream: str,
        consumer: str,
        poisoned: Mapping[str, tuple[int, str]],
        failed: Mapping[str, str],
    ) -> None:
        for eid, (deliveries, reason) in poisoned.items():
            self._move(group, stream, eid, deliveries, reason)
        for eid, error in failed.items():
            self.errors.setdefault(group, {})[f"{stream}/{eid}"] = error

    async def error(self, group: str, stream: str, entry_id: str) -> str | None:
        return self.errors.get(group, {}).get(f"{stream}/{entry_id}")

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
        if idle_ms > 0:  # taken over first, as XCLAIM: only an entry still idle that long
            held = self._group(stream, group).pending.get(entry_id)
            if held is None or self._now() - held[2] < idle_ms:
                return False
            held[0], held[2] = consumer, self._now()
        self._move(group, stream, entry_id, deliveries, reason)
        return True

    async def pending(self, stream: str, group: str, after: str, count: int, idle_ms: int) -> list[Pending]:
        g, now = self._group(stream, group), self._now()
        start = -1 if after == "-" else _n(after)
        rows = sorted(
            (_n(i), i, held) for i, held in g.pending.items() if _n(i) > start and now - held[2] >= idle_ms
        )
        return [Pending(i, held[1]) for _, i, held in rows[:count]]

    async def claim(
        self, stream: str, group: str, consumer: str, idle_ms: int, ids: Sequence[str]
    ) -> list[tuple[str, dict[bytes, bytes]]]:
        g, now = self._group(stream, group), self._now()
        g.readers[consumer] = now
        out = []
        for eid in ids:
            held = g.pending.get(eid)
            if held is None or now - held[2] < idle_ms:
                continue
            fields = self._fields(stream, eid)
            if fields is None:  # trimmed from the stream meanwhile: dropped, as Redis 7 does
                del g.pending[eid]
                continue
            held[0], held[1], held[2] = consumer, held[1] + 1, now
            out.append((eid, fields))
        return out

    async def readers(self, stream: str, group: str) -> list[Reader]:
        g, now = self._group(stream, group), self._now()
        return [
            Reader(name, sum(1 for held in g.pending.values() if held[0] == name), int(now - seen))
            for name, seen in g.readers.items()
        ]

    async def groups_on(self, stream: str) -> list[GroupState]:
        entries = self.world.entries.get(stream, [])
        return [
            GroupState(name, len(g.pending), sum(1 for eid, _ in entries if _n(eid) > g.read_to))
            for (on, name), g in self.groups.items()
            if on == stream
        ]

    async def dead_letters(self, after: str, count: int) -> list[tuple[str, dict[bytes, bytes]]]:
        start = -1 if after == "-" else _n(after)
        found = [
            (i, _wire(f))
            for i, f in self.world.entries.get(self.world.names.dead_letter, [])
            if _n(i) > start
        ]
        return found[:count]

    async def replay(self, dead_letter_id: str) -> str:
        letters = self.world.entries.get(self.world.names.dead_letter, [])
        at = next((k for k, (i, _) in enumerate(letters) if i == dead_letter_id), None)
        if at is None:
            return "not found"
        fields = _wire(letters[at][1])
        origin = fields.get(b"stream", b"").decode()
        if not origin:
            return "no original stream recorded"
        own = {k: v for k, v in fields.items() if k.decode() not in _DEAD_LETTER_FIELDS}
        self.world.add(origin, own)  # type: ignore[arg-type]
        del letters[at]
        return "replayed"

    async def remove_reader(self, stream: str, group: str, name: str) -> None:
        g = self._group(stream, group)
        g.readers.pop(name, None)
        for eid in [i for i, held in g.pending.items() if held[0] == name]:
            del g.pending[eid]  # what it held is dropped with it, as XGROUP DELCONSUMER does

    async def handled_below(self, stream: str) -> str | None:
        needed = [
            min((entry_id(i) for i in g.pending), default=(g.read_to, 1))
            for (s, _), g in self.groups.items()
            if s == stream
        ]
        if not needed:
            return None
        ms, seq = min(needed)
        return f"{ms}-{seq}"

    async def trim_below(self, stream: str, below: str) -> int:
        entries = self.world.entries.get(stream, [])
        kept = [e for e in entries if entry_id(e[0]) >= entry_id(below)]
        self.world.entries[stream] = kept
        return len(entries) - len(kept)

    async def cap(self, stream: str, most: int) -> int:
        entries = self.world.entries.get(stream, [])
        removed = max(0, len(entries) - most)
        self.world.entries[stream] = entries[removed:]
        return removed

    async def forget_settled(self, group: str, before_ms: int, most: int) -> int:
        seen = self.seen.get(group, {})
        kept = sorted(((at, key) for key, at in seen.items() if at >= before_ms), reverse=True)[:most]
        forgotten = len(seen) - len(kept)
        self.seen[group] = {key: at for at, key in sorted(kept)}
        return forgotten
