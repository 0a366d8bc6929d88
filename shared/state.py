"""A service's state as the set of events it has applied.

The set (`source id` -> the event's JSON) is kept by a StateStore port (shared.ports; on Redis
the hash `P:state:<service>:events`), its writes applied by the bus's atomic step together with
the idempotency mark and the ack, so a crash can neither lose an event nor count it twice. Each
process folds the set into an in-memory index (`fold(index, key, payload)`, order-independent),
follows the store's log to fold what other replicas applied, and reloads it whole when a
rebuild swapped it (the generation) or when it fell behind the log's retention (the log keeps
`COMMISSIONING_STATE_LOG_KEEP_S` of entries; processes follow it every two seconds).
Subclasses say what to do when the index changes (`changed`, under the lock) and publish what
that derived once the lock is released (`publish`, an `Outbox`), so deciding goes on meanwhile.

Snapshots (a subclass that can copy and encode its index, `capture_snapshot`/`decode_snapshot`, and
`snapshot_every_s` > 0): after a recompute, at most every `snapshot_every_s` and never more
than a twentieth of the time, and when the process stops, the index is saved with the log
position it was folded to (StateStore.save_snapshot): copied under the lock, encoded in a worker
thread and saved while the state moves on. Loading starts from the snapshot of the
current generation and folds only the log after its position; the whole set is read instead
when there is none, it cannot be read, or the log was trimmed past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import structlog
from pydantic import ValidationError

from shared import collector
from shared.bus import Applied, Entry, Poison
from shared.bus.consumer import parse_trusted
from shared.decode import decode_once
from shared.events import CloudEvent, Payload, errors_of, to_json
from shared.outage import OUTAGE
from shared.ports import Followed, LogTrimmed, OnItsWay, Ports, Snapshot, Versions, Way, Write
from shared.streams import Streams

log = structlog.get_logger("state")


#: a service's index: any structure its fold keeps (a fold must be idempotent: folding an
#: event again changes nothing)
I = TypeVar("I")

#: under load, a recompute starts no sooner than this many times as long as the last one took
#: after it started (so at most a quarter of the time goes to computing figures)
RECOMPUTE_SPACING = 4
#: after a recompute failed (Redis away), the next try waits at least this long
RETRY_S = 0.2
#: input quiet (no stream's last batch was full, none applied for this long): recompute now,
#: there is no throughput to protect
QUIET_S = 0.05
#: the state log is followed this many keys at a time
FOLLOW_COUNT = 5000


def payload_of(event: CloudEvent) -> Payload:
    """The typed payload, or `Poison` (dead-lettered at once) when it can never be used."""
    try:
        return event.payload()
    except ValidationError as e:
        raise Poison("invalid_data", f"{event.type} data is invalid", errors_of(e)) from e
    except KeyError as e:
        raise Poison("unexpected_type", f"no payload model for {event.type}") from e


class EventSetState(Generic[I]):
    def __init__(
        self,
        ports: Ports,
        streams: Streams,
        service: str,
        new_index: Callable[[], I],
        fold: Callable[[I, str, Any], I],
    ) -> None:
        self.ports = ports
        #: the set of applied events (shared.ports.StateStore)
        self.events = ports.state
        self.streams = streams
        self.service = service
        self.new_index, self.fold = new_index, fold
        self.index: I = new_index()
        self.generation: bytes | None = None
        self._lock = asyncio.Lock()
        #: `changed` runs at most this often: under load many batches share one recompute
        self.min_interval = 0.2
        #: and starts no sooner than this many times as long as the last run took
        self.spacing = float(RECOMPUTE_SPACING)
        #: the same while no stream has a backlog (the last batches were not full): a steady
        #: rate, where the wait is latency and there is time to spare (None: `spacing`)
        self.steady_spacing: float | None = None
        self._dirty = self._fresh = False
        self._last = 0.0
        #: when this process last applied a batch or finished computing (a compute blocks the
        #: loop: batches waiting behind it must get their turn before the input counts as quiet)
        self._busy_until = 0.0
        #: the bus's batch size (set by the service): a full batch means more is waiting
        self.batch_size: int | None = None
        self._backlog: dict[str, bool] = {}  # per stream: was its last batch full?
        self._took = 0.0
        self._pending: asyncio.Task[None] | None = None
        self._log_pos = "0-0"  # how far this process has followed the set's log
        #: events in the set, as of the last time the log was followed to its end (`load`)
        self.size = 0
        #: keys this process folded that the next follow of the log will meet again (cleared
        #: by it: bounded by what one process applies between two follows, not by all events)
        self._ahead: set[str] = set()
        self._stopped = False
        #: events parsed by `handle`, until their batch is folded: the key by (stream, entry
        #: id), the payload by key (a refresh that meets one in the log folds it from here)
        self._parsed: dict[tuple[str, str], str] = {}
        self._payloads: dict[str, Any] = {}
        self._stale = False  # the index is to be read again whole (`reload`)
        self._epoch = OUTAGE.epoch  # the outages ended when the index was read
        #: something waits to be decided (`decide`): done between recomputes, at once
        self._urgent = False
        self._wake = asyncio.Event()
        #: `publish` is running (in the recompute's task): an urgent decision gets a task of its
        #: own meanwhile (`_deciding`)
        self._publishing = False
        self._deciding: asyncio.Task[None] | None = None
        #: save a snapshot at most this often (0: never; `capture_snapshot` must be implemented)
        self.snapshot_every_s = 0.0
        #: loop time of the last snapshot saved (or restored on load); None: none yet (the loop's
        #: clock starts near the machine's boot, so 0 would not mean "long ago")
        self._snapshot_at: float | None = None
        self._snapshot_took = 0.0
        #: the log position and generation it was saved at: a rebuild's set swapped in at the
        #: same position is another index
        self._snapshot_pos: tuple[str, bytes | None] | None = None
        self._snapshotting: asyncio.Task[None] | None = None  # one being encoded and saved

    def capture_snapshot(self) -> Callable[[], bytes] | None:
        """Called under the lock: the index copied for a snapshot, as a function that encodes
        the copy (run in a worker thread while the index moves on); None: not now."""
        raise NotImplementedError

    def decode_snapshot(self, blob: bytes) -> I:
        """The index a snapshot holds; raises when it cannot be used (another format, ...)."""
        raise NotImplementedError

    async def decide(self) -> int:
        """Called, under the lock, before `changed` and, between recomputes, as soon as a batch
        brings something to decide (`urgent`): an owner decides its requests here, so deciding
        never waits for the recompute's spacing. Returns how many were decided."""
        return 0

    async def changed(self, fresh: bool) -> None:
        """Called, under the lock, after the index may have changed (`fresh`: by this batch)."""

    async def publish(self) -> None:
        """Called after `changed`, once the lock is released: publish what it derived (an
        `Outbox`), so requests are decided meanwhile rather than behind the round trips. Never
        runs twice at once; what it fails to publish is published by the next call. What is long
        to derive may be derived here too, in steps with the loop's other work between (the
        index may change, or be replaced, at each await: the needs service's opportunities)."""

    def urgent(self) -> None:
        """Decide now, without waiting for the next recompute (`decide`), nor for what it
        derived to be published (`publish`)."""
        self._urgent = True
        self._wake.set()
        if self._pending is None or self._pending.done():
            self._pending = asyncio.create_task(self._recompute())
        elif self._publishing and (self._deciding is None or self._deciding.done()):
            self._deciding = asyncio.create_task(self._decide_while_publishing())

    async def _decide_while_publishing(self) -> None:
        while self._urgent and self._publishing:
            if await self._decide_now():
                self._dirty = True  # what it decided is derived at the cadence

    async def _decide_now(self) -> int:
        self._urgent = False
        async with self._lock:
            try:
                await self._refresh()
                return await self.decide()
            except Exception as e:  # noqa: BLE001 - Redis away: the next recompute decides
                OUTAGE.failed(e, "decide")
                self._dirty = True
                return 0

    # -- handlers (for `event_subscription`) ------------------------------------------------

    async def handle(self, event: CloudEvent, entry: Entry) -> list[Write]:
        # refuse, before storing, what the fold could never use; keep it for after_batch
        if len(self._parsed) > 100_000:  # left by effects that failed to store: after_batch re-parses
            self._parsed.clear()
            self._payloads.clear()
        self._payloads[event.key] = payload_of(event)
        self._parsed[(entry.stream, entry.id)] = event.key
        return self.store(event.key, entry.raw_event or to_json(event))

    def store(self, key: str, raw: bytes) -> list[Write]:
        """The writes that add one event to the set (applied once, with its ack)."""
        return self.events.store(key, raw)

    async def after_batch(self, applied: list[Applied]) -> None:
        """Fold this process's newly applied events; what other replicas applied is folded
        from the log when the figures are next recomputed."""
        async with self._lock:
            for a in applied:
                key = self._parsed.pop((a.entry.stream, a.entry.id), None)
                payload = self._payloads.pop(key, None) if key is not None else None
                if a.fresh:
                    if payload is None:
                        event = parse_trusted(a.entry)
                        key, payload = event.key, event.payload()
                    self.fold(self.index, key, payload)
                    self._ahead.add(key)
                elif key is not None:
                    self._duplicate(key)
            self._fresh = self._fresh or any(a.fresh for a in applied)
        if applied:
            self._backlog[applied[0].entry.stream] = (
                self.batch_size is not None and len(applied) >= self.batch_size
            )
        self._busy_until = asyncio.get_running_loop().time()
        self._schedule()

    def _duplicate(self, key: str) -> None:
        """A batch brought again an event already applied (not folded again)."""

    def _quiet(self, now: float) -> bool:
        """No stream has a backlog and no batch arrived for `QUIET_S` (or a quarter of
        `min_interval`, for a service whose recompute is worth spacing out that far): nothing
        to protect."""
        idle = max(QUIET_S, self.min_interval / 4)
        return not any(self._backlog.values()) and now - self._busy_until >= idle

    def _schedule(self) -> None:
        self._dirty = True
        if self._pending is None or self._pending.done():
            self._pending = asyncio.create_task(self._recompute())

    async def _recompute(self) -> None:
        """Run `changed` once for everything folded since the last run (and what the log
        shows other replicas applied); again if more arrived meanwhile. While batches keep
        coming, no sooner than `min_interval` (and `spacing` times the last run's duration)
        after the last run; as soon as the input is quiet (no backlog, and no batch
        for `QUIET_S`)."""
        loop = asyncio.get_running_loop()
        while self._dirty or self._urgent:
            if not self._dirty:  # only to decide: what it decides is derived at the cadence
                decided = await self._decide_now()
                # a batch folded meanwhile (`after_batch`) or a failed pass set it: kept
                self._dirty = self._dirty or bool(decided)
                continue
            spacing = self.spacing
            if self.steady_spacing is not None and not any(self._backlog.values()):
                spacing = self.steady_spacing
            due = self._last + max(self.min_interval, spacing * self._took)
            while (now := loop.time()) < due and not self._quiet(now):
                self._wake.clear()
                if self._urgent:
                    await self._decide_now()
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), min(due - now, QUIET_S))
            async with self._lock:
                fresh, self._dirty, self._fresh = self._fresh, False, False
                snapshot: Callable[[], Awaitable[None]] | None = None
                self._urgent = False
                self._last = loop.time()
                try:
                    await self._refresh()
                    await self.decide()
                    await self.changed(fresh)
                    snapshot = self._snapshot_if_due()
                    failed = None
                except Exception as e:  # noqa: BLE001 - Redis away: the next batch or refresh tries again
                    self._dirty, self._fresh, failed = True, self._fresh or fresh, e
            if failed is None:
                self._publishing = True
                try:
                    await self.publish()  # outside the lock: deciding goes on meanwhile (`urgent`)
                except Exception as e:  # noqa: BLE001 - Redis away: the outbox keeps it for the next run
                    self._dirty, failed = True, e
                finally:
                    self._publishing = False
                if snapshot is not None:  # encoded and saved in the background
                    self._snapshotting = asyncio.create_task(snapshot())
            self._took = loop.time() - self._last
            self._busy_until = loop.time()
            if failed is not None:
                OUTAGE.failed(failed, "recompute")
                await asyncio.sleep(max(self.min_interval, RETRY_S))

    # -- loading ----------------------------------------------------------------------------

    async def load(self) -> int:
        """Read the whole applied set from Redis into a fresh index."""
        async with self._lock:
            with collector.paused():
                await self._load()
                await self.changed(False)
        await self.publish()
        return self.size

    async def adopt(self, index: I, position: str) -> int:
        """Take `index`, folded elsewhere from the current generation's set as it stood at log
        position `position` (a rebuild folds what it writes), and fold the log after it; the
        figures follow (`changed`). How many events the set holds."""
        async with self._lock:
            self._ahead.clear()
            self._epoch = OUTAGE.epoch
            self.index, self.generation = index, await self.events.generation()
            self._log_pos = position
            await self._follow()
            await self.changed(False)
        await self.publish()
        return self.size

    async def _load(self, from_snapshot: bool = True) -> None:
        # a new index: what this process folded into the old one is not in it (a snapshot may
        # be older), so the log's tail is folded whatever folded it before
        self._ahead.clear()
        self._epoch = OUTAGE.epoch
        generation = await self.events.generation()
        if from_snapshot and self.snapshot_every_s > 0 and await self._restore(generation):
            return
        index = self.new_index()
        position = await self.events.position()  # before the scan: nothing falls between
        size = 0
        async for key, raw in self.events.scan():
            self.fold(index, key, decode_once(raw).payload())
            size += 1
        self.index, self.generation, self.size = index, generation, size
        self._log_pos = position

    async def _restore(self, generation: bytes | None) -> bool:
        """Start from the saved snapshot and fold the log after it; False (nothing changed) when
        there is no snapshot of this generation or it cannot be used."""
        saved = await self.events.snapshot()
        if saved is None or saved.generation != generation:
            return False
        started = asyncio.get_running_loop().time()
        try:
            index = self.decode_snapshot(saved.blob)
        except Exception as e:  # noqa: BLE001 - any damage or change of format: read the set whole
            log.warning("snapshot not used: reading the state whole", service=self.service, error=str(e))
            return False
        self.index, self.generation, self._log_pos = index, generation, saved.position
        try:
            folded = await self._follow()
        except LogTrimmed as e:
            log.warning("snapshot older than the state log: reading the state whole", error=str(e))
            return False
        self._snapshot_at, self._snapshot_pos = started, (saved.position, saved.generation)
        log.info(
            "state loaded from a snapshot",
            service=self.service,
            position=saved.position,
            tail=folded,
            seconds=round(asyncio.get_running_loop().time() - started, 3),
        )
        return True

    def _snapshot_if_due(self, now: bool = False) -> Callable[[], Awaitable[None]] | None:
        """Under the lock: when a snapshot is due (or `now`, if the index moved), what it is
        made of is copied (`capture_snapshot`); the function returned encodes it in a worker
        thread and saves it, once the lock is released, while the state moves on."""
        if self.snapshot_every_s <= 0 or (self._log_pos, self.generation) == self._snapshot_pos:
            return None
        if self._snapshotting is not None and not self._snapshotting.done():
            return None  # one at a time
        loop = asyncio.get_running_loop()
        since = math.inf if self._snapshot_at is None else loop.time() - self._snapshot_at
        if not now and since < max(self.snapshot_every_s, 20 * self._snapshot_took):
            return None
        started = loop.time()
        try:
            encode = self.capture_snapshot()
        except NotImplementedError:
            self.snapshot_every_s = 0.0
            return None
        if encode is None:  # not now: the next recompute tries again
            return None
        position, generation = self._log_pos, self.generation

        async def save() -> None:
            try:
                blob = await asyncio.to_thread(encode)
                await self.events.save_snapshot(Snapshot(blob, position, generation))
            except Exception as e:  # noqa: BLE001 - Redis away: tried again after the interval
                OUTAGE.failed(e, "snapshot")
                return
            finally:
                self._snapshot_at = loop.time()
            self._snapshot_took, self._snapshot_pos = loop.time() - started, (position, generation)
            log.info(
                "snapshot saved", service=self.service, bytes=len(blob), seconds=round(self._snapshot_took, 3)
            )

        return save

    def reload(self) -> None:
        """Read the whole index again before the next recompute (which is due at once): what
        this process folded on an assumption that turned out wrong is dropped."""
        self._stale = self._dirty = True

    def _way(self) -> Way | None:
        """An owner's question for the state's log (`StateStore.follow`): what is on its way to
        it, seen at the same moment as the log."""
        return None

    def _on_its_way(self, way: OnItsWay) -> None:
        """What an owner's `_way` was answered, just before the log's keys are folded."""

    async def _refresh(self) -> bool:
        """Fold what other replicas applied (from the log); reload all after a rebuild. One look
        at the store (`StateStore.follow`): the generation, the log and, for an owner, what is
        on its way, in one moment."""
        head = await self.events.follow(self._log_pos, FOLLOW_COUNT, self._way())
        outage = OUTAGE.epoch != self._epoch
        if head.generation != self.generation or self._stale or outage:
            # after an outage Redis may be older than this process's memory (a failover lost the
            # last writes): what it folded or decided on its own is read again from Redis
            log.info(
                "reloading state",
                service=self.service,
                rebuilt=head.generation != self.generation,
                after_outage=outage,
            )
            # what this process folded on its own may be in its last snapshot: not used then
            await self._load(from_snapshot=not self._stale)
            self._stale = False
            return True
        try:
            if head.trimmed:
                raise LogTrimmed(f"the state log was trimmed past {self._log_pos}")
            if head.way is not None:
                self._on_its_way(head.way)
            return bool(await self._follow(head))
        except LogTrimmed as e:  # this process fell behind the log's retention
            log.warning("state log trimmed past this process: reading the state whole", error=str(e))
            await self._load()
            return True

    async def _follow(self, head: Followed | None = None) -> int:
        """Fold what the log shows after `_log_pos` (starting with `head`, read already); how
        many events that added."""
        folded = 0
        while True:
            if head is None:
                self._log_pos, keys, size = await self.events.since(self._log_pos, FOLLOW_COUNT)
            else:
                self._log_pos, keys, size, head = head.position, head.keys, head.size, None
            missing = [key for key in keys if key not in self._ahead]
            # stored by this process, its batch not folded yet: the payload is already parsed
            ours = [key for key in missing if key in self._payloads]
            for key in ours:
                self.fold(self.index, key, self._payloads[key])
            others = [key for key in missing if key not in self._payloads]
            if others:
                for key, raw in zip(others, await self.events.get(others), strict=True):
                    if raw is not None:
                        self.fold(self.index, key, decode_once(raw).payload())
            folded += len(missing)
            if len(keys) < FOLLOW_COUNT:
                # the log's end at that moment: every key this process folded before this follow
                # was in the log up to here, and the set held `size` events
                self.size = size
                self._ahead.clear()
                return folded

    async def start(self) -> None:
        """Load, then keep fresh in the background (a service's on_startup hook)."""
        await self.load()
        self._fresh_task = asyncio.create_task(self.keep_fresh())

    async def stop(self, timeout: float = 5.0) -> None:
        self._stopped = True
        task = getattr(self, "_fresh_task", None)
        if task is not None:
            task.cancel()
            await asyncio.wait([task], timeout=timeout)
        if self._pending is not None and not self._pending.done():
            self._last = 0.0  # publish what is folded now, not after the interval
            busy = [t for t in (self._pending, self._deciding) if t is not None and not t.done()]
            _, stuck = await asyncio.wait(busy, timeout=timeout)
            if stuck:
                for t in stuck:
                    t.cancel()
                log.warning("figures not recomputed before stop: the next start does it")
                return
        if not self._dirty:
            await self.save_snapshot()  # the next start reads this and no tail

    async def save_snapshot(self) -> None:
        """Save a snapshot now, if snapshots are on and the index moved since the last."""
        if self.snapshot_every_s > 0:
            if self._snapshotting is not None and not self._snapshotting.done():
                await asyncio.wait([self._snapshotting])
            async with self._lock:
                save = self._snapshot_if_due(now=True)
            if save is not None:
                await save()

    async def keep_fresh(self, interval: float = 2.0) -> None:
        """Pick up changes made elsewhere (another replica, a rebuild) even when idle."""
        while not self._stopped:
            await asyncio.sleep(interval)
            try:
                async with self._lock:
                    refreshed = await self._refresh()
                if refreshed:
                    self._schedule()  # recomputed at the usual cadence, not on top of it
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - Redis away: next round
                OUTAGE.failed(e, "refresh")


class Published:
    """What a service last published for each entity it derives (an opportunity, a tender),
    and publishing a new version exactly once, even with several replicas racing
    (shared.ports.Versions)."""

    def __init__(self, versions: Versions) -> None:
        self.versions = versions

    async def all(self) -> dict[str, dict[str, Any]]:
        """Every entity's last published version (read-only)."""
        return await self.versions.all()

    async def publish(
        self,
        entity: str,
        expected: dict[str, Any] | None,
        new: dict[str, Any],
        stream: str,
        event: CloudEvent | None = None,
        fields: dict[str, str | bytes] | None = None,
    ) -> bool:
        """Write `new` and append the entry (`event`, or raw `fields`) to `stream`, if the last
        version is still `expected`."""
        entry = fields if fields is not None else {"event": to_json(event)} if event is not None else {}
        return await self.versions.publish(entity, expected, new, stream, entry)


@dataclass(frozen=True)
class Derived:
    """One entity a service derives and publishes: the event type for its first version and
    for later ones, and its payload (validated by `model`, which also shapes the JSON)."""

    first_type: str
    later_type: str
    payload: dict[str, Any]
    model: type[Payload]
    #: False for a one-off event in a contract type without a `revision` field: published
    #: once, with the entity as its id, never updated
    revisioned: bool = True


class Outbox:
    """What a service derived and has still to publish (`publish_changes`): put under the
    state's lock by `changed`, published by `EventSetState.publish` after it is released. What
    fails to publish stays, merged with what the next recompute derives."""

    def __init__(
        self,
        published: Published,
        streams: Streams,
        source: str,
        vanished: Callable[[str, dict[str, Any]], Derived | None] = lambda e, b: None,
    ) -> None:
        self.published, self.streams, self.source, self.vanished = published, streams, source, vanished
        self._current: dict[str, Derived] | None = None
        self._scope: set[str] | None = None

    def put(self, current: dict[str, Derived], scope: set[str] | None) -> None:
        """What is derived now of the entities in `scope` (None: of every entity)."""
        if self._current is None or scope is None:
            self._current, self._scope = dict(current), None if scope is None else set(scope)
            return
        # a new dict (not changed in place): a flush under way keeps what it started with
        self._current = {e: d for e, d in self._current.items() if e not in scope} | current
        if self._scope is not None:
            self._scope = self._scope | scope

    async def flush(self) -> list[str]:
        """Publish what was put (`publish_changes`); the entities published."""
        if self._current is None:
            return []
        current, scope = self._current, self._scope
        done = await publish_changes(self.published, self.streams, self.source, current, self.vanished, scope)
        if self._current is current:
            self._current = self._scope = None
        return done


async def publish_changes(
    published: Published,
    streams: Streams,
    source: str,
    current: dict[str, Derived],
    vanished: Callable[[str, dict[str, Any]], Derived | None] = lambda e, b: None,
    scope: set[str] | None = None,
) -> list[str]:
    """Publish every entity whose payload differs from what was last published (new ones at
    revision 0), and what `vanished` says for entities no longer derived. Event ids are
    `<entity>-r<revision>`: a version published twice counts once everywhere. With `scope`,
    only those entities are looked at (`current` then holds what is derived of them)."""
    last = await published.all()
    done = []
    for entity in sorted(set(current) | set(last) if scope is None else scope):
        before = last.get(entity)
        derived = current.get(entity) or (vanished(entity, before) if before is not None else None)
        if derived is None or (
            before is not None and (before["payload"] == derived.payload or not derived.revisioned)
        ):
            continue
        revision = 0 if before is None else before["revision"] + 1
        stamped = {**derived.payload, "revision": revision} if derived.revisioned else derived.payload
        data = derived.model.model_validate(stamped).model_dump(
            mode="json", exclude_none=not derived.revisioned
        )
        etype = derived.first_type if before is None else derived.later_type
        event = CloudEvent(
            specversion="1.0",
            id=f"{entity}-r{revision}" if derived.revisioned else entity,
            source=source,
            type=etype,
            time=datetime.now(UTC),
            data=data,
        )
        if await published.publish(
            entity, before, {"revision": revision, "payload": derived.payload}, streams.of_type(etype), event
        ):
            done.append(entity)
    return done
