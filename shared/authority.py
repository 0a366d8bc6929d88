"""Authority (CONTRACT.md 1.1): the service that owns an object decides every act on it.

The gateway only authenticates and validates a partner's submission; it then goes to its
owner's request stream (`P:requests:<owner>`), never to a canonical stream. The owner stores
it, decides it against what it has accepted so far, and publishes the decision once: accepted,
the original bytes on `P:<type>` (what every other service reads); refused, on
`P:rejected:<partner>` with the reason, and forgotten. A refused act therefore changes no
figure anywhere. The permission table and every reason code are in docs/authority.md.

Deciding (`OwnerState.decide_pending`, in arrival order) happens as soon as a batch brings
requests (`EventSetState.decide`), not at the cadence of what the owner derives. A request whose
prerequisite has not been read yet (an award for a return: streams are read on their own) waits
for it: it is refused with the code the rule gave once `wait_s` have passed since its arrival
and the partnership's streams have had no backlog for `QUIET_S` (a service that is behind never
refuses for being behind); later requests on the same object wait behind it, so each object's
requests are decided in the order they came. Nor is a request decided while an earlier one is
still on its way (read by a gateway and not yet forwarded, forwarded and not yet read, read and
not yet stored: `_way`, seen in the same moment as the state's log). Each decision is written by
one Lua step (shared/bus/decide.lua) that refuses to decide a request twice and to let two
accepted requests claim the same slot (one return per period and partner, one decommissioning
per contract...), so replicas deciding at once agree.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from shared.bus import Entry
from shared.events import CloudEvent, Payload
from shared.ports import Decision, OnItsWay, Ports, Way, Write
from shared.state import EventSetState
from shared.streams import Streams, arrival, entry_id

log = structlog.get_logger("authority")

#: who decides each act a partner may send (bids go to their own sealed stream; an
#: `investment.recorded` is decided at the gateway: its one rule, that the partner records its
#: own spending, is checked there)
OWNERS: Mapping[str, str] = {
    "need.identified": "needs",
    "need.updated": "needs",
    "need.withdrawn": "needs",
    "opportunity.joined": "needs",
    "opportunity.declined": "needs",
    "tender.awarded": "procurement",
    "tender.requested": "procurement",
    "tender.evaluation.submitted": "procurement",
    "tender.award.confirmed": "procurement",
    "tender.cancel.requested": "procurement",
    "contract.sla.agreed": "contracts",
    "monitoring.return.submitted": "contracts",
    "contract.decommissioned": "contracts",
    "contract.member.exited": "contracts",
    "contract.review.recorded": "contracts",
    "contract.decommissioning.proposed": "contracts",
}


#: how long the partnership's streams must have had no backlog before a wait runs out (at most
#: the wait itself): a prerequisite that was coming would have been read in that time
QUIET_S = 5.0


class Refused(Exception):
    """An act its owner refuses: a machine-readable code and a message in the partner's words."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def reason(self) -> dict[str, Any]:
        return {"code": self.code, "message": str(self), "errors": []}


@dataclass(frozen=True)
class Wait:
    """The rule needs something not read yet; refused with this code if it never comes."""

    code: str
    message: str
    #: what it waits on (e.g. `need:<partner>/<need>`): judged again only once a fact touching
    #: one of these is folded (`OwnerState.touches`); empty: once any fact is folded
    on: frozenset[str] = frozenset()


#: what a rule answers: the slots an acceptance claims, or `Wait`; a refusal is raised
Verdict = tuple[str, ...] | Wait
Check = Callable[[Payload, str], Verdict]


def sender(payload: Payload) -> str:
    field = type(payload).signer_field
    return str(getattr(payload, field)) if field else "unknown"


@dataclass
class Request:
    key: str
    payload: Payload
    arrived: tuple[int, int]  # its entry id on P:inbound (else the request stream): order, time (ms)
    on: str = field(init=False)  # its `subject`, worked out once
    #: the rule's `Wait` for it, and the version of the index it was given at (`decide_pending`)
    waiting: tuple[int, Wait] | None = field(default=None, init=False)
    #: a fact touching what its `Wait` is on was folded since: judge it again
    woken: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.on = subject(self.payload)


_SUBJECTS = ("contract_id", "tender_id", "opportunity_id", "need_id")
#: per payload class, which of `_SUBJECTS` it has: asking a pydantic model for an attribute it
#: lacks raises inside (3% of the samples at 2,000 contracts, a request at a time)
_subject_fields: dict[type, tuple[str, ...]] = {}


def subject(payload: Payload) -> str:
    """The object an act is on: requests on one object are decided in their arrival order."""
    cls = type(payload)
    names = _subject_fields.get(cls)
    if names is None:
        if cls.model_config.get("extra") == "allow":  # extra fields may name one: ask each time
            names = _SUBJECTS
        else:
            names = tuple(n for n in _SUBJECTS if n in cls.model_fields or hasattr(cls, n))
        _subject_fields[cls] = names
    for name in names:
        if (value := getattr(payload, name, None)) is not None:
            return f"{name}:{value}"
    return ""


def _stored_arrival(value: str) -> tuple[int, int]:
    request_id, _, inbound_id = value.partition(" ")
    return arrival(request_id, inbound_id)


I = TypeVar("I")

#: at most this many forwarded requests not yet read are looked at for their arrival; with more
#: waiting, deciding pauses until the owner has read them
UNREAD_LOOKED_AT = 10_000


class OwnerState(EventSetState[I]):
    """A service's state (shared.state) that also owns some acts: requests of the `owned`
    types are held until decided; only accepted ones are folded into the index."""

    def __init__(
        self,
        ports: Ports,
        streams: Streams,
        service: str,
        new_index: Callable[[], I],
        fold: Callable[[I, str, Any], I],
        owned: frozenset[str],
        wait_s: float,
    ) -> None:
        super().__init__(ports, streams, service, new_index, self._fold_or_hold)
        self._fold_fact = fold
        self.owned, self.wait_s = owned, wait_s
        #: where requests wait and decisions are recorded (shared.ports.DecisionLog)
        self.decisions = ports.decisions
        self.backlog = ports.backlog
        self.pending: dict[str, Request] = {}
        self._accepted: set[str] = set()  # owned requests accepted, while loading
        #: requests this process decided while the batch that stored them was still to be
        #: folded (`after_batch`): folded or forgotten already, not to be held again. No set of
        #: every decided key is kept: a request is met once by the log, or by its own batch
        self._settled: set[str] = set()
        self._arrivals: dict[str, tuple[int, int]] = {}
        self._retry: asyncio.TimerHandle | None = None
        #: what a fact touches (`Wait.on`), by the service; None: anything
        self.touches: Callable[[Payload], Iterable[str] | None] = lambda payload: None
        #: requests told to wait on something, by that thing
        self._listening: dict[str, set[str]] = {}
        self._anything = 0  # `_version` when a fact that may touch anything was last folded
        #: the streams this service reads (set by its wiring): a wait runs out only while they
        #: and the partners' inbound and request streams have no backlog (`_quiet_for`), never
        #: because the partnership's services are behind
        self.inputs: list[str] = []
        self._quiet_since_ms: float | None = None
        #: the earliest request still on its way somewhere (`_on_its_way`): nothing that arrived
        #: after it is decided before it
        self._horizon: tuple[int, int] | None = None
        #: the arrival of each request the last look found unread (`_on_its_way`): the same
        #: entries come back look after look until the owner's group reads them, and working
        #: out each one's arrival again was 5% of `serve`'s samples at 8,000 contracts
        self._unread_arrivals: dict[tuple[str, str], tuple[int, int]] = {}
        self._unplaced: set[str] = set()  # pending requests whose arrival is still to be read
        #: moves on whenever a fact is folded: a request told to wait is judged again only then
        self._version = 0

    # -- holding requests ---------------------------------------------------------------------

    def _fold_or_hold(self, index: I, key: str, payload: Any) -> I:
        if payload.type not in self.owned or key in self._accepted:
            if index is self.index:
                self._folded(payload)
            return self._fold_fact(index, key, payload)
        if key in self._settled:  # its own batch, after the log showed it and it was decided
            self._settled.discard(key)
            return index
        if key not in self.pending:
            arrived = self._arrivals.pop(key, None)
            if arrived is None:  # stored by another replica: its arrival is read from Redis
                self._unplaced.add(key)
            self.pending[key] = Request(key, payload, arrived or (int(time.time() * 1000), 0))
        return index

    async def handle(self, event: CloudEvent, entry: Entry) -> list[Write]:
        if len(self._settled) > 100_000:  # left by batches that never folded (cannot happen)
            self._settled.clear()
        commands = await super().handle(event, entry)
        if event.type in self.owned:
            inbound = entry.fields.get(b"inbound_id", b"").decode()
            self._arrivals[event.key] = arrival(entry.id, inbound)
            commands.append(self.decisions.arrival(event.key, entry.id, inbound))
        return commands

    def _way(self) -> Way:
        """What is on its way to this owner: on `P:inbound`, read by a gateway and not yet
        forwarded; on the request stream, forwarded and not yet read (gateways forward in
        parallel, and one reclaims what a crashed one left: a request can be forwarded after
        later ones were stored), or read by a replica and not yet stored. Looked at in the same
        moment as the state's log (`StateStore.follow`): a request is either seen on its way or
        logged, and folded with the rest."""
        return Way(
            self.streams.inbound,
            "gateway",
            self.streams.requests(self.service),
            self.service,
            UNREAD_LOOKED_AT,
        )

    def _on_its_way(self, way: OnItsWay) -> None:
        """Note the earliest request not yet stored (`_horizon`): nothing that arrived after it
        is decided before it."""
        earliest: list[tuple[int, int]] = []
        if way.inbound is not None:
            earliest.append(entry_id(way.inbound[0]))
        if way.unread is None:  # too many to look at: nothing is decided until they are read
            earliest.append((0, 0))
        else:  # a request's own arrival is its inbound entry
            known, arrivals = self._unread_arrivals, {}
            for entry in way.unread:
                at = known.get(entry)
                arrivals[entry] = at if at is not None else arrival(*entry)
            self._unread_arrivals = arrivals  # those still unread: forgotten once read
            if arrivals:
                earliest.append(min(arrivals.values()))
        if way.unhandled is not None:
            earliest.append(arrival(*way.unhandled))
        self._horizon = min(earliest, default=None)

    async def _in_flight(self) -> None:
        """`_on_its_way` on a look of its own, before the whole state is read (`_load`)."""
        self._on_its_way(await self.backlog.on_its_way(self._way()))

    async def _refresh(self) -> bool:
        changed = await super()._refresh()
        await self._place()
        return changed

    async def _place(self) -> None:
        """Read the arrival of requests another replica stored: they are decided in their turn.
        A request whose arrival is gone was decided already (decide.lua drops it with the
        decision), by a replica that decided everything before it on its object: it is judged
        first, so later requests are judged with it folded, and the verdict that stands is the
        one recorded (`DecisionLog.record`). Taking it as arriving now let a later request on
        the same object be judged before it: a return sent after its contract's
        decommissioning was accepted."""
        keys = [k for k in self._unplaced if k in self.pending]
        self._unplaced.clear()
        stored = await self.decisions.arrivals(keys)
        for key in keys:
            value = stored.get(key)
            self.pending[key].arrived = _stored_arrival(value) if value is not None else (0, 0)

    async def load(self) -> int:
        size = await super().load()
        if self.pending:  # stored before a stop or a crash, never decided: no batch may bring them
            self.urgent()
        return size

    async def _load(self, from_snapshot: bool = True) -> None:
        await self._in_flight()
        self.pending.clear()
        self._listening.clear()
        self._accepted = {k for k, v in (await self.decisions.verdicts()).items() if v == "accepted"}
        self._arrivals = {k: _stored_arrival(v) for k, v in (await self.decisions.arrivals()).items()}
        try:
            await super()._load(from_snapshot)
        finally:
            self._accepted = set()

    # -- deciding -----------------------------------------------------------------------------

    async def decide_pending(self, check: Callable[[], Check]) -> int:
        """Decide every pending request that can be decided now, in order, folding each
        accepted one at once so later requests are judged against it; then record the pass's
        decisions in one step. `check()` gives the rule function for this pass. Returns how
        many were decided."""
        if not self.pending:
            return 0
        rule: Check | None = None  # made only when something is to be judged
        now_ms = time.time() * 1000
        quiet: bool | None = None  # asked of Redis only when a wait is about to run out
        blocked: set[str] = set()  # objects with an earlier request still waiting
        decisions: list[Decision] = []
        horizon = self._horizon  # what arrived after it waits for a request still on its way
        ready = [q for q in self.pending.values() if horizon is None or q.arrived <= horizon]
        for request in sorted(ready, key=lambda q: (q.arrived, q.key)):
            on = request.on
            if on in blocked:
                continue
            payload = request.payload
            try:
                cached = self._still_waiting(request)
                if cached:
                    verdict: Verdict = request.waiting[1]  # type: ignore[index] - nothing it waits on moved
                else:
                    rule = rule or check()
                    verdict = rule(payload, request.key)
            except Refused as no:
                decisions.append(Decision(request.key, payload.type, sender(payload), refused=no))
                continue
            if isinstance(verdict, Wait):
                if not cached:
                    self._listen(request, verdict)
                expired = now_ms - request.arrived[0] >= self.wait_s * 1000
                if expired and quiet is None:
                    quiet = await self._quiet_for(now_ms)
                if not (expired and quiet):
                    blocked.add(on)
                    continue
                decisions.append(
                    Decision(
                        request.key,
                        payload.type,
                        sender(payload),
                        refused=Refused(verdict.code, verdict.message),
                    )
                )
                continue
            decisions.append(Decision(request.key, payload.type, sender(payload), claims=verdict))
            self._folded(payload)
            self._fold_fact(self.index, request.key, payload)  # judged on by the requests after it
        # held behind a request in flight (milliseconds, not a wait): looked at again soon
        held = horizon is not None and any(
            q.arrived > horizon and q.on not in blocked for q in self.pending.values()
        )
        try:
            stood = await self.decisions.record(decisions)
        except Exception:
            self.reload()  # this pass's acceptances were folded before they were recorded
            raise
        for decision, standing in zip(decisions, stood, strict=False):
            self._listen(self.pending.pop(decision.key), None)
            if decision.key in self._payloads:  # its batch is still to be folded (`after_batch`)
                self._settled.add(decision.key)
            # an acceptance is one line an event (DEBUG); a refusal is worth an operator's look
            (log.debug if standing == "accepted" else log.info)(
                "decided", key=decision.key, type=decision.type, verdict=standing, partner_id=decision.partner
            )
        if len(stood) < len(decisions) or (stood and stood[-1] != decisions[len(stood) - 1].verdict):
            # a replica decided first, or holds a slot: what this pass folded on its own
            # assumption is read again, and the rest decided on that
            log.info(
                "decision stands otherwise; deciding again",
                key=decisions[len(stood) - 1].key,
                stood=stood[-1] if stood else None,
            )
            self.reload()
        if self.pending:
            self._retry_later(0.05 if held else 1.0)
        return len(stood)

    def _duplicate(self, key: str) -> None:
        self._settled.discard(key)  # its batch brought it again: nothing more will

    def _folded(self, payload: Payload) -> None:
        """A fact is being folded: requests waiting on what it touches are judged again."""
        self._version += 1
        touched = self.touches(payload)
        if touched is None:  # anything: every request waiting on something in particular too
            self._anything = self._version
            return
        for thing in touched:
            for key in self._listening.pop(thing, ()):
                if (request := self.pending.get(key)) is not None:
                    request.woken = True

    def _still_waiting(self, request: Request) -> bool:
        """Whether a request told to wait would be told the same: nothing it waits on was folded
        since (or, waiting on nothing in particular, nothing at all)."""
        if request.waiting is None:
            return False
        version, wait = request.waiting
        if wait.on:
            return not request.woken and version >= self._anything
        return version == self._version

    def _listen(self, request: Request, wait: Wait | None) -> None:
        """Note what `request` waits on now (None: nothing, it is decided)."""
        old = request.waiting[1].on if request.waiting is not None else frozenset()
        for thing in old:
            if (keys := self._listening.get(thing)) is not None:
                keys.discard(request.key)
                if not keys:
                    del self._listening[thing]
        request.waiting = (self._version, wait) if wait is not None else None
        request.woken = False
        for thing in wait.on if wait is not None else ():
            self._listening.setdefault(thing, set()).add(request.key)

    async def _quiet_for(self, now_ms: float) -> bool:
        """Whether the partnership's input has had no backlog for `QUIET_S`: every group on the
        inbound stream, the request streams and this service's inputs has read and acknowledged
        everything. Only then can a prerequisite be taken as never coming."""
        owners = sorted(set(OWNERS.values()))
        streams = [self.streams.inbound, *(self.streams.requests(o) for o in owners), *self.inputs]
        if await self.backlog.behind(streams):
            self._quiet_since_ms = None
            return False
        if self._quiet_since_ms is None:
            self._quiet_since_ms = now_ms
        return now_ms - self._quiet_since_ms >= min(self.wait_s, QUIET_S) * 1000

    def _retry_later(self, delay: float) -> None:
        """Waiting requests are looked at again even when nothing else arrives."""
        loop = asyncio.get_running_loop()
        if self._retry is not None and loop.time() < self._retry.when() <= loop.time() + delay:
            return  # already due as soon
        if self._retry is not None:
            self._retry.cancel()
        self._retry = loop.call_later(delay, self.urgent)

    def _schedule(self) -> None:
        super()._schedule()
        if self.pending:  # requests came with the batch: decided now, derived at the cadence
            self.urgent()
