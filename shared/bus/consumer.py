"""Reliable consumption of Redis Streams, the same for every service.

- a consumer group per service per stream, created from id `0` (MKSTREAM) before any read;
- new entries read by FastStream batch subscribers (bounded by `batch_size`), parsed by our
  own parser (the contract's `event` field, not FastStream's envelope), acked manually;
- each entry's effect (its writes) is applied together with the idempotency mark (`source
  id`) and the acknowledgement: stored and acked atomically, once, a whole batch in one step
  (the `Delivery` port, shared.ports: on Redis one Lua script call, one round trip);
- a failing entry stays pending with its error recorded; a sweeper reclaims entries idle
  longer than `claim_idle_ms` (from this or a dead consumer) and retries them; after
  `max_deliveries` deliveries the entry moves to `P:dead-letter` with its error;
- a `Poison` entry (one that can never succeed) goes to the dead-letter stream at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import structlog
from faststream import AckPolicy
from faststream.redis import RedisRouter, StreamSub
from faststream.redis.message import FAKE_CONSUMER, RedisBatchStreamMessage
from pydantic import ValidationError
from redis.asyncio import Redis

from shared.adapters.redis import RedisDelivery
from shared.bus.retention import Retention
from shared.decode import Decoded, decode
from shared.events import CloudEvent, errors_of, to_json
from shared.logging import handling
from shared.outage import OUTAGE
from shared.ports import Delivery, Settling
from shared.settings import Settings
from shared.streams import Streams

log = structlog.get_logger("bus")

Command = tuple[str | bytes | int, ...]


def consumer_name() -> str:
    """Unique per process: host, pid and a random suffix (pids repeat across containers)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Entry:
    stream: str
    id: str
    fields: Mapping[bytes, bytes]
    deliveries: int = 1

    @property
    def raw_event(self) -> bytes | None:
        return self.fields.get(b"event")


@dataclass(frozen=True)
class Effect:
    """What handling one entry does to Redis, applied atomically with its ack.

    `once_key` (the event's `source id`) makes the effect apply only the first time that
    event is seen by the group; `None` applies it every time (rejections, plain logging).
    """

    commands: tuple[Command, ...] = ()
    once_key: str | None = None

    @staticmethod
    def publish(stream: str, event: CloudEvent | bytes) -> Command:
        body = event if isinstance(event, bytes) else to_json(event)
        return ("XADD", stream, "*", "event", body)


class WriteFailed(Exception):
    """A write of an entry's effect failed (the entry stays pending for a retry)."""


class Poison(Exception):
    """An entry that can never be processed: dead-lettered at once, with this reason."""

    def __init__(self, code: str, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.code = code
        self.errors = errors or []

    def reason(self) -> dict[str, Any]:
        return {"code": self.code, "message": str(self), "errors": self.errors}


@dataclass(frozen=True)
class Applied:
    entry: Entry
    fresh: bool  # False when the event had already been applied (a duplicate)


Handle = Callable[[Entry], Awaitable[Effect]]
AfterBatch = Callable[[list[Applied]], Awaitable[None]]


@dataclass
class Subscription:
    group: str  # the consuming service
    stream: str
    handle: Handle
    after_batch: AfterBatch | None = None
    title: str = ""
    description: str = ""


def event_subscription(
    group: str,
    stream: str,
    handle: Callable[[Any, Entry], Awaitable[Sequence[Command]]],
    after_batch: AfterBatch | None = None,
    description: str = "",
    parse: Callable[[Entry], Any] | None = None,
) -> Subscription:
    """A subscription to a stream of CloudEvents: parse each (`parse_event`, or `parse_trusted`
    for the project's own streams), bind ids to the log, and make the effect idempotent on the
    event's `source` + `id`."""
    parse = parse or parse_event

    async def _handle(entry: Entry) -> Effect:
        event = parse(entry)
        with handling(event.id, event.type, event.correlation_id):
            commands = await handle(event, entry)
        return Effect(tuple(commands), once_key=event.key)

    return Subscription(group, stream, _handle, after_batch, f"{group}:{stream}", description)


def parse_event(entry: Entry) -> CloudEvent:
    raw = entry.raw_event
    if raw is None:
        raise Poison("missing_event", f"entry {entry.id} on {entry.stream} has no `event` field")
    try:
        return CloudEvent.parse(raw)
    except ValidationError as e:
        raise Poison("invalid_event", "the entry is not a valid CloudEvent", errors_of(e)) from e


def parse_trusted(entry: Entry) -> Decoded:
    """An event from the project's own streams (validated once, at the gateway), typed in one
    pass (shared.decode); what is not one of the contract's events is poison."""
    raw = entry.raw_event
    if raw is None:
        raise Poison("missing_event", f"entry {entry.id} on {entry.stream} has no `event` field")
    try:
        return decode(raw)
    except ValidationError as e:
        raise Poison("invalid_event", "the entry is not one of the contract's events", errors_of(e)) from e


class _StreamSub(StreamSub):
    """FastStream's `StreamSub`, not copied when no prefix is added: its subscriber asks for
    the prefixed copy at every read and every batch's log context (`add_prefix`, a deepcopy of
    about 20 us here), and this project's routers have no prefix (the key prefix is in the
    stream names)."""

    def add_prefix(self, prefix: str) -> Self:
        return self if not prefix else super().add_prefix(prefix)


@dataclass
class Bus:
    """Runs subscriptions for one process. One `Bus` per process; one consumer name. FastStream
    reads the entries (on `redis`); what is done with them once read goes through `delivery`
    (shared.ports.Delivery: on `redis` unless another adapter is given, e.g. in memory)."""

    redis: Redis | None
    streams: Streams
    batch_size: int = 500
    block_ms: int = 1000
    #: after a batch smaller than `batch_size`, wait this long before the next read, so a
    #: steady trickle is read in batches of several entries rather than one round of reads,
    #: scripts and recomputes per entry (0: read again at once)
    linger_ms: float = 0.0
    claim_idle_ms: int = 30_000
    max_deliveries: int = 5
    consumer: str = field(default_factory=consumer_name)
    subscriptions: list[Subscription] = field(default_factory=list)
    retention: Retention | None = None
    delivery: Delivery = None  # type: ignore[assignment] - made from `redis` when not given

    def __post_init__(self) -> None:
        if self.delivery is None:
            if self.redis is None:
                raise ValueError("a Bus needs a Redis client or a Delivery adapter")
            self.delivery = RedisDelivery(self.redis, self.streams)
        self._sweepers: list[asyncio.Task[None]] = []
        self._stopping = False
        self.processed = 0  # entries applied or dead-lettered by this process
        self.failures = 0

    @classmethod
    def from_settings(cls, redis: Redis, settings: Settings) -> Bus:
        return cls(
            redis,
            Streams(settings.key_prefix),
            batch_size=settings.batch_size,
            block_ms=settings.block_ms,
            linger_ms=settings.linger_ms,
            claim_idle_ms=settings.claim_idle_ms,
            max_deliveries=settings.max_deliveries,
        )

    def add(self, *subs: Subscription) -> None:
        self.subscriptions.extend(subs)

    # -- setup ---------------------------------------------------------------------------

    async def ensure_groups(self) -> None:
        """Create every group from id 0 (so nothing published earlier is missed)."""
        for sub in self.subscriptions:
            await self.delivery.create_group(sub.stream, sub.group)

    def register(self, router: RedisRouter) -> None:
        """Attach one FastStream batch subscriber per subscription to `router`."""
        for sub in self.subscriptions:
            self._register_one(router, sub)

    def _register_one(self, router: RedisRouter, sub: Subscription) -> None:
        stream_sub = _StreamSub(
            sub.stream,
            group=sub.group,
            consumer=self.consumer,
            batch=True,
            max_records=self.batch_size,
            polling_interval=self.block_ms,
            last_id=">",
        )

        async def on_batch(raw: Any) -> None:  # the batch as Redis gave it (see _decode_batch)
            entries = [
                Entry(sub.stream, _s(i), dict(d))
                for i, d in zip(raw["message_ids"], raw["data"], strict=True)
            ]
            await self.process(sub, entries)
            if self.linger_ms and len(entries) < self.batch_size and not self._stopping:
                await asyncio.sleep(self.linger_ms / 1000)  # what arrives meanwhile is read as one batch

        router.subscriber(
            stream=stream_sub,
            parser=_parse_batch,
            decoder=_decode_batch,
            ack_policy=AckPolicy.MANUAL,
            title=sub.title or f"{sub.group}:{sub.stream}",
            description=sub.description or None,
        )(on_batch)

    # -- processing ----------------------------------------------------------------------

    async def process(self, sub: Subscription, entries: list[Entry]) -> list[Applied]:
        """Handle a batch: effects + acks in one step; failures left pending."""
        effects: list[tuple[Entry, Effect]] = []
        poisoned: list[tuple[Entry, Poison]] = []
        failed: list[tuple[Entry, BaseException]] = []
        for entry in entries:
            try:
                effects.append((entry, await sub.handle(entry)))
            except Poison as p:
                poisoned.append((entry, p))
            except Exception as e:  # noqa: BLE001 - any failure leaves the entry pending
                failed.append((entry, e))

        results: list[bool | str] = []
        if effects:  # every effect and ack in one step: one round trip for the batch
            results = await self.delivery.settle(sub.group, sub.stream, _settling(effects))
        if poisoned or failed:
            await self.delivery.set_aside(
                sub.group,
                sub.stream,
                self.consumer,
                {entry.id: (entry.deliveries, json.dumps(p.reason())) for entry, p in poisoned},
                {entry.id: _error_json(e) for entry, e in failed},
            )

        applied: list[Applied] = []
        for (entry, _), result in zip(effects, results, strict=True):
            if isinstance(result, str):  # a write of its effect failed: left pending
                error = WriteFailed(result)
                failed.append((entry, error))
                await self._record_error(sub, entry, error)
            else:
                applied.append(Applied(entry, result))
        for entry, p in poisoned:
            log.warning("dead-lettered", stream=sub.stream, entry_id=entry.id, code=p.code, error=str(p))
        for entry, e in failed:
            log.error(
                "entry failed; left pending for retry",
                stream=sub.stream,
                entry_id=entry.id,
                deliveries=entry.deliveries,
                error=repr(e),
            )
        self.processed += len(applied) + len(poisoned)
        self.failures += len(failed)
        if applied and sub.after_batch is not None:
            await sub.after_batch(applied)
        return applied

    async def apply_now(self, group: str, effect: Effect) -> bool:
        """Apply an effect that has no stream entry behind it (e.g. `POST /events`).
        Returns False when its `once_key` had already been applied."""
        [result] = await self.delivery.settle(group, None, _settling([(None, effect)]))
        if isinstance(result, str):
            raise WriteFailed(result)
        return result

    async def _record_error(self, sub: Subscription, entry: Entry, e: BaseException) -> None:
        try:
            await self.delivery.set_aside(
                sub.group, sub.stream, self.consumer, {}, {entry.id: _error_json(e)}
            )
        except Exception as failure:  # noqa: BLE001 - Redis away: the entry stays pending all the same
            OUTAGE.failed(failure, "recording an entry's error")

    # -- reclaiming and dead-lettering ---------------------------------------------------

    async def sweep(self, sub: Subscription) -> int:
        """Reclaim entries idle for `claim_idle_ms`; dead-letter those delivered too often.
        Returns how many entries it moved on."""
        moved = 0
        start = "-"
        while True:
            rows = await self.delivery.pending(
                sub.stream, sub.group, start, self.batch_size, self.claim_idle_ms
            )
            if not rows:
                return moved
            retry: dict[str, int] = {}
            for row in rows:
                if row.deliveries >= self.max_deliveries:
                    moved += await self._move_to_dead_letter(sub, row.entry_id, row.deliveries)
                else:
                    retry[row.entry_id] = row.deliveries + 1
            if retry:
                claimed = await self.delivery.claim(
                    sub.stream, sub.group, self.consumer, self.claim_idle_ms, list(retry)
                )
                entries = [Entry(sub.stream, i, fields, deliveries=retry[i]) for i, fields in claimed]
                if entries:
                    log.info("reclaimed pending entries", stream=sub.stream, count=len(entries))
                    await self.process(sub, entries)
                    moved += len(entries)
            if len(rows) < self.batch_size:
                return moved
            start = rows[-1].entry_id

    async def _move_to_dead_letter(self, sub: Subscription, entry_id: str, deliveries: int) -> int:
        error = await self.delivery.error(sub.group, sub.stream, entry_id)
        reason = json.loads(error) if error else {"code": "failed", "message": "no error recorded"}
        reason = {**reason, "code": reason.get("code", "failed"), "deliveries": deliveries}
        moved = await self.delivery.dead_letter(
            sub.group, sub.stream, entry_id, self.consumer, self.claim_idle_ms, deliveries, json.dumps(reason)
        )
        if moved:
            log.warning(
                "dead-lettered after repeated failures",
                stream=sub.stream,
                entry_id=entry_id,
                deliveries=deliveries,
                error=reason.get("message"),
            )
            self.processed += 1
        return int(moved)

    async def forget_departed(self, sub: Subscription, idle_ms: int) -> list[str]:
        """Remove consumers of the group with nothing pending that have not read for
        `idle_ms` (processes that stopped): restarts would otherwise pile them up. A consumer
        with pending entries is never removed; its entries are reclaimed first."""
        gone = []
        for reader in await self.delivery.readers(sub.stream, sub.group):
            if reader.name != self.consumer and reader.pending == 0 and reader.idle_ms >= idle_ms:
                await self.delivery.remove_reader(sub.stream, sub.group, reader.name)
                gone.append(reader.name)
        if gone:
            log.info("removed departed consumers", stream=sub.stream, consumers=gone)
        return gone

    async def _sweep_forever(self, sub: Subscription) -> None:
        interval = min(max(self.claim_idle_ms / 2000, 0.1), 5.0)
        departed_ms = max(10 * self.claim_idle_ms, 600_000)
        rounds = 0
        while not self._stopping:  # a flag as well as cancellation: a swallowed cancel cannot keep it going
            try:
                await self.sweep(sub)
                if rounds % max(int(60 / interval), 1) == 0:
                    await self.forget_departed(sub, departed_ms)
                rounds += 1
                OUTAGE.ok()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - Redis away: try again next round
                OUTAGE.failed(e, f"sweep of {sub.stream}")
            await asyncio.sleep(interval)

    @property
    def running(self) -> bool:
        """Every sweeper alive (they stop only with the process, or on a bug)."""
        return bool(self._sweepers) and not any(t.done() for t in self._sweepers)

    def start_sweepers(self) -> None:
        self._sweepers = [asyncio.create_task(self._sweep_forever(s)) for s in self.subscriptions]
        if self.retention is not None:
            self._sweepers.append(asyncio.create_task(self._retain_forever(self.retention)))

    async def _retain_forever(self, retention: Retention) -> None:
        while not self._stopping:
            try:
                await retention.run_once()
                OUTAGE.ok()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - Redis away: try again next round
                OUTAGE.failed(e, "retention round")
            await asyncio.sleep(retention.interval_s)

    async def stop_sweepers(self, timeout: float = 5.0) -> None:
        self._stopping = True
        for t in self._sweepers:
            t.cancel()
        if self._sweepers:
            _, stuck = await asyncio.wait(self._sweepers, timeout=timeout)
            if stuck:
                log.warning("sweepers still busy at stop; left behind", count=len(stuck))
        self._sweepers = []


def _settling(effects: Sequence[tuple[Entry | None, Effect]]) -> list[Settling]:
    """A batch's effects as `Delivery.settle` takes them (an entry of `None`: nothing to ack)."""
    return [
        Settling(
            entry.id if entry else None,
            effect.commands,
            effect.once_key,
            bool(entry and entry.deliveries > 1),
        )
        for entry, effect in effects
    ]


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _error_json(e: BaseException) -> str:
    return json.dumps({"code": "handler_error", "message": f"{type(e).__name__}: {e}", "at": time.time()})


async def _parse_batch(message: Any) -> RedisBatchStreamMessage:
    """FastStream parser for the contract's wire format: entries stay as Redis gave them."""
    return RedisBatchStreamMessage(
        raw_message=message,
        body=b"",
        headers={},
        batch_headers=[],
        content_type=None,
        correlation_id=_s(message["message_ids"][0]) if message["message_ids"] else "",
        message_id=_s(message["message_ids"][0]) if message["message_ids"] else "",
        consumer=FAKE_CONSUMER,  # acks are ours, in the same script as the effect
        group=None,
    )


async def _decode_batch(message: RedisBatchStreamMessage) -> Any:
    """The handler's argument: the raw batch (ids and fields). Handing it over as the body
    rather than through `Context("message")` spares FastStream a worker-thread hop per batch
    (it resolves that dependency with a synchronous function)."""
    return message.raw_message
