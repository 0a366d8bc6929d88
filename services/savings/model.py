"""The savings model: a pure function of the set of events. No I/O.

`evolve(facts, key, payload)` adds one event to an order-independent index (`Facts`);
`project(facts, policy)` computes every figure from it. Arithmetic is exact (`Fraction`) and
money is rounded once, to the penny, per contract figure; portfolio and partner figures are
sums and exact splits of those, so every table adds up. The rules are written out in
docs/savings.md.
"""

from __future__ import annotations

import hashlib
import math
import os
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import zstandard

from shared.contract.base import revision_of
from shared.dates import DAY, add_months
from shared.events import (
    AwardShare,
    ContractDecommissioned,
    ContractMemberExited,
    InvestmentRecorded,
    MonitoringReturnSubmitted,
    NeedIdentified,
    Payload,
    TenderAwarded,
)
from shared.money import money_str, pence, pence_of, pence_str
from shared.policy import SavingsPolicy

# -- the index of facts --------------------------------------------------------------------


class Chunk:
    """Payloads' JSON as a snapshot holds them (services/savings/snapshot.py): a zstd frame,
    decompressed when one of them is first read. Safe across threads (the snapshot's encoding
    reads in a worker): at worst two decompress it at once, to the same bytes."""

    __slots__ = ("_frame", "_raw")

    def __init__(self, frame: bytes) -> None:
        self._frame, self._raw = frame, None

    def read(self, start: int, end: int) -> bytes:
        raw = self._raw
        if raw is None:
            raw = self._raw = zstandard.decompress(self._frame)
        return raw[start:end]

    def peek(self) -> bytes:
        """Its bytes, decompressed for the caller alone if they are not kept yet (a snapshot's
        encoding reads every piece once: the chunks it reads are not kept for it)."""
        raw = self._raw
        return raw if raw is not None else zstandard.decompress(self._frame)


class Reading:
    """Reads pieces of chunks in the order they lie, one chunk's bytes held at a time (`peek`)."""

    def __init__(self) -> None:
        self._chunk: Chunk | None = None
        self._raw = b""

    def __call__(self, chunk: Chunk, start: int, end: int) -> bytes:
        if chunk is not self._chunk:
            self._chunk, self._raw = chunk, chunk.peek()
        return self._raw[start:end]


class Fact:
    """One event's part in the index: its `source id` (`key`: ties between events claiming the same
    thing go to the larger), its payload, and its revision (need.updated: the highest stands).
    A fact restored from a snapshot (services/savings/snapshot.py) may hold its payload's JSON
    and a model to read it with, read the first time it is asked for."""

    __slots__ = ("_encoded", "_payload", "key", "revision")

    def __init__(self, key: str, payload: Any, revision: int = 0) -> None:
        self.key, self._payload, self.revision = key, payload, revision
        #: (the model, the chunk its JSON lies in, where it starts, where it ends)
        self._encoded: tuple[Any, Chunk, int, int] | None = None

    @classmethod
    def encoded(cls, key: str, revision: int, encoded: tuple[Any, Chunk, int, int]) -> Fact:
        """A fact whose payload is the JSON `encoded` places (model, chunk, start, end), read
        when first used."""
        fact = cls.__new__(cls)
        fact.key, fact._payload, fact.revision, fact._encoded = key, None, revision, encoded
        return fact

    @property
    def payload(self) -> Any:
        if self._encoded is not None:
            model, chunk, start, end = self._encoded
            self._payload, self._encoded = model.model_validate_json(chunk.read(start, end)), None
        return self._payload

    def holds(self, payload: Any) -> bool:
        """Whether its payload is this very object (not an equal one, not one still encoded)."""
        return self._payload is payload

    def as_json(self, read: Reading | None = None) -> tuple[Any, bytes]:
        """Its payload's model and JSON, an encoded payload as it is (not read; by `read` when
        given). Safe while another thread reads the payload: `_encoded` is looked at once, and
        `_payload` is set before `_encoded` is dropped."""
        encoded = self._encoded
        if encoded is not None:
            model, chunk, start, end = encoded
            return model, read(chunk, start, end) if read is not None else chunk.read(start, end)
        payload = self._payload
        return type(payload), type(payload).__pydantic_serializer__.to_json(payload)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Fact):
            return NotImplemented
        return (self.key, self.revision, self.payload) == (other.key, other.revision, other.payload)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Fact({self.key!r}, {self.payload!r}, {self.revision})"


Slot = tuple[str, str]  # (partner id, need id)


#: the seed of the tables this process writes (`Places.table`): random, so no one can choose needs
#: that collide; one a process, so a capture encodes to the same bytes however often
_SEED = os.urandom(16)


class Places:
    """The needs of a snapshot by place (services/savings/snapshot.py): the slot at each place
    (`[k]`, in order when iterated) and each slot's place (`get`), found in an open-addressing
    table (linear probing, at most half full) by a BLAKE2b hash of the slot keyed by the
    snapshot's own random seed (no one can choose needs that collide). A restart reads the
    table as it is: no dict of the needs to build (one of 909,091 entries took 0.3-0.4 s, keyed
    by pairs or by integers alike). Never changed: a restored projection shares it with the
    copies its snapshots encode."""

    __slots__ = ("_ids", "_mask", "_partner", "_partners", "_seed", "_table")

    def __init__(self, partners: list[str], partner: Any, ids: list[str], table: Any, seed: bytes) -> None:
        #: each need's partner (a place among `partners`) and id, by place
        self._partners, self._partner, self._ids = partners, partner, ids
        self._table, self._mask, self._seed = table, len(table) - 1, seed

    @staticmethod
    def hash(seed: bytes, slot: Slot) -> int:
        key = f"{slot[0]}\n{slot[1]}".encode()  # a partner id holds no line break
        return int.from_bytes(hashlib.blake2b(key, digest_size=8, key=seed).digest(), "little")

    @staticmethod
    def table(
        slots: list[Slot], base: Places | None = None, pace: Callable[[], None] | None = None
    ) -> tuple[bytes, Any]:
        """(the seed, the table) of `slots`, by place; `base`'s, with the slots after its own
        added, when they start with its slots and it has room (a restored projection's next
        snapshot hashes only the needs it was given since). `pace` is called every 512 slots
        (an encoding in a worker thread: `snapshot.Pace`)."""
        n = len(slots)
        if base is not None and len(base) <= n and len(base._table) >= 2 * n:
            seed, table, start = base._seed, array("i", base._table), len(base)
        else:
            size = 8
            while size < 2 * n:
                size *= 2
            seed, table, start = _SEED, array("i", [-1]) * size, 0
        mask = len(table) - 1
        for k in range(start, n):
            if pace is not None and not k & 511:
                pace()
            i = Places.hash(seed, slots[k]) & mask
            while table[i] != -1:
                i = (i + 1) & mask
            table[i] = k
        return seed, table

    def get(self, slot: Slot) -> int | None:
        table, mask, ids = self._table, self._mask, self._ids
        i = self.hash(self._seed, slot) & mask
        while (k := table[i]) != -1:
            if ids[k] == slot[1] and self._partners[self._partner[k]] == slot[0]:
                return k  # type: ignore[no-any-return]
            i = (i + 1) & mask
        return None

    def __contains__(self, slot: object) -> bool:
        return type(slot) is tuple and len(slot) == 2 and self.get(slot) is not None

    def __len__(self) -> int:
        return len(self._ids)

    def __getitem__(self, k: int) -> Slot:
        return self._partners[self._partner[k]], self._ids[k]

    def __iter__(self) -> Iterator[Slot]:
        return zip(map(self._partners.__getitem__, self._partner), self._ids, strict=True)


class PackedNeeds(MutableMapping[Slot, Fact]):
    """The needs' facts by slot, as a snapshot restored holds them (services/savings/snapshot.py):
    its needs by their place (`places`), each made a `Fact` (`make(place)`) the first time it is
    asked for, and kept; the facts set since over them. Iterating over it makes each fact not
    made yet for the iteration alone, in order (`every()`: a snapshot's encoding reads every
    need once). What the snapshot holds is never changed: a copy shares it, and reads it in
    another thread."""

    __slots__ = ("_every", "_facts", "_make", "_new", "places")

    def __init__(
        self, places: Places, make: Callable[[int], Fact], every: Callable[[], Iterator[Fact]]
    ) -> None:
        self.places, self._make, self._every = places, make, every
        self._facts: dict[Slot, Fact] = {}
        self._new = 0  # facts set since in slots the snapshot does not hold

    def get(self, slot: Slot, default: Any = None) -> Any:  # type: ignore[override]
        fact = self._facts.get(slot)
        if fact is None:
            k = self.places.get(slot)
            if k is None:
                return default
            fact = self._facts[slot] = self._make(k)
        return fact

    def __getitem__(self, slot: Slot) -> Fact:
        fact = self.get(slot)
        if fact is None:
            raise KeyError(slot)
        return fact

    def __contains__(self, slot: object) -> bool:
        return slot in self._facts or slot in self.places

    def __setitem__(self, slot: Slot, fact: Fact) -> None:
        if slot not in self._facts and slot not in self.places:
            self._new += 1
        self._facts[slot] = fact

    def __delitem__(self, slot: Slot) -> None:
        raise TypeError("a need's fact is replaced, never removed")

    def __len__(self) -> int:
        return len(self.places) + self._new

    def __iter__(self) -> Iterator[Slot]:
        yield from self.places
        if self._new:
            yield from (slot for slot in self._facts if slot not in self.places)

    def items(self) -> Iterator[tuple[Slot, Fact]]:  # type: ignore[override]
        facts = self._facts
        for slot, made in zip(self.places, self._every(), strict=True):
            fact = facts.get(slot)
            yield slot, fact if fact is not None else made
        if self._new:
            yield from ((slot, f) for slot, f in facts.items() if slot not in self.places)

    def values(self) -> Iterator[Fact]:  # type: ignore[override]
        return (fact for _, fact in self.items())

    def copy(self) -> PackedNeeds:
        """Another over the same snapshot, with the facts set since copied."""
        other = PackedNeeds(self.places, self._make, self._every)
        other._facts, other._new = dict(self._facts), self._new
        return other


@dataclass
class Facts:
    #: by (partner, need): a dict, or `PackedNeeds` restored from a snapshot
    needs: MutableMapping[Slot, Fact] = field(default_factory=dict)
    awards: dict[str, Fact] = field(default_factory=dict)
    #: by contract, then (period start, period end, partner): the lead's, and members' own
    returns: dict[str, dict[tuple[date, date, str], Fact]] = field(default_factory=dict)
    decommissions: dict[str, Fact] = field(default_factory=dict)
    exits: dict[tuple[str, str], Fact] = field(default_factory=dict)  # by contract, partner
    #: the same exits by contract, then partner (`exit_into` keeps both): a contract's figures
    #: look at its own exits, not at every exit of the portfolio for each contract
    exits_of: dict[str, dict[str, Fact]] = field(default_factory=dict)
    investments: dict[tuple[str, str], Fact] = field(default_factory=dict)
    #: every key folded, to count them (`events_applied`); None in the running projection,
    #: which counts the events in its store instead (its memory then holds no per-event set)
    applied: set[str] | None = field(default_factory=set)


def _later(old: Fact | None, new: Fact) -> Fact:
    return new if old is None or (new.revision, new.key) > (old.revision, old.key) else old


def exit_into(facts: Facts, cid: str, pid: str, fact: Fact) -> None:
    """Put a member's exit in its slot (the contract, the partner), in both tables."""
    facts.exits[(cid, pid)] = fact
    facts.exits_of.setdefault(cid, {})[pid] = fact


def evolve(facts: Facts, key: str, payload: Payload) -> Facts:
    """Add one event. Adding the same events in any order, any number of times, gives the
    same `Facts`: each slot keeps a choice that depends only on the set."""
    if facts.applied is not None:
        if key in facts.applied:
            return facts
        facts.applied.add(key)
    fact = Fact(key, payload, revision_of(payload))
    match payload:
        case NeedIdentified():  # and NeedUpdated, its subclass
            slot = (payload.partner_id, payload.need_id)
            facts.needs[slot] = _later(facts.needs.get(slot), fact)
        case TenderAwarded():
            facts.awards[payload.contract_id] = _later(facts.awards.get(payload.contract_id), fact)
        case MonitoringReturnSubmitted():
            periods = facts.returns.setdefault(payload.contract_id, {})
            slot = (payload.period_start, payload.period_end, payload.partner_id)
            periods[slot] = _later(periods.get(slot), fact)
        case ContractMemberExited():
            cid, pid = payload.contract_id, payload.partner_id
            exit_into(facts, cid, pid, _later(facts.exits.get((cid, pid)), fact))
        case ContractDecommissioned():
            old = facts.decommissions.get(payload.contract_id)
            # the earliest decommissioning stands; among equals, the larger key
            if old is None or (payload.effective_date, _neg(key)) < (
                old.payload.effective_date,
                _neg(old.key),
            ):
                facts.decommissions[payload.contract_id] = fact
        case InvestmentRecorded():
            slot = (payload.partner_id, payload.investment_id)
            facts.investments[slot] = _later(facts.investments.get(slot), fact)
        case _:
            raise TypeError(f"the savings model does not use {type(payload).__name__}")
    return facts


def _neg(key: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in key)


# -- calendar helpers ----------------------------------------------------------------------


def _overlap(a0: date, a1: date, b0: date, b1: date) -> int:
    """Days in [a0, a1) ∩ [b0, b1)."""
    return max(0, (min(a1, b1) - max(a0, b0)).days)


# -- figures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    start: date
    end: date  # exclusive
    rate: Fraction  # pounds saved a day


@dataclass
class ContractFigures:
    award: TenderAwarded
    baseline: Decimal
    budgets: Decimal
    shared_cost: Decimal
    shared_cost_estimated: bool
    needs_missing: list[str]
    end: date  # exclusive: the day it stops saving
    status: str
    segments: list[Segment]
    decommissioning: dict[str, str] | None
    phases: list[Phase] = field(default_factory=list)
    current: Phase | None = None  # the phase `as_of` is in: the run-rate figures are its
    realised_p: int = 0
    years_p: list[int] = field(default_factory=list)
    years_disc_p: list[int] = field(default_factory=list)
    shares: dict[str, dict[str, int]] = field(default_factory=dict)
    #: derived once per contract version (the cache keeps them with the figures):
    row: dict[str, Any] = field(default_factory=dict)  # its line in the contracts table
    additions: list[tuple[str, str, int]] = field(default_factory=list)  # (partner, figure, pence)
    changes: dict[date, Fraction] = field(default_factory=dict)  # its daily saving rate's steps

    @property
    def annual_saving(self) -> Decimal:
        return self.baseline - self.shared_cost

    @property
    def price_saving(self) -> Decimal | None:
        return None if self.needs_missing else self.budgets - self.award.annual_value


def contract_years(start: date, end: date) -> list[tuple[date, date]]:
    """The contract's years from its start date, [start + k years, start + k+1 years)."""
    years, k = [], 0
    while True:
        a, b = add_months(start, 12 * k), add_months(start, 12 * (k + 1))
        if a >= end:
            return years
        years.append((a, b))
        k += 1


def segments(
    baseline: Decimal,
    shared_cost: Decimal,
    start: date,
    end: date,
    actuals: list[tuple[date, date, Decimal]],
    anchor: date | None = None,
) -> list[Segment]:
    """Daily saving rates over [start, end). In each contract year (from `anchor`, the contract's
    start) the annual figures are spread evenly over its days; a monitoring return's actual
    management cost replaces the estimate over its own period (`actuals`: non-overlapping
    [from, to) with the cost for that period)."""
    cuts = {start, end}
    years = contract_years(anchor or start, end)
    cuts.update(b for _, b in years if start < b < end)
    for a, b, _ in actuals:
        cuts.update(d for d in (a, b) if start < d < end)
    points = sorted(cuts)
    out: list[Segment] = []
    yi = ai = 0
    whole = Fraction(baseline)
    saved = whole - Fraction(shared_cost)
    rates: dict[int, Fraction] = {}  # the estimate's daily rate by the year's days: 365 or 366
    for a, b in zip(points, points[1:], strict=False):
        while years[yi][1] <= a:
            yi += 1
        year_days = (years[yi][1] - years[yi][0]).days
        while ai < len(actuals) and actuals[ai][1] <= a:
            ai += 1
        if ai < len(actuals) and actuals[ai][0] <= a:
            p0, p1, cost = actuals[ai]
            rate = whole / year_days - Fraction(cost) / (p1 - p0).days
        else:
            rate = rates.get(year_days)
            if rate is None:
                rate = rates[year_days] = saved / year_days
        out.append(Segment(a, b, rate))
    return out


def _actuals(returns: dict[tuple[date, date, str], Fact], lead: str) -> list[tuple[date, date, Decimal]]:
    """The lead's returns with an actual management cost (managing the contract is the lead's),
    as non-overlapping periods: where periods overlap, the one that starts first (then ends
    first) stands and the other is not used."""
    chosen: list[tuple[date, date, Decimal]] = []
    for (p0, p1, by), fact in sorted(returns.items()):
        cost = fact.payload.management_cost
        if cost is None or by != lead:
            continue
        end = p1 + DAY
        if chosen and p0 < chosen[-1][1]:
            continue
        chosen.append((p0, end, cost))
    return chosen


def split(total: int, weights: dict[str, Fraction] | dict[str, int]) -> dict[str, int]:
    """Split pence by weights, largest remainder first (ties by id): the parts sum to the whole.
    Integer arithmetic on the weights over their common denominator: exact, and fast."""
    if not weights:
        return {}
    if all(type(w) is int for w in weights.values()):  # pence (most splits): already integers
        scaled = weights
    else:
        denominator = math.lcm(*(w.denominator for w in weights.values()))
        scaled = {k: w.numerator * (denominator // w.denominator) for k, w in weights.items()}
    wsum = sum(scaled.values())
    if wsum <= 0:
        scaled, wsum = dict.fromkeys(weights, 1), len(weights)
    sign, whole = (1 if total >= 0 else -1), abs(total)
    parts, remainders = {}, {}
    for k, w in scaled.items():
        parts[k], remainders[k] = divmod(whole * w, wsum)
    left = whole - sum(parts.values())
    for k in sorted(remainders, key=lambda k: (-remainders[k], k))[:left]:
        parts[k] += 1
    return {k: sign * v for k, v in parts.items()}


def as_of(facts: Facts) -> date | None:
    dates = [f.payload.contract_start for f in facts.awards.values()]
    dates += [f.payload.period_end for ps in facts.returns.values() for f in ps.values()]
    dates += [f.payload.effective_date for f in facts.decommissions.values()]
    dates += [f.payload.notice_date for f in facts.exits.values()]  # it takes effect when the dates get there
    dates += [f.payload.date for f in facts.investments.values()]
    return max(dates, default=None)


def horizon(facts: Facts, policy: SavingsPolicy) -> tuple[date, date] | None:
    """From the programme start (the earliest investment or contract start) for
    `horizon_months` (5.5 years by default)."""
    return span_from(first_start(facts), policy)


def first_start(facts: Facts) -> date | None:
    """The programme start: the earliest investment or contract start."""
    starts = [f.payload.date for f in facts.investments.values()]
    starts += [f.payload.contract_start for f in facts.awards.values()]
    return min(starts, default=None)


def span_from(h0: date | None, policy: SavingsPolicy) -> tuple[date, date] | None:
    return None if h0 is None else (h0, add_months(h0, policy.horizon_months))


def dates_of(payload: Payload) -> tuple[date | None, date | None]:
    """What one fact brings to `as_of` and to the programme start: (a date `as_of` is the
    latest of, a date the programme starts at the earliest of), as those two read them."""
    match payload:
        case TenderAwarded():
            return payload.contract_start, payload.contract_start
        case MonitoringReturnSubmitted():
            return payload.period_end, None
        case ContractDecommissioned():
            return payload.effective_date, None
        case ContractMemberExited():
            return payload.notice_date, None
        case InvestmentRecorded():
            return payload.date, payload.date
    return None, None


def facts_in(facts: Facts, payload: Payload) -> int:
    """How many facts the slots `payload` would go to hold (the same after `evolve`: it
    replaced one, or changed nothing)."""
    match payload:
        case TenderAwarded():
            return len(facts.awards)
        case MonitoringReturnSubmitted():
            return len(facts.returns.get(payload.contract_id, ()))
        case ContractDecommissioned():
            return len(facts.decommissions)
        case ContractMemberExited():
            return len(facts.exits)
        case InvestmentRecorded():
            return len(facts.investments)
    return 0


def standing(facts: Facts, payload: Payload) -> Fact | None:
    """The fact that stands in the slot `payload` goes to (None: none yet)."""
    match payload:
        case NeedIdentified():
            return facts.needs.get((payload.partner_id, payload.need_id))
        case TenderAwarded():
            return facts.awards.get(payload.contract_id)
        case MonitoringReturnSubmitted():
            slot = (payload.period_start, payload.period_end, payload.partner_id)
            return facts.returns.get(payload.contract_id, {}).get(slot)
        case ContractDecommissioned():
            return facts.decommissions.get(payload.contract_id)
        case ContractMemberExited():
            return facts.exits.get((payload.contract_id, payload.partner_id))
        case InvestmentRecorded():
            return facts.investments.get((payload.partner_id, payload.investment_id))
    return None


def _ratio(x: int, y: int) -> str | None:
    if y == 0:
        return None
    return str((Decimal(x) / Decimal(y)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _m(p: int) -> str:
    return pence_str(p)


def _d(x: Decimal | None) -> str | None:
    return None if x is None else money_str(x)


@dataclass(frozen=True)
class Phase:
    """A stretch of a contract with the same partners: a member's exit starts a new one."""

    start: date
    end: date  # exclusive
    partners: frozenset[str]
    baseline: Decimal
    budgets: Decimal
    shared_cost: Decimal
    weights: dict[str, int]
    caps: dict[str, int]  # each partner's baseline in pence: no partner is credited more


def needs_of(award: TenderAwarded, facts: Facts) -> dict[Slot, Fact | None]:
    """The needs an award names, each looked up once (None: not identified yet): its key, its
    figures and its row read them from here, not from `facts.needs` again for each (a restored
    projection finds a need by hashing its slot)."""
    get = facts.needs.get
    return {slot: get(slot) for slot in [(s.partner_id, s.need_id) for s in award.partners]}


def _phases(
    award: TenderAwarded,
    facts: Facts,
    policy: SavingsPolicy,
    end: date,
    found: dict[Slot, Fact | None] | None = None,
) -> list[Phase]:
    """The contract's phases over [start, end): all its partners, then fewer after each exit
    (the contract no longer replaces an exited partner's needs; an estimated shared cost follows
    the number of partners left). `found`: the award's needs (`needs_of`), when looked up."""
    found = needs_of(award, facts) if found is None else found
    exits = {
        pid: f.payload.effective_date
        for pid, f in facts.exits_of.get(award.contract_id, {}).items()
        if pid != award.lead_partner_id
    }
    cuts = sorted({award.contract_start, end} | {d for d in exits.values() if award.contract_start < d < end})
    phases = []
    for p0, p1 in zip(cuts, cuts[1:], strict=False):
        shares = [s for s in award.partners if not (s.partner_id in exits and exits[s.partner_id] <= p0)]
        baseline = budgets = Decimal(0)
        caps: dict[str, int] = {}
        for s in shares:
            need = found[(s.partner_id, s.need_id)]
            cost = need.payload.current_annual_resource_cost if need else Decimal(0)
            baseline += cost
            budgets += need.payload.annual_budget if need else Decimal(0)
            caps[s.partner_id] = caps.get(s.partner_id, 0) + pence(cost)
        partners = frozenset(s.partner_id for s in shares)
        cost = (
            policy.shared_cost(len(partners))
            if award.annual_management_cost is None
            else award.annual_management_cost
        )
        phases.append(Phase(p0, p1, partners, baseline, budgets, cost, _weights(shares, caps), caps))
    return phases


def _contract(
    fact: Fact, facts: Facts, policy: SavingsPolicy, today: date, found: dict[Slot, Fact | None]
) -> ContractFigures:
    award: TenderAwarded = fact.payload
    missing = [
        f"{s.partner_id}/{s.need_id}" for s in award.partners if found[(s.partner_id, s.need_id)] is None
    ]
    estimated = award.annual_management_cost is None
    end = award.contract_end + DAY
    decommission = facts.decommissions.get(award.contract_id)
    if decommission is not None and decommission.payload.effective_date > award.contract_end:
        decommission = None  # after the contract's own end (as `contract_end` is): it changes nothing
    if decommission is not None:
        end = min(end, decommission.payload.effective_date)
    if decommission is not None and decommission.payload.effective_date <= today:
        status = "decommissioned"
    elif award.contract_end <= today:
        status = "ended"
    else:
        status = "active"
    actuals = _actuals(facts.returns.get(award.contract_id, {}), award.lead_partner_id)
    phases = _phases(award, facts, policy, max(end, award.contract_start + DAY), found)
    segs = [
        seg
        for ph in phases
        if ph.start < end
        for seg in segments(
            ph.baseline, ph.shared_cost, ph.start, min(ph.end, end), actuals, award.contract_start
        )
    ]
    now = next((ph for ph in reversed(phases) if ph.start <= today), phases[0])  # the run-rate's phase
    shown = {k: str(v) for k, v in decommission.payload.model_dump().items()} if decommission else None
    return ContractFigures(
        award,
        now.baseline,
        now.budgets,
        now.shared_cost,
        estimated,
        missing,
        end,
        status,
        segs,
        shown,
        phases=phases,
        current=now,
    )


def _weights(shares: list[AwardShare], baselines: dict[str, int]) -> dict[str, int]:
    """Partner shares: by contributions when every partner states one, else by baselines
    (in pence: only their proportions matter)."""
    contributions: dict[str, int] = {}
    for s in shares:
        if s.annual_contribution is not None:
            contributions[s.partner_id] = contributions.get(s.partner_id, 0) + pence(s.annual_contribution)
    if len(contributions) == len(baselines) and sum(contributions.values()) > 0:
        return contributions
    return baselines


def capped_split(total: int, weights: dict[str, int], caps: dict[str, int]) -> dict[str, int]:
    """`split`, but no partner is credited more than its cap (its own baseline: the staff cost
    it no longer bears); what a capped partner cannot take goes to the others by their weights.
    Splitting by baselines never needs it; contributions out of line with baselines can."""
    if total <= 0:
        return split(total, weights)
    fixed: dict[str, int] = {}
    free = dict(weights)
    while free:
        parts = split(total - sum(fixed.values()), free)
        over = [k for k, v in parts.items() if v > caps.get(k, v)]
        if not over:
            return {**fixed, **parts}
        for k in over:
            fixed[k] = caps[k]
            del free[k]
    return split(total, caps)  # every partner capped: the total cannot exceed their sum


def _payback(days: list[tuple[date, date, Fraction]], target: Fraction) -> date | None:
    """The day on which cumulative savings first reach `target` (None if never)."""
    if target <= 0:
        return None
    total = Fraction(0)
    for a, b, rate in days:
        span = (b - a).days
        if rate > 0 and total + rate * span >= target:
            return a + timedelta(days=math.ceil((target - total) / rate) - 1)
        total += rate * span
    return None


def _key(
    fact: Fact,
    facts: Facts,
    today: date | None,
    buckets: tuple[tuple[date, date], ...],
    policy: SavingsPolicy,
    found: dict[Slot, Fact | None] | None = None,
) -> tuple[Any, ...]:
    """Everything a contract's figures depend on: equal keys, equal figures. `found`: the
    award's needs (`needs_of`), when already looked up."""
    a = fact.payload
    found = needs_of(a, facts) if found is None else found
    needs = tuple((*slot, f.key if f is not None else None) for slot, f in found.items())
    d = facts.decommissions.get(a.contract_id)
    returns = tuple(sorted((period, f.key) for period, f in facts.returns.get(a.contract_id, {}).items()))
    exits = tuple(sorted((pid, f.key) for pid, f in facts.exits_of.get(a.contract_id, {}).items()))
    return (fact.key, needs, d.key if d else None, returns, exits, today, buckets, policy)


def _saved(segs: list[Segment], a: date, b: date) -> Fraction:
    """Exact pounds saved over [a, b), reduced once."""
    return Fraction(*_saved_over(segs, a, b))


def _saved_over(segs: list[Segment], a: date, b: date) -> tuple[int, int]:
    """`_saved` as (numerator, denominator > 0), not reduced: summed over one denominator, as
    integers (a contract's rates have one or two)."""
    num, den = 0, 1
    for s in segs:
        days = _overlap(s.start, s.end, a, b)
        if days:
            n, d = s.rate.numerator * days, s.rate.denominator
            if d == den:
                num += n
            else:
                num, den = num * d + n * den, den * d
    return num, den


def _annual_shares(ph: Phase) -> dict[str, int]:
    """A phase's annual saving split between its partners, none credited more than its cap."""
    return capped_split(pence(ph.baseline - ph.shared_cost), ph.weights, ph.caps)


def _by_phase(
    c: ContractFigures, total: int, a: date, b: date, annual: list[dict[str, int]]
) -> dict[str, int]:
    """Split a contract's rounded `total` over [a, b) between its partners: each phase's part
    (the last takes the rounding) by that phase's partners, in proportion to their capped
    annual shares (`annual`: each phase's `_annual_shares`). With no exits there is one phase
    and it is a plain split."""
    out: dict[str, int] = defaultdict(int)
    left = total
    for i, ph in enumerate(c.phases):
        part = left if i == len(c.phases) - 1 else pence(_saved(c.segments, max(a, ph.start), min(b, ph.end)))
        left -= part
        weights = annual[i] if pence(ph.baseline - ph.shared_cost) > 0 else ph.weights
        for pid, p in split(part, weights if sum(weights.values()) > 0 else ph.weights).items():
            out[pid] += p
    return dict(out)


def _figures(
    fact: Fact,
    facts: Facts,
    policy: SavingsPolicy,
    today: date | None,
    buckets: tuple[tuple[date, date], ...],
    factors: list[Fraction],
    found: dict[Slot, Fact | None] | None = None,
) -> ContractFigures:
    found = needs_of(fact.payload, facts) if found is None else found
    c = _contract(fact, facts, policy, today or date.min, found)
    stop = (today + DAY) if today else date.min
    c.realised_p = pence_of(*_saved_over(c.segments, c.award.contract_start, stop))
    for (b0, b1), discount in zip(buckets, factors, strict=True):  # in integers: no Fraction made
        num, den = _saved_over(c.segments, b0, b1)
        c.years_p.append(pence_of(num, den))
        c.years_disc_p.append(pence_of(num * discount.numerator, den * discount.denominator))
    now = c.current
    assert now is not None
    annual = [_annual_shares(ph) for ph in c.phases]  # each phase's, split once
    c.shares = {
        "annual_saving": next(a for ph, a in zip(c.phases, annual, strict=True) if ph is now),
        "realised_saving": _by_phase(c, c.realised_p, c.award.contract_start, stop, annual),
        "projected_saving": _by_phase(
            c, sum(c.years_p), *(buckets[0][0], buckets[-1][1]) if buckets else (date.min, date.min), annual
        ),
    }
    for s in c.award.partners:
        c.additions.append((s.partner_id, "annual_saving", 0))  # every partner of a contract has a row
    if c.status == "active":
        c.additions.extend((pid, "annual_saving", p) for pid, p in c.shares["annual_saving"].items())
        c.additions.extend((pid, "baseline_annual_cost", p) for pid, p in now.caps.items())
    for name in ("realised_saving", "projected_saving"):
        c.additions.extend((pid, name, p) for pid, p in c.shares[name].items())
    for seg in c.segments:
        c.changes[seg.start] = c.changes.get(seg.start, 0) + seg.rate
        c.changes[seg.end] = c.changes.get(seg.end, 0) - seg.rate
    a = c.award
    c.row = {
        "contract_id": a.contract_id,
        "tender_id": a.tender_id,
        "lead_partner_id": a.lead_partner_id,
        "supplier": a.supplier.name,
        "commissioning_model": a.commissioning_model,
        "status": c.status,
        "contract_start": a.contract_start.isoformat(),
        "contract_end": a.contract_end.isoformat(),
        "saving_until": (c.end - DAY).isoformat(),
        "partners": len({s.partner_id for s in a.partners}),
        "arrangements_replaced": sum(
            f.payload.current_arrangements
            for f in [found[(s.partner_id, s.need_id)] for s in a.partners]
            if f is not None
        ),
        "baseline_annual_cost": _d(c.baseline),
        "shared_annual_cost": _d(c.shared_cost),
        "shared_cost_estimated": c.shared_cost_estimated,
        "annual_saving": _m(pence(c.annual_saving)),
        "contract_price_annual_saving": _d(c.price_saving),
        "realised_saving": _m(c.realised_p),
        "projected_saving": _m(sum(c.years_p)),
        "needs_missing": c.needs_missing,
        "decommissioning": c.decommissioning,
    }
    return c


def project(
    facts: Facts, policy: SavingsPolicy, cache: dict[Any, ContractFigures] | None = None
) -> dict[str, Any]:
    """Every figure, as JSON-ready data (money as strings with 2 places). `cache` (kept by the
    caller between calls) memoises each contract's figures on everything they depend on; it is
    left holding only the figures this call used."""
    today = as_of(facts)
    span = horizon(facts, policy)
    factor = Fraction(1) / (1 + Fraction(policy.discount_rate))
    buckets: list[tuple[date, date]] = []
    if span:
        h0, h1 = span
        k = 0
        while add_months(h0, 12 * k) < h1:
            buckets.append((add_months(h0, 12 * k), min(add_months(h0, 12 * (k + 1)), h1)))
            k += 1
    frozen = tuple(buckets)
    factors = [factor**k for k in range(len(buckets))]  # a year's discount, from the horizon's start
    cache = {} if cache is None else cache
    need_rows = cache.pop(_NEED_ROWS, {})
    contracts, used = [], set()
    for _, f in sorted(facts.awards.items()):
        found = needs_of(f.payload, facts)
        key = _key(f, facts, today, frozen, policy, found)
        if key not in cache:
            cache[key] = _figures(f, facts, policy, today, frozen, factors, found)
        contracts.append(cache[key])
        used.add(key)
    if len(cache) > len(used):
        for stale in [k for k in cache if k not in used]:  # figures of superseded inputs
            del cache[stale]

    invest_p = sum(pence(f.payload.amount) for f in facts.investments.values())
    invest_disc = Fraction(0)
    if span:
        for f in facts.investments.values():
            k = max(
                0, next((i for i, (b0, b1) in enumerate(buckets) if b0 <= f.payload.date < b1), len(buckets))
            )
            invest_disc += Fraction(f.payload.amount) * factor**k
    invest_disc_p = pence(invest_disc)

    active = [c for c in contracts if c.status == "active"]
    projected_p = {c.award.contract_id: sum(c.years_p) for c in contracts}
    pv_p = sum(sum(c.years_disc_p) for c in contracts)
    projected_total = sum(projected_p.values())
    realised_total = sum(c.realised_p for c in contracts)

    # payback: walk the horizon day-rate timeline, plain and discounted
    timeline: list[tuple[date, date, Fraction]] = []
    timeline_disc: list[tuple[date, date, Fraction]] = []
    if span:
        # the steps of every contract's rate, summed exactly in integers over a common denominator
        common = math.lcm(*{r.denominator for c in contracts for r in c.changes.values()})
        steps: dict[date, int] = {}
        for c in contracts:
            for day, r in c.changes.items():
                steps[day] = steps.get(day, 0) + r.numerator * (common // r.denominator)
        deltas = {day: Fraction(n, common) for day, n in steps.items()}
        cuts = sorted(set(deltas) | {d for b in buckets for d in b})
        rate, k = Fraction(0), 0
        for a, b in zip(cuts, cuts[1:], strict=False):
            rate += deltas.get(a, 0)  # the daily rate from a: a running sum of starts and ends
            while k < len(buckets) - 1 and a >= buckets[k][1]:
                k += 1
            if span[0] <= a < span[1]:
                timeline.append((a, min(b, span[1]), rate))
                timeline_disc.append((a, min(b, span[1]), rate * factor**k))
    payback = _payback(timeline, Fraction(invest_p, 100))
    payback_disc = _payback(timeline_disc, Fraction(invest_disc_p, 100))

    # partners: exact splits of each contract's rounded figures
    partners: defaultdict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(_PARTNER_FIGURES, 0))
    for c in contracts:
        for pid, name, p in c.additions:
            partners[pid][name] += p
    for f in facts.investments.values():
        partners[f.payload.partner_id]["investment"] += pence(f.payload.amount)

    in_contract: dict[tuple[str, str], ContractFigures] = {}
    warnings: list[str] = []
    for c in contracts:
        for s in c.award.partners:
            slot = (s.partner_id, s.need_id)
            other = in_contract.get(slot)
            if other is not None and other.status == "active" and c.status == "active":
                warnings.append(
                    f"need {s.partner_id}/{s.need_id} is replaced by two active contracts: "
                    f"{other.award.contract_id}, {c.award.contract_id}"
                )
            if other is None or c.status == "active":
                in_contract[slot] = c
        if c.needs_missing:
            warnings.append(
                f"contract {c.award.contract_id} names needs not yet identified: {', '.join(c.needs_missing)}"
            )

    baseline_p = sum(pence(c.baseline) for c in active)
    shared_p = sum(pence(c.shared_cost) for c in active)
    price = [c.price_saving for c in active]
    years = []
    cumulative = 0
    for k, (b0, b1) in enumerate(buckets):
        saving = sum(c.years_p[k] for c in contracts)
        cumulative += saving
        years.append(
            {
                "year": k + 1,
                "from": b0.isoformat(),
                "to": (b1 - DAY).isoformat(),
                "saving": _m(saving),
                "discounted_saving": _m(sum(c.years_disc_p[k] for c in contracts)),
                "cumulative_saving": _m(cumulative),
            }
        )

    rows: dict[Any, dict[str, Any]] = {}
    figures = {
        "as_of": today.isoformat() if today else None,
        "portfolio": {
            "baseline_annual_cost": _m(baseline_p),
            "shared_annual_cost": _m(shared_p),
            "annual_saving": _m(baseline_p - shared_p),
            "contract_price_annual_saving": _m(sum(pence(p) for p in price if p is not None)),
            "investment": _m(invest_p),
            "projected_saving": _m(projected_total),
            "realised_saving": _m(realised_total),
            "roi": _ratio(projected_total - invest_p, invest_p),
            "payback_date": payback.isoformat() if payback else None,
            "active_contracts": len(active),
        },
        "discounted": {
            "rate": str(policy.discount_rate),
            "present_value_saving": _m(pv_p),
            "present_value_investment": _m(invest_disc_p),
            "npv": _m(pv_p - invest_disc_p),
            "roi": _ratio(pv_p - invest_disc_p, invest_disc_p),
            "payback_date": payback_disc.isoformat() if payback_disc else None,
        },
        "horizon": {
            "from": span[0].isoformat() if span else None,
            "to": (span[1] - DAY).isoformat() if span else None,
            "months": policy.horizon_months,
        },
        "years": years,
        "partners": [
            {"partner_id": pid, **{k: _m(v) for k, v in row.items()}} for pid, row in sorted(partners.items())
        ],
        "contracts": [c.row for c in contracts],
        "needs": [
            _need_row(need_rows, rows, pid, nid, f, in_contract.get((pid, nid)))
            for (pid, nid), f in sorted(facts.needs.items())
        ],
        "warnings": warnings,
        "events_applied": len(facts.applied) if facts.applied is not None else None,
    }
    cache[_NEED_ROWS] = rows  # the rows this call used, for the next
    return figures


_PARTNER_FIGURES = (
    "annual_saving",
    "realised_saving",
    "projected_saving",
    "investment",
    "baseline_annual_cost",
)
_NEED_ROWS = ("need rows",)  # where `cache` keeps the needs table's rows


def _need_row(
    cached: dict[Any, dict[str, Any]],
    rows: dict[Any, dict[str, Any]],
    pid: str,
    nid: str,
    f: Fact,
    c: ContractFigures | None,
) -> dict[str, Any]:
    key = need_key(f, c)
    row = cached.get(key)
    if row is None:
        row = need_row(pid, nid, f, key)
    rows[key] = row
    return row


def need_key(f: Fact, c: ContractFigures | None) -> tuple[str, str | None, str]:
    """What a need's row depends on: its fact, and the contract shown as replacing it."""
    return (f.key, c.award.contract_id if c else None, _need_status(c))


def need_row(pid: str, nid: str, f: Fact, key: tuple[str, str | None, str]) -> dict[str, Any]:
    """A need's row in the needs table (`key`: its `need_key`)."""
    p = f.payload
    return {
        "partner_id": pid,
        "need_id": nid,
        "service_category": p.service_category,
        "baseline_annual_cost": _d(p.current_annual_resource_cost),  # no budget: confidential
        "current_arrangements": p.current_arrangements,
        "contract_id": key[1],
        "status": key[2],
    }


def _need_status(c: ContractFigures | None) -> str:
    if c is None:
        return "separate_arrangements"
    if c.status == "active":
        return "shared_contract"
    if c.decommissioning is not None and c.decommissioning["replacement"] == "none":
        return "no_arrangements"
    return "separate_arrangements"
