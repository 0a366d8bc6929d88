"""Ports: what the services' logic needs from the outside world, as Protocols. Adapters
(shared.adapters) implement them on Redis and in memory; one contract test suite
(tests/contract/) runs on both, so the two keep the same behaviour.

A port speaks the commissioners' terms (a request held for its owner's decision, a decision
recorded and published), never Redis commands.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from shared.authority import Refused


@dataclass(frozen=True)
class Decision:
    """An owner's decision on one partner's request: accepted (claiming `claims`, the slots
    only one accepted request may hold, e.g. one return per period and partner) or refused."""

    key: str  # the request's `source id`
    type: str  # its event type: an accepted request is published on `P:<type>`
    partner: str  # who sent it: a refused request is published on `P:rejected:<partner>`
    claims: tuple[str, ...] = ()
    refused: Refused | None = None

    @property
    def verdict(self) -> str:
        return "accepted" if self.refused is None else f"refused:{self.refused.code}"


class DecisionLog(Protocol):
    """Where an owner's requests wait and its decisions are recorded and published, each once."""

    async def hold(self, key: str, raw: bytes, request_id: str, inbound_id: str) -> None:
        """Keep a request (its original bytes and where it arrived) until it is decided."""

    async def record(self, decisions: Sequence[Decision]) -> list[str]:
        """Record and publish `decisions` in order, as one step. Returns, for each decision
        handled, the verdict that stands: its own when recorded as asked (or already recorded
        the same way); another replica's (`accepted`, `refused:<code>`); `missing` (the request
        is no longer held); `conflict:<slot>` (another accepted request holds a slot). It stops
        after the first that did not stand as asked: the rest were judged on what the caller
        assumed about that one, and are decided again."""

    async def verdicts(self) -> dict[str, str]:
        """Every recorded verdict, by request key (read at start-up)."""

    async def forget_refused(self, before_ms: int) -> int:
        """Forget the verdicts of requests refused before `before_ms` (Unix ms): the same request
        sent again after that is decided afresh. Accepted verdicts are kept. How many."""

    def arrival(self, key: str, request_id: str, inbound_id: str) -> Write:
        """The write noting where a request arrived (applied when the request is stored)."""

    async def arrivals(self, keys: Sequence[str] | None = None) -> dict[str, str]:
        """`<request entry id> <inbound id>` of the held requests (`keys`, or all)."""


#: a write a port asks for, applied by the bus in one atomic step with the entry's ack (the
#: Redis adapter's are Redis commands; the in-memory adapter's are applied by `apply`)
Write = tuple[str | bytes | int, ...]


class LogTrimmed(Exception):
    """The state log no longer holds what followed a position: read the set whole."""


@dataclass(frozen=True)
class Snapshot:
    """A service's index as it was once every event logged up to `position` was folded into it,
    in the service's own encoding (`blob`), for the set of generation `generation`."""

    blob: bytes
    position: str
    generation: bytes | None


class StateStore(Protocol):
    """A service's applied events: the set (`source id` -> the event's bytes), a log of the keys
    in the order they were stored (each process follows it to fold what replicas stored; its
    entries older than a few minutes are trimmed, `trim`), and a generation that changes when a
    rebuild replaces the set."""

    def store(self, key: str, raw: bytes) -> list[Write]:
        """The writes that add one event (applied with its ack)."""

    async def generation(self) -> bytes | None: ...

    async def position(self) -> str:
        """The log's newest position (where it was trimmed to when it is empty; `0-0` when
        nothing was ever logged)."""

    def scan(self) -> AsyncIterator[tuple[str, bytes]]:
        """Every event in the set, in no particular order."""

    async def since(self, position: str, count: int) -> tuple[str, list[str], int]:
        """The keys logged after `position` (at most `count`), the position of the last, and how
        many events the set held at that moment (read together: once a reader has folded every
        key up to the log's end, its index holds exactly that many events). Raises `LogTrimmed`
        when entries after `position` may have been trimmed."""

    async def follow(self, position: str, count: int, way: Way | None = None) -> Followed:
        """In one step (one moment): the generation, and the keys logged after `position` as
        `since` gives them (`trimmed` instead of raising); with `way` (an owner's question), what
        is on its way to it as `Backlog.on_its_way` answers. A request is then either on its way
        or logged: none is missed between two looks."""

    async def trim(self, below: str) -> int:
        """Drop the log's entries before position `below` (the set keeps every event); how many."""

    async def get(self, keys: Sequence[str]) -> list[bytes | None]: ...

    async def save_snapshot(self, snapshot: Snapshot) -> bool:
        """Keep `snapshot` in place of the last one, unless that one is at a later position of the
        same generation (two replicas racing: the newer stands); whether it was kept."""

    async def snapshot(self) -> Snapshot | None:
        """The last snapshot saved, or None."""


@dataclass(frozen=True)
class Way:
    """An owner's question (`Backlog.on_its_way`): what is on its way to it?"""

    inbound: str  # P:inbound
    gateways: str  # the gateways' group on it
    requests: str  # the owner's request stream
    owner: str  # its group on that
    limit: int  # at most this many unread requests are looked at


@dataclass(frozen=True)
class Followed:
    """What `StateStore.follow` saw at one moment."""

    generation: bytes | None
    position: str  # of the last key (or the position asked about, when there is none)
    keys: list[str]  # logged after the position asked about, in order (at most the count)
    size: int  # events in the set
    trimmed: bool  # entries after the position asked about may have been trimmed (`LogTrimmed`)
    way: OnItsWay | None = None  # what was on its way, when asked


class Backlog(Protocol):
    """What the bus has not finished with: an owner decides nothing that arrived after a request
    still being handled, and lets a wait run out only when nothing is behind."""

    async def earliest_unhandled(self, stream: str, group: str) -> tuple[str, str] | None:
        """(entry id, its `inbound_id` field or '') of the entry `group` has read from `stream`
        and not acknowledged that arrived first (`shared.streams.arrival`: the least
        `inbound_id`, its own id where it has none; gateways forward in parallel, so the least
        id is not always the earliest arrival); None when there is none (or no such group)."""

    async def unread(self, stream: str, group: str, limit: int) -> list[tuple[str, str]] | None:
        """(entry id, its `inbound_id` field or '') of each entry on `stream` that `group` has not
        read yet (all of them when there is no such group), at most `limit`; None when more are
        waiting."""

    async def behind(self, streams: Sequence[str]) -> bool:
        """Whether any group on any of `streams` has entries unread or unacknowledged."""

    async def on_its_way(self, way: Way) -> OnItsWay:
        """The three looks an owner takes before deciding, in one step (one moment):
        `earliest_unhandled(way.inbound, way.gateways)`, `unread(way.requests, way.owner,
        way.limit)`, `earliest_unhandled(way.requests, way.owner)`."""


@dataclass(frozen=True)
class OnItsWay:
    """What is still on its way to an owner (`Backlog.on_its_way`)."""

    inbound: tuple[str, str] | None  # read by a gateway, not yet forwarded
    unread: list[tuple[str, str]] | None  # forwarded, not yet read (None: more than the limit)
    #: read by the owner, not yet stored: the one that arrived first (`earliest_unhandled`);
    #: ('0-0', '') when more than the look's limit are: taken as arrived before anything
    unhandled: tuple[str, str] | None


class Versions(Protocol):
    """What a service last published for each entity it derives, and publishing a new version
    exactly once: the version and its event are written together only if the last version is
    still the one the caller saw (replicas racing publish once)."""

    async def all(self) -> dict[str, dict[str, Any]]: ...

    async def publish(
        self,
        entity: str,
        expected: dict[str, Any] | None,
        new: dict[str, Any],
        stream: str,
        fields: dict[str, str | bytes],
    ) -> bool: ...


class UpdateLog(Protocol):
    """A stream of derived updates (the savings projection's `P:savings.updated`) and, beside
    it, each item's version as the updates last showed it: appended and recorded together, so
    a restarted process compares what it holds with what readers last received. Keeps about
    its `kept` newest entries."""

    async def shown(self) -> tuple[dict[str, bytes], tuple[str, bytes] | None]:
        """Each item's version as last shown, and the stream's newest entry: its id and its
        `event` field (None: the stream is empty or its newest entry has none)."""
        ...

    async def append(
        self, events: Sequence[bytes], shown: Mapping[str, bytes], removed: Sequence[str]
    ) -> str:
        """Append one entry per event (its `event` field), record `shown` and forget `removed`,
        all together; the last entry's id."""
        ...

    async def newest(self) -> tuple[str, bytes] | None:
        """The newest entry: its id and its `event` field (None: the stream is empty)."""
        ...

    async def after(self, entry_id: str, wait_ms: int, count: int) -> list[tuple[str, bytes]]:
        """Up to `count` entries after `entry_id`, in order (each id and `event` field); when
        there is none yet, the first to come within `wait_ms` (none: an empty list)."""
        ...

    async def lost_after(self, entry_id: str) -> bool:
        """Whether entries after `entry_id` were trimmed away: it is older than the oldest entry
        kept, and an entry was removed."""
        ...


class Entries(Protocol):
    """The project's streams read in the order they were written, outside any consumer group:
    a rebuild replaying every accepted event, the workspace reading what was accepted and
    refused, the dashboard's newest events. Entry ids are the streams' own (`<ms>-<seq>`)."""

    async def length(self, stream: str) -> int:
        """How many entries the stream holds now (0: it does not exist)."""
        ...

    async def events(
        self, stream: str, after: str, count: int, below: str | None = None
    ) -> list[tuple[str, bytes | None]]:
        """Up to `count` entries after id `after` ("-": from the first) and, when given, below
        id `below`, oldest first: each id and its `event` field (None: the entry has none)."""
        ...

    async def newest(self, stream: str, before: str, count: int) -> list[tuple[str, dict[bytes, bytes]]]:
        """Up to `count` entries before id `before` ("+": from the newest), newest first: each
        id and all its fields."""
        ...


class ArchiveMarks(Protocol):
    """Where the archive of each canonical stream stands (shared.archive: the last entry id
    written to a finished segment; the stream is trimmed only below it), and which process is
    archiving it (a hold that expires, so one that died does not keep it)."""

    async def hold(self, stream: str, owner: str, for_ms: int) -> bool:
        """Hold the stream for `for_ms` unless another holds it; whether it is now held."""
        ...

    async def release(self, stream: str) -> None:
        """Let go of the stream's hold."""
        ...

    async def archived(self, stream: str) -> str:
        """The last id archived ("0-0": none yet)."""
        ...

    async def mark(self, stream: str, entry_id: str) -> None:
        """Record that every entry up to `entry_id` is archived."""
        ...


class LeaseBoard(Protocol):
    """Partnerships shared among a deployment's processes (services.leases): a lease on each,
    held by one process for a time, and the processes seen lately."""

    async def seen(self, holder: str, now_ms: int, window_ms: int) -> int:
        """Record `holder` as alive at `now_ms` and forget those not seen within `window_ms`;
        how many are alive (this one included)."""
        ...

    async def gone(self, holder: str) -> None:
        """`holder` leaves: no longer counted."""
        ...

    async def take(self, partnership: str, holder: str, for_ms: int) -> bool:
        """Hold the partnership's lease for `for_ms` unless another holds it; whether taken."""
        ...

    async def renew(self, partnership: str, holder: str, for_ms: int) -> bool:
        """Hold it `for_ms` more, if `holder` still holds it; whether it did."""
        ...

    async def release(self, partnership: str, holder: str) -> bool:
        """Let it go, if `holder` still holds it; whether it did."""
        ...


class Unavailable(Exception):
    """The store behind a port cannot answer now (Redis away): try again later."""


class Credentials(Protocol):
    """Who may read (shared.viewers): each viewer token and sign-in session kept as its token's
    SHA-256 digest with the viewer's name (a session expires by itself), and the state of each
    sign-in under way with the council's identity provider until its callback (services.oidc).
    Raises `Unavailable` when the store cannot answer."""

    async def add(self, token_digest: str, name: str, expires_s: int | None = None) -> None:
        """Keep a token's digest for `name`: for good (a viewer token), or for `expires_s`
        seconds (a sign-in session)."""
        ...

    async def name_of(self, token_digest: str) -> str | None:
        """The name a token or live session was issued to (None: none)."""
        ...

    async def remove(self, name: str) -> int:
        """Forget every token and session of `name`; how many there were."""
        ...

    async def names(self) -> list[str]:
        """The names holding viewer tokens (sessions aside), sorted."""
        ...

    async def hold(self, state: str, value: str, expires_s: int) -> None:
        """Keep a sign-in's state (what its callback checks) for `expires_s` seconds."""
        ...

    async def take(self, state: str) -> str | None:
        """A sign-in's state, once: forgotten as it is read (None: unknown, expired or used)."""
        ...


class Usage(Protocol):
    """The store's own size, for the operator (services.metrics, the readiness check)."""

    async def memory(self) -> tuple[int, int]:
        """Bytes in use and the limit (0: none)."""
        ...


class Rebuilt(Protocol):
    """A service's set of applied events written again beside the live one (a rebuild), with
    its group's once-keys, then put in place of both in one step: processes reading the set
    see the generation move on and read it again."""

    async def clear(self) -> None:
        """Forget what an earlier rebuild left written and not put in place."""
        ...

    async def add(self, events: Mapping[str, bytes], at_ms: int) -> None:
        """Write each event (key -> its bytes) into the new set, with its once-key settled at
        `at_ms` (its window of retention starts then)."""
        ...

    async def put_in_place(self) -> int:
        """The new set and once-keys in place of the live ones (none written: both emptied),
        and the generation moved on, in one step; the new generation."""
        ...


@dataclass(frozen=True)
class Settling:
    """One entry's effect, for `Delivery.settle`: its writes, applied once per `once_key` (the
    event's `source id`; None: every time), with the entry's acknowledgement."""

    entry_id: str | None  # None: nothing to acknowledge (an act with no entry behind it)
    writes: Sequence[Write]
    once_key: str | None = None
    redelivered: bool = False  # read before: an error may be kept for it, cleared once settled


@dataclass(frozen=True)
class Pending:
    """An entry a reader of the group holds and has not acknowledged."""

    entry_id: str
    deliveries: int


@dataclass(frozen=True)
class Reader:
    """A reader of a group (a process's consumer name), what it holds, and since when it is idle."""

    name: str
    pending: int
    idle_ms: int


@dataclass(frozen=True)
class GroupState:
    """A consumer group reading a stream: the entries it was given and has not acknowledged,
    and those it has not been given yet (None: the store cannot tell)."""

    name: str
    pending: int
    lag: int | None


class Delivery(Protocol):
    """A consumer group's entries once read (the bus reads them through FastStream): each
    entry's writes applied together with its acknowledgement, once per event; a failure kept
    with the entry, which stays pending; what a reader left pending taken over; what can never
    succeed moved to the dead-letter stream (`Streams.dead_letter`) with its reason."""

    async def create_group(self, stream: str, group: str) -> None:
        """The group, reading `stream` from its first entry; an existing group is kept."""
        ...

    async def settle(self, group: str, stream: str | None, batch: Sequence[Settling]) -> list[bool | str]:
        """Per entry, in order, each as one step: True, its writes applied and the entry
        acknowledged; False, acknowledged alone (its `once_key` was settled before: a duplicate);
        or the error of the write that failed (the writes before it stand, the entry stays
        pending). `stream` None: entries with nothing to acknowledge."""
        ...

    async def set_aside(
        self,
        group: str,
        stream: str,
        consumer: str,
        poisoned: Mapping[str, tuple[int, str]],
        failed: Mapping[str, str],
    ) -> None:
        """Together: entries this consumer holds that can never succeed moved to the dead-letter
        stream (entry id -> deliveries and the reason's JSON), and the errors of entries left
        pending for a retry kept (entry id -> the error's JSON)."""
        ...

    async def error(self, group: str, stream: str, entry_id: str) -> str | None:
        """The error kept for a pending entry (its JSON), if any."""
        ...

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
        """Move one pending entry to the dead-letter stream with its fields and `reason`
        (JSON), acknowledged, its error forgotten; only if it is still idle `idle_ms` (it is
        taken over first, so of two sweepers one moves it). Whether it moved it."""
        ...

    async def pending(self, stream: str, group: str, after: str, count: int, idle_ms: int) -> list[Pending]:
        """Up to `count` pending entries idle at least `idle_ms`, after id `after` ("-": from
        the first), in id order."""
        ...

    async def claim(
        self, stream: str, group: str, consumer: str, idle_ms: int, ids: Sequence[str]
    ) -> list[tuple[str, dict[bytes, bytes]]]:
        """Take over the entries still idle `idle_ms` (each delivered once more) for `consumer`:
        their ids and fields (an entry trimmed from the stream meanwhile is left out)."""
        ...

    async def readers(self, stream: str, group: str) -> list[Reader]: ...

    async def remove_reader(self, stream: str, group: str, name: str) -> None: ...

    async def groups_on(self, stream: str) -> list[GroupState]:
        """The groups reading `stream` (none: no such stream), for the operator's metrics."""
        ...

    # the dead letters, for the operator (`commissioning dead-letter`)

    async def dead_letters(self, after: str, count: int) -> list[tuple[str, dict[bytes, bytes]]]:
        """Up to `count` dead letters after id `after` ("-": from the first), oldest first: each
        id and its fields (the entry's own, with `stream`, `entry_id`, `group`, `deliveries`
        and `error`)."""
        ...

    async def replay(self, dead_letter_id: str) -> str:
        """Append a dead letter's own fields to the stream it came from, as a new entry, and
        remove it, in one step: "replayed", "not found", or "no original stream recorded"."""
        ...

    # what the bus keeps (shared.bus.retention)

    async def handled_below(self, stream: str) -> str | None:
        """The smallest id some group of `stream` still needs (pending, or not delivered to it
        yet): every entry below it was handled by every group. None when it has no group."""
        ...

    async def trim_below(self, stream: str, below: str) -> int:
        """Remove the entries below id `below`; how many."""
        ...

    async def cap(self, stream: str, most: int) -> int:
        """Keep about the newest `most` entries (at least that many); how many were removed."""
        ...

    async def forget_settled(self, group: str, before_ms: int, most: int) -> int:
        """Forget the group's once-keys settled before `before_ms`, and all but its newest
        `most`: an event sent again after that is applied again. How many were forgotten."""
        ...


@dataclass(frozen=True)
class Ports:
    """A service's adapters, made by its bootstrap (shared.adapters: `redis_ports`,
    `memory_ports`) and handed to its state."""

    state: StateStore
    decisions: DecisionLog
    backlog: Backlog
    #: the versions a service publishes under one name ("opportunities", "published", ...)
    versions: Callable[[str], Versions]
    #: a stream of updates (its key) with the versions it last showed, keeping about `kept` entries
    updates: Callable[[str, int], UpdateLog]
    #: the project's streams read in order
    entries: Entries
    #: where the archive of each canonical stream stands
    archive: ArchiveMarks
    #: a rebuild's new set of the service's applied events, with the once-keys of a group
    rebuilt: Callable[[str], Rebuilt]
