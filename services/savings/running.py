"""The savings figures kept up to date event by event: `model.project`, incrementally.

`project(facts)` walks every contract and every need each time (1.4 s at 8,000 contracts and
80,000 needs, warm). `Running` keeps each contract's figures (`model._figures`, the same rules)
and the sums they add to, and after a batch recomputes only the contracts the batch touched:
an award, a return, a member's exit or a decommissioning touches its contract; a need, the
contracts that replace it. The totals are adjusted by each touched contract's difference (exact: pence are
integers, daily rates fractions), and the needs table and warnings are redone only for the
needs those contracts replace. A move of `as_of` or of the horizon changes every contract's
time-based figures: then everything is recomputed, as `project` does. The result equals
`project(facts)` exactly (tests/unit/test_savings_running.py checks it after every step).
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date
from fractions import Fraction
from typing import Any

import zstandard
from pydantic_core import from_json

from services.savings import model
from services.savings.model import ContractFigures, Facts, Slot
from shared.dates import DAY, add_months
from shared.events import (
    ContractDecommissioned,
    ContractMemberExited,
    MonitoringReturnSubmitted,
    NeedIdentified,
    TenderAwarded,
)
from shared.money import pence
from shared.policy import SavingsPolicy

_SUMS = ("baseline", "shared", "price", "active", "projected", "realised", "pv")


Place = tuple[model.Chunk, int, int]  # (a chunk of a snapshot, start, end)


class Packed:
    """A contract's figures as a snapshot holds them, read when first used
    (services/savings/snapshot.py): its row and the rest of its figures, each JSON in a chunk of
    the snapshot; its row as an update shows it (`shown`, `updates.shown_json`); the award they
    were computed from. A full read of the figures lists every row without reading the rest."""

    __slots__ = ("_data", "_read", "_row", "award", "shown")

    def __init__(self, row: Place, data: Place, shown: bytes, award: model.Fact) -> None:
        self._row, self._data, self.shown, self.award = row, data, shown, award
        self._read: dict[str, Any] | None = None

    def row(self) -> dict[str, Any]:
        if self._read is None:
            self._read = from_json(self.row_json())
        return self._read

    def row_json(self, read: model.Reading | None = None) -> bytes:
        chunk, start, end = self._row
        return read(chunk, start, end) if read is not None else chunk.read(start, end)

    def data(self, read: model.Reading | None = None) -> bytes:
        chunk, start, end = self._data
        return read(chunk, start, end) if read is not None else chunk.read(start, end)


class PackedReplacing:
    """Which contracts replace each need, as a snapshot holds it (services/savings/snapshot.py):
    by the need's place among the snapshot's needs (`place`), a contract's place among `cids`
    (-1: none; -2: several, listed in `several`). Never changed: `Running` sets what changes
    over it."""

    __slots__ = ("by", "cids", "place", "several")

    def __init__(self, place: model.Places, by: Any, cids: list[str], several: dict[int, list[str]]) -> None:
        self.place, self.by, self.cids, self.several = place, by, cids, several

    def get(self, slot: Slot) -> str | list[str] | None:
        k = self.place.get(slot)
        if k is None:
            return None
        c = self.by[k]
        return self.cids[c] if c >= 0 else self.several[k] if c == -2 else None


def packed_slots(needs: list[Any], slots: Sequence[Slot]) -> list[Slot]:
    """A restored contract's need slots, from its needs as the snapshot has them (each one's
    place in `slots`, or [partner, need])."""
    return [slots[need] if type(need) is int else (need[0], need[1]) for need in needs]


class Running:
    def __init__(self, policy: SavingsPolicy) -> None:
        self.policy = policy
        self.facts: Facts | None = None
        self._frame: tuple[Any, ...] | None = None
        self._dirty: set[str] = set()  # contracts whose inputs an event touched
        #: the contracts the last `summary` recomputed; None: every one
        self.touched: set[str] | None = None
        self._dirty_needs: set[Slot] = set()
        #: (`model.as_of`, `model.first_start`) of `_ends_of`, kept up to date as events are
        #: folded, so a recompute does not read every fact for them; None: read them again
        self._ends: tuple[date | None, date | None] | None = None
        self._ends_of: Facts | None = None
        #: each partner's row as last written out, with the pence it was written from
        self._partner_rows: dict[str, tuple[tuple[int, ...], dict[str, Any]]] = {}
        #: partners whose figures a contract moved since their rows were last looked at (None:
        #: every partner, after a reset or a restore), and those with an investment then
        self._moved: set[str] | None = None
        self._invested: set[str] = set()
        #: reads a `Packed` contract's figures (set by the snapshot restored)
        self.unpack: Callable[[Packed], ContractFigures] | None = None
        #: contracts' figures computed ahead of the next `summary` (`precompute`: a rebuild's
        #: workers), taken by it unless something they depend on was folded since (`_stale`:
        #: the contracts and needs it touched) or the frame moved (`_ahead_frame`)
        self._ahead: dict[str, ContractFigures] = {}
        self._ahead_frame: tuple[Any, ...] | None = None
        #: what those contracts add to every total, summed where they were computed (`totals`):
        #: added at once by a `summary` that starts again from nothing (a rebuild's)
        self._ahead_totals: list[list[Any]] = []
        self._stale: set[str | Slot] = set()
        #: what `_discounts` and `frame_of` worked out last (the latter with the ends it was of)
        self._discounted: tuple[Fraction, list[Fraction]] | None = None
        self._framed: tuple[Any, tuple[Any, ...], tuple[date, date] | None] | None = None
        #: the payback dates as last worked out, with what they depend on but the daily rate's
        #: steps (None: the steps moved since): `_view`
        self._paybacks: tuple[Any, date | None, date | None] | None = None
        #: the document but its tables as `_view` last put it together, with what it was made of
        self._viewed: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        #: events folded so far, into any index (a rebuild sees whether any came after a point)
        self.folds = 0

    def fold(self, facts: Facts, key: str, payload: Any) -> Facts:
        """`model.evolve`, noting what the event touches (the `fold` of the projection)."""
        self.folds += 1
        if self._ahead:
            self._stale.add(_touches(payload))
        ends = self._ends if facts is self._ends_of else None  # not while an index is read whole
        latest, start = model.dates_of(payload) if ends is not None else (None, None)
        if latest is None:
            ends = None  # no date: nothing to keep
        held = model.facts_in(facts, payload) if ends is not None else 0
        live = facts is self.facts  # not an index being loaded: taken whole at the next `figures`
        before = model.standing(facts, payload) if live or ends is not None else None
        model.evolve(facts, key, payload)
        replaced = (live or ends is not None) and model.standing(facts, payload) is not before
        if ends is not None:
            if model.facts_in(facts, payload) != held:
                self._ends = (_latest(ends[0], latest), _earliest(ends[1], start))
            elif replaced:
                # a slot's fact replaced: the one it replaced may have been the latest or the
                # earliest (the same folded again, or an older one, changes neither)
                self._ends = None
        if not live or not replaced:
            return facts  # it did not replace what stands in its slot: no figure moves
        touched = _touches(payload)
        if type(touched) is str:  # a contract's
            self._dirty.add(touched)
        elif touched is not None:  # a need's slot: it and the contracts that replace it
            self._dirty_needs.add(touched)
            self._dirty.update(self._replacing(touched))
        return facts

    def precompute(self, facts: Facts, cids: Iterable[str]) -> Iterator[tuple[str, ContractFigures]]:
        """These contracts' figures as the next `summary` of `facts` computes them (a rebuild
        computes them in several processes, then hands them over: `ahead`)."""
        frame, _ = self.frame_of(facts)
        today, buckets = frame
        _, factors = self._discounts(len(buckets))
        for cid in cids:
            fact = facts.awards[cid]
            yield cid, model._figures(fact, facts, self.policy, today, buckets, factors)

    def ahead(
        self, figures: dict[str, ContractFigures], facts: Facts, totals: Sequence[list[Any]] = ()
    ) -> None:
        """Figures `precompute`d from `facts` as they stand now, for the next `summary` to take
        where nothing folded after this touches them; `totals`: what they add to every total
        (`totals_of`, each over a part of them: together, over all of them)."""
        self._ahead, self._ahead_frame, self._stale = dict(figures), self.frame_of(facts)[0], set()
        self._ahead_totals = list(totals)

    def totals_of(self, facts: Facts, figures: Iterable[ContractFigures]) -> list[Any]:
        """What these contracts add to every total (`_add`), in JSON (a rebuild's worker hands
        it over), as `_add_totals` takes it."""
        summed = Running(self.policy)
        summed._reset(facts, self.frame_of(facts)[0], dirty=False)
        for c in figures:
            summed._add(c, 1)
        return [
            dict(summed._sums),
            summed._years,
            summed._years_disc,
            {pid: dict(row) for pid, row in summed._partners.items()},
            dict(summed._partner_refs),
            [(day.toordinal(), q, n) for day, by in summed._step_sums.items() for q, n in by.items()],
        ]

    def _add_totals(self, totals: list[Any]) -> None:
        """Add `totals_of` some contracts to every total, as `_add` of each would."""
        sums, years, years_disc, partners, refs, steps = totals
        self._viewed = None
        self._sums.update(sums)
        self._years = [a + b for a, b in zip(self._years, years, strict=True)]
        self._years_disc = [a + b for a, b in zip(self._years_disc, years_disc, strict=True)]
        for pid, row in partners.items():
            self._partners[pid].update(row)
        self._partner_refs.update(refs)
        summing = self._step_sums
        for ordinal, q, n in steps:
            by_denominator = summing.setdefault(date.fromordinal(ordinal), {})
            by_denominator[q] = by_denominator.get(q, 0) + n
        if steps:
            self._paybacks = None

    def _fresh(self, cid: str, award: TenderAwarded) -> bool:
        """Whether nothing a contract's figures depend on was folded since they were computed
        ahead (`model._key`'s parts: its award, returns, exits and decommissioning, by its id;
        its needs, by their slots)."""
        stale = self._stale
        return not stale or (
            cid not in stale and not any((s.partner_id, s.need_id) in stale for s in award.partners)
        )

    def _discounts(self, years: int) -> tuple[Fraction, list[Fraction]]:
        """A year's discount factor, and each year's from the horizon's start (kept: the
        policy does not change, and every recompute asks)."""
        kept = self._discounted
        if kept is None or len(kept[1]) != years:
            factor = Fraction(1) / (1 + Fraction(self.policy.discount_rate))
            kept = self._discounted = (factor, [factor**k for k in range(years)])
        return kept

    def pending(self) -> bool:
        """Whether something was folded since the figures were last computed."""
        return bool(self._dirty or self._dirty_needs)

    # -- figures ----------------------------------------------------------------------------

    def frame_of(self, facts: Facts) -> tuple[tuple[Any, ...], tuple[date, date] | None]:
        """((the business date, the horizon's years), the horizon): what every contract's
        time-based figures depend on."""
        if facts is not self._ends_of or self._ends is None:
            self._ends_of, self._ends = facts, (model.as_of(facts), model.first_start(facts))
        kept = self._framed
        if kept is not None and kept[0] == self._ends:  # every recompute asks: mostly the same
            return kept[1], kept[2]
        today, span = self._ends[0], model.span_from(self._ends[1], self.policy)
        buckets: list[tuple[date, date]] = []
        if span:
            k = 0
            while add_months(span[0], 12 * k) < span[1]:
                buckets.append((add_months(span[0], 12 * k), min(add_months(span[0], 12 * (k + 1)), span[1])))
                k += 1
        self._framed = (self._ends, (today, tuple(buckets)), span)
        return (today, tuple(buckets)), span

    def figures(self, facts: Facts) -> dict[str, Any]:
        """The whole document (`model.project`'s), recomputing only what was folded since."""
        return {**self.summary(facts), **self.tables(facts)}

    def summary(self, facts: Facts) -> dict[str, Any]:
        """Recompute what was folded since the last call, and return the document but its
        tables (contracts, needs, warnings: `tables`): its cost follows what changed and the
        partners, not the number of contracts. `touched` then names the contracts recomputed
        (None: every one, after the facts or the business date changed)."""
        frame, span = self.frame_of(facts)
        today, buckets = frame[0], list(frame[1])
        self.touched = set()
        # from nothing, with the figures computed ahead: their totals added at once (each
        # contract's part taken away again below if its figures are not taken)
        summed = False
        if facts is not self.facts or frame != self._frame:
            self._reset(facts, frame)
            self.touched = None
            if self._ahead and self._ahead_totals and frame == self._ahead_frame:
                for totals in self._ahead_totals:
                    self._add_totals(totals)
                summed = True
        self._ahead_totals = []
        factor, factors = self._discounts(len(buckets))
        touched: set[str] = set()
        for cid in sorted(self._dirty):
            fact = facts.awards.get(cid)
            if fact is None:
                continue
            prior = self._keys.get(cid)
            ahead = self._ahead.get(cid) if self._ahead else None
            usable = ahead is not None and frame == self._ahead_frame and self._fresh(cid, fact.payload)
            if prior is None and usable:
                # taken as computed, with no key to compare (a rebuild's): its key is worked out
                # when it is next touched, which recomputes it, as after a restore (15% of a
                # rebuild's recompute at 10,000 contracts went to keys no one compared)
                key = None
            else:
                found = model.needs_of(fact.payload, facts)
                key = model._key(fact, facts, today, frame[1], self.policy, found)
                if key == prior:
                    continue
            self._index(cid, fact.payload)
            self._add(self._c(cid) if cid in self._contracts else None, -1)
            if ahead is not None:
                del self._ahead[cid]
            if usable:
                c = ahead
            else:
                c = model._figures(fact, facts, self.policy, today, frame[1], factors, found)
            self._contracts[cid], self._keys[cid] = c, key
            if ahead is not None and summed:
                if c is not ahead:  # its part is in the totals added: the new one replaces it
                    self._add(ahead, -1)
                    self._add(c, 1)
            else:
                self._add(c, 1)
            touched.add(cid)
        self._dirty.clear()
        if summed:
            for c in self._ahead.values():  # not looked at (no longer awarded): out of the totals
                self._add(c, -1)
        self._ahead.clear()  # those not taken are out of date
        if self.touched is None:
            # every contract recomputed: every one's warnings and every need's row redone (the
            # same as below, without gathering each need's contracts: 909,091 needs there)
            self._dirty_needs.clear()
            for cid in touched:
                if self._slots_of(cid):
                    self._warnings[cid] = self._warnings_of(self._c(cid))
            self._every_need_row(facts)
            return self._view(facts, today, span, buckets, factor)
        self.touched = touched
        slots = self._dirty_needs | {s for cid in touched for s in self._slots_of(cid)}
        self._dirty_needs.clear()
        for cid in {d for s in slots for d in self._replacing(s)}:
            self._warnings[cid] = self._warnings_of(self._c(cid))
        for slot in slots:
            self._need_row(slot)
        return self._view(facts, today, span, buckets, factor)

    def tables(self, facts: Facts) -> dict[str, Any]:
        """The document's tables as of the last `summary` (nothing recomputed): every
        contract's row, the needs table, the warnings. Put in order here: a recompute keeps
        no sorted list up to date."""
        ids = sorted(self._contracts)
        self._read_need_rows()
        return {
            "contracts": [self._row(cid) for cid in ids],
            "needs": [self._need_rows[slot] for slot in sorted(self._need_rows)],
            "warnings": [w for cid in ids for w in self._warnings.get(cid, ())],
            "events_applied": len(facts.applied) if facts.applied is not None else None,
        }

    def row(self, cid: str) -> dict[str, Any]:
        """One contract's row as of the last `summary`."""
        return self._row(cid)

    def rows_unlike(self, shown: Mapping[str, bytes]) -> Iterator[dict[str, Any]]:
        """Every contract's row (as of the last `summary`, in id order) but those of contracts
        still packed as a snapshot holds them that `shown` shows as they are: compared without
        reading them."""
        for cid in sorted(self._contracts):
            c = self._contracts[cid]
            if type(c) is not Packed or shown.get(cid) != c.shown:
                yield self._row(cid)

    def contract_ids(self) -> Iterator[str]:
        return iter(self._contracts)

    def _row(self, cid: str) -> dict[str, Any]:
        """A contract's row, read alone if its figures are still packed."""
        c = self._contracts[cid]
        return c.row() if type(c) is Packed else c.row  # type: ignore[union-attr, return-value]

    def _c(self, cid: str) -> ContractFigures:
        """A contract's figures, read now if they are still packed."""
        c = self._contracts[cid]
        if type(c) is Packed:
            assert self.unpack is not None
            c = self._contracts[cid] = self.unpack(c)
        return c  # type: ignore[return-value]

    def _read_need_rows(self) -> None:
        """The needs table a snapshot held, read (`need_pending`: its frames, each over those
        before it), under the rows redone since."""
        if self.need_pending is None:
            return
        pending, self.need_pending = self.need_pending, None
        for frame in reversed(pending):  # the latest first: what stands
            for pid, nid, key, row in from_json(zstandard.decompress(frame)):
                if (pid, nid) not in self._need_rows:
                    self._need_rows[(pid, nid)] = row
                    self._need_keys[(pid, nid)] = tuple(key)

    def _reset(self, facts: Facts, frame: tuple[Any, ...], dirty: bool = True) -> None:
        """Start again from `facts`: every contract and need to compute (`dirty`), unless a
        snapshot restored sets their figures."""
        self.facts, self._frame = facts, frame
        self._contracts: dict[str, ContractFigures | Packed] = {}
        self._keys: dict[str, Any] = {}
        self._slots: dict[str, list[Slot]] = {}  # a contract's need slots, in its award's order
        #: the same of a contract as a snapshot held it, until it is indexed again: each need's
        #: place in `need_slots` (the snapshot's needs, in its order), or [partner, need] for a
        #: need not identified yet, as the snapshot has them (no object a slot made at restore)
        self._packed_slots: dict[str, list[Any]] = {}
        self.need_slots: Sequence[Slot] = []
        #: the contracts replacing each need: the id of the one, or their ids in order (most needs
        #: have one: a list each was a third of a restore's indexing at 909,091 needs), over
        #: those of a snapshot restored (`replacing_packed`: an empty list stands for none)
        self._slot_contracts: dict[Slot, str | list[str]] = {}
        self.replacing_packed: PackedReplacing | None = None
        self._sums: Counter[str] = Counter()
        self._years: list[int] = [0] * len(frame[1])
        self._years_disc: list[int] = [0] * len(frame[1])
        self._partners: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._partner_refs: Counter[str] = Counter()  # contracts giving a partner a row
        self._moved = None
        self._steps: dict[date, Fraction] = {}
        self._step_sums: dict[date, dict[int, int]] = {}  # added since they were read (`steps`)
        self._paybacks = self._viewed = None
        self._warnings: dict[str, list[str]] = {}
        self._need_rows: dict[Slot, dict[str, Any]] = {}
        self._need_keys: dict[Slot, Any] = {}
        #: the needs table's rows as a snapshot holds them (JSON, zstd-compressed), read when the
        #: table is asked for; a row redone since stands over its
        self.need_pending: list[bytes] | None = None
        self._dirty = set(facts.awards) if dirty else set()
        self._dirty_needs = set(facts.needs) if dirty else set()

    def _index(self, cid: str, award: TenderAwarded) -> None:
        """Which needs the contract replaces (its award may be a later revision). A need's
        contracts are replaced, not changed in place: those of a snapshot restored are its."""
        replacing = self._slot_contracts
        for slot in set(self._slots_of(cid)):
            rest = [held for held in self._replacing(slot) if held != cid]
            replacing[slot] = rest[0] if len(rest) == 1 else rest  # [] stands over the snapshot's
            self._dirty_needs.add(slot)
        self._packed_slots.pop(cid, None)
        self._slots[cid] = [(s.partner_id, s.need_id) for s in award.partners]
        for slot in set(self._slots[cid]):
            held = self._replacing(slot)
            replacing[slot] = sorted((*held, cid)) if held else cid

    def _replacing(self, slot: Slot) -> tuple[str, ...] | list[str]:
        """The contracts replacing a need, in id order."""
        held = self._slot_contracts.get(slot)
        if held is None and self.replacing_packed is not None:
            held = self.replacing_packed.get(slot)
        return () if not held else (held,) if type(held) is str else held

    def _slots_of(self, cid: str) -> list[Slot]:
        """A contract's need slots, in its award's order."""
        slots = self._slots.get(cid)
        if slots is None:
            return packed_slots(self._packed_slots.get(cid, ()), self.need_slots)
        return slots

    def _add(self, c: ContractFigures | None, sign: int) -> None:
        """Add (sign 1) or take away (-1) one contract's part of every total."""
        if c is None:
            return
        self._viewed = None
        if c.status == "active":
            self._sums["baseline"] += sign * pence(c.baseline)
            self._sums["shared"] += sign * pence(c.shared_cost)
            self._sums["active"] += sign
            if c.price_saving is not None:
                self._sums["price"] += sign * pence(c.price_saving)
        self._sums["projected"] += sign * sum(c.years_p)
        self._sums["realised"] += sign * c.realised_p
        self._sums["pv"] += sign * sum(c.years_disc_p)
        for k, (p, d) in enumerate(zip(c.years_p, c.years_disc_p, strict=True)):
            self._years[k] += sign * p
            self._years_disc[k] += sign * d
        partners = self._partners
        for pid, name, p in c.additions:
            partners[pid][name] += sign * p
        for pid in dict.fromkeys(pid for pid, _, _ in c.additions):  # in order: the same order each run
            self._partner_refs[pid] += sign
            if self._moved is not None:
                self._moved.add(pid)
        if c.changes:
            self._paybacks = None  # the daily rate's steps move
        # each day's step, summed as whole numerators by denominator (a contract's rates have
        # a few): made Fractions when the steps are read (`steps`), not at every addition
        summing = self._step_sums
        for day, rate in c.changes.items():
            by_denominator = summing.get(day)
            if by_denominator is None:
                by_denominator = summing[day] = {}
            q = rate.denominator
            n = rate.numerator if sign > 0 else -rate.numerator
            by_denominator[q] = by_denominator.get(q, 0) + n

    def steps(self) -> dict[date, Fraction]:
        """The portfolio's daily saving rate's steps: each day's sum of every contract's
        (`ContractFigures.changes`), and no day whose steps cancel out."""
        summing = self._step_sums
        if summing:
            steps = self._steps
            for day, by_denominator in summing.items():
                step = steps.get(day, 0) + sum(Fraction(n, q) for q, n in by_denominator.items() if n)
                if step:
                    steps[day] = step
                else:
                    steps.pop(day, None)  # no step that day (a cut with no change moves no figure)
            summing.clear()
        return self._steps

    def _holder(self, slot: Slot, before: str | None = None) -> ContractFigures | None:
        """The contract shown as replacing a need (as `project` picks it): the last active
        one in id order, else the first; only among ids before `before` when given."""
        one = self._slot_contracts.get(slot)
        if type(one) is str:  # most needs: one contract
            return self._c(one) if before is None or one < before else None
        held = None
        for cid in self._replacing(slot):
            if before is not None and cid >= before:
                break
            c = self._c(cid)
            if held is None or c.status == "active":
                held = c
        return held

    def _warnings_of(self, c: ContractFigures) -> list[str]:
        if not c.needs_missing:
            # most contracts: each need replaced by this one alone, named once; none to warn of
            cid, replacing = c.award.contract_id, self._slot_contracts
            slots = [(s.partner_id, s.need_id) for s in c.award.partners]
            if all(replacing.get(slot) == cid for slot in slots) and len(set(slots)) == len(slots):
                return []
        out, held = [], {}
        for s in c.award.partners:
            slot = (s.partner_id, s.need_id)
            other = held[slot] if slot in held else self._holder(slot, c.award.contract_id)
            if other is not None and other.status == "active" and c.status == "active":
                out.append(
                    f"need {s.partner_id}/{s.need_id} is replaced by two active contracts: "
                    f"{other.award.contract_id}, {c.award.contract_id}"
                )
            held[slot] = c if other is None or c.status == "active" else other
        if c.needs_missing:
            missing = ", ".join(c.needs_missing)
            out.append(f"contract {c.award.contract_id} names needs not yet identified: {missing}")
        return out

    def _every_need_row(self, facts: Facts) -> None:
        """Every need's row redone (`_need_row` of each need identified), each need read as the
        table is walked rather than looked up again: 909,091 in a rebuild at 1,000,000 events."""
        rows, keys, holder = self._need_rows, self._need_keys, self._holder
        for slot, fact in facts.needs.items():
            key = model.need_key(fact, holder(slot))
            if keys.get(slot) != key:  # else as it stands
                rows[slot], keys[slot] = model.need_row(*slot, fact, key), key

    def _need_row(self, slot: Slot) -> None:
        """Redo a need's row."""
        fact = self.facts.needs.get(slot) if self.facts else None
        if fact is None:
            return
        key = model.need_key(fact, self._holder(slot))
        if self._need_keys.get(slot) != key:  # else as it stands
            self._need_rows[slot], self._need_keys[slot] = model.need_row(*slot, fact, key), key

    # -- the document ------------------------------------------------------------------------

    def _view(
        self,
        facts: Facts,
        today: date | None,
        span: tuple[date, date] | None,
        buckets: list[tuple[date, date]],
        factor: Fraction,
    ) -> dict[str, Any]:
        m, s = model._m, self._sums
        invest_p = sum(pence(f.payload.amount) for f in facts.investments.values())
        invest_disc = Fraction(0)
        if span:
            for f in facts.investments.values():
                k = next((i for i, (b0, b1) in enumerate(buckets) if b0 <= f.payload.date < b1), len(buckets))
                invest_disc += Fraction(f.payload.amount) * factor**k
        invest_disc_p = pence(invest_disc)
        depends = (span, buckets, factor, invest_p, invest_disc_p)
        invested: dict[str, int] = {}
        for f in facts.investments.values():
            pid = f.payload.partner_id
            invested[pid] = invested.get(pid, 0) + pence(f.payload.amount)
        # the document as last put together, when no total moved since (`_add` forgets it) nor
        # the date, the horizon or the investments: most events move none (a need not awarded
        # yet, a return with no cost)
        made_of = (today, depends, invested)
        viewed = self._viewed
        if viewed is not None and viewed[0] == made_of:
            return _copied(viewed[1])
        if self._paybacks is not None and self._paybacks[0] == depends:
            payback, payback_disc = self._paybacks[1], self._paybacks[2]
        else:  # walks every day the daily rate steps: only after a contract moved it
            payback, payback_disc = self._payback_dates(span, buckets, factor, invest_p, invest_disc_p)
            self._paybacks = (depends, payback, payback_disc)
        years, cumulative = [], 0
        for k, (b0, b1) in enumerate(buckets):
            cumulative += self._years[k]
            years.append(
                {
                    "year": k + 1,
                    "from": b0.isoformat(),
                    "to": (b1 - DAY).isoformat(),
                    "saving": m(self._years[k]),
                    "discounted_saving": m(self._years_disc[k]),
                    "cumulative_saving": m(cumulative),
                }
            )
        view = {
            "as_of": today.isoformat() if today else None,
            "portfolio": {
                "baseline_annual_cost": m(s["baseline"]),
                "shared_annual_cost": m(s["shared"]),
                "annual_saving": m(s["baseline"] - s["shared"]),
                "contract_price_annual_saving": m(s["price"]),
                "investment": m(invest_p),
                "projected_saving": m(s["projected"]),
                "realised_saving": m(s["realised"]),
                "roi": model._ratio(s["projected"] - invest_p, invest_p),
                "payback_date": payback.isoformat() if payback else None,
                "active_contracts": s["active"],
            },
            "discounted": {
                "rate": str(self.policy.discount_rate),
                "present_value_saving": m(s["pv"]),
                "present_value_investment": m(invest_disc_p),
                "npv": m(s["pv"] - invest_disc_p),
                "roi": model._ratio(s["pv"] - invest_disc_p, invest_disc_p),
                "payback_date": payback_disc.isoformat() if payback_disc else None,
            },
            "horizon": {
                "from": span[0].isoformat() if span else None,
                "to": (span[1] - DAY).isoformat() if span else None,
                "months": self.policy.horizon_months,
            },
            "years": years,
            "partners": self._partner_table(invested),
        }
        self._viewed = (made_of, view)
        return _copied(view)

    def _payback_dates(
        self,
        span: tuple[date, date] | None,
        buckets: list[tuple[date, date]],
        factor: Fraction,
        invest_p: int,
        invest_disc_p: int,
    ) -> tuple[date | None, date | None]:
        """When the savings (and the discounted savings) first repay the investment."""
        timeline: list[tuple[date, date, Fraction]] = []
        timeline_disc: list[tuple[date, date, Fraction]] = []
        if span:
            steps = self.steps()
            cuts = sorted(set(steps) | {d for b in buckets for d in b})
            rate, k = Fraction(0), 0
            for a, b in itertools.pairwise(cuts):
                rate += steps.get(a, 0)
                while k < len(buckets) - 1 and a >= buckets[k][1]:
                    k += 1
                if span[0] <= a < span[1]:
                    timeline.append((a, min(b, span[1]), rate))
                    timeline_disc.append((a, min(b, span[1]), rate * factor**k))
        payback = model._payback(timeline, Fraction(invest_p, 100))
        return payback, model._payback(timeline_disc, Fraction(invest_disc_p, 100))

    def _partner_table(self, invested: dict[str, int]) -> list[dict[str, Any]]:
        """Every partner's row, in id order: those with a contract, and those with an
        investment (pence, by partner). Every update lists every partner, and most did not
        change: only the rows of partners a contract moved since (`_moved`), or with an
        investment now or at the last look, are looked at again (at 50 partners, looking at
        each was a third of an update's time)."""
        moved, self._moved = self._moved, set()
        again = None if moved is None else moved | invested.keys() | self._invested
        self._invested = set(invested)
        refs, rows = self._partner_refs, []
        for pid in sorted({pid for pid, n in refs.items() if n > 0} | invested.keys()):
            kept = self._partner_rows.get(pid)
            if kept is None or again is None or pid in again:
                figures: dict[str, int] = dict(self._partners[pid]) if refs.get(pid, 0) > 0 else {}
                if pid in invested:
                    figures["investment"] = figures.get("investment", 0) + invested[pid]
                rows.append(self._partner_row(pid, figures))
            else:
                rows.append(kept[1])  # `_view` gives its reader copies
        return rows

    def _partner_row(self, pid: str, figures: dict[str, int]) -> dict[str, Any]:
        """A partner's row of the document, written out again only when its figures moved."""
        key = tuple(figures.get(k, 0) for k in model._PARTNER_FIGURES)  # pence
        kept = self._partner_rows.get(pid)
        if kept is None or kept[0] != key:
            row = {
                "partner_id": pid,
                **{k: model._m(v) for k, v in zip(model._PARTNER_FIGURES, key, strict=True)},
            }
            self._partner_rows[pid] = kept = (key, row)
        return kept[1]  # `_view` gives its reader copies


def _copied(view: dict[str, Any]) -> dict[str, Any]:
    """A copy of the document `_view` keeps, down to its rows: its reader may change it."""
    return {
        **view,
        "portfolio": dict(view["portfolio"]),
        "discounted": dict(view["discounted"]),
        "horizon": dict(view["horizon"]),
        "years": [dict(year) for year in view["years"]],
        "partners": [dict(row) for row in view["partners"]],
    }


def _touches(payload: Any) -> str | Slot | None:
    """What an event's fact is the fact of (what `Running.fold` marks to recompute and
    `Running._fresh` looks for): a contract's id, a need's slot (an investment: nothing a
    contract's figures depend on)."""
    match payload:
        case NeedIdentified():
            return (payload.partner_id, payload.need_id)
        case (
            TenderAwarded()
            | MonitoringReturnSubmitted()
            | ContractDecommissioned()
            | ContractMemberExited()
        ):
            return payload.contract_id  # type: ignore[no-any-return]
    return None


def _latest(a: date | None, b: date | None) -> date | None:
    return b if a is None or (b is not None and b > a) else a


def _earliest(a: date | None, b: date | None) -> date | None:
    return b if a is None or (b is not None and b < a) else a
